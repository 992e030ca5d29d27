/*
 * form_json.c — pay.parse_form(body): an application/x-www-form-urlencoded
 * body as a jsonb object of strings (proto/form.c does the decoding).
 *
 * FormToJsonb serves the callback parsers too, which leave out the fields
 * whose value is empty: signature schemes over form parameters (Alipay's,
 * the generic one) leave them out of the signed string, so an empty field
 * is not signed and must not be read either ("refund_fee=" appended to a
 * signed payment would otherwise make it a refund).
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "callback.h"
#include "form.h"

#define FORM_FIELDS_MAX 200

typedef struct FormState
{
	JsonbParseState *parse;
	char	   *names[FORM_FIELDS_MAX];
	int			count;
	bool		drop_empty;
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

/*
 * form_parse callback: add one field, refusing repeats (parameter
 * pollution), also of a field whose empty value is left out.
 */
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
	if (state->drop_empty && value_len == 0)
		return 0;
	pushJsonbValue(&state->parse, WJB_KEY, &key);
	pushJsonbValue(&state->parse, WJB_VALUE, &val);
	return 0;
}

Jsonb *
FormToJsonb(text *body, bool drop_empty)
{
	size_t		len = VARSIZE_ANY_EXHDR(body);
	FormState	state = {0};
	JsonbValue *result;

	state.drop_empty = drop_empty;
	pushJsonbValue(&state.parse, WJB_BEGIN_OBJECT, NULL);
	if (form_parse(VARDATA_ANY(body), len, palloc(len + 1), AddField, &state) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("form body has an invalid %%-escape")));
	result = pushJsonbValue(&state.parse, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}

/* pay.parse_form(body text) -> jsonb object of decoded string fields, empty ones too */
Datum
pay_parse_form(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(FormToJsonb(PG_GETARG_TEXT_PP(0), false));
}
