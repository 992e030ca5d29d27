/*
 * dispatcher_store.c — the dispatcher's SQL, each piece run by the worker in
 * a short transaction of its own (the caller starts it and connects SPI):
 *
 *   StoreClaim    locks due rows (FOR UPDATE SKIP LOCKED), marks them
 *                 in_flight and builds their requests; committed before any
 *                 byte is sent.  First, orders whose never-sent create
 *                 request waits behind an open circuit may be re-routed.
 *   StoreRecord   writes the outcomes of finished attempts: done (and the
 *                 PSP's answer applied), pending again at the next step of
 *                 the schedule, or dead; one pay.outbox_attempts row each.
 *                 A dead create request may re-route its order
 *                 (pay._reroute, 80_outbox.sql).
 *   StoreRecover  takes back rows left in_flight: all of them when the
 *                 worker starts (the one before it is gone), later those
 *                 whose claim is older than the lease.
 *   StoreRelease  puts rows back to pending when their outcome could not be
 *                 recorded.
 *
 * The worker runs as the bootstrap superuser with search_path pinned to
 * pg_catalog, pg_temp (dispatcher_worker.c); all the same every statement
 * here names its tables pay.x and its functions pg_catalog.f, and does its
 * time arithmetic on interval parameters (timestamptz +/- interval, exact
 * matches in pg_catalog) rather than bigint * interval, which has no operator
 * of its own and so goes to whichever one implicit casts reach first.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dispatcher.h"
#include "pay.h"

static SPIPlanPtr claim_lock_plan = NULL;
static SPIPlanPtr claim_mark_plan = NULL;
static SPIPlanPtr claim_build_plan = NULL;
static SPIPlanPtr record_plan = NULL;
static SPIPlanPtr apply_plan = NULL;
static SPIPlanPtr apply_bytes_plan = NULL;
static SPIPlanPtr next_due_plan = NULL;
static SPIPlanPtr reroute_plan = NULL;
static SPIPlanPtr reroute_blocked_plan = NULL;

static void RerouteDead(HttpResult *results, int n, const int *outcomes);

/* A text[] of n C strings. */
static Datum
TextArray(char **values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* An array of n fixed-size values, with NULLs where nulls[i]. */
static Datum
ScalarArray(Datum *d, bool *nulls, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, type, typlen, typbyval, typalign));
}

/* Is pay installed in this database (and new enough to have an outbox)? */
bool
StoreExtensionReady(void)
{
	int			rc;

	if (!OidIsValid(get_extension_oid("pay", true)))
		return false;
	rc = SPI_execute("SELECT pg_catalog.to_regclass('pay.outbox') IS NOT NULL", true, 1);
	return rc == SPI_OK_SELECT && SPI_processed == 1 &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") == 0;
}

/* An interval of ms milliseconds, as a Datum. */
static Datum
MillisecondsInterval(int64 ms)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = ms * INT64CONST(1000);
	return IntervalPGetDatum(iv);
}

/* Take back in_flight rows: all (worker start) or those past the lease, except ours. */
int
StoreRecover(bool all, int64 lease_ms)
{
	Oid			types[3] = {BOOLOID, INTERVALOID, INT8ARRAYOID};
	Datum		values[3];
	int64	   *ids;
	int			n = HttpInFlightIds(&ids);
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;
	int			rc;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(ids[i]);
	values[0] = BoolGetDatum(all);
	values[1] = MillisecondsInterval(lease_ms);
	values[2] = ScalarArray(d, NULL, n, INT8OID);
	rc = SPI_execute_with_args(
		"WITH old AS ("
		"  SELECT id, claimed_at FROM pay.outbox"
		"   WHERE state = 'in_flight' AND ($1 OR claimed_at < pg_catalog.now() OPERATOR(pg_catalog.-) $2)"
		"     AND id <> ALL($3)"
		"   FOR UPDATE SKIP LOCKED),"
		" back AS ("
		"  UPDATE pay.outbox o SET state = 'pending', claimed_at = NULL, next_attempt_at = pg_catalog.now()"
		"    FROM old WHERE o.id = old.id"
		"  RETURNING o.id, o.attempts, old.claimed_at)"
		"INSERT INTO pay.outbox_attempts (outbox_id, attempt, started_at, outcome, error)"
		" SELECT id, attempts, claimed_at, 'interrupted',"
		"        'no outcome was recorded (the dispatcher stopped or its claim expired): it is sent again'"
		"   FROM back",
		3, types, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not take back in-flight outbox rows: %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/* Copy a text column of the current SPI row into cxt, NULL for NULL. */
static char *
CopyText(HeapTuple row, TupleDesc desc, int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(row, desc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/* Index of id in claimed[0..n), or -1. */
static int
FindClaimed(ClaimedRequest *claimed, int n, int64 id)
{
	int			i;

	for (i = 0; i < n; i++)
		if (claimed[i].id == id)
			return i;
	return -1;
}

/*
 * Orders whose create_payment request waits behind an open circuit and
 * was never sent move to another gateway if their routing rule says so
 * (pay._reroute_blocked), before the claim.
 */
static void
RerouteBlocked(char **blocked, int nblocked)
{
	Oid			types[1] = {TEXTARRAYOID};
	Datum		values[1];
	int			rc;

	values[0] = TextArray(blocked, nblocked);
	rc = SPI_execute_plan(KeptPlan(&reroute_blocked_plan, "SELECT pay._reroute_blocked($1)", 1, types),
						  values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not re-route requests behind open circuits: %s", SPI_result_code_string(rc));
}

/*
 * Claim up to max due rows, at most per_destination on the wire per
 * destination and one probe per half-open circuit, and build their requests
 * (copied into cxt).  Returns how many.
 */
int
StoreClaim(int max, int per_destination, ClaimedRequest **claimed, MemoryContext cxt)
{
	Oid			lock_types[2] = {TEXTARRAYOID, INT4OID};
	Oid			id_types[1] = {INT8ARRAYOID};
	Datum		values[2];
	TimestampTz now = GetCurrentTimestamp();
	char	  **blocked;
	char	  **saturated;
	int			nblocked = BreakerBlocked(now, &blocked);
	int			nsaturated = HttpSaturated(per_destination, &saturated);
	char	  **exclude = palloc(sizeof(char *) * Max(nblocked + nsaturated, 1));
	char	  **chosen_dest;
	Datum	   *chosen;
	int			nchosen = 0;
	int			rc;
	uint64		i;
	int			n;
	ClaimedRequest *out;

	if (nblocked > 0)
		RerouteBlocked(blocked, nblocked);
	memcpy(exclude, blocked, sizeof(char *) * nblocked);
	memcpy(exclude + nblocked, saturated, sizeof(char *) * nsaturated);
	values[0] = TextArray(exclude, nblocked + nsaturated);
	values[1] = Int32GetDatum(max);
	rc = SPI_execute_plan(KeptPlan(&claim_lock_plan,
								  "SELECT id, destination FROM pay.outbox"
								  " WHERE state = 'pending' AND next_attempt_at <= pg_catalog.now()"
								  "   AND destination <> ALL($1)"
								  " ORDER BY next_attempt_at LIMIT $2"
								  " FOR UPDATE SKIP LOCKED", 2, lock_types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not lock due outbox rows: %s", SPI_result_code_string(rc));

	chosen = palloc(sizeof(Datum) * Max(SPI_processed, 1));
	chosen_dest = palloc(sizeof(char *) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		char	   *dest = SPI_getvalue(row, desc, 2);
		BreakerVerdict verdict = BreakerCheck(dest, now);
		int			already = HttpInFlightTo(dest);
		int			j;

		for (j = 0; j < nchosen; j++)
			if (strcmp(chosen_dest[j], dest) == 0)
				already++;
		if (verdict == BREAKER_OPEN ||
			(verdict == BREAKER_PROBE && already > 0) ||
			already >= per_destination)
			continue;
		chosen[nchosen] = Int64GetDatum(id);
		chosen_dest[nchosen++] = dest;
	}
	if (nchosen == 0)
	{
		*claimed = NULL;
		return 0;
	}

	values[0] = ScalarArray(chosen, NULL, nchosen, INT8OID);
	rc = SPI_execute_plan(KeptPlan(&claim_mark_plan,
								  "UPDATE pay.outbox SET state = 'in_flight', claimed_at = pg_catalog.now(),"
								  "       attempts = attempts OPERATOR(pg_catalog.+) 1"
								  " WHERE id = ANY($1) AND state = 'pending'"
								  " RETURNING id, attempts, attempts_max, kind = 'merchant_notification', destination, operation",
								  1, id_types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim outbox rows: %s", SPI_result_code_string(rc));
	n = (int) SPI_processed;
	out = MemoryContextAllocZero(cxt, sizeof(ClaimedRequest) * Max(n, 1));
	for (i = 0; i < (uint64) n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		out[i].id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		out[i].attempt = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull));
		out[i].attempts_max = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
		out[i].notification = DatumGetBool(SPI_getbinval(row, desc, 4, &isnull));
		out[i].destination = CopyText(row, desc, 5, cxt);
		out[i].operation = CopyText(row, desc, 6, cxt);
		out[i].error = MemoryContextStrdup(cxt, "the request was not built");
	}

	rc = SPI_execute_plan(KeptPlan(&claim_build_plan,
								  "SELECT id, method, url, headers, body, error FROM pay._outbox_requests($1)",
								  1, id_types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not build outbox requests: %s", SPI_result_code_string(rc));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			k = FindClaimed(out, n, DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull)));
		Datum		headers;
		ClaimedRequest *c;

		if (k < 0)
			continue;
		c = &out[k];
		c->error = CopyText(row, desc, 6, cxt);
		if (c->error != NULL)
			continue;
		c->method = CopyText(row, desc, 2, cxt);
		c->url = CopyText(row, desc, 3, cxt);
		c->body = CopyText(row, desc, 5, cxt);
		headers = SPI_getbinval(row, desc, 4, &isnull);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *enulls;
			int			nelems;
			int			j;

			deconstruct_array(DatumGetArrayTypeP(headers), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &enulls, &nelems);
			c->headers = MemoryContextAllocZero(cxt, sizeof(char *) * Max(nelems, 1));
			for (j = 0; j < nelems; j++)
				if (!enulls[j])
					c->headers[c->nheaders++] = MemoryContextStrdup(cxt, TextDatumGetCString(elems[j]));
		}
		if (c->method == NULL || c->url == NULL)
			c->error = MemoryContextStrdup(cxt, "the request builder returned no method or URL");
	}
	*claimed = out;
	return n;
}

/*
 * When the next pending row is due, among destinations that can take one now
 * (not behind an open circuit, not at per_destination requests on the wire:
 * those are looked at again when a cool-down ends or a transfer finishes);
 * 0 if none.
 */
TimestampTz
StoreNextDue(int per_destination)
{
	Oid			types[1] = {TEXTARRAYOID};
	Datum		values[1];
	char	  **blocked;
	char	  **saturated;
	int			nblocked = BreakerBlocked(GetCurrentTimestamp(), &blocked);
	int			nsaturated = HttpSaturated(per_destination, &saturated);
	char	  **exclude = palloc(sizeof(char *) * Max(nblocked + nsaturated, 1));
	bool		isnull;
	Datum		d;
	int			rc;

	memcpy(exclude, blocked, sizeof(char *) * nblocked);
	memcpy(exclude + nblocked, saturated, sizeof(char *) * nsaturated);
	values[0] = TextArray(exclude, nblocked + nsaturated);
	rc = SPI_execute_plan(KeptPlan(&next_due_plan,
								  "SELECT pg_catalog.min(next_attempt_at) FROM pay.outbox"
								  " WHERE state = 'pending' AND destination <> ALL($1)", 1, types),
						  values, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not find the next due outbox row: %s", SPI_result_code_string(rc));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

/*
 * Apply a PSP's answer, with its header lines as a jsonb object of
 * lower-case names (WeChat Pay signs its answers in headers); NULL or why
 * it could not be applied (palloc'd).  pay._outbox_apply
 * (81_psp_answers.sql) keeps, verifies and applies it.  An answer that is
 * not text (a zipped statement file: NUL bytes, or not valid in the
 * database encoding) goes to pay._outbox_apply_bytes as bytea, which takes
 * it only where a file is expected.
 */
static char *
ApplyAnswer(HttpResult *r)
{
	Oid			types[4] = {INT8OID, INT4OID, TEXTOID, JSONBOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		is_text = r->body != NULL && strlen(r->body) == r->body_len &&
		pg_verifymbstr(r->body, (int) r->body_len, true);
	int			rc;

	values[0] = Int64GetDatum(r->outbox_id);
	values[1] = Int32GetDatum(r->http_status);
	if (r->body == NULL)
	{
		values[2] = CStringGetTextDatum("");
		is_text = true;
	}
	if (is_text)
	{
		if (r->body != NULL)
			values[2] = CStringGetTextDatum(r->body);
		values[3] = HeaderLinesJsonb(r->headers);
		rc = SPI_execute_plan(KeptPlan(&apply_plan, "SELECT pay._outbox_apply($1, $2, $3, $4)", 4, types),
							  values, nulls, false, 1);
	}
	else
	{
		bytea	   *bytes = palloc(VARHDRSZ + r->body_len);

		SET_VARSIZE(bytes, VARHDRSZ + r->body_len);
		memcpy(VARDATA(bytes), r->body, r->body_len);
		values[2] = PointerGetDatum(bytes);
		types[2] = BYTEAOID;
		rc = SPI_execute_plan(KeptPlan(&apply_bytes_plan, "SELECT pay._outbox_apply_bytes($1, $2, $3)", 3, types),
							  values, nulls, false, 1);
	}
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not apply a PSP answer: %s", SPI_result_code_string(rc));
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * Is this a PSP's answer to read: a 2xx that is done, or a permanent
 * refusal (a 4xx but 408 and 429, which are retried), complete?
 */
static bool
AnswerToApply(const HttpResult *r, int outcome)
{
	int			s = r->http_status;

	if (r->notification || r->transport_error || r->too_large || r->refused || r->build_error)
		return false;
	if (outcome == OUTCOME_DONE)
		return true;
	return outcome == OUTCOME_DEAD && s >= 400 && s < 500 && s != 408 && s != 429;
}

/*
 * Record the outcomes of n finished attempts (outcomes[i] is OUTCOME_*; a
 * retry waits waits_ms[i]).  A PSP's answer is applied first: one that
 * cannot be applied turns a done outcome to dead (outcomes[] is updated);
 * a refusal (4xx) is dead anyway (what the PSP said is in
 * pay.psp_answers).  A row that is no longer in flight under this attempt (re-driven,
 * or taken back) keeps its state; the attempt is recorded all the same.
 */
void
StoreRecord(HttpResult *results, int n, int *outcomes, const int64 *waits_ms)
{
	Oid			types[8] = {INT8ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
	FLOAT8ARRAYOID, TIMESTAMPTZARRAYOID, INTERVALARRAYOID};
	Datum		values[8];
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *attempts = palloc(sizeof(Datum) * n);
	Datum	   *outs = palloc(sizeof(Datum) * n);
	Datum	   *statuses = palloc(sizeof(Datum) * n);
	bool	   *status_nulls = palloc(sizeof(bool) * n);
	Datum	   *errors = palloc(sizeof(Datum) * n);
	bool	   *error_nulls = palloc(sizeof(bool) * n);
	Datum	   *latencies = palloc(sizeof(Datum) * n);
	bool	   *latency_nulls = palloc(sizeof(bool) * n);
	Datum	   *started = palloc(sizeof(Datum) * n);
	Datum	   *waits = palloc(sizeof(Datum) * n);
	int			i;
	int			rc;

	for (i = 0; i < n; i++)
	{
		HttpResult *r = &results[i];

		if (AnswerToApply(r, outcomes[i]))
		{
			char	   *why = ApplyAnswer(r);

			if (why != NULL && outcomes[i] == OUTCOME_DONE)
			{
				outcomes[i] = OUTCOME_DEAD;
				strlcpy(r->error, why, sizeof(r->error));
			}
		}
		ids[i] = Int64GetDatum(r->outbox_id);
		attempts[i] = Int32GetDatum(r->attempt);
		outs[i] = Int32GetDatum(outcomes[i]);
		statuses[i] = Int32GetDatum(r->http_status);
		status_nulls[i] = r->http_status == 0;
		errors[i] = CStringGetTextDatum(r->error);
		error_nulls[i] = r->error[0] == '\0';
		latencies[i] = Float8GetDatum(r->latency_ms);
		latency_nulls[i] = r->build_error;
		started[i] = TimestampTzGetDatum(r->started_at);
		waits[i] = MillisecondsInterval(waits_ms[i]);
	}
	values[0] = ScalarArray(ids, NULL, n, INT8OID);
	values[1] = ScalarArray(attempts, NULL, n, INT4OID);
	values[2] = ScalarArray(outs, NULL, n, INT4OID);
	values[3] = ScalarArray(statuses, status_nulls, n, INT4OID);
	values[4] = ScalarArray(errors, error_nulls, n, TEXTOID);
	values[5] = ScalarArray(latencies, latency_nulls, n, FLOAT8OID);
	values[6] = ScalarArray(started, NULL, n, TIMESTAMPTZOID);
	values[7] = ScalarArray(waits, NULL, n, INTERVALOID);
	rc = SPI_execute_plan(KeptPlan(&record_plan,
								  "WITH r AS ("
								  "  SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
								  "                          pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
								  "                          pg_catalog.unnest($7), pg_catalog.unnest($8))"
								  "    AS r(id, attempt, outcome, http_status, error, latency_ms, started_at, wait)),"
								  " u AS ("
								  "  UPDATE pay.outbox o"
								  "     SET state = CASE r.outcome WHEN 0 THEN 'done' WHEN 1 THEN 'pending' ELSE 'dead' END,"
								  "         claimed_at = NULL, last_attempt_at = r.started_at,"
								  "         last_status = r.http_status, last_error = r.error,"
								  "         next_attempt_at = CASE WHEN r.outcome = 1"
								  "             THEN pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) r.wait"
								  "             ELSE o.next_attempt_at END,"
								  "         finished_at = CASE WHEN r.outcome = 1 THEN NULL ELSE pg_catalog.clock_timestamp() END"
								  "    FROM r WHERE o.id = r.id AND o.state = 'in_flight' AND o.attempts = r.attempt"
								  "  RETURNING o.id)"
								  "INSERT INTO pay.outbox_attempts"
								  " (outbox_id, attempt, started_at, latency_ms, http_status, outcome, error)"
								  " SELECT id, attempt, started_at, latency_ms, http_status,"
								  "        CASE outcome WHEN 0 THEN 'done' WHEN 1 THEN 'retry' ELSE 'dead' END, error"
								  "   FROM r",
								  8, types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not record delivery outcomes: %s", SPI_result_code_string(rc));
	RerouteDead(results, n, outcomes);
}

/*
 * A PSP request that went dead may move its order to another gateway
 * (pay._reroute decides: create_payment, still pending, a rule that
 * re-routes, not moved before), in the transaction that recorded it.
 */
static void
RerouteDead(HttpResult *results, int n, const int *outcomes)
{
	Oid			types[1] = {INT8ARRAYOID};
	Datum		values[1];
	Datum	   *ids = palloc(sizeof(Datum) * Max(n, 1));
	int			ndead = 0;
	int			i;
	int			rc;

	for (i = 0; i < n; i++)
		if (outcomes[i] == OUTCOME_DEAD && !results[i].notification)
			ids[ndead++] = Int64GetDatum(results[i].outbox_id);
	if (ndead == 0)
		return;
	values[0] = ScalarArray(ids, NULL, ndead, INT8OID);
	rc = SPI_execute_plan(KeptPlan(&reroute_plan,
								  "SELECT pay._reroute(id) FROM pg_catalog.unnest($1) AS id", 1, types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not re-route dead requests: %s", SPI_result_code_string(rc));
}

/* Put rows claimed under these attempts back to pending (their outcome was not recorded). */
void
StoreRelease(const int64 *ids, const int *attempts, int n)
{
	Oid			types[2] = {INT8ARRAYOID, INT4ARRAYOID};
	Datum		values[2];
	Datum	   *d1 = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *d2 = palloc(sizeof(Datum) * Max(n, 1));
	int			i;
	int			rc;

	for (i = 0; i < n; i++)
	{
		d1[i] = Int64GetDatum(ids[i]);
		d2[i] = Int32GetDatum(attempts[i]);
	}
	values[0] = ScalarArray(d1, NULL, n, INT8OID);
	values[1] = ScalarArray(d2, NULL, n, INT4OID);
	rc = SPI_execute_with_args("UPDATE pay.outbox o SET state = 'pending', claimed_at = NULL,"
							   "       next_attempt_at = pg_catalog.now() OPERATOR(pg_catalog.+) interval '1 second'"
							   "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS r(id, attempt)"
							   " WHERE o.id = r.id AND o.state = 'in_flight' AND o.attempts = r.attempt",
							   2, types, values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not release outbox rows: %s", SPI_result_code_string(rc));
}
