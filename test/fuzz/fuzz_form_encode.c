/*
 * fuzz_form_encode.c — libFuzzer harness for proto/form_encode.c: encoding
 * any bytes stays within FORM_ENCODED_MAX, writes only the unreserved
 * characters, '+' and %XX, and proto/form.c's decoder gives the input back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "form_encode.h"

/* Is c a character the encoder may write? */
static int
Allowed(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '*' || c == '-' || c == '.' || c == '_' || c == '+' || c == '%';
}

/* libFuzzer entry point: encode, check, decode, compare. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *encoded = malloc(FORM_ENCODED_MAX(size) + 1);
	char	   *decoded = malloc(FORM_ENCODED_MAX(size) + 1);
	size_t		n = form_encode((const char *) data, size, encoded);
	size_t		i;
	long		m;

	if (n > FORM_ENCODED_MAX(size) || n < size)
		abort();
	for (i = 0; i < n; i++)
		if (!Allowed((unsigned char) encoded[i]))
			abort();
	m = form_decode(encoded, n, decoded);
	if (m < 0 || (size_t) m != size || memcmp(decoded, data, size) != 0)
		abort();
	free(encoded);
	free(decoded);
	return 0;
}
