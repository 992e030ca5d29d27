/*
 * dispatcher_http.c — the dispatcher's HTTP: many transfers at once from one
 * libcurl multi handle, driven by curl's socket and timer callbacks.
 *
 * curl's sockets go into an epoll set of our own; the worker waits on that
 * epoll descriptor (readable when any socket is ready), its latch and curl's
 * next timeout with one WaitEventSet, so it sleeps until there is something
 * to do.  The multi handle keeps connections open between requests
 * (keep-alive: its connection cache holds as many as pay.dispatcher_concurrency),
 * and multiplexes requests over HTTP/2 where a TLS peer offers it (ALPN).
 * Easy handles are not reused: with libcurl 7.88, handles reset with
 * curl_easy_reset sometimes failed their next transfer at once ("Failed to
 * resolve host ... with timeout after 0 ms") after others had timed out;
 * connections are kept by the multi handle all the same.  Every transfer is
 * sent under the rules of http_guard.c (TLS verification, timeouts, a size
 * cap, no redirects, the destination check on every address and kept-alive
 * connection).  curl callbacks never raise PostgreSQL errors: they use
 * malloc and report failures through return values.
 */
#include "postgres.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <unistd.h>

#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dispatcher.h"
#include "http_guard.h"
#include "pay.h"
#include "span_export.h"

struct HttpTransfer
{
	HttpTransfer *next;
	HttpTransfer *prev;
	CURL	   *easy;
	struct curl_slist *headers;
	size_t		body_cap;
	size_t		body_max;
	HttpResult	result;
	char		errbuf[CURL_ERROR_SIZE];
	HttpGuard	guard;			/* why an address was refused, "" if none was */
};

int			http_connect_timeout_ms = 5000;
int			http_timeout_ms = 30000;
int			http_response_max_bytes = 1024 * 1024;
char	   *http_ca_file = NULL;

static CURLM *multi = NULL;
static int	epoll_fd = -1;
static bool timer_set = false;
static TimestampTz timer_deadline = 0;
static HttpTransfer *transfers = NULL;
static int	transfers_count = 0;
/* Requests on the wire per destination. */
#define DESTINATION_KEY_LEN 80
typedef struct InFlightCount
{
	char		destination[DESTINATION_KEY_LEN];	/* hash key */
	int			n;
} InFlightCount;

static HTAB *in_flight_by_destination = NULL;
static HttpResult *finished = NULL;
static int	finished_count = 0;
static int	finished_capacity = 0;

/* The one span post to the OTLP collector that may be on the wire (span_export.c) */
static CURL *export_easy = NULL;
static struct curl_slist *export_headers = NULL;
static char *export_body = NULL;
static char export_errbuf[CURL_ERROR_SIZE];

#define EXPORT_TIMEOUT_MS 5000

/* Module set-up, from _PG_init. */
void
HttpInit(void)
{
	DefineCustomIntVariable("pay.http_connect_timeout",
							"Longest wait for a connection (TCP and TLS) to a PSP or merchant.",
							NULL, &http_connect_timeout_ms, 5000, 100, 600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pay.http_timeout",
							"Longest time one request may take, from connecting to the last byte of the answer.",
							NULL, &http_timeout_ms, 30000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pay.http_response_max",
							"Largest answer body the dispatcher reads; a larger one fails the attempt.",
							NULL, &http_response_max_bytes, 1024 * 1024, 1024, 64 * 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomStringVariable("pay.http_ca_file",
							   "CA bundle (PEM) that verifies PSP and merchant TLS certificates; empty: the system's.",
							   NULL, &http_ca_file, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
}

/* CURLMOPT_SOCKETFUNCTION: keep our epoll set in step with curl's sockets. */
static int
SocketCallback(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.data.fd = s;
	if (what == CURL_POLL_REMOVE)
	{
		epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(multi, s, NULL);
		return 0;
	}
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	if (socketp == NULL)
	{
		if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
			epoll_ctl(epoll_fd, EPOLL_CTL_MOD, s, &ev);
		curl_multi_assign(multi, s, (void *) 1);
	}
	else if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
		epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s, &ev);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: remember when curl wants to be called. */
static int
TimerCallback(CURLM *m, long timeout_ms, void *userp)
{
	if (timeout_ms < 0)
		timer_set = false;
	else
	{
		timer_set = true;
		timer_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	}
	return 0;
}

/* CURLOPT_WRITEFUNCTION: keep the answer, up to the cap. */
static size_t
WriteBody(char *data, size_t size, size_t nmemb, void *userdata)
{
	HttpTransfer *t = (HttpTransfer *) userdata;
	size_t		n = size * nmemb;
	HttpResult *r = &t->result;

	if (r->body_len + n > t->body_max)
	{
		r->too_large = true;
		return 0;				/* curl stops with CURLE_WRITE_ERROR */
	}
	if (r->body_len + n + 1 > t->body_cap)
	{
		size_t		cap = Max(t->body_cap * 2, r->body_len + n + 1);
		char	   *grown;

		cap = Max(cap, 1024);
		grown = realloc(r->body, cap);
		if (grown == NULL)
			return 0;
		r->body = grown;
		t->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return n;
}

/*
 * CURLOPT_HEADERFUNCTION: keep the answer's header lines (WeChat Pay signs
 * its answers in headers; Retry-After says when to come back).  A status
 * line starts a new answer (after a 100 Continue, the final one's lines
 * replace the interim one's).  Lines beyond the cap are dropped, not the
 * transfer: what matters sits in the first few kilobytes.
 */
static size_t
WriteHeader(char *data, size_t size, size_t nmemb, void *userdata)
{
	HttpTransfer *t = (HttpTransfer *) userdata;
	size_t		n = size * nmemb;
	HttpResult *r = &t->result;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		r->headers_len = 0;
	else if (r->headers_len + n + 1 <= HTTP_HEADERS_MAX)
	{
		if (r->headers == NULL && (r->headers = malloc(HTTP_HEADERS_MAX)) == NULL)
			return n;
		memcpy(r->headers + r->headers_len, data, n);
		r->headers_len += n;
	}
	if (r->headers != NULL)
		r->headers[r->headers_len] = '\0';
	return n;
}

/* CURLOPT_WRITEFUNCTION of the span post: the collector's answer is not needed */
static size_t
DiscardBody(char *data, size_t size, size_t nmemb, void *userdata)
{
	return size * nmemb;
}

/*
 * Every request on the wire holds a socket: raise the soft limit on open
 * files to the hard one, so that hundreds of connections to one PSP do not
 * run out of descriptors at the 1024 most systems start processes with.
 */
static void
RaiseFileLimit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			elog(LOG, "pay dispatcher: could not raise the open files limit: %m");
	}
}

/* Start the multi handle and the epoll set (worker start). */
void
HttpStart(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		elog(ERROR, "could not initialize libcurl");
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd < 0)
		elog(ERROR, "could not create an epoll set: %m");
	multi = curl_multi_init();
	if (multi == NULL)
		elog(ERROR, "could not create a curl multi handle");
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, SocketCallback);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, TimerCallback);
	/* keep a connection per request on the wire: a PSP answering slowly gets hundreds */
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) Max(dispatcher_concurrency, 8));
	curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
	RaiseFileLimit();
}

/* The descriptor to wait on: readable when a socket of a transfer is ready. */
int
HttpEpollFd(void)
{
	return epoll_fd;
}

/* Milliseconds until curl's timer is due (0: due), or -1 when none is set. */
long
HttpTimeoutMs(void)
{
	TimestampTz now;

	if (!timer_set)
		return -1;
	now = GetCurrentTimestamp();
	if (now >= timer_deadline)
		return 0;
	return (long) ((timer_deadline - now + 999) / 1000);
}

/* Queue a result that needs no transfer (a request that could not start). */
static void
Finish(HttpResult *r)
{
	if (finished_count == finished_capacity)
	{
		int			capacity = Max(16, finished_capacity * 2);
		HttpResult *grown = realloc(finished, sizeof(HttpResult) * capacity);

		if (grown == NULL)
			elog(FATAL, "out of memory for transfer results");
		finished = grown;
		finished_capacity = capacity;
	}
	finished[finished_count++] = *r;
}

/* Record a request that failed before it was sent. */
void
HttpFail(int64 outbox_id, int attempt, const char *destination, bool notification,
		 bool build_error, const char *error)
{
	HttpResult	r;

	memset(&r, 0, sizeof(r));
	r.outbox_id = outbox_id;
	r.attempt = attempt;
	r.transport_error = !build_error;
	r.build_error = build_error;
	r.started_at = GetCurrentTimestamp();
	r.destination = strdup(destination);
	r.notification = notification;
	strlcpy(r.error, error, sizeof(r.error));
	Finish(&r);
}

/* The count of requests on the wire to a destination; made (at 0) if create. */
static InFlightCount *
CountOf(const char *destination, bool create)
{
	char		key[DESTINATION_KEY_LEN];

	if (in_flight_by_destination == NULL)
	{
		HASHCTL		ctl;

		if (!create)
			return NULL;
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = DESTINATION_KEY_LEN;
		ctl.entrysize = sizeof(InFlightCount);
		ctl.hcxt = TopMemoryContext;
		in_flight_by_destination = hash_create("pay requests on the wire", 64, &ctl,
											   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	strlcpy(key, destination, sizeof(key));
	if (create)
	{
		bool		found;
		InFlightCount *c = hash_search(in_flight_by_destination, key, HASH_ENTER, &found);

		if (!found)
			c->n = 0;
		return c;
	}
	return hash_search(in_flight_by_destination, key, HASH_FIND, NULL);
}

/* Unlink and free a transfer (its result has been moved out). */
static void
TransferFree(HttpTransfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		transfers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	transfers_count--;
	CountOf(t->result.destination, true)->n--;
	curl_multi_remove_handle(multi, t->easy);
	curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	free(t);
}

/* Start a request; false (error set, nothing started) if curl refuses it. */
bool
HttpAdd(int64 outbox_id, int attempt, const char *destination, bool notification,
		const char *method, const char *url, char **headers, int nheaders,
		const char *body, char *error, size_t errlen)
{
	HttpTransfer *t;
	CURL	   *e;
	int			i;
	CURLcode	rc = CURLE_OK;

	for (i = 0; i < nheaders; i++)
		if (strpbrk(headers[i], "\r\n") != NULL)
		{
			snprintf(error, errlen, "a header of the request contains a line break");
			return false;
		}
	t = calloc(1, sizeof(HttpTransfer));
	if (t == NULL || (e = curl_easy_init()) == NULL)
	{
		free(t);
		snprintf(error, errlen, "out of memory for a transfer");
		return false;
	}
	t->easy = e;
	t->body_max = (size_t) http_response_max_bytes;
	for (i = 0; i < nheaders; i++)
		t->headers = curl_slist_append(t->headers, headers[i]);
	t->headers = curl_slist_append(t->headers, "Expect:");	/* no 100-continue round trip */

#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
	rc = HttpGuardApply(e, &t->guard, "http,https", (curl_off_t) http_response_max_bytes);
	SET(CURLOPT_URL, url);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	/* HTTP/2 where TLS offers it, requests multiplexed on one connection; HTTP/1.1 otherwise */
	SET(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
	SET(CURLOPT_PIPEWAIT, 1L);
	SET(CURLOPT_USERAGENT, "pay-dispatcher/0.1");
	SET(CURLOPT_HTTPHEADER, t->headers);
	SET(CURLOPT_WRITEFUNCTION, WriteBody);
	SET(CURLOPT_WRITEDATA, t);
	SET(CURLOPT_HEADERFUNCTION, WriteHeader);
	SET(CURLOPT_HEADERDATA, t);
	SET(CURLOPT_PRIVATE, t);
	SET(CURLOPT_ERRORBUFFER, t->errbuf);
	if (strcmp(method, "GET") == 0)
		SET(CURLOPT_HTTPGET, 1L);
	else
	{
		if (strcmp(method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, method);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (body ? strlen(body) : 0));
		SET(CURLOPT_COPYPOSTFIELDS, body ? body : "");
	}
#undef SET
	if (rc != CURLE_OK)
	{
		snprintf(error, errlen, "the request was refused by libcurl: %s", curl_easy_strerror(rc));
		curl_easy_cleanup(e);
		curl_slist_free_all(t->headers);
		free(t);
		return false;
	}

	t->result.outbox_id = outbox_id;
	t->result.attempt = attempt;
	t->result.destination = strdup(destination);
	t->result.notification = notification;
	t->result.started_at = GetCurrentTimestamp();
	if (curl_multi_add_handle(multi, e) != CURLM_OK)
	{
		snprintf(error, errlen, "the request could not be added to the multi handle");
		free(t->result.destination);
		curl_easy_cleanup(e);
		curl_slist_free_all(t->headers);
		free(t);
		return false;
	}
	t->next = transfers;
	t->prev = NULL;
	if (transfers)
		transfers->prev = t;
	transfers = t;
	transfers_count++;
	CountOf(destination, true)->n++;
	return true;
}

/* Drop the span post's handle (not in the multi handle) and what it held */
static void
ExportRelease(void)
{
	curl_easy_cleanup(export_easy);
	curl_slist_free_all(export_headers);
	free(export_body);
	export_easy = NULL;
	export_headers = NULL;
	export_body = NULL;
}

/* Take the span post's handle out of the multi handle and drop it */
static void
ExportFree(void)
{
	curl_multi_remove_handle(multi, export_easy);
	ExportRelease();
}

/* The span post ended: tell span_export.c how */
static void
ExportFinished(CURLcode code)
{
	long		status = 0;
	char		error[CURL_ERROR_SIZE + 64];

	curl_easy_getinfo(export_easy, CURLINFO_RESPONSE_CODE, &status);
	if (code != CURLE_OK)
		snprintf(error, sizeof(error), "%s%s%s", curl_easy_strerror(code),
				 export_errbuf[0] ? ": " : "", export_errbuf);
	else
		snprintf(error, sizeof(error), "HTTP status %ld", status);
	ExportFree();
	SpanExportPosted(code == CURLE_OK && status >= 200 && status <= 299, error);
}

bool
HttpExportBusy(void)
{
	return export_easy != NULL;
}

/*
 * Start the span post.  Not a delivery: no destination check (the operator
 * chose the endpoint), not counted in flight, a short timeout, the answer
 * discarded.
 */
bool
HttpExportPost(const char *url, char *body, size_t len, char *error, size_t errlen)
{
	CURLcode	rc = CURLE_OK;
	CURL	   *e;

	if (multi == NULL || export_easy != NULL || (e = curl_easy_init()) == NULL)
	{
		free(body);
		snprintf(error, errlen, "cannot start a span post");
		return false;
	}
	export_easy = e;
	export_body = body;
	export_errbuf[0] = '\0';
	export_headers = curl_slist_append(NULL, "Content-Type: application/json");
	export_headers = curl_slist_append(export_headers, "Expect:");
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
	if (http_ca_file != NULL && http_ca_file[0] != '\0')
		SET(CURLOPT_CAINFO, http_ca_file);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long) Min(http_connect_timeout_ms, EXPORT_TIMEOUT_MS));
	SET(CURLOPT_TIMEOUT_MS, (long) EXPORT_TIMEOUT_MS);
	SET(CURLOPT_USERAGENT, "pay-dispatcher/0.1");
	SET(CURLOPT_HTTPHEADER, export_headers);
	SET(CURLOPT_WRITEFUNCTION, DiscardBody);
	SET(CURLOPT_ERRORBUFFER, export_errbuf);
	SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
	SET(CURLOPT_POSTFIELDS, export_body);
#undef SET
	if (rc != CURLE_OK || curl_multi_add_handle(multi, e) != CURLM_OK)
	{
		snprintf(error, errlen, "the span post was refused by libcurl: %s", curl_easy_strerror(rc));
		ExportRelease();
		return false;
	}
	return true;
}

/* Move finished transfers to the results. */
static void
CollectFinished(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		HttpTransfer *t = NULL;
		HttpResult *r;
		long		status = 0;
		curl_off_t	total_us = 0;
		CURLcode	code;

		if (msg->msg != CURLMSG_DONE)
			continue;
		code = msg->data.result;
		if (msg->easy_handle == export_easy)
		{
			ExportFinished(code);
			continue;
		}
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		r = &t->result;
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &total_us);
		r->http_status = (int) status;
		r->latency_ms = (double) total_us / 1000.0;
		if (code == CURLE_FILESIZE_EXCEEDED)
			r->too_large = true;
		if (r->too_large)
			snprintf(r->error, sizeof(r->error), "the answer is larger than pay.http_response_max (%d bytes)",
					 http_response_max_bytes);
		/*
		 * Refused only when that is why it failed: a name with a refused and
		 * an allowed address may have failed on the latter for another reason.
		 */
		else if ((code == CURLE_COULDNT_CONNECT || code == CURLE_ABORTED_BY_CALLBACK) && t->guard.refused[0] != '\0')
		{
			r->refused = true;
			r->http_status = 0;
			strlcpy(r->error, t->guard.refused, sizeof(r->error));
		}
		else if (code != CURLE_OK)
		{
			r->transport_error = true;
			r->http_status = 0;
			snprintf(r->error, sizeof(r->error), "%s%s%s", curl_easy_strerror(code),
					 t->errbuf[0] ? ": " : "", t->errbuf);
		}
		if (r->body == NULL)
			r->body = strdup("");
		if (r->headers == NULL)
			r->headers = strdup("");
		Finish(r);
		TransferFree(t);
	}
}

/* Let curl work on whatever is ready, without blocking. */
void
HttpDrive(void)
{
	struct epoll_event events[64];
	int			n;
	int			i;
	int			running;

	if (multi == NULL)
		return;
	n = epoll_wait(epoll_fd, events, lengthof(events), 0);
	for (i = 0; i < n; i++)
	{
		int			mask = 0;

		if (events[i].events & EPOLLIN)
			mask |= CURL_CSELECT_IN;
		if (events[i].events & EPOLLOUT)
			mask |= CURL_CSELECT_OUT;
		if (events[i].events & (EPOLLERR | EPOLLHUP))
			mask |= CURL_CSELECT_ERR;
		curl_multi_socket_action(multi, events[i].data.fd, mask, &running);
	}
	if (timer_set && GetCurrentTimestamp() >= timer_deadline)
	{
		timer_set = false;
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	CollectFinished();
}

/* Requests on the wire (or about to be). */
int
HttpInFlight(void)
{
	return transfers_count;
}

/* Requests on the wire to one destination (a hash look-up: asked for every claim and answer). */
int
HttpInFlightTo(const char *destination)
{
	InFlightCount *c = CountOf(destination, false);

	return c ? c->n : 0;
}

/* The outbox ids on the wire, palloc'd; returns how many. */
int
HttpInFlightIds(int64 **ids)
{
	HttpTransfer *t;
	int			n = 0;

	*ids = palloc(sizeof(int64) * Max(transfers_count, 1));
	for (t = transfers; t; t = t->next)
		(*ids)[n++] = t->result.outbox_id;
	return n;
}

/* Take up to max results (the caller frees each with HttpResultFree). */
int
HttpTakeResults(HttpResult *results, int max)
{
	int			n = Min(max, finished_count);

	memcpy(results, finished, sizeof(HttpResult) * n);
	memmove(finished, finished + n, sizeof(HttpResult) * (finished_count - n));
	finished_count -= n;
	return n;
}

/* Results waiting to be recorded. */
int
HttpResultsWaiting(void)
{
	return finished_count;
}

/* Free what a result holds. */
void
HttpResultFree(HttpResult *r)
{
	free(r->body);
	free(r->headers);
	free(r->destination);
	r->body = NULL;
	r->headers = NULL;
	r->destination = NULL;
}
