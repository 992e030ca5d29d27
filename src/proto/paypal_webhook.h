/*
 * paypal_webhook.h — the parts of a PayPal webhook's headers read before
 * its signature is checked: the transmission time and the certificate URL.
 * Plain C (libcurl's URL parser), no postgres.h.
 */
#ifndef PAY_PAYPAL_WEBHOOK_H
#define PAY_PAYPAL_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * PAYPAL-TRANSMISSION-TIME, "2024-01-02T03:04:05Z" (fractional seconds
 * allowed, UTC only), as Unix seconds; false when it is not one.
 */
extern bool paypal_transmission_time(const char *text, int64_t *unix_seconds);

/*
 * May the signing certificate be fetched from url?  Only https (written
 * "https://", not one of the looser forms libcurl also reads), no user
 * information, a path under /v1/notifications/certs/, and a host of
 * PayPal's API (api.paypal.com, api.sandbox.paypal.com, api-m.paypal.com,
 * api-m.sandbox.paypal.com, on the default port) or one of extra_hosts (a
 * comma-separated list of "host" or "host:port"; NULL for none).  why
 * receives the reason when it may not.  The host is compared as libcurl
 * parses it, the parser that then fetches the URL.
 */
extern bool paypal_cert_url_allowed(const char *url, const char *extra_hosts, char *why, size_t why_size);

#endif
