/*
 * trace.c — W3C trace context (https://www.w3.org/TR/trace-context/) of a
 * request.  The proxy continues the client's trace when its traceparent
 * header is valid, and starts one otherwise; either way its own span gets a
 * new id, which is the parent of what the request causes in SQL.
 */
#include "trace.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* n random bytes as 2n lower-case hex digits (never all zero) into out[2n + 1] */
static void
RandomHex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char bytes[16];
	size_t		got = 0;

	while (got < n)
	{
		ssize_t		r = getrandom(bytes + got, n - got, 0);

		if (r > 0)
			got += (size_t) r;
	}
	bytes[n - 1] |= 1;			/* an all-zero id is invalid */
	for (size_t i = 0; i < n; i++)
	{
		out[2 * i] = hex[bytes[i] >> 4];
		out[2 * i + 1] = hex[bytes[i] & 15];
	}
	out[2 * n] = '\0';
}

void
TraceFromRequest(struct MHD_Connection *connection, TraceContext *t)
{
	const char *tp = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "traceparent");

	memset(t, 0, sizeof(*t));
	t->from_client = TraceParentValid(tp);
	if (t->from_client)
	{
		memcpy(t->trace_id, tp + 3, 32);
		memcpy(t->parent_id, tp + 36, 16);
		memcpy(t->flags, tp + 53, 2);
	}
	else
	{
		RandomHex(t->trace_id, 16);
		memcpy(t->flags, "01", 2);
	}
	RandomHex(t->span_id, 8);
}

void
TraceParentFormat(const TraceContext *t, char *out)
{
	snprintf(out, TRACEPARENT_LEN + 1, "00-%s-%s-%s", t->trace_id, t->span_id, t->flags);
}
