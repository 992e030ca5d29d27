/*
 * cache_invalidate.c — a statement trigger for the tables pay caches per
 * backend (the state machine's edges, merchants, gateways, routing rules,
 * secrets and master keys):
 * it sends a relcache invalidation of its table, which every backend
 * applies like a catalog change once the transaction commits (this one at
 * its next command, and again if it rolls back); each cache's relcache
 * callback then drops what it built from that table.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(pay_cache_invalidate);

/* AFTER ... FOR EACH STATEMENT on a cached table. */
Datum
pay_cache_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pay_cache_invalidate must be a trigger");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trig->tg_relation));
	return PointerGetDatum(NULL);
}
