/*
 * cache_abort.c — the rollback rule of pay's per-backend caches
 * (lookup_cache.c, secret_cache.c): an entry added by a transaction or
 * subtransaction that rolls back may copy a row that never existed, so
 * such a rollback empties the cache.  One guard per cache: the cache calls
 * CacheAbortNoteAdded when it adds, and its reset function is called on
 * the rollback of any (sub)transaction since the last commit that added.
 */
#include "postgres.h"

#include "access/xact.h"

#include "pay.h"

static void
GuardXactCallback(XactEvent event, void *arg)
{
	CacheAbortGuard *guard = (CacheAbortGuard *) arg;

	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		if (guard->added)
			guard->reset();		/* clears guard->added */
	}
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
			 event == XACT_EVENT_PREPARE)
		guard->added = false;
}

static void
GuardSubXactCallback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	CacheAbortGuard *guard = (CacheAbortGuard *) arg;

	if (event == SUBXACT_EVENT_ABORT_SUB && guard->added)
		guard->reset();
}

void
CacheAbortGuardRegister(CacheAbortGuard *guard)
{
	RegisterXactCallback(GuardXactCallback, guard);
	RegisterSubXactCallback(GuardSubXactCallback, guard);
}
