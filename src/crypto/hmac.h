/*
 * hmac.h — HMAC-SHA256 (OpenSSL 3 EVP_MAC) and SHA-256, one-shot over a
 * message given in parts, so callers sign "a.b" or "a:b:c" without first
 * copying it into one buffer.  Plain C.
 */
#ifndef PAY_HMAC_H
#define PAY_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define HMAC_SHA256_LEN 32
#define SHA256_LEN 32
/* Longest key hmac_sha256* accepts (a PSP secret is tens of bytes). */
#define HMAC_KEY_MAX 4096

/* A piece of a message: len bytes at data (data may be NULL when len is 0). */
typedef struct CryptoPart
{
	const void *data;
	size_t		len;
} CryptoPart;

/*
 * HMAC-SHA256 under key (key_len bytes, 0..HMAC_KEY_MAX) of the concatenation
 * of parts[0..n-1] into out; 0 on success, -1 on failure (out then undefined).
 */
extern int	hmac_sha256_parts(const uint8_t *key, size_t key_len,
							  const CryptoPart *parts, size_t n,
							  uint8_t out[HMAC_SHA256_LEN]);

/* HMAC-SHA256 of one message; 0 on success, -1 on failure. */
extern int	hmac_sha256(const uint8_t *key, size_t key_len,
						const uint8_t *msg, size_t msg_len,
						uint8_t out[HMAC_SHA256_LEN]);

/* SHA-256 of the concatenation of parts; 0 on success, -1 on failure. */
extern int	sha256_parts(const CryptoPart *parts, size_t n, uint8_t out[SHA256_LEN]);

#endif
