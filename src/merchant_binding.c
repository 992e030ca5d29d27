/*
 * merchant_binding.c — pay._acts_for(merchant_id): may the caller act for
 * this merchant?  The one test of the merchant binding
 * (53_merchant_binding.sql) that the SECURITY DEFINER functions make
 * before they create, move or show an order.
 *
 * With no binding at all, every caller acts for every merchant; that case
 * is the common one and sits on the payment path (create_order, and every
 * order a function locks), so whether pay.merchant_roles has any row is
 * kept per backend and forgotten on any write to it (a statement trigger
 * sends a relcache invalidation, cache_invalidate.c).  With bindings, the
 * caller's merchants come from pay._caller_merchants(), the same function
 * the row-level security policies use.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "pay.h"

typedef enum BindingsKnown
{
	BINDINGS_UNKNOWN,
	BINDINGS_NONE,
	BINDINGS_SOME
} BindingsKnown;

static BindingsKnown bindings = BINDINGS_UNKNOWN;
static Oid	bindings_relid = InvalidOid;
static SPIPlanPtr acts_for_plan = NULL;

PG_FUNCTION_INFO_V1(pay_acts_for);

static void
BindingsInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == bindings_relid)
		bindings = BINDINGS_UNKNOWN;
}

/* Module set-up, from _PG_init. */
void
MerchantBindingInit(void)
{
	CacheRegisterRelcacheCallback(BindingsInvalidate, (Datum) 0);
}

/* Does pay.merchant_roles have a row?  The caller is connected to SPI. */
static BindingsKnown
ReadBindings(void)
{
	bool		isnull;

	bindings_relid = get_relname_relid("merchant_roles", get_namespace_oid("pay", false));
	if (SPI_execute("SELECT EXISTS (SELECT FROM pay.merchant_roles)", true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read pay.merchant_roles");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull))
		? BINDINGS_SOME : BINDINGS_NONE;
}

/* pay._acts_for(merchant_id bigint) -> boolean; NULL (no such merchant): true */
Datum
pay_acts_for(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	bool		acts;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);
	/* another backend's committed binding counts from this statement on */
	AcceptInvalidationMessages();
	if (bindings == BINDINGS_NONE)
		PG_RETURN_BOOL(true);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (bindings == BINDINGS_UNKNOWN)
		bindings = ReadBindings();
	if (bindings == BINDINGS_NONE)
	{
		SPI_finish();
		PG_RETURN_BOOL(true);
	}
	values[0] = PG_GETARG_DATUM(0);
	if (SPI_execute_plan(KeptPlan(&acts_for_plan,
								  "SELECT $1 OPERATOR(pg_catalog.=) ANY (pay._caller_merchants())",
								  1, types),
						 values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the caller's merchants");
	acts = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	/* NULL: the caller is bound to nothing */
	PG_RETURN_BOOL(isnull || acts);
}
