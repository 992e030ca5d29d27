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
 * pay._await_checkout(order_id, timeout) is the merchant API's wait (POST
 * /api/v1/payments): it also ends when the order's create request is no
 * longer queued or in flight (the PSP answered without a next_action, or
 * the request failed), so a row trigger on pay.outbox wakes the order's
 * slot when a create_payment request changes state.
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

/* What ends a wait, read with the order (see ReadOrder). */
typedef enum WaitKind
{
	WAIT_NEXT_ACTION,			/* a next_action, or the order no longer pending */
	WAIT_CHECKOUT				/* the same, or its create request no longer queued or in flight */
} WaitKind;

PG_FUNCTION_INFO_V1(pay_wait_next_action);
PG_FUNCTION_INFO_V1(pay_await_checkout);
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
 * AFTER UPDATE FOR EACH ROW on pay.orders (WHEN next_action or status
 * changed) and on pay.outbox (WHEN a create_payment request changed
 * state): note the slot of the order, whose id is in the column the
 * trigger's argument names, for the broadcast at commit.
 */
Datum
pay_next_action_wake(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	bool		isnull;
	Datum		id;
	int			attnum;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_UPDATE(td->tg_event) || td->tg_trigger->tgnargs != 1)
		elog(ERROR, "pay_next_action_wake must be an UPDATE trigger naming the order id's column");
	attnum = SPI_fnumber(td->tg_relation->rd_att, td->tg_trigger->tgargs[0]);
	if (attnum <= 0)
		elog(ERROR, "pay_next_action_wake: no column \"%s\"", td->tg_trigger->tgargs[0]);
	id = heap_getattr(td->tg_newtuple, attnum, td->tg_relation->rd_att, &isnull);
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
 * Read the order with a new snapshot: true when the wait of this kind is
 * over, with *answer set to its next_action
 * (NULL: SQL NULL) copied out of SPI.  Another merchant's order, to a bound
 * caller, does not exist.
 */
static bool
ReadOrder(WaitKind kind, int64 order_id, Datum *answer, bool *answer_null)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	static const char *const sql[2] = {
		"SELECT o.status <> 'pending' OR o.next_action IS NOT NULL, o.next_action, pay._acts_for(o.merchant_id) "
		"FROM pay.orders o WHERE o.id = $1",
		"SELECT o.status <> 'pending' OR o.next_action IS NOT NULL OR NOT EXISTS ("
		" SELECT 1 FROM pay.outbox x WHERE x.order_id = o.id AND x.kind = 'psp_request'"
		" AND x.operation = 'create_payment' AND x.state IN ('pending', 'in_flight')), "
		"o.next_action, pay._acts_for(o.merchant_id) FROM pay.orders o WHERE o.id = $1"
	};
	Oid			types[1] = {INT8OID};
	Datum		args[1];
	HeapTuple	row = NULL;
	TupleDesc	desc = NULL;
	bool		isnull;
	bool		acts_for;
	bool		done;

	args[0] = Int64GetDatum(order_id);
	if (SPI_execute_plan(KeptPlan(&plans[kind], sql[kind], 1, types), args, NULL, false, 1) != SPI_OK_SELECT)
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
	done = DatumGetBool(SPI_getbinval(row, desc, 1, &isnull));
	*answer = SPI_getbinval(row, desc, 2, answer_null);
	if (!*answer_null)
		*answer = SPI_datumTransfer(*answer, false, -1);
	return done;
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

/*
 * Wait until ReadOrder says the wait is over or the timeout passed; true
 * when it is over, with the order's next_action.  The caller is connected
 * to SPI.
 */
static bool
WaitForOrder(WaitKind kind, FunctionCallInfo fcinfo, Datum *answer, bool *answer_null)
{
	int64		order_id;
	TimestampTz deadline;
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

	/* on the wait list before the first read: a commit after it wakes us */
	if (next_action_shared != NULL)
		ConditionVariablePrepareToSleep(&next_action_shared->slot[SlotOf(order_id)]);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		done = ReadOrder(kind, order_id, answer, answer_null);
		if (done || SleepUntil(order_id, deadline))
			break;
	}
	if (!done)
		done = ReadOrder(kind, order_id, answer, answer_null);	/* an answer at the deadline counts */
	if (next_action_shared != NULL)
		ConditionVariableCancelSleep();
	return done;
}

/* pay.wait_next_action(order_id bigint, timeout interval) RETURNS jsonb: NULL on timeout */
Datum
pay_wait_next_action(PG_FUNCTION_ARGS)
{
	Datum		answer = (Datum) 0;
	bool		answer_null = true;
	bool		done;

	SPI_connect();
	done = WaitForOrder(WAIT_NEXT_ACTION, fcinfo, &answer, &answer_null);
	SPI_finish();
	if (!done || answer_null)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(answer);
}

/* pay._await_checkout(order_id bigint, timeout interval) RETURNS boolean: false on timeout */
Datum
pay_await_checkout(PG_FUNCTION_ARGS)
{
	Datum		answer = (Datum) 0;
	bool		answer_null = true;
	bool		done;

	SPI_connect();
	done = WaitForOrder(WAIT_CHECKOUT, fcinfo, &answer, &answer_null);
	SPI_finish();
	PG_RETURN_BOOL(done);
}
