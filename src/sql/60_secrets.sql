-- The secret store: credentials sealed with AES-256-GCM under a master key
-- that only the server reads, from the file named by the superuser-only
-- setting pay.master_key_file (src/secret_store.c).
--
-- Master key rotation, step by step (the DBA, as superuser):
--   1. write the new key file (64 hex digits, or a passphrase) next to the old one;
--   2. SELECT pay.rotate_master_key('/path/to/new.key');
--        re-encrypts every secret in this one transaction; from its commit on,
--        THIS session's pay.master_key_file names the new file;
--   3. ALTER SYSTEM SET pay.master_key_file = '/path/to/new.key';
--      SELECT pg_reload_conf();
--        every other session follows at its next command (between 2 and 3
--        they get a clear "does not hold master key generation N" error,
--        never a wrong value);
--   4. shred the old key file.

-- Master key generations.  Exactly one is current; every secret is sealed
-- under it.  Nothing here is secret: the key check is HMAC-SHA256(key,
-- 'pay master key check v1') and only tells a wrong key file from a damaged
-- ciphertext.
CREATE TABLE pay.master_keys (
    id          integer PRIMARY KEY CHECK (id > 0),
    kind        text NOT NULL CHECK (kind IN ('raw', 'pbkdf2-hmac-sha256')),
    salt        bytea CHECK (octet_length(salt) = 16),
    iterations  integer CHECK (iterations BETWEEN 600000 AND 100000000),
    key_check   bytea NOT NULL CHECK (octet_length(key_check) = 32),
    is_current  boolean NOT NULL DEFAULT true,
    key_file    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    CHECK ((kind = 'raw') = (salt IS NULL AND iterations IS NULL)),
    CHECK (kind = 'raw' OR (salt IS NOT NULL AND iterations IS NOT NULL)),
    CHECK (is_current = (retired_at IS NULL))
);
CREATE UNIQUE INDEX master_keys_one_current ON pay.master_keys ((true)) WHERE is_current;
COMMENT ON TABLE pay.master_keys IS
  'master key generations of the secret store: kind of key file, PBKDF2 salt and iterations, key check; the key itself is only in the file named by pay.master_key_file';
COMMENT ON COLUMN pay.master_keys.key_file IS 'the file the generation was created from (for the DBA; the setting decides)';

-- One credential per (owner, name).  ciphertext = AES-256-GCM of the value
-- with a random 12-byte nonce; the associated data is the length-prefixed
-- (owner, name), so a ciphertext copied to another row does not decrypt.
CREATE TABLE pay.secrets (
    owner         text NOT NULL CHECK (octet_length(owner) <= 200
                                       AND owner ~ '^[a-z][a-z0-9_]*:[^[:cntrl:]]+$'),
    name          text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 200
                                       AND name !~ '[[:cntrl:]]'),
    master_key_id integer NOT NULL,     -- in pay.master_keys: secrets_master_key
    nonce         bytea NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext    bytea NOT NULL CHECK (octet_length(ciphertext) BETWEEN 1 AND 65536),
    tag           bytea NOT NULL CHECK (octet_length(tag) = 16),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name)
);
COMMENT ON TABLE pay.secrets IS
  'credentials sealed with AES-256-GCM under the current master key; readable by the extension owner only (see pay.secret_list)';

-- Backends keep the sealed rows they use (src/secret_cache.c): any write
-- to either table tells every backend to drop them.
CREATE TRIGGER master_keys_secret_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pay.master_keys
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
CREATE TRIGGER secrets_secret_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pay.secrets
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
ALTER TABLE pay.master_keys ENABLE ALWAYS TRIGGER master_keys_secret_cache;
ALTER TABLE pay.secrets ENABLE ALWAYS TRIGGER secrets_secret_cache;

-- References (src/references.c: triggers rather than foreign keys).
CREATE TRIGGER secrets_master_key BEFORE INSERT OR UPDATE OF master_key_id ON pay.secrets
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('master_key_id', 'pay.master_keys', 'id');
CREATE TRIGGER master_keys_secrets BEFORE DELETE OR UPDATE OF id ON pay.master_keys
    FOR EACH ROW EXECUTE FUNCTION pay._reference_unused('id', 'pay.secrets', 'master_key_id');
ALTER TABLE pay.secrets ENABLE ALWAYS TRIGGER secrets_master_key;
ALTER TABLE pay.master_keys ENABLE ALWAYS TRIGGER master_keys_secrets;

CREATE VIEW pay.secret_list AS
  SELECT owner, name, master_key_id, created_at, updated_at
  FROM pay.secrets;
COMMENT ON VIEW pay.secret_list IS 'which secrets exist, without their values (for pay_admin)';

-- Writing a credential is pay_admin's job (it sets up gateways and
-- merchants); reading one back is nobody's but the owner's.
CREATE FUNCTION pay.set_secret(owner text, name text, value text) RETURNS void
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pay_set_secret';
COMMENT ON FUNCTION pay.set_secret(text, text, text) IS
  'stores (or replaces) a credential sealed under the current master key; the first call creates master key generation 1 from pay.master_key_file. Owner and pay_admin (write only: no role reads a value back). Pass the value as a bind parameter: statement logging can record literals';

CREATE FUNCTION pay.reveal_secret(owner text, name text) RETURNS text
LANGUAGE C STABLE STRICT AS 'MODULE_PATHNAME', 'pay_reveal_secret';
COMMENT ON FUNCTION pay.reveal_secret(text, text) IS
  'the plaintext of a credential; owner only (no role is granted it)';

CREATE FUNCTION pay.delete_secret(owner text, name text) RETURNS boolean
LANGUAGE sql VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH gone AS (
    DELETE FROM pay.secrets s WHERE s.owner = $1 AND s.name = $2 RETURNING 1
  )
  SELECT count(*) > 0 FROM gone
$$;
COMMENT ON FUNCTION pay.delete_secret(text, text) IS 'deletes a credential; true if it existed. Owner and pay_admin';

CREATE FUNCTION pay.rotate_master_key(new_key_file text) RETURNS integer
LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'pay_rotate_master_key';
COMMENT ON FUNCTION pay.rotate_master_key(text) IS
  're-encrypts every secret under the key in new_key_file (a new master key generation) in one transaction and returns how many; this session then uses the new file, the DBA points pay.master_key_file at it. Superuser only';

CREATE FUNCTION pay.secret_hmac_sha256_hex(owner text, name text, message text) RETURNS text
LANGUAGE C STABLE STRICT AS 'MODULE_PATHNAME', 'pay_secret_hmac_sha256_hex';
COMMENT ON FUNCTION pay.secret_hmac_sha256_hex(text, text, text) IS
  'hex HMAC-SHA256 of message keyed with a stored credential, without revealing it; owner only (no role is granted it)';

-- No role but the owner computes anything with a stored secret: whoever
-- can sign with one can forge what it authenticates (a PSP's callback, a
-- merchant's API request, a notification).  The tables, reveal, set,
-- delete, rotate and secret_hmac_sha256_hex are granted to nobody, and the
-- C functions refuse any caller without the owner's privileges.  The roles
-- use secrets only inside the SECURITY DEFINER functions that need them
-- (pay.handle_callback, the merchant API, the dispatcher); pay_admin and
-- pay_readonly see which secrets exist.
REVOKE ALL ON pay.master_keys, pay.secrets, pay.secret_list FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
    pay.set_secret(text, text, text), pay.reveal_secret(text, text),
    pay.delete_secret(text, text), pay.rotate_master_key(text),
    pay.secret_hmac_sha256_hex(text, text, text)
  FROM PUBLIC;
GRANT SELECT ON pay.secret_list TO pay_admin, pay_readonly;
GRANT EXECUTE ON FUNCTION pay.set_secret(text, text, text), pay.delete_secret(text, text) TO pay_admin;
