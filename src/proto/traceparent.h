/*
 * traceparent.h — W3C Trace Context (https://www.w3.org/TR/trace-context/)
 * traceparent values, the one validation pay-proxy and the extension share.
 */
#ifndef PAY_TRACEPARENT_H
#define PAY_TRACEPARENT_H

#include <stdbool.h>

#define TRACEPARENT_LEN 55		/* "00-" 32 hex "-" 16 hex "-" 2 hex */

/*
 * Is s a traceparent pay accepts?  Version 00 is exactly 55 characters; a
 * later version may append "-..." fields; version ff and all-zero trace or
 * span ids are invalid.
 */
bool		TraceParentValid(const char *s);

/* n lower-case hex digits, not all zero (a trace or span id)? */
bool		TraceHexId(const char *s, int n);

#endif
