/*
 * callback_event.c — the pieces every C callback parser uses: jsonb read
 * the way ->> and -> read it, the normalised event built the way
 * jsonb_build_object builds it, the Content-Type rule, the timestamp window
 * and the gateway's credentials, with the same messages for every
 * provider.
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
