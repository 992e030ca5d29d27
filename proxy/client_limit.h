/* client_limit.h — a token bucket per client address, before any SQL */
#ifndef PAY_PROXY_CLIENT_LIMIT_H
#define PAY_PROXY_CLIENT_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

/* per_second 0: no limit.  Call once, before the daemon starts. */
void		ClientLimitSetup(long per_second, long burst);

/*
 * Take a token of the connection's client address: true if taken; false,
 * with the whole seconds until the next token in *retry_after_s, if not.
 */
bool		ClientLimitTake(struct MHD_Connection *connection, long *retry_after_s);

#endif
