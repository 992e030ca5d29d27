/* delivery_context.h — what the dispatcher remembers of each request on the wire (delivery_context.c) */
#ifndef PAY_DELIVERY_CONTEXT_H
#define PAY_DELIVERY_CONTEXT_H

typedef struct DeliveryContext
{
	char		trace_id[33];	/* "" when the row has no trace */
	char		operation[64];	/* the outbox row's operation */
	char		span_id[17];	/* the span id of its traceparent header, "" when none */
	char		method[16];
	char		host[256];		/* of the URL; never its path or query */
} DeliveryContext;

/* A row goes on the wire: remember its operation, method, host and the trace and span ids of its traceparent header. */
extern void DeliveryContextSending(int64 id, const char *operation, const char *method, const char *url,
								   char **headers, int nheaders);

/* Take what was remembered of a finished row into *dc (empty when nothing was). */
extern void DeliveryContextTake(int64 id, DeliveryContext *dc);

#endif
