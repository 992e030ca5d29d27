/*
 * fuzz_retry_schedule.c — libFuzzer harness for proto/retry_schedule.c: any
 * text parses or is refused; a parsed schedule has at most
 * RETRY_SCHEDULE_MAX waits, each within 0..RETRY_WAIT_MAX_MS, and jitter
 * never shortens a wait nor passes the cap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "retry_schedule.h"

/* libFuzzer entry point: parse a NUL-terminated copy and check the result. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = malloc(size + 1);
	RetrySchedule s;
	int			i;

	memcpy(text, data, size);
	text[size] = '\0';
	if (retry_schedule_parse(text, &s) == 0)
	{
		if (s.count < 0 || s.count > RETRY_SCHEDULE_MAX)
			abort();
		for (i = 0; i < s.count; i++)
		{
			int64_t		w = retry_schedule_wait_ms(&s, i + 1);
			int64_t		j = retry_jitter_ms(w, 100, 0xffffffffu);

			if (w != s.waits_ms[i] || w < 0 || w > RETRY_WAIT_MAX_MS)
				abort();
			if (j < w || j > RETRY_WAIT_MAX_MS)
				abort();
		}
		if (retry_schedule_wait_ms(&s, s.count + 1) != -1 || retry_schedule_wait_ms(&s, 0) != -1)
			abort();
	}
	for (i = -1; i < 200; i += 7)
	{
		int64_t		q = retry_quadratic_wait_ms(i, size > 0 ? data[0] * 1000 : 1000);

		if (q < 0 || q > RETRY_WAIT_MAX_MS)
			abort();
	}
	free(text);
	return 0;
}
