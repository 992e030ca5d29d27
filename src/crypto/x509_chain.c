/*
 * x509_chain.c — a served certificate chain verified to a trusted CA and a
 * name (x509_chain.h).
 *
 * A PSP that signs webhooks with a certificate it serves from a URL (PayPal)
 * is trusted only as far as that certificate is: it must chain to a CA we
 * trust, be valid now, and be issued to the name the PSP signs with, so
 * that no other certificate a public CA issued can sign webhooks.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "x509_chain.h"

/* The certificates of pem: the first into *leaf, the others into *rest. */
static int
ReadChain(const char *pem, size_t len, X509 **leaf, STACK_OF(X509) **rest)
{
	BIO		   *bio = BIO_new_mem_buf(pem, (int) len);
	X509	   *cert;

	*leaf = NULL;
	*rest = sk_X509_new_null();
	if (bio == NULL || *rest == NULL)
	{
		BIO_free(bio);
		return -1;
	}
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
	{
		if (*leaf == NULL)
			*leaf = cert;
		else if (!sk_X509_push(*rest, cert))
		{
			X509_free(cert);
			break;
		}
	}
	ERR_clear_error();
	BIO_free(bio);
	return *leaf != NULL ? 0 : -1;
}

static int
LeafPem(X509 *leaf, char **out)
{
	BIO		   *bio = BIO_new(BIO_s_mem());
	char	   *data;
	long		n;

	*out = NULL;
	if (bio == NULL || !PEM_write_bio_X509(bio, leaf))
	{
		BIO_free(bio);
		return -1;
	}
	n = BIO_get_mem_data(bio, &data);
	*out = malloc((size_t) n + 1);
	if (*out != NULL)
	{
		memcpy(*out, data, (size_t) n);
		(*out)[n] = '\0';
	}
	BIO_free(bio);
	return *out != NULL ? 0 : -1;
}

static int
NotAfter(X509 *leaf, int64_t *out)
{
	struct tm	tm;

	if (!ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm))
		return -1;
	*out = (int64_t) timegm(&tm);
	return 0;
}

X509ChainResult
x509_chain_verify(const char *pem, size_t len, const char *ca_file, const char *name,
				  char **leaf_pem, int64_t *not_after, char *why, size_t why_size)
{
	X509	   *leaf = NULL;
	STACK_OF(X509) *rest = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509ChainResult result = X509_CHAIN_ERROR;

	*leaf_pem = NULL;
	snprintf(why, why_size, "out of memory");
	if (ReadChain(pem, len, &leaf, &rest) != 0)
	{
		snprintf(why, why_size, "no PEM certificate");
		result = X509_CHAIN_MALFORMED;
		goto done;
	}
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (store == NULL || ctx == NULL)
		goto done;
	if (ca_file != NULL && ca_file[0] != '\0' ? !X509_STORE_load_file(store, ca_file)
		: !X509_STORE_set_default_paths(store))
	{
		snprintf(why, why_size, "the trusted CAs cannot be loaded");
		goto done;
	}
	if (!X509_STORE_CTX_init(ctx, store, leaf, rest))
		goto done;
	if (X509_verify_cert(ctx) != 1)
	{
		snprintf(why, why_size, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		result = X509_CHAIN_UNTRUSTED;
		goto done;
	}
	if (X509_check_host(leaf, name, strlen(name), 0, NULL) != 1)
	{
		snprintf(why, why_size, "the certificate is not issued to %s", name);
		result = X509_CHAIN_WRONG_NAME;
		goto done;
	}
	if (NotAfter(leaf, not_after) != 0 || LeafPem(leaf, leaf_pem) != 0)
		goto done;
	why[0] = '\0';
	result = X509_CHAIN_OK;
done:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(rest, X509_free);
	X509_free(leaf);
	return result;
}
