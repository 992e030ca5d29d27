/*
 * fuzz_traceparent.c — libFuzzer harness for W3C traceparent validation
 * (src/proto/traceparent.c), which pay-proxy runs on every request's
 * header.  Properties:
 *  - a value accepted is at least 55 characters, has its dashes in place,
 *    lower-case hex ids that are not all zero and a version other than ff;
 *  - version 00 is accepted only at exactly 55 characters;
 *  - the input as one NUL-terminated string is never read past its end
 *    (AddressSanitizer with the copy below).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "traceparent.h"

static int
LowerHex(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *s = malloc(size + 1);
	size_t		len;

	memcpy(s, data, size);
	s[size] = '\0';
	len = strlen(s);
	if (TraceParentValid(s))
	{
		assert(len >= TRACEPARENT_LEN);
		assert(s[2] == '-' && s[35] == '-' && s[52] == '-');
		assert(LowerHex(s, 2) && strncmp(s, "ff", 2) != 0);
		assert(TraceHexId(s + 3, 32) && TraceHexId(s + 36, 16) && LowerHex(s + 53, 2));
		assert(strncmp(s + 3, "00000000000000000000000000000000", 32) != 0);
		assert(strncmp(s, "00", 2) != 0 || len == TRACEPARENT_LEN);
	}
	free(s);
	return 0;
}
