/*
 * pkey.h — RSA keys in every form providers hand out, parsed once and cached,
 * and SHA256withRSA (PKCS#1 v1.5) signing and verification with them.
 * Plain C (OpenSSL 3 decoders and EVP).
 *
 * Private keys: PKCS#8 ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") PEM;
 * each is tested once when parsed (it must verify its own signature), so a
 * damaged key is refused instead of producing signatures nobody accepts.
 * Public keys: SubjectPublicKeyInfo ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC
 * KEY") PEM, an X.509 certificate PEM (its key; chain and expiry are not
 * checked), or the bare base64 body of an SPKI, PKCS#1 RSAPublicKey or
 * certificate DER, whitespace and line breaks allowed.
 *
 * Whitespace around the text is ignored.  Parsed keys live in a per-process
 * cache of PKEY_CACHE_SIZE entries (least recently used evicted) keyed by
 * SHA-256 of the key text, so verifying thousands of callbacks with the same
 * key parses it once (and the entry returned last is recognised by comparing
 * its text, without even the digest).  A PkeyRsa pointer is borrowed from the
 * cache: it is valid until the next pkey_load_* call.
 */
#ifndef PAY_PKEY_H
#define PAY_PKEY_H

#include <stddef.h>
#include <stdint.h>

#define PKEY_CACHE_SIZE		32
#define PKEY_TEXT_MAX		65536	/* longer key text is not a key */
#define PKEY_RSA_BITS_MIN	2048
#define PKEY_RSA_BITS_MAX	8192
#define PKEY_SIG_MAX		(PKEY_RSA_BITS_MAX / 8)	/* largest signature, bytes */

typedef enum PkeyResult
{
	PKEY_OK = 0,
	PKEY_NOT_A_KEY,				/* no key of the expected kind in the text */
	PKEY_ENCRYPTED,				/* a passphrase-protected private key */
	PKEY_NOT_RSA,				/* a key, but not an RSA key */
	PKEY_BAD_SIZE,				/* RSA modulus outside PKEY_RSA_BITS_MIN..MAX */
	PKEY_DAMAGED,				/* a private key whose parts do not fit together */
	PKEY_NO_MEMORY				/* OpenSSL or malloc failure */
} PkeyResult;

typedef struct PkeyRsa PkeyRsa;

/* Parse (or find in the cache) a private key; *key is borrowed. */
extern PkeyResult pkey_load_private(const char *text, size_t len, PkeyRsa **key);

/* Parse (or find in the cache) a public key or certificate; *key is borrowed. */
extern PkeyResult pkey_load_public(const char *text, size_t len, PkeyRsa **key);

/* Signature length of the key in bytes (its modulus size). */
extern size_t pkey_sig_len(const PkeyRsa *key);

/*
 * SHA256withRSA signature of msg into sig (pkey_sig_len(key) bytes);
 * 0 on success, -1 on an OpenSSL failure.
 */
extern int	pkey_rsa_sha256_sign(PkeyRsa *key, const uint8_t *msg, size_t msg_len,
								 uint8_t *sig, size_t *sig_len);

/* 1 if sig is a valid SHA256withRSA signature of msg under key, else 0. */
extern int	pkey_rsa_sha256_verify(PkeyRsa *key, const uint8_t *msg, size_t msg_len,
								   const uint8_t *sig, size_t sig_len);

/* A short English description of a PkeyResult, for error messages. */
extern const char *pkey_result_text(PkeyResult r);

/* Number of keys currently cached (for tests). */
extern int	pkey_cache_count(void);

/* Drop every cached key (for tests and fuzzers). */
extern void pkey_cache_clear(void);

#endif							/* PAY_PKEY_H */
