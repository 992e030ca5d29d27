/*
 * otlp_export.c — the proxy's request spans, posted to an OTLP/HTTP
 * collector (JSON encoding) by one sender thread.
 *
 * A request only copies its span into a bounded in-memory queue under a
 * mutex that nobody holds across I/O, so tracing never delays or fails a
 * request: when the queue is full the span is dropped and counted.  The
 * sender posts up to OTLP_BATCH spans at a time, at least every
 * OTLP_INTERVAL_MS, each post limited to OTLP_POST_TIMEOUT_MS; a failed
 * post drops its batch (spans are diagnostics, not records), and failures
 * and drops are logged at most once per interval.
 *
 * libcurl rather than a hand-written HTTP/1.1 POST: collectors are often
 * reached over HTTPS or through a name that needs resolving, and the
 * dispatcher already depends on libcurl, so every build machine has it.
 */
#include "otlp_export.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "access_log.h"

#define OTLP_QUEUE 4096			/* spans waiting, at most */
#define OTLP_BATCH 100			/* spans per post, at most */
#define OTLP_INTERVAL_MS 1000	/* a partial batch waits this long, at most */
#define OTLP_POST_TIMEOUT_MS 2000	/* one post, connect included */
#define OTLP_LOG_INTERVAL_S 10	/* drops and failures are logged this often, at most */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static OtlpSpan queue[OTLP_QUEUE];
static int	head;				/* oldest span */
static int	count;
static bool started;
static bool stopping;
static unsigned long dropped;	/* since the last log line */
static pthread_t sender;
static char *endpoint_url;

void
OtlpExportSpan(const OtlpSpan *span)
{
	if (!started)
		return;
	pthread_mutex_lock(&lock);
	if (count == OTLP_QUEUE)
		dropped++;
	else
	{
		queue[(head + count) % OTLP_QUEUE] = *span;
		count++;
		if (count >= OTLP_BATCH)
			pthread_cond_signal(&wake);
	}
	pthread_mutex_unlock(&lock);
}

/* Discard the collector's answer */
static size_t
IgnoreBody(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void) ptr;
	(void) userdata;
	return size * nmemb;
}

/* Post one batch; an error message into err[size] when it failed */
static bool
Post(CURL *curl, const OtlpSpan *spans, int n, char *err, size_t size)
{
	struct curl_slist *headers = NULL;
	size_t		len;
	char	   *body = OtlpEncodeSpans("pay-proxy", spans, n, &len);
	CURLcode	rc;
	long		status = 0;

	if (body == NULL)
	{
		snprintf(err, size, "out of memory");
		return false;
	}
	headers = curl_slist_append(headers, "Content-Type: application/json");
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, endpoint_url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) OTLP_POST_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, IgnoreBody);
	rc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	free(body);
	if (rc != CURLE_OK)
		snprintf(err, size, "%s", curl_easy_strerror(rc));
	else if (status < 200 || status > 299)
		snprintf(err, size, "HTTP status %ld", status);
	return rc == CURLE_OK && status >= 200 && status <= 299;
}

/* Wait until a batch is full, the interval has passed or the proxy stops; take up to OTLP_BATCH spans */
static int
TakeBatch(OtlpSpan *batch, bool *stop, bool *draining, unsigned long *drops)
{
	struct timespec until;
	int			n;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += OTLP_INTERVAL_MS / 1000;
	pthread_mutex_lock(&lock);
	while (!stopping && count < OTLP_BATCH)
		if (pthread_cond_timedwait(&wake, &lock, &until) != 0)
			break;
	n = count < OTLP_BATCH ? count : OTLP_BATCH;
	for (int i = 0; i < n; i++)
		batch[i] = queue[(head + i) % OTLP_QUEUE];
	head = (head + n) % OTLP_QUEUE;
	count -= n;
	*stop = stopping && count == 0;
	*draining = stopping;
	*drops = dropped;
	dropped = 0;
	pthread_mutex_unlock(&lock);
	return n;
}

/* Drop every queued span, counting them in *failed; true */
static bool
DiscardQueue(unsigned long *failed)
{
	pthread_mutex_lock(&lock);
	*failed += (unsigned long) count;
	count = 0;
	pthread_mutex_unlock(&lock);
	return true;
}

static void *
SenderMain(void *arg)
{
	static OtlpSpan batch[OTLP_BATCH];
	CURL	   *curl = arg;
	unsigned long failed = 0;
	unsigned long drops = 0;
	char		err[256] = "";
	time_t		logged = 0;
	bool		stop = false;

	while (!stop)
	{
		unsigned long d;
		bool		draining;
		int			n = TakeBatch(batch, &stop, &draining, &d);

		drops += d;
		if (n > 0 && !Post(curl, batch, n, err, sizeof(err)))
		{
			failed += (unsigned long) n;
			if (draining)		/* shutting down: one failed post is enough waiting */
				stop = DiscardQueue(&failed);
		}
		if ((failed > 0 || drops > 0) && (time(NULL) - logged >= OTLP_LOG_INTERVAL_S || stop))
		{
			LogMessage("warning", "otlp: %lu spans not delivered to %s (%s), %lu dropped from a full queue",
					   failed, endpoint_url, failed ? err : "-", drops);
			failed = drops = 0;
			logged = time(NULL);
		}
	}
	curl_easy_cleanup(curl);
	return NULL;
}

bool
OtlpExportStart(const char *endpoint)
{
	CURL	   *curl;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (curl = curl_easy_init()) == NULL ||
		(endpoint_url = strdup(endpoint)) == NULL)
	{
		LogMessage("error", "otlp: cannot initialise libcurl");
		return false;
	}
	if (pthread_create(&sender, NULL, SenderMain, curl) != 0)
	{
		LogMessage("error", "otlp: cannot start the sender thread");
		curl_easy_cleanup(curl);
		return false;
	}
	started = true;
	return true;
}

void
OtlpExportStop(void)
{
	if (!started)
		return;
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(sender, NULL);
	started = false;
}
