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
