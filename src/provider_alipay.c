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
 * Requests (RSA2-signed openapi calls, statement fetches included) and
 * their answers: here.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "pgtime.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "pay.h"
#include "alipay_notify.h"
#include "callback.h"
#include "provider.h"
#include "secret_store.h"
#include "sign_canonical.h"
#include "sign_rsa.h"
#include "event_apply.h"

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

/* The order's and the refund's amounts as major-unit decimals (the currency's exponent). */
static void
Formatted(const ProviderOrder *o, int64 refund_amount, char **amount, char **refunded)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			types[3] = {INT8OID, TEXTOID, INT8OID};
	Datum		values[3] = {Int64GetDatum(o->amount), CStringGetTextDatum(o->currency),
	Int64GetDatum(refund_amount)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(KeptPlan(&format_plan, "SELECT pay.format_amount($1, $2), pay.format_amount($3, $2)",
								  3, types),
						 values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not format an Alipay request");
	*amount = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	*refunded = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	SPI_finish();
}

/* Alipay's timestamp: now, Beijing time, "YYYY-MM-DD HH24:MI:SS". */
static char *
BeijingNow(void)
{
	pg_tz	   *tz = pg_tzset("Asia/Shanghai");
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;

	if (tz == NULL || timestamp2tm(GetCurrentTimestamp(), &tzoff, &tm, &fsec, NULL, tz) != 0)
		elog(ERROR, "could not compute Beijing time");
	return psprintf("%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
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
			   *refunded;

	ProviderRequestOrder(req, &o);
	if (strcmp(req->operation, "refund") == 0 || strcmp(req->operation, "query_refund") == 0)
		ProviderRequestRefund(req, &f);
	Formatted(&o, f.amount, &amount, &refunded);

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
							   SignedForm(req, api_method, biz, BeijingNow()));
}

/*
 * Statement fetches (provider.h): the trade bill's download URL of one day
 * (alipay.data.dataservice.bill.downloadurl.query, signed like every
 * call), then the bill itself, a plain GET (the URL carries its own
 * short-lived token, no credential of ours).
 */
static Datum
StatementBuild(const ProviderRequest *req)
{
	Jsonb	   *params = ProviderRowJsonb(req->outbox, "params");
	const char *name = strcmp(req->operation, "fetch_statement") == 0 ? "day" : "url";
	char	   *value = JsonbGetText(params, name);

	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: outbox row %lld names none", name, (long long) ProviderRowInt64(req->outbox, "id"))));
	if (strcmp(req->operation, "fetch_statement") == 0)
	{
		static const char *const keys[] = {"bill_type", "bill_date"};
		char	   *values[2] = {"trade", value};

		return ProviderHttpRequest("POST", GatewayUrl(req),
								   list_make2("Content-Type: application/x-www-form-urlencoded;charset=utf-8",
											  psprintf("Idempotency-Key: %s",
													   ProviderRowText(req->outbox, "idempotency_key"))),
								   SignedForm(req, "alipay.data.dataservice.bill.downloadurl.query",
											  EventBuild(keys, values, 2), BeijingNow()));
	}
	return ProviderHttpRequest("GET", value, NIL, NULL);
}

/*
 * Answers: {"<method>_response": {...}, "sign": "..."}, the signature over
 * the raw text of the member, with Alipay's public key.  Gateway errors
 * (40001, 40002) come unsigned: they are rejected like any unsigned
 * answer.  Code 10000 is a success; 40004 "Business Failed" a refusal
 * that sending again cannot change.
 */

extern Datum pay_alipay_response_valid(PG_FUNCTION_ARGS);

#define ALIPAY_SUCCESS "10000"

/* The member of the answer to an operation. */
static const char *
ResponseMember(const char *operation)
{
	if (strcmp(operation, "create_payment") == 0)
		return "alipay_trade_precreate_response";
	if (strcmp(operation, "query") == 0)
		return "alipay_trade_query_response";
	if (strcmp(operation, "refund") == 0)
		return "alipay_trade_refund_response";
	if (strcmp(operation, "query_refund") == 0)
		return "alipay_trade_fastpay_refund_query_response";
	return "alipay_trade_close_response";
}

/* Does the answer's sign verify over its *_response member with the gateway's Alipay public key? */
static bool
ResponseValid(const char *gateway, text *body)
{
	size_t		len;
	char	   *pem = SecretFetch(psprintf("gateway:%s", gateway), "public_key", &len);
	text	   *pem_text = cstring_to_text_with_len(pem, len);
	bool		valid;

	SecretScrub(pem, len);
	PG_TRY();
	{
		valid = DatumGetBool(DirectFunctionCall2(pay_alipay_response_valid, PointerGetDatum(body),
												 PointerGetDatum(pem_text)));
	}
	PG_FINALLY();
	{
		explicit_bzero(VARDATA(pem_text), len);
	}
	PG_END_TRY();
	return valid;
}

/* The first of a, b that is not NULL. */
static char *
Coalesce(char *a, char *b)
{
	return a != NULL ? a : b;
}

static Jsonb *
Refused(const ProviderAnswer *ans, Jsonb *v, const char *code)
{
	char	   *sub_code = JsonbGetText(v, "sub_code");
	char	   *reason = Coalesce(JsonbGetText(v, "sub_msg"), JsonbGetText(v, "msg"));
	int			already_paid = -1;

	if (reason == NULL)
		reason = psprintf("code %s", code ? code : "(none)");
	/* a close of a trade the buyer paid meanwhile, or a create of a paid one */
	if (sub_code != NULL)
		already_paid = (strcmp(ans->request.operation, "close") == 0 &&
						strcmp(sub_code, "ACQ.TRADE_STATUS_ERROR") == 0) ||
			strcmp(sub_code, "ACQ.TRADE_HAS_SUCCESS") == 0;
	return ProviderAnswerRefused(code == NULL ? -1 : strcmp(code, "40004") == 0, reason,
								 Coalesce(sub_code, (char *) code), already_paid);
}

/* trade_status as our kind of event, NULL when it is none (still waiting) */
static const char *
QueryKind(const char *status)
{
	if (status == NULL)
		return NULL;
	if (strcmp(status, "TRADE_SUCCESS") == 0 || strcmp(status, "TRADE_FINISHED") == 0)
		return "payment_succeeded";
	if (strcmp(status, "TRADE_CLOSED") == 0)
		return "closed";
	return NULL;
}

/* A query's answer: the trade checked against our order, and the event it is. */
static Jsonb *
QueryRead(const ProviderAnswer *ans, Jsonb *v)
{
	static const char *const keys[] = {"event_id", "type", "kind", "order_ref", "psp_txn_id",
	"amount_major", "currency"};
	char	   *ours = ProviderRowText(ans->order, "currency");
	/* the currency total_amount is in, as the notify parser reads it */
	char	   *currency = Coalesce(Coalesce(JsonbGetText(v, "trans_currency"), JsonbGetText(v, "currency")),
									ALIPAY_DEFAULT_CURRENCY);
	char	   *total = JsonbGetText(v, "total_amount");
	char	   *status = JsonbGetText(v, "trade_status");
	const char *kind = QueryKind(status);
	int64		amount;
	char	   *values[7];

	ProviderExpect("currency", currency, ours, true);
	ProviderExpect("total_amount",
				   EventAmount(NULL, total, ours, &amount) ? psprintf("%lld", (long long) amount) : NULL,
				   psprintf("%lld", (long long) ProviderRowInt64(ans->order, "amount")), true);
	if (kind == NULL)
		return ProviderAnswerApplied(JsonbGetText(v, "trade_no"), NULL, NULL, NULL);
	values[0] = ProviderQueryEventId(ans);
	values[1] = status;
	values[2] = (char *) kind;
	values[3] = JsonbGetText(v, "out_trade_no");
	values[4] = JsonbGetText(v, "trade_no");
	values[5] = total;
	values[6] = currency;
	return ProviderAnswerApplied(values[4], NULL, EventBuild(keys, values, 7), NULL);
}

static Jsonb *
Read(const ProviderAnswer *ans)
{
	const char *op = ans->request.operation;
	const char *member = ResponseMember(op);
	Jsonb	   *v = JsonbGetObject(ProviderAnswerBody(ans->body), member);
	char	   *code;
	bool		success;

	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("alipay's answer (HTTP %d) has no %s object", ans->status, member)));
	code = JsonbGetText(v, "code");
	if (!ResponseValid(ProviderRowText(ans->request.gateway, "name"), ans->body))
		ereport(ERROR,
				(errcode(ERRCODE_PAY_SIGNATURE_INVALID),
				 errmsg("the signature of alipay's answer does not verify (code %s, %s)",
						code ? code : "(none)",
						Coalesce(Coalesce(JsonbGetText(v, "sub_code"), JsonbGetText(v, "msg")), ""))));
	success = code != NULL && strcmp(code, ALIPAY_SUCCESS) == 0;
	/* a refund query's answer may leave out out_trade_no; so may a refusal */
	ProviderExpect("out_trade_no", JsonbGetText(v, "out_trade_no"),
				   psprintf("%lld", (long long) ProviderRowInt64(ans->order, "id")),
				   (code == NULL || success) && strcmp(op, "query_refund") != 0);
	if (!success)
		return Refused(ans, v, code);
	if (strcmp(op, "create_payment") == 0)
	{
		static const char *const keys[] = {"type", "qr_code"};
		char	   *values[2] = {"qr_code", JsonbGetText(v, "qr_code")};

		return ProviderAnswerApplied(NULL, values[1] ? EventBuild(keys, values, 2) : NULL, NULL, NULL);
	}
	if (strcmp(op, "query") == 0)
		return QueryRead(ans, v);
	if (strcmp(op, "refund") == 0)
	{
		/* code 10000: the refund is done (fund_change N: an earlier request did it) */
		return ProviderAnswerApplied(JsonbGetText(v, "trade_no"), NULL, NULL,
									 ProviderRefundSummary(NULL, "succeeded"));
	}
	if (strcmp(op, "query_refund") == 0)
	{
		char	   *status = JsonbGetText(v, "refund_status");

		ProviderExpect("out_request_no", JsonbGetText(v, "out_request_no"),
					   JsonbGetText(ProviderRowJsonb(ans->request.outbox, "params"), "refund_id"), false);
		/* no refund_status: Alipay has not (yet) refunded */
		return ProviderAnswerApplied(NULL, NULL, NULL,
									 ProviderRefundSummary(NULL, status && strcmp(status, "REFUND_SUCCESS") == 0 ?
														   "succeeded" : NULL));
	}
	return ProviderAnswerApplied(NULL, NULL, NULL, NULL);
}

/*
 * The bill's URL: a success (10000) signed by Alipay, naming a URL under
 * the gateway's origin (its base_url may name gateway.do) or on Alipay's
 * bill host.
 */

#define ALIPAY_BILL_RESPONSE "alipay_data_dataservice_bill_downloadurl_query_response"
#define ALIPAY_FILE_HOST "dwbillcenter.alipay.com"

static Jsonb *
StatementRead(const ProviderAnswer *ans)
{
	static const char *const keys[] = {"day", "url"};
	Jsonb	   *v = JsonbGetObject(ProviderStatementBody(ans->body), ALIPAY_BILL_RESPONSE);
	char	   *code = JsonbGetText(v, "code");
	char	   *values[2];

	if (code == NULL || strcmp(code, ALIPAY_SUCCESS) != 0)
		return ProviderStatementRefused(psprintf("alipay answered %s %s", code ? code : "(no code)",
												 Coalesce(Coalesce(JsonbGetText(v, "sub_code"),
																   JsonbGetText(v, "msg")), "")));
	if (!ResponseValid(ProviderRowText(ans->request.gateway, "name"), ans->body))
		return ProviderStatementRefused("the signature of alipay's answer does not verify");
	values[0] = JsonbGetText(ProviderRowJsonb(ans->request.outbox, "params"), "day");
	values[1] = JsonbGetText(v, "bill_download_url");
	if (!ProviderStatementUrlTrusted(&ans->request, values[1], true, ALIPAY_FILE_HOST))
		return ProviderStatementRefused(psprintf("the bill's URL %s is not on %s nor %s", Coalesce(values[1], ""),
												 Coalesce(ProviderRowText(ans->request.gateway, "base_url"),
														  "https://openapi.alipay.com"),
												 ALIPAY_FILE_HOST));
	return ProviderStatementNext("fetch_statement_file", EventBuild(keys, values, 2), values[0], 0);
}

/*
 * The bill is a zip archive of the 业务明细 (detail) CSV, which is imported,
 * and its 汇总 summary, whose name also says 业务明细.  pay._zip_member's
 * reader checks the archive's sizes, ratio, member count and CRC-32.
 */

extern Datum pay_zip_member(PG_FUNCTION_ARGS);

/* A name part (UTF-8 here) in the server's encoding, as pay._zip_member takes it. */
static Datum
NamePart(const char *utf8)
{
	return CStringGetTextDatum(pg_any_to_server(utf8, strlen(utf8), PG_UTF8));
}

static bytea *
StatementFile(const ProviderRequest *req, bytea *file, char **reason)
{
	return DatumGetByteaPP(DirectFunctionCall3(pay_zip_member, PointerGetDatum(file),
											   NamePart("业务明细"), NamePart("汇总")));
}

static const ProviderOperation operations[] = {
	{"create_payment", Build, Read},
	{"query", Build, Read},
	{"refund", Build, Read},
	{"query_refund", Build, Read},
	{"close", Build, Read},
	{"fetch_statement", StatementBuild, StatementRead},
	/* read by statement_file (provider.h, "Statement fetches") */
	{"fetch_statement_file", StatementBuild, NULL},
};

const Provider alipay_provider = {
	.kind = "alipay",
	.flags = PROVIDER_CALLBACKS | PROVIDER_CREATES_PAYMENTS | PROVIDER_REFUNDS | PROVIDER_STATEMENTS,
	.parse_callback = ParseCallback,
	.answer_callback = AnswerCallback,
	.operations = operations,
	.n_operations = lengthof(operations),
	.statement_format = "alipay_trade_bill",
	.statement_file = StatementFile,
};
