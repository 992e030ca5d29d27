-- pay.canonical_query, pay.hmac_sha256_hex, pay.sign_params, pay.sign_params_sha256.
-- Known answers come from test/vectors/hmac_vectors.json (Python hmac/hashlib,
-- cross-checked with openssl; see test/vectors/hmac_vectors.py).
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
\getenv abs_srcdir PG_ABS_SRCDIR
CREATE TEMP TABLE sign_canonical_fx AS
    SELECT pg_read_file(:'abs_srcdir' || '/test/vectors/hmac_vectors.json')::jsonb AS v;

-- canonical strings: every vector must give exactly the Python string
SELECT c->>'name' AS vector,
       CASE WHEN c->'exclude' = 'null' THEN pay.canonical_query(c->'params')
            ELSE pay.canonical_query(c->'params', ARRAY(SELECT jsonb_array_elements_text(c->'exclude')))
       END = c->>'canonical' AS ok
  FROM sign_canonical_fx, jsonb_array_elements(v->'canonical') c;
-- and what they look like
SELECT pay.canonical_query(c->'params') AS canonical
  FROM sign_canonical_fx, jsonb_array_elements(v->'canonical') c
 WHERE c->>'name' IN ('keys in byte order, upper case first', 'utf-8 chinese values and keys',
                      'nested object and array compact', 'nested strings json-escaped',
                      'values not url-escaped', 'empty and null values left out');

-- HMAC-SHA256 of a message
SELECT h->>'name' AS vector, pay.hmac_sha256_hex(h->>'key', h->>'message') = h->>'hex' AS ok
  FROM sign_canonical_fx, jsonb_array_elements(v->'hmac') h;
SELECT pay.hmac_sha256_hex('Jefe', 'what do ya want for nothing?');  -- RFC 4231 test case 2

-- sign_params (HMAC) and sign_params_sha256 (SHA-256 of canonical || secret)
SELECT s->>'name' AS vector,
       pay.canonical_query(s->'params') = s->>'canonical' AS canonical_ok,
       pay.sign_params(s->'params', s->>'secret') = s->>'hmac_hex' AS hmac_ok,
       pay.sign_params_sha256(s->'params', s->>'secret') = s->>'sha256_hex' AS sha256_ok
  FROM sign_canonical_fx, jsonb_array_elements(v->'sign_params') s;
-- sign and sign_type never change the signature
SELECT pay.sign_params('{"a":"1","sign":"x","sign_type":"RSA2"}', 'k') = pay.sign_params('{"a":"1"}', 'k') AS sign_ignored,
       pay.sign_params('{"a":"1"}', 'k') = pay.hmac_sha256_hex('k', 'a=1') AS is_hmac_of_canonical,
       pay.sign_params('{"a":"1"}', 'k') <> pay.sign_params('{"a":"2"}', 'k') AS value_matters,
       pay.sign_params('{"a":"1"}', 'k') <> pay.sign_params('{"a":"1"}', 'K') AS secret_matters;

-- values: JSON text of numbers as jsonb keeps them, booleans, null and "" left out
SELECT pay.canonical_query('{"a":1.50,"b":1e2,"c":-0.0,"d":12345678901234567890123,"e":true,"f":null,"g":""}');
-- keys: byte order (not collation), '=' and '&' inside keys and values kept as they are
SELECT pay.canonical_query('{"é":"1","z":"2","Z":"3","a=b":"4","c&d":"5","":"6"}');
-- nested: compact, strings JSON-escaped, control characters as \u00XX, keys in jsonb's order
SELECT pay.canonical_query('{"n":{"bb":1,"a":{"y":[true,null,"x\u0001"],"x":{}}}}');
-- a top-level string value is used raw: newlines and quotes unescaped
SELECT pay.canonical_query(jsonb_build_object('memo', E'line1\nline2 "q"'));
-- a repeated key in the input: jsonb keeps the last one
SELECT pay.canonical_query('{"a":"first","a":"last"}');
-- exclude lists: NULL elements ignored, matching is exact (case and bytes)
SELECT pay.canonical_query('{"sign":"s","SIGN":"S","x":"1"}', ARRAY['sign', NULL]);
SELECT pay.canonical_query('{"sign":"s","x":"1"}', '{}');
-- STRICT: NULL in, NULL out
SELECT pay.canonical_query(NULL) IS NULL AS null_params,
       pay.canonical_query('{"a":"1"}', NULL) IS NULL AS null_exclude,
       pay.sign_params(NULL, 'k') IS NULL AS null_sign_params,
       pay.hmac_sha256_hex('k', NULL) IS NULL AS null_message;

-- errors
SELECT pg_temp.err($$SELECT pay.canonical_query('[1,2]')$$);
SELECT pg_temp.err($$SELECT pay.canonical_query('"a=b"')$$);
SELECT pg_temp.err($$SELECT pay.canonical_query('null')$$);
SELECT pg_temp.err($$SELECT pay.sign_params('[]', 'k')$$);
SELECT pg_temp.err($$SELECT pay.sign_params('{"a":"1"}', '')$$);
SELECT pg_temp.err($$SELECT pay.sign_params_sha256('{"a":"1"}', '')$$);
SELECT pg_temp.err($$SELECT pay.hmac_sha256_hex(repeat('k', 4097), 'm')$$);
SELECT length(pay.hmac_sha256_hex(repeat('k', 4096), 'm')) AS longest_key_ok;
SELECT pg_temp.err($$SELECT pay.canonical_query((SELECT jsonb_object_agg('k' || i, i) FROM generate_series(1, 4097) i))$$);
SELECT length(pay.canonical_query((SELECT jsonb_object_agg('k' || i, i) FROM generate_series(1, 4096) i))) AS most_keys_ok;
-- the secret never appears in an error
SELECT pg_temp.err($$SELECT pay.hmac_sha256_hex(repeat('topsecret', 500), 'm')$$) LIKE '%topsecret%' AS leaks_key;

-- declared properties and privileges
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict, p.proparallel,
       has_function_privilege('pay_app', p.oid, 'EXECUTE') AS app,
       has_function_privilege('pay_callback', p.oid, 'EXECUTE') AS callback,
       has_function_privilege('pay_admin', p.oid, 'EXECUTE') AS admin
  FROM pg_proc p
 WHERE p.pronamespace = 'pay'::regnamespace
   AND p.proname IN ('canonical_query', 'hmac_sha256_hex', 'sign_params', 'sign_params_sha256')
 ORDER BY 1::text;
