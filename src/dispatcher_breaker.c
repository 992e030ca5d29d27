/*
 * dispatcher_breaker.c — a circuit breaker per destination.
 *
 * After pay.breaker_failures consecutive failed attempts (transport errors,
 * 5xx, 408, 429) a destination's circuit opens for pay.breaker_cooldown:
 * nothing is sent to it.  Then it is half-open: one probe goes out; its
 * success closes the circuit, its failure opens it for another cool-down.
 * The worker keeps the state in memory and writes every change to
 * pay.circuit_breakers in the transaction that records the outcome, so the
 * state survives restarts and routing can read it (pay.gateway_available).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dispatcher.h"
#include "pay.h"

#define DESTINATION_LEN		80
#define BREAKER_ERROR_LEN	200

typedef enum BreakerState
{
	STATE_CLOSED,
	STATE_OPEN,
	STATE_HALF_OPEN
} BreakerState;

typedef struct Breaker
{
	char		destination[DESTINATION_LEN];	/* hash key */
	BreakerState state;
	int			failures;		/* consecutive */
	TimestampTz opened_at;
	TimestampTz open_until;
	TimestampTz last_failure_at;
	bool		probe_in_flight;
	bool		dirty;			/* to be written to pay.circuit_breakers */
	char		last_error[BREAKER_ERROR_LEN];
} Breaker;

int			breaker_failures = 5;
int			breaker_cooldown_ms = 30000;

static HTAB *breakers = NULL;
static const char *const state_names[] = {"closed", "open", "half_open"};

/* Module set-up, from _PG_init. */
void
BreakerInit(void)
{
	DefineCustomIntVariable("pay.breaker_failures",
							"Consecutive failures that open a destination's circuit (0: never).",
							NULL, &breaker_failures, 5, 0, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pay.breaker_cooldown",
							"How long an open circuit sends nothing before one probe.",
							NULL, &breaker_cooldown_ms, 30000, 1, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* Forget every breaker (worker start). */
void
BreakerReset(void)
{
	HASHCTL		ctl;

	if (breakers != NULL)
		hash_destroy(breakers);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = DESTINATION_LEN;
	ctl.entrysize = sizeof(Breaker);
	ctl.hcxt = TopMemoryContext;
	breakers = hash_create("pay circuit breakers", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* The breaker of a destination, created closed if asked to. */
static Breaker *
BreakerFind(const char *destination, bool create)
{
	char		key[DESTINATION_LEN];
	bool		found;
	Breaker    *b;

	if (breakers == NULL)
		BreakerReset();
	memset(key, 0, sizeof(key));
	strlcpy(key, destination, sizeof(key));
	b = (Breaker *) hash_search(breakers, key, create ? HASH_ENTER : HASH_FIND, &found);
	if (b != NULL && !found)
	{
		b->state = STATE_CLOSED;
		b->failures = 0;
		b->opened_at = b->open_until = b->last_failure_at = 0;
		b->probe_in_flight = false;
		b->dirty = false;
		b->last_error[0] = '\0';
	}
	return b;
}

/* Read pay.circuit_breakers (in the caller's transaction, connected to SPI). */
void
BreakerLoad(void)
{
	uint64		i;
	int			rc;

	BreakerReset();
	rc = SPI_execute("SELECT destination, state, consecutive_failures, opened_at, open_until, "
					 "last_failure_at, coalesce(last_error, '') FROM pay.circuit_breakers", true, 100000);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.circuit_breakers: %s", SPI_result_code_string(rc));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *state = SPI_getvalue(row, desc, 2);
		Breaker    *b = BreakerFind(SPI_getvalue(row, desc, 1), true);
		Datum		d;

		b->state = strcmp(state, "closed") == 0 ? STATE_CLOSED : STATE_OPEN;
		b->failures = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
		d = SPI_getbinval(row, desc, 4, &isnull);
		b->opened_at = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(row, desc, 5, &isnull);
		/* a half-open circuit found at start sends its probe at once */
		b->open_until = isnull ? 0 : DatumGetTimestampTz(d);
		if (strcmp(state, "half_open") == 0)
			b->open_until = 0;
		d = SPI_getbinval(row, desc, 6, &isnull);
		b->last_failure_at = isnull ? 0 : DatumGetTimestampTz(d);
		strlcpy(b->last_error, SPI_getvalue(row, desc, 7), BREAKER_ERROR_LEN);
	}
}

/* May a request go to destination now? */
BreakerVerdict
BreakerCheck(const char *destination, TimestampTz now)
{
	Breaker    *b = BreakerFind(destination, false);

	if (b == NULL || b->state == STATE_CLOSED)
		return BREAKER_CLOSED;
	if (b->probe_in_flight)
		return BREAKER_OPEN;
	if (b->state == STATE_OPEN && now < b->open_until)
		return BREAKER_OPEN;
	return BREAKER_PROBE;
}

/* The one request of a half-open circuit went out. */
void
BreakerProbeStarted(const char *destination)
{
	Breaker    *b = BreakerFind(destination, true);

	b->probe_in_flight = true;
	if (b->state != STATE_HALF_OPEN)
	{
		b->state = STATE_HALF_OPEN;
		b->dirty = true;
	}
}

/* An attempt to destination ended: healthy (an answer that is not a failure) or not. */
void
BreakerRecord(const char *destination, bool healthy, const char *error, TimestampTz now)
{
	Breaker    *b = BreakerFind(destination, !healthy);

	if (b == NULL)
		return;					/* healthy and never failed: nothing to note */
	if (healthy)
	{
		if (b->state != STATE_CLOSED || b->failures != 0)
		{
			b->state = STATE_CLOSED;
			b->failures = 0;
			b->opened_at = b->open_until = 0;
			b->dirty = true;
		}
		b->probe_in_flight = false;
		return;
	}
	b->failures++;
	b->last_failure_at = now;
	strlcpy(b->last_error, error ? error : "", BREAKER_ERROR_LEN);
	b->dirty = true;
	if (b->state == STATE_HALF_OPEN ||
		(b->state == STATE_CLOSED && breaker_failures > 0 && b->failures >= breaker_failures))
	{
		b->state = STATE_OPEN;
		b->opened_at = now;
		b->open_until = TimestampTzPlusMilliseconds(now, breaker_cooldown_ms);
		ereport(LOG,
				(errmsg("pay dispatcher: circuit of \"%s\" opened after %d consecutive failures",
						b->destination, b->failures),
				 errdetail("Nothing is sent to it for %d ms, then one probe.", breaker_cooldown_ms)));
	}
	b->probe_in_flight = false;
}

/* Write changed breakers to pay.circuit_breakers (caller's transaction, SPI). */
void
BreakerSave(void)
{
	static SPIPlanPtr plan = NULL;
	HASH_SEQ_STATUS seq;
	Breaker    *b;

	if (breakers == NULL)
		return;
	if (plan == NULL)
	{
		Oid			types[7] = {TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID,
		TIMESTAMPTZOID, TEXTOID};

		plan = SPI_prepare("INSERT INTO pay.circuit_breakers AS c (destination, state, consecutive_failures, "
						   "opened_at, open_until, last_failure_at, last_error, updated_at) "
						   "VALUES ($1, $2, $3, $4, $5, $6, $7, pg_catalog.clock_timestamp()) "
						   "ON CONFLICT (destination) DO UPDATE SET state = excluded.state, "
						   "consecutive_failures = excluded.consecutive_failures, opened_at = excluded.opened_at, "
						   "open_until = excluded.open_until, last_failure_at = excluded.last_failure_at, "
						   "last_error = excluded.last_error, updated_at = excluded.updated_at",
						   7, types);
		if (plan == NULL)
			elog(ERROR, "could not prepare the breaker upsert: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	hash_seq_init(&seq, breakers);
	while ((b = (Breaker *) hash_seq_search(&seq)) != NULL)
	{
		Datum		values[7];
		char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
		int			rc;

		if (!b->dirty)
			continue;
		values[0] = CStringGetTextDatum(b->destination);
		values[1] = CStringGetTextDatum(state_names[b->state]);
		values[2] = Int32GetDatum(b->failures);
		values[3] = TimestampTzGetDatum(b->opened_at);
		nulls[3] = b->opened_at == 0 ? 'n' : ' ';
		values[4] = TimestampTzGetDatum(b->open_until);
		nulls[4] = b->open_until == 0 ? 'n' : ' ';
		values[5] = TimestampTzGetDatum(b->last_failure_at);
		nulls[5] = b->last_failure_at == 0 ? 'n' : ' ';
		values[6] = CStringGetTextDatum(b->last_error);
		nulls[6] = b->last_error[0] == '\0' ? 'n' : ' ';
		rc = SPI_execute_plan(plan, values, nulls, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not save the circuit of \"%s\": %s", b->destination, SPI_result_code_string(rc));
		b->dirty = false;
	}
}

/*
 * Destinations whose circuit sends nothing now, as a palloc'd array: open
 * ones, and half-open ones whose probe cannot go yet (requests sent before
 * the circuit opened are still on the wire).
 */
int
BreakerBlocked(TimestampTz now, char ***destinations)
{
	HASH_SEQ_STATUS seq;
	Breaker    *b;
	int			n = 0;
	int			capacity = 8;

	*destinations = palloc(sizeof(char *) * capacity);
	if (breakers == NULL)
		return 0;
	hash_seq_init(&seq, breakers);
	while ((b = (Breaker *) hash_seq_search(&seq)) != NULL)
	{
		BreakerVerdict v = BreakerCheck(b->destination, now);

		if (v == BREAKER_CLOSED || (v == BREAKER_PROBE && HttpInFlightTo(b->destination) == 0))
			continue;
		if (n == capacity)
		{
			capacity *= 2;
			*destinations = repalloc(*destinations, sizeof(char *) * capacity);
		}
		(*destinations)[n++] = pstrdup(b->destination);
	}
	return n;
}

/* When the next open circuit's cool-down ends (0: none). */
TimestampTz
BreakerNextChange(TimestampTz now)
{
	HASH_SEQ_STATUS seq;
	Breaker    *b;
	TimestampTz next = 0;

	if (breakers == NULL)
		return 0;
	hash_seq_init(&seq, breakers);
	while ((b = (Breaker *) hash_seq_search(&seq)) != NULL)
		if (b->state == STATE_OPEN && !b->probe_in_flight && b->open_until > now &&
			(next == 0 || b->open_until < next))
			next = b->open_until;
	return next;
}
