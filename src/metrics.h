/*
 * metrics.h — counters and histograms in shared memory, exposed by
 * pay.metrics() in the Prometheus text format.
 *
 *   metrics.c        the shared counters, the gateway label table, counting
 *                    at commit, the setting pay.metrics_enabled
 *   metrics_text.c   pay.metrics(): the exposition text and the gauges
 *
 * The counters exist only when pay is in shared_preload_libraries; without
 * it every Metrics* call is a no-op and pay.metrics() says so.
 *
 * Two ways to count:
 *   MetricsCount(idx)          now, whatever becomes of the transaction
 *                              (an event that happened: a refusal, a send)
 *   MetricsCountAtCommit(idx)  when the transaction commits; dropped if it,
 *                              or the subtransaction that counted, rolls back
 *                              (an order's transition, a callback's verdict)
 * idx comes from the METRIC_* constants or the Metric*Index() helpers.
 * Either is an atomic add in shared memory; neither takes a lock.
 */
#ifndef PAY_METRICS_H
#define PAY_METRICS_H

/* Label values, each a fixed enum: unknown values count under "other". */
typedef enum MetricVerdict
{
	VERDICT_ACCEPTED, VERDICT_DUPLICATE, VERDICT_REJECTED, VERDICT_ERROR, N_VERDICTS
} MetricVerdict;

typedef enum MetricStatus
{
	STATUS_PENDING, STATUS_PAID, STATUS_SHIPPED, STATUS_COMPLETED, STATUS_CANCELLED,
	STATUS_FAILED, STATUS_REFUNDED, STATUS_OTHER, N_STATUSES
} MetricStatus;

typedef enum MetricOutcome
{
	OUTCOME_KIND_DONE, OUTCOME_KIND_RETRY, OUTCOME_KIND_DEAD, N_OUTCOMES
} MetricOutcome;

#define N_KINDS 2				/* psp_request, merchant_notification */

/* A PSP request's operation (enqueue_psp_request's list), "other" for anything else. */
typedef enum MetricOperation
{
	OP_CREATE_PAYMENT, OP_QUERY, OP_REFUND, OP_CLOSE, OP_OTHER, N_OPERATIONS
} MetricOperation;

extern const char *const metric_operation_names[N_OPERATIONS];

/*
 * Gateways get a label slot each on first use, up to METRICS_GATEWAYS;
 * callbacks to names that are not gateways count under "(unknown)", and
 * gateways beyond the table under "(other)".
 */
#define METRICS_GATEWAYS		32
#define GATEWAY_SLOT_UNKNOWN	METRICS_GATEWAYS
#define GATEWAY_SLOT_OTHER		(METRICS_GATEWAYS + 1)
#define N_GATEWAY_SLOTS			(METRICS_GATEWAYS + 2)

/* PSP request latency buckets, upper bounds in seconds (le), +Inf added. */
#define N_LATENCY_BUCKETS		12
extern const double metric_latency_bounds[N_LATENCY_BUCKETS];

/* The flat counter array: each family's first index, then its labels. */
#define METRIC_ORDERS_CREATED	0
#define METRIC_RATE_LIMITED		1
#define METRIC_TRANSITIONS		2	/* + MetricStatus */
#define METRIC_DELIVERIES		(METRIC_TRANSITIONS + N_STATUSES)	/* + kind * N_OUTCOMES + outcome */
#define METRIC_CALLBACKS		(METRIC_DELIVERIES + N_KINDS * N_OUTCOMES)	/* + slot * N_VERDICTS + verdict */
#define METRIC_SIGNATURE_FAILURES (METRIC_CALLBACKS + N_GATEWAY_SLOTS * N_VERDICTS)	/* + slot */
#define METRIC_PSP_REQUESTS		(METRIC_SIGNATURE_FAILURES + N_GATEWAY_SLOTS)	/* + (slot * N_OPERATIONS + op) * N_OUTCOMES + outcome */
#define N_SERIES				(N_GATEWAY_SLOTS * N_OPERATIONS)	/* (gateway, operation) pairs */
#define METRIC_PSP_BUCKETS		(METRIC_PSP_REQUESTS + N_SERIES * N_OUTCOMES)	/* + (slot * N_OPERATIONS + op) * (N+1) + bucket */
#define METRIC_PSP_SUM_US		(METRIC_PSP_BUCKETS + N_SERIES * (N_LATENCY_BUCKETS + 1))	/* + slot * N_OPERATIONS + op */
#define N_METRICS				(METRIC_PSP_SUM_US + N_SERIES)

extern bool metrics_enabled;

extern void MetricsInit(void);

/* True when the counters exist (pay preloaded) and pay.metrics_enabled is on. */
extern bool MetricsActive(void);

extern void MetricsCount(int idx);
extern void MetricsAdd(int idx, uint64 n);
extern void MetricsCountAtCommit(int idx);

/* A gateway's label slot (NULL or not found: GATEWAY_SLOT_UNKNOWN). */
extern int	MetricGatewaySlot(const char *gateway);

extern int	MetricStatusIndex(const char *status);
extern int	MetricVerdictIndex(const char *verdict);

/* One PSP request or merchant notification attempt, once its outcome is stored. */
extern void MetricsDelivery(bool notification, int outcome, const char *destination,
							const char *operation, bool timed, double latency_ms);

/* For pay.metrics(): a counter's value, and a gateway slot's name (NULL when unused). */
extern bool MetricsAvailable(void);
extern uint64 MetricsRead(int idx);
extern const char *MetricGatewayName(int slot);

#endif							/* PAY_METRICS_H */
