/*
 * provider_sql.c — calling the parts of a provider that are SQL functions
 * (PL/pgSQL parsers and answer readers) from its C
 * description, through plans kept for the session.
 *
 * The row arguments (pay.outbox, pay.gateways, pay.orders) are passed as
 * composite parameters whose type ids come from the calling function; a
 * kept plan or function whose parameter types are not those any more (the
 * extension was dropped and created again in this session) is prepared
 * again.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/value.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "pay.h"
#include "provider.h"

/* The kept plan of sql for these parameter types, prepared again when they changed. */
static SPIPlanPtr
PlanFor(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot != NULL)
	{
		for (int i = 0; i < nargs; i++)
			if (SPI_getargtypeid(*slot, i) != types[i])
			{
				SPI_freeplan(*slot);
				*slot = NULL;
				break;
			}
	}
	return KeptPlan(slot, sql, nargs, types);
}

/* Run the plan; its one column of its one row, moved out of SPI's memory. */
static Datum
OneValue(SPIPlanPtr plan, Datum *values, const char *nulls, const char *what, bool *isnull)
{
	Datum		d;

	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not %s", what);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	if (*isnull)
		return (Datum) 0;
	return SPI_datumTransfer(d, false, -1);
}

Jsonb *
ProviderSqlParse(SPIPlanPtr *slot, const char *sql, const CallbackGateway *g, Jsonb *headers, text *body)
{
	Oid			types[3] = {TEXTOID, JSONBOID, TEXTOID};
	Datum		values[3] = {CStringGetTextDatum(g->name), JsonbPGetDatum(headers), PointerGetDatum(body)};
	char		nulls[3] = {' ', ' ', body ? ' ' : 'n'};
	bool		isnull;
	Datum		event;

	event = OneValue(PlanFor(slot, sql, 3, types), values, nulls,
					 psprintf("parse a %s callback", g->kind), &isnull);
	return isnull ? NULL : DatumGetJsonbP(event);
}

Jsonb *
ProviderSqlRead(SPIPlanPtr *slot, const char *sql, const ProviderAnswer *ans)
{
	Oid			types[6] = {ans->request.outbox_type, ans->request.gateway_type, ans->order_type,
	INT4OID, JSONBOID, TEXTOID};
	Datum		values[6] = {ans->request.outbox, ans->request.gateway, ans->order,
		Int32GetDatum(ans->status), JsonbPGetDatum(ans->headers), PointerGetDatum(ans->body)};
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ans->body ? ' ' : 'n'};
	bool		isnull;
	Datum		summary;

	summary = OneValue(PlanFor(slot, sql, 6, types), values, nulls,
					   psprintf("read the %s answer", ans->request.operation), &isnull);
	return isnull ? NULL : DatumGetJsonbP(summary);
}
