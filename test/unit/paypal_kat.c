/*
 * paypal_kat.c — the plain-C parts of pay's PayPal support: amounts written
 * as PayPal's decimal values (src/proto/amount.c, as the request builder
 * uses it) and PAYPAL-TRANSMISSION-TIME read as Unix seconds
 * (src/proto/paypal_webhook.c), against known answers made by Python
 * (test/vectors/paypal.py: decimal, datetime); and which PAYPAL-CERT-URLs
 * may be fetched.  Run by test/suites/paypal_kat from the top of the tree;
 * prints "N passed, N failed".
 */
#include <stdio.h>
#include <string.h>

#include "amount.h"
#include "paypal_webhook.h"
#include "../vectors/paypal_kat.h"

static int	passed;
static int	failed;

static void
Check(int ok, const char *what, const char *detail)
{
	if (ok)
		passed++;
	else
	{
		failed++;
		printf("FAIL: %s: %s\n", what, detail);
	}
}

static void
Values(void)
{
	for (size_t i = 0; i < sizeof(kat_values) / sizeof(kat_values[0]); i++)
	{
		char		buf[AMOUNT_TEXT_MAX];
		int64_t		back = -1;
		int			ok = amount_format(kat_values[i].minor, kat_values[i].exponent, buf, sizeof(buf)) == AMOUNT_OK &&
			strcmp(buf, kat_values[i].value) == 0;

		Check(ok, "amount value", kat_values[i].value);
		Check(amount_parse_decimal(kat_values[i].value, strlen(kat_values[i].value), kat_values[i].exponent,
								   &back) == AMOUNT_OK && back == kat_values[i].minor, "amount read back",
			  kat_values[i].value);
	}
}

static void
Times(void)
{
	for (size_t i = 0; i < sizeof(kat_times) / sizeof(kat_times[0]); i++)
	{
		int64_t		s = -1;

		Check(paypal_transmission_time(kat_times[i].text, &s) && s == kat_times[i].unix_seconds,
			  "transmission time", kat_times[i].text);
	}
	for (size_t i = 0; i < sizeof(kat_bad_times) / sizeof(kat_bad_times[0]); i++)
	{
		int64_t		s;

		Check(!paypal_transmission_time(kat_bad_times[i], &s), "bad transmission time refused", kat_bad_times[i]);
	}
}

static void
CertUrls(void)
{
	static const struct
	{
		const char *url;
		const char *extra;
		int			allowed;
	}			cases[] = {
		{"https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77", NULL, 1},
		{"https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1", NULL, 1},
		{"https://API-M.PAYPAL.COM/v1/notifications/certs/CERT-1", NULL, 1},
		{"https://api-m.sandbox.paypal.com:443/v1/notifications/certs/CERT-1", NULL, 1},
		{"http://api.paypal.com/v1/notifications/certs/CERT-1", NULL, 0},
		{"https://api.paypal.com:8443/v1/notifications/certs/CERT-1", NULL, 0},
		{"https://api.sandbox.paypal.com.attacker.example/v1/notifications/certs/CERT-1", NULL, 0},
		{"https://attacker.example/api.paypal.com/v1/notifications/certs/CERT-1", NULL, 0},
		{"https://api.paypal.com@attacker.example/v1/notifications/certs/CERT-1", NULL, 0},
		{"https://attacker.example#@api.paypal.com/v1/notifications/certs/CERT-1", NULL, 0},
		{"https://evilapi.paypal.com/v1/notifications/certs/CERT-1", NULL, 0},
		{"https://api.paypal.com/v1/oauth2/token", NULL, 0},
		{"https://api.paypal.com/v1/notifications/certs/../../oauth2/token", NULL, 0},
		{"https://127.0.0.1:4443/v1/notifications/certs/CERT-1", NULL, 0},
		{"https://127.0.0.1:4443/v1/notifications/certs/CERT-1", "127.0.0.1", 1},
		{"https://127.0.0.1:4443/v1/notifications/certs/CERT-1", "localhost, 127.0.0.1:4443", 1},
		{"https://127.0.0.1:4444/v1/notifications/certs/CERT-1", "127.0.0.1:4443", 0},
		{"http://127.0.0.1:4443/v1/notifications/certs/CERT-1", "127.0.0.1", 0},
		{"https:/api.paypal.com/v1/notifications/certs/CERT-1", NULL, 0},
		{"not a url", NULL, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char		why[256] = "";

		Check(paypal_cert_url_allowed(cases[i].url, cases[i].extra, why, sizeof(why)) == cases[i].allowed,
			  cases[i].allowed ? "certificate URL allowed" : "certificate URL refused", cases[i].url);
	}
}

int
main(void)
{
	Values();
	Times();
	CertUrls();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
