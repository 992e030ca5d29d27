/*
 * outbox_count.c — keeps pay.outbox_backlog exact and the outbox bounded.
 *
 * pay.outbox_backlog holds the number of undelivered (pending or in-flight)
 * rows, split into slots so that concurrent enqueuers do not all update one
 * row; each backend updates its own slot (the dispatcher has slot 64).
 * Statement triggers with transition tables count the rows that enter and
 * leave those states, whoever writes pay.outbox, and refuse growth past
 * pay.outbox_pending_max with PY029 (mapped to 429 by pay-proxy; DETAIL is
 * the Retry-After in seconds).  Near the bound the total is read exactly
 * every time; far from it, at most once a second (OtherSlots).
 *
 * In C rather than PL/pgSQL because every payment of a merchant who takes
 * notifications queues one row: the PL/pgSQL trigger cost about 80 us each.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "dispatcher.h"
#include "pay.h"

#define BACKLOG_SLOTS		64	/* slot 64 is the dispatcher's own */

/* pay.outbox_pending_max: most undelivered (pending or in flight) rows. */
static int	outbox_pending_max = 1000000;

static SPIPlanPtr slot_plan = NULL;
static SPIPlanPtr others_plan = NULL;

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

/* Add delta to this backend's slot; the slot's new count. */
static int64
AddToSlot(int64 delta)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(delta), Int32GetDatum(BacklogSlot())};
	bool		isnull;
	int			rc;

	/* one plan, whatever the session's plan_cache_mode: a key lookup in a 65-row table */
	rc = SPI_execute_plan(KeptGenericPlan(&slot_plan, "UPDATE pay.outbox_backlog SET undelivered = undelivered OPERATOR(pg_catalog.+) $1 "
								   "WHERE slot = $2 RETURNING undelivered", 2, types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
		elog(ERROR, "pay.outbox_backlog has no slot %d", BacklogSlot());
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The other slots' total.  Far from the bound it is read at most once a
 * second (by transaction start time) and kept: reading 64 rows that every
 * enqueuer updates was a tenth of a payment's cost.  Within half of the
 * bound it is read every time, so the bound holds exactly there; far from
 * it, the others can only have grown by what they queued in that second.
 */
static int64
OtherSlots(int64 own, int64 max)
{
	static int64 kept = -1;
	static TimestampTz kept_at = 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(BacklogSlot())};
	bool		isnull;
	Datum		sum;

	if (kept >= 0 && now - kept_at < USECS_PER_SEC && now >= kept_at && own + kept <= max / 2)
		return kept;
	if (SPI_execute_plan(KeptPlan(&others_plan, "SELECT pg_catalog.sum(undelivered)::bigint "
								  "FROM pay.outbox_backlog WHERE slot <> $1", 1, types),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read pay.outbox_backlog");
	sum = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	kept = isnull ? 0 : DatumGetInt64(sum);
	kept_at = now;
	return kept;
}

/* Add delta (> 0) to this backend's slot; refuse to grow past the bound. */
static void
AddToBacklog(int64 delta)
{
	int64		max = (int64) outbox_pending_max;
	int64		own = AddToSlot(delta);
	int64		total = own + OtherSlots(own, max);

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
	/* A restore brings back rows the source already held within its bound. */
	if (delta > 0 && !RestoringRows())
		AddToBacklog(delta);
	else
		(void) AddToSlot(delta);
	SPI_finish();
	return PointerGetDatum(NULL);
}
