/*
 * pay.c — module entry point: registers settings and caches of each module.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "pay.h"
#include "lookup_cache.h"
#include "metrics.h"
#include "paypal_cert.h"
#include "trace_context.h"
#include "secret_cache.h"

PG_MODULE_MAGIC;

void _PG_init(void);

/* Load-time set-up: each module defines its own settings and callbacks. */
void
_PG_init(void)
{
	OrderStateInit();
	LookupCacheInit();
	OrderRouteInit();
	RateLimitInit();
	IdempotencyInit();
	MoneyInit();
	SecretStoreInit();
	SecretCacheInit();
	CallbackRecordInit();
	JobsInit();
	DispatcherInit();
	DropGuardInit();
	MerchantBindingInit();
	MetricsInit();
	TraceContextInit();
	NextActionWaitInit();
	PaypalCertInit();
	MarkGUCPrefixReserved("pay");
}
