/*
 * x509_chain.h — is a certificate, served with its intermediates, one a
 * trusted CA issued to a given name?  Plain C (OpenSSL 3), no postgres.h.
 */
#ifndef PAY_CRYPTO_X509_CHAIN_H
#define PAY_CRYPTO_X509_CHAIN_H

#include <stddef.h>
#include <stdint.h>

typedef enum X509ChainResult
{
	X509_CHAIN_OK = 0,
	X509_CHAIN_MALFORMED,		/* no PEM certificate to read */
	X509_CHAIN_UNTRUSTED,		/* no path to a trusted CA, or out of its validity period */
	X509_CHAIN_WRONG_NAME,		/* trusted, but not issued to the name */
	X509_CHAIN_ERROR			/* the CA file cannot be read, out of memory */
} X509ChainResult;

/*
 * Verify pem (len bytes: the leaf certificate first, then any
 * intermediates) against the CAs of ca_file (NULL or "": OpenSSL's default
 * trust store) at the current time, and that the leaf is issued to name
 * (its DNS names, else its common name).  On X509_CHAIN_OK, *leaf_pem is
 * the leaf alone in PEM (malloc'd, NUL-terminated) and *not_after its
 * expiry in Unix seconds.  why receives a reason on failure.
 */
extern X509ChainResult x509_chain_verify(const char *pem, size_t len, const char *ca_file, const char *name,
										 char **leaf_pem, int64_t *not_after, char *why, size_t why_size);

#endif
