/*
 * retry_schedule.c — parsing schedules and computing waits (see retry_schedule.h).
 */
#include "retry_schedule.h"

#include <stddef.h>

/* Is c a space or a tab? */
static int
IsBlank(char c)
{
	return c == ' ' || c == '\t';
}

/* Milliseconds of a unit at s (advanced past it), or -1 if unknown. */
static int64_t
ParseUnit(const char **s)
{
	const char *p = *s;

	if (p[0] == 'm' && p[1] == 's')
	{
		*s = p + 2;
		return 1;
	}
	switch (p[0])
	{
		case 's':
			*s = p + 1;
			return 1000;
		case 'm':
			*s = p + 1;
			return 60 * 1000;
		case 'h':
			*s = p + 1;
			return 3600 * 1000;
		case 'd':
			*s = p + 1;
			return 24 * 3600 * 1000;
		case '\0':
		case ',':
		case ' ':
		case '\t':
			return 1000;
		default:
			return -1;
	}
}

/* Parses "4m,10m,1h"; 0 on success, -1 on any error. */
int
retry_schedule_parse(const char *text, RetrySchedule *out)
{
	const char *s = text;

	out->count = 0;
	if (text == NULL)
		return -1;
	while (IsBlank(*s))
		s++;
	if (*s == '\0')
		return 0;				/* no retries */
	for (;;)
	{
		int64_t		value = 0;
		int64_t		unit;
		int			digits = 0;

		while (IsBlank(*s))
			s++;
		while (*s >= '0' && *s <= '9')
		{
			value = value * 10 + (*s - '0');
			if (value > RETRY_WAIT_MAX_MS)
				return -1;
			s++;
			digits++;
		}
		if (digits == 0)
			return -1;
		unit = ParseUnit(&s);
		if (unit < 0 || value > RETRY_WAIT_MAX_MS / unit)
			return -1;
		if (out->count == RETRY_SCHEDULE_MAX)
			return -1;
		out->waits_ms[out->count++] = value * unit;
		while (IsBlank(*s))
			s++;
		if (*s == '\0')
			return 0;
		if (*s != ',')
			return -1;
		s++;
	}
}

/* The wait before retry n of a listed schedule, or -1 past its end. */
int64_t
retry_schedule_wait_ms(const RetrySchedule *schedule, int retry)
{
	if (retry < 1 || retry > schedule->count)
		return -1;
	return schedule->waits_ms[retry - 1];
}

/* (retry - 1)^2 * base_ms, capped. */
int64_t
retry_quadratic_wait_ms(int retry, int64_t base_ms)
{
	int64_t		n;

	if (retry <= 1 || base_ms <= 0)
		return 0;
	n = (int64_t) (retry - 1) * (retry - 1);
	if (n > RETRY_WAIT_MAX_MS / base_ms)
		return RETRY_WAIT_MAX_MS;
	return n * base_ms;
}

/* wait plus up to percent % of it. */
int64_t
retry_jitter_ms(int64_t wait_ms, int percent, uint32_t random)
{
	int64_t		spread;

	if (wait_ms <= 0 || percent <= 0)
		return wait_ms < 0 ? 0 : wait_ms;
	if (percent > 100)
		percent = 100;
	spread = (int64_t) ((double) wait_ms * percent / 100.0 * ((double) random / 4294967296.0));
	if (wait_ms > RETRY_WAIT_MAX_MS - spread)
		return RETRY_WAIT_MAX_MS;
	return wait_ms + spread;
}
