/*
 * json_body.c — pay._json_body: a callback body as a JSON object, or a
 * clear 22P02 naming it.
 *
 * The body is checked with PostgreSQL's own JSON parser, which reports a
 * syntax error as a return code (pg_parse_json), before jsonb_in converts
 * it; so a malformed body is refused without catching jsonb_in's error in
 * a subtransaction, which the PL/pgSQL version did on every callback.
 * Escapes are decoded while checking, so what jsonb cannot hold (\u0000)
 * is refused here too.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(pay_json_body);

static void
NotJson(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("callback body is not %s", what)));
}

/* pay._json_body(body text) -> jsonb, an object */
Datum
pay_json_body(PG_FUNCTION_ARGS)
{
	text	   *body;
	JsonLexContext *lex;
	Jsonb	   *result;

	if (PG_ARGISNULL(0))
		NotJson("valid JSON");
	body = PG_GETARG_TEXT_PP(0);
	lex = makeJsonLexContextCstringLen(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
									   GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &nullSemAction) != JSON_SUCCESS)
		NotJson("valid JSON");
	result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text_to_cstring(body))));
	if (!JB_ROOT_IS_OBJECT(result) || JB_ROOT_IS_SCALAR(result))
		NotJson("a JSON object");
	PG_RETURN_JSONB_P(result);
}
