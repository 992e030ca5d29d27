/*
 * outbox_schedule.c — when a failed delivery is tried again, and how often.
 *
 * PSP calls follow a quadratic schedule: retry n waits (n - 1)^2 times
 * pay.psp_retry_base (0, 1, 4, 9 ... seconds), up to pay.psp_attempts_max
 * attempts.  Merchant notifications follow pay.notify_schedule, by default
 * Alipay's published one (4m, 10m, 10m, 1h, 2h, 6h, 15h: eight attempts).
 * Every wait gets up to pay.retry_jitter percent added at random, so that
 * requests failed together are not retried together.
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "dispatcher.h"
#include "pay.h"
#include "retry_schedule.h"

#define NOTIFY_SCHEDULE_DEFAULT "4m,10m,10m,1h,2h,6h,15h"

static int	psp_retry_base_ms = 1000;
static int	psp_attempts_max = 10;
static int	retry_jitter_percent = 10;
static char *notify_schedule_text = NULL;
static RetrySchedule *notify_schedule = NULL;

PG_FUNCTION_INFO_V1(pay_outbox_attempts_max);

/* GUC check hook: parse pay.notify_schedule once, into extra. */
static bool
NotifyScheduleCheck(char **newval, void **extra, GucSource source)
{
	RetrySchedule *parsed = (RetrySchedule *) malloc(sizeof(RetrySchedule));

	if (parsed == NULL)
		return false;
	if (retry_schedule_parse(*newval, parsed) != 0)
	{
		free(parsed);
		GUC_check_errdetail("pay.notify_schedule must be a comma-separated list of waits such as \"4m,10m,1h\" "
							"(units ms, s, m, h, d; at most %d waits of at most 30 days).",
							RETRY_SCHEDULE_MAX);
		return false;
	}
	*extra = parsed;
	return true;
}

/* GUC assign hook: use the parsed schedule. */
static void
NotifyScheduleAssign(const char *newval, void *extra)
{
	notify_schedule = (RetrySchedule *) extra;
}

/* Module set-up, from _PG_init. */
void
OutboxScheduleInit(void)
{
	DefineCustomIntVariable("pay.psp_retry_base",
							"Unit of the PSP retry schedule: retry n waits (n - 1)^2 of these.",
							NULL, &psp_retry_base_ms, 1000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pay.psp_attempts_max",
							"Attempts at a PSP request before it is dead.",
							NULL, &psp_attempts_max, 10, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pay.retry_jitter",
							"Random share of a retry wait added to it, in percent.",
							NULL, &retry_jitter_percent, 10, 0, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pay.notify_schedule",
							   "Waits between attempts at a merchant notification.",
							   "A comma-separated list such as \"4m,10m,10m,1h,2h,6h,15h\"; its length plus one is the number of attempts.",
							   &notify_schedule_text, NOTIFY_SCHEDULE_DEFAULT,
							   PGC_SIGHUP, 0, NotifyScheduleCheck, NotifyScheduleAssign, NULL);
}

/* Attempts allowed for a new request of this kind. */
int
OutboxAttemptsMax(bool notification)
{
	if (notification)
		return (notify_schedule ? notify_schedule->count : 0) + 1;
	return psp_attempts_max;
}

/* The wait (ms, with jitter) before the retry that follows failed attempt n. */
int64
OutboxRetryWaitMs(bool notification, int failed_attempt)
{
	int64		wait_ms;

	if (notification)
	{
		wait_ms = notify_schedule ? retry_schedule_wait_ms(notify_schedule, failed_attempt) : -1;
		if (wait_ms < 0)		/* past the end (the row was re-driven or the schedule shortened) */
			wait_ms = notify_schedule && notify_schedule->count > 0
				? notify_schedule->waits_ms[notify_schedule->count - 1] : 0;
	}
	else
		wait_ms = retry_quadratic_wait_ms(failed_attempt, psp_retry_base_ms);
	return retry_jitter_ms(wait_ms, retry_jitter_percent, pg_prng_uint32(&pg_global_prng_state));
}

/* pay._outbox_attempts_max(kind) -> attempts allowed under the current settings */
Datum
pay_outbox_attempts_max(PG_FUNCTION_ARGS)
{
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (strcmp(kind, "merchant_notification") == 0)
		PG_RETURN_INT32(OutboxAttemptsMax(true));
	if (strcmp(kind, "psp_request") == 0)
		PG_RETURN_INT32(OutboxAttemptsMax(false));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("kind must be psp_request or merchant_notification, not \"%s\"", kind)));
	PG_RETURN_NULL();
}
