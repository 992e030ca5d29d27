/*
 * order_settle.c — an order's payment settled: status paid (with the PSP's
 * transaction id, the time and the account the money came from) and the
 * posting from the gateway's PSP account ("psp:<gateway>:<currency>", or
 * "psp:manual:..." for an order without a gateway) to the merchant's
 * account, if the order may take it.  The order triggers record the
 * transition and queue the notification.
 *
 * A manual-capture order (capture_mode 'manual') is authorized instead:
 * status authorized, its authorization window started, nothing booked;
 * pay.capture books what it takes (56_two_phase.sql).
 *
 * pay._settle serves mark_paid and the PL/pgSQL callback paths, which have
 * locked and checked the order; callback_apply.c calls SettleOrder directly
 * and lets its UPDATE check.  It was PL/pgSQL.
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

/*
 * One UPDATE decides and writes: the order's state, gateway, currency and
 * amount are conditions, so a caller that has not locked the order (a
 * callback) needs no SELECT ... FOR UPDATE first, and a concurrent change
 * is re-checked on the new row version.  The PSP account is the order's
 * gateway's, opened on first use by pay._account.
 */
static const char *const SettleSql =
	"UPDATE pay.orders o SET "
	"status = CASE WHEN o.capture_mode = 'manual' THEN 'authorized' ELSE 'paid' END, "
	"status_cause = $2, psp_txn_id = $3, "
	"paid_at = CASE WHEN o.capture_mode = 'manual' THEN NULL ELSE pg_catalog.now() END, "
	"authorized_at = CASE WHEN o.capture_mode = 'manual' THEN pg_catalog.now() END, "
	"authorization_expires_at = CASE WHEN o.capture_mode = 'manual' "
	"THEN pg_catalog.now() OPERATOR(pg_catalog.+) pay._authorization_window(o.gateway) END, "
	"paid_account_id = pay._account(pg_catalog.concat('psp:', coalesce(o.gateway, 'manual'), ':', o.currency), "
	"o.currency) "
	"WHERE o.id = $1 AND o.status IN ('pending', 'failed') "
	"AND ($4 IS NULL OR o.gateway OPERATOR(pg_catalog.=) $4) "
	"AND o.currency::text OPERATOR(pg_catalog.=) coalesce($5, o.currency::text) "
	"AND o.amount OPERATOR(pg_catalog.=) coalesce($6, pay._parse_amount($7, pay._exponent(o.currency::text))) "
	"RETURNING o.*";

bool
SettleOrder(const SettleRequest *r)
{
	Oid			types[7] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[7];
	char		nulls[7];
	SPITupleTable *updated;
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	int64		order_id,
				amount,
				source,
				merchant;
	char	   *currency;
	char	   *status;
	Datum		accounts[2];
	Datum		amounts[2];

#define ARG(i, present, datum) (nulls[i] = (present) ? ' ' : 'n', values[i] = (present) ? (datum) : (Datum) 0)
	ARG(0, true, Int64GetDatum(r->order_id));
	ARG(1, true, CStringGetTextDatum(r->cause));
	ARG(2, r->psp_txn_id != NULL, CStringGetTextDatum(r->psp_txn_id));
	ARG(3, r->gateway != NULL, CStringGetTextDatum(r->gateway));
	ARG(4, r->currency != NULL, CStringGetTextDatum(r->currency));
	ARG(5, r->has_amount, Int64GetDatum(r->amount));
	ARG(6, r->amount_major != NULL, CStringGetTextDatum(r->amount_major));
#undef ARG
	if (SPI_execute_plan(KeptPlan(&settle_plan, SettleSql, 7, types), values, nulls, false, 0) !=
		SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not settle order %lld", (long long) r->order_id);
	if (SPI_processed != 1)
		return false;

	updated = SPI_tuptable;
	row = updated->vals[0];
	desc = updated->tupdesc;
	order_id = DatumGetInt64(SPI_getbinval(row, desc, SPI_fnumber(desc, "id"), &isnull));
	amount = DatumGetInt64(SPI_getbinval(row, desc, SPI_fnumber(desc, "amount"), &isnull));
	source = DatumGetInt64(SPI_getbinval(row, desc, SPI_fnumber(desc, "paid_account_id"), &isnull));
	currency = SPI_getvalue(row, desc, SPI_fnumber(desc, "currency"));
	status = SPI_getvalue(row, desc, SPI_fnumber(desc, "status"));
	/* the conditional UPDATE took exactly what was asked, a positive amount */
	Assert(amount > 0 && (!r->has_amount || amount == r->amount));
	if (strcmp(status, "authorized") == 0)
	{
		/* authorized, not captured: the ledger books only captured money */
		SPI_tuptable = updated;
		return true;
	}
	Assert(strcmp(status, "paid") == 0);
	merchant = LookupOrOpenAccount(psprintf("merchant:%s:%s",
											LookupMerchantCode(DatumGetInt64(SPI_getbinval(row, desc,
																						   SPI_fnumber(desc, "merchant_id"), &isnull))),
											currency),
								   currency);
	accounts[0] = Int64GetDatum(source);
	accounts[1] = Int64GetDatum(merchant);
	amounts[0] = Int64GetDatum(-amount);
	amounts[1] = Int64GetDatum(amount);
	LedgerPost(psprintf("order:%lld:paid", (long long) order_id), Int64GetDatum(order_id), false,
			   construct_array(accounts, 2, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE),
			   construct_array(amounts, 2, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	SPI_tuptable = updated;
	return true;
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
 * the order as updated: for mark_paid, which locked it.
 */
Datum
pay_settle(PG_FUNCTION_ARGS)
{
	HeapTupleHeader o;
	MemoryContext caller = CurrentMemoryContext;
	TupleDesc	desc;
	SettleRequest r = {0};
	Datum	   *values;
	bool	   *nulls;
	HeapTuple	row;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		elog(ERROR, "pay._settle needs an order and a cause");
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pay._settle must return pay.orders");
	o = PG_GETARG_HEAPTUPLEHEADER(0);
	r.order_id = DatumGetInt64(OrderColumn(o, "id"));
	r.currency = TextDatumGetCString(OrderColumn(o, "currency"));
	r.has_amount = true;
	r.amount = DatumGetInt64(OrderColumn(o, "amount"));
	r.psp_txn_id = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	r.cause = text_to_cstring(PG_GETARG_TEXT_PP(2));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the caller locked the order and found it payable */
	if (!SettleOrder(&r))
		elog(ERROR, "order %lld is no longer payable", (long long) r.order_id);
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
