/* response.c — the HTTP answer a route produces, before it is handed to MHD */
#include "response.h"

#include <stdlib.h>
#include <string.h>

/* An empty response (status 0 means "not produced yet") */
void
ResponseInit(ProxyResponse *r)
{
	memset(r, 0, sizeof(*r));
	r->retry_after_s = -1;
}

/* Release what the response owns */
void
ResponseFree(ProxyResponse *r)
{
	free(r->content_type);
	free(r->body);
	free(r->location);
	ResponseInit(r);
}
