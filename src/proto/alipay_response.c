/*
 * alipay_response.c — a small JSON scanner that validates syntax and reports
 * byte spans, without building values: the signed text of an Alipay answer
 * must be verified exactly as received, so nothing is re-serialised.
 */
#include "alipay_response.h"
#include "hex.h"

#include <stdint.h>
#include <string.h>

typedef struct Scan
{
	const char *s;
	size_t		len;
	size_t		pos;
} Scan;

/* Skip JSON whitespace. */
static void
SkipSpace(Scan *sc)
{
	while (sc->pos < sc->len &&
		   (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t' ||
			sc->s[sc->pos] == '\n' || sc->s[sc->pos] == '\r'))
		sc->pos++;
}

/* The current byte, or -1 at the end. */
static int
Peek(const Scan *sc)
{
	return sc->pos < sc->len ? (unsigned char) sc->s[sc->pos] : -1;
}

/* A string at pos (which holds '"'); its body is [*start, *end).  0 on success. */
static int
ScanString(Scan *sc, size_t *start, size_t *end)
{
	if (Peek(sc) != '"')
		return -1;
	*start = ++sc->pos;
	while (sc->pos < sc->len)
	{
		unsigned char c = (unsigned char) sc->s[sc->pos];

		if (c == '"')
		{
			*end = sc->pos++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c == '\\')
		{
			int			e;

			if (++sc->pos >= sc->len)
				return -1;
			e = (unsigned char) sc->s[sc->pos];
			if (e == 'u')
			{
				int			i;

				for (i = 1; i <= 4; i++)
					if (sc->pos + i >= sc->len || hex_digit_value((unsigned char) sc->s[sc->pos + i]) < 0)
						return -1;
				sc->pos += 4;
			}
			else if (strchr("\"\\/bfnrt", e) == NULL || e == '\0')
				return -1;
		}
		sc->pos++;
	}
	return -1;
}

/* Digits at pos: at least one.  0 on success. */
static int
ScanDigits(Scan *sc)
{
	size_t		start = sc->pos;

	while (sc->pos < sc->len && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9')
		sc->pos++;
	return sc->pos > start ? 0 : -1;
}

/* A number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?  0 on success. */
static int
ScanNumber(Scan *sc)
{
	if (Peek(sc) == '-')
		sc->pos++;
	if (Peek(sc) == '0')
		sc->pos++;
	else if (ScanDigits(sc) != 0)
		return -1;
	if (Peek(sc) == '.')
	{
		sc->pos++;
		if (ScanDigits(sc) != 0)
			return -1;
	}
	if (Peek(sc) == 'e' || Peek(sc) == 'E')
	{
		sc->pos++;
		if (Peek(sc) == '+' || Peek(sc) == '-')
			sc->pos++;
		if (ScanDigits(sc) != 0)
			return -1;
	}
	return 0;
}

/* The literal word at pos.  0 on success. */
static int
ScanWord(Scan *sc, const char *word)
{
	size_t		n = strlen(word);

	if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
		return -1;
	sc->pos += n;
	return 0;
}

/* After "{" or ",": a member name and its colon.  0 on success. */
static int
ScanMemberName(Scan *sc, size_t *start, size_t *end)
{
	SkipSpace(sc);
	if (ScanString(sc, start, end) != 0)
		return -1;
	SkipSpace(sc);
	if (Peek(sc) != ':')
		return -1;
	sc->pos++;
	return 0;
}

/* One JSON value at pos (after optional space), iteratively.  0 on success. */
static int
ScanValue(Scan *sc)
{
	char		closers[ALIPAY_JSON_DEPTH_MAX];
	int			depth = 0;
	size_t		a,
				b;

	for (;;)
	{
		int			c;

		/* a value */
		SkipSpace(sc);
		c = Peek(sc);
		if (c == '{' || c == '[')
		{
			if (depth == ALIPAY_JSON_DEPTH_MAX)
				return -1;
			closers[depth++] = c == '{' ? '}' : ']';
			sc->pos++;
			SkipSpace(sc);
			if (Peek(sc) == closers[depth - 1])
			{
				sc->pos++;
				depth--;
			}
			else
			{
				if (c == '{' && ScanMemberName(sc, &a, &b) != 0)
					return -1;
				continue;		/* the first element or member value */
			}
		}
		else if (c == '"')
		{
			if (ScanString(sc, &a, &b) != 0)
				return -1;
		}
		else if (c == 't' || c == 'f' || c == 'n')
		{
			if (ScanWord(sc, c == 't' ? "true" : c == 'f' ? "false" : "null") != 0)
				return -1;
		}
		else if (c == '-' || (c >= '0' && c <= '9'))
		{
			if (ScanNumber(sc) != 0)
				return -1;
		}
		else
			return -1;

		/* after a value: close containers until one continues with "," */
		for (;;)
		{
			if (depth == 0)
				return 0;
			SkipSpace(sc);
			c = Peek(sc);
			if (c == closers[depth - 1])
			{
				sc->pos++;
				depth--;
				continue;
			}
			if (c != ',')
				return -1;
			sc->pos++;
			if (closers[depth - 1] == '}' && ScanMemberName(sc, &a, &b) != 0)
				return -1;
			break;
		}
	}
}

/* 1 if the raw name [start, end) ends in "_response" with something before it. */
static int
IsResponseName(const char *s, size_t start, size_t end)
{
	static const char suffix[] = "_response";
	size_t		n = sizeof(suffix) - 1;

	return end - start > n && memcmp(s + end - n, suffix, n) == 0;
}

AlipayResponseResult
alipay_response_scan(const char *body, size_t len, AlipayResponse *out)
{
	Scan		sc = {body, len, 0};
	int			have_content = 0;
	int			have_sign = 0;
	int			ambiguous = 0;

	memset(out, 0, sizeof(*out));
	SkipSpace(&sc);
	if (Peek(&sc) != '{')
		return ALIPAY_RESPONSE_MALFORMED;
	sc.pos++;
	SkipSpace(&sc);
	if (Peek(&sc) == '}')
		sc.pos++;
	else
		for (;;)
		{
			size_t		name_start,
						name_end,
						value_start;

			if (ScanMemberName(&sc, &name_start, &name_end) != 0)
				return ALIPAY_RESPONSE_MALFORMED;
			SkipSpace(&sc);
			value_start = sc.pos;
			if (ScanValue(&sc) != 0)
				return ALIPAY_RESPONSE_MALFORMED;

			if (name_end - name_start == 4 && memcmp(body + name_start, "sign", 4) == 0)
			{
				if (body[value_start] != '"')
					return ALIPAY_RESPONSE_MALFORMED;
				ambiguous |= have_sign++;
				out->sign_off = value_start + 1;
				out->sign_len = sc.pos - value_start - 2;
			}
			else if (IsResponseName(body, name_start, name_end))
			{
				ambiguous |= have_content++;
				out->content_off = value_start;
				out->content_len = sc.pos - value_start;
			}

			SkipSpace(&sc);
			if (Peek(&sc) == ',')
			{
				sc.pos++;
				continue;
			}
			if (Peek(&sc) != '}')
				return ALIPAY_RESPONSE_MALFORMED;
			sc.pos++;
			break;
		}
	SkipSpace(&sc);
	if (sc.pos != len)
		return ALIPAY_RESPONSE_MALFORMED;	/* something after the object */
	if (ambiguous)
		return ALIPAY_RESPONSE_AMBIGUOUS;
	if (!have_content)
		return ALIPAY_RESPONSE_NO_CONTENT;
	if (!have_sign)
		return ALIPAY_RESPONSE_NO_SIGN;
	return ALIPAY_RESPONSE_OK;
}

/* Append code point cp as UTF-8 at out + *n. */
static void
PutUtf8(char *out, size_t *n, uint32_t cp)
{
	if (cp < 0x80)
		out[(*n)++] = (char) cp;
	else if (cp < 0x800)
	{
		out[(*n)++] = (char) (0xC0 | (cp >> 6));
		out[(*n)++] = (char) (0x80 | (cp & 0x3F));
	}
	else if (cp < 0x10000)
	{
		out[(*n)++] = (char) (0xE0 | (cp >> 12));
		out[(*n)++] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[(*n)++] = (char) (0x80 | (cp & 0x3F));
	}
	else
	{
		out[(*n)++] = (char) (0xF0 | (cp >> 18));
		out[(*n)++] = (char) (0x80 | ((cp >> 12) & 0x3F));
		out[(*n)++] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[(*n)++] = (char) (0x80 | (cp & 0x3F));
	}
}

/* Four hex digits at raw + i (i + 4 <= len checked by the caller). */
static uint32_t
Hex4(const char *raw, size_t i)
{
	uint32_t	v = 0;
	int			k;

	for (k = 0; k < 4; k++)
	{
		int			h = hex_digit_value((unsigned char) raw[i + k]);

		if (h < 0)
			return UINT32_MAX;
		v = v << 4 | (uint32_t) h;
	}
	return v;
}

int
alipay_json_unescape(const char *raw, size_t len, char *out, size_t *out_len)
{
	size_t		i = 0;
	size_t		n = 0;

	while (i < len)
	{
		uint32_t	cp;

		if (raw[i] != '\\')
		{
			out[n++] = raw[i++];
			continue;
		}
		if (++i >= len)
			return -1;
		switch (raw[i++])
		{
			case '"':
				out[n++] = '"';
				continue;
			case '\\':
				out[n++] = '\\';
				continue;
			case '/':
				out[n++] = '/';
				continue;
			case 'b':
				out[n++] = '\b';
				continue;
			case 'f':
				out[n++] = '\f';
				continue;
			case 'n':
				out[n++] = '\n';
				continue;
			case 'r':
				out[n++] = '\r';
				continue;
			case 't':
				out[n++] = '\t';
				continue;
			case 'u':
				break;
			default:
				return -1;
		}
		/* \uXXXX (6 bytes in, at most 3 out), or a surrogate pair (12 in, 4 out) */
		if (i + 4 > len || (cp = Hex4(raw, i)) == UINT32_MAX)
			return -1;
		i += 4;
		if (cp >= 0xDC00 && cp <= 0xDFFF)
			return -1;
		if (cp >= 0xD800 && cp <= 0xDBFF)
		{
			uint32_t	lo;

			if (i + 6 > len || raw[i] != '\\' || raw[i + 1] != 'u' ||
				(lo = Hex4(raw, i + 2)) == UINT32_MAX || lo < 0xDC00 || lo > 0xDFFF)
				return -1;
			i += 6;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		}
		PutUtf8(out, &n, cp);
	}
	*out_len = n;
	return 0;
}
