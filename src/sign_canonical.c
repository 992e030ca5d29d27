/*
 * sign_canonical.c — SQL glue for the canonical parameter string
 * (crypto/canonical.c): turns a jsonb object into key/value pairs.
 *
 * Values: strings as they are (UTF-8, not escaped); numbers and booleans as
 * their JSON text; nested objects and arrays as compact JSON (no spaces,
 * strings JSON-escaped, object keys in jsonb's order, as jsonb prints them);
 * JSON null and "" are empty and left out.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "canonical.h"
#include "sign_canonical.h"

PG_FUNCTION_INFO_V1(pay_canonical_query);

/* Appends a JSON scalar (inside a nested value) in compact JSON. */
static void
AppendJsonScalar(StringInfo buf, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendStringInfoString(buf, "null");
			break;
		case jbvBool:
			appendStringInfoString(buf, v->val.boolean ? "true" : "false");
			break;
		case jbvNumeric:
			appendStringInfoString(buf,
								   DatumGetCString(DirectFunctionCall1(numeric_out,
																	   NumericGetDatum(v->val.numeric))));
			break;
		case jbvString:
			{
				char	   *s = pnstrdup(v->val.string.val, v->val.string.len);

				escape_json(buf, s);
				pfree(s);
				break;
			}
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

static void AppendCompactJson(StringInfo buf, JsonbContainer *container);

/* A member of a nested object, for sorting. */
typedef struct CompactMember
{
	JsonbValue	key;
	JsonbValue	value;
} CompactMember;

/* Byte order of keys, as in the top-level canonical string. */
static int
CompareMembers(const void *a, const void *b)
{
	const JsonbValue *ka = &((const CompactMember *) a)->key;
	const JsonbValue *kb = &((const CompactMember *) b)->key;
	int			n = memcmp(ka->val.string.val, kb->val.string.val,
						   Min(ka->val.string.len, kb->val.string.len));

	return n != 0 ? n : ka->val.string.len - kb->val.string.len;
}

/* Appends a scalar, or a nested container (jbvBinary) recursively. */
static void
AppendCompactValue(StringInfo buf, JsonbValue *v)
{
	if (v->type == jbvBinary)
		AppendCompactJson(buf, v->val.binary.data);
	else
		AppendJsonScalar(buf, v);
}

/*
 * Appends a nested jsonb container as compact JSON with object keys in byte
 * order at every depth: {"a":1,"b":[1,2]}.  That is what a client gets from
 * json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
 * so merchants can sign nested values without knowing jsonb's own key order.
 */
static void
AppendCompactJson(StringInfo buf, JsonbContainer *container)
{
	JsonbIterator *it = JsonbIteratorInit(container);
	JsonbIteratorToken tok = JsonbIteratorNext(&it, &(JsonbValue) {0}, true);
	JsonbValue	v;
	bool		is_object = (tok == WJB_BEGIN_OBJECT);
	CompactMember *members = NULL;
	int			count = 0;
	int			cap = 0;
	int			i;

	appendStringInfoChar(buf, is_object ? '{' : '[');
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_ELEM)
		{
			if (count++ > 0)
				appendStringInfoChar(buf, ',');
			AppendCompactValue(buf, &v);
		}
		else if (tok == WJB_KEY)
		{
			if (count == cap)
			{
				cap = cap ? cap * 2 : 8;
				members = members ? repalloc(members, cap * sizeof(CompactMember))
					: palloc(cap * sizeof(CompactMember));
			}
			members[count].key = v;
			tok = JsonbIteratorNext(&it, &members[count].value, true);
			Assert(tok == WJB_VALUE);
			count++;
		}
	}
	if (is_object && count > 0)
	{
		qsort(members, count, sizeof(CompactMember), CompareMembers);
		for (i = 0; i < count; i++)
		{
			if (i > 0)
				appendStringInfoChar(buf, ',');
			AppendJsonScalar(buf, &members[i].key);
			appendStringInfoChar(buf, ':');
			AppendCompactValue(buf, &members[i].value);
		}
	}
	appendStringInfoChar(buf, is_object ? '}' : ']');
	if (members)
		pfree(members);
}

/* Sets the pair's value to the canonical text of a top-level jsonb value. */
static void
SetPairValue(CanonicalPair *pair, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			pair->value = NULL;
			pair->value_len = 0;
			break;
		case jbvString:
			pair->value = v->val.string.val;
			pair->value_len = v->val.string.len;
			break;
		case jbvBool:
			pair->value = v->val.boolean ? "true" : "false";
			pair->value_len = strlen(pair->value);
			break;
		case jbvNumeric:
			pair->value = DatumGetCString(DirectFunctionCall1(numeric_out,
															  NumericGetDatum(v->val.numeric)));
			pair->value_len = strlen(pair->value);
			break;
		case jbvBinary:
			{
				StringInfoData buf;

				initStringInfo(&buf);
				AppendCompactJson(&buf, v->val.binary.data);
				pair->value = buf.data;
				pair->value_len = buf.len;
				break;
			}
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

/* Canonical string of a jsonb object, palloc'd (see sign_canonical.h). */
char *
CanonicalQueryJsonb(Jsonb *params, ArrayType *exclude, size_t *len)
{
	CanonicalPair *pairs;
	const char **ex_str = NULL;
	size_t	   *ex_len = NULL;
	size_t		n_ex = 0;
	size_t		n = 0;
	size_t		total;
	uint32		n_keys;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	char	   *out;

	if (!JB_ROOT_IS_OBJECT(params))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("params must be a JSON object"),
				 errdetail("It is a JSON %s.", JB_ROOT_IS_SCALAR(params) ? "scalar" : "array")));
	n_keys = JB_ROOT_COUNT(params);
	if (n_keys > CANONICAL_PAIRS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("params has too many keys"),
				 errdetail("It has %u keys; the limit is %d.", n_keys, CANONICAL_PAIRS_MAX)));

	if (exclude != NULL)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n_elems;
		int			i;

		deconstruct_array(exclude, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n_elems);
		ex_str = palloc(sizeof(char *) * Max(n_elems, 1));
		ex_len = palloc(sizeof(size_t) * Max(n_elems, 1));
		for (i = 0; i < n_elems; i++)
		{
			text	   *t;

			if (nulls[i])
				continue;
			t = DatumGetTextPP(elems[i]);
			ex_str[n_ex] = VARDATA_ANY(t);
			ex_len[n_ex] = VARSIZE_ANY_EXHDR(t);
			n_ex++;
		}
	}

	pairs = palloc(sizeof(CanonicalPair) * Max(n_keys, 1));
	it = JsonbIteratorInit(&params->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			Assert(n < n_keys);
			pairs[n].key = v.val.string.val;
			pairs[n].key_len = v.val.string.len;
			/* Excluded keys need no value (and their nested value no rendering). */
			if (canonical_is_excluded(pairs[n].key, pairs[n].key_len, ex_str, ex_len, n_ex))
			{
				tok = JsonbIteratorNext(&it, &v, true);
				Assert(tok == WJB_VALUE);
				continue;
			}
			tok = JsonbIteratorNext(&it, &v, true);
			Assert(tok == WJB_VALUE);
			SetPairValue(&pairs[n], &v);
			n++;
		}
	}

	total = canonical_build(pairs, n, ex_str, ex_len, n_ex, NULL, 0);
	if (total == (size_t) -1 || total >= MaxAllocSize - VARHDRSZ - 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("canonical string of params is too long")));
	out = palloc(total + 1);
	canonical_build(pairs, n, ex_str, ex_len, n_ex, out, total + 1);
	pfree(pairs);
	*len = total;
	return out;
}

/* pay.canonical_query(params jsonb, exclude text[]) -> the canonical parameter string */
Datum
pay_canonical_query(PG_FUNCTION_ARGS)
{
	Jsonb	   *params = PG_GETARG_JSONB_P(0);
	ArrayType  *exclude = PG_GETARG_ARRAYTYPE_P(1);
	size_t		len;
	char	   *s = CanonicalQueryJsonb(params, exclude, &len);

	PG_RETURN_TEXT_P(cstring_to_text_with_len(s, (int) len));
}
