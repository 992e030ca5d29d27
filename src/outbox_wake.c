/*
 * outbox_wake.c — wake the dispatcher when a transaction that queued
 * requests commits.  A statement trigger on pay.outbox notes that this
 * transaction wrote to it; the transaction callback then sets the worker's
 * latch at COMMIT (never before: the worker could not see the rows yet).
 * An idle worker sleeps on that latch, so a request goes out within
 * milliseconds and an idle dispatcher uses no CPU.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/proc.h"

#include "dispatcher.h"
#include "pay.h"

static bool wake_at_commit = false;

PG_FUNCTION_INFO_V1(pay_outbox_wake);

/* Set the latch of the worker that serves this database, if any. */
static void
WakeDispatcher(void)
{
	DispatcherShared *s = dispatcher_shared;
	int			procno;
	Oid			db;

	if (s == NULL)
		return;
	SpinLockAcquire(&s->mutex);
	procno = s->pgprocno;
	db = s->database_oid;
	SpinLockRelease(&s->mutex);
	/* A stale number at worst sets another process's latch: a spurious wake-up. */
	if (procno >= 0 && db == MyDatabaseId)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/* Transaction callback: wake the worker when the queuing transaction commits. */
static void
OutboxXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				WakeDispatcher();
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* COMMIT PREPARED is seen at the worker's next periodic look */
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/* Module set-up, from _PG_init. */
void
OutboxWakeInit(void)
{
	RegisterXactCallback(OutboxXactCallback, NULL);
}

/* AFTER INSERT OR UPDATE FOR EACH STATEMENT on pay.outbox. */
Datum
pay_outbox_wake(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pay_outbox_wake must be a trigger");
	if (!dispatcher_am_worker)
		wake_at_commit = true;
	return PointerGetDatum(NULL);
}
