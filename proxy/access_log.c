/*
 * access_log.c — one line per request on stderr, and the proxy's own
 * messages: logfmt (--log-format=text, the default) or one JSON object per
 * line (--log-format=json).  Lines hold the path, never the query, headers
 * or body: no secret, signature or account data reaches the log.
 */
#include "access_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048
#define LOG_VALUE_MAX 512

static bool log_json = false;

bool
AccessLogSetFormat(const char *format)
{
	if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0)
		return false;
	log_json = strcmp(format, "json") == 0;
	return true;
}

typedef struct LineBuf
{
	char		data[LOG_LINE_MAX];
	size_t		len;
} LineBuf;

/* Append raw text, truncating at the line limit (keeping room for the newline) */
static void
LineAppend(LineBuf *line, const char *s, size_t len)
{
	size_t		room = sizeof(line->data) - 1 - line->len;

	if (len > room)
		len = room;
	memcpy(line->data + line->len, s, len);
	line->len += len;
}

/* Append a NUL-terminated string as is */
static void
LineAppendStr(LineBuf *line, const char *s)
{
	LineAppend(line, s, strlen(s));
}

/* Append the current UTC time as 2025-01-31T12:34:56.789Z */
static void
LineAppendTime(LineBuf *line)
{
	struct timespec now;
	struct tm	tm;
	char		buf[40];
	size_t		n;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", now.tv_nsec / 1000000);
	LineAppendStr(line, buf);
}

/* True if byte c can appear unquoted in a logfmt value */
static int
IsPlainByte(unsigned char c)
{
	return c > 0x20 && c < 0x7F && c != '"' && c != '\\' && c != '=';
}

/* Append s escaped so that it can never break the line: \xHH for control and non-ASCII bytes */
static void
LineAppendEscaped(LineBuf *line, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	int			plain = len > 0;
	size_t		i;

	if (len > LOG_VALUE_MAX)
		len = LOG_VALUE_MAX;
	for (i = 0; plain && i < len; i++)
		plain = IsPlainByte(p[i]);
	if (plain)
	{
		LineAppend(line, s, len);
		return;
	}
	LineAppend(line, "\"", 1);
	for (i = 0; i < len; i++)
	{
		char		esc[5];

		if (p[i] == '"' || p[i] == '\\')
		{
			esc[0] = '\\';
			esc[1] = (char) p[i];
			LineAppend(line, esc, 2);
		}
		else if (p[i] < 0x20 || p[i] >= 0x7F)
		{
			snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
			LineAppend(line, esc, 4);
		}
		else
			LineAppend(line, (const char *) p + i, 1);
	}
	LineAppend(line, "\"", 1);
}

/* Append " key=value" with the value escaped */
static void
LineAppendField(LineBuf *line, const char *key, const char *value)
{
	LineAppend(line, " ", 1);
	LineAppendStr(line, key);
	LineAppend(line, "=", 1);
	if (value == NULL)
		value = "-";
	LineAppendEscaped(line, value, strlen(value));
}

/* Terminate the line and write it with a single write(2), so lines never interleave */
static void
LineFlush(LineBuf *line)
{
	ssize_t		n;

	line->data[line->len++] = '\n';
	do
		n = write(STDERR_FILENO, line->data, line->len);
	while (n < 0 && errno == EINTR);
}

/* Append s as a JSON string; control and non-ASCII bytes as \u00XX, so that any bytes make valid JSON */
static void
LineAppendJsonString(LineBuf *line, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;

	if (len > LOG_VALUE_MAX)
		len = LOG_VALUE_MAX;
	LineAppend(line, "\"", 1);
	for (size_t i = 0; i < len; i++)
	{
		char		esc[8];

		if (p[i] == '"' || p[i] == '\\')
		{
			esc[0] = '\\';
			esc[1] = (char) p[i];
			LineAppend(line, esc, 2);
		}
		else if (p[i] < 0x20 || p[i] >= 0x7F)
		{
			snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
			LineAppend(line, esc, 6);
		}
		else
			LineAppend(line, (const char *) p + i, 1);
	}
	LineAppend(line, "\"", 1);
}

/* Append ,"key":"value" (null when value is NULL) */
static void
JsonField(LineBuf *line, const char *key, const char *value)
{
	LineAppend(line, ",\"", 2);
	LineAppendStr(line, key);
	LineAppend(line, "\":", 2);
	if (value == NULL)
		LineAppendStr(line, "null");
	else
		LineAppendJsonString(line, value, strlen(value));
}

/* Append ,"key":number */
static void
JsonNumber(LineBuf *line, const char *key, long long value)
{
	char		num[48];

	snprintf(num, sizeof(num), ",\"%s\":%lld", key, value);
	LineAppendStr(line, num);
}

/* {"time":"...","level":"...","msg":"..." — the start of every JSON line */
static void
JsonStart(LineBuf *line, const char *level, const char *msg, size_t msg_len)
{
	line->len = 0;
	LineAppendStr(line, "{\"time\":\"");
	LineAppendTime(line);
	LineAppendStr(line, "\",\"level\":");
	LineAppendJsonString(line, level, strlen(level));
	LineAppendStr(line, ",\"msg\":");
	LineAppendJsonString(line, msg, msg_len);
}

/* The access-log line as one JSON object */
static void
AccessLogWriteJson(const AccessLogEntry *entry)
{
	LineBuf		line;

	JsonStart(&line, "info", "access", 6);
	JsonField(&line, "trace_id", entry->trace_id);
	JsonField(&line, "route", entry->route);
	JsonField(&line, "method", entry->method);
	JsonField(&line, "path", entry->path);
	JsonNumber(&line, "status", entry->status);
	JsonNumber(&line, "bytes", (long long) entry->bytes);
	JsonNumber(&line, "duration_ms", entry->duration_ms);
	JsonField(&line, "remote", entry->remote);
	JsonField(&line, "code", entry->code);
	JsonField(&line, "sqlstate", entry->sqlstate);
	LineAppend(&line, "}", 1);
	LineFlush(&line);
}

/* Write one access-log line: time, remote, method, path, status, bytes, duration */
void
AccessLogWrite(const AccessLogEntry *entry)
{
	LineBuf		line;
	char		num[32];

	if (log_json)
	{
		AccessLogWriteJson(entry);
		return;
	}

	line.len = 0;
	LineAppendTime(&line);
	LineAppendStr(&line, " access");
	LineAppendField(&line, "remote", entry->remote);
	LineAppendField(&line, "method", entry->method);
	LineAppendField(&line, "path", entry->path);
	snprintf(num, sizeof(num), "%u", entry->status);
	LineAppendField(&line, "status", num);
	snprintf(num, sizeof(num), "%zu", entry->bytes);
	LineAppendField(&line, "bytes", num);
	snprintf(num, sizeof(num), "%ld", entry->duration_ms);
	LineAppendField(&line, "duration_ms", num);
	if (entry->code != NULL)
		LineAppendField(&line, "code", entry->code);
	LineFlush(&line);
}

/* Write one "<time> <level> <message>" line; control characters in the message are escaped */
void
LogMessage(const char *level, const char *fmt,...)
{
	LineBuf		line;
	char		msg[LOG_LINE_MAX];
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t) n >= sizeof(msg))
		n = sizeof(msg) - 1;
	if (log_json)
	{
		JsonStart(&line, level, msg, (size_t) n);
		LineAppend(&line, "}", 1);
		LineFlush(&line);
		return;
	}

	line.len = 0;
	LineAppendTime(&line);
	LineAppend(&line, " ", 1);
	LineAppendStr(&line, level);
	LineAppend(&line, " ", 1);
	for (int i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) msg[i];
		char		esc[5];

		if (c < 0x20 || c == 0x7F)
		{
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			LineAppend(&line, esc, 4);
		}
		else
			LineAppend(&line, msg + i, 1);
	}
	LineFlush(&line);
}
