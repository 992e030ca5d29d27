/*
 * callback_event.c — the pieces every C callback parser uses: jsonb read
 * the way ->> and -> read it, the normalised event built the way
 * jsonb_build_object builds it, the Content-Type rule, the timestamp window
 * and the gateway's credentials, with the messages the PL/pgSQL helpers
 * of 85_callbacks.sql had.  The PL/pgSQL parsers (WeChat Pay, generic)
 * reach the same code as pay._require_content_type, pay._unix_time and
 * pay._check_window (the SQL face at the end of this file).
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/timestamp.h"

#include "pay.h"
#include "callback.h"
#include "secret_store.h"

#define TOLERANCE_DEFAULT_S 300

PG_FUNCTION_INFO_V1(pay_require_content_type);
PG_FUNCTION_INFO_V1(pay_unix_time);
PG_FUNCTION_INFO_V1(pay_check_window);

/* The value of key in an object container, or false. */
static bool
ObjectMember(Jsonb *obj, const char *key, JsonbValue *v)
{
	if (obj == NULL || !JB_ROOT_IS_OBJECT(obj) || JB_ROOT_IS_SCALAR(obj))
		return false;
	return getKeyJsonValueFromContainer(&obj->root, key, strlen(key), v) != NULL;
}

char *
JsonbGetText(Jsonb *obj, const char *key)
{
	JsonbValue	v;

	if (!ObjectMember(obj, key, &v))
		return NULL;
	JsonbValueAsText(&v);
	return v.type == jbvNull ? NULL : pnstrdup(v.val.string.val, v.val.string.len);
}

Jsonb *
JsonbGetObject(Jsonb *obj, const char *key)
{
	JsonbValue	v;

	if (!ObjectMember(obj, key, &v) || v.type != jbvBinary ||
		!JsonContainerIsObject(v.val.binary.data))
		return NULL;
	return JsonbValueToJsonb(&v);
}

Jsonb *
EventBuild(const char *const *keys, char *const *values, int n)
{
	JsonbParseState *state = NULL;
	JsonbValue	v;
	int			i;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < n; i++)
	{
		v.type = jbvString;
		v.val.string.val = (char *) keys[i];
		v.val.string.len = strlen(keys[i]);
		pushJsonbValue(&state, WJB_KEY, &v);
		if (values[i] == NULL)
			v.type = jbvNull;
		else
		{
			v.type = jbvString;
			v.val.string.val = values[i];
			v.val.string.len = strlen(values[i]);
		}
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/* lower(btrim(split_part(s, ';', 1))) */
static char *
MediaType(const char *s)
{
	const char *end = strchr(s, ';');
	int			len = end ? (int) (end - s) : (int) strlen(s);

	while (len > 0 && *s == ' ')
		s++, len--;
	while (len > 0 && s[len - 1] == ' ')
		len--;
	return str_tolower(s, len, DEFAULT_COLLATION_OID);
}

void
RequireContentType(Jsonb *headers, const char *const *allowed, int n)
{
	char	   *given = JsonbGetText(headers, "content-type");
	StringInfoData list;
	int			i;

	if (given != NULL)
	{
		char	   *type = MediaType(given);

		for (i = 0; i < n; i++)
			if (strcmp(type, allowed[i]) == 0)
				return;
	}
	initStringInfo(&list);
	for (i = 0; i < n; i++)
		appendStringInfo(&list, "%s%s", i > 0 ? " or " : "", allowed[i]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("Content-Type must be %s, not \"%s\"", list.data, given ? given : "(none)")));
}

TimestampTz
CallbackUnixTime(const char *text, int len)
{
	int64		seconds = 0;
	int			i;
	bool		ok = text != NULL && len >= 1 && len <= 12;

	for (i = 0; ok && i < len; i++)
	{
		ok = text[i] >= '0' && text[i] <= '9';
		seconds = seconds * 10 + (text[i] - '0');
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_PAY_TIMESTAMP_WINDOW),
				 errmsg("callback timestamp \"%s\" is not unix seconds",
						text ? pnstrdup(text, len) : "<NULL>")));
	return (seconds - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC;
}

/* coalesce((g.options->>'tolerance_s')::integer, 300) */
static int32
ToleranceSeconds(const CallbackGateway *g)
{
	char	   *s = JsonbGetText(g->options, "tolerance_s");

	if (s == NULL)
		return TOLERANCE_DEFAULT_S;
	return DatumGetInt32(DirectFunctionCall1(int4in, CStringGetDatum(s)));
}

void
CheckWindow(const CallbackGateway *g, TimestampTz at, bool missing)
{
	int32		tolerance;
	int64		off;

	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_PAY_TIMESTAMP_WINDOW),
				 errmsg("callback timestamp is missing")));
	tolerance = ToleranceSeconds(g);
	off = GetCurrentTimestamp() - at;	/* microseconds; |off| fits: both are in range */
	if (off < 0 ? -off > (int64) tolerance * USECS_PER_SEC : off > (int64) tolerance * USECS_PER_SEC)
		ereport(ERROR,
				(errcode(ERRCODE_PAY_TIMESTAMP_WINDOW),
				 errmsg("callback timestamp is outside the %d s window", tolerance),
				 errdetail("It says %s, %lld s from now.", DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(at))),
						   (long long) ((off + (off < 0 ? -USECS_PER_SEC / 2 : USECS_PER_SEC / 2)) / USECS_PER_SEC))));
}

void
CallbackSignatureInvalid(const char *message)
{
	ereport(ERROR, (errcode(ERRCODE_PAY_SIGNATURE_INVALID), errmsg("%s", message)));
}

char *
GatewayCredential(const CallbackGateway *g, const char *name, size_t *len)
{
	return SecretFetch(psprintf("gateway:%s", g->name), name, len);
}

/*
 * The SQL face, for the PL/pgSQL parsers (WeChat Pay, generic).
 */

/* pay._require_content_type(h jsonb, VARIADIC allowed text[]) -> void */
Datum
pay_require_content_type(PG_FUNCTION_ARGS)
{
	Datum	   *elems;
	bool	   *elem_nulls;
	const char **allowed;
	int			n,
				i;

	if (PG_ARGISNULL(1))
		elog(ERROR, "pay._require_content_type needs the allowed types");
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &elems, &elem_nulls, &n);
	allowed = palloc(Max(n, 1) * sizeof(char *));
	for (i = 0; i < n; i++)
		allowed[i] = elem_nulls[i] ? "" : TextDatumGetCString(elems[i]);
	RequireContentType(PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0), allowed, n);
	PG_RETURN_VOID();
}

/* pay._unix_time(text) -> timestamptz */
Datum
pay_unix_time(PG_FUNCTION_ARGS)
{
	text	   *t = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);

	PG_RETURN_TIMESTAMPTZ(CallbackUnixTime(t ? VARDATA_ANY(t) : NULL, t ? VARSIZE_ANY_EXHDR(t) : 0));
}

/* pay._check_window(g pay.gateways, at timestamptz) -> void */
Datum
pay_check_window(PG_FUNCTION_ARGS)
{
	CallbackGateway g = {0};
	bool		isnull = true;
	Datum		options = (Datum) 0;

	if (!PG_ARGISNULL(0))
		options = GetAttributeByName(PG_GETARG_HEAPTUPLEHEADER(0), "options", &isnull);
	g.options = isnull ? NULL : DatumGetJsonbP(options);
	CheckWindow(&g, PG_ARGISNULL(1) ? 0 : PG_GETARG_TIMESTAMPTZ(1), PG_ARGISNULL(1));
	PG_RETURN_VOID();
}
