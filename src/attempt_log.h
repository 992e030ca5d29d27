/* attempt_log.h — the dispatcher's JSON attempt log (attempt_log.c) */
#ifndef PAY_ATTEMPT_LOG_H
#define PAY_ATTEMPT_LOG_H

#include "delivery_context.h"
#include "dispatcher.h"

extern void AttemptLogInit(void);
/* The attempts whose outcomes were stored. */
extern void AttemptLogWrite(const HttpResult *results, const int *outcomes,
							const DeliveryContext *contexts, int n);

#endif
