/*
 * money.c — SQL glue for amounts: the "absurd amount" limit and exact
 * conversion between minor units and decimal text (see proto/amount.c).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "amount.h"
#include "pay.h"

/* Largest order amount in major units (10^9: a billion dollars, yen or dinars). */
static int	amount_max_major = 1000000000;

PG_FUNCTION_INFO_V1(pay_amount_max);
PG_FUNCTION_INFO_V1(pay_parse_amount_exp);
PG_FUNCTION_INFO_V1(pay_format_amount_exp);

/* Module set-up, from _PG_init. */
void
MoneyInit(void)
{
	DefineCustomIntVariable("pay.amount_max_major",
							"Largest order amount, in major units of its currency.",
							"Larger amounts are rejected as absurd.",
							&amount_max_major, 1000000000, 1, PG_INT32_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/* Reject an exponent that is not a currency's. */
static void
CheckExponent(int32 exponent)
{
	if (exponent < 0 || exponent > AMOUNT_EXPONENT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("currency exponent %d is out of range", exponent)));
}

/* The largest order amount in minor units: pay.amount_max_major scaled. */
int64
AmountMax(int exponent)
{
	int64_t		result = amount_max_major;
	int			i;

	CheckExponent(exponent);
	for (i = 0; i < exponent; i++)
		if (!amount_mul(result, 10, &result))
			return PG_INT64_MAX;
	return result;
}

/* pay._amount_max(exponent) -> the largest order amount in minor units */
Datum
pay_amount_max(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(AmountMax(PG_GETARG_INT32(0)));
}

/* pay._parse_amount(text, exponent) -> minor units, exactly */
Datum
pay_parse_amount_exp(PG_FUNCTION_ARGS)
{
	text	   *input = PG_GETARG_TEXT_PP(0);
	int32		exponent = PG_GETARG_INT32(1);
	int64_t		minor = 0;

	CheckExponent(exponent);
	switch (amount_parse_decimal(VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input), exponent, &minor))
	{
		case AMOUNT_OK:
			break;
		case AMOUNT_OVERFLOW:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("amount \"%s\" is out of range", text_to_cstring(input))));
			break;
		case AMOUNT_TOO_PRECISE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("amount \"%s\" has more than %d decimal places",
							text_to_cstring(input), exponent)));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid amount \"%s\"", text_to_cstring(input)),
					 errhint("Write an amount as digits with an optional decimal point, such as 12.34.")));
	}
	PG_RETURN_INT64(minor);
}

/* pay._format_amount(minor, exponent) -> decimal text */
Datum
pay_format_amount_exp(PG_FUNCTION_ARGS)
{
	int64		minor = PG_GETARG_INT64(0);
	int32		exponent = PG_GETARG_INT32(1);
	char		buf[AMOUNT_TEXT_MAX];

	CheckExponent(exponent);
	if (amount_format(minor, exponent, buf, sizeof(buf)) != AMOUNT_OK)
		elog(ERROR, "could not format amount %lld", (long long) minor);
	PG_RETURN_TEXT_P(cstring_to_text(buf));
}
