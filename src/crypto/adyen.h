/*
 * adyen.h — Adyen notification HMAC: base64 HMAC-SHA256, under the
 * hex-decoded HMAC key, over the colon-joined fields
 * pspReference:originalReference:merchantAccountCode:merchantReference:
 * value:currency:eventCode:success (no escaping).  Plain C.
 */
#ifndef PAY_ADYEN_H
#define PAY_ADYEN_H

#include <stddef.h>
#include <stdint.h>

#include "hmac.h"

/* The signed fields, in signing order; value and currency are amount's. */
#define ADYEN_FIELDS 8
/* base64 of 32 bytes: 44 characters and a NUL. */
#define ADYEN_SIGNATURE_LEN 45
/* Longest hex key accepted (Adyen's are 64 hex digits). */
#define ADYEN_KEY_HEX_MAX 256

/* The field names in signing order ("value" and "currency" live under "amount"). */
extern const char *const adyen_field_names[ADYEN_FIELDS];

/*
 * Decodes an Adyen HMAC key from hex into key (ADYEN_KEY_HEX_MAX / 2 bytes);
 * -1 when it is empty, too long, of odd length or not hex.
 */
extern int	adyen_decode_key(const char *hex, size_t hex_len, uint8_t *key, size_t *key_len);

/*
 * Writes the base64 signature of fields[0..ADYEN_FIELDS-1] (missing fields
 * as empty parts) and a NUL into out; 0 on success, -1 on failure.
 */
extern int	adyen_sign(const uint8_t *key, size_t key_len, const CryptoPart fields[ADYEN_FIELDS],
					   char out[ADYEN_SIGNATURE_LEN]);

/*
 * 1 when signature (base64, sig_len bytes) is the HMAC of the fields under
 * key, compared in constant time; 0 when it is not (or does not decode);
 * -1 when OpenSSL fails.
 */
extern int	adyen_verify(const uint8_t *key, size_t key_len, const CryptoPart fields[ADYEN_FIELDS],
						 const char *signature, size_t sig_len);

#endif
