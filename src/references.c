/*
 * references.c — references between pay's tables, checked by triggers
 * instead of foreign keys.
 *
 * pg_restore -j loads the tables of a dump in parallel, each in its own
 * session, and does not wait for a referenced table's rows before loading
 * a referencing one: a foreign key between two of pay's tables made such a
 * restore fail (secrets before master_keys, account balances before their
 * accounts).  The same rules as row triggers can step aside while a
 * superuser's COPY restores rows (restore.c) and hold for every other write.
 *
 *   pay._reference_exists(column, parent, parent_column): BEFORE INSERT OR
 *     UPDATE on the referencing table; a non-NULL column must name a row of
 *     parent (what a foreign key checks).
 *   pay._reference_unused(column, child, child_column): BEFORE DELETE OR
 *     UPDATE on the referenced table; a row that child still refers to
 *     cannot go or change its key (ON DELETE NO ACTION).
 *
 * Both refuse with foreign_key_violation, as a foreign key would.  The
 * statement of each trigger is prepared once per backend.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "pay.h"

#define REFERENCE_TRIGGERS_MAX	32

typedef struct ReferencePlan
{
	Oid			trigger;
	SPIPlanPtr	plan;
} ReferencePlan;

static ReferencePlan plans[REFERENCE_TRIGGERS_MAX];
static int	plans_count = 0;

PG_FUNCTION_INFO_V1(pay_reference_exists);
PG_FUNCTION_INFO_V1(pay_reference_unused);

/* "SELECT FROM table WHERE column = $1 LIMIT 1", prepared once per trigger. */
static SPIPlanPtr
LookupPlan(Trigger *tg, const char *table, const char *column, Oid type)
{
	char	   *sql;
	int			i;

	for (i = 0; i < plans_count; i++)
		if (plans[i].trigger == tg->tgoid)
			return plans[i].plan;
	if (plans_count == REFERENCE_TRIGGERS_MAX)
		elog(ERROR, "more than %d reference triggers", REFERENCE_TRIGGERS_MAX);
	/* table is schema-qualified in the trigger's arguments, never user input */
	sql = psprintf("SELECT FROM %s WHERE %s OPERATOR(pg_catalog.=) $1 LIMIT 1",
				   table, quote_identifier(column));
	plans[plans_count].plan = NULL;
	(void) KeptPlan(&plans[plans_count].plan, sql, 1, &type);
	plans[plans_count].trigger = tg->tgoid;
	return plans[plans_count++].plan;
}

/* Is there a row of table whose column equals value? */
static bool
RowExists(Trigger *tg, const char *table, const char *column, Oid type, Datum value)
{
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(LookupPlan(tg, table, column, type), &value, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read %s", table);
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

static TriggerData *
RowTrigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trig->tg_event) || trig->tg_trigger->tgnargs != 3)
		elog(ERROR, "%s must be a BEFORE ROW trigger with 3 arguments", name);
	return trig;
}

/* The value of a column of a row, and its type; false if NULL. */
static bool
ColumnValue(TriggerData *trig, HeapTuple row, const char *column, Datum *value, Oid *type)
{
	TupleDesc	desc = RelationGetDescr(trig->tg_relation);
	int			attnum = SPI_fnumber(desc, column);
	bool		isnull;

	if (attnum <= 0)
		elog(ERROR, "table \"%s\" has no column \"%s\"", RelationGetRelationName(trig->tg_relation), column);
	*value = SPI_getbinval(row, desc, attnum, &isnull);
	*type = SPI_gettypeid(desc, attnum);
	return !isnull;
}

Datum
pay_reference_exists(PG_FUNCTION_ARGS)
{
	TriggerData *trig = RowTrigger(fcinfo, "pay_reference_exists");
	char	  **args = trig->tg_trigger->tgargs;
	HeapTuple	row = TRIGGER_FIRED_BY_UPDATE(trig->tg_event) ? trig->tg_newtuple : trig->tg_trigtuple;
	Datum		value;
	Oid			type;

	if (TRIGGER_FIRED_BY_DELETE(trig->tg_event))
		elog(ERROR, "pay_reference_exists must fire on INSERT or UPDATE");
	if (ColumnValue(trig, row, args[0], &value, &type) && !RestoringRows() &&
		!RowExists(trig->tg_trigger, args[1], args[2], type, value))
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("%s.%s %s is not in %s", RelationGetRelationName(trig->tg_relation), args[0],
						SPI_getvalue(row, RelationGetDescr(trig->tg_relation),
									 SPI_fnumber(RelationGetDescr(trig->tg_relation), args[0])),
						args[1])));
	return PointerGetDatum(row);
}

Datum
pay_reference_unused(PG_FUNCTION_ARGS)
{
	TriggerData *trig = RowTrigger(fcinfo, "pay_reference_unused");
	char	  **args = trig->tg_trigger->tgargs;
	HeapTuple	old = trig->tg_trigtuple;
	HeapTuple	result = TRIGGER_FIRED_BY_UPDATE(trig->tg_event) ? trig->tg_newtuple : old;
	Datum		value;
	Datum		newvalue;
	Oid			type;

	if (TRIGGER_FIRED_BY_INSERT(trig->tg_event))
		elog(ERROR, "pay_reference_unused must fire on DELETE or UPDATE");
	if (!ColumnValue(trig, old, args[0], &value, &type))
		return PointerGetDatum(result);
	/* an UPDATE that keeps the key keeps every reference */
	if (TRIGGER_FIRED_BY_UPDATE(trig->tg_event) &&
		ColumnValue(trig, result, args[0], &newvalue, &type) &&
		datumIsEqual(value, newvalue, get_typbyval(type), get_typlen(type)))
		return PointerGetDatum(result);
	if (RowExists(trig->tg_trigger, args[1], args[2], type, value))
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("%s.%s %s is still referenced from %s", RelationGetRelationName(trig->tg_relation),
						args[0], SPI_getvalue(old, RelationGetDescr(trig->tg_relation),
											  SPI_fnumber(RelationGetDescr(trig->tg_relation), args[0])),
						args[1])));
	return PointerGetDatum(result);
}
