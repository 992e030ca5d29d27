/*
 * order_settle.c — an order's payment settled: status paid (with the PSP's
 * transaction id, the time and the account the money came from) and the
 * posting from the gateway's PSP account ("psp:<gateway>:<currency>", or
 * "psp:manual:..." for an order without a gateway) to the merchant's
 * account.  The caller has locked the order and decided it may be paid;
 * the order triggers record the transition and queue the notification.
 *
 * pay._settle serves mark_paid and the PL/pgSQL callback paths;
 * callback_apply.c calls SettleOrder directly.  It was PL/pgSQL.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "pay.h"
#include "lookup_cache.h"

static SPIPlanPtr settle_plan = NULL;

PG_FUNCTION_INFO_V1(pay_settle);

void
SettleOrder(int64 order_id, const char *gateway, const char *currency, int64 merchant_id,
			int64 amount, const char *psp_txn_id, const char *cause)
{
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', psp_txn_id ? ' ' : 'n', ' '};
	int64		source = LookupOrOpenAccount(psprintf("psp:%s:%s", gateway ? gateway : "manual", currency),
											 currency);
	int64		merchant = LookupOrOpenAccount(psprintf("merchant:%s:%s", LookupMerchantCode(merchant_id),
														currency), currency);
	Datum		accounts[2] = {Int64GetDatum(source), Int64GetDatum(merchant)};
	Datum		amounts[2] = {Int64GetDatum(-amount), Int64GetDatum(amount)};
	SPITupleTable *updated;
	int			rc;

	values[0] = Int64GetDatum(order_id);
	values[1] = CStringGetTextDatum(cause);
	values[2] = psp_txn_id ? CStringGetTextDatum(psp_txn_id) : (Datum) 0;
	values[3] = Int64GetDatum(source);
	rc = SPI_execute_plan(KeptPlan(&settle_plan,
								   "UPDATE pay.orders SET status = 'paid', status_cause = $2, psp_txn_id = $3, "
								   "paid_at = pg_catalog.now(), paid_account_id = $4 WHERE id = $1 RETURNING *",
								   4, types),
						  values, nulls, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
		elog(ERROR, "order %lld to settle is gone", (long long) order_id);
	updated = SPI_tuptable;
	LedgerPost(psprintf("order:%lld:paid", (long long) order_id), Int64GetDatum(order_id), false,
			   construct_array(accounts, 2, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE),
			   construct_array(amounts, 2, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	SPI_tuptable = updated;
}

/* A column of a pay.orders row argument, or an error if it is null. */
static Datum
OrderColumn(HeapTupleHeader o, const char *name)
{
	bool		isnull;
	Datum		d = GetAttributeByName(o, name, &isnull);

	if (isnull)
		elog(ERROR, "pay._settle: the order has no %s", name);
	return d;
}

/*
 * pay._settle(o pay.orders, p_psp_txn_id text, p_cause text) -> pay.orders,
 * the order as updated.
 */
Datum
pay_settle(PG_FUNCTION_ARGS)
{
	HeapTupleHeader o;
	MemoryContext caller = CurrentMemoryContext;
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	bool		isnull;
	Datum		gateway;
	HeapTuple	row;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		elog(ERROR, "pay._settle needs an order and a cause");
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pay._settle must return pay.orders");
	o = PG_GETARG_HEAPTUPLEHEADER(0);
	gateway = GetAttributeByName(o, "gateway", &isnull);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	SettleOrder(DatumGetInt64(OrderColumn(o, "id")), isnull ? NULL : TextDatumGetCString(gateway),
				TextDatumGetCString(OrderColumn(o, "currency")), DatumGetInt64(OrderColumn(o, "merchant_id")),
				DatumGetInt64(OrderColumn(o, "amount")),
				PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
				text_to_cstring(PG_GETARG_TEXT_PP(2)));
	if (SPI_tuptable->tupdesc->natts != desc->natts)
		elog(ERROR, "pay._settle: pay.orders changed shape");
	values = palloc(desc->natts * sizeof(Datum));
	nulls = palloc(desc->natts * sizeof(bool));
	heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values, nulls);
	MemoryContextSwitchTo(caller);
	row = heap_form_tuple(BlessTupleDesc(desc), values, nulls);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(row));
}
