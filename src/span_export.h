/* span_export.h — the dispatcher's client spans, batched to an OTLP/HTTP collector (span_export.c) */
#ifndef PAY_SPAN_EXPORT_H
#define PAY_SPAN_EXPORT_H

#include "datatype/timestamp.h"

#include "delivery_context.h"
#include "dispatcher.h"

extern void SpanExportInit(void);
/* A finished attempt's CLIENT span into the queue (when pay.otlp_endpoint is set and it had a traceparent). */
extern void SpanExportRecord(const HttpResult *r, const DeliveryContext *dc);
/* Post a batch if one is due and no post is on the wire. */
extern void SpanExportFlush(TimestampTz now);
/* Milliseconds until a batch is due, or -1 when nothing waits. */
extern long SpanExportWaitMs(TimestampTz now);
/* How the last post ended (from dispatcher_http.c); failures are logged at most once a minute. */
extern void SpanExportPosted(bool ok, const char *error);

#endif
