/* query.h — a request's query parameters as one JSON object of strings */
#ifndef PAY_PROXY_QUERY_H
#define PAY_PROXY_QUERY_H

#include <microhttpd.h>

#include "json.h"

/*
 * Append the request's query parameters (decoded) to out as a JSON object
 * of strings; a parameter without '=' is "".  NULL when done, else why the
 * query cannot be passed (a repeated name, not UTF-8, too many).
 */
const char *QueryToJson(struct MHD_Connection *connection, JsonBuf *out);

#endif
