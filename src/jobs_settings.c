/*
 * jobs_settings.c — the settings of pay's periodic jobs (src/sql/89_jobs.sql).
 *
 *   pay.statement_fetch_hour  the UTC hour (0-23, default 3) at which
 *     pay.schedule_jobs schedules each gateway's daily statement fetch; read
 *     when the jobs are scheduled, so a change takes effect with the next
 *     pay.schedule_jobs().
 *
 * A setting and not a function argument: the hour belongs to the
 * installation (postgresql.conf, ALTER DATABASE ... SET), and
 * schedule_jobs() takes none, so scheduling again keeps it.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "pay.h"

static int	statement_fetch_hour = 3;

/* Module set-up, from _PG_init. */
void
JobsInit(void)
{
	DefineCustomIntVariable("pay.statement_fetch_hour",
							"UTC hour at which pay.schedule_jobs schedules the daily statement fetch of each gateway.",
							"Read when the jobs are scheduled: run pay.schedule_jobs() again after a change.",
							&statement_fetch_hour, 3, 0, 23,
							PGC_USERSET, 0, NULL, NULL, NULL);
}
