-- WeChat Pay API v3: the signed Authorization header of our requests
-- (pay.wechatpay_authorization), its parser, callback signatures
-- (pay.wechatpay_signature_valid) and AEAD_AES_256_GCM resources
-- (pay.wechatpay_decrypt).  Known answers from python3-cryptography
-- (signatures re-checked with openssl): test/vectors/rsa_vectors.sh.
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
\set a_cert `cat :keydir/a_cert.pem`
\set b_cert `cat :keydir/b_cert.pem`
\set vectors `cat :abs_srcdir/test/vectors/rsa_vectors.json`
CREATE TEMP TABLE wx_vec AS SELECT :'vectors'::jsonb AS j;
CREATE TEMP TABLE wx_auth AS
  SELECT a->>'method' AS method, a->>'url' AS url, a->>'body' AS body, a->>'mchid' AS mchid,
         a->>'serial_no' AS serial_no, (a->>'ts')::bigint AS ts, a->>'nonce' AS nonce,
         a->>'message' AS message, a->>'header' AS header
  FROM wx_vec, LATERAL (VALUES (j->'wechatpay_auth'), (j->'wechatpay_auth_get')) v(a);
CREATE TEMP TABLE wx_cb AS
  SELECT j->'wechatpay_callback'->>'ts' AS ts, j->'wechatpay_callback'->>'nonce' AS nonce,
         j->'wechatpay_callback'->>'body' AS body, j->'wechatpay_callback'->>'signature' AS signature
  FROM wx_vec;
CREATE TEMP TABLE wx_dec AS
  SELECT d->>'name' AS name, d->>'key' AS key, d->>'nonce' AS nonce, d->>'associated_data' AS aad,
         d->>'plaintext' AS plaintext, d->>'ciphertext' AS ciphertext
  FROM wx_vec, jsonb_array_elements(j->'wechatpay_decrypt') d;

-- ---------------------------------------------------------------- Authorization header
-- the POST (JSON body with Chinese) and GET (empty body) known answers
SELECT method, url, pay.wechatpay_authorization(method, url, body, mchid, serial_no, :'a_pkcs8', ts, nonce) AS header
FROM wx_auth ORDER BY method;
SELECT method,
       pay.wechatpay_authorization(method, url, body, mchid, serial_no, :'a_pkcs8', ts, nonce) = header AS pkcs8_matches,
       pay.wechatpay_authorization(method, url, body, mchid, serial_no, :'a_pkcs1', ts, nonce) = header AS pkcs1_matches,
       pay.wechatpay_authorization(method, url, body || ' ', mchid, serial_no, :'a_pkcs8', ts, nonce) = header AS body_changed,
       pay.wechatpay_authorization(method, url, body, mchid, serial_no, :'a_pkcs8', ts + 1, nonce) = header AS ts_changed
FROM wx_auth ORDER BY method;

-- the header's signature verifies over METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n
SELECT method, h->>'mchid' AS mchid, h->>'timestamp' AS ts, h->>'nonce_str' AS nonce, h->>'serial_no' AS serial_no,
       pay.rsa_sha256_valid(message, h->>'signature', :'a_cert') AS signature_valid,
       message = format(E'%s\n%s\n%s\n%s\n%s\n', method, url, ts, nonce, body) AS message_layout
FROM wx_auth, pay.wechatpay_parse_authorization(header) h ORDER BY method;

-- arguments that cannot go into the header or the message: 22023
SELECT pg_temp.err(format('SELECT pay.wechatpay_authorization(%L, %L, %L, %L, %L, %L, %s, %L)',
         m, u, '', mc, sn, :'a_pkcs8', t, n)) AS result, m, u, mc, sn, t, n
FROM (VALUES ('post', '/v3/x', '1230000109', 'ABC', 1, 'n1'),
             ('', '/v3/x', '1230000109', 'ABC', 1, 'n1'),
             ('PO ST', '/v3/x', '1230000109', 'ABC', 1, 'n1'),
             ('GET', 'v3/x', '1230000109', 'ABC', 1, 'n1'),
             ('GET', E'/v3/x\nevil', '1230000109', 'ABC', 1, 'n1'),
             ('GET', '/v3/x y', '1230000109', 'ABC', 1, 'n1'),
             ('GET', '/v3/x', '', 'ABC', 1, 'n1'),
             ('GET', '/v3/x', '123",evil="1', 'ABC', 1, 'n1'),
             ('GET', '/v3/x', '1230000109', 'AB C', 1, 'n1'),
             ('GET', '/v3/x', '1230000109', 'ABC', -1, 'n1'),
             ('GET', '/v3/x', '1230000109', 'ABC', 1, E'n\n1'),
             ('GET', '/v3/x', '1230000109', 'ABC', 1, '随机串')) AS t(m, u, mc, sn, t, n);
SELECT pg_temp.err(format('SELECT pay.wechatpay_authorization(%L, %L, %L, %L, %L, %L, %s, %L)',
         'GET', '/v3/x', '', '1230000109', 'ABC', :'a_spki', 1, 'n1')) AS public_key_to_sign;

-- ---------------------------------------------------------------- parsing headers
SELECT pay.wechatpay_parse_authorization(header) FROM wx_auth WHERE method = 'GET';
-- accepted variants: scheme and names in any case, spaces around "=" and ",", bare values,
-- other order, unknown parameters; NULL for everything malformed
SELECT pay.wechatpay_parse_authorization(h) AS parsed, h
FROM (VALUES
  ('WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="c2ln",timestamp="17",serial_no="S"'),
  ('wechatpay2-sha256-rsa2048 MCHID="1", nonce_str = "n" ,signature=c2ln,timestamp=17,serial_no="S"'),
  ('  WECHATPAY2-SHA256-RSA2048   serial_no="S",timestamp="17",signature="c2ln",nonce_str="n",mchid="1",extra="x y"  '),
  ('WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="c2ln",timestamp="17"'),
  ('WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2",nonce_str="n",signature="c2ln",timestamp="17",serial_no="S"'),
  ('WECHATPAY2-SHA256-RSA2048 mchid="",nonce_str="n",signature="c2ln",timestamp="17",serial_no="S"'),
  ('WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="c2ln",timestamp="17x",serial_no="S"'),
  ('WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="c2ln",timestamp="17",serial_no="S",'),
  ('WECHATPAY2-SHA256-RSA2048 mchid="1",,nonce_str="n",signature="c2ln",timestamp="17",serial_no="S"'),
  ('WECHATPAY2-SHA256-RSA2048 mchid="1,nonce_str="n",signature="c2ln",timestamp="17",serial_no="S"'),
  ('WECHATPAY2-SHA256-RSA2048 mchid="1" nonce_str="n",signature="c2ln",timestamp="17",serial_no="S"'),
  ('WECHATPAY2-SHA256-RSA2048 mchid="a\"b",nonce_str="n",signature="c2ln",timestamp="17",serial_no="S"'),
  ('WECHATPAY2-SHA256-RSA2048 mchid="商户",nonce_str="n",signature="c2ln",timestamp="17",serial_no="S"'),
  ('WECHATPAY2-SHA256-RSA2048,mchid="1",nonce_str="n",signature="c2ln",timestamp="17",serial_no="S"'),
  ('WECHATPAY2-SHA256-RSA4096 mchid="1",nonce_str="n",signature="c2ln",timestamp="17",serial_no="S"'),
  ('Bearer abc'),
  ('WECHATPAY2-SHA256-RSA2048'),
  ('')) AS t(h);
SELECT pay.wechatpay_parse_authorization(NULL) IS NULL AS null_in_null_out;

-- ---------------------------------------------------------------- callback signatures
SELECT ts, nonce, left(body, 60) AS body_start,
       pay.wechatpay_signature_valid(ts, nonce, body, signature, :'a_cert') AS cert,
       pay.wechatpay_signature_valid(ts, nonce, body, signature, :'a_spki') AS spki,
       pay.wechatpay_signature_valid(ts, nonce, body, signature, :'a_spki_b64') AS bare_base64
FROM wx_cb;
SELECT pay.wechatpay_signature_valid(ts, nonce, body || ' ', signature, :'a_cert') AS body_changed,
       pay.wechatpay_signature_valid(ts, nonce, replace(body, '支付成功', '支付失败'), signature, :'a_cert') AS chinese_changed,
       pay.wechatpay_signature_valid((ts::bigint + 1)::text, nonce, body, signature, :'a_cert') AS ts_changed,
       pay.wechatpay_signature_valid(ts, upper(nonce), body, signature, :'a_cert') AS nonce_changed,
       pay.wechatpay_signature_valid(ts, nonce, body, signature, :'b_cert') AS wrong_certificate,
       pay.wechatpay_signature_valid(ts, nonce, body, 'bm90IGEgc2lnbmF0dXJl', :'a_cert') AS short_signature,
       pay.wechatpay_signature_valid(ts, nonce, body, '', :'a_cert') AS empty_signature,
       pay.wechatpay_signature_valid(ts, nonce, body, '%%%', :'a_cert') AS not_base64,
       pay.wechatpay_signature_valid(ts || E'\n' || nonce, '', body, signature, :'a_cert') AS lines_shifted
FROM wx_cb;
SELECT pg_temp.err(format('SELECT pay.wechatpay_signature_valid(%L, %L, %L, %L, %L)',
         ts, nonce, body, signature, 'MIIBIjANBgkq')) AS bad_key FROM wx_cb;

-- ---------------------------------------------------------------- AEAD_AES_256_GCM
SELECT name, aad, pay.wechatpay_decrypt(key, nonce, aad, ciphertext) AS plaintext,
       pay.wechatpay_decrypt(key, nonce, aad, ciphertext) = plaintext AS matches
FROM wx_dec WHERE plaintext IS NOT NULL ORDER BY name;
-- a plaintext that is not UTF-8 text is refused, not returned
SELECT pg_temp.err(format('SELECT pay.wechatpay_decrypt(%L, %L, %L, %L)', key, nonce, aad, ciphertext)) AS not_utf8
FROM wx_dec WHERE name = 'not_utf8';
-- the resource embedded in the signed callback body
SELECT pay.wechatpay_decrypt(d.key, r->>'nonce', r->>'associated_data', r->>'ciphertext')::jsonb->>'trade_state' AS trade_state
FROM wx_cb c, wx_dec d, LATERAL (SELECT c.body::jsonb->'resource') x(r) WHERE d.name = 'transaction';

-- wrong key, nonce or associated data, or an altered ciphertext: PY010, never garbage
SELECT pg_temp.err(format('SELECT pay.wechatpay_decrypt(%L, %L, %L, %L)', k, n, a, c)) AS result, what
FROM wx_dec d, LATERAL (VALUES
  ('wrong key', reverse(d.key), d.nonce, d.aad, d.ciphertext),
  ('wrong nonce', d.key, 'fdasflkja485', d.aad, d.ciphertext),
  ('wrong associated data', d.key, d.nonce, 'certificate', d.ciphertext),
  ('ciphertext byte altered', d.key, d.nonce, d.aad,
     overlay(d.ciphertext placing CASE substr(d.ciphertext, 5, 1) WHEN 'A' THEN 'B' ELSE 'A' END from 5 for 1)),
  ('tag byte altered', d.key, d.nonce, d.aad,
     encode(set_byte(decode(d.ciphertext, 'base64'), length(decode(d.ciphertext, 'base64')) - 1,
       get_byte(decode(d.ciphertext, 'base64'), length(decode(d.ciphertext, 'base64')) - 1) # 1), 'base64')),
  ('tag only, text cut', d.key, d.nonce, d.aad,
     encode(substr(decode(d.ciphertext, 'base64'), length(decode(d.ciphertext, 'base64')) - 15), 'base64'))
) AS t(what, k, n, a, c) WHERE d.name = 'transaction';

-- malformed arguments: 22023, and the key is never shown
SELECT pg_temp.err(format('SELECT pay.wechatpay_decrypt(%L, %L, %L, %L)', k, n, 'transaction', c)) AS result, what
FROM wx_dec d, LATERAL (VALUES
  ('key of 31 bytes', left(d.key, 31), d.nonce, d.ciphertext),
  ('key of 33 bytes', d.key || 'x', d.nonce, d.ciphertext),
  ('key of 16 characters, 48 bytes', repeat('钥', 16), d.nonce, d.ciphertext),
  ('nonce of 11 bytes', d.key, left(d.nonce, 11), d.ciphertext),
  ('nonce of 13 bytes', d.key, d.nonce || 'x', d.ciphertext),
  ('ciphertext not base64', d.key, d.nonce, '!' || d.ciphertext),
  ('ciphertext of 15 bytes', d.key, d.nonce, encode('\x000102030405060708090a0b0c0d0e'::bytea, 'base64')),
  ('empty ciphertext', d.key, d.nonce, '')
) AS t(what, k, n, c) WHERE d.name = 'transaction';
