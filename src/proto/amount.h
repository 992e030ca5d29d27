/*
 * amount.h — exact conversion between minor units and decimal strings.
 * Plain C (no postgres.h): used by the SQL glue and by the callback parsers.
 */
#ifndef PAY_AMOUNT_H
#define PAY_AMOUNT_H

#include <stddef.h>
#include <stdint.h>

#define AMOUNT_EXPONENT_MAX 4

typedef enum AmountResult
{
	AMOUNT_OK = 0,
	AMOUNT_SYNTAX,				/* not [-]digits[.digits] */
	AMOUNT_TOO_PRECISE,			/* more fractional digits than the exponent allows */
	AMOUNT_OVERFLOW,			/* does not fit in int64 minor units */
	AMOUNT_BAD_EXPONENT			/* exponent outside 0..AMOUNT_EXPONENT_MAX */
} AmountResult;

/* "12.34" with exponent 2 -> 1234; trailing fractional zeros are accepted. */
extern AmountResult amount_parse_decimal(const char *text, size_t len, int exponent, int64_t *minor);

/* 1234 with exponent 2 -> "12.34"; buf needs AMOUNT_TEXT_MAX bytes. */
#define AMOUNT_TEXT_MAX 32
extern AmountResult amount_format(int64_t minor, int exponent, char *buf, size_t buflen);

/* Overflow-checked a + b and a * b. */
extern int	amount_add(int64_t a, int64_t b, int64_t *sum);
extern int	amount_mul(int64_t a, int64_t b, int64_t *product);

#endif							/* PAY_AMOUNT_H */
