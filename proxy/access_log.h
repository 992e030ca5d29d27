/* access_log.h — one line per request on stderr, and the proxy's own messages */
#ifndef PAY_PROXY_ACCESS_LOG_H
#define PAY_PROXY_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct AccessLogEntry
{
	const char *remote;			/* client address, "ip:port" */
	const char *method;
	const char *path;			/* decoded URL path, never the query or body */
	unsigned	status;			/* 0 when the connection closed without a response */
	size_t		bytes;			/* response body bytes */
	long		duration_ms;
	const char *code;			/* the proxy's error code, or NULL */
	const char *route;			/* the route's name, "none" when no route matched */
	const char *sqlstate;		/* of a failed SQL call, or NULL */
	const char *trace_id;		/* W3C trace id, or NULL */
} AccessLogEntry;

/* "text" (logfmt, the default) or "json" (one object per line); false for anything else */
bool		AccessLogSetFormat(const char *format);

/* Write one access-log line: time, remote, method, path, status, bytes, duration */
void		AccessLogWrite(const AccessLogEntry *entry);

/* Write one "<time> <level> <message>" line; control characters in the message are escaped */
void		LogMessage(const char *level, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

#endif
