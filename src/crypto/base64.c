/*
 * base64.c — standard base64 (RFC 4648 section 4, padded).  Our own code
 * rather than OpenSSL's EVP_DecodeBlock, which accepts trailing garbage and
 * reports padding as output bytes.
 */
#include "base64.h"

static const char alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of one alphabet character, or -1. */
static int
Base64Value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* ASCII whitespace that PEM bodies and pasted keys contain. */
static int
IsSpace(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void
base64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t		i;
	char	   *o = out;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32_t	v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];

		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = alphabet[v & 63];
	}
	if (i < len)
	{
		uint32_t	v = (uint32_t) in[i] << 16 | (i + 1 < len ? (uint32_t) in[i + 1] << 8 : 0);

		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
}

int
base64_decode(const char *in, size_t len, uint8_t *out, size_t out_cap, size_t *out_len)
{
	uint32_t	acc = 0;
	int			bits = 0;
	int			padding = 0;
	size_t		symbols = 0;
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		int			v;

		if (IsSpace(in[i]))
			continue;
		symbols++;
		if (in[i] == '=')
		{
			if (++padding > 2)
				return -1;
			continue;
		}
		if (padding > 0 || (v = Base64Value(in[i])) < 0)
			return -1;			/* data after padding, or not in the alphabet */
		acc = (acc << 6) | (uint32_t) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			if (n >= out_cap)
				return -1;
			out[n++] = (uint8_t) (acc >> bits);
		}
	}
	/* Whole quads only, padding only where bits are missing, and no stray bits set. */
	if (symbols % 4 != 0 || (padding > 0 && bits / 2 != padding) ||
		(acc & ((1u << bits) - 1)) != 0)
		return -1;
	*out_len = n;
	return 0;
}
