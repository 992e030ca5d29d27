/*
 * secret_box.c — sealing and opening one secret of the secret store.
 */
#include "secret_box.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static const char aad_label[] = "pay.secret.v1";

/* Appends a 4-byte big-endian length and the bytes at out + *pos. */
static void
PutPrefixed(uint8_t *out, size_t *pos, const char *data, size_t len)
{
	out[(*pos)++] = (uint8_t) (len >> 24);
	out[(*pos)++] = (uint8_t) (len >> 16);
	out[(*pos)++] = (uint8_t) (len >> 8);
	out[(*pos)++] = (uint8_t) len;
	if (len > 0)
		memcpy(out + *pos, data, len);
	*pos += len;
}

int
secret_box_aad(const char *owner, size_t owner_len, const char *name, size_t name_len,
			   uint8_t aad[SECRET_AAD_MAX], size_t *aad_len)
{
	size_t		pos = sizeof(aad_label) - 1;

	if (owner_len > SECRET_OWNER_MAX || name_len > SECRET_NAME_MAX)
		return -1;
	memcpy(aad, aad_label, pos);
	PutPrefixed(aad, &pos, owner, owner_len);
	PutPrefixed(aad, &pos, name, name_len);
	*aad_len = pos;
	return 0;
}

int
secret_box_seal(const uint8_t key[AEAD_KEY_LEN],
				const char *owner, size_t owner_len, const char *name, size_t name_len,
				const uint8_t *pt, size_t pt_len,
				uint8_t nonce[AEAD_NONCE_LEN], uint8_t *ct, uint8_t tag[AEAD_TAG_LEN])
{
	uint8_t		aad[SECRET_AAD_MAX];
	size_t		aad_len = 0;

	if (pt_len > SECRET_VALUE_MAX ||
		secret_box_aad(owner, owner_len, name, name_len, aad, &aad_len) != 0 ||
		RAND_bytes(nonce, AEAD_NONCE_LEN) != 1)
		return -1;
	return aead_encrypt(key, nonce, aad, aad_len, pt, pt_len, ct, tag);
}

int
secret_box_open(const uint8_t key[AEAD_KEY_LEN],
				const char *owner, size_t owner_len, const char *name, size_t name_len,
				const uint8_t nonce[AEAD_NONCE_LEN], const uint8_t *ct, size_t ct_len,
				const uint8_t tag[AEAD_TAG_LEN], uint8_t *pt)
{
	uint8_t		aad[SECRET_AAD_MAX];
	size_t		aad_len = 0;

	if (ct_len > SECRET_VALUE_MAX ||
		secret_box_aad(owner, owner_len, name, name_len, aad, &aad_len) != 0)
		return -1;
	if (aead_decrypt(key, nonce, aad, aad_len, ct, ct_len, tag, pt) != 0)
	{
		/*
		 * GCM decrypts before it checks the tag: with the right key and the
		 * wrong associated data (a moved row) pt now holds the real secret.
		 */
		if (ct_len > 0)
			OPENSSL_cleanse(pt, ct_len);
		return -1;
	}
	return 0;
}

int
secret_box_hmac_sha256(const uint8_t *key, size_t key_len,
					   const uint8_t *msg, size_t msg_len, uint8_t out[32])
{
	size_t		out_len = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len,
				  msg, msg_len, out, 32, &out_len) == NULL || out_len != 32)
		return -1;
	return 0;
}
