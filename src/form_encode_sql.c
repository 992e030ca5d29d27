/*
 * form_encode_sql.c — pay.form_urlencode(jsonb): the form body of a JSON
 * object (src/proto/form_encode.c does the escaping).
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "form_encode.h"
#include "pay.h"

typedef struct FormField
{
	char	   *key;
	int			key_len;
	char	   *value;			/* NULL: left out */
	int			value_len;
} FormField;

PG_FUNCTION_INFO_V1(pay_form_urlencode);

/* Keys in byte order (jsonb keeps them by length first). */
static int
FieldCompare(const void *a, const void *b)
{
	const FormField *fa = (const FormField *) a;
	const FormField *fb = (const FormField *) b;
	int			n = Min(fa->key_len, fb->key_len);
	int			c = memcmp(fa->key, fb->key, n);

	return c != 0 ? c : fa->key_len - fb->key_len;
}

/* Compact JSON text of a nested value: the jsonb text without blanks outside strings. */
static char *
CompactJson(JsonbValue *v, int *len)
{
	Jsonb	   *jb = JsonbValueToJsonb(v);
	char	   *text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	char	   *out = palloc(strlen(text) + 1);
	bool		in_string = false;
	bool		escaped = false;
	int			n = 0;
	char	   *p;

	for (p = text; *p; p++)
	{
		if (in_string)
		{
			if (escaped)
				escaped = false;
			else if (*p == '\\')
				escaped = true;
			else if (*p == '"')
				in_string = false;
		}
		else if (*p == '"')
			in_string = true;
		else if (*p == ' ' || *p == '\n')
			continue;
		out[n++] = *p;
	}
	out[n] = '\0';
	*len = n;
	return out;
}

/* The text of a scalar or nested value, or NULL for JSON null. */
static char *
ValueText(JsonbValue *v, int *len)
{
	char	   *s;

	switch (v->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			*len = v->val.string.len;
			return v->val.string.val;
		case jbvNumeric:
			s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
			*len = strlen(s);
			return s;
		case jbvBool:
			s = v->val.boolean ? "true" : "false";
			*len = strlen(s);
			return s;
		default:
			return CompactJson(v, len);
	}
}

/* Append the escaped form of len bytes. */
static void
AppendEscaped(StringInfo out, const char *s, int len)
{
	enlargeStringInfo(out, FORM_ENCODED_MAX(len) + 1);
	out->len += (int) form_encode(s, len, out->data + out->len);
	out->data[out->len] = '\0';
}

/* pay.form_urlencode(params jsonb) -> "a=1&b=x+y" */
Datum
pay_form_urlencode(PG_FUNCTION_ARGS)
{
	Jsonb	   *params = PG_GETARG_JSONB_P(0);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	FormField  *fields;
	int			count = 0;
	int			capacity;
	int			i;
	bool		first = true;
	StringInfoData out;

	if (!JB_ROOT_IS_OBJECT(params) || JB_ROOT_IS_SCALAR(params))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("params must be a JSON object")));
	capacity = JB_ROOT_COUNT(params);
	fields = palloc0(sizeof(FormField) * Max(capacity, 1));
	it = JsonbIteratorInit(&params->root);
	tok = JsonbIteratorNext(&it, &v, false);	/* WJB_BEGIN_OBJECT */
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		Assert(count < capacity);
		fields[count].key = v.val.string.val;
		fields[count].key_len = v.val.string.len;
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		fields[count].value = ValueText(&v, &fields[count].value_len);
		count++;
	}
	qsort(fields, count, sizeof(FormField), FieldCompare);

	initStringInfo(&out);
	for (i = 0; i < count; i++)
	{
		if (fields[i].value == NULL)
			continue;
		if (!first)
			appendStringInfoChar(&out, '&');
		first = false;
		AppendEscaped(&out, fields[i].key, fields[i].key_len);
		appendStringInfoChar(&out, '=');
		AppendEscaped(&out, fields[i].value, fields[i].value_len);
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
