/* attempt_log.h — the dispatcher's JSON attempt log (attempt_log.c) */
#ifndef PAY_ATTEMPT_LOG_H
#define PAY_ATTEMPT_LOG_H

#include "dispatcher.h"

extern void AttemptLogInit(void);
/* A row goes on the wire with these headers: remember its trace id. */
extern void AttemptLogSending(int64 id, char **headers, int nheaders);
/* The attempts whose outcomes were stored (or, stored false, were not: nothing logged). */
extern void AttemptLogWrite(const HttpResult *results, const int *outcomes, int n, bool stored);

#endif
