/*
 * next_action_wait.c — pay.wait_next_action(order_id, timeout): a checkout
 * waits for the PSP's answer to an order's create request without polling.
 *
 * Shared memory holds 64 condition variables; an order waits on the one of
 * slot (id mod 64).  A row trigger on pay.orders notes the slot of every
 * order whose next_action or status changed, and the transaction callback
 * broadcasts those slots at COMMIT (never before: a waiter woken earlier
 * would read the old row and sleep again).  Orders sharing a slot wake each
 * other; each waiter re-reads its own order and sleeps again if nothing it
 * waits for changed.  Ids are sequential, so consecutive orders never share.
 *
 * The order is read with a new snapshot after every wake-up (SPI in a
 * VOLATILE function), so the answer is seen in READ COMMITTED; a REPEATABLE
 * READ transaction keeps its snapshot and sees it only after the wait.
 *
 * Without shared_preload_libraries there are no condition variables: the
 * waiter sleeps on its latch until the timeout (or an interrupt), then reads
 * the order once more.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "pay.h"

#define NEXT_ACTION_SLOTS 64

/* The longest wait a caller may ask for: a checkout waits seconds, not hours. */
#define WAIT_MAX_US ((int64) 600 * USECS_PER_SEC)

typedef struct NextActionShared
{
	ConditionVariable slot[NEXT_ACTION_SLOTS];
} NextActionShared;

static NextActionShared *next_action_shared = NULL;

/* Slots to broadcast when this transaction commits: bit i is slot i. */
static uint64 slots_to_wake = 0;

/* pay.checkout_wait: how long POST /api/v1/payments waits for the PSP, ms. */
static int	checkout_wait_ms = 2000;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(pay_wait_next_action);
PG_FUNCTION_INFO_V1(pay_next_action_wake);

static int
SlotOf(int64 order_id)
{
	return (int) ((uint64) order_id % NEXT_ACTION_SLOTS);
}

static void
NextActionShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(NextActionShared)));
}

static void
NextActionShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	next_action_shared = ShmemInitStruct("pay next_action waits", sizeof(NextActionShared), &found);
	if (!found)
		for (int i = 0; i < NEXT_ACTION_SLOTS; i++)
			ConditionVariableInit(&next_action_shared->slot[i]);
	LWLockRelease(AddinShmemInitLock);
}

/* Transaction callback: wake the waiters of the orders this transaction changed. */
static void
NextActionXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (next_action_shared != NULL)
				for (int i = 0; i < NEXT_ACTION_SLOTS; i++)
					if (slots_to_wake & ((uint64) 1 << i))
						ConditionVariableBroadcast(&next_action_shared->slot[i]);
			slots_to_wake = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a waiter of a prepared transaction's order sees it at its timeout */
			slots_to_wake = 0;
			break;
		default:
			break;
	}
}

/* Module set-up, from _PG_init: the setting, the callback, shared memory when preloaded. */
void
NextActionWaitInit(void)
{
	DefineCustomIntVariable("pay.checkout_wait",
							"How long POST /api/v1/payments waits for the PSP's answer before it answers 202.",
							"0 answers at once; pay-proxy's statement timeout must be longer.",
							&checkout_wait_ms, 2000, 0, 60000, PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	RegisterXactCallback(NextActionXactCallback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = NextActionShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = NextActionShmemStartup;
}

/*
 * AFTER UPDATE FOR EACH ROW on pay.orders, WHEN next_action or status
 * changed: note the order's slot for the broadcast at commit.
 */
Datum
pay_next_action_wake(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	bool		isnull;
	Datum		id;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		elog(ERROR, "pay_next_action_wake must be an UPDATE trigger");
	id = heap_getattr(td->tg_newtuple, SPI_fnumber(td->tg_relation->rd_att, "id"),
					  td->tg_relation->rd_att, &isnull);
	if (!isnull)
		slots_to_wake |= (uint64) 1 << SlotOf(DatumGetInt64(id));
	return PointerGetDatum(NULL);
}

/* The timeout in microseconds, or 22023 naming it. */
static int64
TimeoutUs(Interval *timeout)
{
	int64		us;

	if (timeout->month != 0 || timeout->day < 0 || timeout->day > 1 || timeout->time < 0 ||
		(timeout->day == 1 && timeout->time > 0))
		us = -1;
	else
		us = timeout->day * USECS_PER_DAY + timeout->time;
	if (us < 0 || us > WAIT_MAX_US)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be between 0 and 10 minutes")));
	return us;
}

/*
 * Read the order with a new snapshot: true when the wait is over (it has a
 * next_action or is no longer pending), with *answer set to its next_action
 * (NULL: SQL NULL) copied out of SPI.  Another merchant's order, to a bound
 * caller, does not exist.
 */
static bool
ReadOrder(int64 order_id, Datum *answer, bool *answer_null)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		args[1];
	HeapTuple	row = NULL;
	TupleDesc	desc = NULL;
	bool		isnull;
	bool		acts_for;
	bool		pending;

	args[0] = Int64GetDatum(order_id);
	if (SPI_execute_plan(KeptPlan(&plan,
								  "SELECT o.status = 'pending', o.next_action, pay._acts_for(o.merchant_id) "
								  "FROM pay.orders o WHERE o.id = $1", 1, types),
						 args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading order " INT64_FORMAT " failed", order_id);
	if (SPI_processed == 1)
	{
		row = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		acts_for = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull)) && !isnull;
	}
	else
		acts_for = false;
	if (!acts_for)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order_id: order " INT64_FORMAT " does not exist", order_id)));
	pending = DatumGetBool(SPI_getbinval(row, desc, 1, &isnull));
	*answer = SPI_getbinval(row, desc, 2, answer_null);
	if (!*answer_null)
		*answer = SPI_datumTransfer(*answer, false, -1);
	return !pending || !*answer_null;
}

/* Sleep until woken for the order's slot or until deadline; true at the deadline. */
static bool
SleepUntil(int64 order_id, TimestampTz deadline)
{
	long		ms;

	ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
	if (ms <= 0)
		return true;
	if (next_action_shared != NULL)
		return ConditionVariableTimedSleep(&next_action_shared->slot[SlotOf(order_id)], ms,
										   PG_WAIT_EXTENSION) && GetCurrentTimestamp() >= deadline;
	/* no shared memory: nothing wakes us but an interrupt */
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	return GetCurrentTimestamp() >= deadline;
}

/* pay.wait_next_action(order_id bigint, timeout interval) RETURNS jsonb */
Datum
pay_wait_next_action(PG_FUNCTION_ARGS)
{
	int64		order_id;
	TimestampTz deadline;
	Datum		answer = (Datum) 0;
	bool		answer_null = true;
	bool		done;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order_id: order null does not exist")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be between 0 and 10 minutes, not null")));
	order_id = PG_GETARG_INT64(0);
	deadline = GetCurrentTimestamp() + TimeoutUs(PG_GETARG_INTERVAL_P(1));

	SPI_connect();
	/* on the wait list before the first read: a commit after it wakes us */
	if (next_action_shared != NULL)
		ConditionVariablePrepareToSleep(&next_action_shared->slot[SlotOf(order_id)]);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		done = ReadOrder(order_id, &answer, &answer_null);
		if (done || SleepUntil(order_id, deadline))
			break;
	}
	if (!done)
		done = ReadOrder(order_id, &answer, &answer_null);	/* an answer at the deadline counts */
	if (next_action_shared != NULL)
		ConditionVariableCancelSleep();
	SPI_finish();
	if (!done || answer_null)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(answer);
}
