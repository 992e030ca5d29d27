/*
 * event_refund.c — a refund the PSP reports (it happened there), applied
 * to its order: booked for the part not booked yet, or, when it comes
 * before the payment it refunds, kept in pay.deferred_events until the
 * payment arrives (callback_apply.c applies them then, under the order's
 * lock).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "pay.h"
#include "callback.h"
#include "event_apply.h"

static SPIPlanPtr booked_plan = NULL;
static SPIPlanPtr own_plan = NULL;
static SPIPlanPtr awaited_plan = NULL;
static SPIPlanPtr book_plan = NULL;
static SPIPlanPtr defer_plan = NULL;
static SPIPlanPtr deferred_plan = NULL;
static SPIPlanPtr done_plan = NULL;

/* Does e have member key (even a JSON null)? */
static bool
HasMember(Jsonb *e, const char *key)
{
	JsonbValue	v;

	return getKeyJsonValueFromContainer(&e->root, key, strlen(key), &v) != NULL;
}

/* Was the refund with this key booked for the order already? */
static bool
RefundBooked(int64 order_id, const char *key)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(order_id), CStringGetTextDatum(key)};

	if (SPI_execute_plan(KeptPlan(&booked_plan,
								  "SELECT 1 FROM pay.refunds WHERE order_id = $1 AND idempotency_key = $2",
								  2, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.refunds");
	return SPI_processed > 0;
}

/*
 * pay's own refund of the order that the PSP named psp_refund_id in its
 * answer to our refund request (0 when none): a PSP reporting that refund
 * afterwards reports money pay booked when it asked.
 */
static int64
OwnRefund(int64 order_id, const char *psp_refund_id)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(order_id), CStringGetTextDatum(psp_refund_id)};
	bool		isnull;

	if (SPI_execute_plan(KeptPlan(&own_plan,
								  "SELECT id FROM pay.refunds WHERE order_id = $1 AND psp_refund_id = $2",
								  2, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.refunds");
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * pay's own refund of the order, of this amount, still waiting for the
 * PSP's answer (requested, no PSP id yet), now named psp_refund_id and
 * succeeded; 0 when there is none.  A PSP may report a refund before pay
 * has read its answer to the request: that report is of money pay booked
 * when it asked, and booking it again would count it twice.  (The order
 * is locked, so no other report takes the same refund.)
 */
static int64
AwaitedRefund(int64 order_id, int64 amount, const char *psp_refund_id)
{
	Oid			types[3] = {INT8OID, INT8OID, TEXTOID};
	Datum		values[3] = {Int64GetDatum(order_id), Int64GetDatum(amount), CStringGetTextDatum(psp_refund_id)};
	bool		isnull;

	if (SPI_execute_plan(KeptPlan(&awaited_plan,
								  "UPDATE pay.refunds SET psp_refund_id = $3, psp_status = 'succeeded'"
								  " WHERE id = (SELECT id FROM pay.refunds"
								  "              WHERE order_id = $1 AND amount = $2 AND psp_status = 'requested'"
								  "                AND psp_refund_id IS NULL ORDER BY id LIMIT 1)"
								  " RETURNING id",
								  3, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not update pay.refunds");
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* pay._book_refund: the refund row, the order's refunded amount, the posting, the notification */
static void
BookRefund(int64 order_id, int64 amount, const char *reason, const char *key)
{
	Oid			types[4] = {INT8OID, INT8OID, TEXTOID, TEXTOID};
	Datum		values[4] = {Int64GetDatum(order_id), Int64GetDatum(amount), CStringGetTextDatum(reason),
	CStringGetTextDatum(key)};

	if (SPI_execute_plan(KeptPlan(&book_plan,
								  "SELECT pay._book_refund(o, $2, $3, $4) FROM pay.orders o WHERE o.id = $1",
								  4, types),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not book a refund of order %lld", (long long) order_id);
}

/*
 * The amount the event refunds beyond what the order has booked: a
 * running total (refund_total, Stripe and Alipay) less what is booked, or
 * the one refund's amount; false when it names none.
 */
static bool
NewRefundAmount(const EventOrder *o, Jsonb *e, int64 *amount)
{
	if (HasMember(e, "refund_total") || HasMember(e, "refund_total_major"))
	{
		if (!EventAmount(JsonbGetText(e, "refund_total"), JsonbGetText(e, "refund_total_major"),
						 o->currency, amount))
			return false;
		*amount -= o->refunded;
		return true;
	}
	return EventAmount(JsonbGetText(e, "refund_amount"), NULL, o->currency, amount);
}

char *
EventApplyPspRefund(const CallbackGateway *g, const EventOrder *o, Jsonb *e, int64 callback_id)
{
	char	   *refund_id = JsonbGetText(e, "refund_id");
	char	   *key = psprintf("psp:%s", refund_id ? refund_id : JsonbGetText(e, "event_id"));
	char	   *type = JsonbGetText(e, "type");
	int64		amount;

	if (RefundBooked(o->id, key))
		return "refund already booked";
	if (!NewRefundAmount(o, e, &amount) || amount <= 0)
		return "no new refund amount";
	if (refund_id != NULL)
	{
		int64		own = OwnRefund(o->id, refund_id);

		if (own != 0)
			return psprintf("refund %lld sent by pay, already booked", (long long) own);
		own = AwaitedRefund(o->id, amount, refund_id);
		if (own != 0)
			return psprintf("refund %lld sent by pay, already booked (reported before its answer)", (long long) own);
	}
	if (amount > o->paid_amount - o->refunded)
		return EventAnomaly(o, g, callback_id, "refund_exceeds",
							psprintf("PSP refund of " INT64_FORMAT " exceeds the refundable " INT64_FORMAT,
									 amount, o->paid_amount - o->refunded));
	BookRefund(o->id, amount, psprintf("refunded at the PSP (%s)", type ? type : ""), key);
	return psprintf("refund of " INT64_FORMAT " booked", amount);
}

char *
EventDefer(const CallbackGateway *g, const EventOrder *o, Jsonb *e, int64 callback_id)
{
	Oid			types[4] = {TEXTOID, INT8OID, INT8OID, JSONBOID};
	Datum		values[4] = {CStringGetTextDatum(g->name), Int64GetDatum(o->id), Int64GetDatum(callback_id),
	JsonbPGetDatum(e)};
	char		nulls[4] = {' ', ' ', callback_id != 0 ? ' ' : 'n', ' '};

	if (SPI_execute_plan(KeptPlan(&defer_plan,
								  "INSERT INTO pay.deferred_events (gateway, order_id, callback_id, event) "
								  "VALUES ($1, $2, $3, $4)",
								  4, types),
						 values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not defer an event of order %lld", (long long) o->id);
	return "refund deferred until the payment arrives";
}

/* Mark deferred event id applied. */
static void
DeferredDone(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	if (SPI_execute_plan(KeptPlan(&done_plan, "UPDATE pay.deferred_events SET applied_at = now() WHERE id = $1",
								  1, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not mark deferred event %lld applied", (long long) id);
}

/*
 * The events that were waiting for the order's payment, applied now that
 * it is paid, in the order they came: "; <outcome>" each, or "".  The
 * caller holds the order's lock.
 */
char *
EventApplyDeferred(const CallbackGateway *g, int64 order_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(order_id)};
	StringInfoData outcome;
	SPITupleTable *waiting;
	uint64		n;

	if (SPI_execute_plan(KeptPlan(&deferred_plan,
								  "SELECT id, callback_id, event FROM pay.deferred_events "
								  "WHERE order_id = $1 AND applied_at IS NULL ORDER BY id",
								  1, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.deferred_events");
	waiting = SPI_tuptable;
	n = SPI_processed;
	initStringInfo(&outcome);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = waiting->vals[i];
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(row, waiting->tupdesc, 1, &isnull));
		Datum		callback = SPI_getbinval(row, waiting->tupdesc, 2, &isnull);
		int64		callback_id = isnull ? 0 : DatumGetInt64(callback);
		Jsonb	   *e = DatumGetJsonbPCopy(SPI_getbinval(row, waiting->tupdesc, 3, &isnull));
		EventOrder	o;

		/* each refund booked changes the order the next one sees */
		if (!EventOrderRead(order_id, g->name, false, &o))
			elog(ERROR, "order %lld vanished", (long long) order_id);
		appendStringInfo(&outcome, "; %s", EventApplyPspRefund(g, &o, e, callback_id));
		DeferredDone(id);
	}
	return outcome.data;
}
