/* headers.h — a request's headers as one JSON object */
#ifndef PAY_PROXY_HEADERS_H
#define PAY_PROXY_HEADERS_H

#include <stdbool.h>

#include <microhttpd.h>

#include "json.h"

/*
 * Append the request's headers to out as a JSON object: names as received,
 * repeated headers (compared case-insensitively) joined with ", " under the
 * first spelling.  False if a name or value is not valid UTF-8 or holds NUL.
 */
bool		HeadersToJson(struct MHD_Connection *connection, JsonBuf *out);

/* The same, with the request's traceparent header (any case) replaced by traceparent */
bool		HeadersToJsonTraced(struct MHD_Connection *connection, JsonBuf *out, const char *traceparent);

#endif
