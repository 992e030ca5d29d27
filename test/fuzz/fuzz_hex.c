/*
 * fuzz_hex.c — libFuzzer harness for hex encoding and decoding
 * (src/crypto/hex.c).  Properties:
 *  - decode(encode(x)) == x, and encode writes exactly 2n lower-case digits
 *    and a NUL;
 *  - decoding the input as text succeeds exactly when it has even length
 *    and only hex digits, and then encode(decode(s)) == lower-case(s);
 *  - a too-small output buffer is refused.
 */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"

/* One input: both round trips. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *enc = malloc(2 * size + 1);
	uint8_t    *dec = malloc(size + 1);
	size_t		dec_len = 0;
	size_t		i;
	int			all_hex = 1;
	int			rc;

	/* Round trip of arbitrary bytes. */
	hex_encode(data, size, enc);
	assert(enc[2 * size] == '\0');
	for (i = 0; i < 2 * size; i++)
		assert((enc[i] >= '0' && enc[i] <= '9') || (enc[i] >= 'a' && enc[i] <= 'f'));
	assert(hex_decode(enc, 2 * size, dec, size, &dec_len) == 0);
	assert(dec_len == size);
	assert(size == 0 || memcmp(dec, data, size) == 0);
	if (size > 0)
		assert(hex_decode(enc, 2 * size, dec, size - 1, &dec_len) == -1);

	/* The input as hex text. */
	for (i = 0; i < size; i++)
		if (!isxdigit(data[i]))
			all_hex = 0;
	rc = hex_decode((const char *) data, size, dec, size / 2, &dec_len);
	assert((rc == 0) == (all_hex && size % 2 == 0));
	if (rc == 0)
	{
		assert(dec_len == size / 2);
		hex_encode(dec, dec_len, enc);
		for (i = 0; i < size; i++)
			assert(enc[i] == tolower(data[i]));
	}
	free(enc);
	free(dec);
	return 0;
}
