/*
 * callback_event_sql.c — pay._require_content_type, pay._unix_time and
 * pay._check_window: the SQL face of callback_event.c that the install
 * scripts of versions 0.1 and 0.2 declare.
 *
 * No function of the current version calls them (every callback parser is
 * C), but CREATE EXTENSION pay VERSION '0.2' followed by ALTER EXTENSION
 * UPDATE, which is how an installation of an older version reaches this
 * one, needs each symbol those scripts name to exist in the library.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "callback.h"

PG_FUNCTION_INFO_V1(pay_require_content_type);
PG_FUNCTION_INFO_V1(pay_unix_time);
PG_FUNCTION_INFO_V1(pay_check_window);

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
