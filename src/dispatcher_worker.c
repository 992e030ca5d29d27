/*
 * dispatcher_worker.c — the background worker that delivers the outbox of
 * the database named by pay.database.
 *
 * One loop, one process: claim due rows in a short transaction (committed
 * before any HTTP), hand their requests to libcurl's multi handle, and record
 * each batch of finished attempts in another short transaction.  Between
 * rounds it sleeps on one WaitEventSet: its latch (set by backends when a
 * transaction that queued requests commits), curl's sockets (an epoll
 * descriptor), and the nearest of curl's timer, the next due retry, the end
 * of a circuit's cool-down and the lease check.  Idle, it sleeps up to a
 * minute and uses no CPU.
 *
 * Signals: SIGTERM ends it at the next CHECK_FOR_INTERRUPTS (rows in flight
 * are taken back when it starts again), SIGHUP reloads the settings, SIGUSR1
 * is PostgreSQL's procsignal handler, so barriers (DROP DATABASE) and
 * cancellation are served while it waits.  The postmaster restarts it 2 s
 * after it exits with an error, and at once after a crash restart.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "executor/spi.h"

#include "attempt_log.h"
#include "delivery_context.h"
#include "dispatcher.h"
#include "metrics.h"
#include "pay.h"
#include "span_export.h"

#define IDLE_WAIT_MS		60000	/* longest sleep: extension check and lease look */
#define ERROR_BACKOFF_MS	1000
#define RESULTS_BATCH		1024

char	   *dispatcher_database = NULL;
int			dispatcher_concurrency = 1024;
int			dispatcher_destination_concurrency = 512;
int			dispatcher_lease_ms = 300000;
bool		dispatcher_synchronous_commit = true;

/* Arguments of the transactions the loop runs. */
typedef struct ClaimWork
{
	int			max;
	int			count;
	ClaimedRequest *claimed;
	TimestampTz next_due;
	MemoryContext cxt;
} ClaimWork;

typedef struct RecordWork
{
	HttpResult *results;
	int			n;
	int		   *outcomes;
	int64	   *waits_ms;
} RecordWork;

static MemoryContext cycle_context = NULL;

/* Module set-up, from _PG_init. */
void
DispatcherWorkerInit(void)
{
	DefineCustomStringVariable("pay.database",
							   "Database whose outbox the dispatcher delivers.",
							   "Takes effect at server start; pay must be installed there.",
							   &dispatcher_database, "postgres",
	/* a postmaster setting can only be defined while preloading */
							   process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP,
							   0, NULL, NULL, NULL);
	DefineCustomIntVariable("pay.dispatcher_concurrency",
							"Most requests the dispatcher has on the wire at once.",
							"Each holds a connection; the connection cache keeps as many open.",
							&dispatcher_concurrency, 1024, 1, 16384,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pay.dispatcher_destination_concurrency",
							"Most requests on the wire to one destination: the ceiling of its adaptive limit.",
							"Each destination's limit starts at 16 (or this, if lower), grows while its latency "
							"stays flat and backs off on timeouts, 429 and 5xx, down to "
							"pay.dispatcher_destination_concurrency_min (a hung one cannot take every slot).",
							&dispatcher_destination_concurrency, 512, 1, 16384,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("pay.dispatcher_synchronous_commit",
							 "Whether the dispatcher's claims and outcomes wait for the WAL flush.",
							 "Off: a crash may forget the claims and outcomes of the last fraction of a second, so "
							 "requests that were no longer in flight may be sent again (each carries its idempotency "
							 "key); requests queued by committed transactions are never lost either way.",
							 &dispatcher_synchronous_commit, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pay.dispatcher_lease",
							"Age of an in_flight claim after which another look takes the row back.",
							"Never shorter than pay.http_timeout plus 10 s.",
							&dispatcher_lease_ms, 300000, 1000, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* The lease in effect: never shorter than a request may take. */
static int64
LeaseMs(void)
{
	return Max((int64) dispatcher_lease_ms, (int64) http_timeout_ms + 10000);
}

/* before_shmem_exit: say we are gone. */
static void
DispatcherDetach(int code, Datum arg)
{
	if (dispatcher_shared == NULL)
		return;
	SpinLockAcquire(&dispatcher_shared->mutex);
	dispatcher_shared->pgprocno = -1;
	dispatcher_shared->pid = 0;
	dispatcher_shared->in_flight = 0;
	dispatcher_shared->extension_ready = false;
	SpinLockRelease(&dispatcher_shared->mutex);
}

/* Publish what pay.dispatcher_status() shows. */
static void
Publish(bool ready)
{
	if (dispatcher_shared == NULL)
		return;
	SpinLockAcquire(&dispatcher_shared->mutex);
	dispatcher_shared->in_flight = HttpInFlight();
	dispatcher_shared->extension_ready = ready;
	SpinLockRelease(&dispatcher_shared->mutex);
}

/*
 * Run fn in a transaction of its own, connected to SPI.  An error is logged,
 * remembered for pay.dispatcher_status() and rolled back; returns false then.
 */
static bool
RunInTransaction(void (*fn) (void *), void *arg, const char *activity)
{
	MemoryContext outer = CurrentMemoryContext;
	volatile bool ok = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		fn(arg);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(outer);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("pay dispatcher: %s failed: %s", activity, edata->message)));
		DispatcherSetError(edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(outer);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/* Transaction body: is pay installed?  If so, load the breakers and take back every claim. */
static void
StartupWork(void *arg)
{
	bool	   *ready = (bool *) arg;
	int			n;

	*ready = StoreExtensionReady();
	if (!*ready)
		return;
	BreakerLoad();
	n = StoreRecover(true, 0);
	if (n > 0)
		ereport(LOG, (errmsg("pay dispatcher: %d requests left in flight are sent again", n)));
}

/* Transaction body: is pay still installed? */
static void
CheckWork(void *arg)
{
	*(bool *) arg = StoreExtensionReady();
}

/* Transaction body: take back claims past the lease; *arg = how many. */
static void
LeaseWork(void *arg)
{
	int			n = StoreRecover(false, LeaseMs());

	*(int *) arg = n;
	if (n > 0)
		ereport(LOG, (errmsg("pay dispatcher: %d requests whose claim expired are sent again", n)));
}

/* Transaction body: claim and build. */
static void
ClaimTxn(void *arg)
{
	ClaimWork  *w = (ClaimWork *) arg;

	w->count = StoreClaim(w->max, &w->claimed, &w->next_due, w->cxt);
}

/* Transaction body: record outcomes and the circuits they changed. */
static void
RecordTxn(void *arg)
{
	RecordWork *w = (RecordWork *) arg;

	StoreRecord(w->results, w->n, w->outcomes, w->waits_ms);
	BreakerSave();
}

/* Transaction body: release rows whose outcome could not be recorded. */
static void
ReleaseTxn(void *arg)
{
	RecordWork *w = (RecordWork *) arg;
	int64	   *ids = palloc(sizeof(int64) * w->n);
	int		   *attempts = palloc(sizeof(int) * w->n);
	int			i;

	for (i = 0; i < w->n; i++)
	{
		ids[i] = w->results[i].outbox_id;
		attempts[i] = w->results[i].attempt;
	}
	StoreRelease(ids, attempts, w->n);
}

/* Does a merchant's answer acknowledge the notification ("success", blanks around it allowed)? */
static bool
Acknowledged(const HttpResult *r)
{
	const char *b = r->body ? r->body : "";
	size_t		len = r->body_len;

	while (len > 0 && (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n'))
		b++, len--;
	while (len > 0 && (b[len - 1] == ' ' || b[len - 1] == '\t' || b[len - 1] == '\r' || b[len - 1] == '\n'))
		len--;
	return len == 7 && memcmp(b, "success", 7) == 0;
}

/*
 * What follows an attempt: done, retry or dead; and whether the answer says
 * the destination is healthy (for its circuit breaker).
 */
static int
Classify(HttpResult *r, int attempts_max, bool *healthy, bool *counts)
{
	int			s = r->http_status;
	int			outcome;

	*counts = true;
	*healthy = false;
	if (r->refused)
	{
		/* a forbidden address: sending again reaches the same one */
		*counts = false;
		return OUTCOME_DEAD;
	}
	if (r->build_error)
	{
		*counts = false;		/* our fault, not the destination's */
		outcome = OUTCOME_RETRY;
	}
	else if (r->transport_error || r->too_large)
		outcome = OUTCOME_RETRY;
	else if (s >= 200 && s < 300)
	{
		if (!r->notification || Acknowledged(r))
		{
			*healthy = true;
			return OUTCOME_DONE;
		}
		snprintf(r->error, sizeof(r->error), "the merchant answered %d without \"success\"", s);
		outcome = OUTCOME_RETRY;
	}
	else if (s == 408 || s == 429 || s >= 500 || r->notification)
	{
		/*
		 * doc/api.md: a merchant that does not acknowledge (any other answer, a
		 * 4xx included) is retried on the notification schedule; the
		 * merchant may fix its endpoint before the schedule ends.
		 */
		snprintf(r->error, sizeof(r->error), "HTTP %d", s);
		outcome = OUTCOME_RETRY;
	}
	else
	{
		/* a PSP's 4xx: the request itself is wrong, sending it again will not help */
		snprintf(r->error, sizeof(r->error), s >= 300 && s < 400 ? "HTTP %d (redirects are not followed)"
				 : "HTTP %d (permanent)", s);
		*healthy = true;
		return OUTCOME_DEAD;
	}
	if (r->attempt >= attempts_max)
	{
		size_t		len = strlen(r->error);

		snprintf(r->error + len, sizeof(r->error) - len, " (attempt %d of %d: no more)", r->attempt, attempts_max);
		return OUTCOME_DEAD;
	}
	return outcome;
}

/* The attempts allowed for each in-flight row, by outbox id (set at claim). */
typedef struct AttemptLimit
{
	int64		id;
	int			attempts_max;
} AttemptLimit;

static AttemptLimit *limits = NULL;
static int	limits_count = 0;
static int	limits_capacity = 0;

/* Remember the attempt limit of a row on the wire. */
static void
LimitRemember(int64 id, int attempts_max)
{
	if (limits_count == limits_capacity)
	{
		limits_capacity = Max(64, limits_capacity * 2);
		limits = limits ? repalloc(limits, sizeof(AttemptLimit) * limits_capacity)
			: MemoryContextAlloc(TopMemoryContext, sizeof(AttemptLimit) * limits_capacity);
	}
	limits[limits_count].id = id;
	limits[limits_count].attempts_max = attempts_max;
	limits_count++;
}

/* Take the attempt limit of a finished row (1 if unknown). */
static int
LimitTake(int64 id)
{
	int			i;

	for (i = 0; i < limits_count; i++)
		if (limits[i].id == id)
		{
			int			max = limits[i].attempts_max;

			limits[i] = limits[--limits_count];
			return max;
		}
	return 1;
}

/* Record finished attempts: classify, update the breakers, write the outcomes. */
static bool
RecordResults(void)
{
	static HttpResult results[RESULTS_BATCH];
	static DeliveryContext contexts[RESULTS_BATCH];
	int			outcomes[RESULTS_BATCH];
	int64		waits[RESULTS_BATCH];
	RecordWork	w;
	TimestampTz now = GetCurrentTimestamp();
	int			n = HttpTakeResults(results, RESULTS_BATCH);
	int			i;
	bool		ok;

	if (n == 0)
		return true;
	for (i = 0; i < n; i++)
	{
		HttpResult *r = &results[i];
		bool		healthy;
		bool		counts;

		outcomes[i] = Classify(r, LimitTake(r->outbox_id), &healthy, &counts);
		waits[i] = outcomes[i] == OUTCOME_RETRY ? OutboxRetryWaitMs(r->notification, r->attempt) : 0;
		if (counts)
			BreakerRecord(r->destination, healthy, r->error, now);
		LimitRecord(r, HttpInFlightTo(r->destination), now);
	}
	w.results = results;
	w.n = n;
	w.outcomes = outcomes;
	w.waits_ms = waits;
	ok = RunInTransaction(RecordTxn, &w, "recording delivery outcomes");
	for (i = 0; i < n; i++)
		DeliveryContextTake(results[i].outbox_id, &contexts[i]);
	if (!ok)
		RunInTransaction(ReleaseTxn, &w, "releasing rows whose outcome was not recorded");
	else
		AttemptLogWrite(results, outcomes, contexts, n);
	for (i = 0; i < n; i++)
		SpanExportRecord(&results[i], &contexts[i]);
	if (ok && dispatcher_shared != NULL)
		for (i = 0; i < n; i++)
		{
			MetricsDelivery(results[i].notification, outcomes[i], results[i].destination,
							contexts[i].operation, !results[i].build_error, results[i].latency_ms);
			pg_atomic_fetch_add_u64(outcomes[i] == OUTCOME_DONE ? &dispatcher_shared->delivered
									: outcomes[i] == OUTCOME_RETRY ? &dispatcher_shared->retried
									: &dispatcher_shared->dead, 1);
		}
	for (i = 0; i < n; i++)
		HttpResultFree(&results[i]);
	return ok;
}

/* Claim what is due and start sending it; returns whether the claim filled every free slot. */
static bool
ClaimAndSend(TimestampTz *next_due, bool *failed)
{
	ClaimWork	w;
	int			i;
	TimestampTz now;

	*failed = false;
	w.max = dispatcher_concurrency - HttpInFlight();
	if (w.max <= 0)
		return false;
	MemoryContextReset(cycle_context);
	w.count = 0;
	w.claimed = NULL;
	w.next_due = 0;
	w.cxt = cycle_context;
	if (!RunInTransaction(ClaimTxn, &w, "claiming due requests"))
	{
		*failed = true;
		return false;
	}
	*next_due = w.next_due;
	now = GetCurrentTimestamp();
	for (i = 0; i < w.count; i++)
	{
		ClaimedRequest *c = &w.claimed[i];
		char		error[256];

		LimitRemember(c->id, c->attempts_max);
		DeliveryContextSending(c->id, c->operation, c->method, c->url, c->headers, c->nheaders);
		if (c->error != NULL)
		{
			HttpFail(c->id, c->attempt, c->destination, c->notification, true, c->error);
			continue;
		}
		if (BreakerCheck(c->destination, now) == BREAKER_PROBE)
			BreakerProbeStarted(c->destination);
		if (!HttpAdd(c->id, c->attempt, c->destination, c->notification, c->method, c->url,
					 c->headers, c->nheaders, c->body, error, sizeof(error)))
			HttpFail(c->id, c->attempt, c->destination, c->notification, false, error);
		else
			LimitSent(c->destination, HttpInFlightTo(c->destination), now);
	}
	if (dispatcher_shared != NULL)
		pg_atomic_fetch_add_u64(&dispatcher_shared->claimed, w.count);
	return w.count > 0 && w.count >= w.max;
}

/* Milliseconds from now until t (at least 0), capped at cap. */
static long
MsUntil(TimestampTz t, TimestampTz now, long cap)
{
	long		secs;
	int			usecs;

	if (t <= now)
		return 0;
	TimestampDifference(now, t, &secs, &usecs);
	if (secs >= cap / 1000)
		return cap;
	return Min(cap, secs * 1000 + (usecs + 999) / 1000);
}

/*
 * Session settings of the worker: its transactions wait for the WAL flush as
 * pay.dispatcher_synchronous_commit says, and every statement is planned for
 * its parameters (a generic plan made while the outbox was small would scan
 * it whole once it is large).
 *
 * The worker is the bootstrap superuser.  Its search_path is pinned to
 * pg_catalog, pg_temp: otherwise the database's or the role's setting
 * (ALTER DATABASE ... SET search_path, which a database owner may run) would
 * put schemas others can create in ahead of pg_catalog, and a function or
 * operator there that outranks the built-in one (a bigint * interval
 * operator, a now()) would run with superuser rights.  PGC_S_OVERRIDE ranks
 * above those settings and the configuration file, and is also what RESET
 * returns to.
 */
static void
ApplySettings(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("synchronous_commit", dispatcher_synchronous_commit ? "on" : "off",
					PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("plan_cache_mode", "force_custom_plan", PGC_SUSET, PGC_S_SESSION);
	/*
	 * Every statement of the worker is a short OLTP one.  JIT compiling
	 * one costs ~100 ms of the loop (every transfer's answer waits behind
	 * it), and the claim's planning (IndexOnlyPlanning: enable_seqscan off)
	 * gives any sequential scan a cost far above jit_above_cost.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
}

/* Entry point of the background worker. */
void
pay_dispatcher_main(Datum arg)
{
	WaitEventSet *events;
	bool		ready = false;
	bool		claim_wanted = true;
	TimestampTz next_due = 0;
	TimestampTz next_lease_look = 0;
	TimestampTz backoff_until = 0;
	TimestampTz breaker_due = 0;	/* a cool-down, a Retry-After or a rate's wait ends: look for due rows */
	TimestampTz woke_at = GetCurrentTimestamp();	/* the loop's last wake-up: its work since delays answers */

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	pqsignal(SIGUSR1, procsignal_sigusr1_handler);
	BackgroundWorkerUnblockSignals();
	dispatcher_am_worker = true;

	BackgroundWorkerInitializeConnection(dispatcher_database, NULL, 0);
	pgstat_report_appname("pay dispatcher");
	ApplySettings();
	cycle_context = AllocSetContextCreate(TopMemoryContext, "pay dispatcher cycle", ALLOCSET_DEFAULT_SIZES);

	before_shmem_exit(DispatcherDetach, (Datum) 0);
	if (dispatcher_shared != NULL)
	{
		SpinLockAcquire(&dispatcher_shared->mutex);
		dispatcher_shared->database_oid = MyDatabaseId;
		dispatcher_shared->pgprocno = MyProc->pgprocno;
		dispatcher_shared->pid = MyProcPid;
		dispatcher_shared->started_at = GetCurrentTimestamp();
		dispatcher_shared->in_flight = 0;
		dispatcher_shared->extension_ready = false;
		dispatcher_shared->last_error[0] = '\0';
		SpinLockRelease(&dispatcher_shared->mutex);
	}
	BreakerReset();
	LimitReset();
	HttpStart();
	ereport(LOG, (errmsg("pay dispatcher started for database \"%s\"", dispatcher_database)));

	events = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(events, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(events, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(events, WL_SOCKET_READABLE, HttpEpollFd(), NULL, NULL);

	for (;;)
	{
		WaitEvent	occurred[3];
		TimestampTz now;
		long		timeout;
		long		curl_ms;
		long		span_ms;
		TimestampTz breaker_next;
		TimestampTz limit_next;
		int			n;
		int			i;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			ApplySettings();
		}

		if (!ready)
		{
			if (!RunInTransaction(StartupWork, &ready, "starting") || !ready)
			{
				Publish(false);
				/* pay not (yet) installed there: look again when woken or in 10 s */
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 IDLE_WAIT_MS / 6, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				continue;
			}
			DispatcherSetError(NULL);
			next_lease_look = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), LeaseMs() / 2);
			claim_wanted = true;
		}

		/* 1. let curl work; record what finished */
		HttpDrive();
		while (HttpResultsWaiting() > 0)
		{
			if (!RecordResults())
				break;
			claim_wanted = true;	/* slots freed */
		}

		/* 2. claims past the lease (another look, in case of a stuck claim) */
		now = GetCurrentTimestamp();
		if (now >= next_lease_look)
		{
			int			taken_back = 0;

			/* rows taken back are due now: nothing else would wake us for them */
			if (RunInTransaction(LeaseWork, &taken_back, "taking back expired claims") && taken_back > 0)
				claim_wanted = true;
			next_lease_look = TimestampTzPlusMilliseconds(now, Min(LeaseMs() / 2, IDLE_WAIT_MS));
		}

		/* 3. claim and send what is due */
		if (breaker_due != 0 && now >= breaker_due)
		{
			claim_wanted = true;
			breaker_due = 0;
		}
		if (next_due != 0 && now >= next_due)
			claim_wanted = true;
		if (claim_wanted && now >= backoff_until && HttpInFlight() < dispatcher_concurrency)
		{
			bool		failed;
			bool		full = ClaimAndSend(&next_due, &failed);

			if (failed)
			{
				bool		still = false;

				backoff_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ERROR_BACKOFF_MS);
				if (!RunInTransaction(CheckWork, &still, "checking the extension") || !still)
					ready = false;	/* dropped: start over once it is back */
			}
			else
			{
				/* A full claim may have left more due rows behind. */
				claim_wanted = full;
				HttpDrive();
			}
		}
		/* 4. spans to the collector, when a batch is due */
		SpanExportFlush(GetCurrentTimestamp());
		Publish(true);

		/* 5. sleep until something happens */
		now = GetCurrentTimestamp();
		timeout = IDLE_WAIT_MS;
		curl_ms = HttpTimeoutMs();
		if (curl_ms >= 0)
			timeout = Min(timeout, curl_ms);
		if (HttpResultsWaiting() > 0)
			timeout = 0;
		if (claim_wanted && HttpInFlight() < dispatcher_concurrency)
			timeout = Min(timeout, MsUntil(backoff_until, now, IDLE_WAIT_MS));
		if (next_due != 0)
			timeout = Min(timeout, MsUntil(next_due, now, IDLE_WAIT_MS));
		breaker_next = BreakerNextChange(now);
		limit_next = LimitNextChange(now);
		if (limit_next != 0 && (breaker_next == 0 || limit_next < breaker_next))
			breaker_next = limit_next;
		/*
		 * Keep an earlier due time until it passes: a wait that ends while
		 * the loop runs (a token earned) is no longer reported, and nothing
		 * else would bring the claim it was for.
		 */
		if (breaker_next != 0 && (breaker_due == 0 || breaker_next < breaker_due))
			breaker_due = breaker_next;
		if (breaker_due != 0)
			timeout = Min(timeout, MsUntil(breaker_due, now, IDLE_WAIT_MS));
		timeout = Min(timeout, MsUntil(next_lease_look, now, IDLE_WAIT_MS));
		span_ms = SpanExportWaitMs(now);
		if (span_ms >= 0)
			timeout = Min(timeout, span_ms);

		LimitLoopBusy((double) (now - woke_at) / 1000.0);
		n = WaitEventSetWait(events, timeout, occurred, lengthof(occurred), PG_WAIT_EXTENSION);
		woke_at = GetCurrentTimestamp();
		for (i = 0; i < n; i++)
			if (occurred[i].events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				claim_wanted = true;
				if (dispatcher_shared != NULL)
					pg_atomic_fetch_add_u64(&dispatcher_shared->wakeups, 1);
			}
	}
}
