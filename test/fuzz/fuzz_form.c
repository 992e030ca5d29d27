/*
 * fuzz_form.c — libFuzzer harness for proto/form.c: any input parses or is
 * refused without reading or writing out of bounds, and every decoded pair
 * fits in (and is no longer than) the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

typedef struct Seen
{
	size_t		input_len;
	size_t		total;
} Seen;

/* Each pair's bytes come from the input, so they can never add up to more. */
static int
CheckPair(void *arg, const char *name, size_t name_len, const char *value, size_t value_len)
{
	Seen	   *seen = (Seen *) arg;
	volatile unsigned sum = 0;
	size_t		i;

	seen->total += name_len + value_len;
	if (seen->total > seen->input_len)
		abort();
	for (i = 0; i < name_len; i++)	/* read every byte: ASan checks each */
		sum += (unsigned char) name[i];
	for (i = 0; i < value_len; i++)
		sum += (unsigned char) value[i];
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size ? size : 1);
	char	   *scratch = malloc(size ? size : 1);
	Seen		seen = {size, 0};

	memcpy(copy, data, size);
	(void) form_parse(copy, size, scratch, CheckPair, &seen);
	/* decoding never grows: a component decodes to at most its own length */
	if (form_decode(copy, size, scratch) > (long) size)
		abort();
	free(copy);
	free(scratch);
	return 0;
}
