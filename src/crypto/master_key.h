/*
 * master_key.h — the secret store's master key: parsing the key file,
 * PBKDF2-HMAC-SHA256 for passphrases, the key check and the cache id.
 * Plain C (OpenSSL EVP); the PostgreSQL side is src/secret_store.c.
 *
 * A key file holds either exactly 64 hex digits (a raw 256-bit key) or a
 * passphrase; whitespace around either (a trailing newline) is ignored.  A
 * passphrase that happens to be 64 hex digits is taken as a raw key.
 */
#ifndef PAY_MASTER_KEY_H
#define PAY_MASTER_KEY_H

#include <stddef.h>
#include <stdint.h>

#define MASTER_KEY_LEN				32
#define MASTER_KEY_CHECK_LEN		32
#define MASTER_KEY_CACHE_ID_LEN		32
#define MASTER_KEY_SALT_LEN			16
#define MASTER_KEY_ITERATIONS		600000		/* OWASP 2023 for PBKDF2-HMAC-SHA256 */
#define MASTER_KEY_ITERATIONS_MAX	100000000	/* a tampered row must not hang a backend */
#define MASTER_KEY_FILE_MAX			4096		/* bytes; a key file is small */

typedef enum MasterKeyKind
{
	MASTER_KEY_RAW,				/* 64 hex digits */
	MASTER_KEY_PASSPHRASE		/* anything else that is not blank */
} MasterKeyKind;

/*
 * Finds the key material in a key file's content: *start and *len delimit it
 * inside buf (surrounding whitespace dropped).  0 on success, -1 if the
 * content is blank.
 */
extern int	master_key_parse(const char *buf, size_t len, MasterKeyKind *kind,
							 size_t *start, size_t *material_len);

/* Decodes the 64 hex digits of a raw key.  0 on success, -1 otherwise. */
extern int	master_key_from_hex(const char *hex, size_t len, uint8_t key[MASTER_KEY_LEN]);

/*
 * PBKDF2-HMAC-SHA256(passphrase, salt, iterations) -> 32 bytes.  0 on
 * success, -1 on an iteration count outside [MASTER_KEY_ITERATIONS,
 * MASTER_KEY_ITERATIONS_MAX] or an OpenSSL failure.
 */
extern int	master_key_derive(const char *passphrase, size_t len,
							  const uint8_t *salt, size_t salt_len, uint32_t iterations,
							  uint8_t key[MASTER_KEY_LEN]);

/*
 * The key check stored beside a master key generation:
 * HMAC-SHA256(key, "pay master key check v1").  It tells a wrong master key
 * from a damaged ciphertext and says nothing about the key.  0 on success.
 */
extern int	master_key_check(const uint8_t key[MASTER_KEY_LEN], uint8_t check[MASTER_KEY_CHECK_LEN]);

/*
 * Identity of a derived key for a per-backend cache: SHA-256 over the
 * length-prefixed file content, salt and iteration count.  0 on success.
 */
extern int	master_key_cache_id(const char *content, size_t len,
								const uint8_t *salt, size_t salt_len, uint32_t iterations,
								uint8_t id[MASTER_KEY_CACHE_ID_LEN]);

#endif
