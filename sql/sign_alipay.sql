-- Alipay RSA2: pay.alipay_sign, pay.alipay_signature_valid (asynchronous
-- notifies) and pay.alipay_response_valid (synchronous answers).  Known
-- answers from python3-cryptography, re-checked with openssl
-- (test/vectors/rsa_vectors.sh).
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
\set b_pkcs8 `cat :keydir/b_pkcs8.pem`
\set b_spki_b64 `cat :keydir/b_spki.b64`
\set vectors `cat :abs_srcdir/test/vectors/rsa_vectors.json`
CREATE TEMP TABLE alipay_vec AS SELECT :'vectors'::jsonb AS j;
CREATE TEMP TABLE notify AS SELECT j->'alipay_notify'->'params' AS p, j->'alipay_notify'->>'canonical' AS canonical FROM alipay_vec;
CREATE TEMP TABLE request AS SELECT j->'alipay_request'->'params' AS p, j->'alipay_request'->>'canonical' AS canonical,
  j->'alipay_request'->>'sign' AS sign FROM alipay_vec;
CREATE TEMP TABLE answer AS SELECT r->>'name' AS name, r->>'body' AS body FROM alipay_vec, jsonb_array_elements(j->'alipay_response') r;

-- ---------------------------------------------------------------- notifies
-- the notify (25 parameters, a Chinese subject, an empty body) and its string to sign
SELECT (SELECT count(*) FROM jsonb_object_keys(p)) AS params, p->>'subject' AS subject, p->>'sign_type' AS sign_type,
       pay.canonical_query(p) = canonical AS canonical_matches_python
FROM notify;

-- valid with the key in every form
SELECT pay.alipay_signature_valid(p, :'a_spki') AS spki_pem,
       pay.alipay_signature_valid(p, :'a_spki_b64') AS bare_base64,
       pay.alipay_signature_valid(p, :'a_cert') AS certificate,
       pay.alipay_signature_valid(p, :'a_spki', '{sign,sign_type}') AS explicit_exclude
FROM notify;

-- tampered, wrong key, wrong exclusions, missing or broken sign
SELECT pay.alipay_signature_valid(p || '{"total_amount":"88.89"}', :'a_spki') AS amount_changed,
       pay.alipay_signature_valid(p || '{"subject":"测试订单-手机壳 x3"}', :'a_spki') AS subject_changed,
       pay.alipay_signature_valid(p || '{"trade_status":"TRADE_CLOSED"}', :'a_spki') AS status_changed,
       pay.alipay_signature_valid(p || '{"refund_fee":"88.88"}', :'a_spki') AS param_added,
       pay.alipay_signature_valid(p - 'gmt_payment', :'a_spki') AS param_removed,
       pay.alipay_signature_valid(p, :'b_spki_b64') AS wrong_key,
       pay.alipay_signature_valid(p, :'a_spki', '{sign}') AS sign_type_not_excluded,
       pay.alipay_signature_valid(p - 'sign', :'a_spki') AS sign_missing,
       pay.alipay_signature_valid(p || '{"sign":""}', :'a_spki') AS sign_empty,
       pay.alipay_signature_valid(p || '{"sign":"%%%"}', :'a_spki') AS sign_not_base64,
       pay.alipay_signature_valid(p || '{"sign":12345}', :'a_spki') AS sign_a_number
FROM notify;

-- what the signature does not cover: sign_type, and parameters with empty values
SELECT pay.alipay_signature_valid(p || '{"sign_type":"RSA"}', :'a_spki') AS sign_type_changed,
       pay.alipay_signature_valid(p || '{"passback_params":""}', :'a_spki') AS empty_param_added,
       pay.alipay_signature_valid(p - 'body', :'a_spki') AS empty_param_removed
FROM notify;

-- a bad key is an error, a non-object params too (canonical_query's rule)
SELECT pg_temp.err(format('SELECT pay.alipay_signature_valid(%L, %L)', p, 'MIIB')) AS bad_key FROM notify;
SELECT pg_temp.err(format('SELECT pay.alipay_signature_valid(%L, %L)', '[1,2]', :'a_spki')) AS params_array;

-- ---------------------------------------------------------------- requests
-- requests sign sign_type too: only sign is left out by default
SELECT p->>'sign_type' AS sign_type, pay.canonical_query(p, '{sign}') = canonical AS canonical_matches_python,
       pay.alipay_sign(p, :'a_pkcs8') = sign AS pkcs8_matches,
       pay.alipay_sign(p, :'a_pkcs1') = sign AS pkcs1_matches,
       pay.alipay_sign(p || jsonb_build_object('sign', 'old'), :'a_pkcs8') = sign AS old_sign_ignored,
       pay.alipay_sign(p, :'a_pkcs8', '{sign,sign_type}') = sign AS wrong_exclusions,
       pay.alipay_sign(p, :'b_pkcs8') = sign AS wrong_key
FROM request;
SELECT pay.alipay_sign(p, :'a_pkcs8') AS sign FROM request;
-- and the receiving side accepts what we signed, with the request's exclusions
SELECT pay.alipay_signature_valid(p || jsonb_build_object('sign', pay.alipay_sign(p, :'a_pkcs8')),
                                  :'a_cert', '{sign}') AS roundtrip
FROM request;
SELECT pg_temp.err(format('SELECT pay.alipay_sign(%L, %L)', p, :'a_spki')) AS public_key_to_sign FROM request;

-- ---------------------------------------------------------------- synchronous answers
-- the raw bodies (compact; spaced with \u escapes and an escaped "/" in sign; sign first)
SELECT name, body FROM answer ORDER BY name;
SELECT name, pay.alipay_response_valid(body, :'a_spki') AS spki,
       pay.alipay_response_valid(body, :'a_cert') AS cert,
       pay.alipay_response_valid(body, :'b_spki_b64') AS wrong_key
FROM answer ORDER BY name;

-- byte for byte: any change inside the *_response member breaks it, changes outside do not
SELECT name,
       pay.alipay_response_valid(replace(body, '"10000"', '"10001"'), :'a_spki') AS code_changed,
       pay.alipay_response_valid(replace(body, '"msg":', '"msg" :'), :'a_spki') AS space_added,
       pay.alipay_response_valid(replace(body, '\u6d4b', '测'), :'a_spki') AS escape_decoded,
       pay.alipay_response_valid(E'\n ' || body || E'\n', :'a_spki') AS space_around
FROM answer WHERE name IN ('compact', 'spaced_escaped') ORDER BY name;

-- malformed answers are invalid, never an error
SELECT pay.alipay_response_valid(left(body, -1), :'a_spki') AS truncated,
       pay.alipay_response_valid(body || 'x', :'a_spki') AS trailing_garbage,
       pay.alipay_response_valid(regexp_replace(body, ',"sign":"[^"]*"', ''), :'a_spki') AS sign_missing,
       pay.alipay_response_valid(replace(body, '"sign":"', '"sign":1,"x":"'), :'a_spki') AS sign_a_number,
       pay.alipay_response_valid(replace(body, '{"alipay', '{"x_response":{},"alipay'), :'a_spki') AS two_responses,
       pay.alipay_response_valid(replace(body, '"sign"', '"sign":"AAAA","sign"'), :'a_spki') AS two_signs,
       pay.alipay_response_valid(replace(body, 'alipay_trade_query_response', 'alipay_trade_query'), :'a_spki') AS no_response_member,
       pay.alipay_response_valid(replace(body, '{"alipay', '{"outer":{"alipay'), :'a_spki') AS nested_only
FROM answer WHERE name = 'compact';
-- the scanner on bodies built around a member M and a valid signature S of M
-- (signed here with pay.rsa_sha256_sign, whose known answers sign_rsa checks):
-- only the structure decides
CREATE FUNCTION pg_temp.answer(tmpl text, member text, key text) RETURNS text LANGUAGE sql AS $$
  SELECT replace(replace(tmpl, '{M}', member), '{S}', pay.rsa_sha256_sign(member, key)) $$;
SELECT pay.alipay_response_valid(pg_temp.answer(tmpl, member, :'a_pkcs8'), :'a_spki') AS valid, tmpl, member
FROM (VALUES
  ('{"a_response":{M},"sign":"{S}"}', '{}'),
  ('{"sign":"{S}","b_response":{M}}', '{"code":"10000"}'),
  (E' \t{"a_response" :\n{M} , "x":1, "sign" : "{S}" }\r\n', '{"code":"10000"}'),
  ('{"a_response":{M},"sign":"{S}"}', '{"x":-0.5e+10,"y":[true,false,null],"z":"","w":{}}'),
  ('{"a_response":{M},"sign":"{S}"}', '{"x":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t"}'),
  ('{"a_response":{M},"sign":"{S}"}', '"a string member"'),
  ('{"a_response":{M},"sign":"{S}"}', repeat('[', 64) || repeat(']', 64)),
  ('{"a_response":{M},"sign":"{S}"}', repeat('[', 65) || repeat(']', 65)),
  ('{"a_response":{M},"sign":"{S}"}', '{"x":[1,2,]}'),
  ('{"a_response":{M},"sign":"{S}"}', '{"x":01}'),
  ('{"a_response":{M},"sign":"{S}"}', '{"x":1.}'),
  ('{"a_response":{M},"sign":"{S}"}', '{"x":"\x"}'),
  ('{"a_response":{M},"sign":"{S}"}', '{"x":"\u00g0"}'),
  ('{"a_response":{M},"sign":"{S}"}', E'{"x":"raw\nnewline"}'),
  ('{"a_response":{M},"sign":"{S}"}', '{"x":tru}'),
  ('{"a_response":{M},"sign":"{S}"}', '{"x":1]'),
  ('{"a_response":{M},"sign":"{S}"}', '{"x" 1}'),
  ('{"a_response":{M},"sign":"{S}"} x', '{}'),
  ('{"a_response":{M},"sign":"{S}",}', '{}'),
  ('{"a_response":{M} "sign":"{S}"}', '{}'),
  ('{"a_response":{M},"sign":"{S}"', '{}'),
  ('[{"a_response":{M},"sign":"{S}"}]', '{}'),
  ('{"a_response":{M},"b_response":{M},"sign":"{S}"}', '{}'),
  ('{"a_response":{M},"sign":"{S}","sign":"{S}"}', '{}'),
  ('{"_response":{M},"sign":"{S}"}', '{}'),
  ('{"x":{"a_response":{M}},"sign":"{S}"}', '{}'),
  ('{"a_response":{M},"x":{"sign":"{S}"}}', '{}'),
  ('{"a_response":{M},"sign":["{S}"]}', '{}'),
  ('{"a_response":{M},"Sign":"{S}"}', '{}')) AS t(tmpl, member);
-- escapes inside the sign string are undone before base64 decoding
SELECT pay.alipay_response_valid(
         replace(replace(pg_temp.answer('{"a_response":{M},"sign":"{S}"}', '{"n":1}', :'a_pkcs8'),
                 '+', '\u002b'), '/', '\/'), :'a_spki') AS sign_escaped,
       pay.alipay_response_valid(
         replace(pg_temp.answer('{"a_response":{M},"sign":"{S}"}', '{"n":1}', :'a_pkcs8'),
                 '"sign":"', '"sign":"\ud800'), :'a_spki') AS lone_surrogate;
SELECT pay.rsa_sha256_sign('{"n":1}', :'a_pkcs8') ~ '[+].*/|/.*[+]' AS that_sign_has_plus_and_slash;
-- very deep nesting is refused without recursion
SELECT pay.alipay_response_valid('{"a_response":' || repeat('[', 100000) || ',"sign":"AAAA"}', :'a_spki') AS depth_100000;
SELECT pg_temp.err(format('SELECT pay.alipay_response_valid(%L, %L)', body, 'not a key')) AS bad_key
FROM answer WHERE name = 'compact';
