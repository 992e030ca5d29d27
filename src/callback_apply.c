/*
 * callback_apply.c — a new, verified event applied to its order: the one
 * implementation, for callbacks (callback_handle.c), a query's answer
 * (answer_event.c) and a payment a PSP's statement proves
 * (pay.repair_break, through pay._apply_answer_event).
 *
 * The common case first: a payment success naming our order id, for a
 * pending (or failed) order routed to this gateway, with exactly the
 * order's amount and currency: one UPDATE checks and settles it
 * (order_settle.c), then the events that were waiting for the payment are
 * applied.  Everything else locks the order and decides here:
 *
 *   - every event about an order must be in the order's currency: one that
 *     names none, or another, is an anomaly that moves nothing (never "then
 *     the order's": a USD order must not be settled by yuan).  Like an
 *     amount mismatch it is acknowledged (2xx) and its event id used up: it
 *     is authentic and will never apply, so the PSP must not send it for
 *     days;
 *   - a refund is booked (event_refund.c), or deferred until the payment
 *     it refunds arrives;
 *   - the PSP's report of a capture or cancel pay asked for that failed,
 *     or of a refund's outcome, is recorded (event_modification.c);
 *   - a payment must match the amount exactly; a failure or close is
 *     checked when it names an amount;
 *   - money that reached us for an order that cannot take it (cancelled,
 *     or already paid by another transaction) is booked, booked back and
 *     refunded at the PSP (pay._book_and_return), and recorded as an
 *     anomaly: money is always accounted for;
 *   - a capture the PSP reports (payment_captured: what it took of a
 *     manual-capture order's authorization) is checked against what
 *     pay.capture booked, or booked when it was made on the PSP's side;
 *   - a failure or close moves a pending order, a close an authorized one
 *     too (the PSP voided it), and is ignored otherwise;
 *   - a buyer's approval at the PSP queues the request that completes the
 *     payment (event_approved.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "pay.h"
#include "callback.h"
#include "event_apply.h"

static SPIPlanPtr order_by_id_plan = NULL;
static SPIPlanPtr order_by_id_lock_plan = NULL;
static SPIPlanPtr order_by_txn_plan = NULL;
static SPIPlanPtr anomaly_plan = NULL;
static SPIPlanPtr major_plan = NULL;
static SPIPlanPtr return_plan = NULL;
static SPIPlanPtr move_plan = NULL;
static SPIPlanPtr waiting_plan = NULL;
static SPIPlanPtr capture_plan = NULL;
static SPIPlanPtr release_plan = NULL;

#define ORDER_COLUMNS "SELECT id, currency::text, amount, refunded_amount, paid_at IS NOT NULL, status::text, " \
	"psp_txn_id, coalesce(captured_amount, amount), capture_mode = 'manual' FROM pay.orders "

/* ^[0-9]{1,18}$: fits a bigint */
static bool
Digits18(const char *s)
{
	int			n = 0;

	for (; s[n]; n++)
		if (s[n] < '0' || s[n] > '9')
			return false;
	return n >= 1 && n <= 18;
}

/* The first row of the last SPI statement as an EventOrder; false if none. */
static bool
OrderFromRow(EventOrder *o)
{
	TupleDesc	d = SPI_tuptable ? SPI_tuptable->tupdesc : NULL;
	HeapTuple	row;
	bool		isnull;

	if (SPI_processed == 0)
		return false;
	row = SPI_tuptable->vals[0];
	o->id = DatumGetInt64(SPI_getbinval(row, d, 1, &isnull));
	o->currency = SPI_getvalue(row, d, 2);
	o->amount = DatumGetInt64(SPI_getbinval(row, d, 3, &isnull));
	o->refunded = DatumGetInt64(SPI_getbinval(row, d, 4, &isnull));
	o->paid = DatumGetBool(SPI_getbinval(row, d, 5, &isnull));
	o->status = SPI_getvalue(row, d, 6);
	o->psp_txn_id = SPI_getvalue(row, d, 7);
	o->paid_amount = DatumGetInt64(SPI_getbinval(row, d, 8, &isnull));
	o->manual = DatumGetBool(SPI_getbinval(row, d, 9, &isnull));
	return true;
}

bool
EventOrderRead(int64 id, const char *gateway, bool lock, EventOrder *o)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(id), CStringGetTextDatum(gateway)};
	SPIPlanPtr	plan = lock ?
		KeptPlan(&order_by_id_lock_plan, ORDER_COLUMNS "WHERE id = $1 AND gateway = $2 FOR UPDATE", 2, types) :
		KeptPlan(&order_by_id_plan, ORDER_COLUMNS "WHERE id = $1 AND gateway = $2", 2, types);

	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read order %lld", (long long) id);
	return OrderFromRow(o);
}

/* The order routed to this gateway with the PSP's transaction id, locked; false if none. */
static bool
OrderByTransaction(const char *gateway, const char *txn, EventOrder *o)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(gateway), CStringGetTextDatum(txn)};

	if (SPI_execute_plan(KeptPlan(&order_by_txn_plan,
								  ORDER_COLUMNS "WHERE gateway = $1 AND psp_txn_id = $2 FOR UPDATE", 2, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the order of transaction \"%s\"", txn);
	return OrderFromRow(o);
}

/* The order an event is about, locked: our id as the merchant reference, else the PSP's transaction id. */
static void
EventOrderFind(const CallbackGateway *g, Jsonb *e, EventOrder *o)
{
	char	   *ref = JsonbGetText(e, "order_ref");
	char	   *txn = JsonbGetText(e, "psp_txn_id");

	if (ref != NULL && Digits18(ref) && EventOrderRead(pg_strtoint64(ref), g->name, true, o))
		return;
	if (txn != NULL && OrderByTransaction(g->name, txn, o))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("no order routed to gateway %s matches reference \"%s\" or transaction \"%s\"",
					g->name, ref ? ref : "<NULL>", txn ? txn : "<NULL>")));
}

char *
EventAnomaly(const EventOrder *o, const CallbackGateway *g, int64 callback_id, const char *kind, const char *detail)
{
	Oid			types[5] = {INT8OID, TEXTOID, INT8OID, TEXTOID, TEXTOID};
	Datum		values[5] = {Int64GetDatum(o->id), CStringGetTextDatum(g->name), Int64GetDatum(callback_id),
	CStringGetTextDatum(kind), CStringGetTextDatum(detail)};
	char		nulls[5] = {' ', ' ', callback_id != 0 ? ' ' : 'n', ' ', ' '};

	if (SPI_execute_plan(KeptPlan(&anomaly_plan,
								  "INSERT INTO pay.anomalies (order_id, gateway, callback_id, kind, detail) "
								  "VALUES ($1, $2, $3, $4, $5)",
								  5, types),
						 values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record an anomaly of order %lld", (long long) o->id);
	return psprintf("anomaly %s: %s", kind, detail);
}

bool
EventAmount(const char *minor, const char *major, const char *currency, int64 *amount)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		isnull;

	if (minor != NULL)
	{
		if (!Digits18(minor))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("callback amount \"%s\" is not a whole number of minor units", minor)));
		*amount = pg_strtoint64(minor);
		return true;
	}
	if (major == NULL)
		return false;
	values[0] = CStringGetTextDatum(major);
	values[1] = CStringGetTextDatum(currency);
	if (SPI_execute_plan(KeptPlan(&major_plan, "SELECT pay.parse_amount($1, $2)", 2, types),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the amount \"%s\"", major);
	*amount = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return !isnull;
}

/*
 * Is an event waiting for this order's payment (a refund that came first)?
 * Asked after the order's row is locked by the settling UPDATE, in a new
 * statement with a new snapshot (not read-only: that would reuse the
 * snapshot taken before the lock wait): one that waited for the lock sees
 * what its holder deferred (isolation spec callback_races).
 */
static bool
EventsWaiting(int64 order_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(order_id)};

	if (SPI_execute_plan(KeptPlan(&waiting_plan,
								  "SELECT 1 FROM pay.deferred_events WHERE order_id = $1 AND applied_at IS NULL LIMIT 1",
								  1, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.deferred_events");
	return SPI_processed > 0;
}

/*
 * The fast path: a payment naming our order id and a currency settles it
 * if the order is pending or failed, routed to this gateway, in the
 * event's currency and for exactly the event's amount; false, with nothing
 * written, when ApplyLocked must decide (an event without a currency is
 * its anomaly: SettleOrder would take the order's).
 */
static bool
ApplyPayment(const CallbackGateway *g, Jsonb *e, const char *cause, int64 *order_id, char **outcome)
{
	char	   *kind = JsonbGetText(e, "kind");
	char	   *ref = JsonbGetText(e, "order_ref");
	char	   *minor = JsonbGetText(e, "amount");
	SettleRequest r = {0};

	if (kind == NULL || strcmp(kind, "payment_succeeded") != 0 || ref == NULL || !Digits18(ref) ||
		(minor != NULL && !Digits18(minor)))
		return false;
	r.order_id = pg_strtoint64(ref);
	r.gateway = g->name;
	r.currency = JsonbGetText(e, "currency");
	if (r.currency == NULL)
		return false;
	r.has_amount = minor != NULL;
	r.amount = minor ? pg_strtoint64(minor) : 0;
	r.amount_major = minor ? NULL : JsonbGetText(e, "amount_major");
	r.psp_txn_id = JsonbGetText(e, "psp_txn_id");
	r.cause = cause;
	if ((!r.has_amount && r.amount_major == NULL) || !SettleOrder(&r))
		return false;
	*order_id = r.order_id;
	*outcome = EventsWaiting(r.order_id) ? psprintf("paid%s", EventApplyDeferred(g, r.order_id)) : "paid";
	return true;
}

/* pay._book_and_return: money the order cannot take, booked, booked back and refunded at the PSP */
static char *
BookAndReturn(const CallbackGateway *g, const EventOrder *o, Jsonb *e, const EventSource *src, int64 amount,
			  const char *kind)
{
	Oid			types[6] = {INT8OID, TEXTOID, JSONBOID, INT8OID, INT8OID, TEXTOID};
	Datum		values[6] = {Int64GetDatum(o->id), CStringGetTextDatum(g->name), JsonbPGetDatum(e),
		Int64GetDatum(src->callback_id), Int64GetDatum(amount), CStringGetTextDatum(kind)};
	char		nulls[6] = {' ', ' ', ' ', src->callback_id != 0 ? ' ' : 'n', ' ', ' '};

	if (SPI_execute_plan(KeptPlan(&return_plan,
								  "SELECT pay._book_and_return(o, g, $3, $4, $5, $6) "
								  "FROM pay.orders o, pay.gateways g WHERE o.id = $1 AND g.name = $2",
								  6, types),
						 values, nulls, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not return a payment to order %lld", (long long) o->id);
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/* pay._release_hold: an authorized order's wallet hold, if it has one, released as voided. */
static void
ReleaseHold(int64 order_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(order_id)};

	if (SPI_execute_plan(KeptPlan(&release_plan, "SELECT pay._release_hold($1, 'voided')", 1, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not release the hold of order %lld", (long long) order_id);
}

/* A pending (or authorized) order moved to status (failed, cancelled) by the event. */
static void
MovePending(const EventOrder *o, const char *status, const char *cause)
{
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3] = {Int64GetDatum(o->id), CStringGetTextDatum(status), CStringGetTextDatum(cause)};

	if (SPI_execute_plan(KeptPlan(&move_plan,
								  "UPDATE pay.orders SET status = $2, status_cause = $3 WHERE id = $1",
								  3, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not move order %lld to %s", (long long) o->id, status);
}

/*
 * Settle the locked pending (or failed) order for its whole amount: paid,
 * or authorized for a manual-capture one (order_settle.c).
 */
static void
Settle(const EventOrder *o, const char *txn, const char *cause)
{
	SettleRequest r = {0};

	r.order_id = o->id;
	r.currency = o->currency;
	r.has_amount = true;
	r.amount = o->amount;
	r.psp_txn_id = txn;
	r.cause = cause;
	if (!SettleOrder(&r))
		elog(ERROR, "order %lld is no longer payable", (long long) o->id);
}

/* A payment success for the locked order. */
static char *
ApplySuccess(const CallbackGateway *g, const EventOrder *o, Jsonb *e, const EventSource *src, int64 amount)
{
	char	   *txn = JsonbGetText(e, "psp_txn_id");

	if (strcmp(o->status, "pending") == 0 || strcmp(o->status, "failed") == 0)
	{
		Settle(o, txn, src->cause);
		return psprintf("paid%s", EventApplyDeferred(g, o->id));
	}
	if (o->paid && ((txn == NULL && o->psp_txn_id == NULL) ||
					(txn != NULL && o->psp_txn_id != NULL && strcmp(txn, o->psp_txn_id) == 0)))
		return "already paid by this transaction";
	/* a manual-capture order: the PSP repeating its authorization, which waits for pay.capture, is no second payment */
	if (strcmp(o->status, "authorized") == 0 &&
		((txn == NULL && o->psp_txn_id == NULL) ||
		 (txn != NULL && o->psp_txn_id != NULL && strcmp(txn, o->psp_txn_id) == 0)))
		return "already authorized by this transaction";
	if (o->paid)
		return BookAndReturn(g, o, e, src, amount, "double_payment");
	return BookAndReturn(g, o, e, src, amount, psprintf("payment_after_%s", o->status));
}

/* Is the event's transaction the order's (both unknown counts)? */
static bool
SameTransaction(const EventOrder *o, const char *txn)
{
	return (txn == NULL && o->psp_txn_id == NULL) ||
		(txn != NULL && o->psp_txn_id != NULL && strcmp(txn, o->psp_txn_id) == 0);
}

/* pay._capture: a capture the PSP made, booked without asking it of the PSP again. */
static void
CaptureAtPsp(int64 order_id, int64 amount, const char *cause)
{
	Oid			types[3] = {INT8OID, INT8OID, TEXTOID};
	Datum		values[3] = {Int64GetDatum(order_id), Int64GetDatum(amount), CStringGetTextDatum(cause)};

	if (SPI_execute_plan(KeptPlan(&capture_plan,
								  "SELECT pay._capture(o, $2, $3, false) FROM pay.orders o WHERE o.id = $1",
								  3, types),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not capture order %lld", (long long) order_id);
}

/*
 * A capture the PSP reports for the locked order (Stripe's succeeded of a
 * manual-capture intent), amount its captured part.  The usual one follows
 * pay.capture, which booked it: acknowledged when it names what was
 * captured.  An authorized order was captured on the PSP's side: booked
 * now, up to the authorized amount.  A pending one lost its authorization's
 * callback: authorized, then captured.  Money an order cannot take (voided
 * here, captured there) is returned, as any payment after a cancel.
 */
static char *
ApplyCapture(const CallbackGateway *g, EventOrder *o, Jsonb *e, const EventSource *src, int64 amount)
{
	char	   *txn = JsonbGetText(e, "psp_txn_id");

	if (o->paid && SameTransaction(o, txn))
	{
		if (amount == o->paid_amount)
			return "already captured by this transaction";
		return EventAnomaly(o, g, src->callback_id, "amount_mismatch",
							psprintf("callback says " INT64_FORMAT " %s captured, order %lld paid " INT64_FORMAT,
									 amount, o->currency, (long long) o->id, o->paid_amount));
	}
	if (amount > o->amount || (!o->manual && amount != o->amount))
		return EventAnomaly(o, g, src->callback_id, "amount_mismatch",
							psprintf("callback says " INT64_FORMAT " %s captured, order %lld is " INT64_FORMAT " %s",
									 amount, o->currency, (long long) o->id, o->amount, o->currency));
	if (!o->manual)
		return ApplySuccess(g, o, e, src, amount);
	if (strcmp(o->status, "pending") == 0 || strcmp(o->status, "failed") == 0)
	{
		Settle(o, txn, src->cause);
		o->status = "authorized";
		o->psp_txn_id = txn;
	}
	if (strcmp(o->status, "authorized") == 0 && SameTransaction(o, txn))
	{
		CaptureAtPsp(o->id, amount, src->cause);
		return psprintf("captured " INT64_FORMAT "%s", amount, EventApplyDeferred(g, o->id));
	}
	if (o->paid)
		return BookAndReturn(g, o, e, src, amount, "double_payment");
	return BookAndReturn(g, o, e, src, amount, psprintf("payment_after_%s", o->status));
}

/* Everything but the fast path: lock the order and decide. */
static char *
ApplyLocked(const CallbackGateway *g, Jsonb *e, const EventSource *src, int64 *order_id)
{
	char	   *kind = JsonbGetText(e, "kind");
	char	   *currency = JsonbGetText(e, "currency");
	EventOrder	o;
	int64		amount = 0;
	bool		has_amount;

	if (kind != NULL && strcmp(kind, "ignored") == 0)
	{
		char	   *type = JsonbGetText(e, "type");

		return psprintf("ignored event type %s", type ? type : "(none)");
	}
	EventOrderFind(g, e, &o);
	*order_id = o.id;
	if (currency == NULL)
		return EventAnomaly(&o, g, src->callback_id, "currency_missing",
							psprintf("callback names no currency, order %lld is in %s", (long long) o.id, o.currency));
	if (strcmp(currency, o.currency) != 0)
		return EventAnomaly(&o, g, src->callback_id, "currency_mismatch",
							psprintf("callback says %s, order %lld is in %s", currency, (long long) o.id, o.currency));

	if (kind != NULL && strcmp(kind, "refunded") == 0)
		return o.paid ? EventApplyPspRefund(g, &o, e, src->callback_id) : EventDefer(g, &o, e, src->callback_id);
	/* a failed capture or cancel, a refund's outcome: its own amount (event_modification.c) */
	if (kind != NULL && EventIsModification(kind))
		return EventApplyModification(g, &o, e, src);

	has_amount = EventAmount(JsonbGetText(e, "amount"), JsonbGetText(e, "amount_major"), currency, &amount);
	/* a capture's amount is what was taken, up to the authorized amount */
	if (kind != NULL && strcmp(kind, "payment_captured") == 0 && has_amount)
		return ApplyCapture(g, &o, e, src, amount);
	/* a paid order is held to what it paid: a partial capture's confirmation names the captured amount */
	if ((has_amount && amount != (o.paid ? o.paid_amount : o.amount)) ||
		(!has_amount && kind != NULL && (strcmp(kind, "payment_succeeded") == 0 || strcmp(kind, "payment_captured") == 0)))
		return EventAnomaly(&o, g, src->callback_id, "amount_mismatch",
							psprintf("callback says %s %s, order %lld is " INT64_FORMAT " %s",
									 has_amount ? psprintf(INT64_FORMAT, amount) : "(none)", currency,
									 (long long) o.id, o.amount, o.currency));

	if (kind != NULL && strcmp(kind, "payment_succeeded") == 0)
		return ApplySuccess(g, &o, e, src, amount);
	if (kind != NULL && strcmp(kind, "approved") == 0)
		return EventApplyApproval(g, &o, e, src->callback_id);
	if (kind != NULL && strcmp(kind, "payment_failed") == 0)
	{
		if (strcmp(o.status, "pending") != 0)
			return psprintf("failure ignored: order is %s", o.status);
		MovePending(&o, "failed", src->cause);
		return "failed";
	}
	if (kind != NULL && strcmp(kind, "closed") == 0)
	{
		/*
		 * an authorization the PSP voided (it expired there, or was
		 * cancelled on its side) ends as pay.void ends it, without a void
		 * request to the PSP
		 */
		if (strcmp(o.status, "pending") != 0 && strcmp(o.status, "authorized") != 0)
			return psprintf("close ignored: order is %s", o.status);
		if (strcmp(o.status, "authorized") == 0)
			ReleaseHold(o.id);
		MovePending(&o, "cancelled", src->cause);
		return "cancelled";
	}
	elog(ERROR, "event kind \"%s\" is not one pay applies", kind ? kind : "(none)");
}

void
CallbackApply(const CallbackGateway *g, Jsonb *e, int64 callback_id, const char *cause,
			  int64 *order_id, char **outcome)
{
	EventSource src = {callback_id, cause};

	*order_id = 0;
	*outcome = NULL;
	if (!ApplyPayment(g, e, cause, order_id, outcome))
		*outcome = ApplyLocked(g, e, &src, order_id);
}
