/*
 * dispatcher_limit.c — how many requests each destination may have on the
 * wire, and when it may get the next one.
 *
 * Three limits, each per destination:
 *
 *  - Concurrency, adaptive (AIMD).  A destination starts at
 *    DEFAULT_INITIAL_LIMIT requests on the wire.  Every answer that comes
 *    back while the limit was in use (at least half of it on the wire) and
 *    whose latency stays near the lowest latency seen lately (within twice
 *    it, plus 20 ms and the worker's own delay in reading answers) raises it: by one
 *    per answer until the first congestion signal (slow start: the limit
 *    doubles each round trip), by one per round trip after that.  A timeout,
 *    a transport error, a 408, a 429 or a 5xx halves it; a latency well
 *    above the lowest one seen (the PSP queues our requests) takes a tenth
 *    off.  At most one decrease per round trip: the answers to requests sent
 *    before the last decrease say nothing about the limit that followed it.
 *    The limit stays within pay.dispatcher_destination_concurrency_min and
 *    pay.dispatcher_destination_concurrency.  A PSP that answers in 200 ms
 *    thus gets hundreds of requests at once, and one that slows down or
 *    refuses gets fewer, without a setting per PSP.
 *  - Retry-After.  A 429 or 503 that carries it (seconds, or an HTTP date)
 *    stops every request to that destination until then (at most
 *    RETRY_AFTER_MAX_S ahead: a broken header cannot stop a destination for
 *    days).
 *  - A rate: a gateway's option max_rate (requests per second, in
 *    pay.gateways.options) is a token bucket that holds up to a tenth of a
 *    second's worth of tokens (at least one), so no second sees much more
 *    than the rate.  The options are read again at most once a second, and
 *    whenever a gateway the worker has not met has due requests.
 *
 * The state lives in the worker's memory only: after a restart every
 * destination starts again from the initial limit, which is safe.
 */
#include "postgres.h"

#include <curl/curl.h>
#include <math.h>

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dispatcher.h"
#include "header_lines.h"
#include "pay.h"

#define DESTINATION_LEN			80
#define DEFAULT_INITIAL_LIMIT	16	/* the fixed limit of earlier versions: a safe start */
#define BACKOFF_RATIO			0.5 /* on a timeout, 408, 429 or 5xx */
#define QUEUEING_RATIO			0.9 /* on a latency well above the lowest */
#define LATENCY_TOLERANCE		2.0 /* "flat": within twice the lowest latency ... */
#define LATENCY_SLACK_MS		20.0	/* ... plus this (loopback and LAN jitter) */
#define LATENCY_WINDOW_MS		10000	/* the lowest latency is that of the last one or two windows */
#define RETRY_AFTER_MAX_S		3600
#define RATES_RELOAD_MS			1000
#define BUCKET_SECONDS			0.1 /* a token bucket holds this many seconds of its rate */

typedef struct DestinationLimit
{
	char		destination[DESTINATION_LEN];	/* hash key */
	double		limit;			/* requests allowed on the wire */
	double		threshold;		/* slow start below it; one more per round trip above */
	double		window_min_ms;	/* lowest latency of the current window, 0: none yet */
	double		previous_min_ms;	/* of the window before */
	TimestampTz window_start;
	TimestampTz decreased_at;	/* the last decrease */
	TimestampTz not_before;		/* Retry-After */
	double		rate;			/* max_rate, requests per second; 0: none */
	double		tokens;
	TimestampTz refilled_at;
	bool		rate_seen;		/* in the last reading of the gateways' options */
	int			sent_in_flight; /* on the wire just after the last request went out */
} DestinationLimit;

int			destination_concurrency_min = 4;

static HTAB *limits_by_destination = NULL;
static double busy_ms = 0;		/* how long the worker's loop works between two waits (moving average) */
static int	rated_count = 0;		/* destinations with a max_rate */
static TimestampTz latest_not_before = 0;	/* the furthest Retry-After */
static TimestampTz rates_loaded_at = 0;
static SPIPlanPtr rates_plan = NULL;

/* Module set-up, from _PG_init. */
void
LimitInit(void)
{
	DefineCustomIntVariable("pay.dispatcher_destination_concurrency_min",
							"Fewest requests on the wire to one destination that its adaptive limit backs off to.",
							"A destination that times out or answers 429 or 5xx has its limit halved, "
							"down to this; pay.dispatcher_destination_concurrency is the ceiling.",
							&destination_concurrency_min, 4, 1, 16384,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
}

/* The bounds in effect (the floor never above the ceiling). */
static double
LimitMax(void)
{
	return (double) Max(dispatcher_destination_concurrency, 1);
}

static double
LimitMin(void)
{
	return Min((double) destination_concurrency_min, LimitMax());
}

static double
Clamp(double v)
{
	return Max(LimitMin(), Min(v, LimitMax()));
}

/* Forget every destination (worker start). */
void
LimitReset(void)
{
	HASHCTL		ctl;

	if (limits_by_destination != NULL)
		hash_destroy(limits_by_destination);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = DESTINATION_LEN;
	ctl.entrysize = sizeof(DestinationLimit);
	ctl.hcxt = TopMemoryContext;
	limits_by_destination = hash_create("pay destination limits", 64, &ctl,
										HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	rates_loaded_at = 0;
	rated_count = 0;
	latest_not_before = 0;
}

/* The state of a destination, made at the initial limit when first seen. */
static DestinationLimit *
Lookup(const char *destination)
{
	char		key[DESTINATION_LEN];
	DestinationLimit *d;
	bool		found;

	if (limits_by_destination == NULL)
		LimitReset();
	strlcpy(key, destination, sizeof(key));
	d = hash_search(limits_by_destination, key, HASH_ENTER, &found);
	if (!found)
	{
		d->limit = Clamp(DEFAULT_INITIAL_LIMIT);
		d->threshold = LimitMax();
		d->window_min_ms = 0;
		d->previous_min_ms = 0;
		d->window_start = 0;
		d->decreased_at = 0;
		d->not_before = 0;
		d->rate = 0;
		d->tokens = 0;
		d->refilled_at = 0;
		d->rate_seen = false;
		d->sent_in_flight = 0;
	}
	return d;
}

/* The most tokens a destination's bucket holds. */
static double
BucketSize(const DestinationLimit *d)
{
	return Max(1.0, d->rate * BUCKET_SECONDS);
}

/* Add the tokens earned since the last refill, up to the bucket's size. */
static void
Refill(DestinationLimit *d, TimestampTz now)
{
	double		size = BucketSize(d);

	if (d->rate <= 0)
		return;
	if (now > d->refilled_at)
		d->tokens = Min(size, d->tokens + d->rate * (double) (now - d->refilled_at) / USECS_PER_SEC);
	d->refilled_at = now;
}

/*
 * Read the gateways' max_rate options (in the caller's transaction, SPI
 * connected), at most once a second unless forced (a gateway the worker has
 * not seen yet: its first request already obeys its rate).  A changed rate
 * applies within a second, and the table is not read on every claim.
 */
void
LimitLoadRates(TimestampTz now, bool force)
{
	HASH_SEQ_STATUS seq;
	DestinationLimit *d;
	uint64		i;
	int			rc;

	if (!force && rates_loaded_at != 0 && now < TimestampTzPlusMilliseconds(rates_loaded_at, RATES_RELOAD_MS))
		return;
	rates_loaded_at = now;
	rc = SPI_execute_plan(KeptPlan(&rates_plan,
								  "SELECT 'gateway:' OPERATOR(pg_catalog.||) name,"
								  "       CASE pg_catalog.jsonb_typeof(options OPERATOR(pg_catalog.->) 'max_rate') WHEN 'number'"
								  "       THEN (options OPERATOR(pg_catalog.->>) 'max_rate')::pg_catalog.float8 END"
								  "  FROM pay.gateways WHERE options OPERATOR(pg_catalog.?) 'max_rate'",
								  0, NULL),
						  NULL, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the gateways' rates: %s", SPI_result_code_string(rc));
	if (limits_by_destination == NULL)
		LimitReset();
	hash_seq_init(&seq, limits_by_destination);
	while ((d = hash_seq_search(&seq)) != NULL)
		d->rate_seen = false;
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		v = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
		double		rate = isnull ? 0 : DatumGetFloat8(v);

		d = Lookup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		if (rate <= 0)
			continue;
		if (d->rate <= 0)
		{
			/* a new bucket starts with one token: no burst at the start */
			d->tokens = 1;
			d->refilled_at = now;
		}
		Refill(d, now);
		d->rate = rate;
		d->rate_seen = true;
	}
	rated_count = 0;
	hash_seq_init(&seq, limits_by_destination);
	while ((d = hash_seq_search(&seq)) != NULL)
		if (!d->rate_seen)
			d->rate = 0;
		else
			rated_count++;
}

/* Whether a destination has state of its own (else it is at the initial limit, nothing on the wire). */
bool
LimitKnown(const char *destination)
{
	char		key[DESTINATION_LEN];

	if (limits_by_destination == NULL)
		return false;
	strlcpy(key, destination, sizeof(key));
	return hash_search(limits_by_destination, key, HASH_FIND, NULL) != NULL;
}

/* The concurrency limit of a destination now (whole requests). */
int
LimitConcurrency(const char *destination)
{
	return (int) floor(Clamp(Lookup(destination)->limit));
}

/*
 * How many more requests a destination may get now, with in_flight on the
 * wire: 0 before its Retry-After, else what its concurrency limit leaves,
 * no more than the tokens in its bucket.
 */
int
LimitRoom(const char *destination, int in_flight, TimestampTz now)
{
	DestinationLimit *d = Lookup(destination);
	int			room;

	if (now < d->not_before)
		return 0;
	room = (int) floor(Clamp(d->limit)) - in_flight;
	if (d->rate > 0)
	{
		Refill(d, now);
		room = Min(room, (int) floor(d->tokens));
	}
	return Max(room, 0);
}

/* A request to the destination went out, in_flight now on the wire to it: it takes a token. */
void
LimitSent(const char *destination, int in_flight, TimestampTz now)
{
	DestinationLimit *d = Lookup(destination);

	d->sent_in_flight = in_flight;

	if (d->rate > 0)
	{
		Refill(d, now);
		d->tokens -= 1;
	}
}

/*
 * When the next blocked destination opens (its Retry-After ends, or its
 * bucket has a token again); 0 if none is blocked so.  The worker wakes then
 * to claim: nothing else would.
 */
TimestampTz
LimitNextChange(TimestampTz now)
{
	HASH_SEQ_STATUS seq;
	DestinationLimit *d;
	TimestampTz next = 0;

	/* asked at every turn of the loop: most of the time nothing can be blocked so */
	if (limits_by_destination == NULL || (rated_count == 0 && latest_not_before <= now))
		return 0;
	hash_seq_init(&seq, limits_by_destination);
	while ((d = hash_seq_search(&seq)) != NULL)
	{
		TimestampTz t = 0;

		if (d->not_before > now)
			t = d->not_before;
		else if (d->rate > 0)
		{
			/*
			 * Wake when the bucket is full again, not at its first token:
			 * a claim per token would cost two commits per request.
			 */
			Refill(d, now);
			if (d->tokens < 1)
				t = now + (TimestampTz) ceil((BucketSize(d) - d->tokens) / d->rate * USECS_PER_SEC);
		}
		if (t != 0 && (next == 0 || t < next))
			next = t;
	}
	return next;
}

/* The value of header name (case-insensitive) in an answer's header lines, copied into out; false if absent. */
static bool
HeaderValue(const char *headers, const char *name, char *out, size_t outlen)
{
	const char *cursor = headers;
	HeaderLine	h;

	while (cursor != NULL && header_lines_next(&cursor, &h))
	{
		if (!header_line_named(&h, name))
			continue;
		if (h.value_len >= outlen)
			return false;
		memcpy(out, h.value, h.value_len);
		out[h.value_len] = '\0';
		return true;
	}
	return false;
}

/*
 * Seconds from now that a Retry-After value asks for: delta-seconds or an
 * HTTP date (RFC 9110 10.2.3); -1 when it is neither.
 */
static int64
RetryAfterSeconds(const char *value, TimestampTz now)
{
	const char *p = value;
	int64		secs = 0;
	time_t		at;

	if (*p >= '0' && *p <= '9')
	{
		for (; *p >= '0' && *p <= '9'; p++)
			secs = Min(secs * 10 + (*p - '0'), (int64) RETRY_AFTER_MAX_S);
		return *p == '\0' ? secs : -1;
	}
	at = curl_getdate(value, NULL);
	if (at == (time_t) -1)
		return -1;
	secs = (int64) at - (int64) timestamptz_to_time_t(now);
	return Max(secs, 0);
}

/* Apply an answer's Retry-After (429 and 503 only); returns when requests may go again, 0 if none. */
static TimestampTz
HonourRetryAfter(DestinationLimit *d, const HttpResult *r, TimestampTz now)
{
	char		value[128];
	int64		secs;
	TimestampTz until;

	if ((r->http_status != 429 && r->http_status != 503) || r->headers == NULL ||
		!HeaderValue(r->headers, "Retry-After", value, sizeof(value)))
		return 0;
	secs = RetryAfterSeconds(value, now);
	if (secs <= 0)
		return 0;
	until = TimestampTzPlusMilliseconds(now, Min(secs, (int64) RETRY_AFTER_MAX_S) * 1000);
	if (until > d->not_before)
		d->not_before = until;
	if (until > latest_not_before)
		latest_not_before = until;
	return d->not_before;
}

/* Multiply the limit by ratio, once per round trip (requests sent after the last decrease). */
static void
Decrease(DestinationLimit *d, const HttpResult *r, double ratio, TimestampTz now)
{
	if (r->started_at < d->decreased_at)
		return;
	d->limit = Clamp(d->limit * ratio);
	d->threshold = d->limit;
	d->decreased_at = now;
}

/*
 * The worker's loop worked busy milliseconds before it waited again.  An
 * answer that arrives meanwhile is read only at the next turn, so its
 * latency includes up to that much of our own time: the tolerance grows by
 * it, or a busy worker would take its own delay for the PSP's and shrink
 * every limit just when larger batches would help.
 */
void
LimitLoopBusy(double ms)
{
	busy_ms = ms > busy_ms ? ms : busy_ms * 0.9 + ms * 0.1;
}

/* Keep the lowest latency of the current and the previous window. */
static double
LowestLatency(DestinationLimit *d, double latency_ms, TimestampTz now)
{
	if (d->window_start == 0 || now >= TimestampTzPlusMilliseconds(d->window_start, LATENCY_WINDOW_MS))
	{
		d->previous_min_ms = d->window_min_ms;
		d->window_min_ms = 0;
		d->window_start = now;
	}
	if (d->window_min_ms == 0 || latency_ms < d->window_min_ms)
		d->window_min_ms = latency_ms;
	return d->previous_min_ms > 0 ? Min(d->previous_min_ms, d->window_min_ms) : d->window_min_ms;
}

/*
 * Learn from a finished attempt to the destination; in_flight is how many
 * requests to it are still on the wire.  Attempts that never reached it
 * (refused, not built) teach nothing.
 */
void
LimitRecord(const HttpResult *r, int in_flight, TimestampTz now)
{
	DestinationLimit *d;
	int			s = r->http_status;
	double		lowest;

	if (r->refused || r->build_error)
		return;
	d = Lookup(r->destination);
	if (HonourRetryAfter(d, r, now) != 0)
		ereport(LOG, (errmsg("pay dispatcher: %s answered %d with Retry-After: nothing is sent to it for %ld s",
							 r->destination, s, (long) ((d->not_before - now) / USECS_PER_SEC))));
	if (r->transport_error || r->too_large || s == 408 || s == 429 || s >= 500)
	{
		Decrease(d, r, BACKOFF_RATIO, now);
		return;
	}
	lowest = LowestLatency(d, r->latency_ms, now);
	if (r->latency_ms > lowest * LATENCY_TOLERANCE + LATENCY_SLACK_MS + 2 * busy_ms)
	{
		Decrease(d, r, QUEUEING_RATIO, now);
		return;
	}
	/*
	 * An unused limit proves nothing: grow only while at least half of it is
	 * taken.  Answers come in batches (a wave of requests sent together ends
	 * together), so the count on the wire as the last request went out says
	 * it better than the count left after the batch.
	 */
	if ((double) Max(in_flight + 1, d->sent_in_flight) * 2 < d->limit)
		return;
	d->limit = Clamp(d->limit + (d->limit < d->threshold ? 1.0 : 1.0 / d->limit));
}
