/*
 * hmac.c — HMAC-SHA256 and SHA-256 through OpenSSL 3's EVP_MAC and EVP_MD.
 *
 * Fetching an algorithm from the provider, and allocating a context, cost
 * more than MACing a short message, so the SHA-256 implementation and one
 * HMAC-SHA256 context (digest already set) are made once per process and
 * reused: each call keys the context, MACs, and then re-keys it with the
 * empty key, which overwrites the key copy and the key-derived state, so no
 * key material outlives the call.  Not thread-safe (a PostgreSQL backend and
 * the fuzzers are single-threaded).
 */
#include "hmac.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

static EVP_MAC_CTX *hmac_ctx = NULL;
static EVP_MD *sha256_md = NULL;

/* The HMAC-SHA256 context, set up on first use; NULL on failure. */
static EVP_MAC_CTX *
HmacContext(void)
{
	if (hmac_ctx == NULL)
	{
		EVP_MAC   *mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
		EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
		OSSL_PARAM	params[2];

		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		EVP_MAC_free(mac);		/* the context holds its own reference */
		if (ctx == NULL || EVP_MAC_CTX_set_params(ctx, params) != 1)
		{
			EVP_MAC_CTX_free(ctx);
			ERR_clear_error();
			return NULL;
		}
		hmac_ctx = ctx;
	}
	return hmac_ctx;
}

int
hmac_sha256_parts(const uint8_t *key, size_t key_len,
				  const CryptoPart *parts, size_t n,
				  uint8_t out[HMAC_SHA256_LEN])
{
	static const uint8_t empty_key[1] = {0};
	EVP_MAC_CTX *ctx = HmacContext();
	size_t		out_len = 0;
	size_t		i;
	int			ok;

	if (ctx == NULL || key_len > HMAC_KEY_MAX || (key == NULL && key_len > 0))
		return -1;

	/*
	 * A NULL key would make EVP_MAC_init reuse the context's previous key:
	 * always pass a real pointer, also for the empty key.
	 */
	ok = EVP_MAC_init(ctx, key_len > 0 ? key : empty_key, key_len, NULL) == 1;
	for (i = 0; ok && i < n; i++)
		if (parts[i].len > 0)
			ok = EVP_MAC_update(ctx, parts[i].data, parts[i].len) == 1;
	ok = ok && EVP_MAC_final(ctx, out, &out_len, HMAC_SHA256_LEN) == 1 &&
		out_len == HMAC_SHA256_LEN;
	/* Forget the key: re-key with the empty one. */
	if (EVP_MAC_init(ctx, empty_key, 0, NULL) != 1)
	{
		/* Cannot happen short of memory trouble; drop the context then. */
		EVP_MAC_CTX_free(ctx);
		hmac_ctx = NULL;
		ok = 0;
	}
	if (!ok)
		ERR_clear_error();
	return ok ? 0 : -1;
}

int
hmac_sha256(const uint8_t *key, size_t key_len,
			const uint8_t *msg, size_t msg_len,
			uint8_t out[HMAC_SHA256_LEN])
{
	CryptoPart	part;

	part.data = msg;
	part.len = msg_len;
	return hmac_sha256_parts(key, key_len, &part, 1, out);
}

int
sha256_parts(const CryptoPart *parts, size_t n, uint8_t out[SHA256_LEN])
{
	EVP_MD_CTX *ctx;
	unsigned int out_len = 0;
	size_t		i;
	int			ok;

	if (sha256_md == NULL)
	{
		sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (sha256_md == NULL)
		{
			ERR_clear_error();
			return -1;
		}
	}
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestInit_ex2(ctx, sha256_md, NULL) == 1;
	for (i = 0; ok && i < n; i++)
		if (parts[i].len > 0)
			ok = EVP_DigestUpdate(ctx, parts[i].data, parts[i].len) == 1;
	ok = ok && EVP_DigestFinal_ex(ctx, out, &out_len) == 1 && out_len == SHA256_LEN;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		ERR_clear_error();
	return ok ? 0 : -1;
}
