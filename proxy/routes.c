/*
 * routes.c — the route table.  No business logic: each route is one
 * parameterized SQL call (the create two: it waits for the PSP's answer in
 * a statement of its own, after the create committed), and the proxy
 * answers with exactly the status, content type, body (and Location) the
 * SQL function returns.
 */
#include "routes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "access_log.h"
#include "errors.h"
#include "headers.h"
#include "json.h"
#include "pool.h"
#include "query.h"

typedef void (*RouteHandler) (const RouteMatch *m, struct MHD_Connection *connection,
							  const char *body, int64_t deadline_ms, ProxyResponse *r);

struct Route
{
	const char *name;
	const char *path;			/* exact path, or prefix when segment_what is set */
	const char *suffix;			/* after the segment ("/refunds"), or NULL: the segment ends the path */
	const char *segment_what;	/* what the segment names, e.g. "gateway name" */
	size_t		segment_max;
	const char *method;			/* "GET" also serves HEAD */
	const char *allow;			/* Allow header when the method is wrong */
	bool		takes_body;
	RouteHandler handler;
	const char *action;			/* passed to the route's SQL function, or NULL */
};

static void RunCallback(const RouteMatch *m, struct MHD_Connection *connection,
						const char *body, int64_t deadline_ms, ProxyResponse *r);
static void RunCreatePayment(const RouteMatch *m, struct MHD_Connection *connection,
							 const char *body, int64_t deadline_ms, ProxyResponse *r);
static void RunListPayments(const RouteMatch *m, struct MHD_Connection *connection,
							const char *body, int64_t deadline_ms, ProxyResponse *r);
static void RunGetPayment(const RouteMatch *m, struct MHD_Connection *connection,
						  const char *body, int64_t deadline_ms, ProxyResponse *r);
static void RunMovePayment(const RouteMatch *m, struct MHD_Connection *connection,
						   const char *body, int64_t deadline_ms, ProxyResponse *r);
static void RunCreateRefund(const RouteMatch *m, struct MHD_Connection *connection,
							const char *body, int64_t deadline_ms, ProxyResponse *r);
static void RunGetRefund(const RouteMatch *m, struct MHD_Connection *connection,
						 const char *body, int64_t deadline_ms, ProxyResponse *r);
static void RunHealthz(const RouteMatch *m, struct MHD_Connection *connection,
					   const char *body, int64_t deadline_ms, ProxyResponse *r);
static void RunMetrics(const RouteMatch *m, struct MHD_Connection *connection,
					   const char *body, int64_t deadline_ms, ProxyResponse *r);

#define PAYMENTS "/api/v1/payments"
#define PAYMENT_ID "payment id", ROUTE_SEGMENT_MAX

/* Routes with a suffix come before the route that ends at the same segment. */
static const Route routes[] = {
	{"callback", "/callbacks/", NULL, "gateway name", 64, "POST", "POST", true, RunCallback, NULL},
	{"create_payment", PAYMENTS, NULL, NULL, 0, "POST", "GET, HEAD, POST", true, RunCreatePayment, NULL},
	{"list_payments", PAYMENTS, NULL, NULL, 0, "GET", "GET, HEAD, POST", false, RunListPayments, NULL},
	{"create_refund", PAYMENTS "/", "/refunds", PAYMENT_ID, "POST", "POST", true, RunCreateRefund, NULL},
	{"cancel_payment", PAYMENTS "/", "/cancel", PAYMENT_ID, "POST", "POST", true, RunMovePayment, "cancel"},
	{"ship_payment", PAYMENTS "/", "/ship", PAYMENT_ID, "POST", "POST", true, RunMovePayment, "ship"},
	{"complete_payment", PAYMENTS "/", "/complete", PAYMENT_ID, "POST", "POST", true, RunMovePayment, "complete"},
	{"capture_payment", PAYMENTS "/", "/capture", PAYMENT_ID, "POST", "POST", true, RunMovePayment, "capture"},
	{"void_payment", PAYMENTS "/", "/void", PAYMENT_ID, "POST", "POST", true, RunMovePayment, "void"},
	{"get_payment", PAYMENTS "/", NULL, PAYMENT_ID, "GET", "GET, HEAD", false, RunGetPayment, NULL},
	{"get_refund", "/api/v1/refunds/", NULL, "refund id", ROUTE_SEGMENT_MAX, "GET", "GET, HEAD", false, RunGetRefund, NULL},
	{"healthz", "/healthz", NULL, NULL, 0, "GET", "GET, HEAD", false, RunHealthz, NULL},
	{"metrics", "/metrics", NULL, NULL, 0, "GET", "GET, HEAD", false, RunMetrics, NULL},
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* True if s is 1..max characters of [A-Za-z0-9_.-] */
static bool
ValidSegment(const char *s, size_t max)
{
	size_t		len = strlen(s);

	if (len == 0 || len > max)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

/* True if method is accepted by route r */
static bool
MethodAllowed(const Route *r, const char *method)
{
	if (strcmp(method, r->method) == 0)
		return true;
	return strcmp(r->method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

/*
 * Does path have route's shape?  Sets *segment (and *segment_len) to the
 * part a segment route takes: the rest of the path, or with a suffix the
 * part between prefix and suffix, which then holds no '/'.
 */
static bool
ShapeMatches(const Route *route, const char *path, const char **segment, size_t *segment_len)
{
	size_t		plen = strlen(route->path);
	size_t		len = strlen(path);
	size_t		slen = route->suffix ? strlen(route->suffix) : 0;

	if (route->segment_what == NULL)
		return strcmp(path, route->path) == 0;
	if (strncmp(path, route->path, plen) != 0)
		return false;
	*segment = path + plen;
	*segment_len = len - plen;
	if (route->suffix == NULL)
		return true;
	if (len <= plen + slen || strcmp(path + len - slen, route->suffix) != 0)
		return false;
	*segment_len = len - plen - slen;
	return memchr(*segment, '/', *segment_len) == NULL;
}

/* Match method and path against the route table (see routes.h) */
bool
RouteMatchRequest(const char *method, const char *path, RouteMatch *m, ProxyResponse *r)
{
	const Route *wrong_method = NULL;

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < N_ROUTES; i++)
	{
		const Route *route = &routes[i];
		const char *segment = NULL;
		size_t		segment_len = 0;

		if (!ShapeMatches(route, path, &segment, &segment_len))
			continue;
		if (!MethodAllowed(route, method))
		{
			if (wrong_method == NULL)
				wrong_method = route;
			continue;
		}
		if (route->segment_what != NULL)
		{
			char		msg[128];
			char		text[ROUTE_SEGMENT_MAX + 2];

			snprintf(text, sizeof(text), "%.*s", (int) (segment_len < sizeof(text) - 1 ? segment_len : sizeof(text) - 1), segment);
			if (segment_len >= sizeof(text) || !ValidSegment(text, route->segment_max))
			{
				if (wrong_method != NULL)
					continue;	/* another route's path with the wrong method: 405 */
				snprintf(msg, sizeof(msg), "invalid %s in the path (1 to %zu of A-Z a-z 0-9 _ . -)",
						 route->segment_what, route->segment_max);
				ErrorResponse(r, 400, "invalid_request", msg);
				return false;
			}
			strcpy(m->segment, text);
		}
		m->route = route;
		return true;
	}
	if (wrong_method != NULL)
	{
		ErrorResponse(r, 405, "method_not_allowed", "method not allowed for this path");
		r->allow = wrong_method->allow;
		return false;
	}
	ErrorResponse(r, 404, "not_found", "no such route");
	return false;
}

/* True if the matched route reads the request body */
bool
RouteTakesBody(const RouteMatch *m)
{
	return m->route != NULL && m->route->takes_body;
}

/* The route's name for logs */
const char *
RouteName(const RouteMatch *m)
{
	return m->route ? m->route->name : "none";
}

bool
RouteStartsTrace(const RouteMatch *m)
{
	return m->route != NULL && m->route->handler != RunCallback;
}

/* Run the matched route's SQL call and fill r */
void
RouteRun(const RouteMatch *m, struct MHD_Connection *connection,
		 const char *body, int64_t deadline_ms, ProxyResponse *r)
{
	m->route->handler(m, connection, body, deadline_ms, r);
}

/* True if s is a usable header value: no control characters */
static bool
ValidHeaderValue(const char *s)
{
	for (; *s; s++)
		if ((unsigned char) *s < 0x20 && *s != '\t')
			return false;
	return true;
}

/* Turn the (http_status, content_type, body) row of a route function into r */
static void
ResponseFromRow(const RouteMatch *m, const PGresult *res, ProxyResponse *r)
{
	const char *status_text;
	char	   *end;
	long		status;

	if (PQresultStatus(res) == PGRES_FATAL_ERROR)
	{
		ErrorFromResult(r, res, RouteName(m));
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 3 || PQnfields(res) > 4)
	{
		LogMessage("error", "route=%s the function returned %d rows of %d columns (%s), expected one row of 3 or 4",
				   RouteName(m), PQntuples(res), PQnfields(res), PQresStatus(PQresultStatus(res)));
		ErrorResponse(r, 500, "internal", "internal error");
		return;
	}
	status_text = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
	errno = 0;
	status = strtol(status_text, &end, 10);
	if (errno != 0 || end == status_text || *end != '\0' || status < 200 || status > 599)
	{
		LogMessage("error", "route=%s the function returned an invalid http_status \"%s\"",
				   RouteName(m), status_text);
		ErrorResponse(r, 500, "internal", "internal error");
		return;
	}
	if (!PQgetisnull(res, 0, 1) && !ValidHeaderValue(PQgetvalue(res, 0, 1)))
	{
		LogMessage("error", "route=%s the function returned a content_type with control characters",
				   RouteName(m));
		ErrorResponse(r, 500, "internal", "internal error");
		return;
	}
	if (PQnfields(res) == 4 && !PQgetisnull(res, 0, 3) && !ValidHeaderValue(PQgetvalue(res, 0, 3)))
	{
		LogMessage("error", "route=%s the function returned a location with control characters", RouteName(m));
		ErrorResponse(r, 500, "internal", "internal error");
		return;
	}

	ResponseFree(r);
	r->status = (unsigned) status;
	if (!PQgetisnull(res, 0, 1))
		r->content_type = strdup(PQgetvalue(res, 0, 1));
	if (!PQgetisnull(res, 0, 2))
	{
		r->body_len = (size_t) PQgetlength(res, 0, 2);
		r->body = malloc(r->body_len + 1);
		if (r->body != NULL)
			memcpy(r->body, PQgetvalue(res, 0, 2), r->body_len + 1);
	}
	if (PQnfields(res) == 4 && !PQgetisnull(res, 0, 3))
		r->location = strdup(PQgetvalue(res, 0, 3));
	if ((!PQgetisnull(res, 0, 1) && r->content_type == NULL) ||
		(!PQgetisnull(res, 0, 2) && r->body == NULL) ||
		(PQnfields(res) == 4 && !PQgetisnull(res, 0, 3) && r->location == NULL))
		ErrorResponse(r, 500, "internal", "internal error");
}

/* Run a route function's SQL and turn its row (or error) into r */
static void
RunRouteSql(const RouteMatch *m, const char *sql, int nparams, const char *const *values,
			int64_t deadline_ms, ProxyResponse *r)
{
	PGresult   *res = NULL;
	PoolStatus	st = PoolQuery(sql, nparams, values, deadline_ms, &res);

	if (st != POOL_OK)
		ErrorFromPool(r, st);
	else
		ResponseFromRow(m, res, r);
	PQclear(res);
}

/* The request headers as JSON (with the proxy's traceparent where the route starts traces), or false with r filled (400) */
static bool
HeadersParam(const RouteMatch *m, struct MHD_Connection *connection, JsonBuf *headers, ProxyResponse *r)
{
	if (RouteStartsTrace(m) && m->traceparent[0] != '\0' ?
		HeadersToJsonTraced(connection, headers, m->traceparent) : HeadersToJson(connection, headers))
		return true;
	ErrorResponse(r, 400, "invalid_request", "request headers are not valid UTF-8 text");
	return false;
}

/* POST /callbacks/{gateway} → pay.handle_callback(gateway, headers, body) */
static void
RunCallback(const RouteMatch *m, struct MHD_Connection *connection,
			const char *body, int64_t deadline_ms, ProxyResponse *r)
{
	JsonBuf		headers;
	const char *values[3];

	JsonBufInit(&headers);
	if (HeadersParam(m, connection, &headers, r))
	{
		values[0] = m->segment;
		values[1] = headers.data;
		values[2] = body ? body : "";
		RunRouteSql(m, "SELECT http_status, content_type, body "
					"FROM pay.handle_callback($1::text, $2::jsonb, $3::text)",
					3, values, deadline_ms, r);
	}
	JsonBufFree(&headers);
}

/*
 * POST /api/v1/payments → pay.api_create_payment(headers, body), then, once
 * that committed (the dispatcher cannot send a request it cannot see),
 * pay.api_await_payment(headers, body): the PSP's answer within
 * pay.checkout_wait (201), else 202 with Location.  Should the second call
 * fail, the order still exists: the create's answer goes out as 202.
 */
static void
RunCreatePayment(const RouteMatch *m, struct MHD_Connection *connection,
				 const char *body, int64_t deadline_ms, ProxyResponse *r)
{
	JsonBuf		headers;
	const char *values[2];
	ProxyResponse waited;

	JsonBufInit(&headers);
	if (HeadersParam(m, connection, &headers, r))
	{
		values[0] = headers.data;
		values[1] = body ? body : "";
		RunRouteSql(m, "SELECT http_status, content_type, body "
					"FROM pay.api_create_payment($1::jsonb, $2::text)",
					2, values, deadline_ms, r);
		if (r->status == 201)
		{
			ResponseInit(&waited);
			RunRouteSql(m, "SELECT http_status, content_type, response_body, location "
						"FROM pay.api_await_payment($1::jsonb, $2::text)",
						2, values, deadline_ms, &waited);
			if (waited.status >= 200 && waited.status < 300)
			{
				ResponseFree(r);
				*r = waited;
			}
			else
			{
				LogMessage("warning", "route=%s waiting for the PSP failed (%u %s)", RouteName(m),
						   waited.status, waited.sqlstate);
				ResponseFree(&waited);
				r->status = 202;
			}
		}
	}
	JsonBufFree(&headers);
}

/* GET /api/v1/payments/{id} → pay.api_get_payment(headers, id) */
static void
RunGetPayment(const RouteMatch *m, struct MHD_Connection *connection,
			  const char *body, int64_t deadline_ms, ProxyResponse *r)
{
	JsonBuf		headers;
	const char *values[2];

	(void) body;
	JsonBufInit(&headers);
	if (HeadersParam(m, connection, &headers, r))
	{
		values[0] = headers.data;
		values[1] = m->segment;
		RunRouteSql(m, "SELECT http_status, content_type, body "
					"FROM pay.api_get_payment($1::jsonb, $2::text)",
					2, values, deadline_ms, r);
	}
	JsonBufFree(&headers);
}

/* Run a route function taking (headers jsonb, id text) */
static void
RunWithId(const RouteMatch *m, struct MHD_Connection *connection, const char *sql,
		  int64_t deadline_ms, ProxyResponse *r)
{
	JsonBuf		headers;
	const char *values[2];

	JsonBufInit(&headers);
	if (HeadersParam(m, connection, &headers, r))
	{
		values[0] = headers.data;
		values[1] = m->segment;
		RunRouteSql(m, sql, 2, values, deadline_ms, r);
	}
	JsonBufFree(&headers);
}

/* GET /api/v1/refunds/{id} → pay.api_get_refund(headers, id) */
static void
RunGetRefund(const RouteMatch *m, struct MHD_Connection *connection,
			 const char *body, int64_t deadline_ms, ProxyResponse *r)
{
	(void) body;
	RunWithId(m, connection, "SELECT http_status, content_type, body FROM pay.api_get_refund($1::jsonb, $2::text)",
			  deadline_ms, r);
}

/* POST /api/v1/payments/{id}/refunds → pay.api_create_refund(headers, id, body) */
static void
RunCreateRefund(const RouteMatch *m, struct MHD_Connection *connection,
				const char *body, int64_t deadline_ms, ProxyResponse *r)
{
	JsonBuf		headers;
	const char *values[3];

	JsonBufInit(&headers);
	if (HeadersParam(m, connection, &headers, r))
	{
		values[0] = headers.data;
		values[1] = m->segment;
		values[2] = body ? body : "";
		RunRouteSql(m, "SELECT http_status, content_type, body "
					"FROM pay.api_create_refund($1::jsonb, $2::text, $3::text)",
					3, values, deadline_ms, r);
	}
	JsonBufFree(&headers);
}

/* POST /api/v1/payments/{id}/cancel, /ship, /complete, /capture, /void → pay.api_move_payment(headers, id, action, body) */
static void
RunMovePayment(const RouteMatch *m, struct MHD_Connection *connection,
			   const char *body, int64_t deadline_ms, ProxyResponse *r)
{
	JsonBuf		headers;
	const char *values[4];

	JsonBufInit(&headers);
	if (HeadersParam(m, connection, &headers, r))
	{
		values[0] = headers.data;
		values[1] = m->segment;
		values[2] = m->route->action;
		values[3] = body ? body : "";
		RunRouteSql(m, "SELECT http_status, content_type, body "
					"FROM pay.api_move_payment($1::jsonb, $2::text, $3::text, $4::text)",
					4, values, deadline_ms, r);
	}
	JsonBufFree(&headers);
}

/* GET /api/v1/payments?status=...&limit=... → pay.api_list_payments(headers, query) */
static void
RunListPayments(const RouteMatch *m, struct MHD_Connection *connection,
				const char *body, int64_t deadline_ms, ProxyResponse *r)
{
	JsonBuf		headers;
	JsonBuf		query;
	const char *values[2];
	const char *problem;

	(void) body;
	JsonBufInit(&headers);
	JsonBufInit(&query);
	problem = QueryToJson(connection, &query);
	if (problem != NULL)
		ErrorResponse(r, 400, "invalid_request", problem);
	else if (HeadersParam(m, connection, &headers, r))
	{
		values[0] = headers.data;
		values[1] = query.data;
		RunRouteSql(m, "SELECT http_status, content_type, body "
					"FROM pay.api_list_payments($1::jsonb, $2::jsonb)",
					2, values, deadline_ms, r);
	}
	JsonBufFree(&query);
	JsonBufFree(&headers);
}

/* GET /healthz → SELECT 1: 200 {"status":"ok"}, 503 when the database cannot answer */
static void
RunHealthz(const RouteMatch *m, struct MHD_Connection *connection,
		   const char *body, int64_t deadline_ms, ProxyResponse *r)
{
	PGresult   *res = NULL;
	PoolStatus	st = PoolQuery("SELECT 1", 0, NULL, deadline_ms, &res);
	bool		ok = st == POOL_OK && PQresultStatus(res) == PGRES_TUPLES_OK;
	const char *text = ok ? "{\"status\":\"ok\"}" : "{\"status\":\"unavailable\"}";

	(void) m;
	(void) connection;
	(void) body;
	PQclear(res);
	ResponseFree(r);
	r->status = ok ? 200 : 503;
	r->code = ok ? NULL : "unavailable";
	r->content_type = strdup("application/json");
	r->body = strdup(text);
	r->body_len = r->body ? strlen(text) : 0;
	if (!ok)
		r->retry_after_s = 1;
}

/* GET /metrics → pay.metrics(), the Prometheus text exposition format */
static void
RunMetrics(const RouteMatch *m, struct MHD_Connection *connection,
		   const char *body, int64_t deadline_ms, ProxyResponse *r)
{
	(void) connection;
	(void) body;
	RunRouteSql(m, "SELECT 200, 'text/plain; version=0.0.4; charset=utf-8', pay.metrics()",
				0, NULL, deadline_ms, r);
}

/* Lower-case hex of len bytes as a bytea literal ("\\x..."), malloc'd */
static char *
ByteaHex(const char *bytes, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char	   *out = malloc(2 * len + 3);
	size_t		i;

	if (out == NULL)
		return NULL;
	out[0] = '\\';
	out[1] = 'x';
	for (i = 0; i < len; i++)
	{
		out[2 + 2 * i] = digits[(unsigned char) bytes[i] >> 4];
		out[3 + 2 * i] = digits[(unsigned char) bytes[i] & 0x0f];
	}
	out[2 + 2 * len] = '\0';
	return out;
}

/*
 * A callback the proxy refuses before handle_callback (body over the limit,
 * or not UTF-8 text) is still recorded in pay.callbacks: every callback is,
 * also the rejected ones.  Failure to record is logged, never fatal.
 */
void
RouteRecordUnreadable(const RouteMatch *m, struct MHD_Connection *connection,
					  const char *body, size_t body_len, const char *reason_code,
					  const char *reason, unsigned status, int64_t deadline_ms)
{
	JsonBuf		headers;
	char		status_text[16];
	char	   *bytes;
	const char *values[6];
	PGresult   *res = NULL;
	PoolStatus	st;

	if (m->route == NULL || m->route->handler != RunCallback)
		return;
	JsonBufInit(&headers);
	bytes = ByteaHex(body ? body : "", body ? body_len : 0);
	snprintf(status_text, sizeof(status_text), "%u", status);
	values[0] = m->segment;
	values[1] = HeadersToJson(connection, &headers) ? headers.data : "{}";
	values[2] = reason_code;
	values[3] = reason;
	values[4] = bytes ? bytes : "\\x";
	values[5] = status_text;
	st = PoolQuery("SELECT pay.record_unreadable_callback($1::text, $2::jsonb, $3::text, $4::text, "
				   "$5::bytea, $6::integer)", 6, values, deadline_ms, &res);
	if (st != POOL_OK || PQresultStatus(res) != PGRES_TUPLES_OK)
		LogMessage("warning", "route=%s could not record the refused callback (%s)", RouteName(m),
				   st != POOL_OK ? "no database" : PQresultErrorField(res, PG_DIAG_SQLSTATE));
	PQclear(res);
	free(bytes);
	JsonBufFree(&headers);
}
