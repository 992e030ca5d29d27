/*
 * header_lines.c — the header lines of an HTTP answer, one at a time (see
 * header_lines.h).  Both readers of an answer's headers use it: the one
 * that hands them to SQL as a jsonb object (http_headers.c) and the one
 * that looks for Retry-After (dispatcher_limit.c).  The block comes from
 * the PSP: nothing here reads past its NUL or trusts its shape.
 */
#include "header_lines.h"

#include <string.h>

static bool
Blank(char c)
{
	return c == ' ' || c == '\t';
}

bool
header_lines_next(const char **cursor, HeaderLine *out)
{
	const char *line = *cursor;

	while (line != NULL && *line != '\0')
	{
		const char *nl = strchr(line, '\n');
		const char *next = nl ? nl + 1 : line + strlen(line);
		const char *end = nl ? nl : next;
		const char *colon = memchr(line, ':', (size_t) (end - line));

		if (end > line && end[-1] == '\r')
			end--;
		if (colon != NULL && colon > line && colon < end)
		{
			const char *v = colon + 1;
			const char *e = end;

			while (v < e && Blank(*v))
				v++;
			while (e > v && Blank(e[-1]))
				e--;
			out->name = line;
			out->name_len = (size_t) (colon - line);
			out->value = v;
			out->value_len = (size_t) (e - v);
			*cursor = next;
			return true;
		}
		line = next;
	}
	*cursor = line;
	return false;
}

bool
header_line_named(const HeaderLine *line, const char *name)
{
	size_t		len = strlen(name);

	if (line->name_len != len)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		a = line->name[i],
					b = name[i];

		if (a >= 'A' && a <= 'Z')
			a += 'a' - 'A';
		if (b >= 'A' && b <= 'Z')
			b += 'a' - 'A';
		if (a != b)
			return false;
	}
	return true;
}
