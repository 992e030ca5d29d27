-- pay.adyen_hmac_signature and pay.adyen_hmac_valid.
-- Known answers come from test/vectors/hmac_vectors.json (Python hmac,
-- cross-checked with openssl; see test/vectors/hmac_vectors.py).
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
\getenv abs_srcdir PG_ABS_SRCDIR
CREATE TEMP TABLE sign_adyen_fx AS
    SELECT pg_read_file(:'abs_srcdir' || '/test/vectors/hmac_vectors.json')::jsonb AS v;

-- signing: exactly the base64 Python computed
SELECT a->>'name' AS vector, a->>'signing_string' AS signed,
       pay.adyen_hmac_signature(a->'item', a->>'key') = a->>'signature' AS ok
  FROM sign_adyen_fx, jsonb_array_elements(v->'adyen_sign') a;
-- Adyen's published example signature for this item and key
SELECT pay.adyen_hmac_signature(a->'item', a->>'key')
  FROM sign_adyen_fx, jsonb_array_elements(v->'adyen_sign') a
 WHERE a->>'name' = 'documentation-style item';

-- verification: "valid" is the expected verdict
SELECT a->>'name' AS vector, (a->>'valid')::boolean AS expected,
       pay.adyen_hmac_valid(a->'item', a->>'key') AS got
  FROM sign_adyen_fx, jsonb_array_elements(v->'adyen_valid') a;

-- round trip, and the signature lives in additionalData.hmacSignature
SELECT pay.adyen_hmac_valid(i || jsonb_build_object('additionalData',
           jsonb_build_object('hmacSignature', pay.adyen_hmac_signature(i, k))), k) AS round_trip
  FROM (SELECT '{"pspReference":"1","amount":{"value":5,"currency":"USD"},"success":"false"}'::jsonb AS i,
               'abcdef0123' AS k) x;
-- a missing item is invalid, never NULL
SELECT pay.adyen_hmac_valid(NULL, '00ff') AS null_item;

-- errors: the key is not hex, or the item is not an object
SELECT pg_temp.err($$SELECT pay.adyen_hmac_signature('{}', 'not-hex')$$);
SELECT pg_temp.err($$SELECT pay.adyen_hmac_signature('{}', 'abc')$$);
SELECT pg_temp.err($$SELECT pay.adyen_hmac_signature('{}', '')$$);
SELECT pg_temp.err($$SELECT pay.adyen_hmac_signature('{}', repeat('ab', 129))$$);
SELECT pg_temp.err($$SELECT pay.adyen_hmac_valid('{}', 'zz')$$);
SELECT pg_temp.err($$SELECT pay.adyen_hmac_valid('{}', NULL)$$);
SELECT pg_temp.err($$SELECT pay.adyen_hmac_valid('[]', '00ff')$$);
SELECT pg_temp.err($$SELECT pay.adyen_hmac_signature('"x"', '00ff')$$);
SELECT pg_temp.err($$SELECT pay.adyen_hmac_signature('{"amount":"10 EUR"}', '00ff')$$);
SELECT pg_temp.err($$SELECT pay.adyen_hmac_signature('{"pspReference":{"a":1}}', '00ff')$$);
-- the key never appears in an error
SELECT pg_temp.err($$SELECT pay.adyen_hmac_signature('{}', 'deadbeefXtopsecret')$$) LIKE '%topsecret%' AS leaks_key;

-- declared properties and privileges
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict, p.proparallel,
       has_function_privilege('pay_app', p.oid, 'EXECUTE') AS app,
       has_function_privilege('pay_callback', p.oid, 'EXECUTE') AS callback,
       has_function_privilege('pay_admin', p.oid, 'EXECUTE') AS admin
  FROM pg_proc p
 WHERE p.pronamespace = 'pay'::regnamespace AND p.proname LIKE 'adyen\_hmac\_%'
 ORDER BY 1::text;
