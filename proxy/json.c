/* json.c — a growable output buffer and JSON string escaping (RFC 8259) */
#include "json.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define JSON_DEFAULT_MAX_LEN ((size_t) 16 * 1024 * 1024)

/* An empty buffer (no allocation until the first append) */
void
JsonBufInit(JsonBuf *buf)
{
	memset(buf, 0, sizeof(*buf));
}

/* Release the buffer's memory */
void
JsonBufFree(JsonBuf *buf)
{
	free(buf->data);
	JsonBufInit(buf);
}

/* Make room for extra more bytes plus the terminating NUL */
static bool
Reserve(JsonBuf *buf, size_t extra)
{
	size_t		max_len = buf->max_len ? buf->max_len : JSON_DEFAULT_MAX_LEN;
	size_t		need;
	size_t		cap;
	char	   *data;

	if (buf->failed)
		return false;
	if (extra > max_len || buf->len > max_len - extra)
	{
		buf->failed = true;
		return false;
	}
	need = buf->len + extra + 1;
	if (need <= buf->cap)
		return true;
	cap = buf->cap ? buf->cap : 256;
	while (cap < need)
		cap *= 2;
	data = realloc(buf->data, cap);
	if (data == NULL)
	{
		buf->failed = true;
		return false;
	}
	buf->data = data;
	buf->cap = cap;
	return true;
}

/* Append raw bytes (no escaping) */
void
JsonBufAppend(JsonBuf *buf, const char *s, size_t len)
{
	if (!Reserve(buf, len))
		return;
	memcpy(buf->data + buf->len, s, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

/* Append a NUL-terminated string without escaping */
void
JsonBufAppendStr(JsonBuf *buf, const char *s)
{
	JsonBufAppend(buf, s, strlen(s));
}

/* Append the escape for one ASCII byte, or the byte itself */
static void
AppendAsciiEscaped(JsonBuf *buf, unsigned char c)
{
	static const char hexdigits[] = "0123456789abcdef";
	char		esc[7];

	switch (c)
	{
		case '"':
			JsonBufAppend(buf, "\\\"", 2);
			return;
		case '\\':
			JsonBufAppend(buf, "\\\\", 2);
			return;
		case '\b':
			JsonBufAppend(buf, "\\b", 2);
			return;
		case '\f':
			JsonBufAppend(buf, "\\f", 2);
			return;
		case '\n':
			JsonBufAppend(buf, "\\n", 2);
			return;
		case '\r':
			JsonBufAppend(buf, "\\r", 2);
			return;
		case '\t':
			JsonBufAppend(buf, "\\t", 2);
			return;
		default:
			break;
	}
	if (c < 0x20 || c == 0x7F)
	{
		memcpy(esc, "\\u00", 4);
		esc[4] = hexdigits[c >> 4];
		esc[5] = hexdigits[c & 0xF];
		JsonBufAppend(buf, esc, 6);
		return;
	}
	esc[0] = (char) c;
	JsonBufAppend(buf, esc, 1);
}

/* Append the escaped contents of a JSON string; lossy chooses U+FFFD over failure for invalid bytes */
static bool
AppendEscaped(JsonBuf *buf, const char *s, size_t len, bool lossy)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0;

	while (i < len)
	{
		size_t		n;

		if (p[i] < 0x80)
		{
			if (p[i] == 0 && !lossy)
				return false;	/* PostgreSQL's jsonb cannot hold \u0000 as text */
			if (p[i] == 0)
				JsonBufAppend(buf, "\xEF\xBF\xBD", 3);
			else
				AppendAsciiEscaped(buf, p[i]);
			i++;
			continue;
		}
		n = Utf8SequenceLength(p + i, len - i);
		if (n == 0)
		{
			if (!lossy)
				return false;
			JsonBufAppend(buf, "\xEF\xBF\xBD", 3);
			i++;
			continue;
		}
		JsonBufAppend(buf, s + i, n);
		i += n;
	}
	return !buf->failed;
}

/* Append s[0..len) escaped for the inside of a JSON string (no quotes); false if not valid UTF-8 or holds NUL */
bool
JsonBufAppendEscaped(JsonBuf *buf, const char *s, size_t len)
{
	return AppendEscaped(buf, s, len, false);
}

/* Append s[0..len) as a quoted JSON string; false (nothing usable) if s is not valid UTF-8 or holds NUL */
bool
JsonBufAppendString(JsonBuf *buf, const char *s, size_t len)
{
	bool		ok;

	JsonBufAppend(buf, "\"", 1);
	ok = AppendEscaped(buf, s, len, false);
	JsonBufAppend(buf, "\"", 1);
	return ok && !buf->failed;
}

/* Append s as a quoted JSON string, replacing invalid UTF-8 bytes by U+FFFD */
void
JsonBufAppendStringLossy(JsonBuf *buf, const char *s, size_t len)
{
	JsonBufAppend(buf, "\"", 1);
	AppendEscaped(buf, s, len, true);
	JsonBufAppend(buf, "\"", 1);
}
