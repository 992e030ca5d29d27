/*
 * provider_wechatpay.c — WeChat Pay (API v3).
 *
 * Callbacks: Wechatpay-Signature (RSA over timestamp, nonce and body) and
 * an AEAD_AES_256_GCM resource, parsed by pay._callback_wechatpay
 * (85_callbacks.sql); answered with WeChat Pay's JSON code and message.
 * Requests and their answers: _build_wechatpay and _answer_wechatpay.
 */
#include "postgres.h"

#include "executor/spi.h"

#include "pay.h"
#include "callback.h"
#include "provider.h"

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

/* Requests and answers: the builder and reader of 80_outbox.sql and 81_psp_answers.sql. */
static ProviderSqlFunction builder = {.name = "_build_wechatpay"};
static SPIPlanPtr read_plan = NULL;

static Datum
Build(const ProviderRequest *req)
{
	return ProviderSqlBuild(&builder, req);
}

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
