/*
 * append_only.c — a trigger that refuses UPDATE, DELETE and TRUNCATE, for
 * journals (ledger entries and postings) that may only grow.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(pay_append_only);

/* BEFORE UPDATE OR DELETE (row) / BEFORE TRUNCATE (statement). */
Datum
pay_append_only(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pay_append_only must be a trigger");
	ereport(ERROR,
			(errcode(ERRCODE_RESTRICT_VIOLATION),
			 errmsg("%s is append-only", RelationGetRelationName(trig->tg_relation)),
			 errhint("Post a reversing entry with pay.post instead.")));
	PG_RETURN_NULL();
}
