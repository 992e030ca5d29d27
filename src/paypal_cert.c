/*
 * paypal_cert.c — PayPal's webhook signing certificate, by the URL a
 * webhook names (PAYPAL-CERT-URL).
 *
 * The URL comes from the webhook, before anything is verified, so it is
 * fetched only when it is https on one of PayPal's API hosts (or a host
 * the superuser-only setting pay.paypal_cert_hosts adds, such as a test
 * double's), and the certificate it serves counts only when it chains to
 * a CA of pay.http_ca_file (else the system's), is valid now, and is
 * issued to messageverificationcerts.paypal.com.  Verified certificates
 * are kept in pay.paypal_certs by URL until they expire: a webhook naming
 * a kept URL fetches nothing.  (A certificate fetched for a webhook that
 * is then refused is not kept: the refusal rolls its row back.)
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "pay.h"
#include "callback.h"
#include "dispatcher.h"
#include "http_fetch.h"
#include "paypal_cert.h"
#include "paypal_webhook.h"
#include "x509_chain.h"

#define CERT_NAME "messageverificationcerts.paypal.com"
#define CERT_ANSWER_MAX (64 * 1024)

static char *paypal_cert_hosts = NULL;
static SPIPlanPtr kept_plan = NULL;
static SPIPlanPtr keep_plan = NULL;

void
PaypalCertInit(void)
{
	DefineCustomStringVariable("pay.paypal_cert_hosts",
							   "Hosts besides PayPal's API hosts that PayPal webhook certificates may be fetched from.",
							   "A comma-separated list of host or host:port (a host alone: any port).  For test "
							   "doubles of PayPal; empty in production.",
							   &paypal_cert_hosts, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
}

/* The kept certificate of url, if it has not expired. */
static char *
Kept(const char *url)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(url)};

	if (SPI_execute_plan(KeptPlan(&kept_plan,
								  "SELECT certificate_pem FROM pay.paypal_certs WHERE url = $1 AND not_after > now()",
								  1, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pay.paypal_certs");
	return SPI_processed == 1 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
}

static void
Keep(const char *url, const char *pem, int64 not_after)
{
	Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[3] = {CStringGetTextDatum(url), CStringGetTextDatum(pem), Int64GetDatum(not_after)};

	if (SPI_execute_plan(KeptPlan(&keep_plan,
								  "INSERT INTO pay.paypal_certs (url, certificate_pem, not_after) "
								  "VALUES ($1, $2, to_timestamp($3)) ON CONFLICT (url) DO UPDATE "
								  "SET certificate_pem = EXCLUDED.certificate_pem, not_after = EXCLUDED.not_after, "
								  "fetched_at = now()",
								  3, types),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write pay.paypal_certs");
}

/* Fetch and verify the certificate at url; its leaf PEM. */
static char *
Fetch(const char *url)
{
	HttpFetchRequest req = {0};
	HttpFetchResult res;
	char	   *leaf = NULL;
	int64_t		not_after = 0;
	char		why[256];
	char	   *pem;

	req.method = "GET";
	req.url = url;
	req.https_only = true;
	req.body_max = CERT_ANSWER_MAX;
	if (!HttpFetch(&req, &res))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not fetch the PayPal certificate at %s: %s", url, res.error)));
	if (res.status != 200)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not fetch the PayPal certificate at %s: HTTP %ld", url, res.status)));
	if (x509_chain_verify(res.body, res.body_len, http_ca_file, CERT_NAME, &leaf, &not_after,
						  why, sizeof(why)) != X509_CHAIN_OK)
		CallbackSignatureInvalid(psprintf("the certificate at PAYPAL-CERT-URL is not PayPal's: %s", why));
	pem = pstrdup(leaf);
	free(leaf);
	Keep(url, pem, not_after);
	return pem;
}

char *
PaypalCertificate(const char *url)
{
	char		why[256];
	char	   *pem;

	if (!paypal_cert_url_allowed(url, paypal_cert_hosts, why, sizeof(why)))
		CallbackSignatureInvalid(why);
	pem = Kept(url);
	return pem != NULL ? pem : Fetch(url);
}
