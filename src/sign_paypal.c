/*
 * sign_paypal.c — SQL glue for PayPal webhook signatures: SHA256withRSA with
 * the certificate named by PAYPAL-CERT-URL (fetched by the caller) over
 * transmission_id|transmission_time|webhook_id|crc32(body).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "crc32.h"
#include "pay.h"
#include "sign_rsa.h"

PG_FUNCTION_INFO_V1(pay_paypal_signature_valid);
PG_FUNCTION_INFO_V1(pay_crc32);

/* The headers the signature needs, in the order of PaypalHeaderNames. */
enum
{
	PP_TRANSMISSION_ID,
	PP_TRANSMISSION_TIME,
	PP_TRANSMISSION_SIG,
	PP_AUTH_ALGO,
	PP_NHEADERS
};

static const char *const PaypalHeaderNames[PP_NHEADERS] = {
	"paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig",
	"paypal-auth-algo"
};

/*
 * Collect the PayPal headers from a JSON object of name -> string, names
 * case-insensitive.  false if one is repeated (in any case) or not a string.
 */
static bool
PaypalHeaders(Jsonb *headers, char *values[PP_NHEADERS])
{
	JsonbIterator *it = JsonbIteratorInit(&headers->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			current = -1;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			int			h;

			current = -1;
			for (h = 0; h < PP_NHEADERS; h++)
				if (v.val.string.len == (int) strlen(PaypalHeaderNames[h]) &&
					pg_strncasecmp(v.val.string.val, PaypalHeaderNames[h], v.val.string.len) == 0)
					current = h;
		}
		else if (tok == WJB_VALUE && current >= 0)
		{
			if (values[current] != NULL || v.type != jbvString)
				return false;
			values[current] = pnstrdup(v.val.string.val, v.val.string.len);
		}
	}
	return true;
}

/* pay.paypal_signature_valid(headers, body, webhook_id, certificate_pem) -> does the webhook verify */
Datum
pay_paypal_signature_valid(PG_FUNCTION_ARGS)
{
	Jsonb	   *headers = PG_GETARG_JSONB_P(0);
	text	   *body = PG_GETARG_TEXT_PP(1);
	char	   *webhook_id = text_to_cstring(PG_GETARG_TEXT_PP(2));
	PkeyRsa    *key = SignRsaPublicKey(PG_GETARG_TEXT_PP(3), "certificate_pem");
	char	   *values[PP_NHEADERS] = {NULL};
	uint32_t	crc;
	char	   *msg;

	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("headers must be a JSON object of header names to strings")));
	if (!PaypalHeaders(headers, values) ||
		values[PP_TRANSMISSION_ID] == NULL || values[PP_TRANSMISSION_TIME] == NULL ||
		values[PP_TRANSMISSION_SIG] == NULL)
		PG_RETURN_BOOL(false);
	if (values[PP_AUTH_ALGO] != NULL && pg_strcasecmp(values[PP_AUTH_ALGO], "SHA256withRSA") != 0)
		PG_RETURN_BOOL(false);
	/* a "|" inside a field would let the fields shift under the same signature */
	if (strchr(values[PP_TRANSMISSION_ID], '|') != NULL ||
		strchr(values[PP_TRANSMISSION_TIME], '|') != NULL)
		PG_RETURN_BOOL(false);

	crc = crc32_ieee(0, (const uint8_t *) VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));
	msg = psprintf("%s|%s|%s|%u", values[PP_TRANSMISSION_ID], values[PP_TRANSMISSION_TIME],
				   webhook_id, crc);
	PG_RETURN_BOOL(SignRsaVerifyBase64(key, msg, strlen(msg), values[PP_TRANSMISSION_SIG],
									   strlen(values[PP_TRANSMISSION_SIG])));
}

/* pay._crc32(bytea) -> zlib's CRC-32 of the bytes (for tests) */
Datum
pay_crc32(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_INT64((int64) crc32_ieee(0, (const uint8_t *) VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data)));
}
