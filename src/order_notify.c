/*
 * order_notify.c — every move of an order to paid, refunded or failed
 * queues one notification to its merchant, whatever caused the move (a
 * callback, pay.mark_paid, a wallet payment, a refund), in the same
 * transaction: an AFTER UPDATE OF status row trigger on pay.orders.
 *
 * In C rather than PL/pgSQL with a WHEN clause because the trigger fires on
 * every payment: here the test of the row is a few string compares and
 * whether the merchant has a notify_url comes from lookup_cache.c, where the
 * PL/pgSQL chain (WHEN clause re-read per statement, two SECURITY DEFINER
 * calls, two lookups, then the queuing) cost about 280k instructions per
 * payment.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "pay.h"
#include "lookup_cache.h"
#include "trace_context.h"

/* The row pay.enqueue_merchant_notification(order, status) would queue. */
static const char *const NotifySql =
	"INSERT INTO pay.outbox (kind, destination, operation, order_id, params, "
	"idempotency_key, attempts_max, trace_id) "
	"VALUES ('merchant_notification', $1, $2, $3::pg_catalog.int8, "
	"pg_catalog.jsonb_build_object('id', $3, 'merchant_order_no', $4, "
	"'amount', $5, 'currency', $6, 'status', $2, "
	"'event_id', 'evt_' OPERATOR(pg_catalog.||) $3 OPERATOR(pg_catalog.||) '_' "
	"OPERATOR(pg_catalog.||) $2), "
	"'evt_' OPERATOR(pg_catalog.||) $3 OPERATOR(pg_catalog.||) '_' "
	"OPERATOR(pg_catalog.||) $2, "
	"pay._outbox_attempts_max('merchant_notification'), "
	"$7) "
	"ON CONFLICT (idempotency_key) DO NOTHING";
static SPIPlanPtr notify_plan = NULL;

PG_FUNCTION_INFO_V1(pay_order_notify);

/* Is a move to this status one the merchant hears about? */
static bool
NotifiedStatus(const char *status)
{
	return strcmp(status, "paid") == 0 || strcmp(status, "refunded") == 0 ||
		strcmp(status, "failed") == 0;
}

/*
 * Queue the notification; the caller is connected to SPI.  The row is what
 * pay.enqueue_merchant_notification(order, status) queues, written here
 * from the order's new row: the same params, destination and key (a second
 * move to the same status queues nothing: the first row stands).
 */
static void
QueueNotification(HeapTuple row, TupleDesc desc, int64 merchant_id, const char *status)
{
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int			rc;
	char	   *id = SPI_getvalue(row, desc, SPI_fnumber(desc, "id"));
	/* the transaction's trace, else the order's (a callback that carried none, the janitor) */
	char		current[33];
	char	   *trace_id = TraceCurrentId(current) ? current :
		SPI_getvalue(row, desc, SPI_fnumber(desc, "trace_id"));
	Oid			types[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	char	   *paid;

	values[0] = CStringGetTextDatum(psprintf("merchant:%s", LookupMerchantCode(merchant_id)));
	values[1] = CStringGetTextDatum(status);
	values[2] = CStringGetTextDatum(id);
	values[3] = CStringGetTextDatum(SPI_getvalue(row, desc, SPI_fnumber(desc, "merchant_order_no")));
	/* what the order paid: a capture may have taken less than was authorized */
	paid = SPI_getvalue(row, desc, SPI_fnumber(desc, "captured_amount"));
	values[4] = CStringGetTextDatum(paid ? paid : SPI_getvalue(row, desc, SPI_fnumber(desc, "amount")));
	values[5] = CStringGetTextDatum(SPI_getvalue(row, desc, SPI_fnumber(desc, "currency")));
	values[6] = trace_id ? CStringGetTextDatum(trace_id) : (Datum) 0;
	nulls[6] = trace_id ? ' ' : 'n';
	rc = SPI_execute_plan(KeptPlan(&notify_plan, NotifySql, 7, types),
						  values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not queue the merchant notification: %s", SPI_result_code_string(rc));
}

/* AFTER UPDATE OF status FOR EACH ROW on pay.orders. */
Datum
pay_order_notify(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	int			status_att;
	char	   *from,
			   *to;
	bool		isnull;
	int64		merchant_id;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trig->tg_event) || !TRIGGER_FIRED_BY_UPDATE(trig->tg_event))
		elog(ERROR, "pay_order_notify must be an AFTER UPDATE ROW trigger");
	desc = RelationGetDescr(trig->tg_relation);
	status_att = SPI_fnumber(desc, "status");
	from = SPI_getvalue(trig->tg_trigtuple, desc, status_att);
	to = SPI_getvalue(trig->tg_newtuple, desc, status_att);
	if (to == NULL || (from != NULL && strcmp(from, to) == 0) || !NotifiedStatus(to))
		return PointerGetDatum(NULL);
	/* a merchant without a notify_url takes none: no query at all */
	merchant_id = DatumGetInt64(SPI_getbinval(trig->tg_newtuple, desc, SPI_fnumber(desc, "merchant_id"), &isnull));
	if (!LookupMerchantNotified(merchant_id))
		return PointerGetDatum(NULL);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	QueueNotification(trig->tg_newtuple, desc, merchant_id, to);
	SPI_finish();
	return PointerGetDatum(NULL);
}
