/*
 * trace_context.c — W3C trace context in SQL.
 *
 * The transaction-local setting pay.traceparent carries the trace of the
 * request a transaction serves ("00-<32 hex trace id>-<16 hex span id>-<2 hex
 * flags>").  pay-proxy passes the request's traceparent header in the
 * headers of the route functions, which make it the setting
 * (TraceAdoptHeader); a client of SQL may SET LOCAL it itself.  A malformed
 * value is ignored: the rows get no trace of their own.
 *
 * Rows the transaction creates store the trace id: pay.orders and
 * pay.callbacks by their BEFORE INSERT triggers (TraceStamp), pay.outbox by
 * its writers, which fall back to the order's trace id (a callback that
 * carried no trace, the janitor); a callback without one takes its order's
 * when its verdict is recorded.  Every outbound request carries
 * pay._traceparent(trace_id): the same trace id and a new span id.
 *
 * The setting is read only when set: an empty setting costs a pointer test.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "pay.h"
#include "trace_context.h"
#include "traceparent.h"

static char *trace_parent = NULL;

PG_FUNCTION_INFO_V1(pay_trace_id);
PG_FUNCTION_INFO_V1(pay_traceparent);

void
TraceContextInit(void)
{
	DefineCustomStringVariable("pay.traceparent",
							   "W3C traceparent of the request this transaction serves (SET LOCAL).",
							   "Rows created store its trace id; outbound requests they cause carry it. A malformed value is ignored.",
							   &trace_parent, "", PGC_USERSET, 0, NULL, NULL, NULL);
}

/* The trace id of pay.traceparent into out[33]; false when unset or malformed. */
bool
TraceCurrentId(char *out)
{
	if (trace_parent == NULL || trace_parent[0] == '\0' || !TraceParentValid(trace_parent))
		return false;
	memcpy(out, trace_parent + 3, 32);
	out[32] = '\0';
	return true;
}

/*
 * A route function's request headers (lower-cased names) may carry a
 * traceparent: it becomes pay.traceparent for the rest of the transaction,
 * unless the caller set one already.  A malformed one is ignored.
 */
void
TraceAdoptHeader(Jsonb *lower_headers)
{
	JsonbValue *v;
	char	   *value;

	if (trace_parent != NULL && trace_parent[0] != '\0')
		return;
	v = getKeyJsonValueFromContainer(&lower_headers->root, "traceparent", 11, NULL);
	if (v == NULL || v->type != jbvString || v->val.string.len < 55 || v->val.string.len > 512)
		return;
	value = pnstrdup(v->val.string.val, v->val.string.len);
	if (!TraceParentValid(value))
		return;
	(void) set_config_option("pay.traceparent", value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * For a BEFORE INSERT trigger: the row with trace_id set to the current
 * trace, unless it has one or there is none (then the row as it is).
 */
HeapTuple
TraceStamp(Relation rel, HeapTuple tuple)
{
	char		id[33];
	TupleDesc	desc;
	int			att;
	bool		isnull;
	bool		null = false;
	Datum		value;

	if (!TraceCurrentId(id))
		return tuple;
	desc = RelationGetDescr(rel);
	att = SPI_fnumber(desc, "trace_id");
	if (att <= 0)
		return tuple;
	(void) heap_getattr(tuple, att, desc, &isnull);
	if (!isnull)
		return tuple;
	value = CStringGetTextDatum(id);
	return heap_modify_tuple_by_cols(tuple, desc, 1, &att, &value, &null);
}

/* pay._trace_id() -> text: the trace id of pay.traceparent, or NULL. */
Datum
pay_trace_id(PG_FUNCTION_ARGS)
{
	char		id[33];

	if (!TraceCurrentId(id))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(id));
}

/* pay._traceparent(trace_id text) -> text: "00-<trace_id>-<new span id>-01", NULL if trace_id is not an id. */
Datum
pay_traceparent(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	static const char hex[] = "0123456789abcdef";
	uint8		span[8];
	char		out[56];
	int			i;

	if (VARSIZE_ANY_EXHDR(t) != 32 || !TraceHexId(VARDATA_ANY(t), 32))
		PG_RETURN_NULL();
	if (!pg_strong_random(span, sizeof(span)))
		elog(ERROR, "could not generate a span id");
	span[7] |= 1;				/* never all zero, which is invalid */
	memcpy(out, "00-", 3);
	memcpy(out + 3, VARDATA_ANY(t), 32);
	out[35] = '-';
	for (i = 0; i < 8; i++)
	{
		out[36 + 2 * i] = hex[span[i] >> 4];
		out[37 + 2 * i] = hex[span[i] & 15];
	}
	memcpy(out + 52, "-01", 4);
	PG_RETURN_TEXT_P(cstring_to_text(out));
}
