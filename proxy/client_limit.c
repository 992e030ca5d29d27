/*
 * client_limit.c — a token bucket per client IP address (without the port),
 * so that one client sending requests as fast as it can gets 429 before its
 * requests wait for, and exhaust, the database connection pool.
 *
 * The buckets sit in a fixed table (no allocation per client): an address
 * hashes to a slot and probes a few after it.  When every probed slot holds
 * another address, the one refilled longest ago is taken over: a bucket
 * idle that long is full anyway, and a table flooded with addresses then
 * errs towards letting a request through rather than refusing one.
 * Tokens are counted in thousandths so the arithmetic stays in integers.
 */
#include "client_limit.h"

#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "clock.h"

#define SLOTS		4096		/* a power of two */
#define PROBES		8
#define MILLI		1000

typedef struct Bucket
{
	unsigned char addr[16];		/* IPv4 in the first 4 bytes, or IPv6 */
	bool		used;
	int64_t		tokens_milli;
	int64_t		refilled_ms;
} Bucket;

static Bucket buckets[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t rate_per_s;		/* 0: no limit */
static int64_t burst_milli;

void
ClientLimitSetup(long per_second, long burst)
{
	rate_per_s = per_second;
	burst_milli = (int64_t) (burst > 0 ? burst : 1) * MILLI;
}

/* The client's address as 16 bytes; false if MHD does not know it */
static bool
ClientAddress(struct MHD_Connection *connection, unsigned char out[16])
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	memset(out, 0, 16);
	if (info == NULL || info->client_addr == NULL)
		return false;
	if (info->client_addr->sa_family == AF_INET)
		memcpy(out, &((const struct sockaddr_in *) info->client_addr)->sin_addr, 4);
	else if (info->client_addr->sa_family == AF_INET6)
		memcpy(out, &((const struct sockaddr_in6 *) info->client_addr)->sin6_addr, 16);
	else
		return false;
	return true;
}

/* FNV-1a of the address */
static uint32_t
Hash(const unsigned char addr[16])
{
	uint32_t	h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	return h;
}

/* The address's bucket, found or (re)made full; the lock is held */
static Bucket *
FindBucket(const unsigned char addr[16], int64_t now)
{
	uint32_t	h = Hash(addr);
	Bucket	   *oldest = NULL;

	for (int i = 0; i < PROBES; i++)
	{
		Bucket	   *b = &buckets[(h + i) & (SLOTS - 1)];

		if (b->used && memcmp(b->addr, addr, 16) == 0)
			return b;
		if (!b->used)
		{
			oldest = b;
			break;
		}
		if (oldest == NULL || b->refilled_ms < oldest->refilled_ms)
			oldest = b;
	}
	memcpy(oldest->addr, addr, 16);
	oldest->used = true;
	oldest->tokens_milli = burst_milli;
	oldest->refilled_ms = now;
	return oldest;
}

bool
ClientLimitTake(struct MHD_Connection *connection, long *retry_after_s)
{
	unsigned char addr[16];
	int64_t		now;
	Bucket	   *b;
	bool		taken;

	*retry_after_s = 0;
	if (rate_per_s <= 0 || !ClientAddress(connection, addr))
		return true;
	now = ClockNowMs();
	pthread_mutex_lock(&lock);
	b = FindBucket(addr, now);
	if (now > b->refilled_ms)
	{
		/* rate_per_s tokens per 1000 ms = rate_per_s milli-tokens per ms */
		int64_t		add = (now - b->refilled_ms) * rate_per_s;

		b->tokens_milli = add >= burst_milli - b->tokens_milli ? burst_milli : b->tokens_milli + add;
		b->refilled_ms = now;
	}
	taken = b->tokens_milli >= MILLI;
	if (taken)
		b->tokens_milli -= MILLI;
	else
		*retry_after_s = (long) ((MILLI - b->tokens_milli + rate_per_s * 1000 - 1) / (rate_per_s * 1000));
	pthread_mutex_unlock(&lock);
	if (!taken && *retry_after_s < 1)
		*retry_after_s = 1;
	return taken;
}
