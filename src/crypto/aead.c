/*
 * aead.c — AES-256-GCM through OpenSSL's EVP interface.  Decryption returns
 * nothing usable unless the tag verifies: callers must not read pt on -1.
 */
#include "aead.h"

#include <limits.h>
#include <openssl/evp.h>

/* Set up ctx for AES-256-GCM with our key and nonce; 1 on success. */
static int
AeadInit(EVP_CIPHER_CTX *ctx, int encrypt, const uint8_t *key, const uint8_t *nonce)
{
	return EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, AEAD_NONCE_LEN, NULL) == 1 &&
		EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) == 1;
}

int
aead_encrypt(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
			 const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
			 uint8_t *ct, uint8_t tag[AEAD_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int			len = 0;
	int			ok;

	if (ctx == NULL || aad_len > INT_MAX || pt_len > INT_MAX)
	{
		EVP_CIPHER_CTX_free(ctx);
		return -1;
	}
	ok = AeadInit(ctx, 1, key, nonce) &&
		(aad_len == 0 || EVP_EncryptUpdate(ctx, NULL, &len, aad, (int) aad_len) == 1) &&
		(pt_len == 0 || EVP_EncryptUpdate(ctx, ct, &len, pt, (int) pt_len) == 1) &&
		EVP_EncryptFinal_ex(ctx, ct + len, &len) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

int
aead_decrypt(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
			 const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
			 const uint8_t tag[AEAD_TAG_LEN], uint8_t *pt)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int			len = 0;
	int			ok;

	if (ctx == NULL || aad_len > INT_MAX || ct_len > INT_MAX)
	{
		EVP_CIPHER_CTX_free(ctx);
		return -1;
	}
	ok = AeadInit(ctx, 0, key, nonce) &&
		(aad_len == 0 || EVP_DecryptUpdate(ctx, NULL, &len, aad, (int) aad_len) == 1) &&
		(ct_len == 0 || EVP_DecryptUpdate(ctx, pt, &len, ct, (int) ct_len) == 1) &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_LEN, (void *) tag) == 1 &&
		EVP_DecryptFinal_ex(ctx, pt + len, &len) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}
