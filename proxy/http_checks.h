/* http_checks.h — RFC 9112 message checks that libmicrohttpd 0.9.75 does not make itself */
#ifndef PAY_PROXY_HTTP_CHECKS_H
#define PAY_PROXY_HTTP_CHECKS_H

#include <stdbool.h>

#include <microhttpd.h>

#include "response.h"

/*
 * Check the request's framing headers (Content-Length, Transfer-Encoding)
 * and Host once its headers are in.  False with r filled (400 or 501, with
 * Connection: close) when the request must be refused before its body is read.
 */
bool		HttpChecksPass(struct MHD_Connection *connection, const char *version, ProxyResponse *r);

#endif
