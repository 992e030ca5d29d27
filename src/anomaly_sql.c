/*
 * anomaly_sql.c — pay._anomaly, the SQL face of EventAnomaly
 * (callback_apply.c): the PL/pgSQL that finds an anomaly (a refund the PSP
 * failed, money booked and returned) records it as the callbacks' C code
 * does, through the same statement.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "pay.h"
#include "event_apply.h"

PG_FUNCTION_INFO_V1(pay_anomaly);

/* A column of a row argument that must be there, else 22023 naming the argument. */
static Datum
RowColumn(FunctionCallInfo fcinfo, int arg, const char *arg_name, const char *column)
{
	bool		isnull = true;
	Datum		d = (Datum) 0;

	if (!PG_ARGISNULL(arg))
		d = GetAttributeByName(PG_GETARG_HEAPTUPLEHEADER(arg), column, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: its %s must not be null", arg_name, column)));
	return d;
}

/* A text argument that must be there, else 22023 naming it. */
static char *
TextArg(FunctionCallInfo fcinfo, int arg, const char *arg_name)
{
	if (PG_ARGISNULL(arg))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", arg_name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(arg));
}

/*
 * pay._anomaly(o pay.orders, g pay.gateways, p_callback bigint, p_kind
 * text, p_detail text) -> text: records the anomaly of order o at gateway
 * g (p_callback NULL: none) and returns "anomaly <kind>: <detail>".
 */
Datum
pay_anomaly(PG_FUNCTION_ARGS)
{
	EventOrder	o = {0};
	CallbackGateway g = {0};
	char	   *kind = TextArg(fcinfo, 3, "p_kind");
	char	   *detail = TextArg(fcinfo, 4, "p_detail");
	MemoryContext cxt = CurrentMemoryContext;
	char	   *outcome;

	o.id = DatumGetInt64(RowColumn(fcinfo, 0, "o", "id"));
	g.name = TextDatumGetCString(RowColumn(fcinfo, 1, "g", "name"));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	outcome = EventAnomaly(&o, &g, PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2), kind, detail);
	outcome = MemoryContextStrdup(cxt, outcome);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}
