/*
 * order_state.c — the order state machine, enforced by a C trigger.
 *
 * pay.orders.status may only move along the edges in pay.order_transitions.
 * The trigger runs BEFORE INSERT OR UPDATE for every role (it is ENABLE
 * ALWAYS, so session_replication_role cannot skip it), and each change of
 * status writes one row to pay.order_events in the same transaction.
 *
 * The edges are cached per backend.  Any change to pay.order_transitions
 * fires a statement trigger (cache_invalidate.c) that sends a relcache
 * invalidation for that table, which every backend's callback turns into a
 * reload.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "metrics.h"
#include "pay.h"
#include "trace_context.h"

#define STATUS_LEN_MAX		16
#define TRANSITIONS_MAX		64

typedef struct Transition
{
	char		from[STATUS_LEN_MAX];
	char		to[STATUS_LEN_MAX];
} Transition;

static Transition transitions[TRANSITIONS_MAX];
static int	transitions_count = 0;
static bool transitions_valid = false;
static Oid	transitions_relid = InvalidOid;
static SPIPlanPtr event_insert_plan = NULL;

/* Columns that never change once an order exists: the money and its owner. */
static const char *const immutable_columns[] = {
	"id", "merchant_id", "merchant_order_no", "amount", "currency", "capture_mode"
};

PG_FUNCTION_INFO_V1(pay_order_state_guard);

/* Relcache callback: drop the cached edges when their table changes. */
static void
InvalidateTransitions(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == transitions_relid)
		transitions_valid = false;
}

/* Module set-up, from _PG_init. */
void
OrderStateInit(void)
{
	CacheRegisterRelcacheCallback(InvalidateTransitions, (Datum) 0);
}

/* Copy a status into a fixed buffer, refusing names that do not fit. */
static void
CopyStatus(char *dst, const char *src)
{
	if (strlen(src) >= STATUS_LEN_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("order status \"%s\" in pay.order_transitions is too long", src)));
	strlcpy(dst, src, STATUS_LEN_MAX);
}

/* (Re)load the allowed edges; the caller is connected to SPI. */
static void
LoadTransitions(void)
{
	int			rc;
	uint64		i;

	/* Set first: an invalidation arriving while we read forces a reload. */
	transitions_valid = true;
	transitions_relid = get_relname_relid("order_transitions",
										  get_namespace_oid("pay", false));
	rc = SPI_execute("SELECT from_status, to_status FROM pay.order_transitions",
					 true, TRANSITIONS_MAX + 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.order_transitions: %s", SPI_result_code_string(rc));
	if (SPI_processed > TRANSITIONS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("pay.order_transitions has more than %d rows", TRANSITIONS_MAX)));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		CopyStatus(transitions[i].from, SPI_getvalue(row, desc, 1));
		CopyStatus(transitions[i].to, SPI_getvalue(row, desc, 2));
	}
	transitions_count = (int) SPI_processed;
}

/* Is from -> to an edge of the state machine? */
static bool
TransitionAllowed(const char *from, const char *to)
{
	int			i;

	for (i = 0; i < transitions_count; i++)
		if (strcmp(transitions[i].from, from) == 0 && strcmp(transitions[i].to, to) == 0)
			return true;
	return false;
}

/* Text value of a column, or NULL. */
static char *
ColumnText(HeapTuple tuple, TupleDesc desc, int attnum)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tuple, desc, attnum, &isnull);

	return isnull ? NULL : TextDatumGetCString(value);
}

/* Refuse an UPDATE that changes who owns an order or how much it is for. */
static void
CheckImmutableColumns(HeapTuple oldtup, HeapTuple newtup, TupleDesc desc)
{
	int			i;

	for (i = 0; i < (int) lengthof(immutable_columns); i++)
	{
		int			attnum = SPI_fnumber(desc, immutable_columns[i]);
		Form_pg_attribute att;
		bool		oldnull,
					newnull;
		Datum		oldval;
		Datum		newval;

		if (attnum <= 0)
			continue;			/* a column the table does not have yet (CaptureMode) */
		att = TupleDescAttr(desc, attnum - 1);
		oldval = SPI_getbinval(oldtup, desc, attnum, &oldnull);
		newval = SPI_getbinval(newtup, desc, attnum, &newnull);
		if (oldnull != newnull ||
			(!oldnull && !datum_image_eq(oldval, newval, att->attbyval, att->attlen)))
			ereport(ERROR,
					(errcode(ERRCODE_RESTRICT_VIOLATION),
					 errmsg("column \"%s\" of an order cannot be changed", immutable_columns[i]),
					 errhint("Cancel or refund the order and create a new one.")));
	}
}

/* Append the change to pay.order_events; the caller is connected to SPI. */
static void
RecordEvent(int64 order_id, const char *from, const char *to, const char *cause)
{
	Datum		values[4];
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, TEXTOID};
	int			rc;

	values[0] = Int64GetDatum(order_id);
	values[1] = CStringGetTextDatum(from);
	values[2] = CStringGetTextDatum(to);
	values[3] = CStringGetTextDatum(cause);
	rc = SPI_execute_plan(KeptPlan(&event_insert_plan,
								   "INSERT INTO pay.order_events (order_id, from_status, to_status, cause) "
								   "VALUES ($1, $2, $3, $4)", 4, types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not record the order event: %s", SPI_result_code_string(rc));
}

/*
 * The row to store: updated_at set to the transaction time, status_cause
 * cleared.  Called after SPI_finish so the tuple outlives SPI's memory.
 */
static HeapTuple
FinishRow(Relation rel, HeapTuple newtup)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			cols[2];
	Datum		values[2];
	bool		nulls[2] = {true, false};

	cols[0] = SPI_fnumber(desc, "status_cause");
	values[0] = (Datum) 0;
	cols[1] = SPI_fnumber(desc, "updated_at");
	values[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	return heap_modify_tuple_by_cols(newtup, desc, 2, cols, values, nulls);
}

/* bigint value of a NOT NULL column. */
static int64
ColumnInt64(HeapTuple tuple, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tuple, desc, SPI_fnumber(desc, name), &isnull);

	return isnull ? 0 : DatumGetInt64(value);
}

/* Is a nullable column NULL? */
static bool
ColumnIsNull(HeapTuple tuple, TupleDesc desc, const char *name)
{
	bool		isnull;

	(void) SPI_getbinval(tuple, desc, SPI_fnumber(desc, name), &isnull);
	return isnull;
}

/*
 * The order's capture mode.  A table without the column is one whose
 * extension is not updated yet (the new library is loaded before ALTER
 * EXTENSION pay UPDATE runs): its orders are all captured in one step.
 * (A missing captured_amount or authorized_at reads as NULL likewise:
 * SPI_getbinval answers NULL for a column that does not exist.)
 */
static char *
CaptureMode(HeapTuple tuple, TupleDesc desc)
{
	int			attnum = SPI_fnumber(desc, "capture_mode");

	return attnum > 0 ? ColumnText(tuple, desc, attnum) : pstrdup("automatic");
}

/*
 * What the order paid: the captured amount of a manual capture, else all of
 * amount.  Refunds are bounded by it.
 */
static int64
PaidAmount(HeapTuple tuple, TupleDesc desc)
{
	return ColumnIsNull(tuple, desc, "captured_amount") ?
		ColumnInt64(tuple, desc, "amount") : ColumnInt64(tuple, desc, "captured_amount");
}

/*
 * The amounts of a row: amount positive, captured_amount (a manual
 * capture's) between 1 and amount, refunded_amount between 0 and what was
 * paid; capture_mode automatic or manual.  Checked here rather than by
 * CHECK constraints, which PostgreSQL 15 re-reads and re-plans on every
 * statement that writes the table (about 48k instructions per INSERT or
 * UPDATE of an order); this trigger runs on every such row anyway, for
 * every role.
 */
static void
CheckAmounts(HeapTuple tuple, TupleDesc desc)
{
	int64		amount = ColumnInt64(tuple, desc, "amount");
	int64		refunded = ColumnInt64(tuple, desc, "refunded_amount");
	bool		captured_null = ColumnIsNull(tuple, desc, "captured_amount");
	int64		captured = ColumnInt64(tuple, desc, "captured_amount");
	char	   *mode = CaptureMode(tuple, desc);
	bool		manual = mode != NULL && strcmp(mode, "manual") == 0;

	if (amount <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("order amount must be positive, not %lld", (long long) amount)));
	if (mode == NULL || (!manual && strcmp(mode, "automatic") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("capture_mode of an order must be automatic or manual, not \"%s\"",
						mode ? mode : "null")));
	if (!captured_null && (!manual || captured <= 0 || captured > amount))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("captured_amount %lld of an order must be between 1 and its amount %lld, and only for a manual capture",
						(long long) captured, (long long) amount)));
	if (refunded < 0 || refunded > PaidAmount(tuple, desc))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("refunded_amount %lld of an order must be between 0 and what it paid, %lld",
						(long long) refunded, (long long) PaidAmount(tuple, desc))));
	/* the money invariants, by the checks above */
	Assert(amount > 0);
	Assert(captured_null || (captured > 0 && captured <= amount));
	Assert(refunded >= 0 && refunded <= PaidAmount(tuple, desc) && PaidAmount(tuple, desc) <= amount);
}

/*
 * The two-phase edges carry their own rules: only a manual-capture order is
 * authorized (with the time it was), it is paid only by its capture, and a
 * capture says how much it took.
 */
static void
CheckTwoPhase(HeapTuple newtup, TupleDesc desc, const char *from, const char *to)
{
	char	   *mode = CaptureMode(newtup, desc);

	if (strcmp(to, "authorized") == 0 &&
		(strcmp(mode, "manual") != 0 || ColumnIsNull(newtup, desc, "authorized_at")))
		ereport(ERROR,
				(errcode(ERRCODE_PAY_ILLEGAL_TRANSITION),
				 errmsg("only a manual-capture order with authorized_at set can be authorized")));
	if (strcmp(mode, "manual") == 0 && strcmp(to, "paid") == 0 && strcmp(from, "authorized") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_PAY_ILLEGAL_TRANSITION),
				 errmsg("a manual-capture order is paid only by its capture, not from \"%s\"", from)));
	if (strcmp(from, "authorized") == 0 && strcmp(to, "paid") == 0 &&
		ColumnIsNull(newtup, desc, "captured_amount"))
		ereport(ERROR,
				(errcode(ERRCODE_PAY_ILLEGAL_TRANSITION),
				 errmsg("a capture must set captured_amount")));
}

/*
 * captured_amount is written once, by the capture itself (authorized ->
 * paid): what was paid, and so the refund bound, never moves afterwards.
 */
static void
CheckCapturedOnce(HeapTuple oldtup, HeapTuple newtup, TupleDesc desc, const char *from, const char *to)
{
	bool		was_null = ColumnIsNull(oldtup, desc, "captured_amount");
	bool		is_null = ColumnIsNull(newtup, desc, "captured_amount");
	bool		capture = to != NULL && strcmp(from, "authorized") == 0 && strcmp(to, "paid") == 0;

	if (capture ? !was_null :
		(was_null != is_null ||
		 ColumnInt64(oldtup, desc, "captured_amount") != ColumnInt64(newtup, desc, "captured_amount")))
		ereport(ERROR,
				(errcode(ERRCODE_RESTRICT_VIOLATION),
				 errmsg("column \"captured_amount\" of an order is set only by its capture")));
	/* an order is captured once: nothing before the capture had set it */
	Assert(!capture || was_null);
}

/*
 * A new order starts pending, with sound amounts.  A restored order comes
 * back in the status it had (restore.c); its amounts are checked all the same.
 */
static void
GuardInsert(TriggerData *trig)
{
	TupleDesc	desc = RelationGetDescr(trig->tg_relation);
	char	   *status = ColumnText(trig->tg_trigtuple, desc, SPI_fnumber(desc, "status"));

	CheckAmounts(trig->tg_trigtuple, desc);

	if (status != NULL && strcmp(status, "pending") != 0 && !RestoringRows())
		ereport(ERROR,
				(errcode(ERRCODE_PAY_ILLEGAL_TRANSITION),
				 errmsg("a new order must be pending, not \"%s\"", status)));
	if (!ColumnIsNull(trig->tg_trigtuple, desc, "captured_amount") && !RestoringRows())
		ereport(ERROR,
				(errcode(ERRCODE_RESTRICT_VIOLATION),
				 errmsg("a new order has captured nothing: captured_amount must be null")));
	if (!RestoringRows())
		MetricsCountAtCommit(METRIC_ORDERS_CREATED);
}

/* A status change must be an edge; record it as an event. */
static void
GuardUpdate(TriggerData *trig)
{
	TupleDesc	desc = RelationGetDescr(trig->tg_relation);
	HeapTuple	oldtup = trig->tg_trigtuple;
	HeapTuple	newtup = trig->tg_newtuple;
	int			status_att = SPI_fnumber(desc, "status");
	char	   *from = ColumnText(oldtup, desc, status_att);
	char	   *to = ColumnText(newtup, desc, status_att);
	char	   *cause;
	bool		isnull;
	int64		order_id;

	CheckImmutableColumns(oldtup, newtup, desc);
	CheckAmounts(newtup, desc);
	CheckCapturedOnce(oldtup, newtup, desc, from, to);
	if (to == NULL || strcmp(from, to) == 0)
		return;					/* NOT NULL rejects a NULL status */

	if (!transitions_valid)
		LoadTransitions();
	order_id = DatumGetInt64(SPI_getbinval(oldtup, desc, SPI_fnumber(desc, "id"), &isnull));
	if (!TransitionAllowed(from, to))
		ereport(ERROR,
				(errcode(ERRCODE_PAY_ILLEGAL_TRANSITION),
				 errmsg("illegal order state transition from \"%s\" to \"%s\"", from, to),
				 errdetail("Order %lld is %s; pay.order_transitions has no edge to %s.",
						   (long long) order_id, from, to)));

	CheckTwoPhase(newtup, desc, from, to);
	cause = ColumnText(newtup, desc, SPI_fnumber(desc, "status_cause"));
	RecordEvent(order_id, from, to, cause ? cause : "direct update");
	MetricsCountAtCommit(MetricStatusIndex(to));
}

/* BEFORE INSERT OR UPDATE FOR EACH ROW on pay.orders. */
Datum
pay_order_state_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trig->tg_event) || !TRIGGER_FIRED_FOR_ROW(trig->tg_event))
		elog(ERROR, "pay_order_state_guard must be a BEFORE ROW trigger");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (TRIGGER_FIRED_BY_INSERT(trig->tg_event))
	{
		GuardInsert(trig);
		SPI_finish();
		return PointerGetDatum(TraceStamp(trig->tg_relation, trig->tg_trigtuple));
	}
	if (!TRIGGER_FIRED_BY_UPDATE(trig->tg_event))
		elog(ERROR, "pay_order_state_guard fired for an unexpected event");
	GuardUpdate(trig);
	SPI_finish();
	return PointerGetDatum(FinishRow(trig->tg_relation, trig->tg_newtuple));
}
