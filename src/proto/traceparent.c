/*
 * traceparent.c — validation of W3C traceparent values (see traceparent.h).
 * Plain C: pay-proxy compiles it too.
 */
#include "traceparent.h"

#include <string.h>

/* n lower-case hex digits? */
static bool
IsLowerHex(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool
TraceHexId(const char *s, int n)
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
	return TraceHexId(s + 3, 32) && TraceHexId(s + 36, 16) && IsLowerHex(s + 53, 2);
}
