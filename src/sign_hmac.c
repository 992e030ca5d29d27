/*
 * sign_hmac.c — SQL glue for the HMAC family of signatures: HMAC-SHA256 of a
 * message or of a canonical parameter string, the SHA-256-with-secret variant,
 * Stripe webhook signatures and Adyen notification HMACs (crypto/hmac.c,
 * crypto/stripe.c, crypto/adyen.c).  Secrets never appear in messages.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "adyen.h"
#include "hmac.h"
#include "sign_canonical.h"
#include "stripe.h"

PG_FUNCTION_INFO_V1(pay_hmac_sha256_hex);
PG_FUNCTION_INFO_V1(pay_sign_params);
PG_FUNCTION_INFO_V1(pay_sign_params_sha256);
PG_FUNCTION_INFO_V1(pay_stripe_signature_header);
PG_FUNCTION_INFO_V1(pay_stripe_signature_valid);
PG_FUNCTION_INFO_V1(pay_adyen_hmac_signature);
PG_FUNCTION_INFO_V1(pay_adyen_hmac_valid);

/* Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define PG_UNIX_EPOCH_OFFSET_S ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

/* '{sign,sign_type}', the default exclusion list, built once per backend. */
static ArrayType *default_exclude = NULL;

/* The default exclusion list of canonical_query. */
static ArrayType *
DefaultExclude(void)
{
	if (default_exclude == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		Datum		elems[2];

		elems[0] = CStringGetTextDatum("sign");
		elems[1] = CStringGetTextDatum("sign_type");
		default_exclude = construct_array(elems, 2, TEXTOID, -1, false, TYPALIGN_INT);
		MemoryContextSwitchTo(old);
	}
	return default_exclude;
}

/* Raise 22023 unless a key argument (name given) is usable as an HMAC key. */
static void
CheckKey(const char *argname, text *key, bool allow_empty)
{
	size_t		len = VARSIZE_ANY_EXHDR(key);

	if (len == 0 && !allow_empty)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname)));
	if (len > HMAC_KEY_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", argname),
				 errdetail("It has %zu bytes; the limit is %d.", len, HMAC_KEY_MAX)));
}

/* An OpenSSL failure: an internal error, not the caller's fault. */
static void
CryptoFailed(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("could not compute %s", what)));
}

/*
 * 32 bytes as lower-case hex text.  (crypto/hex.h cannot be included next to
 * utils/builtins.h, which declares PostgreSQL's own hex_encode.)
 */
static text *
DigestHexText(const uint8_t digest[32])
{
	static const char digits[] = "0123456789abcdef";
	char		hex[64];
	int			i;

	for (i = 0; i < 32; i++)
	{
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 0x0f];
	}
	return cstring_to_text_with_len(hex, 64);
}

/* pay.hmac_sha256_hex(key text, message text) -> hex HMAC-SHA256 */
Datum
pay_hmac_sha256_hex(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	text	   *message = PG_GETARG_TEXT_PP(1);
	uint8_t		mac[HMAC_SHA256_LEN];

	CheckKey("key", key, true);
	if (hmac_sha256((const uint8_t *) VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
					(const uint8_t *) VARDATA_ANY(message), VARSIZE_ANY_EXHDR(message), mac) != 0)
		CryptoFailed("HMAC-SHA256");
	PG_RETURN_TEXT_P(DigestHexText(mac));
}

/* pay.sign_params(params jsonb, secret text) -> hex HMAC-SHA256 of canonical_query(params) */
Datum
pay_sign_params(PG_FUNCTION_ARGS)
{
	Jsonb	   *params = PG_GETARG_JSONB_P(0);
	text	   *secret = PG_GETARG_TEXT_PP(1);
	uint8_t		mac[HMAC_SHA256_LEN];
	size_t		len;
	char	   *canonical;

	CheckKey("secret", secret, false);
	canonical = CanonicalQueryJsonb(params, DefaultExclude(), &len);
	if (hmac_sha256((const uint8_t *) VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret),
					(const uint8_t *) canonical, len, mac) != 0)
		CryptoFailed("HMAC-SHA256");
	pfree(canonical);
	PG_RETURN_TEXT_P(DigestHexText(mac));
}

/* pay.sign_params_sha256(params jsonb, secret text) -> hex SHA-256 of canonical_query(params) || secret */
Datum
pay_sign_params_sha256(PG_FUNCTION_ARGS)
{
	Jsonb	   *params = PG_GETARG_JSONB_P(0);
	text	   *secret = PG_GETARG_TEXT_PP(1);
	uint8_t		digest[SHA256_LEN];
	CryptoPart	parts[2];
	size_t		len;
	char	   *canonical;

	CheckKey("secret", secret, false);
	canonical = CanonicalQueryJsonb(params, DefaultExclude(), &len);
	parts[0].data = canonical;
	parts[0].len = len;
	parts[1].data = VARDATA_ANY(secret);
	parts[1].len = VARSIZE_ANY_EXHDR(secret);
	if (sha256_parts(parts, 2, digest) != 0)
		CryptoFailed("SHA-256");
	pfree(canonical);
	PG_RETURN_TEXT_P(DigestHexText(digest));
}

/* Unix seconds (rounded down) of a finite timestamptz; raises 22023 naming argname otherwise. */
static int64
UnixSeconds(TimestampTz at, const char *argname)
{
	int64		s;

	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite timestamp", argname)));
	s = at / USECS_PER_SEC;
	if (at % USECS_PER_SEC < 0)
		s--;
	return s + PG_UNIX_EPOCH_OFFSET_S;
}

/* pay.stripe_signature_header(payload text, secret text, at timestamptz) -> "t=...,v1=..." */
Datum
pay_stripe_signature_header(PG_FUNCTION_ARGS)
{
	text	   *payload = PG_GETARG_TEXT_PP(0);
	text	   *secret = PG_GETARG_TEXT_PP(1);
	int64		t = UnixSeconds(PG_GETARG_TIMESTAMPTZ(2), "at");
	char		header[STRIPE_SIGNATURE_HEADER_LEN];

	CheckKey("secret", secret, false);
	if (t < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at must not be before 1970-01-01 00:00:00+00"),
				 errdetail("Stripe timestamps are unsigned Unix seconds.")));
	if (stripe_sign((const uint8_t *) VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret),
					VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload), t, header) != 0)
		CryptoFailed("the Stripe signature");
	PG_RETURN_TEXT_P(cstring_to_text(header));
}

/*
 * pay.stripe_signature_valid(payload, header, secret, tolerance_s, at) -> boolean
 * Not STRICT: a missing payload or header is an invalid signature (false),
 * never NULL; a missing secret, tolerance or time is the caller's error.
 */
Datum
pay_stripe_signature_valid(PG_FUNCTION_ARGS)
{
	text	   *payload;
	text	   *header;
	text	   *secret;
	int32		tolerance_s;
	int64		now;
	StripeVerdict verdict;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret must not be null")));
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tolerance_s must not be null")));
	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at must not be null")));
	secret = PG_GETARG_TEXT_PP(2);
	tolerance_s = PG_GETARG_INT32(3);
	now = UnixSeconds(PG_GETARG_TIMESTAMPTZ(4), "at");
	CheckKey("secret", secret, false);
	if (tolerance_s < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tolerance_s must not be negative"),
				 errhint("Use 0 to disable the timestamp check.")));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);

	payload = PG_GETARG_TEXT_PP(0);
	header = PG_GETARG_TEXT_PP(1);
	verdict = stripe_verify(VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload),
							VARDATA_ANY(header), VARSIZE_ANY_EXHDR(header),
							(const uint8_t *) VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret),
							now, tolerance_s);
	if (verdict == STRIPE_ERROR)
		CryptoFailed("the Stripe signature");
	PG_RETURN_BOOL(verdict == STRIPE_VALID);
}

/*
 * Sets part to the text of field name of an object container: strings as
 * they are, numbers and booleans as JSON text, missing or null as empty.
 * Anything else raises 22023.
 */
static void
AdyenField(JsonbContainer *obj, const char *name, CryptoPart *part)
{
	JsonbValue	v;
	char	   *s;

	part->data = NULL;
	part->len = 0;
	if (obj == NULL || getKeyJsonValueFromContainer(obj, name, strlen(name), &v) == NULL)
		return;
	switch (v.type)
	{
		case jbvNull:
			break;
		case jbvString:
			part->data = v.val.string.val;
			part->len = v.val.string.len;
			break;
		case jbvNumeric:
			s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
			part->data = s;
			part->len = strlen(s);
			break;
		case jbvBool:
			part->data = v.val.boolean ? "true" : "false";
			part->len = strlen(part->data);
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("item field %s must be a JSON string, number or boolean", name)));
	}
}

/* The object container of item member name, NULL when missing or JSON null; 22023 otherwise. */
static JsonbContainer *
AdyenObject(JsonbContainer *obj, const char *name, bool strict)
{
	JsonbValue	v;

	if (getKeyJsonValueFromContainer(obj, name, strlen(name), &v) == NULL || v.type == jbvNull)
		return NULL;
	if (v.type == jbvBinary && JsonContainerIsObject(v.val.binary.data))
		return v.val.binary.data;
	if (!strict)
		return NULL;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("item field %s must be a JSON object", name)));
	return NULL;				/* keep the compiler quiet */
}

/* The eight signed fields of a NotificationRequestItem. */
static void
AdyenFields(Jsonb *item, CryptoPart fields[ADYEN_FIELDS])
{
	JsonbContainer *amount;
	int			i;

	if (!JB_ROOT_IS_OBJECT(item))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("item must be a JSON object"),
				 errdetail("It is a JSON %s.", JB_ROOT_IS_SCALAR(item) ? "scalar" : "array")));
	amount = AdyenObject(&item->root, "amount", true);
	for (i = 0; i < ADYEN_FIELDS; i++)
	{
		const char *name = adyen_field_names[i];
		bool		in_amount = strcmp(name, "value") == 0 || strcmp(name, "currency") == 0;

		AdyenField(in_amount ? amount : &item->root, name, &fields[i]);
	}
}

/* The HMAC key from its hex text; 22023 when it is not hex. */
static void
AdyenKey(text *key_hex, uint8_t *key, size_t *key_len)
{
	if (adyen_decode_key(VARDATA_ANY(key_hex), VARSIZE_ANY_EXHDR(key_hex), key, key_len) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hmac_key_hex is not a hex HMAC key"),
				 errdetail("It must be an even number of hex digits, 2 to %d of them.",
						   ADYEN_KEY_HEX_MAX)));
}

/* pay.adyen_hmac_signature(item jsonb, hmac_key_hex text) -> base64 HMAC-SHA256 */
Datum
pay_adyen_hmac_signature(PG_FUNCTION_ARGS)
{
	Jsonb	   *item = PG_GETARG_JSONB_P(0);
	text	   *key_hex = PG_GETARG_TEXT_PP(1);
	uint8_t		key[ADYEN_KEY_HEX_MAX / 2];
	size_t		key_len = 0;
	CryptoPart	fields[ADYEN_FIELDS];
	char		sig[ADYEN_SIGNATURE_LEN];
	int			rc;

	AdyenKey(key_hex, key, &key_len);
	AdyenFields(item, fields);
	rc = adyen_sign(key, key_len, fields, sig);
	explicit_bzero(key, sizeof(key));
	if (rc != 0)
		CryptoFailed("the Adyen HMAC signature");
	PG_RETURN_TEXT_P(cstring_to_text(sig));
}

/*
 * pay.adyen_hmac_valid(item jsonb, hmac_key_hex text) -> boolean
 * Checks item->'additionalData'->>'hmacSignature'.  Not STRICT: a missing
 * item is invalid (false); a missing key is the caller's error.
 */
Datum
pay_adyen_hmac_valid(PG_FUNCTION_ARGS)
{
	Jsonb	   *item;
	text	   *key_hex;
	uint8_t		key[ADYEN_KEY_HEX_MAX / 2];
	size_t		key_len = 0;
	CryptoPart	fields[ADYEN_FIELDS];
	JsonbContainer *additional;
	JsonbValue	sig;
	int			rc;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hmac_key_hex must not be null")));
	key_hex = PG_GETARG_TEXT_PP(1);
	AdyenKey(key_hex, key, &key_len);
	if (PG_ARGISNULL(0))
	{
		explicit_bzero(key, sizeof(key));
		PG_RETURN_BOOL(false);
	}
	item = PG_GETARG_JSONB_P(0);
	AdyenFields(item, fields);
	additional = AdyenObject(&item->root, "additionalData", false);
	if (additional == NULL ||
		getKeyJsonValueFromContainer(additional, "hmacSignature", strlen("hmacSignature"), &sig) == NULL ||
		sig.type != jbvString)
	{
		explicit_bzero(key, sizeof(key));
		PG_RETURN_BOOL(false);
	}
	rc = adyen_verify(key, key_len, fields, sig.val.string.val, sig.val.string.len);
	explicit_bzero(key, sizeof(key));
	if (rc < 0)
		CryptoFailed("the Adyen HMAC signature");
	PG_RETURN_BOOL(rc == 1);
}
