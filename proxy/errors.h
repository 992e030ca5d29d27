/* errors.h — SQLSTATE to HTTP status mapping and JSON error bodies */
#ifndef PAY_PROXY_ERRORS_H
#define PAY_PROXY_ERRORS_H

#include <libpq-fe.h>

#include "pool.h"
#include "response.h"

/*
 * Fill r with status and {"error":{"code":code,"sqlstate":sqlstate,
 * "field":field,"message":message}}; a NULL sqlstate or field is JSON null.
 */
void		ErrorResponseFull(ProxyResponse *r, unsigned status, const char *code, const char *sqlstate,
							  const char *field, const char *message);

/* The same with sqlstate and field null: the proxy's own refusals */
void		ErrorResponse(ProxyResponse *r, unsigned status, const char *code, const char *message);

/* Fill r from a failed SQL call, mapped by SQLSTATE; internals go to the log, never to the client */
void		ErrorFromResult(ProxyResponse *r, const PGresult *res, const char *route);

/* Fill r for a call that never produced a result (pool busy, database down, timeout) */
void		ErrorFromPool(ProxyResponse *r, PoolStatus status);

/* Seconds for Retry-After from an error's DETAIL: the integer it holds, else 1 */
long		RetryAfterFromDetail(const char *detail);

#endif
