/*
 * dispatcher.h — what the modules of the dispatcher share: the shared
 * memory the worker and the backends meet in, settings, and each module's
 * entry points.
 *
 *   dispatcher_shmem.c    shared state, worker registration, pay.dispatcher_status()
 *   outbox_wake.c         wake the worker when a transaction that queued commits
 *   outbox_count.c        the outbox backlog count and its bound (pay.outbox_pending_max)
 *   outbox_schedule.c     retry schedules and attempt limits
 *   dispatcher_worker.c   the background worker's main loop
 *   dispatcher_store.c    the worker's SQL: claim, record outcomes, recover
 *   dispatcher_http.c     libcurl multi: many transfers from one handle
 *   dispatcher_breaker.c  circuit breakers per destination
 *   dispatcher_limit.c    per destination: adaptive concurrency, Retry-After, max_rate
 *   destination_check.c   refusing loopback, link-local and private destinations
 */
#ifndef PAY_DISPATCHER_H
#define PAY_DISPATCHER_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/spin.h"

#define DISPATCHER_ERROR_LEN	256

/* Shared memory of the dispatcher; exists only with shared_preload_libraries = 'pay'. */
typedef struct DispatcherShared
{
	slock_t		mutex;			/* protects the fields up to last_error */
	Oid			database_oid;	/* database the worker serves, once connected */
	int			pgprocno;		/* worker's PGPROC number, -1 when not running */
	int			pid;
	TimestampTz started_at;
	int			in_flight;
	bool		extension_ready;	/* pay is installed in that database */
	char		last_error[DISPATCHER_ERROR_LEN];
	pg_atomic_uint64 claimed;
	pg_atomic_uint64 delivered;
	pg_atomic_uint64 retried;
	pg_atomic_uint64 dead;
	pg_atomic_uint64 wakeups;
} DispatcherShared;

/* NULL unless pay was preloaded. */
extern DispatcherShared *dispatcher_shared;

/* True in the dispatcher process itself. */
extern bool dispatcher_am_worker;

/* dispatcher_shmem.c */
extern void DispatcherShmemInit(void);
extern void DispatcherSetError(const char *message);

/* dispatcher_worker.c */
extern char *dispatcher_database;
extern int	dispatcher_concurrency;
extern int	dispatcher_destination_concurrency;
extern int	dispatcher_lease_ms;
extern void DispatcherWorkerInit(void);
extern PGDLLEXPORT void pay_dispatcher_main(Datum arg);

/* destination_check.c */
struct sockaddr;
extern bool allow_private_destinations;
extern void DestinationInit(void);
extern bool DestinationAddressRefused(const struct sockaddr *sa, char *why, size_t why_size);

/* outbox_wake.c */
extern void OutboxWakeInit(void);

/* outbox_count.c */
extern void OutboxCountInit(void);

/* outbox_schedule.c */
extern void OutboxScheduleInit(void);
extern int	OutboxAttemptsMax(bool notification);
extern int64 OutboxRetryWaitMs(bool notification, int failed_attempt);

/* dispatcher_breaker.c */
typedef enum BreakerVerdict
{
	BREAKER_CLOSED,				/* send freely */
	BREAKER_OPEN,				/* send nothing */
	BREAKER_PROBE				/* send one request */
} BreakerVerdict;

extern int	breaker_failures;
extern int	breaker_cooldown_ms;
extern void BreakerInit(void);
extern void BreakerReset(void);
extern void BreakerLoad(void);
extern BreakerVerdict BreakerCheck(const char *destination, TimestampTz now);
extern void BreakerProbeStarted(const char *destination);
extern void BreakerRecord(const char *destination, bool healthy, const char *error, TimestampTz now);
extern void BreakerSave(void);
extern int	BreakerBlocked(TimestampTz now, char ***destinations);
extern TimestampTz BreakerNextChange(TimestampTz now);

/* dispatcher_http.c */
typedef struct HttpTransfer HttpTransfer;

/* What became of a transfer. */
/* The most of an answer's header lines kept (bytes, with the NUL). */
#define HTTP_HEADERS_MAX 16384

typedef struct HttpResult
{
	int64		outbox_id;
	int			attempt;
	int			http_status;	/* 0 when no response */
	bool		transport_error;	/* timeout, connection error, TLS, malformed... */
	bool		too_large;
	bool		build_error;	/* the request could not be built: no transfer */
	bool		refused;		/* every address it resolved to is refused (destination_check.c) */
	char	   *body;			/* response body, NUL-terminated (malloc'd) */
	size_t		body_len;
	char	   *headers;		/* response header lines of the final answer, "Name: value\r\n" each (malloc'd) */
	size_t		headers_len;
	double		latency_ms;
	TimestampTz started_at;
	char		error[256];
	char	   *destination;	/* malloc'd */
	bool		notification;
} HttpResult;

extern int	http_connect_timeout_ms;
extern int	http_timeout_ms;
extern int	http_response_max_bytes;
extern char *http_ca_file;
extern void HttpInit(void);
extern void HttpStart(void);
extern int	HttpEpollFd(void);
extern long HttpTimeoutMs(void);
extern bool HttpAdd(int64 outbox_id, int attempt, const char *destination, bool notification,
					const char *method, const char *url, char **headers, int nheaders,
					const char *body, char *error, size_t errlen);
extern void HttpFail(int64 outbox_id, int attempt, const char *destination, bool notification,
					 bool build_error, const char *error);
extern void HttpDrive(void);
extern int	HttpInFlight(void);
extern int	HttpInFlightTo(const char *destination);
extern int	HttpInFlightIds(int64 **ids);
extern int	HttpTakeResults(HttpResult *results, int max);
extern int	HttpResultsWaiting(void);
extern void HttpResultFree(HttpResult *result);
/* Post body (malloc'd; taken over) to an OTLP collector on the multi handle; false with error set if it cannot start. */
extern bool HttpExportPost(const char *url, char *body, size_t len, char *error, size_t errlen);
/* A span post is on the wire. */
extern bool HttpExportBusy(void);

/* dispatcher_limit.c */
extern int	destination_concurrency_min;
extern void LimitInit(void);
extern void LimitReset(void);
extern void LimitLoadRates(TimestampTz now, bool force);
extern bool LimitKnown(const char *destination);
extern int	LimitConcurrency(const char *destination);
extern int	LimitRoom(const char *destination, int in_flight, TimestampTz now);
extern void LimitSent(const char *destination, int in_flight, TimestampTz now);
extern TimestampTz LimitNextChange(TimestampTz now);
extern void LimitRecord(const HttpResult *r, int in_flight, TimestampTz now);
extern void LimitLoopBusy(double ms);

/* dispatcher_store.c */
typedef struct ClaimedRequest
{
	int64		id;
	int			attempt;
	int			attempts_max;
	bool		notification;
	char	   *destination;
	char	   *operation;
	char	   *method;
	char	   *url;
	char	  **headers;
	int			nheaders;
	char	   *body;
	char	   *error;			/* the request could not be built */
} ClaimedRequest;

extern bool StoreExtensionReady(void);
extern int	StoreRecover(bool all, int64 lease_ms);
extern int	StoreClaim(int max, ClaimedRequest **claimed, TimestampTz *next_due, MemoryContext cxt);
extern void StoreRecord(HttpResult *results, int n, int *outcomes, const int64 *waits_ms);
extern void StoreRelease(const int64 *ids, const int *attempts, int n);

/* outcomes of an attempt, as StoreRecord takes them */
#define OUTCOME_DONE	0
#define OUTCOME_RETRY	1
#define OUTCOME_DEAD	2

#endif							/* PAY_DISPATCHER_H */
