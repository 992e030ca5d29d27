/* access_log.h — one line per request on stderr, and the proxy's own messages */
#ifndef PAY_PROXY_ACCESS_LOG_H
#define PAY_PROXY_ACCESS_LOG_H

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
} AccessLogEntry;

/* Write one access-log line: time, remote, method, path, status, bytes, duration */
void		AccessLogWrite(const AccessLogEntry *entry);

/* Write one "<time> <level> <message>" line; control characters in the message are escaped */
void		LogMessage(const char *level, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

#endif
