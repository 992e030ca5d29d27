/* peer.h — the client address of an MHD connection, for log lines */
#ifndef PAY_PROXY_PEER_H
#define PAY_PROXY_PEER_H

#include <netdb.h>
#include <stddef.h>

#include <microhttpd.h>

/* Room for "[v6addr]:port" */
#define PEER_ADDRESS_MAX (INET6_ADDRSTRLEN + 16)

/* "ip:port" (or "[ip]:port") of the connection's client, or "-" if unknown */
void		PeerAddress(struct MHD_Connection *connection, char *out, size_t out_size);

#endif
