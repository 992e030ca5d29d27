/*
 * fuzz_header_lines.c — libFuzzer harness for the reader of an HTTP
 * answer's header lines (src/proto/header_lines.c), which the dispatcher
 * runs on every PSP answer (WeChat Pay's signature headers, Retry-After).
 * Properties:
 *  - every line it returns lies inside the block, after the one before;
 *  - a name is not empty and holds no colon, CR or LF; a value holds no LF
 *    and neither starts nor ends with a blank;
 *  - it ends, and the block as one NUL-terminated string is never read past
 *    its end (AddressSanitizer with the copy below);
 *  - header_line_named agrees with a case-blind comparison of the name.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "header_lines.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *s = malloc(size + 1);
	const char *cursor;
	const char *last_end;
	HeaderLine	h;
	size_t		len;

	memcpy(s, data, size);
	s[size] = '\0';
	len = strlen(s);
	cursor = s;
	last_end = s;
	while (header_lines_next(&cursor, &h))
	{
		assert(h.name >= last_end && h.name + h.name_len <= s + len);
		assert(h.value > h.name && h.value + h.value_len <= s + len);
		assert(h.name_len > 0);
		assert(memchr(h.name, ':', h.name_len) == NULL && memchr(h.name, '\n', h.name_len) == NULL);
		assert(memchr(h.value, '\n', h.value_len) == NULL);
		assert(h.value_len == 0 || (h.value[0] != ' ' && h.value[0] != '\t' &&
									h.value[h.value_len - 1] != ' ' && h.value[h.value_len - 1] != '\t'));
		assert(cursor >= h.value + h.value_len && cursor <= s + len);
		if (h.name_len == strlen("Retry-After"))
			assert(header_line_named(&h, "retry-after") == (strncasecmp(h.name, "Retry-After", h.name_len) == 0));
		last_end = h.value + h.value_len;
	}
	assert(cursor == s + len);
	free(s);
	return 0;
}
