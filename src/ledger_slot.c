/*
 * ledger_slot.c — which balance slot a backend writes.  Accounts without a
 * floor keep their balance in several rows; concurrent postings should land
 * on different rows.  pg_backend_pid() % n clusters (pids are not dense);
 * MyBackendId is dense, so n concurrent backends take n different slots.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/backendid.h"

#include "pay.h"

PG_FUNCTION_INFO_V1(pay_backend_slot);

/* The slot of 0 .. slots-1 that this backend writes. */
int
BackendSlot(int slots)
{
	return (MyBackendId > 0 ? MyBackendId : MyProcPid) % slots;
}

/* pay._backend_slot(slots) -> 0 .. slots-1 */
Datum
pay_backend_slot(PG_FUNCTION_ARGS)
{
	int32		slots = PG_GETARG_INT32(0);

	if (slots < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("slots must be positive, not %d", slots)));
	PG_RETURN_INT32(BackendSlot(slots));
}
