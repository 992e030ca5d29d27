/*
 * provider_adyen.c — Adyen (Checkout API v71: payments, captures, cancels,
 * refunds) and its standard notifications.
 *
 * Requests: JSON bodies, the gateway's secret api_key as X-API-Key, the
 * outbox row's idempotency key as Idempotency-Key (Adyen replays the first
 * answer to a repeat), the gateway option merchant_account, amounts as
 * {"value": minor units, "currency"}, and reference = our order id (also
 * on modifications, so that their notifications name the order).
 * create_payment is POST /v71/payments with the gateway option
 * payment_method (a JSON object; {"type": "scheme"} when unset) and
 * return_url, and additionalData.manualCapture "true" for a manual-capture
 * order (Adyen's per-payment switch; captureDelayHours would capture by
 * itself later).  capture, void and refund are POST
 * /v71/payments/{pspReference}/captures, /cancels, /refunds.  params.extra
 * is merged into the body.  Adyen's Checkout API has no payment status
 * query: Adyen lists no "query" operation, and the janitor and the expiry
 * close leave Adyen gateways alone (their kind lists, 82_*.sql); the
 * notifications, which Adyen retries until they are accepted, are the
 * outcome.
 *
 * Answers: the payment's pspReference is the order's psp_txn_id; an action
 * of type redirect becomes next_action {"type": "redirect", "url"};
 * resultCode Refused, Error or Cancelled, and any 4xx, refuse the request
 * with Adyen's refusalReason (or message).  A modification answers 201
 * "received" only: its outcome comes by notification, so the summary says
 * received, and a refund's pspReference is kept as its psp_refund_id.
 *
 * Notifications: {"live", "notificationItems": [{"NotificationRequestItem":
 * {...}}]}, each item signed on its own (additionalData.hmacSignature,
 * pay.adyen_hmac_valid's code, under the gateway's secret hmac_key).  The
 * parser verifies every item before it reads any: one bad signature
 * refuses the whole request (PY010), nothing of it is applied, and Adyen
 * sends the batch again.  It returns the items' events as a JSON array
 * (callback_handle.c applies them in order, each deduplicated by its own
 * event id, pspReference:eventCode:success).  The answer to an accepted
 * batch is the body Adyen waits for, [accepted].
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "pay.h"
#include "callback.h"
#include "provider.h"
#include "secret_store.h"

extern Datum pay_adyen_hmac_valid(PG_FUNCTION_ARGS);

/* Adyen's test endpoint; a live gateway's base_url is its account's live prefix URL */
#define DEFAULT_URL "https://checkout-test.adyen.com"
#define API "/v71"

/*
 * Adyen keeps most card authorizations capturable for 28 days (Visa and
 * Mastercard among them; a few schemes and local methods less): the window
 * of an Adyen gateway unless its authorization_days option says less.
 */
#define AUTHORIZATION_VALIDITY_S (28 * 24 * 3600)

/* ---------------------------------------------------------------- notifications */

/* The NotificationRequestItem of element i of the items array, else NULL at the end. */
static Jsonb *
NotificationItem(JsonbContainer *items, int i)
{
	JsonbValue *elem = getIthJsonbValueFromContainer(items, i);
	Jsonb	   *wrapper;
	Jsonb	   *item;

	if (elem == NULL)
		return NULL;
	wrapper = elem->type == jbvBinary && JsonContainerIsObject(elem->val.binary.data) ?
		JsonbValueToJsonb(elem) : NULL;
	item = JsonbGetObject(wrapper, "NotificationRequestItem");
	if (item == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("notificationItems[%d] has no NotificationRequestItem object", i)));
	return item;
}

/* The notificationItems array of the body, else 22023. */
static JsonbContainer *
Items(Jsonb *body)
{
	JsonbValue	v;

	if (getKeyJsonValueFromContainer(&body->root, "notificationItems", strlen("notificationItems"), &v) == NULL ||
		v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data) ||
		JsonContainerSize(v.val.binary.data) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("notificationItems must be a non-empty JSON array")));
	return v.val.binary.data;
}

/* Does the item's hmacSignature verify under the hex key?  (pay.adyen_hmac_valid) */
static bool
ItemSigned(Jsonb *item, text *key)
{
	return DatumGetBool(DirectFunctionCall2(pay_adyen_hmac_valid, JsonbPGetDatum(item), PointerGetDatum(key)));
}

/*
 * Our kind of event for an item's eventCode and success: a capture's and a
 * cancel's success are the shared payment_captured and closed events
 * (callback_apply.c), their failures and a refund's outcome
 * event_modification.c's.
 */
static const char *
Kind(const char *code, bool success)
{
	if (code == NULL)
		return "ignored";
	if (strcmp(code, "AUTHORISATION") == 0)
		return success ? "payment_succeeded" : "payment_failed";
	if (strcmp(code, "CAPTURE") == 0)
		return success ? "payment_captured" : "capture_failed";
	if (strcmp(code, "CANCELLATION") == 0)
		return success ? "closed" : "cancel_failed";
	if (strcmp(code, "REFUND") == 0)
		return success ? "refund_succeeded" : "refund_failed";
	/* a refund that bounced back, or one Adyen could not make after all */
	if (strcmp(code, "REFUND_FAILED") == 0 || strcmp(code, "REFUNDED_REVERSED") == 0)
		return success ? "refund_failed" : "ignored";
	return "ignored";
}

/* One verified item as our event (85_callbacks.sql, event_apply.h for the modification kinds). */
static Jsonb *
ItemEvent(const CallbackGateway *g, Jsonb *item)
{
	static const char *const keys[] = {"event_id", "type", "kind", "order_ref", "psp_txn_id", "amount",
	"currency", "refund_id", "refund_amount", "reason"};
	char	   *psp = JsonbGetText(item, "pspReference");
	char	   *original = JsonbGetText(item, "originalReference");
	char	   *code = JsonbGetText(item, "eventCode");
	char	   *success = JsonbGetText(item, "success");
	char	   *account = JsonbGetText(item, "merchantAccountCode");
	char	   *ours = JsonbGetText(g->options, "merchant_account");
	Jsonb	   *amount = JsonbGetObject(item, "amount");
	bool		ok = success != NULL && strcmp(success, "true") == 0;
	char	   *values[10];

	if (psp == NULL || code == NULL || success == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a NotificationRequestItem needs pspReference, eventCode and success")));
	/* Adyen's own deduplication key: a retry repeats all three */
	values[0] = psprintf("%s:%s:%s", psp, code, success);
	values[1] = code;
	values[2] = (char *) Kind(code, ok);
	/* a company-level webhook also carries other merchant accounts' items: not ours */
	if (ours != NULL && (account == NULL || strcmp(account, ours) != 0))
	{
		values[1] = psprintf("%s (merchant account %s)", code, account ? account : "none");
		values[2] = "ignored";
	}
	values[3] = JsonbGetText(item, "merchantReference");
	/* the payment: a modification names it as originalReference */
	values[4] = original ? original : psp;
	values[5] = JsonbGetText(amount, "value");
	values[6] = JsonbGetText(amount, "currency");
	values[7] = psp;
	values[8] = values[5];
	values[9] = JsonbGetText(item, "reason");
	return EventBuild(keys, values, lengthof(keys));
}

/*
 * Every item verified first, then each read into its event: a batch is
 * applied whole or not at all.
 */
static Jsonb *
ParseCallback(const CallbackGateway *g, Jsonb *headers, text *body)
{
	static const char *const json[] = {"application/json"};
	Jsonb	   *notification;
	JsonbContainer *items;
	size_t		len = 0;
	char	   *secret;
	text	   *key;
	Jsonb	   *item;
	volatile int bad = -1;
	JsonbParseState *state = NULL;
	JsonbValue	v;

	RequireContentType(headers, json, 1);
	notification = DatumGetJsonbP(DirectFunctionCall1(pay_json_body, PointerGetDatum(body)));
	items = Items(notification);

	secret = GatewayCredential(g, "hmac_key", &len);
	key = cstring_to_text_with_len(secret, len);
	SecretScrub(secret, len);
	PG_TRY();
	{
		for (int i = 0; bad < 0 && (item = NotificationItem(items, i)) != NULL; i++)
			if (!ItemSigned(item, key))
				bad = i;
	}
	PG_FINALLY();
	{
		explicit_bzero(VARDATA(key), len);
	}
	PG_END_TRY();
	if (bad >= 0)
		CallbackSignatureInvalid(psprintf("the hmacSignature of notificationItems[%d] does not verify", bad));

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; (item = NotificationItem(items, i)) != NULL; i++)
	{
		Jsonb	   *e = ItemEvent(g, item);

		v.type = jbvBinary;
		v.val.binary.data = &e->root;
		v.val.binary.len = VARSIZE(e) - VARHDRSZ;
		pushJsonbValue(&state, WJB_ELEM, &v);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL));
}

/* Adyen counts a delivery only when the answer is a 2xx with the body [accepted]. */
static void
AnswerCallback(bool verified, const char *reason, const char **type, char **body)
{
	*type = "text/plain";
	*body = verified ? "[accepted]" : psprintf("[rejected] %s", reason);
}

/* ---------------------------------------------------------------- requests */

/* The payment's pspReference a modification names in its path, else 22023. */
static char *
PaymentReference(const ProviderRequest *req, const ProviderOrder *o)
{
	char	   *psp = JsonbGetText(ProviderRowJsonb(req->outbox, "params"), "psp_txn_id");

	if (psp == NULL)
		psp = o->psp_txn_id;
	if (psp == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order %lld has no Adyen pspReference to %s", (long long) o->id, req->operation)));
	/* it goes into the URL's path */
	if (strlen(psp) > 64 || strspn(psp, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != strlen(psp))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("psp_txn_id: \"%s\" is not an Adyen pspReference", psp)));
	return psp;
}

/* "amount": {"currency": ..., "value": ...} */
static void
PushAmount(JsonbParseState **state, const char *currency, int64 value)
{
	ProviderPushObject(state, "amount");
	ProviderPushText(state, "currency", currency);
	ProviderPushInt64(state, "value", value);
	pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

/* The body of a create_payment: POST /payments. */
static void
PaymentBody(JsonbParseState **state, const ProviderRequest *req, const ProviderOrder *o)
{
	Jsonb	   *options = ProviderRowJsonb(req->gateway, "options");
	Jsonb	   *method = JsonbGetObject(options, "payment_method");
	char	   *return_url = JsonbGetText(options, "return_url");
	char	   *capture = JsonbGetText(ProviderRowJsonb(req->outbox, "params"), "capture");

	PushAmount(state, o->currency, o->amount);
	if (method != NULL)
		ProviderPushJsonb(state, "paymentMethod", method);
	else
	{
		ProviderPushObject(state, "paymentMethod");
		ProviderPushText(state, "type", "scheme");
		pushJsonbValue(state, WJB_END_OBJECT, NULL);
	}
	if (return_url != NULL)
		ProviderPushText(state, "returnUrl", return_url);
	if (capture != NULL && strcmp(capture, "manual") == 0)
	{
		/* authorize only: pay.capture or pay.void finishes it */
		ProviderPushObject(state, "additionalData");
		ProviderPushText(state, "manualCapture", "true");
		pushJsonbValue(state, WJB_END_OBJECT, NULL);
	}
}

static Datum
Build(const ProviderRequest *req)
{
	Jsonb	   *params = ProviderRowJsonb(req->outbox, "params");
	char	   *merchant = ProviderGatewayOption(req, "merchant_account");
	char	   *base = ProviderBaseUrl(req, DEFAULT_URL);
	char	   *path;
	ProviderOrder o;
	JsonbParseState *state = NULL;
	Jsonb	   *body;
	char	   *key;
	size_t		key_len;
	List	   *headers;

	ProviderRequestOrder(req, &o);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "merchantAccount", merchant);
	ProviderPushText(&state, "reference", psprintf("%lld", (long long) o.id));
	if (strcmp(req->operation, "create_payment") == 0)
	{
		path = API "/payments";
		PaymentBody(&state, req, &o);
	}
	else if (strcmp(req->operation, "capture") == 0)
	{
		char	   *amount = JsonbGetText(params, "amount");

		/* enqueue_psp_request admits a positive whole number of 1 to 18 digits only */
		path = psprintf(API "/payments/%s/captures", PaymentReference(req, &o));
		PushAmount(&state, o.currency, amount ? pg_strtoint64(amount) : o.amount);
	}
	else if (strcmp(req->operation, "void") == 0)
		path = psprintf(API "/payments/%s/cancels", PaymentReference(req, &o));
	else if (strcmp(req->operation, "refund") == 0)
	{
		ProviderRefund f;

		ProviderRequestRefund(req, &f);
		path = psprintf(API "/payments/%s/refunds", PaymentReference(req, &o));
		PushAmount(&state, o.currency, f.amount);
	}
	else
		elog(ERROR, "Adyen has no operation \"%s\"", req->operation);
	body = ProviderJsonbConcat(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)),
							   JsonbGetObject(params, "extra"));

	key = ProviderCredential(req, "api_key", &key_len);
	headers = list_make3(psprintf("X-API-Key: %s", key),
						 psprintf("Idempotency-Key: %s", ProviderRowText(req->outbox, "idempotency_key")),
						 "Content-Type: application/json");
	SecretScrub(key, key_len);
	return ProviderHttpRequest("POST", psprintf("%s%s", base, path), headers,
							   JsonbToCString(NULL, &body->root, VARSIZE(body)));
}

/* ---------------------------------------------------------------- answers */

/* The buyer's next step from the answer's action: a redirect, else none. */
static Jsonb *
NextAction(Jsonb *v)
{
	static const char *const keys[] = {"type", "url"};
	Jsonb	   *action = JsonbGetObject(v, "action");
	char	   *type = JsonbGetText(action, "type");
	char	   *values[2] = {"redirect", JsonbGetText(action, "url")};

	if (type == NULL || strcmp(type, "redirect") != 0 || values[1] == NULL)
		return NULL;
	return EventBuild(keys, values, 2);
}

static Jsonb *
PaymentRead(const ProviderAnswer *ans, Jsonb *v)
{
	char	   *result = JsonbGetText(v, "resultCode");
	Jsonb	   *amount = JsonbGetObject(v, "amount");

	ProviderExpect("merchantReference", JsonbGetText(v, "merchantReference"),
				   psprintf("%lld", (long long) ProviderRowInt64(ans->order, "id")), true);
	ProviderExpect("amount.value", JsonbGetText(amount, "value"),
				   psprintf("%lld", (long long) ProviderRowInt64(ans->order, "amount")), false);
	ProviderExpect("amount.currency", JsonbGetText(amount, "currency"), ProviderRowText(ans->order, "currency"), false);
	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the answer has no resultCode")));
	if (strcmp(result, "Refused") == 0 || strcmp(result, "Error") == 0 || strcmp(result, "Cancelled") == 0)
	{
		char	   *reason = JsonbGetText(v, "refusalReason");

		return ProviderAnswerRefused(1, reason ? reason : result, JsonbGetText(v, "refusalReasonCode"), 0);
	}
	return ProviderAnswerApplied(JsonbGetText(v, "pspReference"), NextAction(v), NULL, NULL);
}

/* A modification's 201: received, about the payment we named; its outcome comes by notification. */
static Jsonb *
ModificationRead(const ProviderAnswer *ans, Jsonb *v)
{
	char	   *ours = JsonbGetText(ProviderRowJsonb(ans->request.outbox, "params"), "psp_txn_id");
	Jsonb	   *summary;
	JsonbParseState *state = NULL;

	if (ours == NULL)
		ours = ProviderRowText(ans->order, "psp_txn_id");
	ProviderExpect("paymentPspReference", JsonbGetText(v, "paymentPspReference"), ours, true);
	ProviderExpect("status", JsonbGetText(v, "status"), "received", true);
	summary = ProviderAnswerApplied(NULL, NULL, NULL,
									strcmp(ans->request.operation, "refund") == 0 ?
									ProviderRefundSummary(JsonbGetText(v, "pspReference"), NULL) : NULL);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushBool(&state, "received", 1);
	return ProviderJsonbConcat(summary, JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}

static Jsonb *
Read(const ProviderAnswer *ans)
{
	Jsonb	   *v;

	if (ans->status >= 400)
	{
		char	   *reason;

		v = ProviderRefusalBody(ans->status, ans->body);
		reason = JsonbGetText(v, "message");
		return ProviderAnswerRefused(1, reason ? reason : psprintf("HTTP %d", ans->status),
									 JsonbGetText(v, "errorCode"), 0);
	}
	v = ProviderAnswerBody(ans->body);
	if (strcmp(ans->request.operation, "create_payment") == 0)
		return PaymentRead(ans, v);
	return ModificationRead(ans, v);
}

static const ProviderOperation operations[] = {
	{"create_payment", Build, Read},
	{"capture", Build, Read},
	{"void", Build, Read},
	{"refund", Build, Read},
};

const Provider adyen_provider = {
	.kind = "adyen",
	.flags = PROVIDER_CALLBACKS | PROVIDER_CREATES_PAYMENTS | PROVIDER_REFUNDS | PROVIDER_MANUAL_CAPTURE,
	.parse_callback = ParseCallback,
	.answer_callback = AnswerCallback,
	.operations = operations,
	.n_operations = lengthof(operations),
	.authorization_validity_s = AUTHORIZATION_VALIDITY_S,
};
