/*
 * amount.c — exact conversion between integer minor units and the decimal
 * strings some providers send (Alipay's "12.34").  Never goes through
 * floating point: digits are accumulated with overflow checks.
 */
#include "amount.h"

#include <stdio.h>
#include <string.h>

/* Overflow-checked addition; 0 on overflow. */
int
amount_add(int64_t a, int64_t b, int64_t *sum)
{
	return !__builtin_add_overflow(a, b, sum);
}

/* Overflow-checked multiplication; 0 on overflow. */
int
amount_mul(int64_t a, int64_t b, int64_t *product)
{
	return !__builtin_mul_overflow(a, b, product);
}

/* Append one decimal digit to a negative accumulator (negative holds INT64_MIN). */
static int
PushDigit(int64_t *acc, int digit)
{
	return amount_mul(*acc, 10, acc) && amount_add(*acc, -digit, acc);
}

AmountResult
amount_parse_decimal(const char *text, size_t len, int exponent, int64_t *minor)
{
	size_t		i = 0;
	int			negative = 0;
	int			int_digits = 0;
	int			frac_digits = 0;
	int64_t		acc = 0;		/* accumulated as a negative number */

	if (exponent < 0 || exponent > AMOUNT_EXPONENT_MAX)
		return AMOUNT_BAD_EXPONENT;
	if (i < len && text[i] == '-')
	{
		negative = 1;
		i++;
	}
	for (; i < len && text[i] >= '0' && text[i] <= '9'; i++, int_digits++)
		if (!PushDigit(&acc, text[i] - '0'))
			return AMOUNT_OVERFLOW;
	if (int_digits == 0)
		return AMOUNT_SYNTAX;
	if (i < len && text[i] == '.')
	{
		for (i++; i < len && text[i] >= '0' && text[i] <= '9'; i++, frac_digits++)
		{
			if (frac_digits >= exponent)
			{
				if (text[i] != '0')
					return AMOUNT_TOO_PRECISE;
				continue;
			}
			if (!PushDigit(&acc, text[i] - '0'))
				return AMOUNT_OVERFLOW;
		}
		if (frac_digits == 0)
			return AMOUNT_SYNTAX;
	}
	if (i != len)
		return AMOUNT_SYNTAX;
	for (; frac_digits < exponent; frac_digits++)
		if (!amount_mul(acc, 10, &acc))
			return AMOUNT_OVERFLOW;
	if (!negative && acc == INT64_MIN)
		return AMOUNT_OVERFLOW;
	*minor = negative ? acc : -acc;
	return AMOUNT_OK;
}

AmountResult
amount_format(int64_t minor, int exponent, char *buf, size_t buflen)
{
	/* magnitude as unsigned so INT64_MIN is representable */
	uint64_t	magnitude = minor < 0 ? (uint64_t) 0 - (uint64_t) minor : (uint64_t) minor;
	uint64_t	scale = 1;
	int			i;
	int			n;

	if (exponent < 0 || exponent > AMOUNT_EXPONENT_MAX)
		return AMOUNT_BAD_EXPONENT;
	for (i = 0; i < exponent; i++)
		scale *= 10;
	if (exponent == 0)
		n = snprintf(buf, buflen, "%s%llu", minor < 0 ? "-" : "",
					 (unsigned long long) magnitude);
	else
		n = snprintf(buf, buflen, "%s%llu.%0*llu", minor < 0 ? "-" : "",
					 (unsigned long long) (magnitude / scale), exponent,
					 (unsigned long long) (magnitude % scale));
	return (n < 0 || (size_t) n >= buflen) ? AMOUNT_OVERFLOW : AMOUNT_OK;
}
