/*
 * outbox_count.c — keeps pay.outbox_backlog exact and the outbox bounded.
 *
 * pay.outbox_backlog holds the number of undelivered (pending or in-flight)
 * rows, split into slots so that concurrent enqueuers do not all update one
 * row; each backend updates its own slot (the dispatcher has slot 64).
 * Statement triggers with transition tables count the rows that enter and
 * leave those states, whoever writes pay.outbox, and refuse growth past
 * pay.outbox_pending_max with PY029 (mapped to 429 by pay-proxy; DETAIL is
 * the Retry-After in seconds).
 *
 * In C rather than PL/pgSQL because every payment of a merchant who takes
 * notifications queues one row: the PL/pgSQL trigger cost about 80 us each.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "dispatcher.h"
#include "pay.h"

#define BACKLOG_SLOTS		64	/* slot 64 is the dispatcher's own */

/* pay.outbox_pending_max: most undelivered (pending or in flight) rows. */
static int	outbox_pending_max = 1000000;

static SPIPlanPtr add_plan = NULL;
static SPIPlanPtr take_plan = NULL;

PG_FUNCTION_INFO_V1(pay_outbox_count);

/* Module set-up, from DispatcherInit. */
void
OutboxCountInit(void)
{
	DefineCustomIntVariable("pay.outbox_pending_max",
							"Most undelivered requests the outbox may hold.",
							"Queuing more raises SQLSTATE PY029 instead of letting the outbox grow without limit.",
							&outbox_pending_max, 1000000, 1, PG_INT32_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/* The row of pay.outbox_backlog this backend updates. */
static int
BacklogSlot(void)
{
	return dispatcher_am_worker ? BACKLOG_SLOTS : MyProcPid % BACKLOG_SLOTS;
}

/* How many rows of a transition table are pending or in flight. */
static int64
CountUndelivered(Tuplestorestate *rows, TupleDesc desc)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	int			state_att = SPI_fnumber(desc, "state");
	int64		n = 0;

	tuplestore_rescan(rows);
	while (tuplestore_gettupleslot(rows, true, false, slot))
	{
		bool		isnull;
		Datum		state = slot_getattr(slot, state_att, &isnull);

		if (!isnull)
		{
			char	   *s = TextDatumGetCString(state);

			if (strcmp(s, "pending") == 0 || strcmp(s, "in_flight") == 0)
				n++;
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	return n;
}

/* Take delta (< 0) from this backend's slot. */
static void
TakeFromBacklog(int64 delta)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(delta), Int32GetDatum(BacklogSlot())};
	int			rc;

	rc = SPI_execute_plan(KeptPlan(&take_plan, "UPDATE pay.outbox_backlog SET undelivered = undelivered + $1 "
								   "WHERE slot = $2", 2, types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "pay.outbox_backlog has no slot %d", BacklogSlot());
}

/*
 * Add delta (> 0) to this backend's slot and refuse to grow past the bound:
 * one statement, the slot's new count plus the others' (as a second
 * statement would see them).
 */
static void
AddToBacklog(int64 delta)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(delta), Int32GetDatum(BacklogSlot())};
	bool		isnull;
	int64		total,
				max = (int64) outbox_pending_max;
	int			rc;

	rc = SPI_execute_plan(KeptPlan(&add_plan,
								   "WITH u AS (UPDATE pay.outbox_backlog SET undelivered = undelivered + $1 "
								   "WHERE slot = $2 RETURNING undelivered) "
								   "SELECT u.undelivered + coalesce((SELECT pg_catalog.sum(b.undelivered) "
								   "FROM pay.outbox_backlog b WHERE b.slot <> $2), 0)::bigint FROM u",
								   2, types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pay.outbox_backlog has no slot %d", BacklogSlot());
	total = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (total > max)
		ereport(ERROR,
				(errcode(ERRCODE_PAY_RATE_LIMITED),
				 errmsg("the outbox is full: " INT64_FORMAT " undelivered requests, the limit is " INT64_FORMAT,
						total - delta, max),
				 errdetail("60"),
				 errhint("Delivery is not keeping up or not running (see pay.dispatcher); the limit is the setting pay.outbox_pending_max.")));
}

/* AFTER INSERT / UPDATE / DELETE FOR EACH STATEMENT on pay.outbox, with transition tables. */
Datum
pay_outbox_count(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	int64		delta = 0;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(trig->tg_event))
		elog(ERROR, "pay_outbox_count must be a statement trigger");
	desc = RelationGetDescr(trig->tg_relation);
	if (trig->tg_newtable != NULL)
		delta += CountUndelivered(trig->tg_newtable, desc);
	if (trig->tg_oldtable != NULL)
		delta -= CountUndelivered(trig->tg_oldtable, desc);
	if (delta == 0)
		return PointerGetDatum(NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (delta > 0)
		AddToBacklog(delta);
	else
		TakeFromBacklog(delta);
	SPI_finish();
	return PointerGetDatum(NULL);
}
