/* trace.h — W3C trace context of a request: accept the client's traceparent or start a trace */
#ifndef PAY_PROXY_TRACE_H
#define PAY_PROXY_TRACE_H

#include <stdbool.h>

#include <microhttpd.h>

#include "../src/proto/traceparent.h"

typedef struct TraceContext
{
	char		trace_id[33];	/* 32 lower-case hex digits */
	char		span_id[17];	/* the proxy's own span for this request */
	char		parent_id[17];	/* the client's span, "" when the proxy started the trace */
	char		flags[3];
	bool		from_client;	/* the request carried a valid traceparent */
} TraceContext;

/* True if s is a traceparent the proxy accepts (version 00, or a later version's first four fields) */
/*
 * The request's trace: the client's trace id and flags when its traceparent
 * is valid (a malformed one is ignored), else a new random trace id; always
 * a new span id for the proxy's span.
 */
void		TraceFromRequest(struct MHD_Connection *connection, TraceContext *t);

/* "00-<trace id>-<the proxy's span id>-<flags>" into out[TRACEPARENT_LEN + 1] */
void		TraceParentFormat(const TraceContext *t, char *out);

#endif
