/*
 * provider_alipay.c — Alipay (openapi gateway).
 *
 * Callbacks: an asynchronous notify, verified and normalised: a form-encoded body whose sign is RSA2 (SHA256withRSA) over
 * the canonical string of the other parameters but sign and sign_type,
 * verified with Alipay's public key; notify_time (Beijing time, no zone)
 * against the gateway's window; amounts stay major-unit decimal strings
 * (amount_major) for callback_apply.c to convert with the currency's
 * exponent.
 *
 * Parameters with an empty value are left out before anything reads them,
 * as the signed string leaves them out: they are not signed, so anyone
 * could add them.  The currency is trans_currency (the currency the trade
 * was priced in, which total_amount is in), else currency; a notify that
 * names neither is CNY, as Alipay omits it for a trade in yuan.
 *
 * Requests (RSA2-signed openapi calls): built here.  Their answers:
 * _answer_alipay.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pay.h"
#include "alipay_notify.h"
#include "callback.h"
#include "provider.h"
#include "secret_store.h"
#include "sign_canonical.h"
#include "sign_rsa.h"

/* What a notify without trans_currency (or currency) is in. */
#define ALIPAY_DEFAULT_CURRENCY "CNY"

/* Does sign verify over the other parameters but sign_type with Alipay's public key? */
static bool
SignatureValid(const CallbackGateway *g, Jsonb *params, const char *sign)
{
	Datum		exclude[2] = {CStringGetTextDatum("sign"), CStringGetTextDatum("sign_type")};
	size_t		len = 0,
				canonical_len = 0;
	char	   *pem = GatewayCredential(g, "public_key", &len);
	text	   *pem_text = cstring_to_text_with_len(pem, len);
	PkeyRsa    *key;
	char	   *canonical;

	SecretScrub(pem, len);
	key = SignRsaPublicKey(pem_text, "public_key_pem");
	explicit_bzero(VARDATA(pem_text), len);
	canonical = CanonicalQueryJsonb(params, construct_array(exclude, 2, TEXTOID, -1, false, TYPALIGN_INT),
									&canonical_len);
	return SignRsaVerifyBase64(key, canonical, canonical_len, sign, strlen(sign));
}

/* notify_time (Beijing time) checked against the window */
static void
CheckNotifyTime(const CallbackGateway *g, const char *notify_time)
{
	Datum		local;

	if (notify_time == NULL)
	{
		CheckWindow(g, 0, true);
		return;
	}
	if (!alipay_notify_time_well_formed(notify_time, strlen(notify_time)))
		ereport(ERROR,
				(errcode(ERRCODE_PAY_TIMESTAMP_WINDOW),
				 errmsg("Alipay notify_time \"%s\" is malformed", notify_time)));
	local = DirectFunctionCall3(timestamp_in, CStringGetDatum(notify_time),
								ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	CheckWindow(g, DatumGetTimestampTz(DirectFunctionCall2(timestamp_zone,
														   CStringGetTextDatum("Asia/Shanghai"), local)),
				false);
}

/* trade_status (and a refund_fee) as our kind of event */
static const char *
Kind(const char *status, bool refund)
{
	bool		success = status && strcmp(status, "TRADE_SUCCESS") == 0;
	bool		closed = status && strcmp(status, "TRADE_CLOSED") == 0;

	if (refund && (success || closed))
		return "refunded";
	if (success || (status && strcmp(status, "TRADE_FINISHED") == 0))
		return "payment_succeeded";
	if (closed)
		return "closed";
	return "ignored";
}

/* The currency total_amount and refund_fee are in. */
static char *
Currency(Jsonb *params)
{
	char	   *currency = JsonbGetText(params, "trans_currency");

	if (currency == NULL)
		currency = JsonbGetText(params, "currency");
	return currency ? currency : ALIPAY_DEFAULT_CURRENCY;
}

static Jsonb *
ParseCallback(const CallbackGateway *g, Jsonb *headers, text *body)
{
	static const char *const form[] = {"application/x-www-form-urlencoded"};
	static const char *const keys[] = {"event_id", "type", "kind", "order_ref", "psp_txn_id",
	"amount_major", "currency", "refund_total_major", "refund_id"};
	Jsonb	   *p;
	char	   *sign,
			   *status,
			   *refund_fee;
	char	   *values[9];

	RequireContentType(headers, form, 1);
	p = body ? FormToJsonb(body, true) : NULL;
	sign = JsonbGetText(p, "sign");
	if (sign == NULL)
		CallbackSignatureInvalid("Alipay notify has no sign");
	if (!SignatureValid(g, p, sign))
		CallbackSignatureInvalid("Alipay sign does not verify");
	CheckNotifyTime(g, JsonbGetText(p, "notify_time"));

	status = JsonbGetText(p, "trade_status");
	refund_fee = JsonbGetText(p, "refund_fee");
	values[0] = JsonbGetText(p, "notify_id");
	values[1] = status ? status : JsonbGetText(p, "notify_type");
	values[2] = (char *) Kind(status, refund_fee != NULL);
	values[3] = JsonbGetText(p, "out_trade_no");
	values[4] = JsonbGetText(p, "trade_no");
	values[5] = JsonbGetText(p, "total_amount");
	values[6] = Currency(p);
	values[7] = refund_fee;
	values[8] = values[0];
	return EventBuild(keys, values, 9);
}

/* Alipay expects the bare word. */
static void
AnswerCallback(bool verified, const char *reason, const char **type, char **body)
{
	*type = "text/plain; charset=utf-8";
	*body = verified ? "success" : "fail";
}

/*
 * Requests: openapi calls, common parameters with biz_content as JSON,
 * RSA2-signed with the merchant's private key (pay.alipay_sign's).
 * Idempotency: out_trade_no is the order id, out_request_no the refund id.
 */

extern Datum pay_alipay_sign(PG_FUNCTION_ARGS);

static SPIPlanPtr format_plan = NULL;

/*
 * The order's and the refund's amounts as major-unit decimals (the
 * currency's exponent) and Alipay's timestamp, Beijing time, now.
 */
static void
Formatted(const ProviderOrder *o, int64 refund_amount, char **amount, char **refunded, char **timestamp)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			types[3] = {INT8OID, TEXTOID, INT8OID};
	Datum		values[3] = {Int64GetDatum(o->amount), CStringGetTextDatum(o->currency),
	Int64GetDatum(refund_amount)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(KeptPlan(&format_plan,
								  "SELECT pay.format_amount($1, $2), pay.format_amount($3, $2), "
								  "pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'Asia/Shanghai', "
								  "'YYYY-MM-DD HH24:MI:SS')", 3, types),
						 values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not format an Alipay request");
	*amount = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	*refunded = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	*timestamp = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3));
	SPI_finish();
}

/* The gateway's address: base_url when it names the .do endpoint, else <base_url>/gateway.do. */
static char *
GatewayUrl(const ProviderRequest *req)
{
	char	   *base = ProviderRowText(req->gateway, "base_url");
	size_t		len = base ? strlen(base) : 0;

	if (base == NULL)
		return "https://openapi.alipay.com/gateway.do";
	if (len >= 3 && strcmp(base + len - 3, ".do") == 0)
		return base;
	return psprintf("%s/gateway.do", ProviderBaseUrl(req, ""));
}

/* The signed form of one API method with biz_content biz. */
static char *
SignedForm(const ProviderRequest *req, const char *api_method, Jsonb *biz, const char *timestamp)
{
	JsonbParseState *state = NULL;
	Jsonb	   *params;
	char	   *notify_url = NULL;
	Datum		exclude[1] = {CStringGetTextDatum("sign")};
	size_t		len;
	char	   *pem;
	text	   *pem_text;
	Datum		sign;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "app_id", ProviderGatewayOption(req, "app_id"));
	ProviderPushText(&state, "method", api_method);
	ProviderPushText(&state, "format", "JSON");
	ProviderPushText(&state, "charset", "utf-8");
	ProviderPushText(&state, "sign_type", "RSA2");
	ProviderPushText(&state, "version", "1.0");
	ProviderPushText(&state, "timestamp", timestamp);
	ProviderPushText(&state, "biz_content", JsonbToCString(NULL, &biz->root, VARSIZE(biz)));
	/* where Alipay sends the payment's notify */
	if (strcmp(req->operation, "create_payment") == 0 &&
		JsonbGetText(ProviderRowJsonb(req->gateway, "options"), "notify_url") != NULL)
		notify_url = JsonbGetText(ProviderRowJsonb(req->gateway, "options"), "notify_url");
	if (notify_url != NULL)
		ProviderPushText(&state, "notify_url", notify_url);
	params = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));

	pem = ProviderCredential(req, "private_key", &len);
	pem_text = cstring_to_text_with_len(pem, len);
	SecretScrub(pem, len);
	PG_TRY();
	{
		sign = DirectFunctionCall3(pay_alipay_sign, JsonbPGetDatum(params), PointerGetDatum(pem_text),
								   PointerGetDatum(construct_array(exclude, 1, TEXTOID, -1, false, TYPALIGN_INT)));
	}
	PG_FINALLY();
	{
		explicit_bzero(VARDATA(pem_text), len);
	}
	PG_END_TRY();
	state = NULL;
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "sign", TextDatumGetCString(sign));
	return ProviderFormBody(ProviderJsonbConcat(params, JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL))));
}

static Datum
Build(const ProviderRequest *req)
{
	ProviderOrder o;
	ProviderRefund f = {0};
	const char *api_method;
	JsonbParseState *state = NULL;
	Jsonb	   *biz;
	char	   *amount,
			   *refunded,
			   *timestamp;

	ProviderRequestOrder(req, &o);
	if (strcmp(req->operation, "refund") == 0 || strcmp(req->operation, "query_refund") == 0)
		ProviderRequestRefund(req, &f);
	Formatted(&o, f.amount, &amount, &refunded, &timestamp);

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "out_trade_no", psprintf("%lld", (long long) o.id));
	if (strcmp(req->operation, "create_payment") == 0)
	{
		api_method = "alipay.trade.precreate";
		ProviderPushText(&state, "total_amount", amount);
		ProviderPushText(&state, "subject", psprintf("order %lld", (long long) o.id));
	}
	else if (strcmp(req->operation, "query") == 0)
		api_method = "alipay.trade.query";
	else if (strcmp(req->operation, "refund") == 0)
	{
		api_method = "alipay.trade.refund";
		ProviderPushText(&state, "refund_amount", refunded);
		ProviderPushText(&state, "out_request_no", psprintf("%lld", (long long) f.id));
	}
	else if (strcmp(req->operation, "query_refund") == 0)
	{
		api_method = "alipay.trade.fastpay.refund.query";
		ProviderPushText(&state, "out_request_no", psprintf("%lld", (long long) f.id));
	}
	else if (strcmp(req->operation, "close") == 0)
		api_method = "alipay.trade.close";
	else
		elog(ERROR, "Alipay has no operation \"%s\"", req->operation);
	biz = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
	biz = ProviderJsonbConcat(biz, JsonbGetObject(ProviderRowJsonb(req->outbox, "params"), "extra"));

	return ProviderHttpRequest("POST", GatewayUrl(req),
							   list_make2("Content-Type: application/x-www-form-urlencoded;charset=utf-8",
										  psprintf("Idempotency-Key: %s",
												   ProviderRowText(req->outbox, "idempotency_key"))),
							   SignedForm(req, api_method, biz, timestamp));
}

/* Answers: _answer_alipay (81_psp_answers.sql). */
static SPIPlanPtr read_plan = NULL;

static Jsonb *
Read(const ProviderAnswer *ans)
{
	return ProviderSqlRead(&read_plan, "SELECT pay._answer_alipay($1, $2, $3, $4, $6)", ans);
}

static const ProviderOperation operations[] = {
	{"create_payment", Build, Read},
	{"query", Build, Read},
	{"refund", Build, Read},
	{"query_refund", Build, Read},
	{"close", Build, Read},
};

const Provider alipay_provider = {
	.kind = "alipay",
	.flags = PROVIDER_CALLBACKS | PROVIDER_CREATES_PAYMENTS | PROVIDER_REFUNDS | PROVIDER_STATEMENTS,
	.parse_callback = ParseCallback,
	.answer_callback = AnswerCallback,
	.operations = operations,
	.n_operations = lengthof(operations),
};
