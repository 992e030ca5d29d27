/*
 * callback_record.c — what pay.callbacks keeps of a callback.
 *
 * Every callback to a gateway that takes callbacks gets a row, written
 * before anything can fail; but anyone can POST to /callbacks/<name>, so
 * what an unverified request may store is bounded:
 *
 *   - the body is kept up to pay.callback_unverified_body_max bytes (cut on
 *     a character boundary), with its full length in body_length; a
 *     verified callback (accepted, or a duplicate of one) gets its whole
 *     body back when its verdict is recorded, in the same UPDATE;
 *   - a callback to a name that is no such gateway gets no row at all: it
 *     is counted in pay.unknown_gateway_callbacks, one row per day (UTC).
 *
 * The body bound is superuser-only: the callback role must not lift it.
 * pay.purge_callbacks (85_callbacks.sql) removes what was not accepted.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "pay.h"
#include "callback.h"
#include "metrics.h"

/* 64 kB: several times any PSP's real notification. */
static int	unverified_body_max = 65536;

static SPIPlanPtr record_plan = NULL;
static SPIPlanPtr verdict_plan = NULL;
static SPIPlanPtr unknown_plan = NULL;
static SPIPlanPtr unreadable_plan = NULL;

PG_FUNCTION_INFO_V1(pay_record_unreadable_callback);

/* Module set-up, from _PG_init. */
void
CallbackRecordInit(void)
{
	DefineCustomIntVariable("pay.callback_unverified_body_max",
							"Most bytes of a callback's body kept before it is verified.",
							"A longer body is cut (its full length is recorded); a verified callback is kept whole.",
							&unverified_body_max, 65536, 0, MaxAllocSize / 2,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
}

int64
CallbackRecord(text *provider, Datum headers, text *body, bool *cut)
{
	Oid			types[4] = {TEXTOID, JSONBOID, TEXTOID, INT4OID};
	const char *data = body ? VARDATA_ANY(body) : "";
	int			len = body ? VARSIZE_ANY_EXHDR(body) : 0;
	int			keep = len <= unverified_body_max ? len : pg_mbcliplen(data, len, unverified_body_max);
	Datum		values[4] = {PointerGetDatum(provider), headers,
		PointerGetDatum(body && keep == len ? body : cstring_to_text_with_len(data, keep)),
	Int32GetDatum(len)};
	bool		isnull;

	*cut = keep < len;
	if (SPI_execute_plan(KeptPlan(&record_plan,
								  "INSERT INTO pay.callbacks (gateway, headers, body, body_length) "
								  "VALUES ($1, $2, $3, $4) RETURNING id",
								  4, types),
						 values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not record the callback");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

void
CallbackRecordVerdict(int64 callback_id, const Verdict *v, int status, text *whole_body)
{
	Oid			types[10] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID, INT4OID,
	TEXTOID};
	char	   *event_id = JsonbGetText(v->event, "event_id");
	char	   *event_type = JsonbGetText(v->event, "type");
	Datum		values[10] = {
		Int64GetDatum(callback_id), CStringGetTextDatum(v->verdict),
		v->state ? CStringGetTextDatum(v->state) : (Datum) 0,
		v->reason ? CStringGetTextDatum(v->reason) : (Datum) 0,
		event_id ? CStringGetTextDatum(event_id) : (Datum) 0,
		event_type ? CStringGetTextDatum(event_type) : (Datum) 0,
		Int64GetDatum(v->order_id),
		v->outcome ? CStringGetTextDatum(v->outcome) : (Datum) 0,
		Int32GetDatum(status),
	PointerGetDatum(whole_body)};
	char		nulls[10] = {' ', ' ', v->state ? ' ' : 'n', v->reason ? ' ' : 'n', event_id ? ' ' : 'n',
		event_type ? ' ' : 'n', v->order_id ? ' ' : 'n', v->outcome ? ' ' : 'n', ' ',
	whole_body ? ' ' : 'n'};

	if (SPI_execute_plan(KeptPlan(&verdict_plan,
								  "UPDATE pay.callbacks SET verdict = $2, reason_code = $3, reason = $4, "
								  "event_id = $5, event_type = $6, order_id = $7, outcome = $8, http_status = $9, "
								  "body = coalesce($10, body), "
								  "trace_id = coalesce(trace_id, (SELECT o.trace_id FROM pay.orders o WHERE o.id = $7)) "
								  "WHERE id = $1",
								  10, types),
						 values, nulls, false, 0) != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not record the verdict of callback %lld", (long long) callback_id);
}

void
CallbackCountUnknown(text *provider, int64 body_length)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2] = {PointerGetDatum(provider), Int64GetDatum(body_length)};
	char		nulls[2] = {provider ? ' ' : 'n', ' '};

	if (SPI_execute_plan(KeptPlan(&unknown_plan,
								  "INSERT INTO pay.unknown_gateway_callbacks AS u "
								  "(day, callbacks, body_bytes, last_gateway, last_at) "
								  "VALUES ((now() AT TIME ZONE 'UTC')::date, 1, $2, left($1, 64), now()) "
								  "ON CONFLICT (day) DO UPDATE SET callbacks = u.callbacks + 1, "
								  "body_bytes = u.body_bytes + excluded.body_bytes, "
								  "last_gateway = excluded.last_gateway, last_at = excluded.last_at",
								  2, types),
						 values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not count a callback to an unknown gateway");
}

/* left(s, n) of a text argument, or NULL */
static Datum
TextLeft(FunctionCallInfo fcinfo, int arg, int n, char *null)
{
	*null = PG_ARGISNULL(arg) ? 'n' : ' ';
	return PG_ARGISNULL(arg) ? (Datum) 0 :
		DirectFunctionCall2(text_left, PG_GETARG_DATUM(arg), Int32GetDatum(n));
}

/* The first n bytes of bytes (NULL: none) as a bytea. */
static bytea *
BytesPrefix(bytea *bytes, int n)
{
	bytea	   *prefix = palloc(VARHDRSZ + n);

	SET_VARSIZE(prefix, VARHDRSZ + n);
	if (n > 0)
		memcpy(VARDATA(prefix), VARDATA_ANY(bytes), n);
	return prefix;
}

/*
 * pay.record_unreadable_callback(provider, headers, reason_code, reason,
 * body_bytes, http_status) -> bigint: a callback pay-proxy refused before
 * handle_callback (body over its limit, or not UTF-8 text), recorded with
 * at most the unverified-body bound of its bytes; NULL when the provider
 * is no gateway that takes callbacks (then only counted).
 */
Datum
pay_record_unreadable_callback(PG_FUNCTION_ARGS)
{
	Oid			types[7] = {TEXTOID, JSONBOID, TEXTOID, TEXTOID, BYTEAOID, INT4OID, INT4OID};
	text	   *provider = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	bytea	   *bytes = PG_ARGISNULL(4) ? NULL : PG_GETARG_BYTEA_PP(4);
	int			len = bytes ? VARSIZE_ANY_EXHDR(bytes) : 0;
	CallbackGateway g = {0};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int64		id;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (provider == NULL || !CallbackFindGateway(provider, &g))
	{
		CallbackCountUnknown(provider, len);
		MetricsCountAtCommit(METRIC_CALLBACKS + GATEWAY_SLOT_UNKNOWN * N_VERDICTS + VERDICT_REJECTED);
		SPI_finish();
		PG_RETURN_NULL();
	}
	values[0] = CStringGetTextDatum(g.name);
	values[1] = PG_ARGISNULL(1) ? DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")) : PG_GETARG_DATUM(1);
	values[2] = TextLeft(fcinfo, 2, 5, &nulls[2]);
	values[3] = TextLeft(fcinfo, 3, 200, &nulls[3]);
	values[4] = PointerGetDatum(BytesPrefix(bytes, Min(len, unverified_body_max)));
	values[5] = PG_ARGISNULL(5) ? (Datum) 0 : PG_GETARG_DATUM(5);
	nulls[5] = PG_ARGISNULL(5) ? 'n' : ' ';
	values[6] = Int32GetDatum(len);
	if (SPI_execute_plan(KeptPlan(&unreadable_plan,
								  "INSERT INTO pay.callbacks (gateway, headers, body, body_bytes, verdict, "
								  "reason_code, reason, http_status, body_length) "
								  "VALUES ($1, $2, NULL, $5, 'rejected', $3, $4, $6, $7) RETURNING id",
								  7, types),
						 values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not record the callback");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	MetricsCountAtCommit(METRIC_CALLBACKS + MetricGatewaySlot(g.name) * N_VERDICTS + VERDICT_REJECTED);
	SPI_finish();
	PG_RETURN_INT64(id);
}
