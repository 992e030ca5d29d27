-- The provider registry is the one list of gateway kinds, and provider
-- behaviour is C: the CHECK on pay.gateways.kind asks the registry, and no
-- answer reader, callback parser or request builder of a provider is
-- PL/pgSQL.

-- q's SQLSTATE and message
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'NO ERROR';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- the CHECK names no kind of its own
SELECT pg_get_constraintdef(c.oid) AS kind_check
  FROM pg_constraint c
 WHERE c.conrelid = 'pay.gateways'::regclass AND c.conname = 'gateways_kind_check';
-- every kind of the registry passes it, another does not
SELECT k, pay._provider_kind_known(k) FROM unnest(pay._provider_kinds() || ARRAY['mollie', 'Stripe', '']) k;
SELECT pay._provider_kind_known(NULL) IS NULL AS null_is_null;
-- a row written around pay.create_gateway meets it too (an explicit id:
-- the identity sequence is not used up)
SELECT pg_temp.err($$INSERT INTO pay.gateways (id, name, kind) OVERRIDING SYSTEM VALUE
                     VALUES (-1, 'pk_mollie', 'mollie')$$);

-- the functions of provider behaviour SQL still has are declarations of C ones
SELECT p.proname, l.lanname
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'pay'::regnamespace
   AND p.proname ~ '^_(answer|callback_|wechatpay|alipay|build_(stripe|wechatpay|alipay|statement)|anomaly|provider)'
 ORDER BY p.proname;

-- no function of pay branches on a gateway kind: what a kind does
-- differently is its provider's (a kind quoted in a body, as in
-- kind = 'stripe' or CASE kind WHEN 'alipay', is such a branch)
SELECT p.oid::regprocedure AS branches_on_a_kind
  FROM pg_proc p
 WHERE p.pronamespace = 'pay'::regnamespace
   AND p.prosrc || coalesce(pg_get_function_sqlbody(p.oid), '')
       ~ ('''(' || array_to_string(pay._provider_kinds(), '|') || ')''')
 ORDER BY p.oid::regprocedure::text;
