/*
 * http_guard.h — the rules every outbound request of pay is sent under
 * (the dispatcher's transfers, one-off fetches such as an OAuth token or a
 * webhook certificate): see http_guard.c.
 */
#ifndef PAY_HTTP_GUARD_H
#define PAY_HTTP_GUARD_H

#include <curl/curl.h>

/* Why an address was refused ("" if none was); lives as long as the transfer. */
typedef struct HttpGuard
{
	char		refused[256];
} HttpGuard;

/*
 * Set on e: the allowed protocols ("http,https" or "https"), no redirects,
 * no signals, TLS 1.2 or later with peer and host verification (the CA
 * bundle of pay.http_ca_file if set), pay.http_connect_timeout and
 * pay.http_timeout, a cap on the answer's size, and the destination check
 * on every address a socket is opened to and on the connection each request
 * goes out on (a kept-alive one included).  CURLE_OK or the first option
 * curl refused.
 */
extern CURLcode HttpGuardApply(CURL *e, HttpGuard *guard, const char *protocols, curl_off_t max_bytes);

#endif							/* PAY_HTTP_GUARD_H */
