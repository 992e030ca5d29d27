/*
 * dispatcher_shmem.c — the dispatcher's shared memory and its registration
 * as a background worker (only under shared_preload_libraries), and
 * pay.dispatcher_status(), which says whether delivery is running.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "attempt_log.h"
#include "dispatcher.h"
#include "pay.h"
#include "span_export.h"

DispatcherShared *dispatcher_shared = NULL;
bool		dispatcher_am_worker = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(pay_dispatcher_status);

/* shmem_request_hook: reserve our struct. */
static void
DispatcherShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(DispatcherShared)));
}

/* shmem_startup_hook: create (or attach to) our struct. */
static void
DispatcherShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	dispatcher_shared = ShmemInitStruct("pay dispatcher", sizeof(DispatcherShared), &found);
	if (!found)
	{
		memset(dispatcher_shared, 0, sizeof(DispatcherShared));
		SpinLockInit(&dispatcher_shared->mutex);
		dispatcher_shared->pgprocno = -1;
		dispatcher_shared->database_oid = InvalidOid;
		pg_atomic_init_u64(&dispatcher_shared->claimed, 0);
		pg_atomic_init_u64(&dispatcher_shared->delivered, 0);
		pg_atomic_init_u64(&dispatcher_shared->retried, 0);
		pg_atomic_init_u64(&dispatcher_shared->dead, 0);
		pg_atomic_init_u64(&dispatcher_shared->wakeups, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init: under shared_preload_libraries, shared memory and the worker. */
void
DispatcherShmemInit(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = DispatcherShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = DispatcherShmemStartup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 2;	/* seconds after a crash or a termination */
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pay");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pay_dispatcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pay dispatcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pay dispatcher");
	RegisterBackgroundWorker(&worker);
}

/* Module set-up, from _PG_init: every dispatcher module's settings, then shared memory and the worker. */
void
DispatcherInit(void)
{
	DispatcherWorkerInit();
	HttpInit();
	OutboxScheduleInit();
	BreakerInit();
	LimitInit();
	OutboxCountInit();
	OutboxWakeInit();
	DestinationInit();
	AttemptLogInit();
	SpanExportInit();
	DispatcherShmemInit();
}

/* Remember the last error of the worker for pay.dispatcher_status(). */
void
DispatcherSetError(const char *message)
{
	if (dispatcher_shared == NULL)
		return;
	SpinLockAcquire(&dispatcher_shared->mutex);
	strlcpy(dispatcher_shared->last_error, message ? message : "", DISPATCHER_ERROR_LEN);
	SpinLockRelease(&dispatcher_shared->mutex);
}

/* pay.dispatcher_status() -> one row: running, counters, why not. */
Datum
pay_dispatcher_status(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[13];
	bool		nulls[13];
	DispatcherShared *s = dispatcher_shared;
	int			procno = -1;
	int			pid = 0;
	Oid			db = InvalidOid;
	TimestampTz started = 0;
	int			in_flight = 0;
	bool		ready = false;
	char		last_error[DISPATCHER_ERROR_LEN] = "";
	bool		running;
	const char *detail;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pay_dispatcher_status must return a record");
	desc = BlessTupleDesc(desc);
	memset(nulls, 0, sizeof(nulls));

	if (s != NULL)
	{
		SpinLockAcquire(&s->mutex);
		procno = s->pgprocno;
		pid = s->pid;
		db = s->database_oid;
		started = s->started_at;
		in_flight = s->in_flight;
		ready = s->extension_ready;
		strlcpy(last_error, s->last_error, sizeof(last_error));
		SpinLockRelease(&s->mutex);
	}
	running = s != NULL && procno >= 0 && db == MyDatabaseId && ready;
	if (s == NULL)
		detail = "pay is not in shared_preload_libraries: nothing delivers the outbox";
	else if (procno < 0)
		detail = "the dispatcher is not running (the postmaster restarts it after a crash)";
	else if (db != MyDatabaseId)
		detail = "the dispatcher serves another database: set pay.database to this one and restart";
	else if (!ready)
		detail = "the dispatcher is starting";
	else
		detail = "delivering";

	values[0] = BoolGetDatum(running);
	values[1] = BoolGetDatum(s != NULL);
	values[2] = CStringGetTextDatum(dispatcher_database ? dispatcher_database : "");
	values[3] = Int32GetDatum(pid);
	nulls[3] = procno < 0;
	values[4] = TimestampTzGetDatum(started);
	nulls[4] = procno < 0;
	values[5] = Int32GetDatum(in_flight);
	values[6] = Int64GetDatum(s ? (int64) pg_atomic_read_u64(&s->claimed) : 0);
	values[7] = Int64GetDatum(s ? (int64) pg_atomic_read_u64(&s->delivered) : 0);
	values[8] = Int64GetDatum(s ? (int64) pg_atomic_read_u64(&s->retried) : 0);
	values[9] = Int64GetDatum(s ? (int64) pg_atomic_read_u64(&s->dead) : 0);
	values[10] = Int64GetDatum(s ? (int64) pg_atomic_read_u64(&s->wakeups) : 0);
	values[11] = CStringGetTextDatum(last_error);
	nulls[11] = last_error[0] == '\0';
	values[12] = CStringGetTextDatum(detail);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
