/*
 * sign_rsa.h — what the RSA signer glue files (sign_rsa.c, sign_wechatpay.c,
 * sign_paypal.c) share: key loading that raises 22023, and base64
 * SHA256withRSA over a byte string.
 */
#ifndef PAY_SIGN_RSA_H
#define PAY_SIGN_RSA_H

#include "pkey.h"

/* The cached key of a private key argument; raises 22023 naming arg_name (never the key). */
extern PkeyRsa *SignRsaPrivateKey(const text *key_text, const char *arg_name);

/* The cached key of a public key or certificate argument; raises 22023 naming arg_name. */
extern PkeyRsa *SignRsaPublicKey(const text *key_text, const char *arg_name);

/* base64 SHA256withRSA signature of msg, as text. */
extern text *SignRsaSignBase64(PkeyRsa *key, const char *msg, size_t msg_len);

/* true if sig_b64 is the base64 of a valid signature of msg; false for anything else. */
extern bool SignRsaVerifyBase64(PkeyRsa *key, const char *msg, size_t msg_len,
								const char *sig_b64, size_t sig_b64_len);

#endif							/* PAY_SIGN_RSA_H */
