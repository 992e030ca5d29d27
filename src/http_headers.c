/*
 * http_headers.c — pay._lower_headers: HTTP header names are
 * case-insensitive, so callbacks and merchant requests look headers up in
 * a copy of the headers object with lower-case names.
 *
 * {"Stripe-Signature": "t=1,v1=ab"} -> {"stripe-signature": "t=1,v1=ab"}.
 * Values become strings (a non-string JSON value as its JSON text), JSON
 * null stays null; names that collide once lower-cased keep the value that
 * comes last in jsonb's key order, as jsonb_object_agg did (the SQL
 * function this replaces, which PostgreSQL re-planned on every callback).
 * Anything but an object (NULL too) gives {}.
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "header_lines.h"
#include "pay.h"

PG_FUNCTION_INFO_V1(pay_lower_headers);

/*
 * A jsonb value as the text ->> and jsonb_each_text give, in place: a string
 * as it is, a number or boolean as its JSON text, an array or object as
 * compact JSON; null stays null.  Also callback_event.c's JsonbGetText.
 */
void
JsonbValueAsText(JsonbValue *v)
{
	char	   *s;

	switch (v->type)
	{
		case jbvString:
		case jbvNull:
			return;
		case jbvNumeric:
			s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
			break;
		case jbvBool:
			s = v->val.boolean ? "true" : "false";
			break;
		case jbvBinary:
			s = JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
	v->type = jbvString;
	v->val.string.val = s;
	v->val.string.len = strlen(s);
}

/* pay._lower_headers(headers jsonb) -> jsonb */
Datum
pay_lower_headers(PG_FUNCTION_ARGS)
{
	Jsonb	   *in = PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0);
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	JsonbValue *out;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	if (in != NULL && JB_ROOT_IS_OBJECT(in))
	{
		it = JsonbIteratorInit(&in->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				v.val.string.val = str_tolower(v.val.string.val, v.val.string.len, DEFAULT_COLLATION_OID);
				v.val.string.len = strlen(v.val.string.val);
				pushJsonbValue(&state, WJB_KEY, &v);
			}
			else if (tok == WJB_VALUE)
			{
				JsonbValueAsText(&v);
				pushJsonbValue(&state, WJB_VALUE, &v);
			}
		}
	}
	out = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(out));
}

/*
 * An answer's header lines ("Name: value\r\n" each, as the dispatcher keeps
 * them) as a jsonb object with lower-case names, the shape pay._lower_headers
 * gives, as a Datum: {"wechatpay-serial": "5157..."}.  Blanks around a value are not
 * part of it; a line without a colon, or not valid in the database
 * encoding, is left out; of a repeated name the last line is kept.
 */
Datum
HeaderLinesJsonb(const char *lines)
{
	JsonbParseState *state = NULL;
	const char *cursor = lines ? lines : "";
	HeaderLine	h;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	while (header_lines_next(&cursor, &h))
	{
		JsonbValue	v;

		if (!pg_verifymbstr(h.name, (int) h.name_len, true) || !pg_verifymbstr(h.value, (int) h.value_len, true))
			continue;
		v.type = jbvString;
		v.val.string.val = asc_tolower(h.name, h.name_len);
		v.val.string.len = strlen(v.val.string.val);
		pushJsonbValue(&state, WJB_KEY, &v);
		v.val.string.val = pnstrdup(h.value, h.value_len);
		v.val.string.len = (int) h.value_len;
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}
