/*
 * provider_stripe.c — Stripe.
 *
 * Callbacks: a webhook event, verified and normalised:
 * Stripe-Signature "t=...,v1=..." over "<t>.<body>" with the endpoint's
 * webhook_secret (crypto/stripe.c), then the signed timestamp against the
 * gateway's window, then the event's fields.
 * The parser is C, not PL/pgSQL, because PostgreSQL would prepare a
 * PL/pgSQL parser's expressions again in every transaction.
 *
 * Requests: payment intents (created, queried, captured, cancelled) and
 * refunds, built here, and their answers, read here.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "pay.h"
#include "callback.h"
#include "provider.h"
#include "hmac.h"
#include "secret_store.h"
#include "stripe.h"
#include "form_encode.h"

/* Does the header's v1 signature verify over the body with the webhook secret? */
static bool
SignatureValid(const CallbackGateway *g, const char *header, text *body)
{
	size_t		len = 0;
	char	   *secret = GatewayCredential(g, "webhook_secret", &len);
	StripeVerdict verdict = STRIPE_MALFORMED;

	if (len == 0 || len > HMAC_KEY_MAX)
	{
		SecretScrub(secret, len);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(len == 0 ? "secret must not be empty" : "secret is too long")));
	}
	if (body != NULL)
		verdict = stripe_verify(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
								header, strlen(header), (const uint8_t *) secret, len, 0, 0);
	SecretScrub(secret, len);
	if (verdict == STRIPE_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the Stripe signature")));
	return verdict == STRIPE_VALID;
}

/*
 * The timestamp the signature covers, as stripe_verify read it: from the
 * one "t=" element (a look for any "t=" in the header could pick up an
 * element the verifier ignores, such as " t=<now>", and let an old signed
 * callback through the window).
 */
static TimestampTz
SignedTimestamp(const char *header)
{
	StripeHeader h;
	char		digits[32];

	if (stripe_parse_header(header, strlen(header), &h) != STRIPE_PARSE_OK)
		CallbackSignatureInvalid("Stripe-Signature does not verify");
	snprintf(digits, sizeof(digits), "%lld", (long long) h.timestamp);
	return CallbackUnixTime(digits, strlen(digits));
}

/*
 * Stripe's lower-case currency code in upper case, ASCII letters only: a
 * Unicode case mapping would turn "u", U+017F (long s), "d" into "USD".
 * Any other byte stays as it is, and the code then matches no order's
 * currency.
 */
static char *
CurrencyUpper(const char *code)
{
	char	   *upper = pstrdup(code);
	char	   *c;

	for (c = upper; *c; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = *c - 'a' + 'A';
	return upper;
}

/*
 * Stripe's event type as our kind of event.  For a manual-capture intent
 * (capture_method "manual") amount_capturable_updated is the authorization,
 * which pay's payment success of a manual-capture order records, and
 * succeeded is the capture; an automatic intent never waits for one.
 */
static const char *
Kind(const char *type, bool manual)
{
	if (type == NULL)
		return "ignored";
	if (strcmp(type, "payment_intent.amount_capturable_updated") == 0)
		return manual ? "payment_succeeded" : "ignored";
	if (strcmp(type, "payment_intent.succeeded") == 0)
		return manual ? "payment_captured" : "payment_succeeded";
	if (strcmp(type, "payment_intent.payment_failed") == 0)
		return "payment_failed";
	if (strcmp(type, "payment_intent.canceled") == 0)
		return "closed";
	if (strcmp(type, "charge.refunded") == 0)
		return "refunded";
	return "ignored";
}

static Jsonb *
ParseCallback(const CallbackGateway *g, Jsonb *headers, text *body)
{
	static const char *const json[] = {"application/json"};
	static const char *const keys[] = {"event_id", "type", "kind", "order_ref", "psp_txn_id",
	"amount", "currency", "refund_total", "refund_id"};
	char	   *header = JsonbGetText(headers, "stripe-signature");
	Jsonb	   *event,
			   *object;
	char	   *type,
			   *amount,
			   *currency,
			   *method;
	bool		manual;
	char	   *values[9];

	if (header == NULL)
		CallbackSignatureInvalid("Stripe-Signature header is missing");
	RequireContentType(headers, json, 1);
	if (!SignatureValid(g, header, body))
		CallbackSignatureInvalid("Stripe-Signature does not verify");
	CheckWindow(g, SignedTimestamp(header), false);

	event = DatumGetJsonbP(DirectFunctionCall1(pay_json_body, PointerGetDatum(body)));
	type = JsonbGetText(event, "type");
	object = JsonbGetObject(JsonbGetObject(event, "data"), "object");
	method = JsonbGetText(object, "capture_method");
	manual = method != NULL && strcmp(method, "manual") == 0;
	values[2] = (char *) Kind(type, manual);
	/*
	 * The event's amount: what was received (captured) of a payment; what
	 * was authorized of an authorization; a canceled intent received
	 * nothing, its amount is the order's.
	 */
	if (strcmp(values[2], "payment_succeeded") == 0 && manual)
		amount = JsonbGetText(object, "amount_capturable");
	else if (strcmp(values[2], "closed") == 0)
		amount = NULL;
	else
		amount = JsonbGetText(object, "amount_received");
	currency = JsonbGetText(object, "currency");
	values[0] = JsonbGetText(event, "id");
	values[1] = type;
	values[3] = JsonbGetText(JsonbGetObject(object, "metadata"), "order_id");
	values[4] = JsonbGetText(object, (type && strcmp(type, "charge.refunded") == 0) ? "payment_intent" : "id");
	values[5] = amount ? amount : JsonbGetText(object, "amount");
	values[6] = currency ? CurrencyUpper(currency) : NULL;
	values[7] = JsonbGetText(object, "amount_refunded");
	values[8] = values[0];
	return EventBuild(keys, values, 9);
}

/*
 * Requests: form bodies, Bearer secret key, Idempotency-Key on every
 * request.  params.extra goes into the form; params.psp_txn_id names the
 * payment intent when the order has none yet.
 */

/* The request's payment intent, else 22023 saying what it was needed for. */
static const char *
PaymentIntent(const ProviderRequest *req, const ProviderOrder *o, const char *what)
{
	char	   *txn = JsonbGetText(ProviderRowJsonb(req->outbox, "params"), "psp_txn_id");

	if (txn == NULL)
		txn = o->psp_txn_id;
	if (txn == NULL && what != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order %lld has no Stripe payment intent to %s", (long long) o->id, what)));
	return txn;
}

/* Stripe's currency code is lower case; ours is ASCII upper case. */
static char *
CurrencyLower(const char *code)
{
	char	   *lower = pstrdup(code);

	for (char *c = lower; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = *c - 'A' + 'a';
	return lower;
}

/* The search of a payment intent by our order id (a query before Stripe named it). */
static char *
SearchPath(int64 order_id)
{
	char	   *q = psprintf("metadata['order_id']:'%lld'", (long long) order_id);
	char	   *encoded = palloc(FORM_ENCODED_MAX(strlen(q)) + 1);

	encoded[form_encode(q, strlen(q), encoded)] = '\0';
	return psprintf("/v1/payment_intents/search?query=%s", encoded);
}

static Datum
Build(const ProviderRequest *req)
{
	Jsonb	   *params = ProviderRowJsonb(req->outbox, "params");
	Jsonb	   *extra = JsonbGetObject(params, "extra");
	char	   *base = ProviderRowText(req->gateway, "base_url");
	const char *method = "POST";
	char	   *path;
	Jsonb	   *form = NULL;
	ProviderOrder o;
	char	   *key;
	size_t		key_len;
	List	   *headers;
	int			base_len;

	ProviderRequestOrder(req, &o);
	if (strcmp(req->operation, "create_payment") == 0)
	{
		static const char *const keys[] = {"amount", "currency", "metadata[order_id]", "capture_method"};
		char	   *manual = JsonbGetText(params, "capture");
		char	   *values[4] = {psprintf("%lld", (long long) o.amount), CurrencyLower(o.currency),
		psprintf("%lld", (long long) o.id), "manual"};

		/* authorize only: pay.capture or pay.void finishes it */
		path = "/v1/payment_intents";
		form = EventBuild(keys, values, manual && strcmp(manual, "manual") == 0 ? 4 : 3);
	}
	else if (strcmp(req->operation, "query") == 0)
	{
		const char *txn = PaymentIntent(req, &o, NULL);

		method = "GET";
		path = txn ? psprintf("/v1/payment_intents/%s", txn) : SearchPath(o.id);
	}
	else if (strcmp(req->operation, "refund") == 0)
	{
		static const char *const keys[] = {"payment_intent", "amount", "metadata[refund_id]"};
		const char *txn = PaymentIntent(req, &o, "refund");
		ProviderRefund f;
		char	   *values[3];

		ProviderRequestRefund(req, &f);
		values[0] = (char *) txn;
		values[1] = psprintf("%lld", (long long) f.amount);
		values[2] = JsonbGetText(params, "refund_id");
		path = "/v1/refunds";
		form = EventBuild(keys, values, 3);
	}
	else if (strcmp(req->operation, "close") == 0 || strcmp(req->operation, "void") == 0)
	{
		/* a void is the cancel of an authorized (requires_capture) intent */
		path = psprintf("/v1/payment_intents/%s/cancel", PaymentIntent(req, &o, "cancel"));
	}
	else if (strcmp(req->operation, "capture") == 0)
	{
		static const char *const keys[] = {"amount_to_capture"};
		char	   *values[1] = {JsonbGetText(params, "amount")};

		path = psprintf("/v1/payment_intents/%s/capture", PaymentIntent(req, &o, "capture"));
		form = EventBuild(keys, values, 1);
	}
	else if (strcmp(req->operation, "query_refund") == 0)
	{
		ProviderRefund f;

		ProviderRequestRefund(req, &f);
		if (f.psp_refund_id == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("refund %lld has no Stripe refund id to query", (long long) f.id)));
		method = "GET";
		path = psprintf("/v1/refunds/%s", f.psp_refund_id);
	}
	else
		elog(ERROR, "Stripe has no operation \"%s\"", req->operation);

	if (base == NULL)
		base = "https://api.stripe.com";
	for (base_len = strlen(base); base_len > 0 && base[base_len - 1] == '/'; base_len--)
		;
	key = ProviderCredential(req, "api_key", &key_len);
	headers = list_make2(psprintf("Authorization: Bearer %s", key),
						 psprintf("Idempotency-Key: %s", ProviderRowText(req->outbox, "idempotency_key")));
	SecretScrub(key, key_len);
	if (strcmp(method, "GET") == 0)
		return ProviderHttpRequest(method, psprintf("%.*s%s", base_len, base, path), headers, NULL);
	headers = lappend(headers, "Content-Type: application/x-www-form-urlencoded");
	if (form == NULL)
		form = EventBuild(NULL, NULL, 0);
	return ProviderHttpRequest(method, psprintf("%.*s%s", base_len, base, path), headers,
							   ProviderFormBody(ProviderJsonbConcat(form, extra)));
}

/*
 * Answers: a PaymentIntent (create, query, close, capture, void), a search
 * result (a query without a PaymentIntent id) or a Refund; errors as
 * {"error": {...}}.  Stripe does not sign its answers: the TLS connection
 * and our key authenticate them.
 */

static Jsonb *
Refused(const ProviderAnswer *ans)
{
	Jsonb	   *v = ProviderRefusalBody(ans->status, ans->body);
	Jsonb	   *error = JsonbGetObject(v, "error");
	char	   *reason = JsonbGetText(error, "message");
	char	   *code = JsonbGetText(error, "code");
	int			already_paid = 0;
	JsonbParseState *state = NULL;

	if (reason == NULL)
		reason = JsonbGetText(v, "message");
	if (reason == NULL)
		reason = psprintf("HTTP %d", ans->status);
	/* a close of an intent that was paid meanwhile */
	if (strcmp(ans->request.operation, "close") == 0)
		already_paid = code == NULL ? -1 : strcmp(code, "payment_intent_unexpected_state") == 0;
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "verdict", "refused");
	ProviderPushBool(&state, "final", 1);
	ProviderPushText(&state, "reason", reason);
	ProviderPushText(&state, "code", code);
	ProviderPushBool(&state, "already_paid", already_paid);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

static Jsonb *
RefundRead(const ProviderAnswer *ans, Jsonb *v)
{
	static const char *const keys[] = {"psp_refund_id", "status"};
	char	   *ours = JsonbGetText(ProviderRowJsonb(ans->request.outbox, "params"), "refund_id");
	char	   *status = JsonbGetText(v, "status");
	char	   *values[2];
	JsonbParseState *state = NULL;

	ProviderExpect("object", JsonbGetText(v, "object"), "refund", true);
	/* IS DISTINCT FROM: both missing is a match */
	if (!(ours == NULL && JsonbGetText(JsonbGetObject(v, "metadata"), "refund_id") == NULL))
		ProviderExpect("metadata.refund_id", JsonbGetText(JsonbGetObject(v, "metadata"), "refund_id"), ours ? ours : "", true);
	values[0] = JsonbGetText(v, "id");
	values[1] = status == NULL ? NULL :
		strcmp(status, "succeeded") == 0 ? "succeeded" :
		(strcmp(status, "failed") == 0 || strcmp(status, "canceled") == 0) ? "failed" : NULL;
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "verdict", "applied");
	ProviderPushJsonb(&state, "refund", EventBuild(keys, values, 2));
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/* The first element of v->'data' when it is an array, else NULL; *empty when it has none. */
static Jsonb *
FirstResult(Jsonb *v, bool *empty)
{
	JsonbValue	data;
	JsonbValue *first;

	*empty = true;
	if (getKeyJsonValueFromContainer(&v->root, "data", strlen("data"), &data) == NULL)
		return NULL;
	/* as jsonb_array_length says it */
	if (data.type != jbvBinary || JsonContainerIsScalar(data.val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot get array length of a scalar")));
	if (!JsonContainerIsArray(data.val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot get array length of a non-array")));
	first = getIthJsonbValueFromContainer(data.val.binary.data, 0);
	if (first == NULL)
		return NULL;
	*empty = false;
	return JsonbValueToJsonb(first);
}

/*
 * Our event of a queried intent that succeeded, was canceled, or (a
 * manual-capture one) waits for its capture, else NULL: what its webhook
 * would have said (ParseCallback).
 */
static Jsonb *
QueryEvent(const ProviderAnswer *ans, Jsonb *v, const char *status)
{
	static const char *const keys[] = {"event_id", "type", "kind", "order_ref", "psp_txn_id", "amount", "currency"};
	char	   *values[7];
	char	   *received = JsonbGetText(v, "amount_received");
	char	   *method = JsonbGetText(v, "capture_method");
	bool		manual = method != NULL && strcmp(method, "manual") == 0;

	if (strcmp(ans->request.operation, "query") != 0 || status == NULL)
		return NULL;
	if (strcmp(status, "succeeded") == 0)
		values[2] = manual ? "payment_captured" : "payment_succeeded";
	else if (strcmp(status, "canceled") == 0)
		values[2] = "closed";
	else if (strcmp(status, "requires_capture") == 0 && manual)
	{
		/* authorized: what can be captured is what was authorized */
		values[2] = "payment_succeeded";
		received = JsonbGetText(v, "amount_capturable");
	}
	else
		return NULL;
	values[0] = psprintf("query:%lld", (long long) ProviderRowInt64(ans->request.outbox, "id"));
	values[1] = psprintf("payment_intent.%s", status);
	values[3] = JsonbGetText(JsonbGetObject(v, "metadata"), "order_id");
	values[4] = JsonbGetText(v, "id");
	/* what was received (or can be captured), of a payment; a canceled one received nothing */
	values[5] = strcmp(status, "canceled") != 0 && received ? received : JsonbGetText(v, "amount");
	values[6] = JsonbGetText(v, "currency") ? CurrencyUpper(JsonbGetText(v, "currency")) : NULL;
	return EventBuild(keys, values, 7);
}

static Jsonb *
Read(const ProviderAnswer *ans)
{
	Jsonb	   *v;
	char	   *status,
			   *secret,
			   *currency;
	JsonbParseState *state = NULL;
	Jsonb	   *next_action = NULL;
	int64		order_id = ProviderRowInt64(ans->order, "id");

	if (ans->status >= 400)
		return Refused(ans);
	v = ProviderAnswerBody(ans->body);
	if (strcmp(ans->request.operation, "refund") == 0 || strcmp(ans->request.operation, "query_refund") == 0)
		return RefundRead(ans, v);
	if (JsonbGetText(v, "object") && strcmp(JsonbGetText(v, "object"), "search_result") == 0)
	{
		bool		empty;
		Jsonb	   *first = FirstResult(v, &empty);

		if (empty)
		{
			/* Stripe has no payment for the order yet */
			pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
			ProviderPushText(&state, "verdict", "applied");
			return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
		}
		v = first;
	}
	ProviderExpect("object", JsonbGetText(v, "object"), "payment_intent", true);
	ProviderExpect("metadata.order_id", JsonbGetText(JsonbGetObject(v, "metadata"), "order_id"),
		   psprintf("%lld", (long long) order_id), true);
	ProviderExpect("amount", JsonbGetText(v, "amount"), psprintf("%lld", (long long) ProviderRowInt64(ans->order, "amount")), true);
	currency = JsonbGetText(v, "currency");
	ProviderExpect("currency", currency ? CurrencyUpper(currency) : NULL, ProviderRowText(ans->order, "currency"), true);
	status = JsonbGetText(v, "status");
	secret = JsonbGetText(v, "client_secret");
	if (secret != NULL)
	{
		static const char *const keys[] = {"type", "client_secret"};
		char	   *values[2] = {"client_secret", secret};

		next_action = EventBuild(keys, values, 2);
	}
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "verdict", "applied");
	ProviderPushText(&state, "psp_txn_id", JsonbGetText(v, "id"));
	ProviderPushJsonb(&state, "next_action", next_action);
	ProviderPushJsonb(&state, "event", QueryEvent(ans, v, status));
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

static const ProviderOperation operations[] = {
	{"create_payment", Build, Read},
	{"query", Build, Read},
	{"refund", Build, Read},
	{"query_refund", Build, Read},
	{"close", Build, Read},
	{"capture", Build, Read},
	{"void", Build, Read},
	/* statement fetches: provider_stripe_statement.c (the file step has no reader: provider.h) */
	{"fetch_statement", StripeStatementBuild, StripeStatementRead},
	{"fetch_statement_poll", StripeStatementBuild, StripeStatementRead},
	{"fetch_statement_file", StripeStatementBuild, NULL},
};

const Provider stripe_provider = {
	.kind = "stripe",
	.flags = PROVIDER_CALLBACKS | PROVIDER_CREATES_PAYMENTS | PROVIDER_REFUNDS | PROVIDER_STATEMENTS |
	PROVIDER_MANUAL_CAPTURE | PROVIDER_CLOSE_NEEDS_PSP_ID,
	.parse_callback = ParseCallback,
	.answer_callback = ProviderAnswerJson,
	.operations = operations,
	.n_operations = lengthof(operations),
	/* an uncaptured PaymentIntent is canceled after 7 days (online card payments) */
	.authorization_validity_s = 7 * 24 * 3600,
	/* the report, imported as downloaded */
	.statement_format = "stripe_itemized_csv",
};
