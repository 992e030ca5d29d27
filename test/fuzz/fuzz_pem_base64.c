/*
 * fuzz_pem_base64.c — base64 round trips and RSA key loading from arbitrary
 * text (crypto/base64.c, crypto/pkey.c).
 *
 * Properties: decode(encode(x)) == x; when text decodes, encoding the result
 * gives the text back without its whitespace (the decoder is strict, so the
 * encoding is canonical); loading any text as a key never crashes, and a key
 * that loads has a sane size and signs what it then verifies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "pkey.h"

/* Stop with a crash report when a property fails. */
#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* decode(encode(data)) must give data back, into a buffer of exactly its size. */
static void
EncodeRoundTrip(const uint8_t *data, size_t size)
{
	size_t		enc_len = BASE64_ENCODED_LEN(size);
	char	   *enc = malloc(enc_len + 1);
	uint8_t    *dec = malloc(size + 1);
	size_t		n = 0;

	base64_encode(data, size, enc);
	CHECK(strlen(enc) == enc_len);
	CHECK(base64_decode(enc, enc_len, dec, size, &n) == 0);
	CHECK(n == size && memcmp(dec, data, size) == 0);
	free(enc);
	free(dec);
}

/* When data decodes, its re-encoding equals data minus whitespace. */
static void
DecodeCanonical(const uint8_t *data, size_t size)
{
	size_t		cap = size / 4 * 3 + 3;
	uint8_t    *dec = malloc(cap);
	char	   *stripped = malloc(size + 1);
	size_t		n = 0,
				k = 0,
				i;

	if (base64_decode((const char *) data, size, dec, cap, &n) == 0)
	{
		char	   *enc = malloc(BASE64_ENCODED_LEN(n) + 1);

		for (i = 0; i < size; i++)
			if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\n')
				stripped[k++] = (char) data[i];
		stripped[k] = '\0';
		base64_encode(dec, n, enc);
		CHECK(strcmp(enc, stripped) == 0);
		free(enc);
	}
	free(dec);
	free(stripped);
}

/* Any text as a public and as a private key. */
static void
LoadKeys(const uint8_t *data, size_t size)
{
	static const uint8_t msg[] = "fuzz message";
	PkeyRsa    *key = NULL;
	uint8_t		sig[PKEY_SIG_MAX];
	size_t		sig_len = 0;

	if (pkey_load_public((const char *) data, size, &key) == PKEY_OK)
	{
		CHECK(pkey_sig_len(key) >= PKEY_RSA_BITS_MIN / 8 && pkey_sig_len(key) <= PKEY_SIG_MAX);
		/* the input itself as a signature: must simply not verify */
		CHECK(pkey_rsa_sha256_verify(key, msg, sizeof(msg), data, size < PKEY_SIG_MAX ? size : PKEY_SIG_MAX) == 0);
	}
	if (pkey_load_private((const char *) data, size, &key) == PKEY_OK)
	{
		CHECK(pkey_rsa_sha256_sign(key, msg, sizeof(msg), sig, &sig_len) == 0);
		CHECK(sig_len == pkey_sig_len(key));
		CHECK(pkey_rsa_sha256_verify(key, msg, sizeof(msg), sig, sig_len) == 1);
		sig[0] ^= 1;
		CHECK(pkey_rsa_sha256_verify(key, msg, sizeof(msg), sig, sig_len) == 0);
	}
	CHECK(pkey_cache_count() <= PKEY_CACHE_SIZE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	EncodeRoundTrip(data, size);
	DecodeCanonical(data, size);
	LoadKeys(data, size);
	return 0;
}
