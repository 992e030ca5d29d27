/*
 * event_approved.c — a buyer's approval at the PSP (PayPal's
 * CHECKOUT.ORDER.APPROVED), applied to its order: the PSP moves no money
 * until the merchant asks it to, so the approval queues that request, the
 * operation the event names in complete_with (capture_order: take the
 * money now; authorize: hold it for pay.capture).  The request has a fixed
 * idempotency key: a second approval of the order (PayPal sends a webhook
 * again under a new event id) queues nothing new.
 *
 * The caller (callback_apply.c) found and locked the order and checked
 * the event's currency and amount against it.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "pay.h"
#include "callback.h"
#include "event_apply.h"

static SPIPlanPtr enqueue_plan = NULL;

/* The operations an approval may ask for. */
static bool
Completion(const char *op)
{
	return op != NULL && (strcmp(op, "capture_order") == 0 || strcmp(op, "authorize") == 0);
}

char *
EventApplyApproval(const CallbackGateway *g, const EventOrder *o, Jsonb *e, int64 callback_id)
{
	char	   *op = JsonbGetText(e, "complete_with");
	char	   *txn = JsonbGetText(e, "psp_txn_id");
	Oid			types[4] = {TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', txn ? ' ' : 'n'};

	if (!Completion(op))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("approval of order %lld names no operation to complete it with", (long long) o->id)));
	if (strcmp(o->status, "pending") != 0)
		return psprintf("approval ignored: order is %s", o->status);
	/* the PSP's order the request completes is the one the buyer approved */
	if (txn != NULL && o->psp_txn_id != NULL && strcmp(txn, o->psp_txn_id) != 0)
		return EventAnomaly(o, g, callback_id, "approval_mismatch",
							psprintf("approval of PSP order %s, order %lld is PSP order %s",
									 txn, (long long) o->id, o->psp_txn_id));
	values[0] = CStringGetTextDatum(g->name);
	values[1] = CStringGetTextDatum(op);
	values[2] = Int64GetDatum(o->id);
	values[3] = txn ? CStringGetTextDatum(txn) : (Datum) 0;
	if (SPI_execute_plan(KeptPlan(&enqueue_plan,
								  "SELECT pay._store_psp_txn_id($3, $4), "
								  "pay._enqueue('psp_request', 'gateway:' || $1, $2, $3, '{}', "
								  "'psp_' || $3 || '_' || $2, false)",
								  4, types),
						 values, nulls, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not queue the %s of order %lld", op, (long long) o->id);
	return psprintf("approved: %s queued", op);
}
