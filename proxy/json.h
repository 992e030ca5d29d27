/* json.h — a growable output buffer and JSON string escaping */
#ifndef PAY_PROXY_JSON_H
#define PAY_PROXY_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef struct JsonBuf
{
	char	   *data;			/* NUL-terminated once anything was appended */
	size_t		len;
	size_t		cap;
	size_t		max_len;		/* hard limit; 0 means the default of 16 MiB */
	bool		failed;			/* out of memory or over max_len: content unusable */
} JsonBuf;

/* An empty buffer (no allocation until the first append) */
void		JsonBufInit(JsonBuf *buf);

/* Release the buffer's memory */
void		JsonBufFree(JsonBuf *buf);

/* Append raw bytes (no escaping) */
void		JsonBufAppend(JsonBuf *buf, const char *s, size_t len);

/* Append a NUL-terminated string without escaping */
void		JsonBufAppendStr(JsonBuf *buf, const char *s);

/* Append s[0..len) escaped for the inside of a JSON string (no quotes); false if not valid UTF-8 or holds NUL */
bool		JsonBufAppendEscaped(JsonBuf *buf, const char *s, size_t len);

/* Append s[0..len) as a quoted JSON string; false (nothing usable) if s is not valid UTF-8 or holds NUL */
bool		JsonBufAppendString(JsonBuf *buf, const char *s, size_t len);

/* Append s as a quoted JSON string, replacing invalid UTF-8 bytes by U+FFFD */
void		JsonBufAppendStringLossy(JsonBuf *buf, const char *s, size_t len);

#endif
