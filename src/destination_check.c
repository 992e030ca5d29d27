/*
 * destination_check.c — refusing outbound destinations on the server's own
 * machine or network (classification: src/proto/destination.c).
 *
 * Checked twice: when a notify_url or base_url is set (pay._check_destination,
 * on the URL's literal host), and by the dispatcher on every address a host
 * name resolves to just before it connects (DestinationAddressRefused), so
 * DNS cannot bring back what the first check refused.  The superuser-only
 * setting pay.allow_private_destinations lets them through, for set-ups whose
 * PSPs or merchants really are on a private network (and for tests).
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "destination.h"
#include "dispatcher.h"
#include "pay.h"

bool		allow_private_destinations = false;

/* Module set-up, from _PG_init. */
void
DestinationInit(void)
{
	DefineCustomBoolVariable("pay.allow_private_destinations",
							 "Whether notify_url and base_url may point to loopback, link-local or private addresses.",
							 "Off, such URLs are refused when set, and the dispatcher refuses to connect to such an "
							 "address whatever name resolved to it (a dead letter).",
							 &allow_private_destinations, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
}

/*
 * pay._check_destination(field text, url text): 22023 naming the field when
 * url may not be sent to.  STRICT: a NULL url is no destination.
 */
PG_FUNCTION_INFO_V1(pay_check_destination);
Datum
pay_check_destination(PG_FUNCTION_ARGS)
{
	char	   *field = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char		host[DESTINATION_HOST_MAX];
	DestinationClass c = destination_check_url(url, host, sizeof(host));

	if (c == DESTINATION_PUBLIC || (allow_private_destinations && destination_class_is_private(c)))
		PG_RETURN_VOID();
	if (c == DESTINATION_MALFORMED)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an http or https URL with a valid host", field),
				 errhint("Write the host as a DNS name (an internationalised one in its xn-- form), a dotted-quad "
						 "IPv4 address or a bracketed IPv6 address; at most one @ and no backslash before the path.")));
	if (c == DESTINATION_NUMERIC_FORM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s host \"%s\" is %s", field, host, destination_class_text(c))));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must not point to %s: %s", field, destination_class_text(c), host),
			 errhint("A superuser can allow it with pay.allow_private_destinations.")));
	PG_RETURN_VOID();
}

/*
 * Called by the dispatcher (from a libcurl callback: no PostgreSQL errors)
 * before it opens a connection: false if the address may be connected to;
 * else true, and why in why.
 */
bool
DestinationAddressRefused(const struct sockaddr *sa, char *why, size_t why_size)
{
	DestinationClass c;
	char		text[INET6_ADDRSTRLEN];
	const void *addr;

	if (allow_private_destinations)
		return false;
	c = destination_classify_sockaddr(sa);
	if (c == DESTINATION_PUBLIC)
		return false;
	if (sa->sa_family == AF_INET)
		addr = &((const struct sockaddr_in *) sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		addr = &((const struct sockaddr_in6 *) sa)->sin6_addr;
	else
	{
		snprintf(why, why_size, "refused to connect: not an IP address (family %d)", (int) sa->sa_family);
		return true;
	}
	if (inet_ntop(sa->sa_family, addr, text, sizeof(text)) == NULL)
		strlcpy(text, "?", sizeof(text));
	snprintf(why, why_size,
			 "refused to connect to %s, %s (pay.allow_private_destinations is off): a permanent failure",
			 text, destination_class_text(c));
	return true;
}
