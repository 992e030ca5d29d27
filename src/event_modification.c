/*
 * event_modification.c — the outcome of a request pay sent the PSP
 * (capture, cancel, refund), reported later by the PSP, applied to its
 * order.  For a PSP whose answer to such a request only says "received"
 * (Adyen), this is where the request's outcome lands.
 *
 * pay moves an order when it asks (pay.capture, pay.void and pay.refund
 * book at once and queue the request), so a success is mostly a
 * confirmation: a capture's is the payment_captured event and a cancel's
 * the closed event (callback_apply.c).  What is left is here:
 *
 *   capture_failed   the order pay booked as paid was not captured: an
 *                    anomaly for a person;
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

static SPIPlanPtr refund_find_plan = NULL;
static SPIPlanPtr refund_set_plan = NULL;

bool
EventIsModification(const char *kind)
{
	static const char *const kinds[] = {"capture_failed", "cancel_failed", "refund_succeeded", "refund_failed"};

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

	if (strcmp(kind, "capture_failed") == 0)
		return EventAnomaly(o, g, src->callback_id, "capture_failed",
							psprintf("the PSP did not capture " INT64_FORMAT " %s of order %lld, which is %s here: %s",
									 Amount(o, e), o->currency, (long long) o->id, o->status, Reason(e)));
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
