/*
 * provider_dispatch.c — an outbox row's request built, and its answer
 * read, by the provider of its gateway's kind (provider_registry.c):
 *
 *   pay._provider_request(r pay.outbox, g pay.gateways) -> pay.http_request
 *   pay._provider_answer(r, g, o pay.orders, status, headers, body) -> jsonb
 *   pay._provider_statement_answer(r, g, body) -> jsonb, a step summary
 *   pay._provider_statement_file(r, g, file bytea) -> (content, format, reason)
 *
 * pay._outbox_request and pay._outbox_apply call them for PSP requests,
 * 89_statement_fetch.sql the last two for a statement fetch's steps
 * (provider.h, "Statement fetches"); an operation the provider does not
 * list is 0A000 naming both.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "access/htup_details.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "pay.h"
#include "provider.h"

PG_FUNCTION_INFO_V1(pay_provider_request);
PG_FUNCTION_INFO_V1(pay_provider_answer);
PG_FUNCTION_INFO_V1(pay_provider_statement_answer);
PG_FUNCTION_INFO_V1(pay_provider_statement_file);

/* The provider of gateway row g: one exists for every kind the CHECK admits. */
static const Provider *
GatewayProvider(HeapTupleHeader g)
{
	char	   *kind = ProviderRowText(PointerGetDatum(g), "kind");
	const Provider *p = ProviderFind(kind);

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("no provider for %s gateways", kind ? kind : "null")));
	return p;
}

/* The request part of a call whose arguments start (r pay.outbox, g pay.gateways). */
static const ProviderOperation *
ReadRequest(FunctionCallInfo fcinfo, ProviderRequest *req)
{
	HeapTupleHeader r = PG_GETARG_HEAPTUPLEHEADER(0);
	HeapTupleHeader g = PG_GETARG_HEAPTUPLEHEADER(1);
	const Provider *p = GatewayProvider(g);

	req->operation = ProviderRowText(PointerGetDatum(r), "operation");
	if (req->operation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operation: the outbox row has none")));
	req->outbox = PG_GETARG_DATUM(0);
	req->outbox_type = get_fn_expr_argtype(fcinfo->flinfo, 0);
	req->gateway = PG_GETARG_DATUM(1);
	req->gateway_type = get_fn_expr_argtype(fcinfo->flinfo, 1);
	return ProviderRequireOperation(p, req->operation);
}

/* pay._provider_request(r pay.outbox, g pay.gateways) -> pay.http_request */
Datum
pay_provider_request(PG_FUNCTION_ARGS)
{
	ProviderRequest req;
	const ProviderOperation *op = ReadRequest(fcinfo, &req);
	Datum		request;

	if (op->build == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s gateways do not build \"%s\" requests", GatewayProvider(PG_GETARG_HEAPTUPLEHEADER(1))->kind,
						req.operation)));
	request = op->build(&req);
	PG_RETURN_DATUM(request);
}

/* A copy of v in cxt (an answer read under SPI is freed by SPI_finish). */
static Jsonb *
CopyJsonb(Jsonb *v, MemoryContext cxt)
{
	Jsonb	   *copy = MemoryContextAlloc(cxt, VARSIZE(v));

	memcpy(copy, v, VARSIZE(v));
	return copy;
}

/* The operation's read function, else 0A000: answers to it are not read. */
static ProviderReadFn
RequireRead(FunctionCallInfo fcinfo, const ProviderOperation *op, const char *operation)
{
	if (op->read == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("answers of %s gateways to \"%s\" are not read",
						GatewayProvider(PG_GETARG_HEAPTUPLEHEADER(1))->kind, operation)));
	return op->read;
}

/* ans read by read, connected to SPI; the summary (NULL: none) copied into the caller's context. */
static Jsonb *
ReadUnderSpi(ProviderReadFn read, const ProviderAnswer *ans)
{
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *summary;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	summary = read(ans);
	if (summary != NULL)
		summary = CopyJsonb(summary, cxt);
	SPI_finish();
	return summary;
}

/*
 * pay._provider_answer(r pay.outbox, g pay.gateways, o pay.orders,
 * status integer, headers jsonb, body text) -> jsonb, the answer's summary
 */
Datum
pay_provider_answer(PG_FUNCTION_ARGS)
{
	ProviderAnswer ans;
	const ProviderOperation *op;
	ProviderReadFn read;
	Jsonb	   *summary;

	/* body alone may be NULL (an empty answer) */
	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", (const char *[]) {"r", "g", "o", "status", "headers"}[i])));
	op = ReadRequest(fcinfo, &ans.request);
	read = RequireRead(fcinfo, op, ans.request.operation);
	ans.order = PG_GETARG_DATUM(2);
	ans.order_type = get_fn_expr_argtype(fcinfo->flinfo, 2);
	ans.status = PG_GETARG_INT32(3);
	ans.headers = PG_GETARG_JSONB_P(4);
	ans.body = PG_ARGISNULL(5) ? NULL : PG_GETARG_TEXT_PP(5);
	summary = ReadUnderSpi(read, &ans);
	if (summary == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(summary);
}

/*
 * pay._provider_statement_answer(r pay.outbox, g pay.gateways, body text)
 * -> jsonb: the 2xx answer to a fetch_statement or fetch_statement_poll
 * row read by the operation's read function into a step summary.
 */
Datum
pay_provider_statement_answer(PG_FUNCTION_ARGS)
{
	ProviderAnswer ans = {0};
	const ProviderOperation *op;
	ProviderReadFn read;
	Jsonb	   *summary;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "r" : "g")));
	op = ReadRequest(fcinfo, &ans.request);
	read = RequireRead(fcinfo, op, ans.request.operation);
	/* a step is about no order; only a 2xx answer is read */
	ans.order = (Datum) 0;
	ans.order_type = InvalidOid;
	ans.status = 200;
	ans.headers = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	ans.body = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	summary = ReadUnderSpi(read, &ans);
	if (summary == NULL)
		elog(ERROR, "the %s reader returned no step summary", ans.request.operation);
	PG_RETURN_JSONB_P(summary);
}

/*
 * pay._provider_statement_file(r pay.outbox, g pay.gateways, file bytea,
 * OUT content bytea, OUT format text, OUT reason text): a downloaded
 * statement file checked by its provider's statement_file hook; content
 * and format are what pay.import_statement takes, or reason says why the
 * file must not be imported.
 */
Datum
pay_provider_statement_file(PG_FUNCTION_ARGS)
{
	ProviderRequest req;
	const Provider *p;
	bytea	   *file;
	bytea	   *content;
	char	   *reason = NULL;
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "r" : PG_ARGISNULL(1) ? "g" : "file")));
	(void) ReadRequest(fcinfo, &req);
	p = GatewayProvider(PG_GETARG_HEAPTUPLEHEADER(1));
	if (p->statement_format == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("statements of %s gateways are not fetched", p->kind)));
	file = PG_GETARG_BYTEA_P(2);
	content = p->statement_file != NULL ? p->statement_file(&req, file, &reason) : file;
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pay._provider_statement_file must return a record");
	if (content == NULL)
	{
		nulls[0] = nulls[1] = true;
		values[2] = CStringGetTextDatum(reason != NULL ? reason : "the file was refused");
	}
	else
	{
		values[0] = PointerGetDatum(content);
		values[1] = CStringGetTextDatum(p->statement_format);
		nulls[2] = true;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
