/* routes.h — the route table: each HTTP route is one SQL call */
#ifndef PAY_PROXY_ROUTES_H
#define PAY_PROXY_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "response.h"
#include "trace.h"

#define ROUTE_SEGMENT_MAX 128

typedef struct Route Route;

typedef struct RouteMatch
{
	const Route *route;			/* NULL unless the request matched a route */
	char		segment[ROUTE_SEGMENT_MAX + 1]; /* the {gateway} or {id} path segment */
	char		traceparent[TRACEPARENT_LEN + 1];	/* the proxy's span, passed to SQL ("" for none) */
} RouteMatch;

/*
 * Match method and path against the route table.  True with m->route set if
 * the request can be served; false with r filled (404, 405 with Allow, or 400
 * for an invalid path segment) otherwise.
 */
bool		RouteMatchRequest(const char *method, const char *path, RouteMatch *m, ProxyResponse *r);

/* True if the matched route reads the request body */
bool		RouteTakesBody(const RouteMatch *m);

/* The route's name for logs */
const char *RouteName(const RouteMatch *m);

/*
 * Does the route pass the proxy's traceparent to SQL whatever the client
 * sent?  The merchant API does (a new trace when the client sent none); a
 * callback passes its headers as received, so one without a traceparent
 * joins its order's trace in SQL.
 */
bool		RouteStartsTrace(const RouteMatch *m);

/* Run the matched route's SQL call and fill r; body is NUL-terminated valid UTF-8 (or NULL) */
void		RouteRun(const RouteMatch *m, struct MHD_Connection *connection,
					 const char *body, int64_t deadline_ms, ProxyResponse *r);

/*
 * Record a callback refused before its SQL call (body too large or not
 * UTF-8) with pay.record_unreadable_callback; no-op for other routes.
 */
void		RouteRecordUnreadable(const RouteMatch *m, struct MHD_Connection *connection,
								  const char *body, size_t body_len, const char *reason_code,
								  const char *reason, unsigned status, int64_t deadline_ms);

#endif
