/* trace_context.h — W3C trace context in SQL (trace_context.c) */
#ifndef PAY_TRACE_CONTEXT_H
#define PAY_TRACE_CONTEXT_H

#include "access/htup.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"

extern void TraceContextInit(void);
/* The trace id of pay.traceparent into out[33]; false when unset or malformed. */
extern bool TraceCurrentId(char *out);
/* A traceparent among a route function's lower-cased headers becomes pay.traceparent (SET LOCAL). */
extern void TraceAdoptHeader(Jsonb *lower_headers);
/* For a BEFORE INSERT trigger: the row with trace_id set to the current trace if it has none. */
extern HeapTuple TraceStamp(Relation rel, HeapTuple tuple);

#endif
