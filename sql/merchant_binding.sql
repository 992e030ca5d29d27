-- Merchant binding: application roles bound to a merchant see and move
-- only that merchant's orders (reads through row-level security, moves in
-- the SECURITY DEFINER functions); an unbound pay_app member sees all.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9]+', 'N', 'g'); END $$;

SELECT pay.create_merchant('mb_a', 'Binding Shop A') > 0 AS a, pay.create_merchant('mb_b', 'Binding Shop B') > 0 AS b;
SELECT pay.create_gateway('mb_gw', 'generic', 'https://psp.example/mb') > 0 AS gateway;
CREATE ROLE mb_app_a NOLOGIN IN ROLE pay_app;
CREATE ROLE mb_app_b NOLOGIN IN ROLE pay_app;
CREATE ROLE mb_clerk_a NOLOGIN IN ROLE mb_app_a;     -- bound through membership
CREATE ROLE mb_platform NOLOGIN IN ROLE pay_app;     -- never bound: sees all
SELECT pay.open_account('mb:bank', 'USD') > 0 AS bank, pay.open_account('mb:wallet', 'USD', true) > 0 AS wallet;
SELECT pay.post('mb:topup', '[{"account":"mb:bank","amount":-100000},{"account":"mb:wallet","amount":100000}]') > 0 AS topup;

-- each merchant: a paid order with a refund, a pending order, a pending
-- order routed to the gateway; ids kept as psql variables
CREATE TEMP TABLE mb_orders (label text PRIMARY KEY, id bigint);
GRANT SELECT ON mb_orders TO PUBLIC;
INSERT INTO mb_orders
SELECT m || '_' || k, (pay.create_order('mb_' || m, 'MB-' || m || '-' || k, 1000, 'USD',
                                        gateway => CASE k WHEN 'gw' THEN 'mb_gw' END)).id
  FROM (VALUES ('a'), ('b')) ms(m), (VALUES ('paid'), ('pending'), ('gw'), ('spare')) ks(k);
SELECT count(*) AS paid FROM mb_orders, pay.mark_paid(id, 'mb-' || label, 1000, 'USD') WHERE label LIKE '%\_paid';
SELECT count(*) AS refunds FROM mb_orders WHERE label LIKE '%\_paid' AND pay.refund(id, 100) > 0;
SELECT max(id) FILTER (WHERE label = 'a_paid') AS a_paid, max(id) FILTER (WHERE label = 'b_paid') AS b_paid,
       max(id) FILTER (WHERE label = 'a_pending') AS a_pending, max(id) FILTER (WHERE label = 'b_pending') AS b_pending,
       max(id) FILTER (WHERE label = 'a_gw') AS a_gw, max(id) FILTER (WHERE label = 'b_gw') AS b_gw,
       max(id) FILTER (WHERE label = 'b_spare') AS b_spare
  FROM mb_orders \gset

-- only pay_admin binds
SET ROLE pay_app;
SELECT pg_temp.err($$SELECT pay.bind_merchant_role('pay_app', 'mb_a')$$) AS app_binds;
RESET ROLE;
SET ROLE pay_admin;
SELECT pay.bind_merchant_role('mb_app_a', 'mb_a') AS bound_a, pay.bind_merchant_role('mb_app_b', 'mb_b') AS bound_b,
       pay.bind_merchant_role('mb_app_a', 'mb_a') AS bound_again;
SELECT pg_temp.err($$SELECT pay.bind_merchant_role('mb_app_a', 'mb_nobody')$$) AS unknown_merchant;
SELECT pg_temp.err($$SELECT pay.bind_merchant_role('mb_no_such_role', 'mb_a')$$) AS unknown_role;
SELECT pg_temp.err($$SELECT pay.bind_merchant_role(NULL, 'mb_a')$$) AS null_role;
SELECT role, m.code FROM pay.merchant_roles b JOIN pay.merchants m ON m.id = b.merchant_id
 WHERE m.code LIKE 'mb\_%' ORDER BY 1, 2;
RESET ROLE;

-- What each role reads of these merchants' orders, events and refunds.
CREATE FUNCTION pg_temp.seen() RETURNS text LANGUAGE sql AS $$
  SELECT format('orders %s, events %s, refunds %s',
    (SELECT string_agg(DISTINCT left(t.label, 1), ',') FROM pay.orders o JOIN mb_orders t ON t.id = o.id),
    (SELECT string_agg(DISTINCT left(t.label, 1), ',') FROM pay.order_events e JOIN mb_orders t ON t.id = e.order_id),
    (SELECT string_agg(DISTINCT left(t.label, 1), ',') FROM pay.refunds r JOIN mb_orders t ON t.id = r.order_id)) $$;
CREATE FUNCTION pg_temp.seen_as(r text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v text;
BEGIN
  EXECUTE format('SET LOCAL ROLE %I', r);
  v := pg_temp.seen();
  RESET ROLE;
  RETURN v;
END $$;
SELECT r AS role, pg_temp.seen_as(r) AS sees
  FROM (VALUES ('mb_app_a'), ('mb_app_b'), ('mb_clerk_a'), ('mb_platform'), ('pay_app'), ('pay_admin'), ('pay_readonly')) v(r);
SELECT pg_temp.seen() AS superuser_sees;

-- mb_app_a cannot move mb_b's orders: to it they do not exist (as the
-- merchant API answers 404), and nothing changes
SET ROLE mb_app_a;
SELECT pg_temp.err(format($$SELECT pay.ship(%s)$$, :b_paid)) AS ship_b;
SELECT pg_temp.err(format($$SELECT pay.complete(%s)$$, :b_paid)) AS complete_b;
SELECT pg_temp.err(format($$SELECT pay.cancel(%s)$$, :b_pending)) AS cancel_b;
SELECT pg_temp.err(format($$SELECT pay.refund(%s, 100)$$, :b_paid)) AS refund_b;
SELECT pg_temp.err(format($$SELECT pay.pay_with_balance(%s, 'mb:wallet')$$, :b_pending)) AS pay_b;
SELECT pg_temp.err(format($$SELECT pay.enqueue_psp_request(%s, 'close')$$, :b_gw)) AS close_b;
SELECT pg_temp.err($$SELECT pay.create_order('mb_b', 'MB-b-x', 500, 'USD')$$) AS create_b;
SELECT pg_temp.err($$SELECT pay.create_order('mb_b', 'MB-b-x', 500, 'USD', idempotency_key => 'mb-k')$$) AS create_b_key;
SELECT pg_temp.err($$SELECT pay.balance('merchant:mb_b:USD')$$) AS balance_b;
SELECT pay.balance('merchant:mb_a:USD') > 0 AS balance_a;
-- and its own, it can
SELECT status FROM pay.ship(:a_paid);
SELECT pay.refund(:a_paid, 100) > 0 AS refund_a;
SELECT status FROM pay.pay_with_balance(:a_pending, 'mb:wallet');
SELECT pay.enqueue_psp_request(:a_gw, 'close') > 0 AS close_a;
SELECT status FROM pay.create_order('mb_a', 'MB-a-x', 500, 'USD');
RESET ROLE;
SELECT t.label, o.status, o.refunded_amount FROM mb_orders t JOIN pay.orders o ON o.id = t.id ORDER BY 1;
SELECT operation, left(t.label, 1) AS merchant FROM pay.outbox x JOIN mb_orders t ON t.id = x.order_id
 WHERE x.operation = 'close' ORDER BY 1, 2;
SELECT count(*) AS b_created FROM pay.orders WHERE merchant_order_no = 'MB-b-x';

-- a member of a bound role is bound: mb_clerk_a acts for mb_a only
SET ROLE mb_clerk_a;
SELECT pg_temp.err(format($$SELECT pay.cancel(%s)$$, :b_pending)) AS clerk_cancel_b;
SELECT status FROM pay.complete(:a_paid);
RESET ROLE;

-- a bound login cannot shed its binding with SET ROLE to an unbound role it
-- is a member of (pay_app)
SET SESSION AUTHORIZATION mb_clerk_a;
SET ROLE pay_app;
SELECT current_user, pg_temp.seen() AS clerk_as_pay_app_sees;
SELECT pg_temp.err(format($$SELECT pay.cancel(%s)$$, :b_pending)) AS clerk_as_pay_app_cancel_b;
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- an unbound pay_app member moves anyone's orders
SET ROLE mb_platform;
SELECT status FROM pay.cancel(:b_spare);
RESET ROLE;

-- unbinding: mb_app_b, bound to nothing now, is a platform role again
SET ROLE pay_admin;
SELECT pay.unbind_merchant_role('mb_app_b', 'mb_b') AS unbound, pay.unbind_merchant_role('mb_app_b', 'mb_b') AS again;
RESET ROLE;
SELECT pg_temp.seen_as('mb_app_b') AS mb_app_b_sees;

-- leave no binding behind
DELETE FROM pay.merchant_roles;
DROP ROLE mb_clerk_a, mb_app_a, mb_app_b, mb_platform;
