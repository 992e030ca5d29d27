/*
 * retry_schedule.h — delivery retry schedules.  Plain C, no postgres.h.
 *
 * A schedule is a list of waits, "4m,10m,10m,1h,2h,6h,15h": retry n waits
 * the n-th of them after attempt n failed, so a list of k waits allows k + 1
 * attempts.  Units: ms, s, m, h, d; a bare number is seconds.  The quadratic
 * schedule of PSP calls waits (n - 1)^2 base units before retry n.
 */
#ifndef PAY_RETRY_SCHEDULE_H
#define PAY_RETRY_SCHEDULE_H

#include <stdint.h>

#define RETRY_SCHEDULE_MAX	64
#define RETRY_WAIT_MAX_MS	((int64_t) 30 * 24 * 3600 * 1000)	/* 30 days */

typedef struct RetrySchedule
{
	int			count;
	int64_t		waits_ms[RETRY_SCHEDULE_MAX];
} RetrySchedule;

/* Parses a schedule; 0 on success, -1 (out undefined) for bad text, a wait over 30 days or more than 64 waits. */
extern int	retry_schedule_parse(const char *text, RetrySchedule *out);

/* The wait before retry n (n >= 1) of a listed schedule, or -1 past its end. */
extern int64_t retry_schedule_wait_ms(const RetrySchedule *schedule, int retry);

/* (retry - 1)^2 * base_ms for retry >= 1, capped at RETRY_WAIT_MAX_MS. */
extern int64_t retry_quadratic_wait_ms(int retry, int64_t base_ms);

/* wait plus up to percent % of it, chosen by random (uniform over uint32); capped at RETRY_WAIT_MAX_MS. */
extern int64_t retry_jitter_ms(int64_t wait_ms, int percent, uint32_t random);

#endif
