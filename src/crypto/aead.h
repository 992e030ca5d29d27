/*
 * aead.h — AES-256-GCM with a 12-byte nonce and a 16-byte tag (OpenSSL EVP).
 * Plain C.  Used by the secret store and by WeChat Pay's callback decryption.
 */
#ifndef PAY_AEAD_H
#define PAY_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define AEAD_KEY_LEN	32
#define AEAD_NONCE_LEN	12
#define AEAD_TAG_LEN	16

/* ct receives pt_len bytes.  0 on success, -1 on an OpenSSL failure. */
extern int	aead_encrypt(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
						 const uint8_t *aad, size_t aad_len,
						 const uint8_t *pt, size_t pt_len,
						 uint8_t *ct, uint8_t tag[AEAD_TAG_LEN]);

/* pt receives ct_len bytes.  0 on success, -1 if the tag does not verify (nothing usable in pt). */
extern int	aead_decrypt(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
						 const uint8_t *aad, size_t aad_len,
						 const uint8_t *ct, size_t ct_len,
						 const uint8_t tag[AEAD_TAG_LEN], uint8_t *pt);

#endif
