/*
 * http_fetch.h — one HTTP request made and waited for by the calling
 * process (http_fetch.c), for the rare requests that cannot wait for the
 * dispatcher's outbox: a PSP's OAuth access token, a PSP's webhook
 * signing certificate.  The same TLS, timeout and destination rules as the
 * dispatcher's transfers (pay.http_ca_file, pay.http_connect_timeout,
 * pay.http_timeout, pay.allow_private_destinations).
 */
#ifndef PAY_HTTP_FETCH_H
#define PAY_HTTP_FETCH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct HttpFetchRequest
{
	const char *method;			/* GET or POST */
	const char *url;
	const char *const *headers; /* "Name: value" lines */
	int			nheaders;
	const char *body;			/* POST body, NULL for none */
	const char *userpwd;		/* HTTP Basic "user:password", NULL for none; scrubbed from curl's copy */
	bool		https_only;		/* refuse http:// */
	size_t		body_max;		/* the most of an answer read; a longer one fails */
} HttpFetchRequest;

typedef struct HttpFetchResult
{
	long		status;			/* HTTP status, 0 when there was no answer */
	char	   *body;			/* palloc'd, NUL-terminated */
	size_t		body_len;
	char		error[256];		/* why there was no answer */
} HttpFetchResult;

/*
 * Send the request and wait for its answer (checking for interrupts while
 * it waits).  true with res->status and res->body when an answer came,
 * false with res->error otherwise.
 */
extern bool HttpFetch(const HttpFetchRequest *req, HttpFetchResult *res);

#endif
