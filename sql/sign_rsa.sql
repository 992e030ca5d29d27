-- SHA256withRSA (PKCS#1 v1.5): pay.rsa_sha256_sign / pay.rsa_sha256_valid and
-- key loading in every form.  Keys and known answers come from the openssl
-- command and python3-cryptography (test/vectors/rsa_vectors.sh); PKCS#1 v1.5
-- is deterministic, so our signatures must equal theirs byte for byte.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' / ' || nullif(d, ''), '');
END $$;
\getenv abs_srcdir PG_ABS_SRCDIR
\set keydir :abs_srcdir/test/vectors/keys
\set a_pkcs8 `cat :keydir/a_pkcs8.pem`
\set a_pkcs1 `cat :keydir/a_pkcs1.pem`
\set a_spki `cat :keydir/a_spki.pem`
\set a_spki_b64 `cat :keydir/a_spki.b64`
\set a_rsapub `cat :keydir/a_rsapub.pem`
\set a_rsapub_b64 `cat :keydir/a_rsapub.b64`
\set a_cert `cat :keydir/a_cert.pem`
\set a_encrypted `cat :keydir/a_encrypted.pem`
\set b_pkcs8 `cat :keydir/b_pkcs8.pem`
\set b_spki `cat :keydir/b_spki.pem`
\set b_cert `cat :keydir/b_cert.pem`
\set ec_pkcs8 `cat :keydir/ec_pkcs8.pem`
\set ec_spki `cat :keydir/ec_spki.pem`
\set small_pkcs8 `cat :keydir/small_pkcs8.pem`
\set small_spki `cat :keydir/small_spki.pem`
\set vectors `cat :abs_srcdir/test/vectors/rsa_vectors.json`
CREATE TEMP TABLE rsa_kat AS
  SELECT r->>'name' AS name, r->>'message' AS message, r->>'signature' AS signature
  FROM jsonb_array_elements((:'vectors'::jsonb)->'rsa') r;

-- the key forms, as text: PEM headers, and the bare base64 bodies start like an SPKI / PKCS#1 DER
SELECT split_part(:'a_pkcs8', E'\n', 1) AS pkcs8, split_part(:'a_pkcs1', E'\n', 1) AS pkcs1,
       split_part(:'a_rsapub', E'\n', 1) AS rsapub, split_part(:'a_cert', E'\n', 1) AS cert,
       left(:'a_spki_b64', 12) AS spki_b64, left(:'a_rsapub_b64', 12) AS rsapub_b64;

-- one known answer in full
SELECT message, pay.rsa_sha256_sign(message, :'a_pkcs8') AS signature
FROM rsa_kat WHERE name = 'ascii';

-- signing with PKCS#8 and PKCS#1 private keys reproduces every known answer
-- (ASCII, empty, UTF-8 Chinese, CR/LF/tab, 1000 characters)
SELECT name, octet_length(message) AS bytes,
       pay.rsa_sha256_sign(message, :'a_pkcs8') = signature AS pkcs8_sign,
       pay.rsa_sha256_sign(message, :'a_pkcs1') = signature AS pkcs1_sign
FROM rsa_kat ORDER BY name;

-- every public key form verifies every known answer
SELECT name,
       pay.rsa_sha256_valid(message, signature, :'a_spki') AS spki_pem,
       pay.rsa_sha256_valid(message, signature, :'a_rsapub') AS pkcs1_pem,
       pay.rsa_sha256_valid(message, signature, :'a_spki_b64') AS spki_b64,
       pay.rsa_sha256_valid(message, signature, :'a_rsapub_b64') AS pkcs1_b64,
       pay.rsa_sha256_valid(message, signature, :'a_cert') AS cert_pem
FROM rsa_kat ORDER BY name;

-- pasted keys: base64 wrapped at 64 columns with CRLF, indented, PEM amid spaces and text
SELECT pay.rsa_sha256_valid(message, signature,
         regexp_replace(:'a_spki_b64', '(.{64})', E'\\1\r\n', 'g')) AS b64_wrapped_crlf,
       pay.rsa_sha256_valid(message, signature, E'  \t' || :'a_spki_b64' || E' \n') AS b64_padded,
       pay.rsa_sha256_valid(message, signature, E'\n\n  ' || :'a_spki' || E'\n\n') AS pem_padded,
       pay.rsa_sha256_valid(message, signature, replace(:'a_cert', E'\n', E'\r\n')) AS cert_crlf,
       pay.rsa_sha256_valid(message, signature, E'Alipay public key:\n' || :'a_cert' || E'\n') AS cert_with_text
FROM rsa_kat WHERE name = 'chinese';

-- tampering: message, signature, key
SELECT pay.rsa_sha256_valid(message || ' ', signature, :'a_spki') AS extra_space,
       pay.rsa_sha256_valid(replace(message, '88.88', '88.89'), signature, :'a_spki') AS amount_changed,
       pay.rsa_sha256_valid(message, overlay(signature placing
         CASE substr(signature, 20, 1) WHEN 'A' THEN 'B' ELSE 'A' END from 20 for 1), :'a_spki') AS sig_char_flipped,
       pay.rsa_sha256_valid(message, left(signature, -4), :'a_spki') AS sig_truncated,
       pay.rsa_sha256_valid(message, signature || signature, :'a_spki') AS sig_doubled,
       pay.rsa_sha256_valid(message, signature, :'b_spki') AS wrong_key_spki,
       pay.rsa_sha256_valid(message, signature, :'b_cert') AS wrong_key_cert,
       pay.rsa_sha256_valid(message, pay.rsa_sha256_sign(message, :'b_pkcs8'), :'a_spki') AS signed_by_b
FROM rsa_kat WHERE name = 'chinese';

-- signatures that are not base64 are simply invalid; line breaks inside base64 are allowed
SELECT pay.rsa_sha256_valid('hello, pay', 'not base64!', :'a_spki') AS not_base64,
       pay.rsa_sha256_valid('hello, pay', '', :'a_spki') AS empty,
       pay.rsa_sha256_valid('hello, pay', '====', :'a_spki') AS padding_only,
       pay.rsa_sha256_valid('hello, pay', repeat('A', 100000), :'a_spki') AS huge,
       pay.rsa_sha256_valid(message, replace(signature, '+', '-'), :'a_spki') AS base64url_chars,
       pay.rsa_sha256_valid(message, regexp_replace(signature, '(.{76})', E'\\1\n', 'g'), :'a_spki') AS wrapped
FROM rsa_kat WHERE name = 'ascii';

-- a signature of the b key verifies with the b certificate: keys are not mixed up in the cache
SELECT pay.rsa_sha256_valid('x', pay.rsa_sha256_sign('x', :'b_pkcs8'), :'b_cert') AS b_roundtrip,
       pay.rsa_sha256_valid('x', pay.rsa_sha256_sign('x', :'a_pkcs1'), :'a_cert') AS a_roundtrip;

-- NULL in, NULL out
SELECT pay.rsa_sha256_sign(NULL, :'a_pkcs8') IS NULL AS sign_null,
       pay.rsa_sha256_valid('x', NULL, :'a_spki') IS NULL AS valid_null;

-- keys that are not usable: 22023, and the message never repeats the key
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_sign(%L, %L)', 'x', 'not a key')) AS garbage;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_sign(%L, %L)', 'x', '')) AS empty;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_sign(%L, %L)', 'x', :'a_encrypted')) AS encrypted;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_sign(%L, %L)', 'x', :'ec_pkcs8')) AS ec_private;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_sign(%L, %L)', 'x', :'small_pkcs8')) AS rsa_1024;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_sign(%L, %L)', 'x', :'a_spki')) AS public_as_private;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_sign(%L, %L)', 'x', :'a_cert')) AS cert_as_private;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_sign(%L, %L)', 'x',
         regexp_replace(:'a_pkcs8', E'\n[^\n]*\n', E'\n'))) AS pkcs8_line_missing;
-- one character changed inside the modulus: the PEM still decodes, but the key cannot sign
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_sign(%L, %L)', 'x',
         overlay(:'a_pkcs1' placing 'A' from 300 for 1))) AS pkcs1_damaged;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_valid(%L, %L, %L)', 'x', 'c2ln', 'not a key')) AS garbage;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_valid(%L, %L, %L)', 'x', 'c2ln', '')) AS empty;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_valid(%L, %L, %L)', 'x', 'c2ln', 'aGVsbG8gd29ybGQ=')) AS base64_not_der;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_valid(%L, %L, %L)', 'x', 'c2ln', :'ec_spki')) AS ec_public;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_valid(%L, %L, %L)', 'x', 'c2ln', :'small_spki')) AS rsa_1024;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_valid(%L, %L, %L)', 'x', 'c2ln', :'a_pkcs8')) AS private_as_public;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_valid(%L, %L, %L)', 'x', 'c2ln',
         left(:'a_spki_b64', 200))) AS b64_truncated;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_valid(%L, %L, %L)', 'x', 'c2ln',
         replace(:'a_cert', 'A', 'B'))) AS cert_corrupted;
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_valid(%L, %L, %L)', 'x', 'c2ln',
         repeat('A', 70000))) AS too_long;
-- an unusable key is an error even when the signature is garbage too
SELECT pg_temp.err(format('SELECT pay.rsa_sha256_valid(%L, %L, %L)', 'x', '!!', 'nope')) AS bad_key_bad_sig;

-- the cache: a key is parsed once, however often it is used; at most 32 keys stay cached
SELECT pay._rsa_key_cache_count() BETWEEN 1 AND 32 AS cache_bounded;
SELECT count(*) FILTER (WHERE pay.rsa_sha256_valid(
         CASE WHEN i % 2 = 0 THEN k.message ELSE k.message || 'x' END, k.signature, :'a_spki')) AS valid_of_400
FROM rsa_kat k, generate_series(1, 400) i WHERE k.name = 'long';
-- 40 different texts of the same key (PEM after a comment line): all verify, 32 stay cached
SELECT count(*) FILTER (WHERE pay.rsa_sha256_valid(k.message, k.signature,
         format(E'key %s\n%s', i, :'a_spki'))) AS valid_of_40,
       pay._rsa_key_cache_count() AS cached
FROM rsa_kat k, generate_series(1, 40) i WHERE k.name = 'ascii';
SELECT count(*) FILTER (WHERE pay.rsa_sha256_sign(k.message, :'a_pkcs8') = k.signature) AS signed_after_eviction
FROM rsa_kat k;

-- declared properties and privileges
SELECT p.proname, p.provolatile, p.proparallel, p.proisstrict,
       has_function_privilege('pay_app', p.oid, 'EXECUTE') AS app,
       has_function_privilege('pay_callback', p.oid, 'EXECUTE') AS callback,
       has_function_privilege('pay_admin', p.oid, 'EXECUTE') AS admin
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'pay' AND p.proname IN ('rsa_sha256_sign', 'rsa_sha256_valid', 'alipay_sign',
  'alipay_signature_valid', 'alipay_response_valid', 'wechatpay_authorization',
  'wechatpay_signature_valid', 'wechatpay_decrypt', 'wechatpay_parse_authorization',
  'paypal_signature_valid')
ORDER BY 1;
