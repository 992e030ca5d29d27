/*
 * lookup_sql.c — the SQL face of lookup_cache.c: the internal helpers that
 * resolve a currency, a merchant or a ledger account inside pay's own
 * functions, with the error messages application code sees.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "pay.h"
#include "lookup_cache.h"

PG_FUNCTION_INFO_V1(pay_exponent);
PG_FUNCTION_INFO_V1(pay_merchant_id);
PG_FUNCTION_INFO_V1(pay_account);
PG_FUNCTION_INFO_V1(pay_merchant_account);

/* Text argument n as a C string, or NULL. */
static char *
ArgText(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* A lower-case letter: the code was probably meant in upper case. */
static bool
HasLowerCase(const char *s)
{
	for (; *s; s++)
		if (*s >= 'a' && *s <= 'z')
			return true;
	return false;
}

/*
 * pay._exponent(currency text, arg text DEFAULT 'currency') -> smallint:
 * the currency's minor-unit exponent, or an error naming the argument.
 */
Datum
pay_exponent(PG_FUNCTION_ARGS)
{
	char	   *code = ArgText(fcinfo, 0);
	char	   *arg = PG_ARGISNULL(1) ? "currency" : ArgText(fcinfo, 1);
	int16		exponent;

	if (LookupCurrencyExponent(code, &exponent))
		PG_RETURN_INT16(exponent);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s: unknown currency \"%s\"", arg, code ? code : "<NULL>"),
			 (code && HasLowerCase(code)) ?
			 errhint("Currency codes are upper-case ISO 4217 codes, such as USD.") : 0));
	PG_RETURN_NULL();			/* not reached */
}

/* pay._merchant_id(code text) -> bigint, or 'merchant: unknown merchant' */
Datum
pay_merchant_id(PG_FUNCTION_ARGS)
{
	char	   *code = ArgText(fcinfo, 0);
	int64		id;

	if (LookupMerchantId(code, &id))
		PG_RETURN_INT64(id);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("merchant: unknown merchant \"%s\"", code ? code : "<NULL>")));
	PG_RETURN_NULL();			/* not reached */
}

/*
 * pay._account(code text, currency char(3)) -> bigint: the account that
 * books a party's money in one currency, opened on first use.
 */
Datum
pay_account(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "pay._account needs a code and a currency");
	PG_RETURN_INT64(LookupOrOpenAccount(ArgText(fcinfo, 0), ArgText(fcinfo, 1)));
}

/* pay._merchant_account(merchant_id bigint, currency char(3)) -> bigint */
Datum
pay_merchant_account(PG_FUNCTION_ARGS)
{
	char	   *currency;
	char	   *code;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "pay._merchant_account needs a merchant id and a currency");
	currency = ArgText(fcinfo, 1);
	code = psprintf("merchant:%s:%s", LookupMerchantCode(PG_GETARG_INT64(0)), currency);
	PG_RETURN_INT64(LookupOrOpenAccount(code, currency));
}
