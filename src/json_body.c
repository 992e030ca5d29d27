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
 *
 * Both parsers recurse once per level, so the nesting is measured before
 * either runs (proto/json_depth.c): a body nested deeper than any PSP's
 * events is refused with 54000, a bad callback (400), instead of reaching
 * max_stack_depth, which would be an error of ours (500) that the PSP
 * retries for days.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "json_depth.h"

/* Deeper than any PSP's event (Stripe's are about 6 levels), far below max_stack_depth. */
#define JSON_BODY_DEPTH_MAX 64

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
	if (json_nesting_exceeds(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), JSON_BODY_DEPTH_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("callback body nests deeper than %d levels", JSON_BODY_DEPTH_MAX)));
	lex = makeJsonLexContextCstringLen(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
									   GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &nullSemAction) != JSON_SUCCESS)
		NotJson("valid JSON");
	result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text_to_cstring(body))));
	if (!JB_ROOT_IS_OBJECT(result) || JB_ROOT_IS_SCALAR(result))
		NotJson("a JSON object");
	PG_RETURN_JSONB_P(result);
}
