/*
 * sign_wechatpay.c — SQL glue for WeChat Pay API v3: the signed Authorization
 * header of our requests, verification of its callbacks, AEAD_AES_256_GCM
 * decryption of callback resources, and parsing of Authorization headers.
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "aead.h"
#include "base64.h"
#include "pay.h"
#include "sign_rsa.h"
#include "wechatpay_auth.h"

PG_FUNCTION_INFO_V1(pay_wechatpay_authorization);
PG_FUNCTION_INFO_V1(pay_wechatpay_signature_valid);
PG_FUNCTION_INFO_V1(pay_wechatpay_decrypt);
PG_FUNCTION_INFO_V1(pay_wechatpay_parse_authorization);

/* Raise 22023 for a header field that WeChat Pay's header cannot carry. */
static void
CheckField(WechatpayAuthField f, const char *arg_name, const text *value)
{
	if (!wechatpay_auth_value_ok(f, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s for a WeChat Pay Authorization header", arg_name),
				 errdetail("It must be 1 to %d bytes of printable ASCII without spaces, quotes or backslashes.",
						   WECHATPAY_AUTH_VALUE_MAX)));
}

/* Append a text argument and a newline: one line of a WeChat Pay message. */
static void
AppendLine(StringInfo buf, const text *t)
{
	appendBinaryStringInfo(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	appendStringInfoChar(buf, '\n');
}

/*
 * pay.wechatpay_authorization(method, url, body, mchid, serial_no, private_key_pem, ts, nonce)
 * -> the Authorization header of a request, signed over METHOD\nURL\nTS\nNONCE\nBODY\n
 */
Datum
pay_wechatpay_authorization(PG_FUNCTION_ARGS)
{
	text	   *method = PG_GETARG_TEXT_PP(0);
	text	   *url = PG_GETARG_TEXT_PP(1);
	text	   *body = PG_GETARG_TEXT_PP(2);
	text	   *mchid = PG_GETARG_TEXT_PP(3);
	text	   *serial_no = PG_GETARG_TEXT_PP(4);
	text	   *private_key_pem = PG_GETARG_TEXT_PP(5);
	int64		ts = PG_GETARG_INT64(6);
	text	   *nonce = PG_GETARG_TEXT_PP(7);
	char		ts_text[32];
	StringInfoData msg;
	text	   *signature;
	WechatpayAuth auth;
	size_t		len;
	char	   *header;

	if (!wechatpay_method_ok(VARDATA_ANY(method), VARSIZE_ANY_EXHDR(method)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid method for a WeChat Pay request"),
				 errdetail("It must be an upper-case HTTP method such as GET or POST.")));
	if (!wechatpay_url_ok(VARDATA_ANY(url), VARSIZE_ANY_EXHDR(url)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid url for a WeChat Pay request"),
				 errdetail("It must be the path and query of the request, starting with \"/\", without spaces or control characters.")));
	if (ts < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ts must not be negative")));
	CheckField(WECHATPAY_MCHID, "mchid", mchid);
	CheckField(WECHATPAY_SERIAL_NO, "serial_no", serial_no);
	CheckField(WECHATPAY_NONCE_STR, "nonce", nonce);
	snprintf(ts_text, sizeof(ts_text), INT64_FORMAT, ts);

	initStringInfo(&msg);
	AppendLine(&msg, method);
	AppendLine(&msg, url);
	appendStringInfo(&msg, "%s\n", ts_text);
	AppendLine(&msg, nonce);
	AppendLine(&msg, body);
	signature = SignRsaSignBase64(SignRsaPrivateKey(private_key_pem, "private_key_pem"),
								  msg.data, msg.len);

	auth.value[WECHATPAY_MCHID] = VARDATA_ANY(mchid);
	auth.len[WECHATPAY_MCHID] = VARSIZE_ANY_EXHDR(mchid);
	auth.value[WECHATPAY_NONCE_STR] = VARDATA_ANY(nonce);
	auth.len[WECHATPAY_NONCE_STR] = VARSIZE_ANY_EXHDR(nonce);
	auth.value[WECHATPAY_SIGNATURE] = VARDATA_ANY(signature);
	auth.len[WECHATPAY_SIGNATURE] = VARSIZE_ANY_EXHDR(signature);
	auth.value[WECHATPAY_TIMESTAMP] = ts_text;
	auth.len[WECHATPAY_TIMESTAMP] = strlen(ts_text);
	auth.value[WECHATPAY_SERIAL_NO] = VARDATA_ANY(serial_no);
	auth.len[WECHATPAY_SERIAL_NO] = VARSIZE_ANY_EXHDR(serial_no);
	len = wechatpay_auth_format(&auth, NULL, 0);
	if (len == 0)
		elog(ERROR, "WeChat Pay Authorization header fields were not checked");
	header = palloc(len + 1);
	wechatpay_auth_format(&auth, header, len + 1);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(header, (int) len));
}

/*
 * pay.wechatpay_signature_valid(ts, nonce, body, signature, public_key_pem)
 * -> does the Wechatpay-Signature verify over TS\nNONCE\nBODY\n
 */
Datum
pay_wechatpay_signature_valid(PG_FUNCTION_ARGS)
{
	text	   *ts = PG_GETARG_TEXT_PP(0);
	text	   *nonce = PG_GETARG_TEXT_PP(1);
	text	   *body = PG_GETARG_TEXT_PP(2);
	text	   *signature = PG_GETARG_TEXT_PP(3);
	PkeyRsa    *key = SignRsaPublicKey(PG_GETARG_TEXT_PP(4), "public_key_pem");
	StringInfoData msg;
	bool		valid;

	/* a newline in ts or nonce would let lines of the message shift */
	if (memchr(VARDATA_ANY(ts), '\n', VARSIZE_ANY_EXHDR(ts)) != NULL ||
		memchr(VARDATA_ANY(nonce), '\n', VARSIZE_ANY_EXHDR(nonce)) != NULL)
		PG_RETURN_BOOL(false);
	initStringInfo(&msg);
	AppendLine(&msg, ts);
	AppendLine(&msg, nonce);
	AppendLine(&msg, body);
	valid = SignRsaVerifyBase64(key, msg.data, msg.len,
								VARDATA_ANY(signature), VARSIZE_ANY_EXHDR(signature));
	pfree(msg.data);
	PG_RETURN_BOOL(valid);
}

/*
 * pay.wechatpay_decrypt(apiv3_key, nonce, associated_data, ciphertext)
 * -> the plaintext of an AEAD_AES_256_GCM callback resource
 */
Datum
pay_wechatpay_decrypt(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	text	   *nonce = PG_GETARG_TEXT_PP(1);
	text	   *aad = PG_GETARG_TEXT_PP(2);
	text	   *ciphertext = PG_GETARG_TEXT_PP(3);
	size_t		b64_len = VARSIZE_ANY_EXHDR(ciphertext);
	size_t		cap = b64_len / 4 * 3 + 3;
	uint8_t    *ct = palloc(cap);
	size_t		ct_len = 0;
	size_t		pt_len;
	char	   *pt;
	text	   *result;

	if (VARSIZE_ANY_EXHDR(key) != AEAD_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("apiv3_key must be %d bytes, not %d",
						AEAD_KEY_LEN, (int) VARSIZE_ANY_EXHDR(key))));
	if (VARSIZE_ANY_EXHDR(nonce) != AEAD_NONCE_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nonce must be %d bytes, not %d",
						AEAD_NONCE_LEN, (int) VARSIZE_ANY_EXHDR(nonce))));
	if (base64_decode(VARDATA_ANY(ciphertext), b64_len, ct, cap, &ct_len) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ciphertext is not valid base64")));
	if (ct_len < AEAD_TAG_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ciphertext is shorter than its %d-byte authentication tag", AEAD_TAG_LEN)));

	pt_len = ct_len - AEAD_TAG_LEN;
	pt = palloc(pt_len + 1);
	if (aead_decrypt((const uint8_t *) VARDATA_ANY(key), (const uint8_t *) VARDATA_ANY(nonce),
					 (const uint8_t *) VARDATA_ANY(aad), VARSIZE_ANY_EXHDR(aad),
					 ct, pt_len, ct + pt_len, (uint8_t *) pt) != 0)
	{
		explicit_bzero(pt, pt_len + 1);
		ereport(ERROR,
				(errcode(ERRCODE_PAY_SIGNATURE_INVALID),
				 errmsg("WeChat Pay ciphertext failed authentication"),
				 errdetail("The APIv3 key, nonce or associated data is wrong, or the ciphertext was altered.")));
	}
	if (!pg_verifymbstr(pt, (int) pt_len, true))
	{
		explicit_bzero(pt, pt_len + 1);
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("decrypted WeChat Pay resource is not valid text in the database encoding")));
	}
	result = cstring_to_text_with_len(pt, (int) pt_len);
	explicit_bzero(pt, pt_len + 1);
	pfree(pt);
	pfree(ct);
	PG_RETURN_TEXT_P(result);
}

/*
 * pay.wechatpay_parse_authorization(header) -> {"mchid", "nonce_str", "signature",
 * "timestamp", "serial_no"} as strings, or NULL if the header is malformed
 */
Datum
pay_wechatpay_parse_authorization(PG_FUNCTION_ARGS)
{
	text	   *header = PG_GETARG_TEXT_PP(0);
	WechatpayAuth auth;
	StringInfoData json;
	int			f;

	if (wechatpay_auth_parse(VARDATA_ANY(header), VARSIZE_ANY_EXHDR(header), &auth) != 0)
		PG_RETURN_NULL();
	initStringInfo(&json);
	appendStringInfoChar(&json, '{');
	for (f = 0; f < WECHATPAY_NFIELDS; f++)
	{
		char	   *value = pnstrdup(auth.value[f], auth.len[f]);

		if (f > 0)
			appendStringInfoChar(&json, ',');
		escape_json(&json, wechatpay_auth_names[f]);
		appendStringInfoChar(&json, ':');
		escape_json(&json, value);
		pfree(value);
	}
	appendStringInfoChar(&json, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
}
