/*
 * rate_limit.c — a token bucket per merchant for pay.create_order, in
 * shared memory, and the per-backend copy of its configuration.
 *
 * Why shared memory: a limit is per merchant, whichever backend serves the
 * request, so the buckets must be exact across backends; a table row would
 * cost a write (and WAL) per order and a row lock that queues every order
 * of the merchant until commit.  A bucket is a few numbers under a spinlock
 * held for the arithmetic only, never across a statement.  Buckets are not
 * persistent: after a restart every bucket starts full.
 *
 * The configuration is pay.rate_limits (pay.set_rate_limit), and for
 * merchants without a row the settings pay.default_rate_limit and
 * pay.default_rate_burst.  Each backend keeps the table in a hash, dropped
 * by the relcache invalidation that a statement trigger sends on every
 * change (cache_invalidate.c), so a change applies to every backend's next
 * statement after it commits.  The bucket remembers the rate and burst it
 * was last used with: a changed limit is a new limit, and starts full.
 *
 * Without shared_preload_libraries there are no buckets: pay.set_rate_limit
 * refuses, and create_order takes no token.  create_order takes its token
 * in pay._admit (order_admit.c), with its route, in the INSERT itself.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pay.h"
#include "metrics.h"

typedef struct Bucket
{
	int64		merchant_id;	/* key */
	slock_t		mutex;			/* guards the rest */
	double		tokens;			/* not money: a count of requests */
	TimestampTz refilled_at;
	double		per_second;
	int32		burst;
} Bucket;

typedef struct RateConfig
{
	int64		merchant_id;	/* key */
	double		per_second;
	int32		burst;
} RateConfig;

static int	bucket_max = 10000;
static double default_per_second = 0;
static int	default_burst = 100;

static HTAB *buckets = NULL;	/* shared; NULL without preloading */
static LWLock *buckets_lock = NULL; /* guards the hash's shape, not a bucket */
static HTAB *limits = NULL;		/* per backend: pay.rate_limits */
static Oid	limits_relid = InvalidOid;
static bool full_warned = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(pay_rate_limits_active);

static void
RateLimitShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(hash_estimate_size(bucket_max, sizeof(Bucket)));
	RequestNamedLWLockTranche("pay rate limit", 1);
}

static void
RateLimitShmemStartup(void)
{
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(int64);
	info.entrysize = sizeof(Bucket);
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	buckets = ShmemInitHash("pay rate buckets", bucket_max, bucket_max, &info, HASH_ELEM | HASH_BLOBS);
	buckets_lock = &(GetNamedLWLockTranche("pay rate limit"))->lock;
	LWLockRelease(AddinShmemInitLock);
}

static void
LimitsInvalidate(Datum arg, Oid relid)
{
	if (limits != NULL && (relid == InvalidOid || relid == limits_relid))
	{
		hash_destroy(limits);
		limits = NULL;
	}
}

/* Module set-up, from _PG_init: settings, and under preloading the buckets. */
void
RateLimitInit(void)
{
	DefineCustomIntVariable("pay.rate_limit_merchants",
							"How many merchants' token buckets shared memory holds.",
							"Beyond it a merchant's orders are not limited (with a warning in the log).",
							&bucket_max, 10000, 16, 1000000,
	/* a postmaster setting can only be defined while preloading */
							process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP,
							0, NULL, NULL, NULL);
	DefineCustomRealVariable("pay.default_rate_limit",
							 "Orders per second a merchant without its own rate limit may create; 0: no limit.",
							 NULL, &default_per_second, 0, 0, 1e9, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pay.default_rate_burst",
							"Bucket size of the default rate limit.",
							NULL, &default_burst, 100, 1, 1000000000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	CacheRegisterRelcacheCallback(LimitsInvalidate, (Datum) 0);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = RateLimitShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = RateLimitShmemStartup;
}

/* Read pay.rate_limits into a fresh per-backend hash. */
static void
LoadLimits(void)
{
	HASHCTL		info;
	HTAB	   *h;
	uint64		i;
	int			rc;

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(int64);
	info.entrysize = sizeof(RateConfig);
	info.hcxt = TopMemoryContext;
	h = hash_create("pay rate limits", 64, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		limits_relid = get_relname_relid("rate_limits", get_namespace_oid("pay", false));
		rc = SPI_execute("SELECT merchant_id, per_second::float8, burst FROM pay.rate_limits", true, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not read pay.rate_limits: %s", SPI_result_code_string(rc));
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[i];
			bool		isnull;
			int64		id = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull));
			RateConfig	   *l = hash_search(h, &id, HASH_ENTER, NULL);

			l->per_second = DatumGetFloat8(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));
			l->burst = DatumGetInt32(SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &isnull));
		}
		SPI_finish();
	}
	PG_CATCH();
	{
		hash_destroy(h);
		PG_RE_THROW();
	}
	PG_END_TRY();
	limits = h;
}

/* The merchant's limit; false when it has none. */
static bool
MerchantLimit(int64 merchant_id, double *per_second, int32 *burst)
{
	RateConfig	   *l;

	if (limits == NULL)
		LoadLimits();
	l = hash_search(limits, &merchant_id, HASH_FIND, NULL);
	if (l != NULL)
	{
		*per_second = l->per_second;
		*burst = l->burst;
		return true;
	}
	*per_second = default_per_second;
	*burst = default_burst;
	return default_per_second > 0;
}

/* The merchant's bucket, made full on first use; NULL when the hash is full. */
static Bucket *
FindBucket(int64 merchant_id, double per_second, int32 burst, TimestampTz now)
{
	Bucket	   *b;
	bool		found;

	LWLockAcquire(buckets_lock, LW_SHARED);
	b = hash_search(buckets, &merchant_id, HASH_FIND, NULL);
	LWLockRelease(buckets_lock);
	if (b != NULL)
		return b;				/* entries are never removed: the pointer stays valid */
	LWLockAcquire(buckets_lock, LW_EXCLUSIVE);
	b = hash_search(buckets, &merchant_id, HASH_ENTER_NULL, &found);
	if (b != NULL && !found)
	{
		SpinLockInit(&b->mutex);
		b->tokens = burst;
		b->refilled_at = now;
		b->per_second = per_second;
		b->burst = burst;
	}
	LWLockRelease(buckets_lock);
	return b;
}

/*
 * Take one token: 0 when taken, else the seconds until one is available
 * (nothing taken).
 */
static double
TakeToken(Bucket *b, double per_second, int32 burst, TimestampTz now)
{
	double		wait = 0;
	double		elapsed;

	SpinLockAcquire(&b->mutex);
	if (b->per_second != per_second || b->burst != burst)
	{
		b->per_second = per_second;
		b->burst = burst;
		b->tokens = burst;
		b->refilled_at = now;
	}
	elapsed = now > b->refilled_at ? (double) (now - b->refilled_at) / USECS_PER_SEC : 0;
	b->tokens = Min((double) burst, b->tokens + elapsed * per_second);
	b->refilled_at = Max(now, b->refilled_at);
	if (b->tokens >= 1)
		b->tokens -= 1;
	else
		wait = (1 - b->tokens) / per_second;
	SpinLockRelease(&b->mutex);
	return wait;
}

/*
 * One token of the merchant's bucket (merchant is its code, for the
 * message), or PY029 naming the merchant, with the whole seconds until a
 * token is available in DETAIL (pay-proxy's Retry-After).
 */
void
RateLimitTake(int64 merchant_id, const char *code)
{
	double		per_second;
	int32		burst;
	TimestampTz now;
	Bucket	   *b;
	double		wait;

	if (buckets == NULL || !MerchantLimit(merchant_id, &per_second, &burst))
		return;
	now = GetCurrentTimestamp();	/* the clock, not the transaction's start */
	b = FindBucket(merchant_id, per_second, burst, now);
	if (b == NULL)
	{
		if (!full_warned)
			ereport(WARNING,
					(errmsg("pay.rate_limit_merchants (%d) buckets are all in use: merchant %s is not limited",
							bucket_max, code),
					 errhint("Raise pay.rate_limit_merchants and restart the server.")));
		full_warned = true;
		return;
	}
	wait = TakeToken(b, per_second, burst, now);
	if (wait > 0)
	{
		/* now, not at commit: the error rolls the transaction back */
		MetricsCount(METRIC_RATE_LIMITED);
		ereport(ERROR,
				(errcode(ERRCODE_PAY_RATE_LIMITED),
				 errmsg("merchant \"%s\" is over its rate limit of %g orders per second (burst %d)",
						code, per_second, burst),
				 errdetail_internal("%d", (int) Max(1, ceil(wait))),
				 errhint("DETAIL is the number of seconds until the next order is accepted.")));
	}
}

/* pay._rate_limits_active() -> boolean: are there buckets (preloaded)? */
Datum
pay_rate_limits_active(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(buckets != NULL);
}
