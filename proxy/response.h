/* response.h — the HTTP answer a route produces, before it is handed to MHD */
#ifndef PAY_PROXY_RESPONSE_H
#define PAY_PROXY_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ProxyResponse
{
	unsigned	status;
	char	   *content_type;	/* malloc'd; NULL sends no Content-Type */
	char	   *body;			/* malloc'd; may be NULL when body_len is 0 */
	size_t		body_len;
	long		retry_after_s;	/* Retry-After header when >= 0 */
	const char *allow;			/* Allow header (405), static */
	char	   *location;		/* Location header, malloc'd; NULL sends none */
	const char *code;			/* the proxy's error code for the access log, static */
	bool		close;			/* send Connection: close and end the connection */
	char		sqlstate[6];	/* of a failed SQL call, for the access log; "" otherwise */
} ProxyResponse;

/* An empty response (status 0 means "not produced yet") */
void		ResponseInit(ProxyResponse *r);

/* Release what the response owns */
void		ResponseFree(ProxyResponse *r);

#endif
