/*
 * fuzz_paypal_webhook.c — libFuzzer harness for the PayPal webhook headers
 * read before the signature is checked (src/proto/paypal_webhook.c):
 * PAYPAL-TRANSMISSION-TIME and PAYPAL-CERT-URL, both an attacker's to write.
 * Properties:
 *  - a time it accepts is 20 or more characters ending in Z, and reads as
 *    seconds between 0000 and 9999 (never negative past 1970 and a day);
 *  - a URL it allows starts with "https://" (any case) and, with no extra
 *    hosts, names one of PayPal's API hosts, and never carries "@" before
 *    its path (no user information);
 *  - it ends, and reads nothing past the input (AddressSanitizer).
 */
#define _GNU_SOURCE
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "paypal_webhook.h"

static int
PaypalHost(const char *url)
{
	static const char *const hosts[] = {"api.paypal.com", "api.sandbox.paypal.com", "api-m.paypal.com",
	"api-m.sandbox.paypal.com"};

	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		if (strcasestr(url, hosts[i]) != NULL)
			return 1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *s = malloc(size + 1);
	int64_t		seconds;
	char		why[256];

	memcpy(s, data, size);
	s[size] = '\0';
	if (paypal_transmission_time(s, &seconds))
	{
		size_t		len = strlen(s);

		assert(len >= 20 && s[len - 1] == 'Z');
		assert(seconds >= -62167219200LL && seconds <= 253402300800LL);
	}
	if (paypal_cert_url_allowed(s, NULL, why, sizeof(why)))
	{
		const char *path = strchr(s + 8, '/');

		assert(strncasecmp(s, "https://", 8) == 0);
		assert(PaypalHost(s));
		assert(path != NULL && memchr(s + 8, '@', (size_t) (path - s - 8)) == NULL);
	}
	else
		assert(why[0] != '\0');
	free(s);
	return 0;
}
