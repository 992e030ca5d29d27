/*
 * span_export.c — the dispatcher's outbound requests as OTLP CLIENT spans,
 * posted in batches to pay.otlp_endpoint (OTLP/HTTP, JSON encoding).
 *
 * Each attempt that went out with a traceparent header becomes a span whose
 * id is exactly the span id of that header, so the PSP's or merchant's own
 * spans hang under it.  Spans wait in a bounded queue in the worker's
 * memory (the newest are dropped, and counted, when it is full) and go out
 * up to SPAN_BATCH at a time, at least every SPAN_INTERVAL_MS, as one more
 * transfer of the dispatcher's libcurl multi handle: the worker never waits
 * for the collector, and a failed post only loses its batch.
 *
 * The endpoint is the operator's (postgresql.conf or ALTER SYSTEM), so it
 * is not subject to pay.allow_private_destinations: a collector on
 * loopback or in a private network is the usual set-up.
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "otlp_json.h"
#include "span_export.h"

#define SPAN_QUEUE 2048
#define SPAN_BATCH 100
#define SPAN_INTERVAL_MS 1000
#define SPAN_LOG_INTERVAL_MS 60000

static char *otlp_endpoint = NULL;
static OtlpSpan *queue = NULL;	/* SPAN_QUEUE entries, allocated on first use */
static int	queued = 0;
static TimestampTz oldest_at = 0;	/* when the oldest waiting span was queued */
static uint64 dropped = 0;		/* since the last log line */
static uint64 failed_posts = 0;
static char last_error[256] = "";
static TimestampTz logged_at = 0;

void
SpanExportInit(void)
{
	DefineCustomStringVariable("pay.otlp_endpoint",
							   "OTLP/HTTP traces URL the dispatcher posts a span of each traced request to (empty: none).",
							   "JSON encoding, e.g. http://127.0.0.1:4318/v1/traces; may be a private or loopback address.",
							   &otlp_endpoint, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
}

static bool
Enabled(void)
{
	return otlp_endpoint != NULL && otlp_endpoint[0] != '\0';
}

/* TimestampTz (microseconds since 2000) as nanoseconds since 1970 */
static uint64
UnixNano(TimestampTz t)
{
	return (uint64) (t + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY) * 1000;
}

void
SpanExportRecord(const HttpResult *r, const DeliveryContext *dc)
{
	OtlpSpan   *s;

	/* a request that could not be built never went out: no span */
	if (!Enabled() || r->build_error || dc->span_id[0] == '\0' || dc->trace_id[0] == '\0')
		return;
	if (queue == NULL)
		queue = MemoryContextAllocZero(TopMemoryContext, sizeof(OtlpSpan) * SPAN_QUEUE);
	if (queued == SPAN_QUEUE)
	{
		dropped++;
		return;
	}
	if (queued == 0)
		oldest_at = GetCurrentTimestamp();
	s = &queue[queued++];
	memset(s, 0, sizeof(*s));
	OtlpCopy(s->trace_id, sizeof(s->trace_id), dc->trace_id);
	OtlpCopy(s->span_id, sizeof(s->span_id), dc->span_id);
	snprintf(s->name, sizeof(s->name), "%s %s", dc->method,
			 r->notification ? "merchant_notification" : dc->operation);
	s->kind = OTLP_SPAN_KIND_CLIENT;
	s->start_unix_nano = UnixNano(r->started_at);
	s->end_unix_nano = s->start_unix_nano + (uint64) (r->latency_ms * 1000000.0);
	OtlpCopy(s->method, sizeof(s->method), dc->method);
	OtlpCopy(s->server_address, sizeof(s->server_address), dc->host);
	s->http_status = r->http_status;
	s->status_code = r->http_status >= 200 && r->http_status <= 299 ? OTLP_STATUS_OK : OTLP_STATUS_ERROR;
}

/* Log drops and failed posts, at most once per SPAN_LOG_INTERVAL_MS */
static void
MaybeLog(TimestampTz now)
{
	if (dropped == 0 && failed_posts == 0)
		return;
	if (logged_at != 0 && !TimestampDifferenceExceeds(logged_at, now, SPAN_LOG_INTERVAL_MS))
		return;
	ereport(LOG,
			(errmsg("pay dispatcher: %llu span posts to pay.otlp_endpoint failed, %llu spans dropped from a full queue",
					(unsigned long long) failed_posts, (unsigned long long) dropped),
			 last_error[0] ? errdetail("Last error: %s", last_error) : 0));
	dropped = failed_posts = 0;
	logged_at = now;
}

void
SpanExportPosted(bool ok, const char *error)
{
	if (!ok)
	{
		failed_posts++;
		strlcpy(last_error, error, sizeof(last_error));
	}
	MaybeLog(GetCurrentTimestamp());
}

void
SpanExportFlush(TimestampTz now)
{
	int			n;
	size_t		len;
	char	   *body;
	char		error[256];

	MaybeLog(now);
	if (queued == 0 || HttpExportBusy())
		return;
	if (!Enabled())
	{
		queued = 0;				/* the setting was cleared: nowhere to send them */
		return;
	}
	if (queued < SPAN_BATCH && !TimestampDifferenceExceeds(oldest_at, now, SPAN_INTERVAL_MS))
		return;
	n = Min(queued, SPAN_BATCH);
	body = OtlpEncodeSpans("pay-dispatcher", queue, n, &len);
	memmove(queue, queue + n, sizeof(OtlpSpan) * (queued - n));
	queued -= n;
	oldest_at = now;
	if (body == NULL)
		SpanExportPosted(false, "out of memory");
	else if (!HttpExportPost(otlp_endpoint, body, len, error, sizeof(error)))
		SpanExportPosted(false, error);
}

long
SpanExportWaitMs(TimestampTz now)
{
	long		secs;
	int			usecs;
	TimestampTz due;

	if (queued == 0 || !Enabled())
		return -1;
	if (queued >= SPAN_BATCH)
		return HttpExportBusy() ? -1 : 0;
	due = TimestampTzPlusMilliseconds(oldest_at, SPAN_INTERVAL_MS);
	if (due <= now)
		return HttpExportBusy() ? -1 : 0;
	TimestampDifference(now, due, &secs, &usecs);
	return secs * 1000 + (usecs + 999) / 1000;
}
