/*
 * callback_apply.c — a new, verified event applied to its order.
 *
 * The common case in C: a payment success naming our order id, for a
 * pending (or failed) order routed to this gateway, with exactly the
 * order's amount and currency: one UPDATE checks and settles it
 * (order_settle.c), then the events that were waiting for the payment are
 * applied by pay._apply_deferred.  Everything else (refunds, closes,
 * failures, a payment found by the PSP's transaction id, amount or
 * currency mismatches, an event without a currency, a payment for an
 * order already paid or cancelled) goes to
 * pay._apply_event in PL/pgSQL, which locks the order and decides; so does
 * a success whose amount is not plain digits, where _apply_event raises
 * the error.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "pay.h"
#include "callback.h"

static SPIPlanPtr waiting_plan = NULL;
static SPIPlanPtr deferred_plan = NULL;
static SPIPlanPtr apply_plan = NULL;

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

/* pay._apply_deferred(g, order_id): the waiting events applied; "; <outcome>" each. */
static char *
ApplyDeferred(const CallbackGateway *g, int64 order_id)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2] = {CStringGetTextDatum(g->name), Int64GetDatum(order_id)};

	if (SPI_execute_plan(KeptPlan(&deferred_plan,
								  "SELECT pay._apply_deferred(g, $2) FROM pay.gateways g WHERE g.name = $1",
								  2, types),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not apply the events waiting for order %lld", (long long) order_id);
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * The fast path: a payment naming our order id and a currency settles it
 * if the order is pending or failed, routed to this gateway, in the
 * event's currency and for exactly the event's amount; false, with nothing
 * written, when _apply_event must decide (an event without a currency is
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
	*outcome = EventsWaiting(r.order_id) ? psprintf("paid%s", ApplyDeferred(g, r.order_id)) : "paid";
	return true;
}

/*
 * pay._apply_event(g, e, callback_id) in PL/pgSQL; callback_id 0 is NULL
 * there, and the event's own "cause" member says where it came from.
 */
static void
ApplyInPlpgsql(const CallbackGateway *g, Jsonb *e, int64 callback_id, int64 *order_id, char **outcome)
{
	Oid			types[3] = {TEXTOID, JSONBOID, INT8OID};
	Datum		values[3] = {CStringGetTextDatum(g->name), JsonbPGetDatum(e), Int64GetDatum(callback_id)};
	char		nulls[3] = {' ', ' ', callback_id != 0 ? ' ' : 'n'};
	bool		isnull;

	if (SPI_execute_plan(KeptPlan(&apply_plan,
								  "SELECT a.order_id, a.outcome FROM pay.gateways g, pay._apply_event(g, $2, $3) a "
								  "WHERE g.name = $1",
								  3, types),
						 values, nulls, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not apply the event to an order");
	*order_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		*order_id = 0;
	*outcome = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
}

void
CallbackApply(const CallbackGateway *g, Jsonb *e, int64 callback_id, const char *cause,
			  int64 *order_id, char **outcome)
{
	*order_id = 0;
	*outcome = NULL;
	if (!ApplyPayment(g, e, cause, order_id, outcome))
		ApplyInPlpgsql(g, e, callback_id, order_id, outcome);
}
