/*
 * hex.c — lower-case hex encoding and decoding.
 */
#include "hex.h"

static const char hex_digits[] = "0123456789abcdef";

int
hex_digit_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void
hex_encode(const uint8_t *in, size_t len, char *out)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		out[2 * i] = hex_digits[in[i] >> 4];
		out[2 * i + 1] = hex_digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

int
hex_decode(const char *in, size_t len, uint8_t *out, size_t out_cap, size_t *out_len)
{
	size_t		i;

	if (len % 2 != 0 || len / 2 > out_cap)
		return -1;
	for (i = 0; i < len / 2; i++)
	{
		int			hi = hex_digit_value(in[2 * i]);
		int			lo = hex_digit_value(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t) (hi << 4 | lo);
	}
	*out_len = len / 2;
	return 0;
}
