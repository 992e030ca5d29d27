/*
 * secret_box.h — one secret of the secret store sealed with AES-256-GCM
 * (aead.h) under the master key, bound to its row by the associated data.
 * Plain C.
 *
 * Associated data: "pay.secret.v1", then the owner and the name, each as a
 * 4-byte big-endian length and its bytes.  A ciphertext copied to another
 * (owner, name) therefore fails to open.
 */
#ifndef PAY_SECRET_BOX_H
#define PAY_SECRET_BOX_H

#include <stddef.h>
#include <stdint.h>

#include "aead.h"

#define SECRET_OWNER_MAX	200		/* bytes */
#define SECRET_NAME_MAX		200		/* bytes */
#define SECRET_VALUE_MAX	65536	/* bytes; a certificate chain fits */
#define SECRET_AAD_MAX		(13 + 4 + SECRET_OWNER_MAX + 4 + SECRET_NAME_MAX)

/*
 * Writes the associated data of (owner, name) to aad (SECRET_AAD_MAX bytes).
 * 0 on success, -1 if owner or name is longer than its maximum.
 */
extern int	secret_box_aad(const char *owner, size_t owner_len,
						   const char *name, size_t name_len,
						   uint8_t aad[SECRET_AAD_MAX], size_t *aad_len);

/*
 * Seals pt under key for (owner, name) with a fresh random nonce: writes the
 * nonce, pt_len bytes of ct and the tag.  0 on success, -1 on a failure
 * (RAND_bytes, OpenSSL, oversized arguments).
 */
extern int	secret_box_seal(const uint8_t key[AEAD_KEY_LEN],
							const char *owner, size_t owner_len,
							const char *name, size_t name_len,
							const uint8_t *pt, size_t pt_len,
							uint8_t nonce[AEAD_NONCE_LEN], uint8_t *ct,
							uint8_t tag[AEAD_TAG_LEN]);

/*
 * Opens a sealed secret of (owner, name) into pt (ct_len bytes).  0 on
 * success; -1 if it does not verify, in which case pt has been cleansed.
 */
extern int	secret_box_open(const uint8_t key[AEAD_KEY_LEN],
							const char *owner, size_t owner_len,
							const char *name, size_t name_len,
							const uint8_t nonce[AEAD_NONCE_LEN],
							const uint8_t *ct, size_t ct_len,
							const uint8_t tag[AEAD_TAG_LEN], uint8_t *pt);

/* HMAC-SHA256 keyed with an opened secret.  0 on success. */
extern int	secret_box_hmac_sha256(const uint8_t *key, size_t key_len,
								   const uint8_t *msg, size_t msg_len, uint8_t out[32]);

#endif
