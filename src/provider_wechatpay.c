/*
 * provider_wechatpay.c — WeChat Pay (API v3).
 *
 * Callbacks: Wechatpay-Signature (RSA over timestamp, nonce and body, with
 * the platform certificate named by Wechatpay-Serial) and an
 * AEAD_AES_256_GCM resource; answered with WeChat Pay's JSON code and
 * message.  Requests (statement fetches included) and their answers, which
 * are signed as callbacks are: here.
 *
 * The signature and AEAD primitives are pay.wechatpay_signature_valid's
 * and pay.wechatpay_decrypt's C functions (sign_wechatpay.c), called here.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "datatype/timestamp.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pay.h"
#include "callback.h"
#include "ct.h"
#include "provider.h"
#include "secret_store.h"

extern Datum pay_wechatpay_signature_valid(PG_FUNCTION_ARGS);
extern Datum pay_wechatpay_decrypt(PG_FUNCTION_ARGS);

#define SERIAL_MAX 64

/* What an answer or event without a currency is in. */
#define WECHATPAY_DEFAULT_CURRENCY "CNY"

/* A Wechatpay-Serial: 1 to 64 ASCII letters and digits (it names a secret). */
static bool
SerialWellFormed(const char *serial)
{
	size_t		len = strlen(serial);

	if (len < 1 || len > SERIAL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((serial[i] >= 'A' && serial[i] <= 'Z') || (serial[i] >= 'a' && serial[i] <= 'z') ||
			  (serial[i] >= '0' && serial[i] <= '9')))
			return false;
	return true;
}

/* Refuse a callback or answer without the four Wechatpay-* headers (PY010). */
static void
RequireSignatureHeaders(Jsonb *headers)
{
	if (JsonbGetText(headers, "wechatpay-timestamp") == NULL || JsonbGetText(headers, "wechatpay-nonce") == NULL ||
		JsonbGetText(headers, "wechatpay-signature") == NULL || JsonbGetText(headers, "wechatpay-serial") == NULL)
		CallbackSignatureInvalid("Wechatpay-Timestamp, -Nonce, -Signature and -Serial headers are required");
}

/*
 * WeChat Pay v3 signs its callbacks and its answers alike: RSA over
 * "timestamp\nnonce\nbody\n" with the platform certificate named by
 * Wechatpay-Serial (secret platform_cert:<serial>), the timestamp within
 * the gateway's window.  Raises PY010 / PY011; headers have lower-case
 * names; a missing body is verified as an empty one.
 */
static void
Verify(const CallbackGateway *g, Jsonb *headers, text *body)
{
	char	   *ts,
			   *serial;
	size_t		len;
	char	   *cert;
	text	   *cert_text;
	bool		valid;

	RequireSignatureHeaders(headers);
	ts = JsonbGetText(headers, "wechatpay-timestamp");
	serial = JsonbGetText(headers, "wechatpay-serial");
	if (!SerialWellFormed(serial))
		CallbackSignatureInvalid("Wechatpay-Serial is malformed");
	cert = SecretFetchIfExists(psprintf("gateway:%s", g->name), psprintf("platform_cert:%s", serial), &len);
	if (cert == NULL)
		CallbackSignatureInvalid(psprintf("no platform certificate with serial %s", serial));
	cert_text = cstring_to_text_with_len(cert, len);
	SecretScrub(cert, len);
	valid = DatumGetBool(DirectFunctionCall5(pay_wechatpay_signature_valid, CStringGetTextDatum(ts),
											 CStringGetTextDatum(JsonbGetText(headers, "wechatpay-nonce")),
											 PointerGetDatum(body ? body : cstring_to_text("")),
											 CStringGetTextDatum(JsonbGetText(headers, "wechatpay-signature")),
											 PointerGetDatum(cert_text)));
	if (!valid)
		CallbackSignatureInvalid("Wechatpay-Signature does not verify");
	CheckWindow(g, CallbackUnixTime(ts, strlen(ts)), false);
}

/* The notification's resource, decrypted with the APIv3 key: the transaction or refund. */
static Jsonb *
Resource(const CallbackGateway *g, Jsonb *message)
{
	Jsonb	   *resource = JsonbGetObject(message, "resource");
	char	   *algorithm = JsonbGetText(resource, "algorithm");
	char	   *nonce,
			   *aad,
			   *ciphertext;
	size_t		len;
	char	   *key;
	text	   *key_text;
	Datum		plaintext;

	if (algorithm == NULL || strcmp(algorithm, "AEAD_AES_256_GCM") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("WeChat Pay notification has no AEAD_AES_256_GCM resource")));
	nonce = JsonbGetText(resource, "nonce");
	aad = JsonbGetText(resource, "associated_data");
	ciphertext = JsonbGetText(resource, "ciphertext");
	if (nonce == NULL || ciphertext == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("WeChat Pay notification's resource has no %s", nonce == NULL ? "nonce" : "ciphertext")));
	key = GatewayCredential(g, "apiv3_key", &len);
	key_text = cstring_to_text_with_len(key, len);
	SecretScrub(key, len);
	PG_TRY();
	{
		plaintext = DirectFunctionCall4(pay_wechatpay_decrypt, PointerGetDatum(key_text),
										CStringGetTextDatum(nonce), CStringGetTextDatum(aad ? aad : ""),
										CStringGetTextDatum(ciphertext));
	}
	PG_FINALLY();
	{
		explicit_bzero(VARDATA(key_text), len);
	}
	PG_END_TRY();
	return DatumGetJsonbP(DirectFunctionCall1(pay_json_body, plaintext));
}

/* The notification's news as our kind of event. */
static const char *
Kind(const char *type, Jsonb *tx)
{
	char	   *state = JsonbGetText(tx, "trade_state");

	if (type != NULL && strncmp(type, "REFUND.", strlen("REFUND.")) == 0)
	{
		char	   *refund = JsonbGetText(tx, "refund_status");

		return refund && strcmp(refund, "SUCCESS") == 0 ? "refunded" : "ignored";
	}
	if (state == NULL)
		return "ignored";
	if (strcmp(state, "SUCCESS") == 0)
		return "payment_succeeded";
	if (strcmp(state, "PAYERROR") == 0)
		return "payment_failed";
	if (strcmp(state, "CLOSED") == 0)
		return "closed";
	return "ignored";
}

/* A notification: verified as above; its resource is AES-256-GCM under the APIv3 key. */
static Jsonb *
ParseCallback(const CallbackGateway *g, Jsonb *headers, text *body)
{
	static const char *const json[] = {"application/json"};
	static const char *const keys[] = {"event_id", "nonce", "type", "kind", "order_ref", "psp_txn_id",
	"amount", "currency", "refund_id", "refund_amount"};
	Jsonb	   *message,
			   *tx,
			   *amount;
	char	   *values[10];

	RequireSignatureHeaders(headers);
	RequireContentType(headers, json, 1);
	Verify(g, headers, body);
	message = DatumGetJsonbP(DirectFunctionCall1(pay_json_body, PointerGetDatum(body)));
	tx = Resource(g, message);
	amount = JsonbGetObject(tx, "amount");
	values[0] = JsonbGetText(message, "id");
	values[1] = JsonbGetText(headers, "wechatpay-nonce");
	values[2] = JsonbGetText(message, "event_type");
	values[3] = (char *) Kind(values[2], tx);
	values[4] = JsonbGetText(tx, "out_trade_no");
	values[5] = JsonbGetText(tx, "transaction_id");
	values[6] = JsonbGetText(amount, "total");
	values[7] = JsonbGetText(amount, "currency");
	if (values[7] == NULL)
		values[7] = WECHATPAY_DEFAULT_CURRENCY;
	values[8] = JsonbGetText(tx, "refund_id");
	values[9] = JsonbGetText(amount, "refund");
	return EventBuild(keys, values, 10);
}

static void
AnswerCallback(bool verified, const char *reason, const char **type, char **body)
{
	*type = "application/json";
	*body = verified ? "{\"code\":\"SUCCESS\",\"message\":\"OK\"}" :
		psprintf("{\"code\": \"FAIL\", \"message\": \"%s\"}", reason);
}

/*
 * Requests: API v3, JSON bodies, WECHATPAY2-SHA256-RSA2048 Authorization
 * (pay.wechatpay_authorization's, with a new timestamp and nonce every
 * attempt).  Idempotency: out_trade_no is the order id, out_refund_no the
 * refund id.
 */

extern Datum pay_wechatpay_authorization(PG_FUNCTION_ARGS);

/*
 * WeChat Pay wants out_trade_no of 6 to 32 characters: order ids below
 * 100000 are sent with leading zeros (callbacks read "000042" back as 42).
 */
static char *
TradeNo(int64 order_id)
{
	return psprintf("%06lld", (long long) order_id);
}

/* The body of a create or refund: ours, then params.extra over it, as JSON text. */
static char *
BodyText(JsonbParseState **state, const ProviderRequest *req)
{
	Jsonb	   *body = JsonbValueToJsonb(pushJsonbValue(state, WJB_END_OBJECT, NULL));

	body = ProviderJsonbConcat(body, JsonbGetObject(ProviderRowJsonb(req->outbox, "params"), "extra"));
	return JsonbToCString(NULL, &body->root, VARSIZE(body));
}

static char *
CreateBody(const ProviderRequest *req, const ProviderOrder *o, const char *mchid)
{
	JsonbParseState *state = NULL;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "appid", ProviderGatewayOption(req, "appid"));
	ProviderPushText(&state, "mchid", mchid);
	ProviderPushText(&state, "description", psprintf("order %lld", (long long) o->id));
	ProviderPushText(&state, "out_trade_no", TradeNo(o->id));
	ProviderPushText(&state, "notify_url", ProviderGatewayOption(req, "notify_url"));
	ProviderPushObject(&state, "amount");
	ProviderPushInt64(&state, "total", o->amount);
	ProviderPushText(&state, "currency", o->currency);
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return BodyText(&state, req);
}

static char *
RefundBody(const ProviderRequest *req, const ProviderOrder *o, const ProviderRefund *f)
{
	JsonbParseState *state = NULL;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ProviderPushText(&state, "out_trade_no", TradeNo(o->id));
	ProviderPushText(&state, "out_refund_no", psprintf("%lld", (long long) f->id));
	ProviderPushObject(&state, "amount");
	ProviderPushInt64(&state, "refund", f->amount);
	ProviderPushInt64(&state, "total", o->amount);
	ProviderPushText(&state, "currency", o->currency);
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return BodyText(&state, req);
}

/* 32 upper-case hex digits, new for every request. */
static char *
Nonce(void)
{
	uint8		bytes[16];
	char	   *nonce = palloc(33);

	if (!pg_strong_random(bytes, sizeof(bytes)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random nonce")));
	for (int i = 0; i < 16; i++)
		sprintf(nonce + 2 * i, "%02X", bytes[i]);
	return nonce;
}

/* The Authorization header's value, signed with the merchant's private key. */
static char *
Authorization(const ProviderRequest *req, const char *method, const char *path, const char *body,
			  const char *mchid)
{
	char	   *serial_no = ProviderGatewayOption(req, "serial_no");
	size_t		len;
	char	   *pem = ProviderCredential(req, "private_key", &len);
	int64		now = GetCurrentTimestamp() / USECS_PER_SEC +
		(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
	text	   *pem_text = cstring_to_text_with_len(pem, len);
	Datum		auth;

	SecretScrub(pem, len);
	PG_TRY();
	{
		auth = DirectFunctionCall8(pay_wechatpay_authorization,
								   CStringGetTextDatum(method), CStringGetTextDatum(path),
								   CStringGetTextDatum(body), CStringGetTextDatum(mchid),
								   CStringGetTextDatum(serial_no), PointerGetDatum(pem_text),
								   Int64GetDatum(now), CStringGetTextDatum(Nonce()));
	}
	PG_FINALLY();
	{
		explicit_bzero(VARDATA(pem_text), len);
	}
	PG_END_TRY();
	return TextDatumGetCString(auth);
}

static Datum
Build(const ProviderRequest *req)
{
	ProviderOrder o;
	ProviderRefund f;
	char	   *mchid;
	const char *method = "POST";
	char	   *path;
	char	   *body = "";
	List	   *headers;

	ProviderRequestOrder(req, &o);
	mchid = ProviderGatewayOption(req, "mchid");
	if (strcmp(req->operation, "create_payment") == 0)
	{
		path = "/v3/pay/transactions/native";
		body = CreateBody(req, &o, mchid);
	}
	else if (strcmp(req->operation, "query") == 0)
	{
		method = "GET";
		path = psprintf("/v3/pay/transactions/out-trade-no/%s?mchid=%s", TradeNo(o.id), mchid);
	}
	else if (strcmp(req->operation, "refund") == 0)
	{
		ProviderRequestRefund(req, &f);
		path = "/v3/refund/domestic/refunds";
		body = RefundBody(req, &o, &f);
	}
	else if (strcmp(req->operation, "query_refund") == 0)
	{
		ProviderRequestRefund(req, &f);
		method = "GET";
		path = psprintf("/v3/refund/domestic/refunds/%lld", (long long) f.id);
	}
	else if (strcmp(req->operation, "close") == 0)
	{
		JsonbParseState *state = NULL;
		Jsonb	   *close;

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		ProviderPushText(&state, "mchid", mchid);
		close = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
		path = psprintf("/v3/pay/transactions/out-trade-no/%s/close", TradeNo(o.id));
		body = JsonbToCString(NULL, &close->root, VARSIZE(close));
	}
	else
		elog(ERROR, "WeChat Pay has no operation \"%s\"", req->operation);

	headers = list_make3(psprintf("Authorization: %s", Authorization(req, method, path, body, mchid)),
						 "Accept: application/json",
						 psprintf("Idempotency-Key: %s", ProviderRowText(req->outbox, "idempotency_key")));
	if (strcmp(method, "POST") == 0)
		headers = lappend(headers, "Content-Type: application/json");
	return ProviderHttpRequest(method, psprintf("%s%s", ProviderBaseUrl(req, "https://api.mch.weixin.qq.com"), path),
							   headers, strcmp(method, "POST") == 0 ? body : NULL);
}

/*
 * Statement fetches (provider.h): the trade bill of one day, then its
 * file, both GETs signed like every API call (the path and query are what
 * is signed).
 */

/* The path and query of an absolute http(s) URL ("" when it has none). */
static const char *
UrlPath(const char *url)
{
	const char *host;

	if (strncmp(url, "https://", strlen("https://")) == 0)
		host = url + strlen("https://");
	else if (strncmp(url, "http://", strlen("http://")) == 0)
		host = url + strlen("http://");
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("url: \"%s\" is not an http(s) URL", url)));
	if (*host == '\0' || *host == '/')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("url: \"%s\" has no host", url)));
	return strchr(host, '/') ? strchr(host, '/') : "";
}

static Datum
StatementBuild(const ProviderRequest *req)
{
	Jsonb	   *params = ProviderRowJsonb(req->outbox, "params");
	char	   *url;
	const char *path;
	char	   *mchid;

	if (strcmp(req->operation, "fetch_statement") == 0)
	{
		char	   *day = JsonbGetText(params, "day");

		if (day == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("day: outbox row %lld names none", (long long) ProviderRowInt64(req->outbox, "id"))));
		path = psprintf("/v3/bill/tradebill?bill_date=%s&bill_type=ALL", day);
		url = psprintf("%s%s", ProviderBaseUrl(req, "https://api.mch.weixin.qq.com"), path);
	}
	else
	{
		url = JsonbGetText(params, "url");
		if (url == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("url: outbox row %lld names none", (long long) ProviderRowInt64(req->outbox, "id"))));
		path = UrlPath(url);
	}
	mchid = ProviderGatewayOption(req, "mchid");
	return ProviderHttpRequest("GET", url,
							   list_make2(psprintf("Authorization: %s", Authorization(req, "GET", path, "", mchid)),
										  "Accept: application/json"),
							   NULL);
}

/*
 * The trade bill's answer names the file's URL and its SHA-1 (hash_type
 * SHA1, hash_value hex).  The dispatcher does not hand the statement steps'
 * header lines over, so the answer is not verified as the payment answers
 * are: the digest ties the file to the answer, TLS the answer to WeChat
 * Pay.  The file is fetched (signed again) only from under the gateway's
 * base_url or from WeChat Pay's API host, and imported only if its SHA-1
 * is the one named.
 */

extern Datum pay_sha1_hex(PG_FUNCTION_ARGS);

#define WECHATPAY_FILE_HOST "api.mch.weixin.qq.com"
#define SHA1_HEX_LEN 40

/* 40 hex digits, either case */
static bool
Sha1HexWellFormed(const char *s)
{
	if (s == NULL || strlen(s) != SHA1_HEX_LEN)
		return false;
	for (int i = 0; i < SHA1_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return true;
}

/* The answer to fetch_statement: the file's download as the next step. */
static Jsonb *
StatementRead(const ProviderAnswer *ans)
{
	static const char *const keys[] = {"day", "url", "hash_type", "hash_value"};
	Jsonb	   *v = ProviderStatementBody(ans->body);
	char	   *values[4];

	values[0] = JsonbGetText(ProviderRowJsonb(ans->request.outbox, "params"), "day");
	values[1] = JsonbGetText(v, "download_url");
	values[2] = JsonbGetText(v, "hash_type");
	values[3] = JsonbGetText(v, "hash_value");
	if (values[2] == NULL || strcmp(values[2], "SHA1") != 0 || !Sha1HexWellFormed(values[3]))
		return ProviderStatementRefused(psprintf("the bill's digest is %s %s, not a SHA1",
												 values[2] ? values[2] : "", values[3] ? values[3] : ""));
	if (!ProviderStatementUrlTrusted(&ans->request, values[1], false, WECHATPAY_FILE_HOST))
	{
		char	   *base = ProviderRowText(ans->request.gateway, "base_url");

		return ProviderStatementRefused(psprintf("the bill's URL %s is not on %s nor %s", values[1] ? values[1] : "",
												 base ? base : "", WECHATPAY_FILE_HOST));
	}
	return ProviderStatementNext("fetch_statement_file", EventBuild(keys, values, 4), values[0], 0);
}

/* The bill: imported only if its SHA-1 is the one the answer named (kept in the row's params). */
static bytea *
StatementFile(const ProviderRequest *req, bytea *file, char **reason)
{
	char	   *sha1 = TextDatumGetCString(DirectFunctionCall1(pay_sha1_hex, PointerGetDatum(file)));
	char	   *named = JsonbGetText(ProviderRowJsonb(req->outbox, "params"), "hash_value");
	char	   *lower = named ? pstrdup(named) : NULL;

	/* a digest: compared in constant time, case aside (pay_sha1_hex's is lower-case) */
	for (char *c = lower; c != NULL && *c != '\0'; c++)
		*c = pg_ascii_tolower((unsigned char) *c);
	if (lower == NULL || !ct_equal_str(sha1, strlen(sha1), lower, strlen(lower)))
	{
		*reason = psprintf("the bill's SHA-1 %s is not the %s WeChat Pay named", sha1, named ? named : "");
		return NULL;
	}
	return file;
}

/*
 * Answers: every one is signed like a callback (Verify); errors are
 * {"code": ..., "message": ...}.  out_trade_no is zero-padded (TradeNo).
 */

/* trade_state as our kind of event, NULL when it is none (still waiting) */
static const char *
QueryKind(const char *state)
{
	if (state == NULL)
		return NULL;
	if (strcmp(state, "SUCCESS") == 0)
		return "payment_succeeded";
	if (strcmp(state, "CLOSED") == 0 || strcmp(state, "REVOKED") == 0)
		return "closed";
	if (strcmp(state, "PAYERROR") == 0)
		return "payment_failed";
	return NULL;
}

/* A query's answer: the transaction checked against our order, and the event it is. */
static Jsonb *
QueryRead(const ProviderAnswer *ans, Jsonb *v)
{
	static const char *const keys[] = {"event_id", "type", "kind", "order_ref", "psp_txn_id", "amount", "currency"};
	Jsonb	   *amount = JsonbGetObject(v, "amount");
	char	   *currency = JsonbGetText(amount, "currency");
	char	   *state = JsonbGetText(v, "trade_state");
	const char *kind = QueryKind(state);
	char	   *values[7];

	if (currency == NULL)
		currency = WECHATPAY_DEFAULT_CURRENCY;
	ProviderExpect("amount.total", JsonbGetText(amount, "total"),
				   psprintf("%lld", (long long) ProviderRowInt64(ans->order, "amount")), true);
	ProviderExpect("amount.currency", currency, ProviderRowText(ans->order, "currency"), true);
	if (kind == NULL)
		return ProviderAnswerApplied(JsonbGetText(v, "transaction_id"), NULL, NULL, NULL);
	values[0] = ProviderQueryEventId(ans);
	values[1] = state;
	values[2] = (char *) kind;
	values[3] = JsonbGetText(v, "out_trade_no");
	values[4] = JsonbGetText(v, "transaction_id");
	values[5] = JsonbGetText(amount, "total");
	values[6] = currency;
	return ProviderAnswerApplied(values[4], NULL, EventBuild(keys, values, 7), NULL);
}

/* A refund's answer (to the refund or its query): ours, and how it stands. */
static Jsonb *
RefundRead(const ProviderAnswer *ans, Jsonb *v)
{
	char	   *status = JsonbGetText(v, "status");
	const char *ours = NULL;

	ProviderExpect("out_refund_no", JsonbGetText(v, "out_refund_no"),
				   JsonbGetText(ProviderRowJsonb(ans->request.outbox, "params"), "refund_id"), true);
	if (status != NULL && strcmp(status, "SUCCESS") == 0)
		ours = "succeeded";
	else if (status != NULL && (strcmp(status, "CLOSED") == 0 || strcmp(status, "ABNORMAL") == 0))
		ours = "failed";
	return ProviderAnswerApplied(NULL, NULL, NULL, ProviderRefundSummary(JsonbGetText(v, "refund_id"), ours));
}

static Jsonb *
Read(const ProviderAnswer *ans)
{
	const char *op = ans->request.operation;
	CallbackGateway g = ProviderAnswerGateway(ans);
	Jsonb	   *v;

	Verify(&g, ans->headers, ans->body);
	v = ProviderAnswerBody(ans->body);
	if (ans->status >= 400)
	{
		char	   *reason = JsonbGetText(v, "message");
		char	   *code = JsonbGetText(v, "code");

		return ProviderAnswerRefused(1, reason ? reason : psprintf("HTTP %d", ans->status), code,
									 code == NULL ? -1 : strcmp(code, "ORDERPAID") == 0);
	}
	ProviderExpect("out_trade_no", JsonbGetText(v, "out_trade_no"),
				   TradeNo(ProviderRowInt64(ans->order, "id")), strcmp(op, "query") == 0);
	if (strcmp(op, "create_payment") == 0)
	{
		static const char *const keys[] = {"type", "code_url"};
		char	   *values[2] = {"code_url", JsonbGetText(v, "code_url")};

		return ProviderAnswerApplied(NULL, values[1] ? EventBuild(keys, values, 2) : NULL, NULL, NULL);
	}
	if (strcmp(op, "query") == 0)
		return QueryRead(ans, v);
	if (strcmp(op, "refund") == 0 || strcmp(op, "query_refund") == 0)
		return RefundRead(ans, v);
	return ProviderAnswerApplied(NULL, NULL, NULL, NULL);
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

const Provider wechatpay_provider = {
	.kind = "wechatpay",
	.flags = PROVIDER_CALLBACKS | PROVIDER_CREATES_PAYMENTS | PROVIDER_REFUNDS | PROVIDER_STATEMENTS,
	.parse_callback = ParseCallback,
	.answer_callback = AnswerCallback,
	.operations = operations,
	.n_operations = lengthof(operations),
	.statement_format = "wechatpay_trade_bill",
	.statement_file = StatementFile,
};
