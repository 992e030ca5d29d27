/*
 * alipay_notify.c — see alipay_notify.h.
 */
#include "alipay_notify.h"

int
alipay_notify_time_well_formed(const char *s, size_t len)
{
	static const char pattern[] = "dddd-dd-dd dd:dd:dd";
	size_t		i;

	if (s == NULL || len != ALIPAY_NOTIFY_TIME_LEN)
		return 0;
	for (i = 0; i < len; i++)
		if (pattern[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pattern[i])
			return 0;
	return 1;
}
