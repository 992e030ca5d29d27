/*
 * constant_time.c — pay.constant_time_equal(a, b): compare signatures in
 * SQL without leaking, through timing, how much of a forgery was right.
 */
#include "postgres.h"

#include "fmgr.h"

#include "ct.h"

PG_FUNCTION_INFO_V1(pay_constant_time_equal);

/* pay.constant_time_equal(a text, b text) -> boolean */
Datum
pay_constant_time_equal(PG_FUNCTION_ARGS)
{
	text	   *a = PG_GETARG_TEXT_PP(0);
	text	   *b = PG_GETARG_TEXT_PP(1);

	PG_RETURN_BOOL(ct_equal_str(VARDATA_ANY(a), VARSIZE_ANY_EXHDR(a),
								VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)));
}
