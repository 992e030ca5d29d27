/*
 * callback_apply.c — a new, verified event applied to its order.
 *
 * The common case in C: a payment success naming our order id, for a
 * pending (or failed) order routed to this gateway, with exactly the
 * order's amount and currency and no event waiting for it.  The order is
 * locked, checked and settled (order_settle.c).  Everything else (refunds,
 * closes, failures, a payment found by the PSP's transaction id, amount
 * mismatches, a payment for an order already paid or cancelled, refunds
 * that came first) goes to pay._apply_event in PL/pgSQL, which looks at the
 * order again under the same lock and decides; so does a success whose
 * amount does not parse, where _apply_event raises the error.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "pay.h"
#include "callback.h"
#include "lookup_cache.h"

extern Datum pay_parse_amount_exp(PG_FUNCTION_ARGS);

static SPIPlanPtr order_plan = NULL;
static SPIPlanPtr waiting_plan = NULL;
static SPIPlanPtr apply_plan = NULL;

/* The order as the fast path needs it. */
typedef struct LockedOrder
{
	int64		id;
	char	   *status;
	int64		amount;
	char	   *currency;
	int64		merchant_id;
} LockedOrder;

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

/* Lock the order with our id ref routed to gateway g; false if there is none. */
static bool
LockOrder(const CallbackGateway *g, const char *ref, LockedOrder *o)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(pg_strtoint64(ref)), CStringGetTextDatum(g->name)};
	bool		isnull;
	HeapTuple	row;
	TupleDesc	desc;

	if (SPI_execute_plan(KeptPlan(&order_plan,
								  "SELECT id, status, amount, currency::text, merchant_id FROM pay.orders "
								  "WHERE id = $1 AND gateway = $2 FOR UPDATE",
								  2, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock order %s", ref);
	if (SPI_processed != 1)
		return false;
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	o->id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
	o->status = SPI_getvalue(row, desc, 2);
	o->amount = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
	o->currency = SPI_getvalue(row, desc, 4);
	o->merchant_id = DatumGetInt64(SPI_getbinval(row, desc, 5, &isnull));
	return true;
}

/*
 * The event's amount in minor units as _event_amount computes it; false
 * when there is none or it is not plain digits (_apply_event decides).
 */
static bool
EventAmount(Jsonb *e, const char *currency, int64 *amount)
{
	char	   *minor = JsonbGetText(e, "amount");
	char	   *major;
	int16		exponent;

	if (minor != NULL)
	{
		if (!Digits18(minor))
			return false;
		*amount = pg_strtoint64(minor);
		return true;
	}
	major = JsonbGetText(e, "amount_major");
	if (major == NULL || !LookupCurrencyExponent(currency, &exponent))
		return false;
	*amount = DatumGetInt64(DirectFunctionCall2(pay_parse_amount_exp, CStringGetTextDatum(major),
												Int32GetDatum(exponent)));
	return true;
}

/* Is an event waiting for this order's payment (a refund that came first)? */
static bool
EventsWaiting(int64 order_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(order_id)};

	if (SPI_execute_plan(KeptPlan(&waiting_plan,
								  "SELECT 1 FROM pay.deferred_events WHERE order_id = $1 AND applied_at IS NULL LIMIT 1",
								  1, types),
						 values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.deferred_events");
	return SPI_processed > 0;
}

/* The fast path; false when _apply_event must decide. */
static bool
ApplyPayment(const CallbackGateway *g, Jsonb *e, int64 callback_id, int64 *order_id, char **outcome)
{
	char	   *kind = JsonbGetText(e, "kind");
	char	   *ref = JsonbGetText(e, "order_ref");
	char	   *currency;
	int64		amount;
	LockedOrder o;

	if (kind == NULL || strcmp(kind, "payment_succeeded") != 0 || ref == NULL || !Digits18(ref) ||
		!LockOrder(g, ref, &o) ||
		(strcmp(o.status, "pending") != 0 && strcmp(o.status, "failed") != 0))
		return false;
	currency = JsonbGetText(e, "currency");
	if (currency == NULL)
		currency = o.currency;
	if (strcmp(currency, o.currency) != 0 || !EventAmount(e, currency, &amount) || amount != o.amount ||
		EventsWaiting(o.id))
		return false;
	SettleOrder(o.id, g->name, o.currency, o.merchant_id, o.amount, JsonbGetText(e, "psp_txn_id"),
				psprintf("callback %lld", (long long) callback_id));
	*order_id = o.id;
	*outcome = "paid";
	return true;
}

/* pay._apply_event(g, e, callback_id) in PL/pgSQL. */
static void
ApplyInPlpgsql(const CallbackGateway *g, Jsonb *e, int64 callback_id, int64 *order_id, char **outcome)
{
	Oid			types[3] = {TEXTOID, JSONBOID, INT8OID};
	Datum		values[3] = {CStringGetTextDatum(g->name), JsonbPGetDatum(e), Int64GetDatum(callback_id)};
	bool		isnull;

	if (SPI_execute_plan(KeptPlan(&apply_plan,
								  "SELECT a.order_id, a.outcome FROM pay.gateways g, pay._apply_event(g, $2, $3) a "
								  "WHERE g.name = $1",
								  3, types),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not apply the event to an order");
	*order_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		*order_id = 0;
	*outcome = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
}

void
CallbackApply(const CallbackGateway *g, Jsonb *e, int64 callback_id, int64 *order_id, char **outcome)
{
	*order_id = 0;
	*outcome = NULL;
	if (!ApplyPayment(g, e, callback_id, order_id, outcome))
		ApplyInPlpgsql(g, e, callback_id, order_id, outcome);
}
