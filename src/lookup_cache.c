/*
 * lookup_cache.c — per-backend caches of reference rows that never change
 * once committed: currencies (code -> exponent), merchants (code <-> id,
 * notify_url) and ledger accounts (id -> code, currency, floor, slots;
 * code -> id).
 *
 * Why: every payment looks these up several times, and these tables are
 * small enough that the planner reads them with a sequential scan, which
 * for a hundred rows costs more CPU than the INSERT the lookup serves.  A
 * hit here is one hash probe.
 *
 * Why it is safe: triggers refuse, for every role, to UPDATE the cached
 * columns of these tables, to DELETE their rows or to TRUNCATE them
 * (pay._forbid_parent_change), so a committed row stays as cached.  The
 * one mutable fact cached, a merchant's notify_url, is guarded
 * by a statement trigger on pay.merchants that sends a relcache
 * invalidation on every UPDATE (cache_invalidate.c), which every backend
 * applies like a catalog change.  Two things could still make
 * an entry wrong, and both empty every cache:
 *  - the row was written by this transaction, which then rolls back (or a
 *    subtransaction, e.g. a PL/pgSQL EXCEPTION block): xact callbacks;
 *  - a table is dropped or altered (DROP EXTENSION pay): relcache callback.
 * Misses are read with SPI as the current user, like the SQL they replace.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "pay.h"
#include "lookup_cache.h"

typedef struct CurrencyEntry
{
	char		code[4];		/* key: three letters and a NUL */
	int16		exponent;
} CurrencyEntry;

typedef struct MerchantByCode
{
	char		code[MERCHANT_CODE_MAX + 1];	/* key */
	int64		id;
} MerchantByCode;

typedef struct MerchantById
{
	int64		id;				/* key */
	char		code[MERCHANT_CODE_MAX + 1];
	char	   *notify_url;		/* in strings_context; NULL: none (no notifications) */
} MerchantById;

typedef struct AccountByCode
{
	char		code[ACCOUNT_CODE_MAX + 1]; /* key */
	int64		id;
} AccountByCode;

static HTAB *currencies = NULL;
static HTAB *merchants_by_code = NULL;
static HTAB *merchants_by_id = NULL;
static HTAB *accounts_by_code = NULL;
static HTAB *accounts_by_id = NULL;
/* What entries point to (notify_url), emptied with them. */
static MemoryContext strings_context = NULL;

static const char *const cached_tables[] = {"currencies", "merchants", "accounts"};
static Oid	cached_relids[lengthof(cached_tables)];

static void LookupCacheReset(void);

/* Emptied on the rollback of a (sub)transaction that added an entry (cache_abort.c). */
static CacheAbortGuard abort_guard = {false, LookupCacheReset};

/* Forget everything; the next lookup reloads what it needs. */
static void
LookupCacheReset(void)
{
	HTAB	  **tables[] = {&currencies, &merchants_by_code, &merchants_by_id,
	&accounts_by_code, &accounts_by_id};
	int			i;

	for (i = 0; i < (int) lengthof(tables); i++)
	{
		if (*tables[i] != NULL)
			hash_destroy(*tables[i]);
		*tables[i] = NULL;
	}
	if (strings_context != NULL)
		MemoryContextReset(strings_context);
	memset(cached_relids, 0, sizeof(cached_relids));
	abort_guard.added = false;
}

static void
LookupCacheRelcacheCallback(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < (int) lengthof(cached_relids); i++)
		if (relid == InvalidOid || (OidIsValid(cached_relids[i]) && relid == cached_relids[i]))
		{
			LookupCacheReset();
			return;
		}
}

/* Module set-up, from _PG_init. */
void
LookupCacheInit(void)
{
	CacheAbortGuardRegister(&abort_guard);
	CacheRegisterRelcacheCallback(LookupCacheRelcacheCallback, (Datum) 0);
}

/* A table of the caches, created on first use; notes the relids to watch. */
static HTAB *
CacheTable(HTAB **table, const char *name, Size keysize, Size entrysize, int flags)
{
	HASHCTL		ctl;
	int			i;

	if (*table != NULL)
		return *table;
	for (i = 0; i < (int) lengthof(cached_tables); i++)
		if (!OidIsValid(cached_relids[i]))
			cached_relids[i] = get_relname_relid(cached_tables[i], get_namespace_oid("pay", false));
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = TopMemoryContext;
	*table = hash_create(name, 64, &ctl, flags | HASH_ELEM | HASH_CONTEXT);
	return *table;
}

/* The five maps. */
static HTAB *
Currencies(void)
{
	return CacheTable(&currencies, "pay currencies", 4, sizeof(CurrencyEntry), HASH_BLOBS);
}

static HTAB *
MerchantsByCode(void)
{
	return CacheTable(&merchants_by_code, "pay merchants by code",
					  MERCHANT_CODE_MAX + 1, sizeof(MerchantByCode), HASH_STRINGS);
}

static HTAB *
MerchantsById(void)
{
	return CacheTable(&merchants_by_id, "pay merchants by id", sizeof(int64), sizeof(MerchantById), HASH_BLOBS);
}

static HTAB *
AccountsByCode(void)
{
	return CacheTable(&accounts_by_code, "pay accounts by code",
					  ACCOUNT_CODE_MAX + 1, sizeof(AccountByCode), HASH_STRINGS);
}

static HTAB *
AccountsById(void)
{
	return CacheTable(&accounts_by_id, "pay accounts by id", sizeof(int64), sizeof(AccountInfo), HASH_BLOBS);
}

/*
 * Run a one-row query with one parameter as the current user; true and the
 * row's columns (copied to the caller's memory) when found.
 */
static bool
FetchRow(const char *sql, Oid argtype, Datum arg, int ncols, Datum *out, bool *nulls)
{
	MemoryContext caller = CurrentMemoryContext;
	bool		found = false;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* not read-only: the row may come from this transaction's last statement */
	rc = SPI_execute_with_args(sql, 1, &argtype, &arg, NULL, false, 2);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "lookup failed: %s", SPI_result_code_string(rc));
	if (SPI_processed > 1)
		elog(ERROR, "lookup returned more than one row");
	if (SPI_processed == 1)
	{
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int			i;

		found = true;
		for (i = 0; i < ncols; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);
			Datum		v = SPI_getbinval(SPI_tuptable->vals[0], desc, i + 1, &nulls[i]);
			MemoryContext spi = MemoryContextSwitchTo(caller);

			out[i] = nulls[i] ? (Datum) 0 : datumCopy(v, att->attbyval, att->attlen);
			MemoryContextSwitchTo(spi);
		}
	}
	SPI_finish();
	return found;
}

bool
LookupCurrencyExponent(const char *code, int16 *exponent)
{
	char		key[4] = {0};
	CurrencyEntry *e;
	Datum		col;
	bool		isnull;

	if (code == NULL || strlen(code) != 3)
		return false;
	memcpy(key, code, 3);
	e = hash_search(Currencies(), key, HASH_FIND, NULL);
	if (e != NULL)
	{
		*exponent = e->exponent;
		return true;
	}
	if (!FetchRow("SELECT exponent FROM pay.currencies WHERE code = $1::pg_catalog.bpchar",
				  TEXTOID, CStringGetTextDatum(code), 1, &col, &isnull))
		return false;
	/* the table is looked up again: reading may have emptied the caches */
	e = hash_search(Currencies(), key, HASH_ENTER, NULL);
	e->exponent = DatumGetInt16(col);
	abort_guard.added = true;
	*exponent = e->exponent;
	return true;
}

/* Enter a merchant's code -> id. */
static void
RememberMerchantCode(const char *code, int64 id)
{
	MerchantByCode *c = hash_search(MerchantsByCode(), code, HASH_ENTER, NULL);

	c->id = id;
	abort_guard.added = true;
}

/* Enter a merchant in both maps. */
static void
RememberMerchant(const char *code, int64 id, const char *notify_url)
{
	MerchantById *i = hash_search(MerchantsById(), &id, HASH_ENTER, NULL);

	if (strings_context == NULL)
		strings_context = AllocSetContextCreate(TopMemoryContext, "pay lookup cache strings",
												ALLOCSET_SMALL_SIZES);
	strlcpy(i->code, code, sizeof(i->code));
	i->notify_url = notify_url ? MemoryContextStrdup(strings_context, notify_url) : NULL;
	RememberMerchantCode(code, id);
}

bool
LookupMerchantId(const char *code, int64 *id)
{
	MerchantByCode *e;
	Datum		col;
	bool		isnull;

	if (code == NULL || strlen(code) > MERCHANT_CODE_MAX)
		return false;
	e = hash_search(MerchantsByCode(), code, HASH_FIND, NULL);
	if (e != NULL)
	{
		*id = e->id;
		return true;
	}
	if (!FetchRow("SELECT id FROM pay.merchants WHERE code = $1",
				  TEXTOID, CStringGetTextDatum(code), 1, &col, &isnull))
		return false;
	*id = DatumGetInt64(col);
	RememberMerchantCode(code, *id);
	return true;
}

/* The by-id entry of a merchant, read on a miss; an error if there is none. */
static MerchantById *
LoadMerchant(int64 id)
{
	MerchantById *e;
	Datum		cols[2];
	bool		nulls[2];

	e = hash_search(MerchantsById(), &id, HASH_FIND, NULL);
	if (e != NULL)
		return e;
	if (!FetchRow("SELECT code, notify_url FROM pay.merchants WHERE id = $1",
				  INT8OID, Int64GetDatum(id), 2, cols, nulls))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("merchant_id: merchant %lld does not exist", (long long) id)));
	RememberMerchant(TextDatumGetCString(cols[0]), id, nulls[1] ? NULL : TextDatumGetCString(cols[1]));
	return hash_search(MerchantsById(), &id, HASH_FIND, NULL);
}

char *
LookupMerchantCode(int64 id)
{
	return pstrdup(LoadMerchant(id)->code);
}

bool
LookupMerchantNotified(int64 id)
{
	return LoadMerchant(id)->notify_url != NULL;
}

char *
LookupMerchantNotifyUrl(int64 id)
{
	const char *url = LoadMerchant(id)->notify_url;

	return url ? pstrdup(url) : NULL;
}

/* Read an account by id into the caches and *out; false if there is none. */
static bool
LoadAccount(int64 id, AccountInfo *out)
{
	Datum		cols[4];
	bool		nulls[4];
	AccountInfo *a;
	AccountByCode *c;

	if (!FetchRow("SELECT code, currency::text, non_negative, slots FROM pay.accounts WHERE id = $1",
				  INT8OID, Int64GetDatum(id), 4, cols, nulls))
		return false;
	out->id = id;
	strlcpy(out->code, TextDatumGetCString(cols[0]), sizeof(out->code));
	strlcpy(out->currency, TextDatumGetCString(cols[1]), sizeof(out->currency));
	out->non_negative = DatumGetBool(cols[2]);
	out->slots = DatumGetInt16(cols[3]);
	a = hash_search(AccountsById(), &id, HASH_ENTER, NULL);
	*a = *out;
	c = hash_search(AccountsByCode(), out->code, HASH_ENTER, NULL);
	c->id = id;
	abort_guard.added = true;
	return true;
}

bool
LookupAccount(int64 id, AccountInfo *out)
{
	AccountInfo *a = hash_search(AccountsById(), &id, HASH_FIND, NULL);

	if (a != NULL)
	{
		*out = *a;
		return true;
	}
	return LoadAccount(id, out);
}

int64
LookupOrOpenAccount(const char *code, const char *currency)
{
	AccountByCode *e;
	AccountInfo info;
	Datum		col;
	bool		isnull;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	int			rc;

	if (strlen(code) > ACCOUNT_CODE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account code \"%s\" is longer than %d characters", code, ACCOUNT_CODE_MAX)));
	e = hash_search(AccountsByCode(), code, HASH_FIND, NULL);
	if (e != NULL)
		return e->id;
	/* pay._account_open finds the account or opens it on first use */
	args[0] = CStringGetTextDatum(code);
	args[1] = CStringGetTextDatum(currency);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args("SELECT pay._account_open($1, $2::pg_catalog.bpchar)",
							   2, types, args, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not open account \"%s\": %s", code, SPI_result_code_string(rc));
	col = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_finish();				/* col is an int8, passed by value */
	if (isnull || !LoadAccount(DatumGetInt64(col), &info))
		elog(ERROR, "account \"%s\" vanished after it was opened", code);
	return info.id;
}
