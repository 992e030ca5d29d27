/*
 * sign_rsa.c — SQL glue for SHA256withRSA (PKCS#1 v1.5) signatures, and
 * the key loading and base64 signing/verifying that the Alipay, WeChat Pay
 * and PayPal glue share.  Keys are parsed and cached by crypto/pkey.c.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "base64.h"
#include "pay.h"
#include "sign_rsa.h"

/* Longest base64 signature text worth decoding (a PKEY_SIG_MAX-byte signature, with line breaks). */
#define SIG_B64_MAX (BASE64_ENCODED_LEN(PKEY_SIG_MAX) * 2)

PG_FUNCTION_INFO_V1(pay_rsa_sha256_sign);
PG_FUNCTION_INFO_V1(pay_rsa_sha256_valid);
PG_FUNCTION_INFO_V1(pay_rsa_key_cache_count);

/* Raise the error for a key argument that could not be used. */
static void
KeyError(PkeyResult r, const char *arg_name, const char *kind)
{
	if (r == PKEY_NO_MEMORY)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while loading %s", arg_name)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s is not a usable RSA %s", arg_name, kind),
			 errdetail("The argument is %s.", pkey_result_text(r)),
			 errhint("Pass a PEM key%s.",
					 strcmp(kind, "private key") == 0 ?
					 " (PKCS#8 \"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")" :
					 ", an X.509 certificate PEM, or the bare base64 key body")));
}

PkeyRsa *
SignRsaPrivateKey(const text *key_text, const char *arg_name)
{
	PkeyRsa    *key = NULL;
	PkeyResult	r = pkey_load_private(VARDATA_ANY(key_text), VARSIZE_ANY_EXHDR(key_text), &key);

	if (r != PKEY_OK)
		KeyError(r, arg_name, "private key");
	return key;
}

PkeyRsa *
SignRsaPublicKey(const text *key_text, const char *arg_name)
{
	PkeyRsa    *key = NULL;
	PkeyResult	r = pkey_load_public(VARDATA_ANY(key_text), VARSIZE_ANY_EXHDR(key_text), &key);

	if (r != PKEY_OK)
		KeyError(r, arg_name, "public key");
	return key;
}

text *
SignRsaSignBase64(PkeyRsa *key, const char *msg, size_t msg_len)
{
	uint8_t		sig[PKEY_SIG_MAX];
	size_t		sig_len = 0;
	char	   *b64;
	text	   *result;

	if (pkey_rsa_sha256_sign(key, (const uint8_t *) msg, msg_len, sig, &sig_len) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("RSA signing failed")));
	b64 = palloc(BASE64_ENCODED_LEN(sig_len) + 1);
	base64_encode(sig, sig_len, b64);
	result = cstring_to_text(b64);
	pfree(b64);
	return result;
}

bool
SignRsaVerifyBase64(PkeyRsa *key, const char *msg, size_t msg_len,
					const char *sig_b64, size_t sig_b64_len)
{
	uint8_t		sig[PKEY_SIG_MAX];
	size_t		sig_len = 0;

	if (sig_b64_len > SIG_B64_MAX ||
		base64_decode(sig_b64, sig_b64_len, sig, sizeof(sig), &sig_len) != 0)
		return false;
	return pkey_rsa_sha256_verify(key, (const uint8_t *) msg, msg_len, sig, sig_len) == 1;
}

/* pay.rsa_sha256_sign(message, private_key_pem) -> base64 PKCS#1 v1.5 SHA-256 signature */
Datum
pay_rsa_sha256_sign(PG_FUNCTION_ARGS)
{
	text	   *message = PG_GETARG_TEXT_PP(0);
	PkeyRsa    *key = SignRsaPrivateKey(PG_GETARG_TEXT_PP(1), "private_key_pem");

	PG_RETURN_TEXT_P(SignRsaSignBase64(key, VARDATA_ANY(message), VARSIZE_ANY_EXHDR(message)));
}

/* pay.rsa_sha256_valid(message, signature, public_key_pem) -> does it verify */
Datum
pay_rsa_sha256_valid(PG_FUNCTION_ARGS)
{
	text	   *message = PG_GETARG_TEXT_PP(0);
	text	   *signature = PG_GETARG_TEXT_PP(1);
	PkeyRsa    *key = SignRsaPublicKey(PG_GETARG_TEXT_PP(2), "public_key_pem");

	PG_RETURN_BOOL(SignRsaVerifyBase64(key, VARDATA_ANY(message), VARSIZE_ANY_EXHDR(message),
									   VARDATA_ANY(signature), VARSIZE_ANY_EXHDR(signature)));
}

/* pay._rsa_key_cache_count() -> keys parsed and cached in this backend (for tests) */
Datum
pay_rsa_key_cache_count(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(pkey_cache_count());
}
