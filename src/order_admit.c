/*
 * order_admit.c — pay._admit: what a new order needs just before its INSERT,
 * in one call made by the INSERT itself: a token of its merchant's rate
 * limit (rate_limit.c; PY029 beyond it) and its route (order_route.c).
 *
 * Why one call: each separate PL/pgSQL statement in create_order is an
 * executor run of its own, and two of them cost more than both decisions.
 * create_order has checked its arguments and answered an idempotent replay
 * before it gets here, so a refused order has written nothing and a replay
 * costs no token.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "pay.h"

PG_FUNCTION_INFO_V1(pay_admit);

/*
 * pay._admit(p_merchant bigint, p_code text, p_gateway text, p_currency text,
 *            p_amount bigint, p_order_no text, OUT gateway text, OUT rule_id bigint)
 */
Datum
pay_admit(PG_FUNCTION_ARGS)
{
	int64		merchant_id;
	char	   *gateway;
	int64		rule_id;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3) || PG_ARGISNULL(4) || PG_ARGISNULL(5))
		elog(ERROR, "pay._admit needs the merchant, currency, amount and order number");
	merchant_id = PG_GETARG_INT64(0);
	RateLimitTake(merchant_id, text_to_cstring(PG_GETARG_TEXT_PP(1)));
	RouteOrder(PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
			   merchant_id, text_to_cstring(PG_GETARG_TEXT_PP(3)), PG_GETARG_INT64(4),
			   text_to_cstring(PG_GETARG_TEXT_PP(5)), &gateway, &rule_id);
	PG_RETURN_DATUM(RouteResult(fcinfo, gateway, rule_id));
}
