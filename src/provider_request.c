/*
 * provider_request.c — what every provider's request builder needs: the
 * columns of the outbox and gateway rows, the order and refund a request
 * is about, a gateway credential, a form body, and the pay.http_request
 * value it returns.
 *
 * Builders run for every request the dispatcher sends, so the order and
 * refund are read through kept plans and the result type is looked up in
 * the syscache, not by a parse of "pay.http_request".
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "pay.h"
#include "callback.h"
#include "provider.h"
#include "secret_store.h"

extern Datum pay_form_urlencode(PG_FUNCTION_ARGS);

static SPIPlanPtr order_plan = NULL;
static SPIPlanPtr refund_plan = NULL;

char *
ProviderRowText(Datum row, const char *column)
{
	bool		isnull;
	Datum		d = GetAttributeByName(DatumGetHeapTupleHeader(row), column, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

int64
ProviderRowInt64(Datum row, const char *column)
{
	bool		isnull;
	Datum		d = GetAttributeByName(DatumGetHeapTupleHeader(row), column, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

Jsonb *
ProviderRowJsonb(Datum row, const char *column)
{
	bool		isnull;
	Datum		d = GetAttributeByName(DatumGetHeapTupleHeader(row), column, &isnull);

	return isnull ? NULL : DatumGetJsonbP(d);
}

/* A text column of SPI's one result row, copied into cxt. */
static char *
ResultText(int column, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/*
 * Run a kept one-bigint-parameter plan for the request's order or refund:
 * true when it found the row (then SPI_tuptable holds it).
 */
static bool
LookupRow(SPIPlanPtr *slot, const char *sql, int nargs, Datum *values)
{
	Oid			types[2] = {INT8OID, INT8OID};

	if (SPI_execute_plan(KeptPlan(slot, sql, nargs, types), values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the row of a PSP request");
	return SPI_processed == 1;
}

void
ProviderRequestOrder(const ProviderRequest *req, ProviderOrder *o)
{
	MemoryContext cxt = CurrentMemoryContext;
	int64		order_id = ProviderRowInt64(req->outbox, "order_id");
	Datum		values[1] = {Int64GetDatum(order_id)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!LookupRow(&order_plan,
				   "SELECT id, amount, currency, psp_txn_id FROM pay.orders WHERE id = $1", 1, values))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order %lld of outbox row %lld does not exist", (long long) order_id,
						(long long) ProviderRowInt64(req->outbox, "id"))));
	o->id = order_id;
	o->amount = pg_strtoint64(ResultText(2, cxt));
	o->currency = ResultText(3, cxt);
	o->psp_txn_id = ResultText(4, cxt);
	SPI_finish();
}

void
ProviderRequestRefund(const ProviderRequest *req, ProviderRefund *f)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *refund_id = JsonbGetText(ProviderRowJsonb(req->outbox, "params"), "refund_id");
	int64		id = 0;
	bool		found = false;

	/* enqueue_psp_request admits 1 to 18 digits only */
	if (refund_id != NULL && strspn(refund_id, "0123456789") == strlen(refund_id) &&
		strlen(refund_id) >= 1 && strlen(refund_id) <= 18)
	{
		Datum		values[2];

		id = pg_strtoint64(refund_id);
		values[0] = Int64GetDatum(id);
		values[1] = Int64GetDatum(ProviderRowInt64(req->outbox, "order_id"));
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		found = LookupRow(&refund_plan,
						  "SELECT amount, psp_refund_id FROM pay.refunds WHERE id = $1 AND order_id = $2",
						  2, values);
		if (found)
		{
			f->amount = pg_strtoint64(ResultText(1, cxt));
			f->psp_refund_id = ResultText(2, cxt);
		}
		SPI_finish();
	}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("refund %s of outbox row %lld does not exist", refund_id ? refund_id : "",
						(long long) ProviderRowInt64(req->outbox, "id"))));
	f->id = id;
}

char *
ProviderCredential(const ProviderRequest *req, const char *name, size_t *len)
{
	return SecretFetch(psprintf("gateway:%s", ProviderRowText(req->gateway, "name")), name, len);
}

char *
ProviderFormBody(Jsonb *fields)
{
	return TextDatumGetCString(DirectFunctionCall1(pay_form_urlencode, JsonbPGetDatum(fields)));
}

Jsonb *
ProviderJsonbConcat(Jsonb *a, Jsonb *b)
{
	if (b == NULL)
		return a;
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(a), JsonbPGetDatum(b)));
}

/* The type id of pay.http_request, from the syscache. */
static Oid
HttpRequestType(void)
{
	Oid			nsp = get_namespace_oid("pay", false);
	Oid			type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									   CStringGetDatum("http_request"), ObjectIdGetDatum(nsp));

	if (!OidIsValid(type))
		elog(ERROR, "type pay.http_request does not exist");
	return type;
}

Datum
ProviderHttpRequest(const char *method, const char *url, List *headers, const char *body)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(HttpRequestType(), -1);
	Datum		values[4];
	bool		nulls[4] = {false, false, false, body == NULL};
	Datum	   *lines = palloc(Max(list_length(headers), 1) * sizeof(Datum));
	ListCell   *lc;
	int			n = 0;
	HeapTuple	tuple;

	foreach(lc, headers)
		lines[n++] = CStringGetTextDatum((char *) lfirst(lc));
	values[0] = CStringGetTextDatum(method);
	values[1] = CStringGetTextDatum(url);
	values[2] = PointerGetDatum(construct_array(lines, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = body ? CStringGetTextDatum(body) : (Datum) 0;
	tuple = heap_form_tuple(desc, values, nulls);
	ReleaseTupleDesc(desc);
	return HeapTupleGetDatum(tuple);
}

/* A key pushed onto an object being built. */
static void
PushKey(JsonbParseState **state, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
}

void
ProviderPushText(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue	v;

	PushKey(state, key);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}

void
ProviderPushInt64(JsonbParseState **state, const char *key, int64 value)
{
	JsonbValue	v;

	PushKey(state, key);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	pushJsonbValue(state, WJB_VALUE, &v);
}

void
ProviderPushObject(JsonbParseState **state, const char *key)
{
	PushKey(state, key);
	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
}

char *
ProviderGatewayOption(const ProviderRequest *req, const char *name)
{
	char	   *v = JsonbGetText(ProviderRowJsonb(req->gateway, "options"), name);

	if (v == NULL || v[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("gateway \"%s\" has no option \"%s\"", ProviderRowText(req->gateway, "name"), name),
				 errhint("Set it in pay.gateways.options.")));
	return v;
}

char *
ProviderBaseUrl(const ProviderRequest *req, const char *default_url)
{
	char	   *base = ProviderRowText(req->gateway, "base_url");
	int			len;

	if (base == NULL)
		base = pstrdup(default_url);
	for (len = strlen(base); len > 0 && base[len - 1] == '/'; len--)
		;
	base[len] = '\0';
	return base;
}
