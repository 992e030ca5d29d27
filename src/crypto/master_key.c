/*
 * master_key.c — key file parsing and key derivation for the secret store.
 * Nothing here keeps key material: callers own (and cleanse) every buffer.
 */
#include "master_key.h"
#include "hex.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>


static const char check_label[] = "pay master key check v1";
static const char cache_label[] = "pay master key cache v1";

/* 1 for the whitespace a key file may carry around its key. */
static int
IsSpace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int
master_key_parse(const char *buf, size_t len, MasterKeyKind *kind,
				 size_t *start, size_t *material_len)
{
	size_t		lo = 0;
	size_t		hi = len;
	size_t		i;

	while (lo < hi && IsSpace(buf[lo]))
		lo++;
	while (hi > lo && IsSpace(buf[hi - 1]))
		hi--;
	if (lo == hi)
		return -1;
	*start = lo;
	*material_len = hi - lo;
	*kind = MASTER_KEY_PASSPHRASE;
	if (hi - lo == 2 * MASTER_KEY_LEN)
	{
		for (i = lo; i < hi && hex_digit_value(buf[i]) >= 0; i++)
			;
		if (i == hi)
			*kind = MASTER_KEY_RAW;
	}
	return 0;
}

int
master_key_from_hex(const char *hex, size_t len, uint8_t key[MASTER_KEY_LEN])
{
	size_t		i;

	if (len != 2 * MASTER_KEY_LEN)
		return -1;
	for (i = 0; i < MASTER_KEY_LEN; i++)
	{
		int			hi = hex_digit_value(hex[2 * i]);
		int			lo = hex_digit_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
		{
			OPENSSL_cleanse(key, MASTER_KEY_LEN);
			return -1;
		}
		key[i] = (uint8_t) (hi << 4 | lo);
	}
	return 0;
}

int
master_key_derive(const char *passphrase, size_t len,
				  const uint8_t *salt, size_t salt_len, uint32_t iterations,
				  uint8_t key[MASTER_KEY_LEN])
{
	if (iterations < MASTER_KEY_ITERATIONS || iterations > MASTER_KEY_ITERATIONS_MAX ||
		len > MASTER_KEY_FILE_MAX || salt_len > 1024 || salt_len < MASTER_KEY_SALT_LEN)
		return -1;
	if (PKCS5_PBKDF2_HMAC(passphrase, (int) len, salt, (int) salt_len, (int) iterations,
						  EVP_sha256(), MASTER_KEY_LEN, key) != 1)
	{
		OPENSSL_cleanse(key, MASTER_KEY_LEN);
		return -1;
	}
	return 0;
}

int
master_key_check(const uint8_t key[MASTER_KEY_LEN], uint8_t check[MASTER_KEY_CHECK_LEN])
{
	size_t		out_len = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, MASTER_KEY_LEN,
				  (const unsigned char *) check_label, sizeof(check_label) - 1,
				  check, MASTER_KEY_CHECK_LEN, &out_len) == NULL ||
		out_len != MASTER_KEY_CHECK_LEN)
		return -1;
	return 0;
}

/* Feeds a 4-byte big-endian length and then the bytes to a digest. */
static int
DigestPrefixed(EVP_MD_CTX *ctx, const void *data, size_t len)
{
	uint8_t		prefix[4];

	if (len > UINT32_MAX)
		return 0;
	prefix[0] = (uint8_t) (len >> 24);
	prefix[1] = (uint8_t) (len >> 16);
	prefix[2] = (uint8_t) (len >> 8);
	prefix[3] = (uint8_t) len;
	return EVP_DigestUpdate(ctx, prefix, sizeof(prefix)) == 1 &&
		(len == 0 || EVP_DigestUpdate(ctx, data, len) == 1);
}

int
master_key_cache_id(const char *content, size_t len,
					const uint8_t *salt, size_t salt_len, uint32_t iterations,
					uint8_t id[MASTER_KEY_CACHE_ID_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t		iter_be[4];
	unsigned int out_len = 0;
	int			ok;

	iter_be[0] = (uint8_t) (iterations >> 24);
	iter_be[1] = (uint8_t) (iterations >> 16);
	iter_be[2] = (uint8_t) (iterations >> 8);
	iter_be[3] = (uint8_t) iterations;
	ok = ctx != NULL &&
		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
		DigestPrefixed(ctx, cache_label, sizeof(cache_label) - 1) &&
		DigestPrefixed(ctx, content, len) &&
		DigestPrefixed(ctx, salt, salt_len) &&
		EVP_DigestUpdate(ctx, iter_be, sizeof(iter_be)) == 1 &&
		EVP_DigestFinal_ex(ctx, id, &out_len) == 1 &&
		out_len == MASTER_KEY_CACHE_ID_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}
