/*
 * secret_store.c — the encrypted secret store: pay.secrets rows sealed with
 * AES-256-GCM (crypto/secret_box.c) under a master key read from the file
 * named by the superuser-only setting pay.master_key_file
 * (crypto/master_key.c), the C API of secret_store.h, and the SQL functions
 * set_secret, reveal_secret, rotate_master_key and secret_hmac_sha256_hex.
 *
 * Master key generations live in pay.master_keys: the kind of key file (raw
 * hex key or passphrase), the PBKDF2 salt and iteration count, and a key
 * check that tells a wrong key file from a damaged ciphertext.  Exactly one
 * generation is current; every secret is sealed under it.  The first
 * set_secret creates generation 1 from the configured file;
 * rotate_master_key re-encrypts everything under a new generation.
 *
 * Hygiene: plaintext and keys live in buffers that are cleansed
 * (OPENSSL_cleanse) before any ERROR can be raised, or in PG_FINALLY blocks.
 * No message carries secret material or key file content, and errors hide
 * the statement text from the server log (set_secret's statement holds the
 * plaintext).
 */
#include "postgres.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "ct.h"
#include "master_key.h"
#include "pay.h"
#include "secret_box.h"
#include "secret_cache.h"
#include "secret_store.h"

#define SETTING_NAME	"pay.master_key_file"
#define KIND_RAW		"raw"
#define KIND_PBKDF2		"pbkdf2-hmac-sha256"

/* pay.master_key_file: the file holding the master key (PGC_SUSET). */
static char *master_key_file = NULL;

/*
 * One passphrase-derived key per backend, so that PBKDF2's 600,000
 * iterations are paid once, not per call.  id is master_key_cache_id() of
 * the file content, salt and iteration count: a changed file misses, and
 * the old key is cleansed when it is replaced or the setting changes.
 */
static struct
{
	bool		valid;
	uint8		id[MASTER_KEY_CACHE_ID_LEN];
	uint8		key[MASTER_KEY_LEN];
}			key_cache;

/* A row of pay.master_keys. */
typedef struct MasterKeyGen
{
	int32		id;
	MasterKeyKind kind;
	uint8		salt[MASTER_KEY_SALT_LEN];	/* passphrase only */
	uint32		iterations;		/* passphrase only */
	uint8		check[MASTER_KEY_CHECK_LEN];
} MasterKeyGen;

/* The sealed columns of a pay.secrets row. */
typedef struct SealedSecret
{
	uint8		nonce[AEAD_NONCE_LEN];
	uint8		tag[AEAD_TAG_LEN];
	uint8	   *ct;
	size_t		ct_len;
} SealedSecret;

/* Kept SPI plan of SecretFetch. */
static SPIPlanPtr fetch_plan = NULL;

PG_FUNCTION_INFO_V1(pay_set_secret);
PG_FUNCTION_INFO_V1(pay_reveal_secret);
PG_FUNCTION_INFO_V1(pay_rotate_master_key);
PG_FUNCTION_INFO_V1(pay_secret_hmac_sha256_hex);

/* Forget the cached derived key. */
static void
KeyCacheClear(void)
{
	OPENSSL_cleanse(&key_cache, sizeof(key_cache));
	key_cache.valid = false;
}

/* GUC assign hook: a different key file makes the cached key useless; cleanse it. */
static void
MasterKeyFileAssign(const char *newval, void *extra)
{
	const char *oldval = master_key_file ? master_key_file : "";

	if (strcmp(newval ? newval : "", oldval) != 0)
		KeyCacheClear();
}

/* Module set-up, from _PG_init. */
void
SecretStoreInit(void)
{
	DefineCustomStringVariable(SETTING_NAME,
							   "File holding the master key of the secret store (pay.secrets).",
							   "64 hex digits (a raw 256-bit key) or a passphrase for PBKDF2-HMAC-SHA256; "
							   "surrounding whitespace is ignored.",
							   &master_key_file, NULL,
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, MasterKeyFileAssign, NULL);
}

/*
 * Whether the calling role may see where the key file is: the same roles
 * that may read the setting (GUC_SUPERUSER_ONLY).  Inside the SECURITY
 * DEFINER functions the outer role is the caller, not the owner.
 */
static bool
MaySeeKeyFile(void)
{
	Oid			role = GetOuterUserId();

	return superuser_arg(role) || has_privs_of_role(role, ROLE_PG_READ_ALL_SETTINGS);
}

/* Raise 22023 for an owner or name that the table would not accept. */
static void
ValidateOwnerName(const char *owner, const char *name)
{
	size_t		owner_len = strlen(owner);
	size_t		name_len = strlen(name);
	size_t		i;
	size_t		colon = 0;

	for (i = 0; i < owner_len && owner[i] != ':'; i++)
		if (!((owner[i] >= 'a' && owner[i] <= 'z') ||
			  (i > 0 && ((owner[i] >= '0' && owner[i] <= '9') || owner[i] == '_'))))
			break;
	colon = i;
	if (owner_len > SECRET_OWNER_MAX || colon == 0 || colon >= owner_len - 1 ||
		owner[colon] != ':')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"owner\" must look like \"<kind>:<id>\""),
				 errdetail("For example gateway:<name> or merchant:<code>, at most %d bytes.",
						   SECRET_OWNER_MAX),
				 errhidestmt(true)));
	if (name_len == 0 || name_len > SECRET_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"name\" must be 1 to %d bytes long", SECRET_NAME_MAX),
				 errhidestmt(true)));
	for (i = 0; i < owner_len; i++)
		if ((unsigned char) owner[i] < 0x20 || owner[i] == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"owner\" must not contain control characters"),
					 errhidestmt(true)));
	for (i = 0; i < name_len; i++)
		if ((unsigned char) name[i] < 0x20 || name[i] == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"name\" must not contain control characters"),
					 errhidestmt(true)));
}

/* Raise 22004 for a NULL argument. */
static void
RequireArg(FunctionCallInfo fcinfo, int n, const char *argname)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be null", argname),
				 errhidestmt(true)));
}

/*
 * Reads a key file into buf (MASTER_KEY_FILE_MAX + 1 bytes); returns its
 * length.  what names the setting or argument that named the file.
 */
static size_t
KeyFileRead(const char *path, const char *what, char *buf)
{
	bool		show_path = MaySeeKeyFile();
	FILE	   *file;
	size_t		n;

	if (path == NULL || path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s names no master key file", what),
				 errhint("A superuser must set pay.master_key_file to the file holding the master key."),
				 errhidestmt(true)));
	file = AllocateFile(path, PG_BINARY_R);
	if (file == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open the master key file named by %s: %m", what),
				 (show_path ? errdetail("The file is \"%s\".", path) : 0),
				 errhidestmt(true)));
	n = fread(buf, 1, MASTER_KEY_FILE_MAX + 1, file);
	if (ferror(file))
	{
		int			save_errno = errno;

		OPENSSL_cleanse(buf, MASTER_KEY_FILE_MAX + 1);
		FreeFile(file);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read the master key file named by %s: %m", what),
				 (show_path ? errdetail("The file is \"%s\".", path) : 0),
				 errhidestmt(true)));
	}
	FreeFile(file);
	if (n > MASTER_KEY_FILE_MAX)
	{
		OPENSSL_cleanse(buf, MASTER_KEY_FILE_MAX + 1);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("the master key file named by %s is larger than %d bytes",
						what, MASTER_KEY_FILE_MAX),
				 (show_path ? errdetail("The file is \"%s\".", path) : 0),
				 errhidestmt(true)));
	}
	return n;
}

/*
 * The master key in the file at path (what names its setting or argument).
 * With create, gen gets the kind, salt, iteration count and key check of a
 * new generation for that file; otherwise the file must hold generation
 * gen's key.  key is cleansed before any ERROR.
 */
static void
MasterKeyLoad(const char *path, const char *what, MasterKeyGen *gen, bool create,
			  uint8 key[MASTER_KEY_LEN])
{
	bool		show_path = MaySeeKeyFile();
	char		buf[MASTER_KEY_FILE_MAX + 1];
	size_t		n = KeyFileRead(path, what, buf);
	MasterKeyKind kind;
	size_t		start = 0;
	size_t		len = 0;
	uint8		check[MASTER_KEY_CHECK_LEN];
	bool		ok;
	bool		kind_matches = true;

	if (master_key_parse(buf, n, &kind, &start, &len) != 0)
	{
		OPENSSL_cleanse(buf, sizeof(buf));
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("the master key file named by %s is empty", what),
				 (show_path ? errdetail("The file is \"%s\".", path) : 0),
				 errhint("Put 64 hex digits (a raw key) or a passphrase in it."),
				 errhidestmt(true)));
	}
	if (create)
	{
		gen->kind = kind;
		gen->iterations = 0;
		memset(gen->salt, 0, sizeof(gen->salt));
		if (kind == MASTER_KEY_PASSPHRASE)
		{
			gen->iterations = MASTER_KEY_ITERATIONS;
			if (RAND_bytes(gen->salt, sizeof(gen->salt)) != 1)
			{
				OPENSSL_cleanse(buf, sizeof(buf));
				elog(ERROR, "RAND_bytes failed");
			}
		}
	}
	else
		kind_matches = (kind == gen->kind);

	if (!kind_matches)
		ok = true;				/* reported below as a wrong key */
	else if (kind == MASTER_KEY_RAW)
	{
		/* The file holds no passphrase (now): no derived key to keep. */
		if (key_cache.valid)
			KeyCacheClear();
		ok = master_key_from_hex(buf + start, len, key) == 0;
	}
	else
	{
		uint8		id[MASTER_KEY_CACHE_ID_LEN];

		ok = master_key_cache_id(buf, n, gen->salt, sizeof(gen->salt), gen->iterations, id) == 0;
		if (ok && key_cache.valid && ct_equal(id, key_cache.id, sizeof(id)))
			memcpy(key, key_cache.key, MASTER_KEY_LEN);
		else if (ok)
		{
			KeyCacheClear();
			ok = master_key_derive(buf + start, len, gen->salt, sizeof(gen->salt),
								   gen->iterations, key) == 0;
			if (ok)
			{
				memcpy(key_cache.id, id, sizeof(id));
				memcpy(key_cache.key, key, MASTER_KEY_LEN);
				key_cache.valid = true;
			}
		}
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!ok)
	{
		OPENSSL_cleanse(key, MASTER_KEY_LEN);
		elog(ERROR, "could not derive the master key");
	}
	if (kind_matches && master_key_check(key, check) != 0)
	{
		OPENSSL_cleanse(key, MASTER_KEY_LEN);
		elog(ERROR, "could not compute the master key check");
	}
	if (create)
		memcpy(gen->check, check, sizeof(check));
	else if (!kind_matches || !ct_equal(check, gen->check, sizeof(check)))
	{
		OPENSSL_cleanse(key, MASTER_KEY_LEN);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PASSWORD),
				 errmsg("the master key file named by %s does not hold master key generation %d",
						what, gen->id),
				 (show_path ?
				  errdetail("The secrets are sealed under generation %d; the key in \"%s\" does not pass its key check.",
							gen->id, path) :
				  errdetail("The secrets are sealed under generation %d.", gen->id)),
				 errhint("After pay.rotate_master_key(), pay.master_key_file must name the new key file."),
				 errhidestmt(true)));
	}
}

/* A bytea Datum holding a copy of data. */
static Datum
ByteaDatum(const uint8 *data, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	if (len > 0)
		memcpy(VARDATA(b), data, len);
	return PointerGetDatum(b);
}

/* Raise XX001 about a malformed stored row. */
static void
CorruptRow(const char *table, const char *column)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("malformed %s column of %s", column, table),
			 errhidestmt(true)));
}

/* Copies bytea column col of an SPI row into out, which must get exactly len bytes. */
static void
GetByteaColumn(HeapTuple row, TupleDesc desc, int col, const char *table, uint8 *out, size_t len)
{
	bool		isnull;
	Datum		d = SPI_getbinval(row, desc, col, &isnull);
	bytea	   *b;

	if (isnull)
		CorruptRow(table, SPI_fname(desc, col));
	b = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(b) != len)
		CorruptRow(table, SPI_fname(desc, col));
	memcpy(out, VARDATA_ANY(b), len);
}

/* Reads a pay.master_keys row (id, kind, salt, iterations, key_check from col). */
static void
GetGeneration(HeapTuple row, TupleDesc desc, int col, MasterKeyGen *gen)
{
	bool		isnull;
	char	   *kind;
	Datum		d;

	memset(gen, 0, sizeof(*gen));
	gen->id = DatumGetInt32(SPI_getbinval(row, desc, col, &isnull));
	kind = SPI_getvalue(row, desc, col + 1);
	if (kind != NULL && strcmp(kind, KIND_RAW) == 0)
		gen->kind = MASTER_KEY_RAW;
	else if (kind != NULL && strcmp(kind, KIND_PBKDF2) == 0)
	{
		gen->kind = MASTER_KEY_PASSPHRASE;
		GetByteaColumn(row, desc, col + 2, "pay.master_keys", gen->salt, sizeof(gen->salt));
		d = SPI_getbinval(row, desc, col + 3, &isnull);
		if (isnull || DatumGetInt32(d) < MASTER_KEY_ITERATIONS ||
			DatumGetInt32(d) > MASTER_KEY_ITERATIONS_MAX)
			CorruptRow("pay.master_keys", "iterations");
		gen->iterations = (uint32) DatumGetInt32(d);
	}
	else
		CorruptRow("pay.master_keys", "kind");
	GetByteaColumn(row, desc, col + 4, "pay.master_keys", gen->check, sizeof(gen->check));
}

/*
 * Reads the sealed columns (nonce, ciphertext, tag from col); the ciphertext
 * is copied into the upper SPI context (the caller frees it).
 */
static void
GetSealed(HeapTuple row, TupleDesc desc, int col, SealedSecret *sealed)
{
	bool		isnull;
	Datum		d;
	bytea	   *ct;

	GetByteaColumn(row, desc, col, "pay.secrets", sealed->nonce, sizeof(sealed->nonce));
	d = SPI_getbinval(row, desc, col + 1, &isnull);
	if (isnull)
		CorruptRow("pay.secrets", "ciphertext");
	ct = DatumGetByteaPP(d);
	sealed->ct_len = VARSIZE_ANY_EXHDR(ct);
	if (sealed->ct_len == 0 || sealed->ct_len > SECRET_VALUE_MAX)
		CorruptRow("pay.secrets", "ciphertext");
	sealed->ct = SPI_palloc(sealed->ct_len);
	memcpy(sealed->ct, VARDATA_ANY(ct), sealed->ct_len);
	GetByteaColumn(row, desc, col + 2, "pay.secrets", sealed->tag, sizeof(sealed->tag));
}

/* Runs a statement through SPI, raising an error unless it returns expected. */
static void
SpiRun(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	int			rc;

	if (nargs > 0)
		rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	else
		rc = SPI_execute(sql, false, 0);
	if (rc != expected)
		elog(ERROR, "SPI failed on \"%s\": %s", sql, SPI_result_code_string(rc));
}

/*
 * Reads the current master key generation into gen, locking its row
 * (lock: "FOR SHARE" or "FOR UPDATE"); false if there is none yet.
 */
static bool
CurrentGeneration(MasterKeyGen *gen, const char *lock)
{
	char		sql[200];

	snprintf(sql, sizeof(sql),
			 "SELECT id, kind, salt, iterations, key_check FROM pay.master_keys "
			 "WHERE is_current %s", lock);
	SpiRun(sql, 0, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed > 1)
		elog(ERROR, "more than one current master key generation");
	if (SPI_processed == 0)
		return false;
	GetGeneration(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, gen);
	return true;
}

/* Next generation number. */
static int32
NextGenerationId(void)
{
	bool		isnull;
	Datum		d;

	SpiRun("SELECT COALESCE(pg_catalog.max(id), 0) OPERATOR(pg_catalog.+) 1 FROM pay.master_keys",
		   0, NULL, NULL, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return DatumGetInt32(d);
}

/* Inserts generation gen as the current one; key_file is informational. */
static void
InsertGeneration(const MasterKeyGen *gen, const char *key_file)
{
	Oid			types[6] = {INT4OID, TEXTOID, BYTEAOID, INT4OID, BYTEAOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	int			rc;

	values[0] = Int32GetDatum(gen->id);
	values[1] = CStringGetTextDatum(gen->kind == MASTER_KEY_RAW ? KIND_RAW : KIND_PBKDF2);
	values[2] = ByteaDatum(gen->salt, sizeof(gen->salt));
	values[3] = Int32GetDatum((int32) gen->iterations);
	values[4] = ByteaDatum(gen->check, sizeof(gen->check));
	values[5] = CStringGetTextDatum(key_file);
	if (gen->kind == MASTER_KEY_RAW)
		nulls[2] = nulls[3] = 'n';
	rc = SPI_execute_with_args("INSERT INTO pay.master_keys "
							   "(id, kind, salt, iterations, key_check, is_current, key_file) "
							   "VALUES ($1, $2, $3, $4, $5, true, $6)",
							   6, types, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not insert a master key generation: %s", SPI_result_code_string(rc));
}

/* The owner of pay.secrets, whose privileges SecretFetch reads it with. */
static Oid
SecretsTableOwner(void)
{
	Oid			rel = get_relname_relid("secrets", get_namespace_oid("pay", false));
	HeapTuple	tuple;
	Oid			owner;

	if (!OidIsValid(rel))
		elog(ERROR, "table pay.secrets does not exist");
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", rel);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Reads the sealed row of (owner, name) and its generation, as the table's
 * owner.  false if there is no such secret.
 */
static bool
FetchSealed(const char *owner, const char *name, SealedSecret *sealed, MasterKeyGen *gen)
{
	Oid			save_user;
	int			save_sec;
	volatile bool found = false;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(SecretsTableOwner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		Datum		values[2];
		int			rc;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (fetch_plan == NULL)
		{
			Oid			types[2] = {TEXTOID, TEXTOID};
			SPIPlanPtr	plan;

			/* Operators qualified: this runs as the owner, whatever the caller's search_path. */
			plan = SPI_prepare("SELECT s.nonce, s.ciphertext, s.tag, "
							   "k.id, k.kind, k.salt, k.iterations, k.key_check "
							   "FROM pay.secrets s JOIN pay.master_keys k "
							   "ON k.id OPERATOR(pg_catalog.=) s.master_key_id "
							   "WHERE s.owner OPERATOR(pg_catalog.=) $1 "
							   "AND s.name OPERATOR(pg_catalog.=) $2",
							   2, types);
			if (plan == NULL)
				elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "SPI_keepplan failed");
			fetch_plan = plan;
		}
		values[0] = CStringGetTextDatum(owner);
		values[1] = CStringGetTextDatum(name);
		rc = SPI_execute_plan(fetch_plan, values, NULL, true, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not read pay.secrets: %s", SPI_result_code_string(rc));
		if (SPI_processed == 1)
		{
			GetSealed(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, sealed);
			GetGeneration(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, gen);
			found = true;
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();
	return found;
}

/* Opens sealed for (owner, name) with key into a palloc'd NUL-terminated buffer. */
static char *
OpenSealed(const uint8 key[MASTER_KEY_LEN], const char *owner, const char *name,
		   const SealedSecret *sealed)
{
	char	   *pt = palloc(sealed->ct_len + 1);

	if (secret_box_open(key, owner, strlen(owner), name, strlen(name), sealed->nonce,
						sealed->ct, sealed->ct_len, sealed->tag, (uint8 *) pt) != 0)
	{
		pfree(pt);				/* secret_box_open cleansed it */
		return NULL;
	}
	pt[sealed->ct_len] = '\0';
	return pt;
}

/* Raise XX001: the ciphertext of (owner, name) does not verify. */
static void
ReportUnopenable(const char *owner, const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("secret \"%s\" of owner \"%s\" does not decrypt", name, owner),
			 errdetail("The master key is right but the authentication tag does not verify: "
					   "the ciphertext was altered or copied from another row."),
			 errhidestmt(true)));
}

/* What secret_cache.c keeps of a row besides its ciphertext. */
typedef struct KeptFixed
{
	MasterKeyGen gen;
	uint8		nonce[AEAD_NONCE_LEN];
	uint8		tag[AEAD_TAG_LEN];
} KeptFixed;

/* FetchSealed, through the per-backend cache of sealed rows (secret_cache.c). */
static bool
FetchSealedKept(const char *owner, const char *name, SealedSecret *sealed, MasterKeyGen *gen)
{
	KeptFixed	f;

	if (SecretCacheGet(owner, name, &f, sizeof(f), &sealed->ct, &sealed->ct_len))
	{
		*gen = f.gen;
		memcpy(sealed->nonce, f.nonce, sizeof(f.nonce));
		memcpy(sealed->tag, f.tag, sizeof(f.tag));
		return true;
	}
	if (!FetchSealed(owner, name, sealed, gen))
		return false;
	memset(&f, 0, sizeof(f));
	f.gen = *gen;
	memcpy(f.nonce, sealed->nonce, sizeof(f.nonce));
	memcpy(f.tag, sealed->tag, sizeof(f.tag));
	SecretCachePut(owner, name, &f, sizeof(f), sealed->ct, sealed->ct_len);
	return true;
}

char *
SecretFetchIfExists(const char *owner, const char *name, size_t *len)
{
	SealedSecret sealed;
	MasterKeyGen gen;
	uint8		key[MASTER_KEY_LEN];
	char	   *pt;

	if (!FetchSealedKept(owner, name, &sealed, &gen))
		return NULL;
	MasterKeyLoad(master_key_file, "setting \"" SETTING_NAME "\"", &gen, false, key);
	pt = OpenSealed(key, owner, name, &sealed);
	OPENSSL_cleanse(key, sizeof(key));
	pfree(sealed.ct);
	if (pt == NULL)
		ReportUnopenable(owner, name);
	*len = sealed.ct_len;
	return pt;
}

char *
SecretFetch(const char *owner, const char *name, size_t *len)
{
	char	   *pt = SecretFetchIfExists(owner, name, len);

	if (pt == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("secret \"%s\" of owner \"%s\" does not exist", name, owner),
				 errhidestmt(true)));
	return pt;
}

void
SecretScrub(char *plaintext, size_t len)
{
	if (plaintext == NULL)
		return;
	OPENSSL_cleanse(plaintext, len + 1);
	pfree(plaintext);
}

/* Inserts or replaces the sealed row of (owner, name) under generation gen_id. */
static void
UpsertSealed(const char *owner, const char *name, int32 gen_id, const SealedSecret *sealed)
{
	Oid			types[6] = {TEXTOID, TEXTOID, INT4OID, BYTEAOID, BYTEAOID, BYTEAOID};
	Datum		values[6];

	values[0] = CStringGetTextDatum(owner);
	values[1] = CStringGetTextDatum(name);
	values[2] = Int32GetDatum(gen_id);
	values[3] = ByteaDatum(sealed->nonce, sizeof(sealed->nonce));
	values[4] = ByteaDatum(sealed->ct, sealed->ct_len);
	values[5] = ByteaDatum(sealed->tag, sizeof(sealed->tag));
	SpiRun("INSERT INTO pay.secrets AS s (owner, name, master_key_id, nonce, ciphertext, tag) "
		   "VALUES ($1, $2, $3, $4, $5, $6) "
		   "ON CONFLICT (owner, name) DO UPDATE SET master_key_id = EXCLUDED.master_key_id, "
		   "nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext, tag = EXCLUDED.tag, "
		   "updated_at = pg_catalog.now()",
		   6, types, values, SPI_OK_INSERT);
}

/* Replaces the sealed columns of (owner, name), keeping its timestamps (rotation). */
static void
UpdateSealed(const char *owner, const char *name, int32 gen_id, const SealedSecret *sealed)
{
	Oid			types[6] = {TEXTOID, TEXTOID, INT4OID, BYTEAOID, BYTEAOID, BYTEAOID};
	Datum		values[6];

	values[0] = CStringGetTextDatum(owner);
	values[1] = CStringGetTextDatum(name);
	values[2] = Int32GetDatum(gen_id);
	values[3] = ByteaDatum(sealed->nonce, sizeof(sealed->nonce));
	values[4] = ByteaDatum(sealed->ct, sealed->ct_len);
	values[5] = ByteaDatum(sealed->tag, sizeof(sealed->tag));
	SpiRun("UPDATE pay.secrets SET master_key_id = $3, nonce = $4, ciphertext = $5, tag = $6 "
		   "WHERE owner OPERATOR(pg_catalog.=) $1 AND name OPERATOR(pg_catalog.=) $2",
		   6, types, values, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		elog(ERROR, "secret being re-encrypted vanished");
}

/* The body of pay.set_secret, after argument checks. */
static void
SetSecret(const char *owner, const char *name, const uint8 *value, size_t value_len)
{
	MasterKeyGen gen;
	SealedSecret sealed;
	uint8		key[MASTER_KEY_LEN];
	bool		create = false;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * A separate LOCK first: it waits for a rotation in progress, and the
	 * SELECT after it takes a new snapshot that sees the rotation's result.
	 */
	SpiRun("LOCK TABLE pay.master_keys IN ROW SHARE MODE", 0, NULL, NULL, SPI_OK_UTILITY);
	if (!CurrentGeneration(&gen, "FOR SHARE"))
	{
		/* No master key yet: the first secret creates generation 1, once. */
		SpiRun("LOCK TABLE pay.master_keys IN SHARE ROW EXCLUSIVE MODE", 0, NULL, NULL,
			   SPI_OK_UTILITY);
		if (!CurrentGeneration(&gen, "FOR SHARE"))
		{
			create = true;
			gen.id = NextGenerationId();
		}
	}

	sealed.ct_len = value_len;
	sealed.ct = palloc(value_len);
	MasterKeyLoad(master_key_file, "setting \"" SETTING_NAME "\"", &gen, create, key);
	rc = secret_box_seal(key, owner, strlen(owner), name, strlen(name), value, value_len,
						 sealed.nonce, sealed.ct, sealed.tag);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc != 0)
		elog(ERROR, "could not encrypt the secret");

	if (create)
		InsertGeneration(&gen, master_key_file);
	UpsertSealed(owner, name, gen.id, &sealed);
	SPI_finish();
}

/* pay.set_secret(owner, name, value): stores value sealed under the current master key */
Datum
pay_set_secret(PG_FUNCTION_ARGS)
{
	MemoryContext fn_context = CurrentMemoryContext;
	text	   *value;
	char	   *owner;
	char	   *name;
	size_t		value_len;
	bool		copied;

	RequireArg(fcinfo, 0, "owner");
	RequireArg(fcinfo, 1, "name");
	RequireArg(fcinfo, 2, "value");
	owner = text_to_cstring(PG_GETARG_TEXT_PP(0));
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ValidateOwnerName(owner, name);
	value = PG_GETARG_TEXT_PP(2);
	value_len = VARSIZE_ANY_EXHDR(value);
	if (value_len == 0 || value_len > SECRET_VALUE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"value\" must be 1 to %d bytes long", SECRET_VALUE_MAX),
				 errhidestmt(true)));

	/*
	 * Whatever fails in here, the server log must not show this statement:
	 * it holds the value.  Our detoasted copy is scrubbed either way; the
	 * caller's Datum is not ours to change.
	 */
	copied = (Pointer) value != DatumGetPointer(PG_GETARG_DATUM(2));
	PG_TRY();
	{
		SetSecret(owner, name, (const uint8 *) VARDATA_ANY(value), value_len);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		if (copied)
			OPENSSL_cleanse(VARDATA_ANY(value), value_len);
		MemoryContextSwitchTo(fn_context);
		edata = CopyErrorData();
		FlushErrorState();
		edata->hide_stmt = true;
		ReThrowError(edata);
	}
	PG_END_TRY();
	if (copied)
		OPENSSL_cleanse(VARDATA_ANY(value), value_len);
	PG_RETURN_VOID();
}

/*
 * pay.reveal_secret(owner, name) -> the plaintext.  Owner only: no role is
 * granted it, and a grant would not be enough either.
 */
/*
 * Raise 42501 unless the current user has the privileges of the owner of
 * pay.secrets.  Whoever may compute with a stored secret can forge what it
 * signs (a PSP's callback, a merchant's request); so these functions are
 * not SECURITY DEFINER, and a GRANT of them alone opens nothing.  The
 * SECURITY DEFINER paths that need a secret (callback verification, the
 * merchant API, the dispatcher's builders) run as the owner.
 */
static void
RequireSecretsOwner(const char *what)
{
	if (!has_privs_of_role(GetUserId(), SecretsTableOwner()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only the owner of pay.secrets may %s", what)));
}

Datum
pay_reveal_secret(PG_FUNCTION_ARGS)
{
	char	   *owner;
	char	   *name;
	size_t		len = 0;
	char	   *pt;
	text	   *volatile result = NULL;

	RequireSecretsOwner("reveal a secret");
	owner = text_to_cstring(PG_GETARG_TEXT_PP(0));
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	pt = SecretFetch(owner, name, &len);

	PG_TRY();
	{
		result = cstring_to_text_with_len(pt, len);
	}
	PG_FINALLY();
	{
		SecretScrub(pt, len);
	}
	PG_END_TRY();
	PG_RETURN_TEXT_P(result);
}

/*
 * Lower-case hex of len bytes and a NUL into out.  Our own loop: both
 * PostgreSQL and crypto/hex.c define a hex_encode, and which one a call from
 * pay.so binds to depends on the dynamic linker.
 */
static void
HexLower(const uint8 *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t		i;

	for (i = 0; i < len; i++)
	{
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

/* pay.secret_hmac_sha256_hex(owner, name, message) -> hex HMAC-SHA256 keyed with the secret */
Datum
pay_secret_hmac_sha256_hex(PG_FUNCTION_ARGS)
{
	char	   *owner;
	char	   *name;
	text	   *message = PG_GETARG_TEXT_PP(2);
	size_t		len = 0;
	char	   *key;
	uint8		mac[32];
	char		out[2 * sizeof(mac) + 1];
	volatile int rc = -1;

	RequireSecretsOwner("compute with a secret");
	owner = text_to_cstring(PG_GETARG_TEXT_PP(0));
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	key = SecretFetch(owner, name, &len);

	PG_TRY();
	{
		rc = secret_box_hmac_sha256((const uint8 *) key, len,
									(const uint8 *) VARDATA_ANY(message),
									VARSIZE_ANY_EXHDR(message), mac);
	}
	PG_FINALLY();
	{
		SecretScrub(key, len);
	}
	PG_END_TRY();
	if (rc != 0)
		elog(ERROR, "HMAC-SHA256 failed");
	HexLower(mac, sizeof(mac), out);
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * Re-encrypts every secret from old_key to new_key under generation new_id,
 * in batches through a cursor.  Returns the number of secrets.  The cursor
 * is not read-only: it takes a snapshot after our locks, so it sees a secret
 * that a set_secret we waited for committed (the statement's snapshot is
 * older than that).
 */
static int32
ReencryptAll(const uint8 *old_key, const uint8 *new_key, int32 new_id, char *pt)
{
	Portal		cursor;
	int32		count = 0;

	cursor = SPI_cursor_open_with_args("pay_rotate_master_key",
									   "SELECT owner, name, nonce, ciphertext, tag FROM pay.secrets "
									   "ORDER BY owner, name",
									   0, NULL, NULL, NULL, false, 0);
	for (;;)
	{
		SPITupleTable *batch;
		uint64		n;
		uint64		i;

		SPI_cursor_fetch(cursor, true, 64);
		batch = SPI_tuptable;
		n = SPI_processed;
		if (n == 0)
			break;
		for (i = 0; i < n; i++)
		{
			HeapTuple	row = batch->vals[i];
			char	   *owner = SPI_getvalue(row, batch->tupdesc, 1);
			char	   *name = SPI_getvalue(row, batch->tupdesc, 2);
			SealedSecret sealed;
			SealedSecret resealed;
			int			rc;

			GetSealed(row, batch->tupdesc, 3, &sealed);
			if (secret_box_open(old_key, owner, strlen(owner), name, strlen(name),
								sealed.nonce, sealed.ct, sealed.ct_len, sealed.tag,
								(uint8 *) pt) != 0)
				ReportUnopenable(owner, name);
			resealed.ct_len = sealed.ct_len;
			resealed.ct = palloc(sealed.ct_len);
			rc = secret_box_seal(new_key, owner, strlen(owner), name, strlen(name),
								 (const uint8 *) pt, sealed.ct_len,
								 resealed.nonce, resealed.ct, resealed.tag);
			OPENSSL_cleanse(pt, sealed.ct_len);
			if (rc != 0)
				elog(ERROR, "could not encrypt the secret");
			UpdateSealed(owner, name, new_id, &resealed);
			count++;
			pfree(sealed.ct);
			pfree(resealed.ct);
			pfree(owner);
			pfree(name);
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(cursor);
	return count;
}

/*
 * pay.rotate_master_key(new_key_file) -> number of secrets re-encrypted.
 * Superuser only.  Everything happens in the caller's transaction; on commit
 * this session's pay.master_key_file names the new file.
 */
Datum
pay_rotate_master_key(PG_FUNCTION_ARGS)
{
	const char *what = "argument \"new_key_file\"";
	char	   *path;
	MasterKeyGen old_gen;
	MasterKeyGen new_gen;
	bool		have_old;
	uint8		old_key[MASTER_KEY_LEN];
	uint8		new_key[MASTER_KEY_LEN];
	char	   *pt;
	volatile int32 count = 0;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser to rotate the master key"),
				 errdetail("It reads a server file named by argument \"new_key_file\".")));
	RequireArg(fcinfo, 0, "new_key_file");
	path = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"new_key_file\" must not be empty")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("pay.rotate_master_key must run at isolation level read committed"),
				 errdetail("An older snapshot could miss a secret stored while it waited for its locks.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* Readers keep going; writers (set_secret, delete) wait for our commit. */
	SpiRun("LOCK TABLE pay.master_keys IN EXCLUSIVE MODE", 0, NULL, NULL, SPI_OK_UTILITY);
	SpiRun("LOCK TABLE pay.secrets IN EXCLUSIVE MODE", 0, NULL, NULL, SPI_OK_UTILITY);
	have_old = CurrentGeneration(&old_gen, "FOR UPDATE");
	if (have_old)
	{
		Oid			types[1] = {INT4OID};
		Datum		values[1] = {Int32GetDatum(old_gen.id)};

		SpiRun("SELECT 1 FROM pay.secrets WHERE master_key_id OPERATOR(pg_catalog.<>) $1 LIMIT 1",
			   1, types, values, SPI_OK_SELECT);
	}
	else
		SpiRun("SELECT 1 FROM pay.secrets LIMIT 1", 0, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("some secrets are not sealed under the current master key generation"),
				 errhint("Inspect pay.secrets.master_key_id against pay.master_keys.")));
	new_gen.id = NextGenerationId();
	pt = palloc(SECRET_VALUE_MAX + 1);

	/* The old key comes from the setting, before it moves to the new file. */
	if (have_old)
		MasterKeyLoad(master_key_file, "setting \"" SETTING_NAME "\"", &old_gen, false, old_key);
	else
		memset(old_key, 0, sizeof(old_key));
	PG_TRY();
	{
		/*
		 * This session follows the new file at once (rolled back with the
		 * transaction); the DBA points the server's setting at it next.  Set
		 * before loading, so the derived key stays cached for it.
		 */
		(void) set_config_option(SETTING_NAME, path, PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_SET, true, 0, false);
		MasterKeyLoad(path, what, &new_gen, true, new_key);
		if (have_old)
		{
			Oid			types[1] = {INT4OID};
			Datum		values[1] = {Int32GetDatum(old_gen.id)};

			SpiRun("UPDATE pay.master_keys SET is_current = false, retired_at = pg_catalog.now() "
				   "WHERE id OPERATOR(pg_catalog.=) $1",
				   1, types, values, SPI_OK_UPDATE);
		}
		InsertGeneration(&new_gen, path);
		if (have_old)
			count = ReencryptAll(old_key, new_key, new_gen.id, pt);
	}
	PG_FINALLY();
	{
		OPENSSL_cleanse(old_key, sizeof(old_key));
		OPENSSL_cleanse(new_key, sizeof(new_key));
		OPENSSL_cleanse(pt, SECRET_VALUE_MAX + 1);
	}
	PG_END_TRY();
	pfree(pt);
	SPI_finish();
	PG_RETURN_INT32(count);
}
