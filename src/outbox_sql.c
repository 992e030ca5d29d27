/*
 * outbox_sql.c — small SQL helpers of the outbox: the backlog slot a
 * backend counts in and the bound on undelivered requests.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "dispatcher.h"
#include "pay.h"

#define BACKLOG_SLOTS		64	/* slot 64 is the dispatcher's own */

/* Most undelivered (pending or in flight) requests the outbox holds. */
static int	outbox_pending_max = 1000000;

PG_FUNCTION_INFO_V1(pay_outbox_slot);
PG_FUNCTION_INFO_V1(pay_outbox_pending_max);

/* Module set-up, from _PG_init. */
void
OutboxSqlInit(void)
{
	DefineCustomIntVariable("pay.outbox_pending_max",
							"Most undelivered requests the outbox may hold.",
							"Queuing more raises SQLSTATE PY029 instead of letting the outbox grow without limit.",
							&outbox_pending_max, 1000000, 1, PG_INT32_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/* The row of pay.outbox_backlog this backend updates. */
int
OutboxBacklogSlot(void)
{
	return dispatcher_am_worker ? BACKLOG_SLOTS : MyProcPid % BACKLOG_SLOTS;
}

/* The setting pay.outbox_pending_max. */
int64
OutboxPendingMax(void)
{
	return (int64) outbox_pending_max;
}

/* pay._outbox_slot() -> the row of pay.outbox_backlog this backend updates */
Datum
pay_outbox_slot(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(OutboxBacklogSlot());
}

/* pay._outbox_pending_max() -> the setting pay.outbox_pending_max */
Datum
pay_outbox_pending_max(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(OutboxPendingMax());
}
