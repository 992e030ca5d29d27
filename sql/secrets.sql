-- The secret store: pay.set_secret / reveal_secret / delete_secret /
-- rotate_master_key / secret_hmac_sha256_hex, the master key file setting,
-- and who may do what.  Key files: test/keys/ (see its README).  Known
-- answers: test/vectors/secrets_fixture.sql, made by test/vectors/secrets.py
-- with Python's hashlib/hmac and python3-cryptography, never by our code.
\getenv abs_srcdir PG_ABS_SRCDIR
\set keys :abs_srcdir '/test/keys/'
\set key_a :keys 'master-a.hex'
\set key_a_spaced :keys 'master-a-spaced.hex'
\set key_b :keys 'master-b.hex'
\set key_pass :keys 'master-pass.txt'
\set key_blank :keys 'blank.key'
\set key_missing :keys 'no-such-file.key'
\set fixture :abs_srcdir '/test/vectors/secrets_fixture.sql'
\i :fixture

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

-- The store is global: start (and end) with an empty one.
DELETE FROM pay.secrets;
DELETE FROM pay.master_keys;
RESET pay.master_key_file;

-- 1. The key file setting: unset, missing, unreadable (a directory), blank.
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:t', 'api_key', 'sk_test_1')$$);
SET pay.master_key_file = '';
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:t', 'api_key', 'sk_test_1')$$);
SET pay.master_key_file = :'key_missing';
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:t', 'api_key', 'sk_test_1')$$);
SET pay.master_key_file = :'keys';
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:t', 'api_key', 'sk_test_1')$$);
SET pay.master_key_file = :'key_blank';
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:t', 'api_key', 'sk_test_1')$$);
-- nothing was written by the failures
SELECT (SELECT count(*) FROM pay.secrets) AS secrets, (SELECT count(*) FROM pay.master_keys) AS generations;

-- 2. Known answer: a generation and a secret made by Python (raw key A) open
-- with our code: key check, associated data, AES-256-GCM all agree.
INSERT INTO pay.master_keys (id, kind, key_check, key_file)
  VALUES (1, 'raw', decode(:'kat_a_check', 'hex'), 'test/keys/master-a.hex');
INSERT INTO pay.secrets (owner, name, master_key_id, nonce, ciphertext, tag)
  VALUES (:'kat_a_owner', :'kat_a_name', 1, decode(:'kat_a_nonce', 'hex'),
          decode(:'kat_a_ct', 'hex'), decode(:'kat_a_tag', 'hex'));
SET pay.master_key_file = :'key_a';
SELECT pay.reveal_secret(:'kat_a_owner', :'kat_a_name');
SELECT convert_to(pay.reveal_secret(:'kat_a_owner', :'kat_a_name'), 'UTF8')
       = decode(:'kat_a_value_hex', 'hex') AS python_value;
-- the same key written in upper case with whitespace and CRLF around it
SET pay.master_key_file = :'key_a_spaced';
SELECT convert_to(pay.reveal_secret(:'kat_a_owner', :'kat_a_name'), 'UTF8')
       = decode(:'kat_a_value_hex', 'hex') AS python_value;

-- 3. Round trip through our own sealing, UTF-8 and newlines included.
SELECT pay.set_secret('gateway:t', 'webhook_secret', E'whsec_\u652f\u4ed8\nsecond line\r\n\ttab \U0001F511');
SELECT pay.reveal_secret('gateway:t', 'webhook_secret')
       = E'whsec_\u652f\u4ed8\nsecond line\r\n\ttab \U0001F511' AS round_trip;
SELECT pay.reveal_secret('gateway:t', 'webhook_secret');
SELECT pay.set_secret('merchant:M001', 'api_secret', 'merchant-key-1');
SELECT pay.reveal_secret('merchant:M001', 'api_secret');
-- stored: 12-byte nonce, ciphertext as long as the UTF-8 value, 16-byte tag, generation 1
SELECT owner, name, master_key_id, octet_length(nonce) AS nonce_len,
       octet_length(ciphertext) AS ct_len, octet_length(tag) AS tag_len,
       position(convert_to('merchant-key', 'UTF8') IN ciphertext) AS plaintext_at
  FROM pay.secrets ORDER BY owner, name;

-- 4. Replacing a secret: one row, new value, new nonce, created_at kept.
SELECT nonce AS old_nonce, ciphertext AS old_ct, created_at AS old_created
  FROM pay.secrets WHERE owner = 'merchant:M001' AND name = 'api_secret' \gset
SELECT pay.set_secret('merchant:M001', 'api_secret', 'merchant-key-1');
SELECT nonce <> :'old_nonce'::bytea AS new_nonce, ciphertext <> :'old_ct'::bytea AS new_ct
  FROM pay.secrets WHERE owner = 'merchant:M001' AND name = 'api_secret';
SELECT pay.set_secret('merchant:M001', 'api_secret', 'merchant-key-2');
SELECT pay.reveal_secret('merchant:M001', 'api_secret');
SELECT count(*) AS rows, min(created_at) = :'old_created'::timestamptz AS created_kept,
       min(updated_at) >= min(created_at) AS updated
  FROM pay.secrets WHERE owner = 'merchant:M001' AND name = 'api_secret';

-- 5. Bad arguments.
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:t', 'api_key', '')$$);
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:t', 'api_key', NULL)$$);
SELECT pg_temp.err($$SELECT pay.set_secret(NULL, 'api_key', 'v')$$);
SELECT pg_temp.err($$SELECT pay.set_secret('gateway', 'api_key', 'v')$$);
SELECT pg_temp.err($$SELECT pay.set_secret(':x', 'api_key', 'v')$$);
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:', 'api_key', 'v')$$);
SELECT pg_temp.err($$SELECT pay.set_secret('Gateway:x', 'api_key', 'v')$$);
SELECT pg_temp.err(format('SELECT pay.set_secret(%L, %L, %L)', 'gateway:' || repeat('x', 193), 'k', 'v'));
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:t', '', 'v')$$);
SELECT pg_temp.err(format('SELECT pay.set_secret(%L, %L, %L)', 'gateway:t', repeat('n', 201), 'v'));
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:t', E'api\nkey', 'v')$$);
SELECT pg_temp.err(format('SELECT pay.set_secret(%L, %L, %L)', 'gateway:t', 'big', repeat('v', 65537)));
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'no_such_secret')$$);
-- the longest accepted owner and name
SELECT pay.set_secret('gateway:' || repeat('x', 191), repeat('n', 200), 'long');
SELECT pay.reveal_secret('gateway:' || repeat('x', 191), repeat('n', 200));
SELECT pay.delete_secret('gateway:' || repeat('x', 191), repeat('n', 200));

-- 6. Wrong master key: another key file, or a passphrase file, for generation 1.
-- A clear error; no value, no garbage; set_secret does not write under it.
SET pay.master_key_file = :'key_b';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'webhook_secret')$$);
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:t', 'other', 'v')$$);
SET pay.master_key_file = :'key_pass';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'webhook_secret')$$);
SELECT count(*) AS secrets FROM pay.secrets;
-- uncaught, as a client sees it (the server log gets no STATEMENT line: it would hold the value)
\set VERBOSITY terse
SELECT pay.set_secret('gateway:t', 'other', 'sk_live_must_not_be_logged');
\set VERBOSITY default
-- an unset or missing file is reported as such when reading, too
RESET pay.master_key_file;
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'webhook_secret')$$);
SET pay.master_key_file = :'key_missing';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'webhook_secret')$$);
SET pay.master_key_file = :'key_a';

-- 7. A ciphertext moved to another row (an UPDATE by the superuser) does not decrypt.
SELECT pay.set_secret('gateway:t', 'api_key', 'sk_test_api');
UPDATE pay.secrets AS dst SET nonce = src.nonce, ciphertext = src.ciphertext, tag = src.tag
  FROM pay.secrets AS src
 WHERE src.owner = 'gateway:t' AND src.name = 'webhook_secret'
   AND dst.owner = 'gateway:t' AND dst.name = 'api_key';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'api_key')$$);
SELECT pg_temp.err($$SELECT pay.secret_hmac_sha256_hex('gateway:t', 'api_key', 'm')$$);
-- renaming the row (same owner, other name; other owner) fails the same way
UPDATE pay.secrets SET name = 'webhook_secret2' WHERE owner = 'gateway:t' AND name = 'webhook_secret';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'webhook_secret2')$$);
UPDATE pay.secrets SET owner = 'gateway:u', name = 'webhook_secret' WHERE owner = 'gateway:t' AND name = 'webhook_secret2';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:u', 'webhook_secret')$$);
UPDATE pay.secrets SET owner = 'gateway:t' WHERE owner = 'gateway:u' AND name = 'webhook_secret';
SELECT pay.reveal_secret('gateway:t', 'webhook_secret') = E'whsec_\u652f\u4ed8\nsecond line\r\n\ttab \U0001F511' AS back_in_place;
-- owner||name is the same string, the length-prefixed associated data is not
SELECT pay.set_secret('gateway:ab', 'c', 'abc-secret');
UPDATE pay.secrets SET owner = 'gateway:a', name = 'bc' WHERE owner = 'gateway:ab' AND name = 'c';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:a', 'bc')$$);
SELECT pay.delete_secret('gateway:a', 'bc'), pay.delete_secret('gateway:t', 'api_key');

-- 8. Tampering: one flipped bit in the ciphertext, the tag or the nonce; a truncated ciphertext.
SELECT pay.set_secret('gateway:t', 'tampered', 'do-not-change-me');
UPDATE pay.secrets SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1)
 WHERE owner = 'gateway:t' AND name = 'tampered';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'tampered')$$);
UPDATE pay.secrets SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1)
 WHERE owner = 'gateway:t' AND name = 'tampered';
SELECT pay.reveal_secret('gateway:t', 'tampered') AS restored;
UPDATE pay.secrets SET tag = set_byte(tag, 15, get_byte(tag, 15) # 128)
 WHERE owner = 'gateway:t' AND name = 'tampered';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'tampered')$$);
UPDATE pay.secrets SET tag = set_byte(tag, 15, get_byte(tag, 15) # 128),
                       nonce = set_byte(nonce, 11, get_byte(nonce, 11) # 2)
 WHERE owner = 'gateway:t' AND name = 'tampered';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'tampered')$$);
UPDATE pay.secrets SET nonce = set_byte(nonce, 11, get_byte(nonce, 11) # 2),
                       ciphertext = substring(ciphertext FROM 1 FOR 15)
 WHERE owner = 'gateway:t' AND name = 'tampered';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:t', 'tampered')$$);
SELECT pay.delete_secret('gateway:t', 'tampered');

-- 9. Passphrase key files (PBKDF2-HMAC-SHA256).  First a Python-made
-- generation (fixed salt, 600000 iterations) and secret: our PBKDF2 agrees
-- with hashlib.pbkdf2_hmac.
DELETE FROM pay.secrets;
DELETE FROM pay.master_keys;
INSERT INTO pay.master_keys (id, kind, salt, iterations, key_check, key_file)
  VALUES (1, 'pbkdf2-hmac-sha256', decode(:'kat_p_salt', 'hex'), :'kat_p_iterations',
          decode(:'kat_p_check', 'hex'), 'test/keys/master-pass.txt');
INSERT INTO pay.secrets (owner, name, master_key_id, nonce, ciphertext, tag)
  VALUES (:'kat_p_owner', :'kat_p_name', 1, decode(:'kat_p_nonce', 'hex'),
          decode(:'kat_p_ct', 'hex'), decode(:'kat_p_tag', 'hex'));
SET pay.master_key_file = :'key_pass';
SELECT pay.reveal_secret(:'kat_p_owner', :'kat_p_name');
SELECT convert_to(pay.reveal_secret(:'kat_p_owner', :'kat_p_name'), 'UTF8')
       = decode(:'kat_p_value_hex', 'hex') AS python_value;
SET pay.master_key_file = :'key_a';
SELECT pg_temp.err(format('SELECT pay.reveal_secret(%L, %L)', :'kat_p_owner', :'kat_p_name'));
-- A fresh store initialised from a passphrase file: random 16-byte salt,
-- 600000 iterations, stored with the generation.
DELETE FROM pay.secrets;
DELETE FROM pay.master_keys;
SET pay.master_key_file = :'key_pass';
SELECT pay.set_secret('gateway:p', 'api_key', 'sk_pass_1');
SELECT id, kind, octet_length(salt) AS salt_len, salt <> decode(:'kat_p_salt', 'hex') AS new_salt,
       iterations, iterations >= 600000 AS enough, is_current
  FROM pay.master_keys;
SELECT pay.reveal_secret('gateway:p', 'api_key');
-- The derived key is cached per backend: 50 more reads take far less than
-- 50 derivations (each about 0.2 s here).
SELECT clock_timestamp() AS t0 \gset
SELECT count(pay.reveal_secret('gateway:p', 'api_key')) AS reads FROM generate_series(1, 50);
SELECT clock_timestamp() - :'t0'::timestamptz < interval '3 seconds' AS cached;
SET pay.master_key_file = :'key_b';
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:p', 'api_key')$$);
SET pay.master_key_file = :'key_pass';
SELECT pay.reveal_secret('gateway:p', 'api_key');

-- 10. Rotation.  Start again under raw key A with three secrets.
DELETE FROM pay.secrets;
DELETE FROM pay.master_keys;
SET pay.master_key_file = :'key_a';
SELECT pay.set_secret('gateway:r1', 'webhook_secret', 'whsec_r1');
SELECT pay.set_secret('gateway:r2', 'private_key', E'-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n');
SELECT pay.set_secret('merchant:R3', 'api_secret', E'\u5bc6\u94a5-r3');
CREATE TEMP TABLE before_rotation AS SELECT owner, name, nonce, ciphertext, tag FROM pay.secrets;
-- the caller's REPEATABLE READ snapshot could miss a concurrent set_secret: refused
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.err(format('SELECT pay.rotate_master_key(%L)', :'key_b'));
ROLLBACK;
-- a bad new key file: nothing changes, this session keeps its setting
SELECT pg_temp.err(format('SELECT pay.rotate_master_key(%L)', :'key_missing'));
SELECT pg_temp.err(format('SELECT pay.rotate_master_key(%L)', :'key_blank'));
SELECT pg_temp.err($$SELECT pay.rotate_master_key('')$$);
SELECT pg_temp.err($$SELECT pay.rotate_master_key(NULL)$$);
SELECT current_setting('pay.master_key_file') = :'key_a' AS setting_kept;
-- the setting must hold the current key: rotating from the wrong one is refused
SET pay.master_key_file = :'key_b';
SELECT pg_temp.err(format('SELECT pay.rotate_master_key(%L)', :'key_pass'));
SET pay.master_key_file = :'key_a';
-- one damaged secret aborts the whole rotation: no row and no generation changes
UPDATE pay.secrets SET tag = set_byte(tag, 0, get_byte(tag, 0) # 1) WHERE owner = 'gateway:r2';
SELECT pg_temp.err(format('SELECT pay.rotate_master_key(%L)', :'key_b'));
UPDATE pay.secrets SET tag = set_byte(tag, 0, get_byte(tag, 0) # 1) WHERE owner = 'gateway:r2';
SELECT count(*) AS unchanged FROM pay.secrets s JOIN before_rotation b USING (owner, name)
 WHERE s.nonce = b.nonce AND s.ciphertext = b.ciphertext AND s.tag = b.tag AND s.master_key_id = 1;
SELECT id, kind, is_current FROM pay.master_keys ORDER BY id;
SELECT current_setting('pay.master_key_file') = :'key_a' AS setting_kept;
-- rotate A -> B
SELECT pay.rotate_master_key(:'key_b');
SELECT id, kind, is_current, retired_at IS NOT NULL AS retired, key_file = :'key_b' AS from_b
  FROM pay.master_keys ORDER BY id;
-- every row re-encrypted: new nonce, new ciphertext, new tag, generation 2
SELECT s.owner, s.name, s.master_key_id, s.nonce <> b.nonce AS new_nonce,
       s.ciphertext <> b.ciphertext AS new_ct, s.tag <> b.tag AS new_tag,
       octet_length(s.ciphertext) = octet_length(b.ciphertext) AS same_len
  FROM pay.secrets s JOIN before_rotation b USING (owner, name) ORDER BY 1, 2;
-- this session now follows the new file and reads every value
SELECT current_setting('pay.master_key_file') = :'key_b' AS setting_follows;
SELECT owner, name, pay.reveal_secret(owner, name) FROM pay.secrets ORDER BY 1, 2;
-- the old key file no longer opens anything
SET pay.master_key_file = :'key_a';
SELECT owner, pg_temp.err(format('SELECT pay.reveal_secret(%L, %L)', owner, name))
  FROM pay.secrets ORDER BY 1;
SET pay.master_key_file = :'key_b';
-- rotate B -> passphrase, in an explicit transaction with other work
BEGIN;
SELECT pay.rotate_master_key(:'key_pass');
SELECT pay.set_secret('gateway:r4', 'apiv3_key', 'apiv3-under-passphrase');
COMMIT;
SELECT id, kind, octet_length(salt) AS salt_len, iterations, is_current FROM pay.master_keys ORDER BY id;
SELECT owner, name, master_key_id, pay.reveal_secret(owner, name) FROM pay.secrets ORDER BY 1, 2;
-- a rotation rolled back leaves everything, the setting included, as it was
BEGIN;
SELECT pay.rotate_master_key(:'key_a');
ROLLBACK;
SELECT current_setting('pay.master_key_file') = :'key_pass' AS setting_restored;
SELECT count(*) AS under_gen_3 FROM pay.secrets WHERE master_key_id = 3;
SELECT pay.reveal_secret('gateway:r1', 'webhook_secret');

-- Other sessions follow once the DBA points the setting at the new file
-- (here per database instead of ALTER SYSTEM + pg_reload_conf()).
ALTER DATABASE :"DBNAME" SET pay.master_key_file = :'key_pass';
\c
SELECT pay.reveal_secret('gateway:r1', 'webhook_secret') AS new_session;
ALTER DATABASE :"DBNAME" SET pay.master_key_file = :'key_b';
\c
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:r1', 'webhook_secret')$$) AS stale_setting;
ALTER DATABASE :"DBNAME" RESET pay.master_key_file;
\c
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:r1', 'webhook_secret')$$) AS no_setting;
SET pay.master_key_file = :'key_pass';

-- 11. Privileges.  The HMAC known answers come from Python:
--   /usr/bin/python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH", "1700000000.{\"id\":\"evt_1\",\"object\":\"event\",\"amount\":100}".encode(), hashlib.sha256).hexdigest())'
-- (all three are made by test/vectors/secrets.py the same way).
SELECT pay.set_secret('gateway:stripe_t', 'webhook_secret', :'hmac_key');
SET ROLE pay_app;
SELECT pg_temp.err($$SELECT * FROM pay.secrets$$);
SELECT pg_temp.err($$SELECT * FROM pay.master_keys$$);
SELECT pg_temp.err($$SELECT * FROM pay.secret_list$$);
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:stripe_t', 'webhook_secret')$$);
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:stripe_t', 'webhook_secret', 'mine')$$);
SELECT pg_temp.err($$SELECT pay.delete_secret('gateway:stripe_t', 'webhook_secret')$$);
SELECT pg_temp.err($$SELECT pay.rotate_master_key('/tmp/k')$$);
SELECT pg_temp.err($$SET pay.master_key_file = '/tmp/k'$$);
SELECT pg_temp.err($$SHOW pay.master_key_file$$);
-- no role computes with a stored secret: with one it could sign a PSP's
-- callback or a merchant's request itself
SELECT pg_temp.err(format($$SELECT pay.secret_hmac_sha256_hex('gateway:stripe_t', 'webhook_secret', %L)$$,
                          :'hmac_msg1')) AS pay_app_hmac;
SELECT pg_temp.err($$SELECT pay.secret_hmac_sha256_hex('gateway:stripe_t', 'nope', 'm')$$) AS pay_app_hmac_unknown;
RESET ROLE;
-- the owner does (Python's answers)
SELECT pay.secret_hmac_sha256_hex('gateway:stripe_t', 'webhook_secret', :'hmac_msg1') AS mac1,
       pay.secret_hmac_sha256_hex('gateway:stripe_t', 'webhook_secret', :'hmac_msg1') = :'hmac_mac1' AS python1;
SELECT pay.secret_hmac_sha256_hex('gateway:stripe_t', 'webhook_secret', :'hmac_msg2') = :'hmac_mac2' AS python2,
       pay.secret_hmac_sha256_hex('gateway:stripe_t', 'webhook_secret', :'hmac_msg3') = :'hmac_mac3' AS python3_empty,
       pay.secret_hmac_sha256_hex('gateway:stripe_t', 'webhook_secret', :'hmac_msg1' || ' ') = :'hmac_mac1' AS altered;
SELECT pg_temp.err($$SELECT pay.secret_hmac_sha256_hex('gateway:stripe_t', 'nope', 'm')$$);
-- even a careless GRANT of it opens nothing: the function checks the caller
GRANT EXECUTE ON FUNCTION pay.secret_hmac_sha256_hex(text, text, text) TO pay_app;
SET ROLE pay_app;
SELECT pg_temp.err($$SELECT pay.secret_hmac_sha256_hex('gateway:stripe_t', 'webhook_secret', 'm')$$) AS granted_hmac;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION pay.secret_hmac_sha256_hex(text, text, text) FROM pay_app;
-- error details name the key file only to those who may read the setting
CREATE FUNCTION pg_temp.detail(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL; RETURN d; END $$;
SET pay.master_key_file = :'key_b';
SELECT replace(pg_temp.detail($$SELECT pay.secret_hmac_sha256_hex('gateway:stripe_t', 'webhook_secret', 'm')$$),
               :'keys', '<keys>/') AS superuser_detail;
SET pay.master_key_file = :'key_pass';
SET ROLE pay_callback;
SELECT pg_temp.err($$SELECT * FROM pay.secrets$$);
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:stripe_t', 'webhook_secret')$$);
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:stripe_t', 'webhook_secret', 'mine')$$);
SELECT pg_temp.err(format($$SELECT pay.secret_hmac_sha256_hex('gateway:stripe_t', 'webhook_secret', %L)$$,
                          :'hmac_msg2')) AS pay_callback_hmac;
RESET ROLE;
-- The internal path still uses the secret: handle_callback, called by
-- pay_callback, verifies a Stripe callback signed with the stored webhook
-- secret (signed here by the owner from the plaintext), and refuses one
-- signed with another key.
SELECT pay.create_gateway('stripe_t', 'stripe') > 0 AS gateway;
CREATE TEMP TABLE sec_cb AS
  SELECT k, body, jsonb_build_object('Content-Type', 'application/json', 'Stripe-Signature',
                    pay.stripe_signature_header(body, CASE k WHEN 'stored' THEN :'hmac_key' ELSE 'whsec_made_up' END)) AS headers
    FROM (SELECT k, '{"id":"evt_sec_' || k || '","type":"payment_intent.succeeded","data":{"object":{"id":"pi_sec","amount":100,"currency":"usd","metadata":{"order_id":"999999991"}}}}' AS body
            FROM (VALUES ('stored'), ('made_up')) v(k)) b;
GRANT SELECT ON sec_cb TO pay_callback;
SET ROLE pay_callback;
SELECT sec_cb.k, a.http_status
  FROM sec_cb, pay.handle_callback('stripe_t', sec_cb.headers, sec_cb.body) a
 ORDER BY 1;
RESET ROLE;
SELECT c.body LIKE '%evt_sec_stored%' AS stored_key, c.verdict, c.reason_code, c.reason
  FROM pay.callbacks c WHERE c.gateway = 'stripe_t' ORDER BY c.id;
SET ROLE pay_admin;
SELECT pg_temp.err($$SELECT * FROM pay.secrets$$);
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:stripe_t', 'webhook_secret')$$);
SELECT pg_temp.err($$SELECT pay.secret_hmac_sha256_hex('gateway:stripe_t', 'webhook_secret', 'm')$$);
-- pay_admin writes credentials (gateway set-up) and never reads them back
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:stripe_t', 'api_key', 'sk_set_by_admin')$$) AS admin_sets;
SELECT owner, name, master_key_id FROM pay.secret_list ORDER BY 1, 2;
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:stripe_t', 'api_key')$$) AS admin_reads_back;
RESET ROLE;
SELECT pay.reveal_secret('gateway:stripe_t', 'api_key') AS owner_reads;
SET ROLE pay_admin;
SELECT pay.delete_secret('gateway:stripe_t', 'api_key') AS admin_deletes;
RESET ROLE;
SET ROLE pay_app;
SELECT pg_temp.err($$SELECT pay.set_secret('gateway:stripe_t', 'webhook_secret', 'forged')$$) AS app_sets;
SELECT pg_temp.err($$SELECT pay.delete_secret('gateway:stripe_t', 'webhook_secret')$$) AS app_deletes;
RESET ROLE;
-- even a careless GRANT does not let another role reveal a value
GRANT EXECUTE ON FUNCTION pay.reveal_secret(text, text) TO pay_admin;
SET ROLE pay_admin;
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:stripe_t', 'webhook_secret')$$);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION pay.reveal_secret(text, text) FROM pay_admin;
-- the view shows no value column; no role but the owner has any right on the tables
SELECT attname FROM pg_attribute WHERE attrelid = 'pay.secret_list'::regclass AND attnum > 0 ORDER BY attnum;
SELECT r.rolname, t.tbl,
       has_table_privilege(r.rolname, t.tbl, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') AS any_right
  FROM (VALUES ('pay_app'), ('pay_callback'), ('pay_admin')) r(rolname),
       (VALUES ('pay.secrets'), ('pay.master_keys')) t(tbl)
 ORDER BY 1, 2;
SELECT p.proname, r.rolname, has_function_privilege(r.rolname, p.oid, 'EXECUTE') AS can_execute
  FROM pg_proc p, (VALUES ('pay_app'), ('pay_callback'), ('pay_admin')) r(rolname)
 WHERE p.pronamespace = 'pay'::regnamespace
   AND p.proname IN ('set_secret', 'reveal_secret', 'delete_secret', 'rotate_master_key', 'secret_hmac_sha256_hex')
 ORDER BY 1, 2;
SELECT proname, prosecdef, proconfig FROM pg_proc
 WHERE pronamespace = 'pay'::regnamespace AND proname = 'secret_hmac_sha256_hex';

-- 12. delete_secret.
SELECT pay.delete_secret('gateway:stripe_t', 'webhook_secret') AS deleted,
       pay.delete_secret('gateway:stripe_t', 'webhook_secret') AS again;
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:stripe_t', 'webhook_secret')$$);

-- 13. A backend keeps the sealed rows it reads (src/secret_cache.c): its
-- own writes are read at once, rolled-back ones are forgotten, and a
-- delete is seen.  (Other sessions' writes: isolation spec secret_cache.)
SELECT pay.set_secret('gateway:cache_t', 'k', 'one');
SELECT pay.reveal_secret('gateway:cache_t', 'k') AS first;
BEGIN;
SELECT pay.set_secret('gateway:cache_t', 'k', 'two');
SELECT pay.reveal_secret('gateway:cache_t', 'k') AS in_transaction;
SAVEPOINT before_three;
SELECT pay.set_secret('gateway:cache_t', 'k', 'three');
SELECT pay.reveal_secret('gateway:cache_t', 'k') AS in_savepoint;
ROLLBACK TO SAVEPOINT before_three;
SELECT pay.reveal_secret('gateway:cache_t', 'k') AS after_savepoint_rollback;
ROLLBACK;
SELECT pay.reveal_secret('gateway:cache_t', 'k') AS after_rollback;
SELECT pay.delete_secret('gateway:cache_t', 'k') AS deleted;
SELECT pg_temp.err($$SELECT pay.reveal_secret('gateway:cache_t', 'k')$$) AS after_delete;

-- Leave the store empty for whoever comes next.
DELETE FROM pay.secrets;
DELETE FROM pay.master_keys;
RESET pay.master_key_file;
