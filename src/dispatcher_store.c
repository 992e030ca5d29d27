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
#include "utils/guc.h"
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
static SPIPlanPtr destinations_plan = NULL;
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
 * Plan (or re-plan, after an ANALYZE) the claim's statements on the index
 * of due rows per destination, whatever pg_statistic says: statistics taken
 * when the outbox was empty, or when every row was still in the future, made
 * the planner read every pending row with a bitmap scan and sort them.  No
 * sequential scan, no bitmap scan, no sort: the index walk is the only plan
 * left, and it reads only the rows it returns (the claim's UPDATE: the
 * primary key, never a sequential scan planned once while the outbox was
 * small).  Returns the GUC nest level
 * to pop (AtEOXact_GUC) after the statements.
 */
static int
IndexOnlyPlanning(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/* A destination that has pending rows: its earliest due time, and how many it may take now. */
typedef struct DueDestination
{
	char	   *destination;
	TimestampTz due;
	int			room;
	int			claimed;		/* rows locked for it */
} DueDestination;

static int
CompareDue(const void *a, const void *b)
{
	const DueDestination *x = a;
	const DueDestination *y = b;

	return x->due < y->due ? -1 : x->due > y->due ? 1 : 0;
}

/*
 * Every destination that has pending rows, with its earliest next_attempt_at:
 * a walk over outbox_destination_due, one index probe per destination
 * (skipping all of its rows at once), so its cost does not grow with the
 * backlog.
 */
static int
PendingDestinations(DueDestination **out)
{
	int			rc;
	uint64		i;

	rc = SPI_execute_plan(KeptGenericPlan(&destinations_plan,
										 "WITH RECURSIVE d AS ("
										 "  (SELECT destination, next_attempt_at FROM pay.outbox"
										 "    WHERE state = 'pending' ORDER BY destination, next_attempt_at LIMIT 1)"
										 "  UNION ALL"
										 "  SELECT n.destination, n.next_attempt_at FROM d,"
										 "   LATERAL (SELECT o.destination, o.next_attempt_at FROM pay.outbox o"
										 "             WHERE o.state = 'pending' AND o.destination OPERATOR(pg_catalog.>) d.destination"
										 "             ORDER BY o.destination, o.next_attempt_at LIMIT 1) n)"
										 "SELECT destination, next_attempt_at FROM d", 0, NULL),
	/* not read-only: it must see the rows RerouteBlocked has just queued */
						  NULL, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not list the destinations of pending outbox rows: %s", SPI_result_code_string(rc));
	*out = palloc(sizeof(DueDestination) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		(*out)[i].destination = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		(*out)[i].due = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		(*out)[i].room = 0;
		(*out)[i].claimed = 0;
	}
	return (int) SPI_processed;
}

/* Has a gateway the worker has not met yet pending rows?  (Its max_rate must be read first.) */
static bool
NewGateway(DueDestination *pending, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strncmp(pending[i].destination, "gateway:", 8) == 0 && !LimitKnown(pending[i].destination))
			return true;
	return false;
}

/*
 * How many rows a destination may take now: what its limits leave
 * (dispatcher_limit.c), none behind an open circuit, one probe when
 * half-open and nothing is on the wire to it.
 */
static int
DestinationRoom(const char *destination, TimestampTz now)
{
	int			in_flight = HttpInFlightTo(destination);

	switch (BreakerCheck(destination, now))
	{
		case BREAKER_OPEN:
			return 0;
		case BREAKER_PROBE:
			return in_flight > 0 ? 0 : Min(1, LimitRoom(destination, in_flight, now));
		default:
			return LimitRoom(destination, in_flight, now);
	}
}

/*
 * Lock up to max due rows, at most room[i] of destination dest[i] (in that
 * order: the longest waiting destination first), oldest first within each.
 * Their ids (bigint[]) and addresses (tid[]) go to *ids and *tids; returns
 * how many.
 *
 * Each destination's scan starts at the first pending row that
 * PendingDestinations found, not at the start of its range: the rows claimed
 * since the last VACUUM leave dead entries there (in the order they were
 * claimed, oldest first), and stepping over them again cost more than the
 * rest of the claim.  A row committed in between with an earlier due time
 * is not lost: its commit wakes the worker, whose next claim finds it.
 */
static int
LockDue(DueDestination *due, int ndue, int max, Datum *ids, Datum *tids)
{
	Oid			types[4] = {TEXTARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID, INT4OID};
	Datum		values[4];
	char	  **dests = palloc(sizeof(char *) * Max(ndue, 1));
	Datum	   *rooms = palloc(sizeof(Datum) * Max(ndue, 1));
	Datum	   *firsts = palloc(sizeof(Datum) * Max(ndue, 1));
	int			i;
	int			rc;

	for (i = 0; i < ndue; i++)
	{
		dests[i] = due[i].destination;
		rooms[i] = Int32GetDatum(due[i].room);
		firsts[i] = TimestampTzGetDatum(due[i].due);
	}
	values[0] = TextArray(dests, ndue);
	values[1] = ScalarArray(rooms, NULL, ndue, INT4OID);
	values[2] = ScalarArray(firsts, NULL, ndue, TIMESTAMPTZOID);
	values[3] = Int32GetDatum(max);
	rc = SPI_execute_plan(KeptGenericPlan(&claim_lock_plan,
										 "SELECT c.id, c.ctid, d.n::pg_catalog.int4"
										 "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3))"
										 "       WITH ORDINALITY AS d(destination, room, first_due, n)"
										 " CROSS JOIN LATERAL ("
										 "   SELECT o.id, o.ctid FROM pay.outbox o"
										 "    WHERE o.state = 'pending' AND o.destination = d.destination"
										 "      AND o.next_attempt_at OPERATOR(pg_catalog.>=) d.first_due"
										 "      AND o.next_attempt_at <= pg_catalog.now()"
										 "    ORDER BY o.next_attempt_at LIMIT d.room"
										 "    FOR UPDATE SKIP LOCKED) c"
										 " LIMIT $4", 4, types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not lock due outbox rows: %s", SPI_result_code_string(rc));
	{
		int			n = (int) SPI_processed;
		Datum	   *id = palloc(sizeof(Datum) * Max(n, 1));
		Datum	   *tid = palloc(sizeof(Datum) * Max(n, 1));

		for (i = 0; i < n; i++)
		{
			bool		isnull;

			id[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			tid[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
			due[DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull)) - 1].claimed++;
		}
		*ids = ScalarArray(id, NULL, n, INT8OID);
		*tids = ScalarArray(tid, NULL, n, TIDOID);
		return n;
	}
}

/*
 * A destination with due rows and room that got none had them all locked by
 * another transaction (pay.redrive, say): look again in a second, since a
 * rollback there wakes nobody.  (One that got some is looked at again when
 * their answers come back; with the claim cut at max, at once.)
 */
static void
LookAgainForLocked(DueDestination *due, int ndue, bool all_seen, TimestampTz now, TimestampTz *next_due)
{
	TimestampTz again = TimestampTzPlusMilliseconds(now, 1000);
	int			i;

	if (!all_seen)
		return;
	for (i = 0; i < ndue; i++)
		if (due[i].claimed == 0 && (*next_due == 0 || again < *next_due))
			*next_due = again;
}

/*
 * Claim up to max due rows, within each destination's room (limits,
 * circuit), and build their requests (copied into cxt).  Returns how many;
 * *next_due is when the next pending row of a destination that has room
 * comes due (0 if none: destinations without room are looked at again when
 * a transfer finishes, a cool-down ends or a wait of dispatcher_limit.c
 * ends).
 *
 * The cost follows the rows claimed and the destinations that have pending
 * rows, not the backlog: a destination at its limit with a million due rows
 * costs one index probe.
 */
int
StoreClaim(int max, ClaimedRequest **claimed, TimestampTz *next_due, MemoryContext cxt)
{
	Oid			id_types[1] = {INT8ARRAYOID};
	Datum		values[1];
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz db_now = GetCurrentTransactionStartTimestamp();
	char	  **blocked;
	int			nblocked = BreakerBlocked(now, &blocked);
	DueDestination *pending;
	int			npending;
	int			ndue = 0;
	Datum		ids = (Datum) 0;
	Datum		tids = (Datum) 0;
	Oid			tid_types[1] = {TIDARRAYOID};
	int			nchosen;
	int			level;
	int			rc;
	uint64		i;
	int			n;
	ClaimedRequest *out;

	if (nblocked > 0)
		RerouteBlocked(blocked, nblocked);
	*next_due = 0;
	*claimed = NULL;
	level = IndexOnlyPlanning();
	npending = PendingDestinations(&pending);
	AtEOXact_GUC(true, level);
	/* its scan of pay.gateways is planned with the usual settings */
	LimitLoadRates(now, NewGateway(pending, npending));
	level = IndexOnlyPlanning();
	for (i = 0; i < (uint64) npending; i++)
	{
		DueDestination *d = &pending[i];

		d->room = DestinationRoom(d->destination, now);
		if (d->room <= 0)
			continue;
		if (d->due <= db_now)
			pending[ndue++] = *d;
		else if (*next_due == 0 || d->due < *next_due)
			*next_due = d->due;
	}
	qsort(pending, ndue, sizeof(DueDestination), CompareDue);
	nchosen = ndue > 0 ? LockDue(pending, ndue, max, &ids, &tids) : 0;
	LookAgainForLocked(pending, ndue, nchosen < max, now, next_due);
	if (nchosen == 0)
	{
		AtEOXact_GUC(true, level);
		return 0;
	}

	/*
	 * The rows just locked, by their addresses (a TID scan: locked by us,
	 * they cannot move).  Not "WHERE id = ANY($1) AND state = 'pending'":
	 * with statistics that say no row is pending, the planner would rather
	 * walk the whole partial index of pending rows than the primary key.
	 */
	values[0] = tids;
	rc = SPI_execute_plan(KeptGenericPlan(&claim_mark_plan,
								  "UPDATE pay.outbox SET state = 'in_flight', claimed_at = pg_catalog.now(),"
								  "       attempts = attempts OPERATOR(pg_catalog.+) 1"
								  " WHERE ctid OPERATOR(pg_catalog.=) ANY($1)"
								  " RETURNING id, attempts, attempts_max, kind = 'merchant_notification', destination, operation",
								  1, tid_types),
						  values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim outbox rows: %s", SPI_result_code_string(rc));
	AtEOXact_GUC(true, level);
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

	values[0] = ids;
	rc = SPI_execute_plan(KeptGenericPlan(&claim_build_plan,
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
	int			level;

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

	/*
	 * One plan for every batch, made under the claim's planning settings:
	 * the rows are found by the primary key whatever the statistics say,
	 * and no batch pays for planning it again.
	 */
	level = IndexOnlyPlanning();
	rc = SPI_execute_plan(KeptGenericPlan(&record_plan,
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
	AtEOXact_GUC(true, level);
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
