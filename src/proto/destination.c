/*
 * destination.c — classifying outbound destinations (see destination.h).
 *
 * The URL parser here is deliberately stricter than libcurl's: whatever it
 * accepts, curl reads the same host from.  Two '@' in the authority, a
 * backslash, a percent sign or a byte outside ASCII in the host are refused
 * rather than guessed at, and a host whose last label starts with a digit
 * must be a canonical dotted quad: resolvers read 2130706433, 0x7f.1,
 * 0177.0.0.1 and 127.1 as 127.0.0.1 (inet_aton's forms), so such a host could
 * hide an address the check would not see.
 */
#include "destination.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

int
destination_class_is_private(DestinationClass c)
{
	return c == DESTINATION_LOOPBACK || c == DESTINATION_LINK_LOCAL || c == DESTINATION_PRIVATE ||
		c == DESTINATION_UNSPECIFIED || c == DESTINATION_LOCALHOST;
}

const char *
destination_class_text(DestinationClass c)
{
	switch (c)
	{
		case DESTINATION_PUBLIC:
			return "a public address";
		case DESTINATION_LOOPBACK:
			return "a loopback address";
		case DESTINATION_LINK_LOCAL:
			return "a link-local address";
		case DESTINATION_PRIVATE:
			return "a private network address";
		case DESTINATION_UNSPECIFIED:
			return "the unspecified address";
		case DESTINATION_LOCALHOST:
			return "the local host";
		case DESTINATION_NUMERIC_FORM:
			return "a number that is not a dotted-quad IPv4 address";
		case DESTINATION_MALFORMED:
			break;
	}
	return "not an http or https URL with a valid host";
}

DestinationClass
destination_classify_ipv4(const uint8_t a[4])
{
	if (a[0] == 0)
		return DESTINATION_UNSPECIFIED;	/* 0.0.0.0/8: "this host" on Linux */
	if (a[0] == 127)
		return DESTINATION_LOOPBACK;
	if (a[0] == 169 && a[1] == 254)
		return DESTINATION_LINK_LOCAL;	/* cloud metadata services live here */
	if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168))
		return DESTINATION_PRIVATE;
	if (a[0] == 100 && (a[1] & 0xc0) == 64)
		return DESTINATION_PRIVATE;	/* 100.64/10, shared (CGNAT); some clouds' metadata too */
	return DESTINATION_PUBLIC;
}

/* Are the first n bytes of a all zero? */
static int
Zeros(const uint8_t *a, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (a[i] != 0)
			return 0;
	return 1;
}

DestinationClass
destination_classify_ipv6(const uint8_t a[16])
{
	static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

	if (Zeros(a, 16))
		return DESTINATION_UNSPECIFIED;
	if (Zeros(a, 15) && a[15] == 1)
		return DESTINATION_LOOPBACK;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return DESTINATION_LINK_LOCAL;
	if ((a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0))
		return DESTINATION_PRIVATE;	/* unique local fc00::/7, old site-local fec0::/10 */
	/* forms that carry an IPv4 address: mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 */
	if (Zeros(a, 10) && a[10] == 0xff && a[11] == 0xff)
		return destination_classify_ipv4(a + 12);
	if (Zeros(a, 12) || memcmp(a, nat64, sizeof(nat64)) == 0)
		return destination_classify_ipv4(a + 12);
	if (a[0] == 0x20 && a[1] == 0x02)
		return destination_classify_ipv4(a + 2);	/* 6to4 2002:a.b.c.d::/48 */
	return DESTINATION_PUBLIC;
}

DestinationClass
destination_classify_sockaddr(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
	{
		const struct sockaddr_in *in = (const struct sockaddr_in *) sa;

		return destination_classify_ipv4((const uint8_t *) &in->sin_addr);
	}
	if (sa->sa_family == AF_INET6)
	{
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;

		return destination_classify_ipv6((const uint8_t *) &in6->sin6_addr);
	}
	return DESTINATION_MALFORMED;
}

/* Does s start with prefix, ignoring ASCII case? */
static int
StartsWithNoCase(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++)
	{
		char		c = *s;

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if (c != *prefix)
			return 0;
	}
	return 1;
}

/* Is [p, end) empty or only decimal digits (at most 5)? */
static int
IsPort(const char *p, const char *end)
{
	if (end - p > 5)
		return 0;
	for (; p < end; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

/*
 * Parse a canonical dotted quad: four decimal parts 0..255 without leading
 * zeros.  1 on success.
 */
static int
ParseDottedQuad(const char *s, uint8_t out[4])
{
	int			part;

	for (part = 0; part < 4; part++)
	{
		int			value = 0;
		int			digits = 0;

		while (*s >= '0' && *s <= '9')
		{
			if (digits > 0 && value == 0)
				return 0;		/* a leading zero: octal to inet_aton */
			value = value * 10 + (*s - '0');
			if (value > 255)
				return 0;
			digits++;
			s++;
		}
		if (digits == 0)
			return 0;
		out[part] = (uint8_t) value;
		if (part < 3 && *s++ != '.')
			return 0;
	}
	return *s == '\0';
}

/*
 * Is name (lower case, no trailing dot) a DNS-style host name: labels of
 * letters, digits, '-' and '_', none empty?
 */
static int
IsHostName(const char *name)
{
	const char *p;
	int			label = 0;

	if (*name == '\0' || strlen(name) > 253)
		return 0;
	for (p = name; *p; p++)
	{
		char		c = *p;

		if (c == '.')
		{
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
		label++;
	}
	return label > 0;
}

/* The class of a host name or IPv4 literal (lower case, trailing dot removed). */
static DestinationClass
ClassifyName(const char *name)
{
	const char *last = strrchr(name, '.');
	size_t		len = strlen(name);
	uint8_t		v4[4];

	if (!IsHostName(name))
		return DESTINATION_MALFORMED;
	if (strcmp(name, "localhost") == 0 ||
		(len > 10 && strcmp(name + len - 10, ".localhost") == 0))
		return DESTINATION_LOCALHOST;
	last = last ? last + 1 : name;
	if (*last >= '0' && *last <= '9')
		return ParseDottedQuad(name, v4) ? destination_classify_ipv4(v4) : DESTINATION_NUMERIC_FORM;
	return DESTINATION_PUBLIC;
}

/* Copy [p, end) into out (size > 0), truncated. */
static void
CopyOut(const char *p, const char *end, char *out, size_t size)
{
	size_t		n = (size_t) (end - p);

	if (n >= size)
		n = size - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

DestinationClass
destination_check_url(const char *url, char *host, size_t host_size)
{
	char		name[DESTINATION_HOST_MAX];
	const char *auth;
	const char *end;
	const char *at;
	const char *h;
	const char *hend;
	const char *p;
	size_t		i;
	size_t		len;

	if (host_size > 0)
		host[0] = '\0';
	if (StartsWithNoCase(url, "http://"))
		auth = url + 7;
	else if (StartsWithNoCase(url, "https://"))
		auth = url + 8;
	else
		return DESTINATION_MALFORMED;
	end = auth + strcspn(auth, "/?#");

	/* userinfo@: one '@' at most, so every parser finds the same host */
	at = NULL;
	for (p = auth; p < end; p++)
	{
		if (*p == '\\' || (unsigned char) *p <= ' ' || (unsigned char) *p >= 0x7f)
			return DESTINATION_MALFORMED;
		if (*p == '@')
		{
			if (at != NULL)
				return DESTINATION_MALFORMED;
			at = p;
		}
	}
	h = at ? at + 1 : auth;

	if (*h == '[')
	{
		uint8_t		v6[16];

		hend = memchr(h, ']', (size_t) (end - h));
		if (hend == NULL || hend - h - 1 >= (long) sizeof(name))
			return DESTINATION_MALFORMED;
		CopyOut(h + 1, hend, name, sizeof(name));
		if (host_size > 0)
			CopyOut(h + 1, hend, host, host_size);
		/* a zone id (%25eth0) fails inet_pton: refused with the rest */
		if (inet_pton(AF_INET6, name, v6) != 1)
			return DESTINATION_MALFORMED;
		if (hend + 1 != end && (hend[1] != ':' || !IsPort(hend + 2, end)))
			return DESTINATION_MALFORMED;
		return destination_classify_ipv6(v6);
	}

	hend = memchr(h, ':', (size_t) (end - h));
	if (hend == NULL)
		hend = end;
	else if (!IsPort(hend + 1, end))
		return DESTINATION_MALFORMED;
	len = (size_t) (hend - h);
	if (len == 0 || len >= sizeof(name))
		return DESTINATION_MALFORMED;
	if (host_size > 0)
		CopyOut(h, hend, host, host_size);
	for (i = 0; i < len; i++)
		name[i] = (h[i] >= 'A' && h[i] <= 'Z') ? (char) (h[i] - 'A' + 'a') : h[i];
	name[len] = '\0';
	if (name[len - 1] == '.')
		name[--len] = '\0';		/* the root: "localhost." is localhost */
	return ClassifyName(name);
}
