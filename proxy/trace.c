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

/* n lower-case hex digits? */
static bool
IsLowerHex(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* n lower-case hex digits, not all zero (an id)? */
static bool
IsHexId(const char *s, int n)
{
	return IsLowerHex(s, n) && strspn(s, "0") < (size_t) n;
}

bool
TraceParentValid(const char *s)
{
	size_t		len = s ? strlen(s) : 0;

	if (len < TRACEPARENT_LEN || s[2] != '-' || s[35] != '-' || s[52] != '-')
		return false;
	if (!IsLowerHex(s, 2) || strncmp(s, "ff", 2) == 0)
		return false;
	if (strncmp(s, "00", 2) == 0 ? len != TRACEPARENT_LEN : (len > TRACEPARENT_LEN && s[55] != '-'))
		return false;
	return IsHexId(s + 3, 32) && IsHexId(s + 36, 16) && IsLowerHex(s + 53, 2);
}

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
