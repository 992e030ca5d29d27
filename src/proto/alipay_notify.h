/*
 * alipay_notify.h — the fields of an Alipay asynchronous notify that pay
 * reads before trusting PostgreSQL's own parsers with them.  Plain C.
 */
#ifndef PAY_ALIPAY_NOTIFY_H
#define PAY_ALIPAY_NOTIFY_H

#include <stddef.h>

/* Length of notify_time, "YYYY-MM-DD HH:MM:SS" (Beijing time, no zone). */
#define ALIPAY_NOTIFY_TIME_LEN 19

/*
 * 1 if s (len bytes, no NUL needed) has notify_time's shape: ASCII digits
 * where the pattern has them, the separators where it has them.  Whether
 * the date exists is PostgreSQL's timestamp input's to say.
 */
extern int	alipay_notify_time_well_formed(const char *s, size_t len);

#endif							/* PAY_ALIPAY_NOTIFY_H */
