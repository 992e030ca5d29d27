/*
 * ct.c — constant-time comparison, so that checking a signature does not
 * tell an attacker how many leading bytes of a forgery were right.
 */
#include "ct.h"

#include <openssl/crypto.h>

int
ct_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

int
ct_equal_str(const char *a, size_t a_len, const char *b, size_t b_len)
{
	/* Lengths of signatures are public; only their contents are compared in constant time. */
	if (a_len != b_len)
		return 0;
	return CRYPTO_memcmp(a, b, a_len) == 0;
}
