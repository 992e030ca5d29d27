/*
 * order_args.c — pay._check_order_args: every argument of create_order
 * checked before anything is written, each refusal naming its field.
 *
 * It was PL/pgSQL; create_order calls it on every order, and in C it costs
 * a tenth as much.  The messages are the contract's (sql/bad_input.sql).
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "pay.h"

#define ORDER_NO_MAX		64
#define METADATA_BYTES_MAX	8192
#define KEY_MAX				255

PG_FUNCTION_INFO_V1(pay_check_order_args);

/* Does the text match the (cached) regular expression? */
static bool
Matches(text *value, const char *pattern)
{
	return DatumGetBool(DirectFunctionCall2Coll(textregexeq, DEFAULT_COLLATION_OID,
												PointerGetDatum(value),
												CStringGetTextDatum(pattern)));
}

static void
Refuse(int sqlstate, const char *message)
{
	ereport(ERROR, (errcode(sqlstate), errmsg_internal("%s", message)));
}

static void
CheckOrderNo(FunctionCallInfo fcinfo)
{
	text	   *no = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);

	if (no == NULL || VARSIZE_ANY_EXHDR(no) == 0)
		Refuse(ERRCODE_INVALID_PARAMETER_VALUE, "merchant_order_no must not be empty");
	if (DatumGetInt32(DirectFunctionCall1(textlen, PointerGetDatum(no))) > ORDER_NO_MAX)
		Refuse(ERRCODE_INVALID_PARAMETER_VALUE, "merchant_order_no is longer than 64 characters");
	if (Matches(no, "[[:space:][:cntrl:]]"))
		Refuse(ERRCODE_INVALID_PARAMETER_VALUE,
			   "merchant_order_no must not contain spaces or control characters");
}

static void
CheckAmount(FunctionCallInfo fcinfo)
{
	int64		amount;
	int64		max;

	if (PG_ARGISNULL(1) || PG_GETARG_INT64(1) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount must be a positive number of minor units, not %s",
						PG_ARGISNULL(1) ? "null" : psprintf(INT64_FORMAT, PG_GETARG_INT64(1)))));
	amount = PG_GETARG_INT64(1);
	max = AmountMax(PG_ARGISNULL(2) ? 0 : PG_GETARG_INT16(2));
	if (amount > max)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("amount " INT64_FORMAT " exceeds the largest order amount " INT64_FORMAT, amount, max),
				 errhint("The limit is the setting pay.amount_max_major, in major units.")));
}

static void
CheckExpiresIn(FunctionCallInfo fcinfo)
{
	Interval   *in = PG_ARGISNULL(3) ? NULL : PG_GETARG_INTERVAL_P(3);
	Interval	zero = {0, 0, 0};
	Interval	month = {0, 30, 0};

	if (in == NULL ||
		DatumGetBool(DirectFunctionCall2(interval_le, IntervalPGetDatum(in), IntervalPGetDatum(&zero))) ||
		DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(in), IntervalPGetDatum(&month))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_in must be between 0 and 30 days, not %s",
						in ? DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(in))) : "null")));
}

static void
CheckMetadata(FunctionCallInfo fcinfo)
{
	Jsonb	   *metadata = PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4);

	if (metadata == NULL || !JB_ROOT_IS_OBJECT(metadata))
		Refuse(ERRCODE_INVALID_PARAMETER_VALUE, "metadata must be a JSON object");
	/* measured as the text it prints as, like octet_length(metadata::text) */
	if (strlen(JsonbToCString(NULL, &metadata->root, VARSIZE(metadata))) > METADATA_BYTES_MAX)
		Refuse(ERRCODE_INVALID_PARAMETER_VALUE, "metadata is larger than 8192 bytes");
}

static void
CheckKey(FunctionCallInfo fcinfo)
{
	text	   *key;
	int			len;

	if (PG_ARGISNULL(5))
		return;
	key = PG_GETARG_TEXT_PP(5);
	len = DatumGetInt32(DirectFunctionCall1(textlen, PointerGetDatum(key)));
	if (len < 1 || len > KEY_MAX || Matches(key, "[[:cntrl:]]"))
		Refuse(ERRCODE_INVALID_PARAMETER_VALUE, "idempotency_key must be 1 to 255 printable characters");
}

/*
 * pay._check_order_args(merchant_order_no text, amount bigint,
 *     exponent smallint, expires_in interval, metadata jsonb, key text)
 */
Datum
pay_check_order_args(PG_FUNCTION_ARGS)
{
	CheckOrderNo(fcinfo);
	CheckAmount(fcinfo);
	CheckExpiresIn(fcinfo);
	CheckMetadata(fcinfo);
	CheckKey(fcinfo);
	PG_RETURN_VOID();
}
