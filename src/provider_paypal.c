/*
 * provider_paypal.c — PayPal (REST: Orders API v2, Payments API v2).
 *
 * A payment at PayPal takes the buyer's approval on PayPal's own pages:
 *
 *   create_payment   POST /v2/checkout/orders: intent CAPTURE (or AUTHORIZE
 *                    for capture => 'manual'), custom_id our order id, the
 *                    amount in the currency's decimals; the answer's
 *                    approve link is the order's next_action (redirect)
 *   (the buyer approves; webhook CHECKOUT.ORDER.APPROVED queues ...)
 *   capture_order    POST /v2/checkout/orders/{id}/capture: the money moves
 *   authorize        POST /v2/checkout/orders/{id}/authorize: it is held
 *   capture          POST /v2/payments/authorizations/{id}/capture, the
 *                    amount pay.capture took (partial allowed), final
 *   void             POST /v2/payments/authorizations/{id}/void
 *   refund           POST /v2/payments/captures/{id}/refund
 *   query            GET /v2/checkout/orders/{id}
 *   query_refund     GET /v2/payments/refunds/{id}
 *
 * Every request carries an OAuth access token (oauth_token.c: fetched
 * with the gateway's client_id and client_secret, kept in the dispatcher's
 * memory) and, on a POST, PayPal-Request-Id = the outbox row's idempotency
 * key, so that a retry has no second effect.  The ids PayPal gives the
 * authorization and the capture, which later requests name, are kept in
 * pay.paypal_payments as their answers come.  PayPal does not sign its
 * answers: the TLS connection and our token authenticate them.
 *
 * Webhooks: PAYPAL-TRANSMISSION-SIG verified by pay.paypal_signature_valid
 * (sign_paypal.c) with the certificate PAYPAL-CERT-URL names
 * (paypal_cert.c: PayPal's hosts only, chain checked, kept by URL) and the
 * gateway's webhook_id, then PAYPAL-TRANSMISSION-TIME against the
 * gateway's window; the transmission id is the nonce.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/resowner.h"

#include "pay.h"
#include "amount.h"
#include "callback.h"
#include "oauth_token.h"
#include "paypal_cert.h"
#include "paypal_webhook.h"
#include "provider.h"
#include "secret_store.h"

extern Datum pay_paypal_signature_valid(PG_FUNCTION_ARGS);

#define PAYPAL_API "https://api-m.paypal.com"

/*
 * An authorization stays capturable for 29 days; PayPal honours its full
 * amount for the first 3 only (after that a capture may be declined and
 * needs a reauthorization, which pay does not send).  pay keeps it as
 * long as it can still be captured at all.
 */
#define AUTHORIZATION_VALIDITY_S (29 * 86400)

static SPIPlanPtr exponent_plan = NULL;
static SPIPlanPtr payment_plan = NULL;
static SPIPlanPtr keep_payment_plan = NULL;

/* --- what builders and readers share ------------------------------------------- */

/* The minor-unit exponent of a currency (pay.currencies); 22023 for one it does not list. */
static int
Exponent(const char *currency)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(currency)};
	bool		isnull;
	int			exponent = -1;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(KeptPlan(&exponent_plan, "SELECT exponent FROM pay.currencies WHERE code = $1", 1, types),
						 values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.currencies");
	if (SPI_processed == 1)
		exponent = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	if (exponent < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("currency \"%s\" is not in pay.currencies", currency)));
	return exponent;
}

/* Minor units as PayPal's value: a decimal with exactly the currency's decimals ("12.34", "100", "1.234"). */
static char *
Value(int64 minor, const char *currency)
{
	char		buf[AMOUNT_TEXT_MAX];

	if (amount_format(minor, Exponent(currency), buf, sizeof(buf)) != AMOUNT_OK)
		elog(ERROR, "could not write %lld %s as a decimal", (long long) minor, currency);
	return pstrdup(buf);
}

/* PayPal's value back in minor units; 22023 naming what for a value that is not one. */
static int64
Minor(const char *value, const char *currency, const char *what)
{
	int64_t		minor;

	if (value == NULL || currency == NULL ||
		amount_parse_decimal(value, strlen(value), Exponent(currency), &minor) != AMOUNT_OK || minor < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s \"%s\" is not an amount in %s", what, value ? value : "(none)",
						currency ? currency : "(no currency)")));
	return minor;
}

/* The first element of obj->key when it is an array whose first element is an object, else NULL. */
static Jsonb *
FirstObject(Jsonb *obj, const char *key)
{
	JsonbValue	v;
	JsonbValue *first;

	if (obj == NULL || !JB_ROOT_IS_OBJECT(obj) ||
		getKeyJsonValueFromContainer(&obj->root, key, strlen(key), &v) == NULL ||
		v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data) || JsonContainerIsScalar(v.val.binary.data))
		return NULL;
	first = getIthJsonbValueFromContainer(v.val.binary.data, 0);
	if (first == NULL || first->type != jbvBinary || !JsonContainerIsObject(first->val.binary.data))
		return NULL;
	return JsonbValueToJsonb(first);
}

/* The href of the link with one of the rels in obj->links, else NULL. */
static char *
Link(Jsonb *obj, const char *rel, const char *other_rel)
{
	JsonbValue	v;
	int			n;

	if (obj == NULL || getKeyJsonValueFromContainer(&obj->root, "links", 5, &v) == NULL ||
		v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
		return NULL;
	n = JsonContainerSize(v.val.binary.data);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *link = getIthJsonbValueFromContainer(v.val.binary.data, i);
		Jsonb	   *l;
		char	   *r;

		if (link == NULL || link->type != jbvBinary || !JsonContainerIsObject(link->val.binary.data))
			continue;
		l = JsonbValueToJsonb(link);
		r = JsonbGetText(l, "rel");
		if (r != NULL && (strcmp(r, rel) == 0 || (other_rel && strcmp(r, other_rel) == 0)))
			return JsonbGetText(l, "href");
	}
	return NULL;
}

/* The id PayPal gave the order's latest authorization or capture (kind), else NULL. */
static char *
PaymentId(int64 order_id, const char *kind)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(order_id), CStringGetTextDatum(kind)};
	char	   *id = NULL;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(KeptPlan(&payment_plan,
								  "SELECT psp_id FROM pay.paypal_payments WHERE order_id = $1 AND kind = $2 "
								  "ORDER BY created_at DESC, psp_id LIMIT 1",
								  2, types),
						 values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.paypal_payments");
	if (SPI_processed == 1)
		id = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return id;
}

/* Keep the id of an authorization or capture of the order (readers: SPI connected). */
static void
KeepPayment(int64 order_id, const char *kind, const char *psp_id)
{
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];

	if (psp_id == NULL || psp_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the answer names no %s id", kind)));
	values[0] = Int64GetDatum(order_id);
	values[1] = CStringGetTextDatum(kind);
	values[2] = CStringGetTextDatum(psp_id);
	if (SPI_execute_plan(KeptPlan(&keep_payment_plan,
								  "INSERT INTO pay.paypal_payments (order_id, kind, psp_id) VALUES ($1, $2, $3) "
								  "ON CONFLICT DO NOTHING",
								  3, types),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write pay.paypal_payments");
}

/* --- requests ---------------------------------------------------------------------- */

/* {"currency_code": ..., "value": ...} */
static void
AppendAmount(StringInfo b, int64 minor, const char *currency)
{
	appendStringInfoString(b, "{\"currency_code\":");
	escape_json(b, currency);
	appendStringInfoString(b, ",\"value\":");
	escape_json(b, Value(minor, currency));
	appendStringInfoChar(b, '}');
}

static char *
CreateBody(const ProviderRequest *req, const ProviderOrder *o)
{
	char	   *capture = JsonbGetText(ProviderRowJsonb(req->outbox, "params"), "capture");
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfo(&b, "{\"intent\":\"%s\",\"purchase_units\":[{\"custom_id\":\"%lld\",\"amount\":",
					 capture && strcmp(capture, "manual") == 0 ? "AUTHORIZE" : "CAPTURE", (long long) o->id);
	AppendAmount(&b, o->amount, o->currency);
	appendStringInfoString(&b, "}]}");
	return b.data;
}

/* The PayPal order of the request's order, else 22023 saying what it was needed for. */
static const char *
PaypalOrder(const ProviderOrder *o, const char *what)
{
	if (o->psp_txn_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order %lld has no PayPal order to %s yet", (long long) o->id, what)));
	return o->psp_txn_id;
}

/* The order's authorization or capture, else 22023 (its answer may not be in yet: the row is tried again). */
static char *
RequirePayment(const ProviderOrder *o, const char *kind, const char *what)
{
	char	   *id = PaymentId(o->id, kind);

	if (id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order %lld has no PayPal %s to %s yet", (long long) o->id, kind, what)));
	return id;
}

/* The Authorization header: a Bearer token of the gateway's client credentials. */
static char *
Authorization(const ProviderRequest *req, const char *base)
{
	size_t		id_len,
				secret_len,
				token_len;
	char	   *id = ProviderCredential(req, "client_id", &id_len);
	char	   *secret = ProviderCredential(req, "client_secret", &secret_len);
	char	   *token = OauthTokenGet(ProviderRowText(req->outbox, "destination"),
									  psprintf("%s/v1/oauth2/token", base),
									  id, id_len, secret, secret_len, &token_len);
	char	   *header = psprintf("Authorization: Bearer %s", token);

	SecretScrub(id, id_len);
	SecretScrub(secret, secret_len);
	SecretScrub(token, token_len);
	return header;
}

static Datum
Build(const ProviderRequest *req)
{
	const char *op = req->operation;
	char	   *base = ProviderBaseUrl(req, PAYPAL_API);
	const char *method = "POST";
	char	   *path;
	char	   *body = "{}";
	ProviderOrder o;
	List	   *headers;

	ProviderRequestOrder(req, &o);
	if (strcmp(op, "create_payment") == 0)
	{
		path = "/v2/checkout/orders";
		body = CreateBody(req, &o);
	}
	else if (strcmp(op, "capture_order") == 0)
		path = psprintf("/v2/checkout/orders/%s/capture", PaypalOrder(&o, "capture"));
	else if (strcmp(op, "authorize") == 0)
		path = psprintf("/v2/checkout/orders/%s/authorize", PaypalOrder(&o, "authorize"));
	else if (strcmp(op, "query") == 0)
	{
		method = "GET";
		path = psprintf("/v2/checkout/orders/%s", PaypalOrder(&o, "query"));
	}
	else if (strcmp(op, "capture") == 0)
	{
		char	   *amount = JsonbGetText(ProviderRowJsonb(req->outbox, "params"), "amount");
		StringInfoData b;

		if (amount == NULL || strspn(amount, "0123456789") != strlen(amount) || strlen(amount) < 1 || strlen(amount) > 18)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("params: a capture needs \"amount\", a positive number of minor units")));
		path = psprintf("/v2/payments/authorizations/%s/capture", RequirePayment(&o, "authorization", "capture"));
		/* pay captures once: what it does not take is released (final_capture) */
		initStringInfo(&b);
		appendStringInfoString(&b, "{\"amount\":");
		AppendAmount(&b, pg_strtoint64(amount), o.currency);
		appendStringInfoString(&b, ",\"final_capture\":true}");
		body = b.data;
	}
	else if (strcmp(op, "void") == 0)
		path = psprintf("/v2/payments/authorizations/%s/void", RequirePayment(&o, "authorization", "void"));
	else if (strcmp(op, "refund") == 0)
	{
		ProviderRefund f;
		StringInfoData b;

		ProviderRequestRefund(req, &f);
		path = psprintf("/v2/payments/captures/%s/refund", RequirePayment(&o, "capture", "refund"));
		initStringInfo(&b);
		appendStringInfoString(&b, "{\"amount\":");
		AppendAmount(&b, f.amount, o.currency);
		appendStringInfo(&b, ",\"custom_id\":\"%lld\",\"invoice_id\":\"refund-%lld\"}", (long long) o.id,
						 (long long) f.id);
		body = b.data;
	}
	else if (strcmp(op, "query_refund") == 0)
	{
		ProviderRefund f;

		ProviderRequestRefund(req, &f);
		if (f.psp_refund_id == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("refund %lld has no PayPal refund id to query", (long long) f.id)));
		method = "GET";
		path = psprintf("/v2/payments/refunds/%s", f.psp_refund_id);
	}
	else
		elog(ERROR, "PayPal has no operation \"%s\"", op);

	headers = list_make2(Authorization(req, base), "Accept: application/json");
	if (strcmp(method, "GET") == 0)
		return ProviderHttpRequest(method, psprintf("%s%s", base, path), headers, NULL);
	headers = lappend(headers, "Content-Type: application/json");
	headers = lappend(headers, "Prefer: return=representation");
	headers = lappend(headers, psprintf("PayPal-Request-Id: %s", ProviderRowText(req->outbox, "idempotency_key")));
	return ProviderHttpRequest(method, psprintf("%s%s", base, path), headers, body);
}

/* --- answers ------------------------------------------------------------------------ */

/*
 * A 4xx: PayPal's {"name", "message", "details": [{"issue", "description"}]}
 * (or OAuth's {"error", "error_description"}), read into a final refusal.
 */
static Jsonb *
Refused(const ProviderAnswer *ans)
{
	Jsonb	   *v = ProviderRefusalBody(ans->status, ans->body);
	Jsonb	   *detail = FirstObject(v, "details");
	char	   *issue = JsonbGetText(detail, "issue");
	char	   *description = JsonbGetText(detail, "description");
	char	   *message = JsonbGetText(v, "message");
	char	   *code = issue ? issue : JsonbGetText(v, "name") ? JsonbGetText(v, "name") : JsonbGetText(v, "error");
	char	   *reason;

	if (issue != NULL)
		reason = psprintf("%s: %s", issue, description ? description : message ? message : "");
	else if (message != NULL)
		reason = message;		/* PayPal's, or the body itself when it is not JSON */
	else if (JsonbGetText(v, "error_description") != NULL)
		reason = JsonbGetText(v, "error_description");
	else
		reason = psprintf("HTTP %d", ans->status);
	return ProviderAnswerRefused(true, reason, code, false);
}

/* A PayPal order (create, capture_order, authorize, query) must be for our order and amount. */
static Jsonb *
ExpectOrder(const ProviderAnswer *ans, Jsonb *v)
{
	Jsonb	   *unit = FirstObject(v, "purchase_units");
	Jsonb	   *amount = JsonbGetObject(unit, "amount");
	char	   *currency = ProviderRowText(ans->order, "currency");
	char	   *txn = ProviderRowText(ans->order, "psp_txn_id");

	ProviderExpect("purchase_units[0].custom_id", JsonbGetText(unit, "custom_id"),
				   psprintf("%lld", (long long) ProviderRowInt64(ans->order, "id")), true);
	ProviderExpect("amount currency_code", JsonbGetText(amount, "currency_code"), currency, true);
	ProviderExpect("amount value", JsonbGetText(amount, "value"), Value(ProviderRowInt64(ans->order, "amount"), currency), true);
	if (txn != NULL)
		ProviderExpect("id", JsonbGetText(v, "id"), txn, true);
	return unit;
}

/* A refund (refund, query_refund) as _apply_answer's refund summary. */
static Jsonb *
RefundRead(const ProviderAnswer *ans, Jsonb *v)
{
	static const char *const keys[] = {"psp_refund_id", "status"};
	char	   *status = JsonbGetText(v, "status");
	char	   *values[2];
	char	   *custom = JsonbGetText(v, "custom_id");

	if (custom != NULL)
		ProviderExpect("custom_id", custom, psprintf("%lld", (long long) ProviderRowInt64(ans->order, "id")), true);
	values[0] = JsonbGetText(v, "id");
	values[1] = status == NULL ? NULL :
		strcmp(status, "COMPLETED") == 0 ? "succeeded" :
		(strcmp(status, "FAILED") == 0 || strcmp(status, "CANCELLED") == 0) ? "failed" : NULL;
	return ProviderAnswerApplied(NULL, NULL, NULL, EventBuild(keys, values, 2));
}

/* A capture's status once its money moved (refunds later do not undo the payment). */
static bool
Captured(const char *status)
{
	return status != NULL && (strcmp(status, "COMPLETED") == 0 || strcmp(status, "PARTIALLY_REFUNDED") == 0 ||
							  strcmp(status, "REFUNDED") == 0);
}

/*
 * What a queried order says, as the event a webhook of the same news would
 * be: approved (the approval's webhook was lost), or its capture completed
 * or authorization created; NULL for anything else.
 */
static Jsonb *
QueryEvent(const ProviderAnswer *ans, Jsonb *v, Jsonb *unit)
{
	static const char *const keys[] = {"event_id", "type", "kind", "order_ref", "psp_txn_id", "amount",
	"currency", "complete_with"};
	Jsonb	   *payments = JsonbGetObject(unit, "payments");
	Jsonb	   *capture = FirstObject(payments, "captures");
	Jsonb	   *auth = FirstObject(payments, "authorizations");
	char	   *status = JsonbGetText(v, "status");
	char	   *intent = JsonbGetText(v, "intent");
	Jsonb	   *amount = JsonbGetObject(unit, "amount");
	char	   *values[8];
	int			n = 7;

	values[0] = psprintf("query:%lld", (long long) ProviderRowInt64(ans->request.outbox, "id"));
	values[3] = JsonbGetText(unit, "custom_id");
	values[4] = JsonbGetText(v, "id");
	values[6] = JsonbGetText(amount, "currency_code");
	if (status != NULL && strcmp(status, "APPROVED") == 0)
	{
		values[1] = "CHECKOUT.ORDER.APPROVED";
		values[2] = "approved";
		values[7] = intent && strcmp(intent, "AUTHORIZE") == 0 ? "authorize" : "capture_order";
		n = 8;
	}
	else if (capture != NULL && Captured(JsonbGetText(capture, "status")))
	{
		values[1] = "PAYMENT.CAPTURE.COMPLETED";
		values[2] = "payment_succeeded";
		amount = JsonbGetObject(capture, "amount");
	}
	else if (auth != NULL && JsonbGetText(auth, "status") && strcmp(JsonbGetText(auth, "status"), "CREATED") == 0)
	{
		values[1] = "PAYMENT.AUTHORIZATION.CREATED";
		values[2] = "payment_succeeded";
		amount = JsonbGetObject(auth, "amount");
	}
	else
		return NULL;
	values[5] = psprintf("%lld", (long long) Minor(JsonbGetText(amount, "value"), values[6], "amount value"));
	return EventBuild(keys, values, n);
}

static Jsonb *
Read(const ProviderAnswer *ans)
{
	const char *op = ans->request.operation;
	int64		order_id = ProviderRowInt64(ans->order, "id");
	Jsonb	   *v;

	if (ans->status >= 400)
		return Refused(ans);
	v = ProviderAnswerBody(ans->body);
	if (strcmp(op, "refund") == 0 || strcmp(op, "query_refund") == 0)
		return RefundRead(ans, v);
	if (strcmp(op, "void") == 0)
		return ProviderAnswerApplied(NULL, NULL, NULL, NULL);
	if (strcmp(op, "capture") == 0)
	{
		/* the capture of the authorization: its id, for the refunds */
		KeepPayment(order_id, "capture", JsonbGetText(v, "id"));
		return ProviderAnswerApplied(NULL, NULL, NULL, NULL);
	}
	{
		Jsonb	   *unit = ExpectOrder(ans, v);
		Jsonb	   *payments = JsonbGetObject(unit, "payments");
		Jsonb	   *next_action = NULL;
		Jsonb	   *event = NULL;

		if (strcmp(op, "create_payment") == 0)
		{
			static const char *const keys[] = {"type", "url"};
			char	   *values[2] = {"redirect", Link(v, "approve", "payer-action")};

			if (values[1] != NULL)
				next_action = EventBuild(keys, values, 2);
		}
		else if (strcmp(op, "capture_order") == 0)
			KeepPayment(order_id, "capture", JsonbGetText(FirstObject(payments, "captures"), "id"));
		else if (strcmp(op, "authorize") == 0)
			KeepPayment(order_id, "authorization", JsonbGetText(FirstObject(payments, "authorizations"), "id"));
		else if (strcmp(op, "query") == 0)
			event = QueryEvent(ans, v, unit);
		return ProviderAnswerApplied(JsonbGetText(v, "id"), next_action, event, NULL);
	}
}

/* --- webhooks ----------------------------------------------------------------------- */

/* The webhook id the gateway's webhooks are signed for: options.webhook_id, else the secret. */
static char *
WebhookId(const CallbackGateway *g)
{
	char	   *id = JsonbGetText(g->options, "webhook_id");
	size_t		len;

	if (id != NULL && id[0] != '\0')
		return id;
	return GatewayCredential(g, "webhook_id", &len);
}

/* The transmission time, checked against the gateway's window. */
static void
CheckTransmissionTime(const CallbackGateway *g, const char *when)
{
	int64_t		seconds;
	char		digits[32];

	if (when == NULL || !paypal_transmission_time(when, &seconds) || seconds < 0)
		ereport(ERROR,
				(errcode(ERRCODE_PAY_TIMESTAMP_WINDOW),
				 errmsg("PAYPAL-TRANSMISSION-TIME \"%s\" is not a UTC time", when ? when : "")));
	snprintf(digits, sizeof(digits), "%lld", (long long) seconds);
	CheckWindow(g, CallbackUnixTime(digits, strlen(digits)), false);
}

static void
Verify(const CallbackGateway *g, Jsonb *headers, text *body)
{
	char	   *cert_url = JsonbGetText(headers, "paypal-cert-url");
	char	   *certificate;

	if (JsonbGetText(headers, "paypal-transmission-sig") == NULL || cert_url == NULL ||
		JsonbGetText(headers, "paypal-transmission-id") == NULL)
		CallbackSignatureInvalid("PAYPAL-TRANSMISSION-SIG, -ID or PAYPAL-CERT-URL is missing");
	certificate = PaypalCertificate(cert_url);
	if (body == NULL ||
		!DatumGetBool(DirectFunctionCall4(pay_paypal_signature_valid, JsonbPGetDatum(headers), PointerGetDatum(body),
										  CStringGetTextDatum(WebhookId(g)), CStringGetTextDatum(certificate))))
		CallbackSignatureInvalid("PAYPAL-TRANSMISSION-SIG does not verify");
	CheckTransmissionTime(g, JsonbGetText(headers, "paypal-transmission-time"));
}

/* PayPal's event type as our kind of event. */
static const char *
Kind(const char *type)
{
	static const struct
	{
		const char *type;
		const char *kind;
	}			kinds[] = {
		{"CHECKOUT.ORDER.APPROVED", "approved"},
		{"PAYMENT.AUTHORIZATION.CREATED", "payment_succeeded"},
		{"PAYMENT.CAPTURE.COMPLETED", "payment_succeeded"},
		{"PAYMENT.CAPTURE.DENIED", "payment_failed"},
		{"PAYMENT.AUTHORIZATION.VOIDED", "closed"},
		{"PAYMENT.CAPTURE.REFUNDED", "refunded"},
	};

	for (int i = 0; type != NULL && i < (int) lengthof(kinds); i++)
		if (strcmp(type, kinds[i].type) == 0)
			return kinds[i].kind;
	return "ignored";
}

static Jsonb *
ParseCallback(const CallbackGateway *g, Jsonb *headers, text *body)
{
	static const char *const json[] = {"application/json"};
	static const char *const keys[] = {"event_id", "nonce", "type", "kind", "order_ref", "psp_txn_id",
	"amount", "currency", "complete_with", "refund_id", "refund_total"};
	char	   *values[11] = {0};
	Jsonb	   *event,
			   *resource,
			   *amount;
	char	   *type;
	const char *kind;

	RequireContentType(headers, json, 1);
	Verify(g, headers, body);

	event = DatumGetJsonbP(DirectFunctionCall1(pay_json_body, PointerGetDatum(body)));
	type = JsonbGetText(event, "event_type");
	kind = Kind(type);
	resource = JsonbGetObject(event, "resource");
	values[0] = JsonbGetText(event, "id");
	values[1] = JsonbGetText(headers, "paypal-transmission-id");
	values[2] = type;
	values[3] = (char *) kind;
	if (strcmp(kind, "approved") == 0)
	{
		/* the resource is the PayPal order */
		Jsonb	   *unit = FirstObject(resource, "purchase_units");
		char	   *intent = JsonbGetText(resource, "intent");

		values[4] = JsonbGetText(unit, "custom_id");
		values[5] = JsonbGetText(resource, "id");
		amount = JsonbGetObject(unit, "amount");
		values[8] = intent && strcmp(intent, "AUTHORIZE") == 0 ? "authorize" : "capture_order";
	}
	else
	{
		/* an authorization, a capture or a refund, naming our order in custom_id */
		values[4] = JsonbGetText(resource, "custom_id");
		values[5] = JsonbGetText(JsonbGetObject(JsonbGetObject(resource, "supplementary_data"), "related_ids"),
								 "order_id");
		amount = JsonbGetObject(resource, "amount");
	}
	values[7] = JsonbGetText(amount, "currency_code");
	if (strcmp(kind, "refunded") == 0)
	{
		/* the running total when PayPal gives it: a refund pay asked for is booked already */
		Jsonb	   *total = JsonbGetObject(JsonbGetObject(resource, "seller_payable_breakdown"),
										   "total_refunded_amount");

		values[9] = JsonbGetText(resource, "id");
		if (total != NULL)
			values[10] = psprintf("%lld", (long long) Minor(JsonbGetText(total, "value"), values[7],
															"total_refunded_amount"));
		else
		{
			static const char *const refund_keys[] = {"event_id", "nonce", "type", "kind", "order_ref",
			"psp_txn_id", "refund_amount", "currency", "refund_id"};
			char	   *refund_values[9] = {values[0], values[1], values[2], values[3], values[4], values[5],
				psprintf("%lld", (long long) Minor(JsonbGetText(amount, "value"), values[7], "amount value")),
			values[7], values[9]};

			return EventBuild(refund_keys, refund_values, 9);
		}
	}
	else if (amount != NULL && strcmp(kind, "ignored") != 0)
		values[6] = psprintf("%lld", (long long) Minor(JsonbGetText(amount, "value"), values[7], "amount value"));
	return EventBuild(keys, values, 11);
}

static const ProviderOperation operations[] = {
	{"create_payment", Build, Read},
	{"capture_order", Build, Read},
	{"authorize", Build, Read},
	{"capture", Build, Read},
	{"void", Build, Read},
	{"refund", Build, Read},
	{"query", Build, Read},
	{"query_refund", Build, Read},
};

const Provider paypal_provider = {
	.kind = "paypal",
	.flags = PROVIDER_CALLBACKS | PROVIDER_CREATES_PAYMENTS | PROVIDER_REFUNDS | PROVIDER_MANUAL_CAPTURE,
	.parse_callback = ParseCallback,
	.answer_callback = ProviderAnswerJson,
	.operations = operations,
	.n_operations = lengthof(operations),
	.authorization_validity_s = AUTHORIZATION_VALIDITY_S,
};
