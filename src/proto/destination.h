/*
 * destination.h — which outbound destinations pay may send to.  Plain C, no
 * postgres.h.
 *
 * A merchant's notify_url and a gateway's base_url are written by people; a
 * request to them leaves from inside the database server.  Aimed at the
 * server itself (loopback), the cloud's metadata service (link-local), or the
 * private network behind it, such a URL would let whoever sets it probe and
 * talk to services that trust their network.  This module says what an
 * address or a URL's host is, so the callers can refuse the private classes:
 * at set time on the URL's literal host, at send time on every address a
 * host name resolves to.
 */
#ifndef PAY_DESTINATION_H
#define PAY_DESTINATION_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

typedef enum DestinationClass
{
	DESTINATION_PUBLIC = 0,		/* may be sent to */
	DESTINATION_LOOPBACK,		/* 127.0.0.0/8, ::1 */
	DESTINATION_LINK_LOCAL,		/* 169.254.0.0/16, fe80::/10 */
	DESTINATION_PRIVATE,		/* 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fec0::/10 */
	DESTINATION_UNSPECIFIED,	/* 0.0.0.0/8, :: */
	DESTINATION_LOCALHOST,		/* the name localhost, or a name under it */
	DESTINATION_NUMERIC_FORM,	/* a host that reads as a number but is not a dotted quad */
	DESTINATION_MALFORMED		/* not an http(s) URL with a host this parser accepts */
} DestinationClass;

/* Longest host name kept (DNS allows 253 characters). */
#define DESTINATION_HOST_MAX	256

/*
 * Whether a class is one pay.allow_private_destinations lets through: the
 * address classes and localhost.  Numeric forms and malformed URLs are never
 * accepted (resolvers disagree on what they mean).
 */
extern int	destination_class_is_private(DestinationClass c);

/* What a class is, for messages: "a loopback address", ... */
extern const char *destination_class_text(DestinationClass c);

/* The class of an IPv4 address (network byte order) and of an IPv6 address. */
extern DestinationClass destination_classify_ipv4(const uint8_t addr[4]);
extern DestinationClass destination_classify_ipv6(const uint8_t addr[16]);

/* The class of an AF_INET or AF_INET6 socket address; MALFORMED for any other family. */
extern DestinationClass destination_classify_sockaddr(const struct sockaddr *sa);

/*
 * The class of an http(s) URL's host: its literal address if it is one,
 * LOCALHOST for localhost names, PUBLIC for any other host name (its
 * addresses are checked when it is resolved).  host receives the host as
 * written (without brackets), or "" when the URL is malformed.
 */
extern DestinationClass destination_check_url(const char *url, char *host, size_t host_size);

#endif
