/*
 * secret_cache.c — sealed rows of pay.secrets kept per backend.
 *
 * Every callback verifies with a gateway credential; reading its row
 * (switching to the table owner, an SPI query joining pay.master_keys) was
 * about a twentieth of a callback.  The row is kept instead: its
 * ciphertext, nonce, tag and key generation, exactly what any reader of
 * the table could see — the key file is still read and the secret opened
 * on every use (secret_store.c), so a removed or replaced key file is
 * noticed at once.
 *
 * When a kept row may be stale, everything is dropped:
 *  - pay.secrets or pay.master_keys was written (set_secret, delete_secret,
 *    rotate_master_key, anything else): a statement trigger sends a
 *    relcache invalidation (cache_invalidate.c), which this backend applies
 *    at its next command and every other backend before its next look
 *    here (isolation spec secret_cache);
 *  - a (sub)transaction that kept a row rolls back: the row may have been
 *    its own uncommitted write;
 *  - a table is dropped or altered (DROP EXTENSION pay).
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "pay.h"
#include "secret_cache.h"

#define SECRET_CACHE_ENTRIES_MAX 256	/* then start afresh: credentials are few */

typedef struct Entry
{
	struct Entry *next;
	char	   *owner;
	char	   *name;
	void	   *fixed;
	size_t		fixed_len;
	uint8_t    *ct;
	size_t		ct_len;
} Entry;

static MemoryContext cache_cxt = NULL;
static Entry *entries = NULL;
static int	n_entries = 0;
static Oid	watched[2] = {InvalidOid, InvalidOid};	/* pay.secrets, pay.master_keys */

static void SecretCacheReset(void);

/* Emptied on the rollback of a (sub)transaction that kept a row (cache_abort.c). */
static CacheAbortGuard abort_guard = {false, SecretCacheReset};

static void
SecretCacheReset(void)
{
	if (cache_cxt != NULL)
		MemoryContextReset(cache_cxt);
	entries = NULL;
	n_entries = 0;
	abort_guard.added = false;
	watched[0] = watched[1] = InvalidOid;
}

static void
SecretCacheRelcacheCallback(Datum arg, Oid relid)
{
	if (entries != NULL && (relid == InvalidOid || relid == watched[0] || relid == watched[1]))
		SecretCacheReset();
}

/* Module set-up, from _PG_init. */
void
SecretCacheInit(void)
{
	CacheAbortGuardRegister(&abort_guard);
	CacheRegisterRelcacheCallback(SecretCacheRelcacheCallback, (Datum) 0);
}

bool
SecretCacheGet(const char *owner, const char *name, void *fixed, size_t fixed_len,
			   uint8_t **ct, size_t *ct_len)
{
	Entry	   *e;

	/*
	 * Apply the invalidations other backends sent at their commits, as a
	 * read of the table would see their rows: a cheap check when there
	 * are none.  (Without it, a transaction would keep reading what it
	 * kept until its next lock acquisition.)
	 */
	AcceptInvalidationMessages();
	for (e = entries; e != NULL; e = e->next)
		if (strcmp(e->owner, owner) == 0 && strcmp(e->name, name) == 0 && e->fixed_len == fixed_len)
		{
			memcpy(fixed, e->fixed, fixed_len);
			*ct = palloc(e->ct_len);
			memcpy(*ct, e->ct, e->ct_len);
			*ct_len = e->ct_len;
			return true;
		}
	return false;
}

void
SecretCachePut(const char *owner, const char *name, const void *fixed, size_t fixed_len,
			   const uint8_t *ct, size_t ct_len)
{
	Entry	   *e;

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext, "pay secret cache", ALLOCSET_SMALL_SIZES);
	if (n_entries >= SECRET_CACHE_ENTRIES_MAX)
		SecretCacheReset();
	if (!OidIsValid(watched[0]))
	{
		Oid			pay = get_namespace_oid("pay", false);

		watched[0] = get_relname_relid("secrets", pay);
		watched[1] = get_relname_relid("master_keys", pay);
	}
	e = MemoryContextAllocZero(cache_cxt, sizeof(Entry));
	e->owner = MemoryContextStrdup(cache_cxt, owner);
	e->name = MemoryContextStrdup(cache_cxt, name);
	e->fixed = MemoryContextAlloc(cache_cxt, fixed_len);
	memcpy(e->fixed, fixed, fixed_len);
	e->fixed_len = fixed_len;
	e->ct = MemoryContextAlloc(cache_cxt, ct_len);
	memcpy(e->ct, ct, ct_len);
	e->ct_len = ct_len;
	e->next = entries;
	entries = e;
	n_entries++;
	abort_guard.added = true;
}
