/*
 * fuzz_json_depth.c — libFuzzer harness for proto/json_depth.c: any input
 * is measured without reading out of bounds (the input is copied to an
 * exact-size buffer, so a read past a trailing backslash shows), and the
 * answer grows with the limit: text that exceeds a limit exceeds every
 * smaller one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_depth.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size ? size : 1);
	int			max;

	memcpy(copy, data, size);
	for (max = 0; max <= 8; max++)
		if (json_nesting_exceeds(copy, size, max + 1) && !json_nesting_exceeds(copy, size, max))
			abort();
	free(copy);
	return 0;
}
