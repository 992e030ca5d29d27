/*
 * provider_wechatpay.c — WeChat Pay (API v3).
 *
 * Callbacks: Wechatpay-Signature (RSA over timestamp, nonce and body) and
 * an AEAD_AES_256_GCM resource, parsed by pay._callback_wechatpay
 * (85_callbacks.sql); answered with WeChat Pay's JSON code and message.
 * Requests: built here.  Their answers: _answer_wechatpay.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "datatype/timestamp.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pay.h"
#include "callback.h"
#include "provider.h"
#include "secret_store.h"

static SPIPlanPtr parse_plan = NULL;

static Jsonb *
ParseCallback(const CallbackGateway *g, Jsonb *headers, text *body)
{
	return ProviderSqlParse(&parse_plan,
							"SELECT pay._callback_wechatpay(g, $2, $3) FROM pay.gateways g WHERE g.name = $1",
							g, headers, body);
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

/* Answers: _answer_wechatpay (81_psp_answers.sql). */
static SPIPlanPtr read_plan = NULL;

static Jsonb *
Read(const ProviderAnswer *ans)
{
	return ProviderSqlRead(&read_plan, "SELECT pay._answer_wechatpay($1, $2, $3, $4, $5, $6)", ans);
}

static const ProviderOperation operations[] = {
	{"create_payment", Build, Read},
	{"query", Build, Read},
	{"refund", Build, Read},
	{"query_refund", Build, Read},
	{"close", Build, Read},
};

const Provider wechatpay_provider = {
	.kind = "wechatpay",
	.flags = PROVIDER_CALLBACKS | PROVIDER_CREATES_PAYMENTS | PROVIDER_REFUNDS | PROVIDER_STATEMENTS,
	.parse_callback = ParseCallback,
	.answer_callback = AnswerCallback,
	.operations = operations,
	.n_operations = lengthof(operations),
};
