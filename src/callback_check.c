/*
 * callback_check.c — the one rule of a pay.callbacks row, its verdict
 * (received | accepted | duplicate | rejected | error), checked by a BEFORE
 * INSERT OR UPDATE row trigger (ENABLE ALWAYS) rather than a CHECK
 * constraint: PostgreSQL 15 re-reads and re-plans a table's CHECK
 * constraints in every statement that writes it, and every callback writes
 * its row twice (recorded as received, then its verdict).  A bad row is
 * refused with check_violation, as a CHECK would refuse it.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/rel.h"

#include "trace_context.h"

PG_FUNCTION_INFO_V1(pay_callback_check);

Datum
pay_callback_check(PG_FUNCTION_ARGS)
{
	static const char *const verdicts[] = {"received", "accepted", "duplicate", "rejected", "error"};
	TriggerData *trig = (TriggerData *) fcinfo->context;
	HeapTuple	row;
	TupleDesc	desc;
	char	   *verdict;
	size_t		i;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trig->tg_event))
		elog(ERROR, "pay_callback_check must be a BEFORE row trigger");
	row = TRIGGER_FIRED_BY_UPDATE(trig->tg_event) ? trig->tg_newtuple :
		TraceStamp(trig->tg_relation, trig->tg_trigtuple);	/* a new callback stores its trace */
	desc = RelationGetDescr(trig->tg_relation);
	verdict = SPI_getvalue(row, desc, SPI_fnumber(desc, "verdict"));
	if (verdict == NULL)
		return PointerGetDatum(row);	/* NOT NULL refuses it (23502) */
	for (i = 0; i < lengthof(verdicts); i++)
		if (strcmp(verdict, verdicts[i]) == 0)
			return PointerGetDatum(row);
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("callback verdict must be received, accepted, duplicate, rejected or error, not \"%s\"",
					verdict)));
	return PointerGetDatum(NULL);	/* not reached */
}
