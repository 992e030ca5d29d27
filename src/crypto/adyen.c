/*
 * adyen.c — Adyen notification HMAC (see adyen.h).
 */
#include "adyen.h"

#include "base64.h"
#include "ct.h"
#include "hex.h"

const char *const adyen_field_names[ADYEN_FIELDS] = {
	"pspReference", "originalReference", "merchantAccountCode", "merchantReference",
	"value", "currency", "eventCode", "success"
};

int
adyen_decode_key(const char *hex, size_t hex_len, uint8_t *key, size_t *key_len)
{
	if (hex_len == 0 || hex_len > ADYEN_KEY_HEX_MAX)
		return -1;
	return hex_decode(hex, hex_len, key, ADYEN_KEY_HEX_MAX / 2, key_len);
}

/* HMAC-SHA256 over the colon-joined fields; 0 on success. */
static int
AdyenMac(const uint8_t *key, size_t key_len, const CryptoPart fields[ADYEN_FIELDS],
		 uint8_t mac[HMAC_SHA256_LEN])
{
	CryptoPart	parts[2 * ADYEN_FIELDS - 1];
	size_t		i;

	for (i = 0; i < ADYEN_FIELDS; i++)
	{
		parts[2 * i] = fields[i];
		if (i + 1 < ADYEN_FIELDS)
		{
			parts[2 * i + 1].data = ":";
			parts[2 * i + 1].len = 1;
		}
	}
	return hmac_sha256_parts(key, key_len, parts, 2 * ADYEN_FIELDS - 1, mac);
}

int
adyen_sign(const uint8_t *key, size_t key_len, const CryptoPart fields[ADYEN_FIELDS],
		   char out[ADYEN_SIGNATURE_LEN])
{
	uint8_t		mac[HMAC_SHA256_LEN];

	if (AdyenMac(key, key_len, fields, mac) != 0)
		return -1;
	base64_encode(mac, HMAC_SHA256_LEN, out);
	return 0;
}

int
adyen_verify(const uint8_t *key, size_t key_len, const CryptoPart fields[ADYEN_FIELDS],
			 const char *signature, size_t sig_len)
{
	uint8_t		mac[HMAC_SHA256_LEN];
	uint8_t		sig[HMAC_SHA256_LEN];
	size_t		got = 0;

	if (signature == NULL ||
		base64_decode(signature, sig_len, sig, sizeof(sig), &got) != 0 ||
		got != HMAC_SHA256_LEN)
		return 0;
	if (AdyenMac(key, key_len, fields, mac) != 0)
		return -1;
	return ct_equal(mac, sig, HMAC_SHA256_LEN);
}
