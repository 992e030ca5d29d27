/*
 * sign_alipay.c — SQL glue for Alipay RSA2 (SHA256withRSA): signing our
 * requests and verifying asynchronous notifies over the canonical parameter
 * string (sign_canonical.c), and verifying synchronous gateway answers over
 * the raw text of their *_response member (proto/alipay_response.c).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "alipay_response.h"
#include "pay.h"
#include "sign_canonical.h"
#include "sign_rsa.h"

PG_FUNCTION_INFO_V1(pay_alipay_sign);
PG_FUNCTION_INFO_V1(pay_alipay_signature_valid);
PG_FUNCTION_INFO_V1(pay_alipay_response_valid);

/* pay.alipay_sign(params, private_key_pem, exclude) -> base64 RSA2 signature of canonical_query(params, exclude) */
Datum
pay_alipay_sign(PG_FUNCTION_ARGS)
{
	Jsonb	   *params = PG_GETARG_JSONB_P(0);
	text	   *key_text = PG_GETARG_TEXT_PP(1);
	ArrayType  *exclude = PG_GETARG_ARRAYTYPE_P(2);
	size_t		len = 0;
	char	   *canonical = CanonicalQueryJsonb(params, exclude, &len);

	PG_RETURN_TEXT_P(SignRsaSignBase64(SignRsaPrivateKey(key_text, "private_key_pem"),
									   canonical, len));
}

/* pay.alipay_signature_valid(params, public_key_pem, exclude) -> does params->>'sign' verify */
Datum
pay_alipay_signature_valid(PG_FUNCTION_ARGS)
{
	Jsonb	   *params = PG_GETARG_JSONB_P(0);
	PkeyRsa    *key = SignRsaPublicKey(PG_GETARG_TEXT_PP(1), "public_key_pem");
	ArrayType  *exclude = PG_GETARG_ARRAYTYPE_P(2);
	size_t		len = 0;
	char	   *canonical = CanonicalQueryJsonb(params, exclude, &len);	/* 22023 unless an object */
	JsonbValue *sign = getKeyJsonValueFromContainer(&params->root, "sign", 4, NULL);

	if (sign == NULL || sign->type != jbvString)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(SignRsaVerifyBase64(key, canonical, len, sign->val.string.val, sign->val.string.len));
}

/* pay.alipay_response_valid(response_body, public_key_pem) -> does the *_response member verify */
Datum
pay_alipay_response_valid(PG_FUNCTION_ARGS)
{
	text	   *body = PG_GETARG_TEXT_PP(0);
	PkeyRsa    *key = SignRsaPublicKey(PG_GETARG_TEXT_PP(1), "public_key_pem");
	const char *s = VARDATA_ANY(body);
	AlipayResponse resp;
	char	   *sign;
	size_t		sign_len = 0;
	bool		valid;

	if (alipay_response_scan(s, VARSIZE_ANY_EXHDR(body), &resp) != ALIPAY_RESPONSE_OK)
		PG_RETURN_BOOL(false);
	sign = palloc(resp.sign_len + 1);
	if (alipay_json_unescape(s + resp.sign_off, resp.sign_len, sign, &sign_len) != 0)
		PG_RETURN_BOOL(false);
	valid = SignRsaVerifyBase64(key, s + resp.content_off, resp.content_len, sign, sign_len);
	pfree(sign);
	PG_RETURN_BOOL(valid);
}
