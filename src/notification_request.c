/*
 * notification_request.c — pay._build_merchant_notification(r pay.outbox,
 * p_secret text DEFAULT NULL): the signed HTTP request of a merchant
 * notification.
 *
 * The form fields are the row's params plus a new timestamp (Unix seconds)
 * and nonce (32 hex digits) for every attempt, signed with pay.sign_params
 * under the merchant's api_secret (the caller's p_secret, else read from the
 * secret store) and form-encoded by pay.form_urlencode: the same functions
 * the SQL signature checks use, so the bytes are those of the SQL builder
 * this replaces.  The merchant's notify_url comes from the lookup cache
 * (lookup_cache.c): a claim's notifications do not read pay.merchants once
 * per row.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "lookup_cache.h"
#include "pay.h"
#include "secret_store.h"

PG_FUNCTION_INFO_V1(pay_build_merchant_notification);

extern Datum pay_sign_params(PG_FUNCTION_ARGS);
extern Datum pay_form_urlencode(PG_FUNCTION_ARGS);

/* A destination is "merchant:" followed by the merchant's code. */
#define MERCHANT_PREFIX_LEN 9

/*
 * The notify_url of destination's merchant, from the lookup cache (which a
 * change of pay.merchants empties); raises 22023 when there is none.
 */
static const char *
NotifyUrl(const char *destination)
{
	const char *code = strlen(destination) > MERCHANT_PREFIX_LEN ? destination + MERCHANT_PREFIX_LEN : "";
	int64		id;
	char	   *url = NULL;

	if (LookupMerchantId(code, &id))
		url = LookupMerchantNotifyUrl(id);
	if (url == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("merchant of %s has no notify_url", destination)));
	return url;
}

/* A one-key JSON object {"key": "value"}; value holds no character JSON must escape. */
static Datum
PlainObject(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/*
 * 32 lower-case hex digits: a version 4 UUID without its dashes, as
 * gen_random_uuid() gives it.
 */
static void
NewNonce(char out[33])
{
	static const char digits[] = "0123456789abcdef";
	uint8		b[16];
	int			i;

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a nonce")));
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	for (i = 0; i < 16; i++)
	{
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 0x0f];
	}
	out[32] = '\0';
}

/* params || {"timestamp": now in Unix seconds, "nonce": new}. */
static Datum
FieldsWithTimestampAndNonce(Datum params)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		unix_s = now / USECS_PER_SEC +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
	char		nonce[33];
	char		json[128];

	if (now < 0 && now % USECS_PER_SEC != 0)
		unix_s--;				/* floor, as the SQL builder had it */
	NewNonce(nonce);
	snprintf(json, sizeof(json), "{\"timestamp\": \"" INT64_FORMAT "\", \"nonce\": \"%s\"}", unix_s, nonce);
	return DirectFunctionCall2(jsonb_concat, params, PlainObject(json));
}

/* fields || {"sign": HMAC-SHA256 of their canonical string under secret}. */
static Datum
SignedFields(Datum fields, text *secret)
{
	text	   *sign = DatumGetTextPP(DirectFunctionCall2(pay_sign_params, fields, PointerGetDatum(secret)));
	char	   *json = psprintf("{\"sign\": \"%s\"}", text_to_cstring(sign));

	return DirectFunctionCall2(jsonb_concat, fields, PlainObject(json));
}

/* The api_secret of destination from the secret store; 42704 when it is not set. */
static text *
StoredSecret(const char *destination)
{
	size_t		len;
	char	   *plain = SecretFetchIfExists(destination, "api_secret", &len);
	text	   *secret;

	if (plain == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("secret \"api_secret\" of \"%s\" is not set", destination),
				 errhint("Store it with pay.set_secret.")));
	secret = cstring_to_text_with_len(plain, (int) len);
	SecretScrub(plain, len);
	return secret;
}

/* The request: POST to notify_url, form body, Content-Type and Idempotency-Key headers. */
static Datum
RequestDatum(FunctionCallInfo fcinfo, const char *url, const char *idempotency_key, Datum body)
{
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	Datum		headers[2];

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pay._build_merchant_notification must return pay.http_request");
	desc = BlessTupleDesc(desc);
	headers[0] = CStringGetTextDatum("Content-Type: application/x-www-form-urlencoded");
	headers[1] = CStringGetTextDatum(psprintf("Idempotency-Key: %s", idempotency_key));
	values[0] = CStringGetTextDatum("POST");
	values[1] = CStringGetTextDatum(url);
	values[2] = PointerGetDatum(construct_array(headers, 2, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = body;
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/* A text column of the outbox row, as a C string (NULL when null). */
static char *
RowText(HeapTupleHeader row, const char *column)
{
	bool		isnull;
	Datum		d = GetAttributeByName(row, column, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* pay._build_merchant_notification(r pay.outbox, p_secret text DEFAULT NULL) -> pay.http_request */
Datum
pay_build_merchant_notification(PG_FUNCTION_ARGS)
{
	HeapTupleHeader row;
	char	   *destination;
	char	   *idempotency_key;
	const char *url;
	Datum		params;
	Datum		fields;
	text	   *secret;
	bool		isnull;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("merchant of <NULL> has no notify_url")));
	row = PG_GETARG_HEAPTUPLEHEADER(0);
	destination = RowText(row, "destination");
	if (destination == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("merchant of <NULL> has no notify_url")));
	url = NotifyUrl(destination);
	idempotency_key = RowText(row, "idempotency_key");
	params = GetAttributeByName(row, "params", &isnull);
	if (isnull || idempotency_key == NULL)
		PG_RETURN_NULL();		/* columns NOT NULL in pay.outbox; a built row may lack them */
	secret = PG_ARGISNULL(1) ? StoredSecret(destination) : PG_GETARG_TEXT_PP(1);
	fields = SignedFields(FieldsWithTimestampAndNonce(params), secret);
	PG_RETURN_DATUM(RequestDatum(fcinfo, url, idempotency_key,
								 DirectFunctionCall1(pay_form_urlencode, fields)));
}
