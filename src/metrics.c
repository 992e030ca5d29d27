/*
 * metrics.c — the counters behind pay.metrics(), in shared memory.
 *
 * One flat array of 64-bit atomic counters (metrics.h lays it out) and a
 * table of gateway names that gives each gateway its label slot.  Counting
 * is one pg_atomic_fetch_add_u64: no lock, no table write.  A gateway's
 * slot is taken once, under a spinlock, the first time it is counted; after
 * that a lookup reads the names without a lock (a name is written before
 * the count of names that publishes it).
 *
 * Counts made "at commit" wait in a small per-backend list, each with the
 * subtransaction level that made it, and reach shared memory when the
 * top transaction commits: a rolled-back transition or a verdict of a
 * transaction that failed is never counted.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"

#include "metrics.h"

typedef struct MetricsShared
{
	slock_t		mutex;			/* taken only to add a gateway name */
	pg_atomic_uint32 ngateways;
	char		gateways[METRICS_GATEWAYS][NAMEDATALEN];
	pg_atomic_uint64 counters[N_METRICS];
} MetricsShared;

const double metric_latency_bounds[N_LATENCY_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
};

const char *const metric_operation_names[N_OPERATIONS] = {
	"create_payment", "query", "refund", "close", "other"
};

bool		metrics_enabled = true;

static MetricsShared *metrics_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Counts waiting for the commit of the transaction that made them. */
#define PENDING_MAX 64
typedef struct PendingCount
{
	int			idx;
	int			level;			/* GetCurrentTransactionNestLevel() when counted */
} PendingCount;

static PendingCount pending[PENDING_MAX];
static int	npending = 0;

static void
MetricsShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(MetricsShared)));
}

static void
MetricsShmemStartup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	metrics_shared = ShmemInitStruct("pay metrics", sizeof(MetricsShared), &found);
	if (!found)
	{
		memset(metrics_shared, 0, sizeof(MetricsShared));
		SpinLockInit(&metrics_shared->mutex);
		pg_atomic_init_u32(&metrics_shared->ngateways, 0);
		for (i = 0; i < N_METRICS; i++)
			pg_atomic_init_u64(&metrics_shared->counters[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* At the end of a top transaction: publish what it counted, or forget it. */
static void
MetricsXactCallback(XactEvent event, void *arg)
{
	int			i;

	if (npending == 0)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		for (i = 0; i < npending; i++)
			MetricsCount(pending[i].idx);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		npending = 0;
}

/* A subtransaction's counts go to its parent, or away with it. */
static void
MetricsSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			i;
	int			kept = 0;

	if (npending == 0 || (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB))
		return;
	for (i = 0; i < npending; i++)
	{
		if (pending[i].level < level)
			pending[kept++] = pending[i];
		else if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			pending[i].level = level - 1;
			pending[kept++] = pending[i];
		}
	}
	npending = kept;
}

/* From _PG_init: the setting always; shared memory only when preloaded. */
void
MetricsInit(void)
{
	DefineCustomBoolVariable("pay.metrics_enabled",
							 "Count events in shared memory for pay.metrics().",
							 "Off: nothing is counted (the gauges of pay.metrics() are still read).",
							 &metrics_enabled, true, PGC_SUSET, 0, NULL, NULL, NULL);
	RegisterXactCallback(MetricsXactCallback, NULL);
	RegisterSubXactCallback(MetricsSubXactCallback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = MetricsShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = MetricsShmemStartup;
}

bool
MetricsAvailable(void)
{
	return metrics_shared != NULL;
}

bool
MetricsActive(void)
{
	return metrics_shared != NULL && metrics_enabled;
}

void
MetricsAdd(int idx, uint64 n)
{
	if (!MetricsActive() || idx < 0 || idx >= N_METRICS)
		return;
	pg_atomic_fetch_add_u64(&metrics_shared->counters[idx], n);
}

void
MetricsCount(int idx)
{
	MetricsAdd(idx, 1);
}

void
MetricsCountAtCommit(int idx)
{
	if (!MetricsActive())
		return;
	if (!IsTransactionState() || npending == PENDING_MAX)
	{
		/* outside a transaction, or a statement that counts a lot: count now */
		MetricsCount(idx);
		return;
	}
	pending[npending].idx = idx;
	pending[npending].level = GetCurrentTransactionNestLevel();
	npending++;
}

uint64
MetricsRead(int idx)
{
	return metrics_shared ? pg_atomic_read_u64(&metrics_shared->counters[idx]) : 0;
}

const char *
MetricGatewayName(int slot)
{
	if (metrics_shared == NULL)
		return NULL;
	if (slot == GATEWAY_SLOT_UNKNOWN)
		return "(unknown)";
	if (slot == GATEWAY_SLOT_OTHER)
		return "(other)";
	if (slot < 0 || (uint32) slot >= pg_atomic_read_u32(&metrics_shared->ngateways))
		return NULL;
	pg_read_barrier();
	return metrics_shared->gateways[slot];
}

/* The slot of a name already in the table, or -1. */
static int
FindGateway(const char *gateway, uint32 n)
{
	uint32		i;

	pg_read_barrier();
	for (i = 0; i < n; i++)
		if (strcmp(metrics_shared->gateways[i], gateway) == 0)
			return (int) i;
	return -1;
}

/*
 * A gateway's label slot.  Callers pass names of rows of pay.gateways, so
 * the table holds configured gateways only; a name too long for a slot, or
 * one more than the table holds, counts under "(other)".
 */
int
MetricGatewaySlot(const char *gateway)
{
	static char last_name[NAMEDATALEN];
	static int	last_slot = -1;
	uint32		n;
	int			slot;

	if (metrics_shared == NULL || gateway == NULL)
		return GATEWAY_SLOT_UNKNOWN;
	/* most backends talk to one gateway: remember the last answer */
	if (last_slot >= 0 && strcmp(last_name, gateway) == 0)
		return last_slot;
	if (strlen(gateway) >= NAMEDATALEN)
		return GATEWAY_SLOT_OTHER;
	n = pg_atomic_read_u32(&metrics_shared->ngateways);
	slot = FindGateway(gateway, n);
	if (slot < 0)
	{
		SpinLockAcquire(&metrics_shared->mutex);
		n = pg_atomic_read_u32(&metrics_shared->ngateways);
		slot = FindGateway(gateway, n);
		if (slot < 0 && n < METRICS_GATEWAYS)
		{
			strlcpy(metrics_shared->gateways[n], gateway, NAMEDATALEN);
			pg_write_barrier();
			pg_atomic_write_u32(&metrics_shared->ngateways, n + 1);
			slot = (int) n;
		}
		SpinLockRelease(&metrics_shared->mutex);
		if (slot < 0)
			return GATEWAY_SLOT_OTHER;
	}
	strlcpy(last_name, gateway, NAMEDATALEN);
	last_slot = slot;
	return slot;
}

int
MetricStatusIndex(const char *status)
{
	static const char *const names[] = {
		"pending", "paid", "shipped", "completed", "cancelled", "failed", "refunded"
	};
	size_t		i;

	for (i = 0; i < lengthof(names); i++)
		if (strcmp(status, names[i]) == 0)
			return METRIC_TRANSITIONS + (int) i;
	return METRIC_TRANSITIONS + STATUS_OTHER;
}

int
MetricVerdictIndex(const char *verdict)
{
	return strcmp(verdict, "accepted") == 0 ? VERDICT_ACCEPTED :
		strcmp(verdict, "duplicate") == 0 ? VERDICT_DUPLICATE :
		strcmp(verdict, "rejected") == 0 ? VERDICT_REJECTED : VERDICT_ERROR;
}

static int
OperationIndex(const char *operation)
{
	int			i;

	for (i = 0; i < OP_OTHER; i++)
		if (operation != NULL && strcmp(operation, metric_operation_names[i]) == 0)
			return i;
	return OP_OTHER;
}

/*
 * A delivery attempt whose outcome is stored: counted by kind and outcome;
 * a PSP request (destination gateway:<name>) also by gateway, operation and
 * outcome, and its latency in the histogram.  A merchant notification's
 * destination is a merchant and its operation a status: never labels.
 */
void
MetricsDelivery(bool notification, int outcome, const char *destination,
				const char *operation, bool timed, double latency_ms)
{
	int			slot;
	int			series;
	int			b;
	double		seconds = latency_ms / 1000.0;

	if (!MetricsActive() || outcome < 0 || outcome >= N_OUTCOMES)
		return;
	MetricsCount(METRIC_DELIVERIES + (notification ? 1 : 0) * N_OUTCOMES + outcome);
	if (notification)
		return;
	/* a PSP request's destination is gateway:<name> (outbox_check.c) */
	if (destination != NULL && strncmp(destination, "gateway:", 8) == 0)
		destination += 8;
	slot = MetricGatewaySlot(destination);
	series = slot * N_OPERATIONS + OperationIndex(operation);
	MetricsCount(METRIC_PSP_REQUESTS + series * N_OUTCOMES + outcome);
	if (!timed)
		return;
	for (b = 0; b < N_LATENCY_BUCKETS && seconds > metric_latency_bounds[b]; b++)
		;
	/* bucket b only; pay.metrics() makes them cumulative */
	MetricsCount(METRIC_PSP_BUCKETS + series * (N_LATENCY_BUCKETS + 1) + b);
	MetricsAdd(METRIC_PSP_SUM_US + series, (uint64) (latency_ms * 1000.0 + 0.5));
}
