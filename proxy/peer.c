/* peer.c — the client address of an MHD connection, for log lines */
#include "peer.h"

#include <stdio.h>
#include <sys/socket.h>

/* "ip:port" (or "[ip]:port") of the connection's client, or "-" if unknown */
void
PeerAddress(struct MHD_Connection *connection, char *out, size_t out_size)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char		host[INET6_ADDRSTRLEN];
	char		port[8];
	socklen_t	len;

	snprintf(out, out_size, "-");
	if (info == NULL || info->client_addr == NULL)
		return;
	len = info->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
		: sizeof(struct sockaddr_in);
	if (getnameinfo(info->client_addr, len, host, sizeof(host), port, sizeof(port),
					NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return;
	if (info->client_addr->sa_family == AF_INET6)
		snprintf(out, out_size, "[%s]:%s", host, port);
	else
		snprintf(out, out_size, "%s:%s", host, port);
}
