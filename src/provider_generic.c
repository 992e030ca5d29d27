/*
 * provider_generic.c — pay's own generic scheme, for a PSP that speaks it.
 *
 * Callbacks: a JSON object or form body whose sign is the hex HMAC-SHA256,
 * under the gateway's webhook_secret, of the canonical string of the other
 * fields: event_id, out_trade_no (our order id), trade_no, status (paid or
 * success, failed, refunded, closed), amount (minor units), currency,
 * refund_id, refund_amount, timestamp (unix seconds, within the window)
 * and nonce (8 to 64 characters); answered "success" or "fail: <reason>".
 * Fields with an empty (or JSON null) value are left out before anything
 * reads them, as the signed string leaves them out: they are not signed.
 *
 * Requests go to <base_url>/<operation> (so a gateway without base_url
 * creates nothing at its PSP), built here; their answers are read here.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "pay.h"
#include "callback.h"
#include "ct.h"
#include "hmac.h"
#include "provider.h"
#include "secret_store.h"
#include "sign_canonical.h"

#define NONCE_MIN 8
#define NONCE_MAX 64

/* Is this member's value one the signed string leaves out ("" or null)? */
static bool
EmptyValue(const JsonbValue *v)
{
	return v->type == jbvNull || (v->type == jbvString && v->val.string.len == 0);
}

/* The object without its empty members. */
static Jsonb *
DropEmpty(Jsonb *obj)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it = JsonbIteratorInit(&obj->root);
	JsonbValue	key,
				v;
	JsonbIteratorToken tok;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		JsonbIteratorNext(&it, &v, true);
		if (EmptyValue(&v))
			continue;
		pushJsonbValue(&state, WJB_KEY, &key);
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/* The body's fields, by its Content-Type, empty ones left out. */
static Jsonb *
Fields(Jsonb *headers, text *body)
{
	static const char *const allowed[] = {"application/json", "application/x-www-form-urlencoded"};
	char	   *type;

	RequireContentType(headers, allowed, 2);
	type = JsonbGetText(headers, "content-type");
	if (type != NULL && pg_strncasecmp(type, "application/json", strlen("application/json")) == 0)
	{
		if (body == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("callback body is not valid JSON")));
		return DropEmpty(DatumGetJsonbP(DirectFunctionCall1(pay_json_body, PointerGetDatum(body))));
	}
	return body ? FormToJsonb(body, true) : NULL;
}

/* Does sign (hex, any case) verify over the other fields with the webhook secret? */
static bool
SignatureValid(const CallbackGateway *g, Jsonb *fields, const char *sign)
{
	static const char digits[] = "0123456789abcdef";
	Datum		exclude[2] = {CStringGetTextDatum("sign"), CStringGetTextDatum("sign_type")};
	size_t		len = 0,
				canonical_len = 0;
	char	   *secret = GatewayCredential(g, "webhook_secret", &len);
	char	   *canonical;
	uint8_t		mac[HMAC_SHA256_LEN];
	char		hex[2 * HMAC_SHA256_LEN];
	char	   *lower = pstrdup(sign);
	int			rc;

	if (len == 0 || len > HMAC_KEY_MAX)
	{
		SecretScrub(secret, len);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(len == 0 ? "secret must not be empty" : "secret is too long")));
	}
	canonical = CanonicalQueryJsonb(fields, construct_array(exclude, 2, TEXTOID, -1, false, TYPALIGN_INT),
									&canonical_len);
	rc = hmac_sha256((const uint8_t *) secret, len, (const uint8_t *) canonical, canonical_len, mac);
	SecretScrub(secret, len);
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute HMAC-SHA256")));
	for (int i = 0; i < HMAC_SHA256_LEN; i++)
	{
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 0x0f];
	}
	for (char *c = lower; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = *c - 'A' + 'a';
	return ct_equal_str(hex, sizeof(hex), lower, strlen(lower)) != 0;
}

/* status as our kind of event */
static const char *
Kind(const char *status)
{
	if (status == NULL)
		return "ignored";
	if (strcmp(status, "success") == 0 || strcmp(status, "paid") == 0)
		return "payment_succeeded";
	if (strcmp(status, "failed") == 0)
		return "payment_failed";
	if (strcmp(status, "refunded") == 0)
		return "refunded";
	if (strcmp(status, "closed") == 0)
		return "closed";
	return "ignored";
}

static Jsonb *
ParseCallback(const CallbackGateway *g, Jsonb *headers, text *body)
{
	static const char *const keys[] = {"event_id", "nonce", "type", "kind", "order_ref", "psp_txn_id",
	"amount", "currency", "refund_id", "refund_amount"};
	Jsonb	   *p = Fields(headers, body);
	char	   *sign = JsonbGetText(p, "sign");
	char	   *timestamp,
			   *nonce,
			   *status;
	char	   *values[10];

	if (sign == NULL || !SignatureValid(g, p, sign))
		CallbackSignatureInvalid("sign does not verify");
	timestamp = JsonbGetText(p, "timestamp");
	CheckWindow(g, CallbackUnixTime(timestamp, timestamp ? strlen(timestamp) : 0), false);
	nonce = JsonbGetText(p, "nonce");
	if (nonce == NULL || pg_mbstrlen(nonce) < NONCE_MIN || pg_mbstrlen(nonce) > NONCE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PAY_NONCE_REUSED),
				 errmsg("nonce must be 8 to 64 characters")));
	status = JsonbGetText(p, "status");
	values[0] = JsonbGetText(p, "event_id");
	values[1] = nonce;
	values[2] = status;
	values[3] = (char *) Kind(status);
	values[4] = JsonbGetText(p, "out_trade_no");
	values[5] = JsonbGetText(p, "trade_no");
	values[6] = JsonbGetText(p, "amount");
	values[7] = JsonbGetText(p, "currency");
	values[8] = JsonbGetText(p, "refund_id");
	values[9] = JsonbGetText(p, "refund_amount");
	return EventBuild(keys, values, 10);
}

static void
AnswerCallback(bool verified, const char *reason, const char **type, char **body)
{
	*type = "text/plain; charset=utf-8";
	*body = verified ? "success" : psprintf("fail: %s", reason);
}

/*
 * Requests: POST <base_url>/<operation> with a JSON body (the order, its
 * transaction id and the idempotency key; a refund's refund_amount;
 * overlaid by params) and the key
 * in the Idempotency-Key header; Bearer api_key when options.auth is
 * "bearer".
 */

/*
 * The request body: amounts JSON numbers, the rest strings; params last, so
 * they win.  amount is the order's; a refund (and its query) also names
 * refund_amount, the refund's own amount, without which a PSP could only
 * refund the whole order.
 */
static char *
Body(const ProviderRequest *req, const ProviderOrder *o, const char *idempotency_key)
{
	JsonbParseState *state = NULL;
	Jsonb	   *body;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "order_id", psprintf("%lld", (long long) o->id));
	ProviderPushInt64(&state, "amount", o->amount);
	ProviderPushText(&state, "currency", o->currency);
	ProviderPushText(&state, "psp_txn_id", o->psp_txn_id);
	ProviderPushText(&state, "idempotency_key", idempotency_key);
	if (strcmp(req->operation, "refund") == 0 || strcmp(req->operation, "query_refund") == 0)
	{
		ProviderRefund f;

		ProviderRequestRefund(req, &f);
		ProviderPushInt64(&state, "refund_amount", f.amount);
	}
	body = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
	body = ProviderJsonbConcat(body, ProviderRowJsonb(req->outbox, "params"));
	return JsonbToCString(NULL, &body->root, VARSIZE(body));
}

static Datum
Build(const ProviderRequest *req)
{
	char	   *base = ProviderRowText(req->gateway, "base_url");
	char	   *key = ProviderRowText(req->outbox, "idempotency_key");
	char	   *auth = JsonbGetText(ProviderRowJsonb(req->gateway, "options"), "auth");
	List	   *headers;
	ProviderOrder o;
	int			base_len;

	ProviderRequestOrder(req, &o);
	if (base == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("gateway \"%s\" has no base_url", ProviderRowText(req->gateway, "name"))));
	headers = list_make2("Content-Type: application/json", psprintf("Idempotency-Key: %s", key));
	if (auth != NULL && strcmp(auth, "bearer") == 0)
	{
		size_t		len;
		char	   *api_key = ProviderCredential(req, "api_key", &len);

		headers = lappend(headers, psprintf("Authorization: Bearer %s", api_key));
		SecretScrub(api_key, len);
	}
	for (base_len = strlen(base); base_len > 0 && base[base_len - 1] == '/'; base_len--)
		;
	return ProviderHttpRequest("POST", psprintf("%.*s/%s", base_len, base, req->operation), headers,
							   Body(req, &o, key));
}

/*
 * Answers: JSON naming order_id, psp_txn_id, status (the callback's words:
 * paid, failed, closed; refunds: succeeded, failed), amount, currency,
 * next_action; errors {"message": ...}.  Unsigned: the TLS connection and
 * our key authenticate them.  A member the answer leaves out is not
 * checked.
 */

static Jsonb *
Refused(const ProviderAnswer *ans)
{
	Jsonb	   *v = ProviderRefusalBody(ans->status, ans->body);
	char	   *reason = JsonbGetText(v, "message");
	char	   *code = JsonbGetText(v, "code");
	int			already_paid = 0;

	if (reason == NULL)
		reason = JsonbGetText(v, "error");
	if (reason == NULL)
		reason = psprintf("HTTP %d", ans->status);
	/* a close of a payment the buyer made meanwhile */
	if (strcmp(ans->request.operation, "close") == 0)
		already_paid = code == NULL ? -1 : strcmp(code, "already_paid") == 0;
	return ProviderAnswerRefused(1, reason, code, already_paid);
}

static Jsonb *
RefundRead(const ProviderAnswer *ans, Jsonb *v)
{
	char	   *status = JsonbGetText(v, "status");
	const char *ours = NULL;

	ProviderExpect("refund_id", JsonbGetText(v, "refund_id"),
				   JsonbGetText(ProviderRowJsonb(ans->request.outbox, "params"), "refund_id"), false);
	if (status != NULL && (strcmp(status, "succeeded") == 0 || strcmp(status, "refunded") == 0))
		ours = "succeeded";
	else if (status != NULL && strcmp(status, "failed") == 0)
		ours = "failed";
	return ProviderAnswerApplied(NULL, NULL, NULL, ProviderRefundSummary(JsonbGetText(v, "psp_refund_id"), ours));
}

/* status as a query's kind of event, NULL when it is none (still waiting) */
static const char *
QueryKind(const char *status)
{
	if (status == NULL)
		return NULL;
	if (strcmp(status, "paid") == 0 || strcmp(status, "success") == 0)
		return "payment_succeeded";
	if (strcmp(status, "failed") == 0)
		return "payment_failed";
	if (strcmp(status, "closed") == 0)
		return "closed";
	return NULL;
}

static Jsonb *
Read(const ProviderAnswer *ans)
{
	static const char *const keys[] = {"event_id", "type", "kind", "order_ref", "psp_txn_id", "amount", "currency"};
	const char *op = ans->request.operation;
	char	   *order_id = psprintf("%lld", (long long) ProviderRowInt64(ans->order, "id"));
	char	   *order_amount = psprintf("%lld", (long long) ProviderRowInt64(ans->order, "amount"));
	Jsonb	   *v;
	char	   *status,
			   *amount;
	const char *kind;
	Jsonb	   *event = NULL;

	if (ans->status >= 400)
		return Refused(ans);
	v = ProviderAnswerBody(ans->body);
	ProviderExpect("order_id", JsonbGetText(v, "order_id"), order_id, false);
	if (strcmp(op, "refund") == 0 || strcmp(op, "query_refund") == 0)
		return RefundRead(ans, v);
	amount = JsonbGetText(v, "amount");
	ProviderExpect("amount", amount, order_amount, false);
	status = JsonbGetText(v, "status");
	kind = QueryKind(status);
	if (strcmp(op, "query") == 0 && kind != NULL)
	{
		char	   *values[7] = {ProviderQueryEventId(ans), status, (char *) kind, order_id,
		JsonbGetText(v, "psp_txn_id"), amount ? amount : order_amount, JsonbGetText(v, "currency")};

		event = EventBuild(keys, values, 7);
	}
	return ProviderAnswerApplied(JsonbGetText(v, "psp_txn_id"), JsonbGetObject(v, "next_action"), event, NULL);
}

static const ProviderOperation operations[] = {
	{"create_payment", Build, Read},
	{"query", Build, Read},
	{"refund", Build, Read},
	{"query_refund", Build, Read},
	{"close", Build, Read},
};

const Provider generic_provider = {
	.kind = "generic",
	.flags = PROVIDER_CALLBACKS | PROVIDER_CREATES_PAYMENTS | PROVIDER_NEEDS_BASE_URL | PROVIDER_REFUNDS,
	.parse_callback = ParseCallback,
	.answer_callback = AnswerCallback,
	.operations = operations,
	.n_operations = lengthof(operations),
};
