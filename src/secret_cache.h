/*
 * secret_cache.h — sealed rows of pay.secrets kept per backend
 * (secret_cache.c), so that using a credential need not read the table
 * each time.  Only what the table holds is kept: ciphertext, nonce, tag and
 * master key generation, never a plaintext or a key.
 */
#ifndef PAY_SECRET_CACHE_H
#define PAY_SECRET_CACHE_H

#include <stddef.h>
#include <stdint.h>

extern void SecretCacheInit(void);

/*
 * The cached row of (owner, name): fixed_len bytes of its fixed part into
 * fixed, and a palloc'd copy of its ciphertext.  false on a miss.
 */
extern bool SecretCacheGet(const char *owner, const char *name, void *fixed, size_t fixed_len,
						   uint8_t **ct, size_t *ct_len);

/* Keep the row of (owner, name) as read from the table. */
extern void SecretCachePut(const char *owner, const char *name, const void *fixed, size_t fixed_len,
						   const uint8_t *ct, size_t ct_len);

#endif							/* PAY_SECRET_CACHE_H */
