/* utf8.c — strict UTF-8 validation (RFC 3629: no overlongs, no surrogates, max U+10FFFF) */
#include "utf8.h"

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 if invalid */
size_t
Utf8SequenceLength(const unsigned char *s, size_t len)
{
	unsigned char c;

	if (len == 0)
		return 0;
	c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return (len >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF)
	{
		unsigned char lo = 0x80, hi = 0xBF;

		if (c == 0xE0)
			lo = 0xA0;			/* overlong */
		else if (c == 0xED)
			hi = 0x9F;			/* UTF-16 surrogates */
		if (len < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4)
	{
		unsigned char lo = 0x80, hi = 0xBF;

		if (c == 0xF0)
			lo = 0x90;			/* overlong */
		else if (c == 0xF4)
			hi = 0x8F;			/* above U+10FFFF */
		if (len < 4 || s[1] < lo || s[1] > hi ||
			(s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
			return 0;
		return 4;
	}
	return 0;					/* 0x80..0xC1 and 0xF5..0xFF never start a sequence */
}

/* True if s[0..len) is well-formed UTF-8 (RFC 3629) without NUL bytes */
bool
Utf8IsValidText(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0;

	while (i < len)
	{
		size_t		n;

		if (p[i] != 0 && p[i] < 0x80)
		{
			i++;
			continue;
		}
		if (p[i] == 0)
			return false;		/* PostgreSQL text cannot hold NUL */
		n = Utf8SequenceLength(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}
