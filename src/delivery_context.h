/* delivery_context.h — what the dispatcher remembers of each request on the wire (delivery_context.c) */
#ifndef PAY_DELIVERY_CONTEXT_H
#define PAY_DELIVERY_CONTEXT_H

typedef struct DeliveryContext
{
	char		trace_id[33];	/* "" when the row has no trace */
	char		operation[64];	/* the outbox row's operation */
} DeliveryContext;

/* A row goes on the wire: remember its operation and the trace id of its traceparent header. */
extern void DeliveryContextSending(int64 id, const char *operation, char **headers, int nheaders);

/* Take what was remembered of a finished row into *dc (empty when nothing was). */
extern void DeliveryContextTake(int64 id, DeliveryContext *dc);

#endif
