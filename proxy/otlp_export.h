/* otlp_export.h — the proxy's request spans, batched and posted to an OTLP/HTTP collector */
#ifndef PAY_PROXY_OTLP_EXPORT_H
#define PAY_PROXY_OTLP_EXPORT_H

#include <stdbool.h>

#include "../src/proto/otlp_json.h"

/* Start the sender thread posting to endpoint (an OTLP/HTTP traces URL); false with a message if it cannot */
bool		OtlpExportStart(const char *endpoint);

/* Queue one finished span; never blocks on the network (a full queue drops it). No-op when not started. */
void		OtlpExportSpan(const OtlpSpan *span);

/* Post what is queued (bounded by the post timeout) and stop the sender thread */
void		OtlpExportStop(void);

#endif
