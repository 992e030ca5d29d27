-- Every path a role can take runs with search_path pinned to pg_catalog,
-- pg_temp and schema-qualified objects: functions and operators that
-- shadow built-ins in schema public, first on the caller's search_path,
-- never run inside pay.  Each shadow records that it ran.
\getenv abs_srcdir PG_ABS_SRCDIR
\set master_key :abs_srcdir '/test/keys/master-a.hex'
DELETE FROM pay.secrets;
DELETE FROM pay.master_keys;
SET pay.master_key_file = :'master_key';

-- set-up, before any shadow exists
SELECT pay.create_merchant('sp_shop', 'Search Path Shop', 'https://sp.example/notify') > 0 AS merchant;
SELECT pay.create_gateway('sp_stripe', 'stripe') > 0 AS gateway;
SELECT pay.set_secret('gateway:sp_stripe', 'webhook_secret', 'whsec_search_path');
SELECT pay.open_account('sp:bank', 'USD') > 0 AS bank, pay.open_account('sp:wallet', 'USD', true) > 0 AS wallet;
SELECT pay.post('sp:topup', '[{"account":"sp:bank","amount":-5000},{"account":"sp:wallet","amount":5000}]') > 0 AS topup;
CREATE ROLE sp_app NOLOGIN IN ROLE pay_app;
SELECT id AS paid FROM pay.mark_paid((pay.create_order('sp_shop', 'SP-paid', 1000, 'USD')).id, 'sp-txn', 1000, 'USD') \gset
SELECT id AS paid2 FROM pay.mark_paid((pay.create_order('sp_shop', 'SP-paid2', 1000, 'USD')).id, 'sp-txn2', 1000, 'USD') \gset
SELECT id AS pending FROM pay.create_order('sp_shop', 'SP-pending', 1000, 'USD') \gset
SELECT id AS wallet_order FROM pay.create_order('sp_shop', 'SP-wallet', 700, 'USD') \gset
SELECT id AS due FROM pay.create_order('sp_shop', 'SP-due', 100, 'USD', expires_in => '1 second') \gset

-- the shadows, and the table they write to
CREATE TABLE public.sp_ran (what text NOT NULL);
GRANT INSERT, SELECT ON public.sp_ran TO PUBLIC;
CREATE FUNCTION public.sp_note(p text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog AS $$ INSERT INTO public.sp_ran VALUES ($1) $$;
CREATE FUNCTION public.sp_text_eq(text, text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('text = text'); RETURN pg_catalog.texteq($1, $2); END $$;
CREATE OPERATOR public.= (FUNCTION = public.sp_text_eq, LEFTARG = text, RIGHTARG = text);
CREATE FUNCTION public.sp_int8_eq(bigint, bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('bigint = bigint'); RETURN pg_catalog.int8eq($1, $2); END $$;
CREATE OPERATOR public.= (FUNCTION = public.sp_int8_eq, LEFTARG = bigint, RIGHTARG = bigint);
CREATE FUNCTION public.sp_text_cat(text, text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('text || text'); RETURN pg_catalog.textcat($1, $2); END $$;
CREATE OPERATOR public.|| (FUNCTION = public.sp_text_cat, LEFTARG = text, RIGHTARG = text);
CREATE FUNCTION public.sp_text_match(text, text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('text ~ text'); RETURN pg_catalog.textregexeq($1, $2); END $$;
CREATE OPERATOR public.~ (FUNCTION = public.sp_text_match, LEFTARG = text, RIGHTARG = text);
CREATE FUNCTION public.sp_int8_mul_interval(bigint, interval) RETURNS interval
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('bigint * interval'); RETURN $1::double precision * $2; END $$;
CREATE OPERATOR public.* (FUNCTION = public.sp_int8_mul_interval, LEFTARG = bigint, RIGHTARG = interval);
CREATE FUNCTION public.sp_ts_plus(timestamptz, interval) RETURNS timestamptz
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('timestamptz + interval'); RETURN pg_catalog.timestamptz_pl_interval($1, $2); END $$;
CREATE OPERATOR public.+ (FUNCTION = public.sp_ts_plus, LEFTARG = timestamptz, RIGHTARG = interval);
CREATE FUNCTION public.lower(text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('lower'); RETURN pg_catalog.lower($1); END $$;
CREATE FUNCTION public.now() RETURNS timestamptz
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.length(text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('length'); RETURN pg_catalog.length($1); END $$;
CREATE FUNCTION public.format(text, text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('format'); RETURN pg_catalog.format($1, $2); END $$;
CREATE FUNCTION public.jsonb_build_object(text, text, text, text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2, $3, $4); END $$;
CREATE FUNCTION public.jsonb_typeof(jsonb) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('jsonb_typeof'); RETURN pg_catalog.jsonb_typeof($1); END $$;
CREATE FUNCTION public.nextval(regclass) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('nextval'); RETURN pg_catalog.nextval($1); END $$;
CREATE FUNCTION public.pg_has_role(oid, oid, text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('pg_has_role'); RETURN pg_catalog.pg_has_role($1, $2, $3); END $$;
CREATE FUNCTION public.pg_has_role(oid, name, text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('pg_has_role'); RETURN pg_catalog.pg_has_role($1, $2, $3); END $$;
CREATE FUNCTION public.generate_series(integer, integer) RETURNS SETOF integer
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM public.sp_note('generate_series'); RETURN QUERY SELECT pg_catalog.generate_series($1, $2); END $$;

-- the shadows work: an unqualified call under this search_path runs them
SET search_path = public, pg_catalog;
SELECT 'a' = 'a' AS shadow_eq, lower('A') AS shadow_lower;
SELECT what FROM public.sp_ran ORDER BY 1;
TRUNCATE public.sp_ran;

-- the API, as each role, under that search_path; a binding exists, so the
-- merchant-binding checks run too
RESET search_path;
SELECT pay.bind_merchant_role('sp_app', 'sp_shop');
SET search_path = public, pg_catalog;
SET ROLE pay_app;
SELECT (pay.create_order('sp_shop', 'SP-new', 1000, 'USD')).status AS created;
SELECT (pay.create_order('sp_shop', 'SP-key', 1000, 'USD', 'sp-key-1')).status AS created_with_key;
SELECT (pay.create_order('sp_shop', 'SP-key', 1000, 'USD', 'sp-key-1')).status AS replayed;
SELECT (pay.ship(:paid)).status AS shipped;
SELECT pay.refund(:paid, 100) > 0 AS refunded;
SELECT (pay.cancel(:pending, 'changed mind')).status AS cancelled;
SELECT pay.open_account('sp:wallet2', 'USD', true) > 0 AS opened;
SELECT pay.balance('sp:wallet') AS balance;
SELECT (pay.pay_with_balance(:wallet_order, 'sp:wallet')).status AS paid_from_wallet;
SELECT count(*) AS app_reads_orders FROM pay.orders WHERE merchant_order_no OPERATOR(pg_catalog.=) 'SP-new';
RESET ROLE;
SET ROLE sp_app;
SELECT (pay.complete(:paid)).status AS completed_by_bound_role;
SELECT pay.refund(:paid2, 100) > 0 AS refunded_by_bound_role;
SELECT count(*) AS bound_role_reads_orders FROM pay.order_events;
RESET ROLE;
SET ROLE pay_callback;
SELECT http_status FROM pay.handle_callback('sp_stripe', '{"Stripe-Signature": "t=1700000000,v1=00"}',
                                           '{"id":"evt_sp","type":"payment_intent.succeeded"}');
SELECT pay.record_unreadable_callback('sp_stripe', '{}', 'too_large', 'body too large', NULL, 413) > 0 AS recorded;
RESET ROLE;
SET ROLE pay_admin;
SELECT pay.create_merchant('sp_shop2', 'Second Shop') > 0 AS merchant2;
SELECT pay.add_routing_rule('sp_stripe', 'sp_shop2', 'USD') > 0 AS rule;
SELECT pay.expire_orders(pg_catalog.now() OPERATOR(pg_catalog.+) interval '1 hour') >= 1 AS expired;
SELECT pay.post('sp:adjust', '[{"account":"sp:bank","amount":-10},{"account":"sp:wallet","amount":10}]') > 0 AS posted;
SELECT pay.bind_merchant_role('sp_app', 'sp_shop2') AS bound, pay.unbind_merchant_role('sp_app', 'sp_shop2') AS unbound;
RESET ROLE;
SET ROLE pay_readonly;
SELECT count(*) > 0 AS readonly_reads FROM pay.refunds;
RESET ROLE;
RESET search_path;

-- nothing of the shadows ran
SELECT what, count(*) FROM public.sp_ran GROUP BY what ORDER BY what;

DROP TABLE public.sp_ran;
DROP OPERATOR public.= (text, text), public.= (bigint, bigint), public.|| (text, text), public.~ (text, text),
              public.* (bigint, interval), public.+ (timestamptz, interval);
DROP FUNCTION public.sp_note(text), public.sp_text_eq(text, text), public.sp_int8_eq(bigint, bigint),
              public.sp_text_cat(text, text), public.sp_text_match(text, text),
              public.sp_int8_mul_interval(bigint, interval), public.sp_ts_plus(timestamptz, interval),
              public.lower(text), public.now(), public.length(text), public.format(text, text),
              public.jsonb_build_object(text, text, text, text), public.jsonb_typeof(jsonb),
              public.nextval(regclass), public.pg_has_role(oid, oid, text), public.pg_has_role(oid, name, text),
              public.generate_series(integer, integer);
DELETE FROM pay.merchant_roles;
DROP ROLE sp_app;
DELETE FROM pay.secrets;
DELETE FROM pay.master_keys;
RESET pay.master_key_file;
