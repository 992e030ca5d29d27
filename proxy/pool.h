/* pool.h — a bounded pool of libpq connections with deadlines */
#ifndef PAY_PROXY_POOL_H
#define PAY_PROXY_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

typedef struct PoolSettings
{
	const char *dsn;			/* libpq connection string */
	int			size;			/* connections, at most */
	long		wait_ms;		/* how long to wait for a free connection */
	long		connect_timeout_ms; /* one connection attempt */
	long		statement_timeout_ms;	/* set on every connection */
} PoolSettings;

typedef enum PoolStatus
{
	POOL_OK,					/* *result holds the result: rows or an SQL error */
	POOL_BUSY,					/* no connection became free in time */
	POOL_UNAVAILABLE,			/* database unreachable or connection lost */
	POOL_TIMEOUT				/* the request's deadline passed during the call */
} PoolStatus;

/* Set the pool up (no connection is opened yet); false if out of memory */
bool		PoolInit(const PoolSettings *settings);

/* Run one parameterized statement (text parameters and results) before deadline_ms (ClockNowMs) */
PoolStatus	PoolQuery(const char *sql, int nparams, const char *const *values,
					  int64_t deadline_ms, PGresult **result);

/* Close every idle connection and refuse further queries */
void		PoolClose(void);

#endif
