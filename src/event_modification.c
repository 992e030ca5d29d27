/*
 * event_modification.c — the outcome of a request pay sent the PSP
 * (capture, cancel, refund), reported later by the PSP, applied to its
 * order.  For a PSP whose answer to such a request only says "received"
 * (Adyen), this is where the request's outcome lands.
 *
 * pay moves an order when it asks (pay.capture, pay.void and pay.refund
 * book at once and queue the request), so the report is mostly a
 * confirmation; what it says otherwise is acted on:
 *
 *   captured         paid with that amount: confirmed; an order still
 *                    authorized was captured at the PSP by someone else:
 *                    pay.capture books it, and the capture request it
 *                    queues is retired unsent (the PSP has captured);
 *   capture_failed   the order pay booked as paid was not captured: an
 *                    anomaly for a person;
 *   cancelled        a cancelled order: confirmed; a pending one is
 *                    cancelled; an authorized one is voided as pay.void
 *                    does, its void request retired unsent;
 *   cancel_failed    a cancelled order whose authorization stays open at
 *                    the PSP: an anomaly;
 *   refund_succeeded, refund_failed
 *                    the refund pay sent, found by the PSP's refund id or,
 *                    before the request's answer gave that id, by amount
 *                    among the refunds still waiting for the PSP's word:
 *                    succeeded or failed (a failed refund was booked: an
 *                    anomaly, as 81_psp_answers.sql records one); a failed
 *                    refund stays failed, a succeeded one may still fail.  A
 *                    refund pay did not send (made at the PSP) is booked
 *                    as any PSP-reported refund (event_refund.c).
 *
 * The event's members: amount (minor units, the modification's), reason
 * (the PSP's words of a failure), refund_id (the PSP's id of a refund).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "pay.h"
#include "callback.h"
#include "event_apply.h"

static SPIPlanPtr capture_plan = NULL;
static SPIPlanPtr void_plan = NULL;
static SPIPlanPtr retire_plan = NULL;
static SPIPlanPtr cancel_plan = NULL;
static SPIPlanPtr refund_find_plan = NULL;
static SPIPlanPtr refund_set_plan = NULL;

bool
EventIsModification(const char *kind)
{
	static const char *const kinds[] = {"captured", "capture_failed", "cancelled", "cancel_failed",
	"refund_succeeded", "refund_failed"};

	for (int i = 0; i < (int) lengthof(kinds); i++)
		if (strcmp(kind, kinds[i]) == 0)
			return true;
	return false;
}

/* The event's amount in minor units, else 22023 (every report of a capture or refund names one). */
static int64
Amount(const EventOrder *o, Jsonb *e)
{
	int64		amount;

	if (!EventAmount(JsonbGetText(e, "amount"), NULL, o->currency, &amount))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s event names no amount", JsonbGetText(e, "kind"))));
	return amount;
}

/* The PSP's words, for a message. */
static const char *
Reason(Jsonb *e)
{
	char	   *reason = JsonbGetText(e, "reason");

	return reason && reason[0] ? reason : "no reason given";
}

/* Run a kept one-statement plan over (order id[, amount]); false if no row. */
static bool
Run(SPIPlanPtr *slot, const char *sql, int nargs, int64 order_id, int64 amount)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2] = {Int64GetDatum(order_id), Int64GetDatum(amount)};

	if (SPI_execute_plan(KeptPlan(slot, sql, nargs, types), values, NULL, false, 0) < 0)
		elog(ERROR, "could not run \"%s\"", sql);
	return SPI_processed > 0;
}

/*
 * The request the caller's pay.capture or pay.void just queued, retired
 * unsent: the PSP did it already.  In this transaction nothing can have
 * claimed it.
 */
static void
Retire(int64 order_id, const char *operation, const char *cause)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(psprintf("psp_%lld_%s", (long long) order_id, operation)),
	CStringGetTextDatum(psprintf("not sent: the PSP reported it done (%s)", cause))};

	if (SPI_execute_plan(KeptPlan(&retire_plan,
								  "UPDATE pay.outbox SET state = 'done', finished_at = now(), last_error = $2 "
								  "WHERE idempotency_key = $1 AND kind = 'psp_request' AND state = 'pending' "
								  "AND attempts = 0",
								  2, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not retire the %s request of order %lld", operation, (long long) order_id);
}

static char *
Captured(const CallbackGateway *g, const EventOrder *o, Jsonb *e, const EventSource *src)
{
	int64		amount = Amount(o, e);

	if (strcmp(o->status, "authorized") == 0)
	{
		if (amount > o->amount)
			return EventAnomaly(o, g, src->callback_id, "capture_exceeds",
								psprintf("the PSP captured " INT64_FORMAT " %s of order %lld, authorized for " INT64_FORMAT,
										 amount, o->currency, (long long) o->id, o->amount));
		Run(&capture_plan, "SELECT pay.capture($1, $2)", 2, o->id, amount);
		Retire(o->id, "capture", src->cause);
		return psprintf("captured " INT64_FORMAT " at the PSP: paid", amount);
	}
	if (o->paid && o->paid_amount == amount)
		return psprintf("capture of " INT64_FORMAT " confirmed", amount);
	return EventAnomaly(o, g, src->callback_id, "capture_mismatch",
						psprintf("the PSP captured " INT64_FORMAT " %s of order %lld, which is %s here%s", amount,
								 o->currency, (long long) o->id, o->status,
								 o->paid ? psprintf(" with " INT64_FORMAT " paid", o->paid_amount) : ""));
}

static char *
Cancelled(const CallbackGateway *g, const EventOrder *o, const EventSource *src)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(o->id), CStringGetTextDatum(src->cause)};

	if (strcmp(o->status, "cancelled") == 0)
		return "cancellation confirmed";
	if (strcmp(o->status, "authorized") == 0)
	{
		Run(&void_plan, "SELECT pay.void($1)", 1, o->id, 0);
		Retire(o->id, "void", src->cause);
		return "cancelled at the PSP: voided";
	}
	if (strcmp(o->status, "pending") == 0)
	{
		if (SPI_execute_plan(KeptPlan(&cancel_plan,
									  "UPDATE pay.orders SET status = 'cancelled', status_cause = $2 WHERE id = $1",
									  2, types),
							 values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not cancel order %lld", (long long) o->id);
		return "cancelled";
	}
	return EventAnomaly(o, g, src->callback_id, "cancel_mismatch",
						psprintf("the PSP cancelled the payment of order %lld, which is %s here",
								 (long long) o->id, o->status));
}

/*
 * The refund of the order the event reports, locked: by the PSP's refund
 * id, else the oldest refund of that amount still waiting for the PSP's
 * word and not yet named (its request's answer may come after the report).
 * Its id, and its psp_status in *status; 0 if none.
 */
static int64
FindRefund(const EventOrder *o, const char *psp_refund_id, int64 amount, char **status)
{
	Oid			types[3] = {INT8OID, TEXTOID, INT8OID};
	Datum		values[3] = {Int64GetDatum(o->id), CStringGetTextDatum(psp_refund_id), Int64GetDatum(amount)};
	bool		isnull;

	if (SPI_execute_plan(KeptPlan(&refund_find_plan,
								  "SELECT id, psp_status FROM pay.refunds "
								  "WHERE order_id = $1 AND (psp_refund_id = $2 OR "
								  "(psp_refund_id IS NULL AND psp_status = 'requested' AND amount = $3)) "
								  "ORDER BY psp_refund_id IS NULL, id LIMIT 1 FOR UPDATE",
								  3, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the refunds of order %lld", (long long) o->id);
	if (SPI_processed == 0)
		return 0;
	*status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static char *
Refund(const CallbackGateway *g, const EventOrder *o, Jsonb *e, const EventSource *src, bool succeeded)
{
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	char	   *psp_refund_id = JsonbGetText(e, "refund_id");
	int64		amount = Amount(o, e);
	char	   *was = NULL;
	int64		refund_id = FindRefund(o, psp_refund_id ? psp_refund_id : "", amount, &was);
	Datum		values[3];

	if (refund_id == 0)
	{
		if (!succeeded)
			return "failure of a refund pay did not send: ignored";
		/* made at the PSP: booked as any refund the PSP reports */
		return o->paid ? EventApplyPspRefund(g, o, e, src->callback_id) : EventDefer(g, o, e, src->callback_id);
	}
	/*
	 * Once failed, a refund stays failed; a success can still fail later
	 * (Adyen's REFUND_FAILED, REFUNDED_REVERSED after its REFUND).
	 */
	if (was != NULL && (strcmp(was, "failed") == 0 || (succeeded && strcmp(was, "succeeded") == 0)))
		return psprintf("refund %lld already %s", (long long) refund_id, was);
	values[0] = Int64GetDatum(refund_id);
	values[1] = CStringGetTextDatum(psp_refund_id ? psp_refund_id : "");
	values[2] = CStringGetTextDatum(succeeded ? "succeeded" : "failed");
	if (SPI_execute_plan(KeptPlan(&refund_set_plan,
								  "UPDATE pay.refunds SET psp_refund_id = coalesce(psp_refund_id, nullif($2, '')), "
								  "psp_status = $3 WHERE id = $1",
								  3, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the outcome of refund %lld", (long long) refund_id);
	if (!succeeded)
		return EventAnomaly(o, g, src->callback_id, "refund_failed",
							psprintf("the PSP did not refund " INT64_FORMAT " %s (refund %lld): %s", amount,
									 o->currency, (long long) refund_id, Reason(e)));
	return psprintf("refund %lld succeeded", (long long) refund_id);
}

char *
EventApplyModification(const CallbackGateway *g, const EventOrder *o, Jsonb *e, const EventSource *src)
{
	char	   *kind = JsonbGetText(e, "kind");

	if (strcmp(kind, "captured") == 0)
		return Captured(g, o, e, src);
	if (strcmp(kind, "capture_failed") == 0)
		return EventAnomaly(o, g, src->callback_id, "capture_failed",
							psprintf("the PSP did not capture " INT64_FORMAT " %s of order %lld, which is %s here: %s",
									 Amount(o, e), o->currency, (long long) o->id, o->status, Reason(e)));
	if (strcmp(kind, "cancelled") == 0)
		return Cancelled(g, o, src);
	if (strcmp(kind, "cancel_failed") == 0)
	{
		if (strcmp(o->status, "cancelled") != 0)
			return psprintf("cancellation failure ignored: order is %s", o->status);
		return EventAnomaly(o, g, src->callback_id, "cancel_failed",
							psprintf("the PSP did not cancel the payment of order %lld, cancelled here: %s",
									 (long long) o->id, Reason(e)));
	}
	return Refund(g, o, e, src, strcmp(kind, "refund_succeeded") == 0);
}
