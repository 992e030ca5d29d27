/*
 * request.c — the MHD access handler.
 *
 * MHD calls RequestHandle once when the headers are in (the header deadline
 * stops; we check framing and Host, match the route and may answer at once:
 * 400, 404, 405, 501, 413 from Content-Length, 503 when draining), then once
 * per chunk of body (kept up to max_body_bytes, the rest discarded and
 * answered 413), then once more when the body is complete (we
 * validate UTF-8 and run the route's SQL call).  RequestCompleted writes the
 * access-log line.  Every request has a deadline, request_timeout_ms after
 * its headers arrived, that bounds the body upload, the pool wait and the SQL.
 */
#include "request.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "access_log.h"
#include "client_limit.h"
#include "clock.h"
#include "errors.h"
#include "header_deadline.h"
#include "http_checks.h"
#include "otlp_export.h"
#include "peer.h"
#include "response.h"
#include "routes.h"
#include "utf8.h"

#define LOG_PATH_MAX 256

typedef struct RequestCtx
{
	int64_t		start_ms;
	int64_t		deadline_ms;
	char		method[16];
	char		path[LOG_PATH_MAX + 1];
	char		remote[PEER_ADDRESS_MAX];
	RouteMatch	match;
	char	   *body;			/* NUL-terminated, up to max_body_bytes */
	size_t		body_len;
	size_t		body_cap;
	bool		too_large;
	bool		timed_out;
	unsigned	status;			/* sent status, 0 until a response is queued */
	size_t		bytes;
	const char *code;
	char		sqlstate[6];
	TraceContext trace;
} RequestCtx;

static size_t max_body_bytes;
static long request_timeout_ms;
static atomic_int in_flight;
static atomic_bool draining;

/* Remember the limits every request obeys */
void
RequestSetup(size_t max_body, long timeout_ms)
{
	max_body_bytes = max_body;
	request_timeout_ms = timeout_ms;
}

/* Requests the handler has seen and MHD has not yet completed */
int
RequestsInFlight(void)
{
	return atomic_load(&in_flight);
}

/* From now on answer new requests 503 with Connection: close */
void
RequestsStartDraining(void)
{
	atomic_store(&draining, true);
}

/* Value of a hex digit, or -1 */
static int
HexValue(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* MHD unescape callback: decode %HH, except %00, which stays as is (and fails path checks) */
size_t
RequestUnescape(void *cls, struct MHD_Connection *connection, char *s)
{
	char	   *r = s;
	char	   *w = s;

	(void) cls;
	(void) connection;
	while (*r)
	{
		int			hi,
					lo;

		if (r[0] == '%' && (hi = HexValue(r[1])) >= 0 && (lo = HexValue(r[2])) >= 0 &&
			(hi | lo) != 0)
		{
			*w++ = (char) (hi * 16 + lo);
			r += 3;
		}
		else
			*w++ = *r++;
	}
	*w = '\0';
	return (size_t) (w - s);
}

/* Hand r to MHD; the request's status, size and code are kept for the access log */
static enum MHD_Result
Respond(struct MHD_Connection *connection, RequestCtx *ctx, ProxyResponse *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char		num[32];
	bool		ok = true;

	resp = MHD_create_response_from_buffer(r->body_len, r->body ? r->body : (void *) "",
										   MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
	{
		ResponseFree(r);
		return MHD_NO;
	}
	if (r->content_type != NULL)
		ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type) == MHD_YES;
	if (r->retry_after_s >= 0)
	{
		snprintf(num, sizeof(num), "%ld", r->retry_after_s);
		ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num) == MHD_YES;
	}
	if (r->allow != NULL)
		ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow) == MHD_YES;
	if (r->location != NULL)
		ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location) == MHD_YES;
	if (atomic_load(&draining) || r->close)
		ok &= MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES;
	if (!ok)
	{
		/* MHD refuses header values it considers unsafe: answer a plain 500 instead */
		MHD_destroy_response(resp);
		LogMessage("error", "path=%s could not set the response headers", ctx->path);
		ErrorResponse(r, 500, "internal", "internal error");
		return Respond(connection, ctx, r);
	}

	ctx->status = r->status;
	ctx->bytes = strcmp(ctx->method, "HEAD") == 0 ? 0 : r->body_len;
	ctx->code = r->code;
	memcpy(ctx->sqlstate, r->sqlstate, sizeof(ctx->sqlstate));
	ret = MHD_queue_response(connection, r->status, resp);
	MHD_destroy_response(resp);
	ResponseFree(r);
	if (ret != MHD_YES)
	{
		ctx->status = 0;
		LogMessage("error", "path=%s could not queue the response", ctx->path);
	}
	return ret;
}

/* First call for a request: set up its state and answer at once if it cannot be served */
static enum MHD_Result
StartRequest(struct MHD_Connection *connection, const char *url, const char *method,
			 const char *version, void **con_cls)
{
	RequestCtx *ctx;
	ProxyResponse r;
	const char *length;
	long		wait_s;

	HeaderDeadlineHeadersIn(connection);
	ctx = calloc(1, sizeof(RequestCtx));
	if (ctx == NULL)
		return MHD_NO;
	*con_cls = ctx;
	atomic_fetch_add(&in_flight, 1);
	ctx->start_ms = ClockNowMs();
	ctx->deadline_ms = ctx->start_ms + request_timeout_ms;
	snprintf(ctx->method, sizeof(ctx->method), "%s", method);
	snprintf(ctx->path, sizeof(ctx->path), "%s", url);
	PeerAddress(connection, ctx->remote, sizeof(ctx->remote));
	ResponseInit(&r);

	if (atomic_load(&draining))
	{
		ErrorResponse(&r, 503, "shutting_down", "the proxy is shutting down, retry later");
		r.retry_after_s = 1;
		return Respond(connection, ctx, &r);
	}
	if (!ClientLimitTake(connection, &wait_s))
	{
		ErrorResponse(&r, 429, "rate_limited", "too many requests from this address, retry later");
		r.retry_after_s = wait_s;
		return Respond(connection, ctx, &r);
	}
	if (!HttpChecksPass(connection, version, &r))
		return Respond(connection, ctx, &r);
	TraceFromRequest(connection, &ctx->trace);
	if (!RouteMatchRequest(method, url, &ctx->match, &r))
		return Respond(connection, ctx, &r);
	TraceParentFormat(&ctx->trace, ctx->match.traceparent);

	length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (RouteTakesBody(&ctx->match) && length != NULL)
	{
		char	   *end;
		unsigned long long n = strtoull(length, &end, 10);

		if (end != length && n > max_body_bytes)
		{
			ctx->too_large = true;
			RouteRecordUnreadable(&ctx->match, connection, NULL, 0, "54000",
								  "request body over the proxy's limit (by Content-Length)", 413,
								  ctx->deadline_ms);
			ErrorResponse(&r, 413, "payload_too_large", "request body too large");
			return Respond(connection, ctx, &r);
		}
	}
	return MHD_YES;
}

/* A chunk of body: keep it (bounded) or discard it */
static enum MHD_Result
TakeBody(RequestCtx *ctx, const char *data, size_t *size)
{
	size_t		n = *size;

	*size = 0;
	if (ClockNowMs() > ctx->deadline_ms)
	{
		/* MHD cannot answer in the middle of a body: close the connection */
		ctx->timed_out = true;
		ctx->code = "request_timeout";
		return MHD_NO;
	}
	if (!RouteTakesBody(&ctx->match) || ctx->too_large)
		return MHD_YES;
	if (n > max_body_bytes - ctx->body_len)
	{
		ctx->too_large = true;	/* answered 413 once the client has finished sending */
		free(ctx->body);
		ctx->body = NULL;
		ctx->body_len = ctx->body_cap = 0;
		return MHD_YES;
	}
	if (ctx->body_len + n + 1 > ctx->body_cap)
	{
		size_t		cap = ctx->body_cap ? ctx->body_cap : 16384;
		char	   *grown;

		while (cap < ctx->body_len + n + 1)
			cap *= 2;
		if (cap > max_body_bytes + 1)
			cap = max_body_bytes + 1;
		grown = realloc(ctx->body, cap);
		if (grown == NULL)
			return MHD_NO;
		ctx->body = grown;
		ctx->body_cap = cap;
	}
	memcpy(ctx->body + ctx->body_len, data, n);
	ctx->body_len += n;
	ctx->body[ctx->body_len] = '\0';
	return MHD_YES;
}

/* Last call: the whole request is in; run the route */
static enum MHD_Result
FinishRequest(struct MHD_Connection *connection, RequestCtx *ctx)
{
	ProxyResponse r;

	ResponseInit(&r);
	if (ctx->too_large)
	{
		RouteRecordUnreadable(&ctx->match, connection, NULL, 0, "54000",
							  "request body over the proxy's limit", 413, ctx->deadline_ms);
		ErrorResponse(&r, 413, "payload_too_large", "request body too large");
	}
	else if (RouteTakesBody(&ctx->match) &&
			 !Utf8IsValidText(ctx->body ? ctx->body : "", ctx->body_len))
	{
		LogMessage("warning", "path=%s remote=%s request body is not valid UTF-8 text (%zu bytes); not passed to SQL",
				   ctx->path, ctx->remote, ctx->body_len);
		RouteRecordUnreadable(&ctx->match, connection, ctx->body, ctx->body_len, "22021",
							  "request body is not valid UTF-8 text", 400, ctx->deadline_ms);
		ErrorResponse(&r, 400, "invalid_request", "request body is not valid UTF-8 text");
	}
	else
		RouteRun(&ctx->match, connection, RouteTakesBody(&ctx->match) ? (ctx->body ? ctx->body : "") : NULL,
				 ctx->deadline_ms, &r);
	return Respond(connection, ctx, &r);
}

/* MHD_AccessHandlerCallback for every request */
enum MHD_Result
RequestHandle(void *cls, struct MHD_Connection *connection,
			  const char *url, const char *method, const char *version,
			  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	RequestCtx *ctx = *con_cls;

	(void) cls;
	if (ctx == NULL)
		return StartRequest(connection, url, method, version, con_cls);
	if (ctx->status != 0)
	{
		*upload_data_size = 0;	/* already answered: ignore the rest */
		return MHD_YES;
	}
	if (*upload_data_size > 0)
		return TakeBody(ctx, upload_data, upload_data_size);
	return FinishRequest(connection, ctx);
}

/*
 * The request's server span to the OTLP exporter (a no-op unless
 * --otlp-endpoint is set): the proxy's span id, the client's span as parent,
 * the route's name, the method, the decoded path (never the query) and the
 * status.  Wall-clock times: the end is now, the start the duration before.
 */
static void
ExportSpan(const RequestCtx *ctx, unsigned status, long duration_ms)
{
	OtlpSpan	span;
	struct timespec now;

	memset(&span, 0, sizeof(span));
	clock_gettime(CLOCK_REALTIME, &now);
	span.end_unix_nano = (uint64_t) now.tv_sec * 1000000000u + (uint64_t) now.tv_nsec;
	span.start_unix_nano = span.end_unix_nano - (uint64_t) duration_ms * 1000000u;
	OtlpCopy(span.trace_id, sizeof(span.trace_id), ctx->trace.trace_id);
	OtlpCopy(span.span_id, sizeof(span.span_id), ctx->trace.span_id);
	OtlpCopy(span.parent_span_id, sizeof(span.parent_span_id), ctx->trace.parent_id);
	snprintf(span.name, sizeof(span.name), "%s %s", ctx->method, RouteName(&ctx->match));
	span.kind = OTLP_SPAN_KIND_SERVER;
	OtlpCopy(span.method, sizeof(span.method), ctx->method);
	OtlpCopy(span.url_path, sizeof(span.url_path), ctx->path);
	span.http_status = (int) status;
	span.status_code = status == 0 || status >= 500 ? OTLP_STATUS_ERROR : OTLP_STATUS_OK;
	OtlpExportSpan(&span);
}

/* MHD_RequestCompletedCallback: write the access-log line and free the request */
void
RequestCompleted(void *cls, struct MHD_Connection *connection,
				 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	RequestCtx *ctx = *con_cls;
	AccessLogEntry e;

	(void) cls;
	/* the next request on a kept-alive connection must get its headers in on time too */
	HeaderDeadlineRequestDone(connection);
	if (ctx == NULL)
		return;
	if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED && ctx->code == NULL)
		ctx->code = "request_timeout";
	else if (toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT && ctx->code == NULL)
		ctx->code = "client_abort";
	e.remote = ctx->remote;
	e.method = ctx->method;
	e.path = ctx->path;
	e.status = ctx->timed_out ? 0 : ctx->status;
	e.bytes = ctx->bytes;
	e.duration_ms = (long) (ClockNowMs() - ctx->start_ms);
	e.code = ctx->code;
	e.route = RouteName(&ctx->match);
	e.sqlstate = ctx->sqlstate[0] ? ctx->sqlstate : NULL;
	/* the trace SQL sees: a callback without a traceparent joins its order's trace there */
	e.trace_id = ctx->trace.from_client || RouteStartsTrace(&ctx->match) ? ctx->trace.trace_id : NULL;
	AccessLogWrite(&e);
	if (e.trace_id != NULL)
		ExportSpan(ctx, e.status, e.duration_ms);
	free(ctx->body);
	free(ctx);
	*con_cls = NULL;
	atomic_fetch_sub(&in_flight, 1);
}
