-- PayPal webhooks: pay.paypal_signature_valid, SHA256withRSA with the PayPal
-- certificate over transmission_id|transmission_time|webhook_id|crc32(body).
-- Known answers (and CRC-32s from python's zlib.crc32) from
-- test/vectors/rsa_vectors.sh.
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
\set a_cert `cat :keydir/a_cert.pem`
\set a_spki_b64 `cat :keydir/a_spki.b64`
\set b_cert `cat :keydir/b_cert.pem`
\set vectors `cat :abs_srcdir/test/vectors/rsa_vectors.json`
CREATE TEMP TABLE pp AS
  SELECT j->'paypal'->'headers' AS h, j->'paypal'->>'body' AS body, j->'paypal'->>'webhook_id' AS webhook_id,
         (j->'paypal'->>'crc32')::bigint AS crc32, j->'paypal'->>'message' AS message
  FROM (SELECT :'vectors'::jsonb AS j) v;

-- CRC-32 as zlib computes it: the standard check value, empty input, UTF-8, the webhook body
SELECT c->>'text' = '123456789' AS check_value, octet_length(c->>'text') AS bytes, (c->>'crc32')::bigint AS zlib,
       pay._crc32(convert_to(c->>'text', 'UTF8')) AS ours
FROM (SELECT :'vectors'::jsonb AS j) v, jsonb_array_elements(j->'crc32') c ORDER BY 2;

-- the signed message and the known answer
SELECT message, message = format('%s|%s|%s|%s', h->>'PAYPAL-TRANSMISSION-ID', h->>'PAYPAL-TRANSMISSION-TIME',
                                 webhook_id, pay._crc32(convert_to(body, 'UTF8'))) AS layout
FROM pp;
SELECT pay.paypal_signature_valid(h, body, webhook_id, :'a_cert') AS certificate,
       pay.paypal_signature_valid(h, body, webhook_id, :'a_spki_b64') AS bare_base64
FROM pp;

-- header names in any case; PAYPAL-AUTH-ALGO optional but, when present, SHA256withRSA
CREATE FUNCTION pg_temp.rename_keys(h jsonb, f text) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_object_agg(CASE f WHEN 'lower' THEN lower(key) WHEN 'initcap' THEN initcap(key) ELSE key END, value)
  FROM jsonb_each(h) $$;
SELECT pay.paypal_signature_valid(pg_temp.rename_keys(h, 'lower'), body, webhook_id, :'a_cert') AS lower_case,
       pay.paypal_signature_valid(pg_temp.rename_keys(h, 'initcap'), body, webhook_id, :'a_cert') AS initcap,
       pay.paypal_signature_valid(h - 'PAYPAL-AUTH-ALGO', body, webhook_id, :'a_cert') AS no_auth_algo,
       pay.paypal_signature_valid(h || '{"PAYPAL-AUTH-ALGO":"sha256withrsa"}', body, webhook_id, :'a_cert') AS algo_lower_case,
       pay.paypal_signature_valid(h || '{"PAYPAL-AUTH-ALGO":"SHA1withRSA"}', body, webhook_id, :'a_cert') AS algo_sha1,
       pay.paypal_signature_valid(h || '{"PAYPAL-AUTH-ALGO":"SHA512withRSA"}', body, webhook_id, :'a_cert') AS algo_sha512,
       pay.paypal_signature_valid(h || '{"PAYPAL-AUTH-ALGO":""}', body, webhook_id, :'a_cert') AS algo_empty
FROM pp;

-- tampered, wrong certificate or webhook id, missing or ambiguous headers: false
SELECT pay.paypal_signature_valid(h, body || ' ', webhook_id, :'a_cert') AS body_space_added,
       pay.paypal_signature_valid(h, replace(body, '88.88', '88.89'), webhook_id, :'a_cert') AS amount_changed,
       pay.paypal_signature_valid(h, replace(body, '测试', '测验'), webhook_id, :'a_cert') AS chinese_changed,
       pay.paypal_signature_valid(h, body, '1JE4291016473214D', :'a_cert') AS other_webhook_id,
       pay.paypal_signature_valid(h, body, webhook_id, :'b_cert') AS wrong_certificate,
       pay.paypal_signature_valid(h || '{"PAYPAL-TRANSMISSION-TIME":"2024-05-01T12:00:08Z"}', body, webhook_id, :'a_cert') AS time_changed,
       pay.paypal_signature_valid(h || '{"PAYPAL-TRANSMISSION-ID":"69cd13f0-d67a-11e5-baa3-778b53f4ae56"}', body, webhook_id, :'a_cert') AS id_changed
FROM pp;
SELECT pay.paypal_signature_valid(h - 'PAYPAL-TRANSMISSION-SIG', body, webhook_id, :'a_cert') AS no_sig,
       pay.paypal_signature_valid(h - 'PAYPAL-TRANSMISSION-ID', body, webhook_id, :'a_cert') AS no_id,
       pay.paypal_signature_valid(h - 'PAYPAL-TRANSMISSION-TIME', body, webhook_id, :'a_cert') AS no_time,
       pay.paypal_signature_valid('{}', body, webhook_id, :'a_cert') AS no_headers,
       pay.paypal_signature_valid(h || jsonb_build_object('paypal-transmission-sig', h->'PAYPAL-TRANSMISSION-SIG'),
                                  body, webhook_id, :'a_cert') AS sig_twice,
       pay.paypal_signature_valid(h || jsonb_build_object('PAYPAL-TRANSMISSION-SIG', jsonb_build_array(h->'PAYPAL-TRANSMISSION-SIG')),
                                  body, webhook_id, :'a_cert') AS sig_an_array,
       pay.paypal_signature_valid(h || '{"PAYPAL-TRANSMISSION-SIG":"not base64!"}', body, webhook_id, :'a_cert') AS sig_not_base64,
       pay.paypal_signature_valid(h || '{"PAYPAL-TRANSMISSION-SIG":""}', body, webhook_id, :'a_cert') AS sig_empty
FROM pp;
-- a "|" inside a field would let fields shift under one signature: refused even when signed
-- (signed here with pay.rsa_sha256_sign, whose known answers sign_rsa checks)
SELECT id, pay.paypal_signature_valid(h || jsonb_build_object('PAYPAL-TRANSMISSION-ID', id,
         'PAYPAL-TRANSMISSION-SIG', pay.rsa_sha256_sign(format('%s|%s|%s|%s', id, h->>'PAYPAL-TRANSMISSION-TIME',
                                                               webhook_id, crc32), :'a_pkcs8')),
         body, webhook_id, :'a_cert') AS valid
FROM pp, unnest(ARRAY['ab', 'a|b']) id ORDER BY 1;

-- unusable arguments: 22023
SELECT pg_temp.err(format('SELECT pay.paypal_signature_valid(%L, %L, %L, %L)', h, body, webhook_id, 'CERT')) AS bad_certificate,
       pg_temp.err(format('SELECT pay.paypal_signature_valid(%L, %L, %L, %L)', '[]', body, webhook_id, :'a_cert')) AS headers_array,
       pg_temp.err(format('SELECT pay.paypal_signature_valid(%L, %L, %L, %L)', '"x"', body, webhook_id, :'a_cert')) AS headers_scalar
FROM pp;
