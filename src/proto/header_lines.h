/*
 * header_lines.h — the header lines of an HTTP answer as the dispatcher keeps
 * them ("Name: value" lines, CRLF or LF), one line at a time.  Plain C.
 */
#ifndef PAY_HEADER_LINES_H
#define PAY_HEADER_LINES_H

#include <stdbool.h>
#include <stddef.h>

/* One header line: the name as written (up to the colon) and the value without surrounding blanks. */
typedef struct HeaderLine
{
	const char *name;
	size_t		name_len;
	const char *value;
	size_t		value_len;
} HeaderLine;

/*
 * The next header line at *cursor (a NUL-terminated block), advancing
 * *cursor past it; false at the end.  Lines without a colon, or with
 * nothing before it, are skipped.
 */
extern bool header_lines_next(const char **cursor, HeaderLine *out);

/* Is this line's name `name`, compared without regard to ASCII case? */
extern bool header_line_named(const HeaderLine *line, const char *name);

#endif
