/*
 * form_json.c — pay.parse_form(body): an application/x-www-form-urlencoded
 * body as a jsonb object of strings (proto/form.c does the decoding).
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "form.h"

#define FORM_FIELDS_MAX 200

typedef struct FormState
{
	JsonbParseState *parse;
	char	   *names[FORM_FIELDS_MAX];
	int			count;
} FormState;

PG_FUNCTION_INFO_V1(pay_parse_form);

/* A decoded name or value as a jsonb string, which must be valid UTF-8. */
static JsonbValue
FormString(const char *what, const char *s, size_t len)
{
	JsonbValue	v;

	if (!pg_verifymbstr(s, (int) len, true) || memchr(s, '\0', len) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("form %s is not valid UTF-8 text", what)));
	v.type = jbvString;
	v.val.string.val = pnstrdup(s, len);
	v.val.string.len = (int) len;
	return v;
}

/* form_parse callback: add one field, refusing repeats (parameter pollution). */
static int
AddField(void *arg, const char *name, size_t name_len, const char *value, size_t value_len)
{
	FormState  *state = (FormState *) arg;
	JsonbValue	key = FormString("field name", name, name_len);
	JsonbValue	val = FormString("field value", value, value_len);
	int			i;

	if (state->count >= FORM_FIELDS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("form body has more than %d fields", FORM_FIELDS_MAX)));
	for (i = 0; i < state->count; i++)
		if (strcmp(state->names[i], key.val.string.val) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("form field \"%s\" appears more than once", key.val.string.val)));
	state->names[state->count++] = key.val.string.val;
	pushJsonbValue(&state->parse, WJB_KEY, &key);
	pushJsonbValue(&state->parse, WJB_VALUE, &val);
	return 0;
}

/* pay.parse_form(body text) -> jsonb object of decoded string fields */
Datum
pay_parse_form(PG_FUNCTION_ARGS)
{
	text	   *body = PG_GETARG_TEXT_PP(0);
	size_t		len = VARSIZE_ANY_EXHDR(body);
	FormState	state = {0};
	JsonbValue *result;

	pushJsonbValue(&state.parse, WJB_BEGIN_OBJECT, NULL);
	if (form_parse(VARDATA_ANY(body), len, palloc(len + 1), AddField, &state) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("form body has an invalid %%-escape")));
	result = pushJsonbValue(&state.parse, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}
