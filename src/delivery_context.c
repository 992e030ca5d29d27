/*
 * delivery_context.c — what the dispatcher remembers of each request on the
 * wire, for the metrics and the attempt log of its outcome: the row's
 * operation (a label of the PSP request metrics), its method and host, and
 * its trace and span ids (from the traceparent header it was sent with).  An array of the rows in flight,
 * bounded by pay.dispatcher_concurrency; an entry is taken when the outcome
 * is recorded.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "delivery_context.h"
#include "destination.h"

typedef struct OnWire
{
	int64		id;
	DeliveryContext dc;
} OnWire;

static OnWire *on_wire = NULL;
static int	on_wire_count = 0;
static int	on_wire_size = 0;

void
DeliveryContextSending(int64 id, const char *operation, const char *method, const char *url,
					   char **headers, int nheaders)
{
	OnWire	   *w;
	int			i;

	if (on_wire_count == on_wire_size)
	{
		on_wire_size = Max(64, on_wire_size * 2);
		on_wire = on_wire ? repalloc(on_wire, sizeof(OnWire) * on_wire_size) :
			MemoryContextAlloc(TopMemoryContext, sizeof(OnWire) * on_wire_size);
	}
	w = &on_wire[on_wire_count++];
	memset(w, 0, sizeof(*w));
	w->id = id;
	strlcpy(w->dc.operation, operation ? operation : "", sizeof(w->dc.operation));
	strlcpy(w->dc.method, method ? method : "", sizeof(w->dc.method));
	/* the host as the destination check reads it ("" when it cannot) */
	w->dc.host[0] = '\0';
	if (url != NULL)
		(void) destination_check_url(url, w->dc.host, sizeof(w->dc.host));
	for (i = 0; i < nheaders; i++)
		if (pg_strncasecmp(headers[i], "traceparent: ", 13) == 0 && strlen(headers[i]) >= 13 + 55)
		{
			memcpy(w->dc.trace_id, headers[i] + 13 + 3, 32);
			memcpy(w->dc.span_id, headers[i] + 13 + 36, 16);
			break;
		}
}

void
DeliveryContextTake(int64 id, DeliveryContext *dc)
{
	int			i;

	memset(dc, 0, sizeof(*dc));
	for (i = 0; i < on_wire_count; i++)
		if (on_wire[i].id == id)
		{
			*dc = on_wire[i].dc;
			on_wire[i] = on_wire[--on_wire_count];
			return;
		}
}
