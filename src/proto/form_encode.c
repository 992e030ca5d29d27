/*
 * form_encode.c — application/x-www-form-urlencoded escaping (see form_encode.h).
 */
#include "form_encode.h"

static const char hex_upper[] = "0123456789ABCDEF";

/* Is c left as it is? */
static int
FormUnreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '*' || c == '-' || c == '.' || c == '_';
}

/* Value of a hex digit, or -1. */
static int
HexValue(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Escapes len bytes of in into out; returns the length written. */
size_t
form_encode(const char *in, size_t len, char *out)
{
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) in[i];

		if (FormUnreserved(c))
			out[n++] = (char) c;
		else if (c == ' ')
			out[n++] = '+';
		else
		{
			out[n++] = '%';
			out[n++] = hex_upper[c >> 4];
			out[n++] = hex_upper[c & 15];
		}
	}
	return n;
}

/* Decodes len bytes of in into out; (size_t) -1 for a bad escape. */
size_t
form_decode(const char *in, size_t len, char *out)
{
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (in[i] == '+')
			out[n++] = ' ';
		else if (in[i] == '%')
		{
			int			hi,
						lo;

			if (len - i < 3)
				return (size_t) -1;
			hi = HexValue((unsigned char) in[i + 1]);
			lo = HexValue((unsigned char) in[i + 2]);
			if (hi < 0 || lo < 0)
				return (size_t) -1;
			out[n++] = (char) (hi << 4 | lo);
			i += 2;
		}
		else
			out[n++] = in[i];
	}
	return n;
}
