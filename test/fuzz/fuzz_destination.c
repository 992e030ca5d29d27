/*
 * fuzz_destination.c — libFuzzer harness for proto/destination.c: any text
 * is classified without a crash, the same way whatever room the caller gives
 * the host, with a host whenever the URL is understood; and an address
 * written into a URL (dotted quad, bracketed IPv6, IPv4-mapped) is
 * classified as the address itself is.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "destination.h"

/* The input as a URL: one class for every size of the host buffer. */
static void
CheckText(const uint8_t *data, size_t size)
{
	char	   *text = malloc(size + 1);
	char		host[DESTINATION_HOST_MAX];
	char		tiny[4];
	DestinationClass c;

	memcpy(text, data, size);
	text[size] = '\0';
	c = destination_check_url(text, host, sizeof(host));
	if (destination_check_url(text, tiny, sizeof(tiny)) != c || destination_check_url(text, NULL, 0) != c)
		abort();
	if (strlen(host) >= sizeof(host) || strlen(tiny) >= sizeof(tiny))
		abort();
	if (c != DESTINATION_MALFORMED && host[0] == '\0')
		abort();
	if (destination_class_text(c) == NULL)
		abort();
	free(text);
}

/* The first bytes as addresses, written into URLs. */
static void
CheckAddresses(const uint8_t *data, size_t size)
{
	uint8_t		v6[16] = {0};
	uint8_t		mapped[16] = {0};
	char		text[INET6_ADDRSTRLEN];
	char		url[128];
	char		host[DESTINATION_HOST_MAX];

	if (size < 4)
		return;
	snprintf(url, sizeof(url), "http://%u.%u.%u.%u:80/", data[0], data[1], data[2], data[3]);
	if (destination_check_url(url, host, sizeof(host)) != destination_classify_ipv4(data))
		abort();
	memcpy(mapped + 12, data, 4);
	mapped[10] = mapped[11] = 0xff;
	if (destination_classify_ipv6(mapped) != destination_classify_ipv4(data))
		abort();
	if (size < 16)
		return;
	memcpy(v6, data, 16);
	inet_ntop(AF_INET6, v6, text, sizeof(text));
	snprintf(url, sizeof(url), "https://user@[%s]/", text);
	if (destination_check_url(url, host, sizeof(host)) != destination_classify_ipv6(v6))
		abort();
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CheckText(data, size);
	CheckAddresses(data, size);
	return 0;
}
