/*
 * drop_guard.c — DROP EXTENSION pay (or DROP SCHEMA pay) refuses while the
 * ledger holds data.
 *
 * Dropping the extension drops its tables with it: every order, posting and
 * entry of the books, silently.  An event trigger at ddl_command_start sees
 * the statement before anything is dropped (by sql_drop the tables are
 * gone) and refuses it while pay.orders or pay.postings has a row, unless
 * the superuser-only setting pay.confirm_drop_ledger is on in that session:
 * the deliberate way out, after a backup.
 */
#include "postgres.h"

#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/guc.h"

#include "pay.h"

PG_FUNCTION_INFO_V1(pay_drop_guard);

static bool confirm_drop_ledger = false;

void
DropGuardInit(void)
{
	DefineCustomBoolVariable("pay.confirm_drop_ledger",
							 "Lets DROP EXTENSION pay drop a ledger that holds orders or postings.",
							 "Superuser only.  Take a backup (pg_dump) first: the drop deletes every order and ledger entry.",
							 &confirm_drop_ledger, false, PGC_SUSET, 0, NULL, NULL, NULL);
}

/* Does the list of names of a DROP name "pay"? */
static bool
NamesPay(List *objects)
{
	ListCell   *lc;

	foreach(lc, objects)
	{
		Node	   *name = lfirst(lc);

		if (IsA(name, String) && strcmp(strVal(name), "pay") == 0)
			return true;
	}
	return false;
}

static bool
DropsPay(Node *parsetree)
{
	DropStmt   *drop;

	if (parsetree == NULL || !IsA(parsetree, DropStmt))
		return false;
	drop = (DropStmt *) parsetree;
	return (drop->removeType == OBJECT_EXTENSION || drop->removeType == OBJECT_SCHEMA) &&
		NamesPay(drop->objects);
}

static bool
LedgerHoldsData(void)
{
	bool		holds;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT EXISTS (SELECT FROM pay.orders) OR EXISTS (SELECT FROM pay.postings)",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read pay.orders and pay.postings");
	holds = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return holds;
}

/* Event trigger on ddl_command_start. */
Datum
pay_drop_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trig;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "pay_drop_guard must be an event trigger");
	trig = (EventTriggerData *) fcinfo->context;
	if (!DropsPay(trig->parsetree) || confirm_drop_ledger || !LedgerHoldsData())
		PG_RETURN_VOID();
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop pay: the ledger holds orders or postings"),
			 errdetail("Dropping the extension deletes every order, posting and ledger entry."),
			 errhint("Back the database up first (pg_dump). To drop the ledger deliberately, run SET pay.confirm_drop_ledger = on as a superuser in this session, then drop again.")));
	PG_RETURN_VOID();
}
