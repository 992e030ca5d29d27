/*
 * http_guard.c — the options every outbound request of pay shares, set in
 * one place so that no path can send with weaker ones: TLS verification,
 * timeouts, a size cap, no redirects, and no connection to a loopback,
 * link-local or private address unless pay.allow_private_destinations is on
 * (checked on the resolved address as curl opens the socket, so no name can
 * lead there, and again on the connection a request is about to go out on,
 * which may be a kept-alive one opened while the setting was still on).
 * curl callbacks never raise PostgreSQL errors: they report through their
 * return values and the guard's buffer.
 */
#include "postgres.h"

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "dispatcher.h"
#include "http_guard.h"

/*
 * CURLOPT_OPENSOCKETFUNCTION: open the socket unless the address it is for
 * is refused (then curl tries the name's other addresses, and fails with
 * "couldn't connect" when none is left).
 */
static curl_socket_t
OpenSocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	HttpGuard  *g = (HttpGuard *) clientp;

	if (DestinationAddressRefused(&address->addr, g->refused, sizeof(g->refused)))
		return CURL_SOCKET_BAD;
	return socket(address->family, address->socktype, address->protocol);
}

/* CURLOPT_PREREQFUNCTION: the same check on the address of the connection a request goes out on. */
static int
CheckConnection(void *clientp, char *conn_primary_ip, char *conn_local_ip,
				int conn_primary_port, int conn_local_port)
{
	HttpGuard  *g = (HttpGuard *) clientp;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;

	memset(&in, 0, sizeof(in));
	memset(&in6, 0, sizeof(in6));
	if (inet_pton(AF_INET, conn_primary_ip, &in.sin_addr) == 1)
	{
		in.sin_family = AF_INET;
		if (DestinationAddressRefused((struct sockaddr *) &in, g->refused, sizeof(g->refused)))
			return CURL_PREREQFUNC_ABORT;
	}
	else if (inet_pton(AF_INET6, conn_primary_ip, &in6.sin6_addr) == 1)
	{
		in6.sin6_family = AF_INET6;
		if (DestinationAddressRefused((struct sockaddr *) &in6, g->refused, sizeof(g->refused)))
			return CURL_PREREQFUNC_ABORT;
	}
	else if (!allow_private_destinations)
	{
		snprintf(g->refused, sizeof(g->refused), "refused to send: the connection's address \"%s\" is not an IP address",
				 conn_primary_ip);
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

CURLcode
HttpGuardApply(CURL *e, HttpGuard *guard, const char *protocols, curl_off_t max_bytes)
{
	CURLcode	rc = CURLE_OK;

	guard->refused[0] = '\0';
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
	SET(CURLOPT_PROTOCOLS_STR, protocols);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (http_ca_file != NULL && http_ca_file[0] != '\0')
		SET(CURLOPT_CAINFO, http_ca_file);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long) http_connect_timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, (long) http_timeout_ms);
	SET(CURLOPT_MAXFILESIZE_LARGE, max_bytes);
	SET(CURLOPT_OPENSOCKETFUNCTION, OpenSocket);
	SET(CURLOPT_OPENSOCKETDATA, guard);
	SET(CURLOPT_PREREQFUNCTION, CheckConnection);
	SET(CURLOPT_PREREQDATA, guard);
#undef SET
	return rc;
}
