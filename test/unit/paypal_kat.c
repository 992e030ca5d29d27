/*
 * paypal_kat.c — the plain-C parts of pay's PayPal support: amounts written
 * as PayPal's decimal values (src/proto/amount.c, as the request builder
 * uses it) and PAYPAL-TRANSMISSION-TIME read as Unix seconds
 * (src/proto/paypal_webhook.c), against known answers made by Python
 * (test/vectors/paypal.py: decimal, datetime); which PAYPAL-CERT-URLs
 * may be fetched; and which served certificates count as PayPal's
 * (src/crypto/x509_chain.c, with the fake PSP's keys, made by openssl).  Run by test/suites/paypal_kat from the top of the tree;
 * prints "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amount.h"
#include "paypal_webhook.h"
#include "x509_chain.h"
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

/* A file's contents (malloc'd, NUL-terminated), or NULL. */
static char *
Slurp(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;

	if (f == NULL)
		return NULL;
	buf = malloc(65536);
	*len = fread(buf, 1, 65535, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static void
Chains(void)
{
	static const char *keys = "test/fake_psp/keys/";
	static const struct
	{
		const char *served[2];	/* files served, in order */
		const char *ca;
		const char *name;
		X509ChainResult result;
	}			cases[] = {
		{{"paypal_signing_cert.pem", "paypal_ca.pem"}, "paypal_ca.pem", "messageverificationcerts.paypal.com", X509_CHAIN_OK},
		{{"paypal_signing_cert.pem", NULL}, "paypal_ca.pem", "messageverificationcerts.paypal.com", X509_CHAIN_OK},
		{{"paypal_signing_cert.pem", "paypal_ca.pem"}, "tls_ca.pem", "messageverificationcerts.paypal.com", X509_CHAIN_UNTRUSTED},
		{{"paypal_signing_cert.pem", "paypal_ca.pem"}, "paypal_ca.pem", "api.paypal.com", X509_CHAIN_WRONG_NAME},
		{{"tls_server.pem", NULL}, "tls_ca.pem", "messageverificationcerts.paypal.com", X509_CHAIN_WRONG_NAME},
		{{"paypal_ca.pem", NULL}, "tls_ca.pem", "messageverificationcerts.paypal.com", X509_CHAIN_UNTRUSTED},
		{{"paypal_signing_private.pem", NULL}, "paypal_ca.pem", "messageverificationcerts.paypal.com", X509_CHAIN_MALFORMED},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char		pem[131072] = "";
		char		path[256];
		char		why[256];
		char	   *leaf = NULL;
		int64_t		not_after = 0;
		X509ChainResult r;

		for (int k = 0; k < 2 && cases[i].served[k]; k++)
		{
			size_t		len;
			char	   *part;

			snprintf(path, sizeof(path), "%s%s", keys, cases[i].served[k]);
			part = Slurp(path, &len);
			if (part != NULL)
				strncat(pem, part, sizeof(pem) - strlen(pem) - 1);
			free(part);
		}
		snprintf(path, sizeof(path), "%s%s", keys, cases[i].ca);
		r = x509_chain_verify(pem, strlen(pem), path, cases[i].name, &leaf, &not_after, why, sizeof(why));
		Check(r == cases[i].result, "certificate chain", cases[i].served[0]);
		if (r == X509_CHAIN_OK)
			Check(leaf != NULL && strncmp(leaf, "-----BEGIN CERTIFICATE-----", 27) == 0 &&
				  strstr(leaf + 27, "-----BEGIN CERTIFICATE-----") == NULL && not_after > 1700000000,
				  "the leaf alone, with its expiry", cases[i].served[0]);
		free(leaf);
	}
}

int
main(void)
{
	Values();
	Times();
	CertUrls();
	Chains();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
