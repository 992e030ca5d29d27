/*
 * provider_generic.c — pay's own generic scheme, for a PSP that speaks it.
 *
 * Callbacks: a JSON or form body signed with HMAC-SHA256 over its
 * canonical string, parsed by pay._callback_generic (85_callbacks.sql);
 * answered "success" or "fail: <reason>".  Requests go to
 * <base_url>/<operation> (so a gateway without base_url creates nothing at
 * its PSP) and their answers are read by _build_generic and
 * _answer_generic.
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
							"SELECT pay._callback_generic(g, $2, $3) FROM pay.gateways g WHERE g.name = $1",
							g, headers, body);
}

static void
AnswerCallback(bool verified, const char *reason, const char **type, char **body)
{
	*type = "text/plain; charset=utf-8";
	*body = verified ? "success" : psprintf("fail: %s", reason);
}

/* Requests and answers: the builder and reader of 80_outbox.sql and 81_psp_answers.sql. */
static SPIPlanPtr build_plan = NULL;
static SPIPlanPtr read_plan = NULL;

static Datum
Build(const ProviderRequest *req)
{
	return ProviderSqlBuild(&build_plan, "SELECT pay._build_generic($1, $2)", req);
}

static Jsonb *
Read(const ProviderAnswer *ans)
{
	return ProviderSqlRead(&read_plan, "SELECT pay._answer_generic($1, $3, $4, $6)", ans);
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
