-- Checkout: create_order queues the PSP's create request; pay.next_action
-- and pay.wait_next_action read the PSP's answer (the wake-up from another
-- session's commit is test/t/012_merchant_api.pl's).
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9]+', 'N', 'g'); END $$;

SELECT pay.create_merchant('na_a', 'Next Action A') > 0 AS a, pay.create_merchant('na_b', 'Next Action B') > 0 AS b;
SELECT pay.create_gateway('na_gen', 'generic', 'https://psp.example/na') > 0 AS generic,
       pay.create_gateway('na_nourl', 'generic') > 0 AS generic_without_url,
       pay.create_gateway('na_st', 'stripe') > 0 AS stripe,
       pay.create_gateway('na_ali', 'alipay') > 0 AS alipay,
       pay.create_gateway('na_wx', 'wechatpay') > 0 AS wechatpay,
       pay.create_gateway('na_pp', 'paypal') > 0 AS paypal;

-- one order per gateway (and one without): which got a create request
CREATE TEMP TABLE na_orders AS
SELECT g AS gateway, (pay.create_order('na_a', 'NA-' || coalesce(g, 'wallet'), 1000, 'USD', gateway => g)).id
  FROM unnest(ARRAY['na_gen', 'na_nourl', 'na_st', 'na_ali', 'na_wx', 'na_pp', NULL]) g;
SELECT coalesce(n.gateway, '(none)') AS gateway, x.operation, x.state, x.destination,
       x.idempotency_key = 'psp_' || n.id || '_create_payment' AS key_of_enqueue_psp_request
  FROM na_orders n LEFT JOIN pay.outbox x ON x.order_id = n.id
 ORDER BY n.id;
-- enqueuing the same request by hand returns the row already queued
SELECT pay.enqueue_psp_request(n.id, 'create_payment') = x.id AS same_row
  FROM na_orders n JOIN pay.outbox x ON x.order_id = n.id WHERE n.gateway = 'na_gen';
-- an idempotent replay queues nothing new
SELECT (pay.create_order('na_a', 'NA-K', 1000, 'USD', 'na-key', gateway => 'na_gen')).id AS k \gset
SELECT (pay.create_order('na_a', 'NA-K', 1000, 'USD', 'na-key', gateway => 'na_gen')).id = :k AS replayed,
       (SELECT count(*) FROM pay.outbox WHERE order_id = :k) AS requests;
-- a refused create writes nothing: no order, no request
SELECT pg_temp.err($$SELECT pay.create_order('na_a', 'NA-K', 999, 'USD', 'na-key', gateway => 'na_gen')$$) AS other_params;
SELECT count(*) AS requests FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id WHERE o.merchant_id = pay._merchant_id('na_a');

-- no answer yet
SELECT id AS o1 FROM na_orders WHERE gateway = 'na_gen' \gset
SELECT pay.next_action(:o1) IS NULL AS no_answer_yet;
-- the wait ends at the timeout with NULL
SELECT clock_timestamp() AS t0 \gset
SELECT pay.wait_next_action(:o1, '300 ms') IS NULL AS timed_out;
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '300 ms' AS waited_the_timeout,
       clock_timestamp() - :'t0'::timestamptz < interval '5 s' AS not_longer;
SELECT pay.wait_next_action(:o1, '0') IS NULL AS zero_timeout;

-- the PSP answered (the dispatcher stores it): returned at once
UPDATE pay.orders SET next_action = '{"type": "redirect", "url": "https://psp.example/pay/1"}' WHERE id = :o1;
SELECT clock_timestamp() AS t0 \gset
SELECT pay.next_action(:o1), pay.wait_next_action(:o1, '10 min');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '5 s' AS at_once;

-- an order no longer pending: at once, its next_action as stored (NULL here)
SELECT id AS o2 FROM na_orders WHERE gateway = 'na_st' \gset
SELECT status FROM pay.cancel(:o2);
SELECT clock_timestamp() AS t0 \gset
SELECT pay.wait_next_action(:o2, '10 min') IS NULL AS stored_null;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '5 s' AS at_once;

-- bad arguments: 22023 naming them
SELECT pg_temp.err(format($$SELECT pay.wait_next_action(%s, '-1 s')$$, :o1)) AS negative;
SELECT pg_temp.err(format($$SELECT pay.wait_next_action(%s, '10 min 1 s')$$, :o1)) AS too_long;
SELECT pg_temp.err(format($$SELECT pay.wait_next_action(%s, '1 mon')$$, :o1)) AS months;
SELECT pg_temp.err(format($$SELECT pay.wait_next_action(%s, NULL)$$, :o1)) AS null_timeout;
SELECT pg_temp.err($$SELECT pay.wait_next_action(NULL, '1 s')$$) AS null_order;
SELECT pg_temp.err($$SELECT pay.wait_next_action(-5, '1 s')$$) AS unknown_order;
SELECT pg_temp.err($$SELECT pay.next_action(-5)$$) AS unknown_order;

-- statement_timeout (an interrupt) ends the wait
SELECT id AS o3 FROM na_orders WHERE gateway = 'na_ali' \gset
SET statement_timeout = '200ms';
SELECT pay.wait_next_action(:o3, '10 min');
RESET statement_timeout;

-- merchant binding: to a role bound to another merchant the order does not exist
CREATE ROLE na_app_b NOLOGIN IN ROLE pay_app;
CREATE ROLE na_app_a NOLOGIN IN ROLE pay_app;
SET ROLE pay_admin;
SELECT pay.bind_merchant_role('na_app_b', 'na_b') AS bound_b, pay.bind_merchant_role('na_app_a', 'na_a') AS bound_a;
RESET ROLE;
SET ROLE na_app_b;
SELECT pg_temp.err(format($$SELECT pay.next_action(%s)$$, :o1)) AS other_merchant;
SELECT pg_temp.err(format($$SELECT pay.wait_next_action(%s, '1 s')$$, :o1)) AS other_merchant;
RESET ROLE;
SET ROLE na_app_a;
SELECT pay.next_action(:o1)->>'type' AS own, pay.wait_next_action(:o1, '1 s')->>'type' AS own_wait;
RESET ROLE;
SET ROLE pay_admin;
SELECT pay.unbind_merchant_role('na_app_b', 'na_b') AS unbound_b, pay.unbind_merchant_role('na_app_a', 'na_a') AS unbound_a;
RESET ROLE;
DROP ROLE na_app_a, na_app_b;
