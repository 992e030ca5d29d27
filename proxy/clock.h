/* clock.h — monotonic milliseconds, for deadlines and durations */
#ifndef PAY_PROXY_CLOCK_H
#define PAY_PROXY_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on the monotonic clock */
static inline int64_t
ClockNowMs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
