/*
 * event_apply.h — what callback_apply.c and event_refund.c share: the
 * order an event is about, as they read it, and the writes both make.
 */
#ifndef PAY_EVENT_APPLY_H
#define PAY_EVENT_APPLY_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "callback.h"

/* The columns of pay.orders an event's decisions need. */
typedef struct EventOrder
{
	int64		id;
	char	   *currency;
	int64		amount;
	int64		refunded;
	bool		paid;			/* paid_at IS NOT NULL */
	char	   *status;
	char	   *psp_txn_id;		/* NULL: none */
	int64		paid_amount;	/* what it paid: coalesce(captured_amount, amount) */
	bool		manual;			/* capture_mode = 'manual': authorized before it is captured */
} EventOrder;

/* Where an event came from: its callback (0: none) and the cause the order's events record. */
typedef struct EventSource
{
	int64		callback_id;
	const char *cause;
} EventSource;

/* Read order id into *o (lock: FOR UPDATE); false if it is not routed to gateway. */
extern bool EventOrderRead(int64 id, const char *gateway, bool lock, EventOrder *o);

/* Record an anomaly (pay.anomalies) and return the outcome that says so. */
extern char *EventAnomaly(const EventOrder *o, const CallbackGateway *g, int64 callback_id,
						  const char *kind, const char *detail);

/*
 * An event's amount in minor units: minor (integer text, else 22023) or
 * major (a decimal in the currency's exponent); false when it names none.
 */
extern bool EventAmount(const char *minor, const char *major, const char *currency, int64 *amount);

/* event_refund.c */
extern char *EventApplyPspRefund(const CallbackGateway *g, const EventOrder *o, Jsonb *e, int64 callback_id);
extern char *EventDefer(const CallbackGateway *g, const EventOrder *o, Jsonb *e, int64 callback_id);
extern char *EventApplyDeferred(const CallbackGateway *g, int64 order_id);

/* event_approved.c */
extern char *EventApplyApproval(const CallbackGateway *g, const EventOrder *o, Jsonb *e, int64 callback_id);

/*
 * event_modification.c: the PSP's report of a failed capture or cancel, or
 * of a refund's outcome (kinds capture_failed, cancel_failed,
 * refund_succeeded, refund_failed), applied to the locked order.
 */
extern bool EventIsModification(const char *kind);
extern char *EventApplyModification(const CallbackGateway *g, const EventOrder *o, Jsonb *e,
									const EventSource *src);

#endif							/* PAY_EVENT_APPLY_H */
