/*
 * idempotency.c — how long idempotency keys are kept.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "pay.h"

/* Retention of idempotency keys, in seconds (Stripe keeps them 24 hours). */
static int	idempotency_retention_s = 86400;

PG_FUNCTION_INFO_V1(pay_idempotency_retention);

/* Module set-up, from _PG_init. */
void
IdempotencyInit(void)
{
	DefineCustomIntVariable("pay.idempotency_retention",
							"How long idempotency keys are kept before they may be purged.",
							"A key older than this may be reused for a new request once purged.",
							&idempotency_retention_s, 86400, 60, PG_INT32_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}

/* pay.idempotency_retention() -> the setting as an interval */
Datum
pay_idempotency_retention(PG_FUNCTION_ARGS)
{
	Interval   *result = palloc0(sizeof(Interval));

	result->time = (int64) idempotency_retention_s * USECS_PER_SEC;
	PG_RETURN_INTERVAL_P(result);
}
