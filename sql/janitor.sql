-- The janitor (src/sql/82_janitor.sql) and the close of expired orders at
-- the PSP (src/sql/82_expiry_close.sql): which outbox rows they queue.  The
-- dispatcher does not serve this database; what it would have done to a
-- row (sent it, seen it die) is written here by hand.  Delivery and the
-- answers are test/t/074_janitor.pl's.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
-- ids depend on the files run before this one: N stands for any number
CREATE FUNCTION pg_temp.n(t text) RETURNS text LANGUAGE sql AS $$ SELECT regexp_replace(t, '[0-9]+', 'N', 'g') $$;
-- an order of jn_shop at a gateway, created `age` ago
CREATE FUNCTION pg_temp.order_at(p_no text, p_gateway text, p_age interval, p_amount bigint DEFAULT 1000)
RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency, gateway, expires_at, created_at)
  SELECT m.id, p_no, p_amount, 'CNY', p_gateway, now() + interval '1 hour', now() - p_age
    FROM pay.merchants m WHERE m.code = 'jn_shop'
  RETURNING id $$;
-- what the dispatcher does to a row: sends it (answered), or it dies
CREATE FUNCTION pg_temp.sent(p_id bigint, p_ago interval DEFAULT '0') RETURNS void LANGUAGE sql AS $$
  UPDATE pay.outbox SET state = 'done', attempts = attempts + 1, last_status = 200,
         last_attempt_at = now() - p_ago, finished_at = now() - p_ago WHERE id = p_id $$;
CREATE FUNCTION pg_temp.died(p_id bigint, p_status integer, p_ago interval) RETURNS void LANGUAGE sql AS $$
  UPDATE pay.outbox SET state = 'dead', attempts = attempts + 1, last_status = p_status,
         last_error = coalesce('HTTP ' || p_status, 'Timeout was reached'),
         last_attempt_at = now() - p_ago, finished_at = now() - p_ago WHERE id = p_id $$;
-- the janitor's queries so far
CREATE FUNCTION pg_temp.queries() RETURNS TABLE (order_no text, operation text, params text, key text, state text)
LANGUAGE sql AS $$
  SELECT o.merchant_order_no, x.operation, pg_temp.n(x.params::text),
         pg_temp.n(regexp_replace(x.idempotency_key, '_janitor_[0-9]+$', '_janitor_<period>')), x.state
    FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id
   WHERE x.idempotency_key LIKE '%janitor%' AND o.merchant_order_no LIKE 'JN-%'
   ORDER BY x.id $$;

-- the pending orders of the tests before this one are young for the length of this one
UPDATE pay.orders SET created_at = now() WHERE status = 'pending';
SELECT count(*) AS dead_requests_before FROM pay.outbox WHERE state = 'dead';
SELECT pay.create_merchant('jn_shop', 'Janitor Shop') > 0 AS merchant;
SELECT pay.create_gateway(g, k, 'https://psp.example') > 0 AS gateway FROM (VALUES
  ('jn_alipay', 'alipay'), ('jn_wechat', 'wechatpay'), ('jn_stripe', 'stripe'), ('jn_adyen', 'adyen'),
  ('jn_paypal', 'paypal')) v(g, k);

-- 1. arguments
SELECT pg_temp.err($$SELECT pay.run_janitor(NULL)$$) AS older_than_null;
SELECT pg_temp.err($$SELECT pay.run_janitor('-1 minute')$$) AS older_than_negative;
SELECT pg_temp.err($$SELECT pay.run_janitor('0')$$) AS older_than_zero;
SELECT pg_temp.err($$SELECT pay.run_janitor('5 minutes', 0)$$) AS max_orders_zero;
SELECT pg_temp.err($$SELECT pay.run_janitor('5 minutes', NULL)$$) AS max_orders_null;
SELECT pg_temp.err($$SELECT pay.run_janitor('5 minutes', 100001)$$) AS max_orders_too_many;
SELECT count(*) AS nothing_written FROM pay.outbox WHERE idempotency_key LIKE '%janitor%';

-- 2. pending orders: asked about once they are older than older_than and
-- their create request has gone out; not the young, the paid, the
-- unrouted; one query each per period
SELECT pg_temp.order_at('JN-old', 'jn_alipay', '10 minutes') AS old \gset
SELECT pg_temp.order_at('JN-young', 'jn_alipay', '3 minutes') AS young \gset
SELECT pg_temp.order_at('JN-paid', 'jn_wechat', '10 minutes') AS paid \gset
SELECT status FROM pay.mark_paid(:paid, 'wx-jn-paid', 1000, 'CNY');
SELECT pg_temp.order_at('JN-unrouted', NULL, '10 minutes') AS unrouted \gset
-- (Adyen has no payment query: the janitor asks it nothing; PayPal it asks)
SELECT pg_temp.order_at('JN-adyen', 'jn_adyen', '10 minutes') AS adyen \gset
SELECT pg_temp.order_at('JN-paypal', 'jn_paypal', '10 minutes') AS paypal \gset
SELECT pg_temp.order_at('JN-unsent', 'jn_stripe', '10 minutes') AS unsent \gset
SELECT pay.enqueue_psp_request(:unsent, 'create_payment') AS unsent_create \gset
SELECT pg_temp.order_at('JN-answered', 'jn_wechat', '10 minutes') AS answered \gset
SELECT pg_temp.sent(pay.enqueue_psp_request(:answered, 'create_payment'));
SELECT pay.run_janitor() AS queued;
SELECT * FROM pg_temp.queries();
SELECT destination, trace_id IS NOT DISTINCT FROM (SELECT trace_id FROM pay.orders WHERE id = :old) AS order_trace
  FROM pay.outbox WHERE order_id = :old AND operation = 'query';
-- while the query is pending or in flight, no second one, whatever the period
SELECT pay.run_janitor() AS again_while_pending;
-- (a shorter older_than: the young order is due now, the others get no second query)
SELECT pay.run_janitor('2 minutes') AS other_period_while_pending;
SELECT order_no, count(*) AS queries FROM pg_temp.queries() GROUP BY 1 ORDER BY 1;
UPDATE pay.outbox SET state = 'in_flight', claimed_at = now(), attempts = 1
 WHERE order_id = :old AND operation = 'query';
SELECT pay.run_janitor('2 minutes') AS other_period_while_in_flight;
-- answered, the order still pending: not again in the same period (the key
-- is taken), again in a later one
UPDATE pay.outbox SET state = 'done', claimed_at = NULL, last_status = 200, last_attempt_at = now(), finished_at = now()
 WHERE order_id IN (:old, :answered) AND operation = 'query';
SELECT pay.run_janitor() AS same_period_answered;
UPDATE pay.outbox SET idempotency_key = idempotency_key || '_earlier' WHERE order_id = :old AND operation = 'query';
SELECT pay.run_janitor() AS later_period;
SELECT order_no, count(*) AS queries FROM pg_temp.queries() GROUP BY 1 ORDER BY 1;
-- the create request went out: the order is asked about
SELECT pg_temp.sent(:unsent_create);
SELECT pay.run_janitor() AS create_sent;
SELECT * FROM pg_temp.queries() WHERE order_no = 'JN-unsent';

-- 3. max_orders bounds a run
SELECT count(pg_temp.order_at('JN-max-' || i, 'jn_alipay', '20 minutes')) AS three FROM generate_series(1, 3) i;
SELECT pay.run_janitor(max_orders => 2) AS first_two;
SELECT pay.run_janitor(max_orders => 2) AS the_third;
SELECT pay.run_janitor(max_orders => 2) AS none_left;

-- 4. requests that died: a create_payment without an answer (timeout, 5xx)
-- or a close refused or lost, of an order no longer pending, once their
-- last attempt is older than older_than; not a create the PSP refused
-- (4xx), not one that died just now; and no more once a query sent after
-- it was answered
CREATE FUNCTION pg_temp.cancelled_with(p_no text, p_operation text, p_status integer, p_ago interval)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_id bigint := pg_temp.order_at(p_no, 'jn_alipay', '1 day');
BEGIN
  IF p_operation = 'close' THEN
    PERFORM pg_temp.sent(pay.enqueue_psp_request(v_id, 'create_payment'), '1 day');
    UPDATE pay.orders SET status = 'cancelled' WHERE id = v_id;
    PERFORM pg_temp.died(pay.enqueue_psp_request(v_id, 'close'), p_status, p_ago);
  ELSE
    PERFORM pg_temp.died(pay.enqueue_psp_request(v_id, 'create_payment'), p_status, p_ago);
    UPDATE pay.orders SET status = 'cancelled' WHERE id = v_id;
  END IF;
  RETURN v_id;
END $$;
SELECT pg_temp.cancelled_with('JN-create-timeout', 'create_payment', NULL, '10 minutes') AS create_timeout \gset
SELECT pg_temp.cancelled_with('JN-create-503', 'create_payment', 503, '10 minutes') > 0 AS create_503;
SELECT pg_temp.cancelled_with('JN-create-400', 'create_payment', 400, '10 minutes') > 0 AS create_400;
SELECT pg_temp.cancelled_with('JN-create-recent', 'create_payment', NULL, '1 minute') > 0 AS create_recent;
SELECT pg_temp.cancelled_with('JN-close-refused', 'close', 200, '10 minutes') > 0 AS close_refused;
SELECT pg_temp.cancelled_with('JN-close-timeout', 'close', NULL, '10 minutes') > 0 AS close_timeout;
SELECT pay.run_janitor() AS dead_requests;
SELECT * FROM pg_temp.queries() WHERE order_no LIKE 'JN-c%';
-- a query answered after the request died: its outcome is known, even in a later period
SELECT pg_temp.sent(id) FROM pay.outbox WHERE order_id = :create_timeout AND operation = 'query';
UPDATE pay.outbox SET idempotency_key = idempotency_key || '_earlier'
 WHERE order_id = :create_timeout AND operation = 'query';
-- (the others' queries died too: they are asked about again next period)
SELECT pg_temp.died(x.id, NULL, '10 minutes') FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id
 WHERE o.merchant_order_no IN ('JN-create-503', 'JN-close-refused', 'JN-close-timeout') AND x.operation = 'query';
UPDATE pay.outbox x SET idempotency_key = idempotency_key || '_earlier' FROM pay.orders o
 WHERE o.id = x.order_id AND o.merchant_order_no IN ('JN-create-503', 'JN-close-refused', 'JN-close-timeout')
   AND x.operation = 'query';
SELECT pay.run_janitor() AS after_answers;
SELECT order_no, count(*) AS queries FROM pg_temp.queries() WHERE order_no LIKE 'JN-c%' GROUP BY 1 ORDER BY 1;
-- a query the PSP refused for good ("no such trade": a 404) is an answer too;
-- one that died without an answer is not
SELECT pg_temp.died(x.id, CASE o.merchant_order_no WHEN 'JN-create-503' THEN 404 END, '10 minutes')
  FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id
 WHERE o.merchant_order_no IN ('JN-create-503', 'JN-close-timeout') AND x.operation = 'query' AND x.state = 'pending';
UPDATE pay.outbox x SET idempotency_key = idempotency_key || '_earlier2' FROM pay.orders o
 WHERE o.id = x.order_id AND o.merchant_order_no IN ('JN-create-503', 'JN-close-timeout')
   AND x.operation = 'query' AND x.idempotency_key ~ '_janitor_[0-9]+$';
SELECT pay.run_janitor() AS after_refusal;
SELECT * FROM pg_temp.queries() WHERE order_no LIKE 'JN-c%' AND state = 'pending';

-- 5. refunds the PSP has not confirmed: their request died without an
-- answer, or it answered "processing"; a query_refund naming the refund.
-- Not a refund the PSP refused or confirmed, not one whose request is open
-- or was sent just now; none once a query_refund's answer confirmed it
CREATE FUNCTION pg_temp.refunded(p_no text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_id bigint := pg_temp.order_at(p_no, 'jn_wechat', '1 day');
BEGIN
  PERFORM pay.mark_paid(v_id, 'wx-' || p_no, 1000, 'CNY');
  RETURN pay.refund(v_id, 400);
END $$;
CREATE FUNCTION pg_temp.refund_request(p_refund bigint) RETURNS bigint LANGUAGE sql AS $$
  SELECT id FROM pay.outbox WHERE operation = 'refund' AND params->>'refund_id' = p_refund::text $$;
SELECT pg_temp.refunded('JN-refund-timeout') AS r_timeout \gset
SELECT pg_temp.refunded('JN-refund-500') AS r_500 \gset
SELECT pg_temp.refunded('JN-refund-processing') AS r_processing \gset
SELECT pg_temp.refunded('JN-refund-refused') AS r_refused \gset
SELECT pg_temp.refunded('JN-refund-confirmed') AS r_confirmed \gset
SELECT pg_temp.refunded('JN-refund-open') AS r_open \gset
SELECT pg_temp.refunded('JN-refund-recent') AS r_recent \gset
SELECT psp_status, count(*) FROM pay.refunds f JOIN pay.orders o ON o.id = f.order_id
 WHERE o.merchant_order_no LIKE 'JN-refund-%' GROUP BY 1;
SELECT pg_temp.died(pg_temp.refund_request(:r_timeout), NULL, '10 minutes');
SELECT pg_temp.died(pg_temp.refund_request(:r_500), 500, '10 minutes');
SELECT pg_temp.sent(pg_temp.refund_request(:r_processing), '10 minutes');
SELECT pg_temp.died(pg_temp.refund_request(:r_refused), 400, '10 minutes');
UPDATE pay.refunds SET psp_status = 'failed' WHERE id = :r_refused;
SELECT pg_temp.sent(pg_temp.refund_request(:r_confirmed), '10 minutes');
UPDATE pay.refunds SET psp_status = 'succeeded' WHERE id = :r_confirmed;
SELECT pg_temp.died(pg_temp.refund_request(:r_recent), NULL, '1 minute');
SELECT pay.run_janitor() AS refunds;
SELECT * FROM pg_temp.queries() WHERE order_no LIKE 'JN-refund%';
SELECT (params->>'refund_id')::bigint = :r_timeout AS names_the_refund, destination
  FROM pay.outbox WHERE operation = 'query_refund' AND order_id = (SELECT order_id FROM pay.refunds WHERE id = :r_timeout);
SELECT pay.run_janitor() AS refunds_again;
-- next period: the confirmed one is known, the one whose query died is asked again, and
-- the processing one too once its query was sent older_than ago
SELECT pg_temp.sent(id) FROM pay.outbox WHERE operation = 'query_refund' AND params->>'refund_id' = :'r_timeout';
UPDATE pay.refunds SET psp_status = 'succeeded' WHERE id = :r_timeout;
SELECT pg_temp.died(id, 502, '10 minutes') FROM pay.outbox WHERE operation = 'query_refund' AND params->>'refund_id' = :'r_500';
SELECT pg_temp.sent(id) FROM pay.outbox WHERE operation = 'query_refund' AND params->>'refund_id' = :'r_processing';
UPDATE pay.outbox SET idempotency_key = idempotency_key || '_earlier' WHERE operation = 'query_refund';
SELECT pay.run_janitor() AS refunds_next_period;
SELECT pg_temp.sent(id, '10 minutes') FROM pay.outbox
 WHERE operation = 'query_refund' AND params->>'refund_id' = :'r_processing';
SELECT pay.run_janitor() AS processing_asked_again;
-- the PSP refuses that query for good (it knows no such refund): a dead
-- letter for a person, not asked again
SELECT pg_temp.died(id, 404, '10 minutes') FROM pay.outbox
 WHERE operation = 'query_refund' AND params->>'refund_id' = :'r_processing' AND state = 'pending';
UPDATE pay.outbox SET idempotency_key = idempotency_key || '_earlier2'
 WHERE operation = 'query_refund' AND idempotency_key ~ '_janitor_[0-9]+$';
SELECT pay.run_janitor() AS refused_not_asked_again;
SELECT order_no, count(*) AS queries FROM pg_temp.queries() WHERE order_no LIKE 'JN-refund%' GROUP BY 1 ORDER BY 1;

-- 6. who may run it
SET ROLE pay_app;
SELECT pg_temp.err($$SELECT pay.run_janitor()$$) AS app_may_not;
RESET ROLE;
SET ROLE pay_admin;
SELECT pay.run_janitor() AS admin_may;
RESET ROLE;

-- 7. expire_orders closes the trades at the PSP in its transaction:
-- a create that went out gets a close (Stripe without a known intent: a
-- query too); a create never sent is retired and nothing is closed; an
-- order pay never asked a PSP about, or without a gateway, gets nothing
CREATE FUNCTION pg_temp.expiring(p_no text, p_gateway text, p_create text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_id bigint := pg_temp.order_at(p_no, p_gateway, '20 minutes');
BEGIN
  UPDATE pay.orders SET expires_at = now() - interval '1 minute' WHERE id = v_id;
  IF p_create IN ('sent', 'unsent', 'in_flight') THEN
    PERFORM pay.enqueue_psp_request(v_id, 'create_payment');
  END IF;
  IF p_create = 'sent' THEN
    PERFORM pg_temp.sent(id) FROM pay.outbox WHERE order_id = v_id;
  ELSIF p_create = 'in_flight' THEN
    UPDATE pay.outbox SET state = 'in_flight', attempts = 1, claimed_at = now() WHERE order_id = v_id;
  END IF;
  RETURN v_id;
END $$;
-- (earlier tests' due orders expire first)
SELECT pay.expire_orders() >= 0 AS earlier_orders;
SELECT pg_temp.expiring('JN-exp-alipay', 'jn_alipay', 'sent') AS e_alipay \gset
SELECT pg_temp.expiring('JN-exp-wechat', 'jn_wechat', 'in_flight') AS e_wechat \gset
SELECT pg_temp.expiring('JN-exp-stripe', 'jn_stripe', 'sent') AS e_stripe \gset
UPDATE pay.orders SET psp_txn_id = 'pi_jn_exp' WHERE id = :e_stripe;
SELECT pg_temp.expiring('JN-exp-stripe-no-intent', 'jn_stripe', 'sent') AS e_stripe_no_intent \gset
SELECT pg_temp.expiring('JN-exp-unsent', 'jn_alipay', 'unsent') AS e_unsent \gset
SELECT pg_temp.expiring('JN-exp-never-asked', 'jn_wechat', 'none') AS e_never \gset
SELECT pg_temp.expiring('JN-exp-unrouted', NULL, 'none') AS e_unrouted \gset
SELECT pay.expire_orders() AS expired;
SELECT o.merchant_order_no, o.status, x.operation, x.destination, pg_temp.n(x.idempotency_key) AS key, x.state,
       x.last_error
  FROM pay.orders o LEFT JOIN pay.outbox x ON x.order_id = o.id AND x.kind = 'psp_request'
 WHERE o.merchant_order_no LIKE 'JN-exp-%' ORDER BY o.id, x.id;
-- Stripe's close cannot be built before the intent is known (the query's answer stores it)
SELECT pg_temp.n(pg_temp.err(format('SELECT pay._outbox_request(x) FROM pay.outbox x WHERE x.order_id = %s AND x.operation = ''close''',
                          :e_stripe_no_intent))) AS stripe_close_waits_for_the_intent;
-- expiring again changes nothing
SELECT pay.expire_orders() AS expired_again;
SELECT count(*) AS closes FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id
 WHERE o.merchant_order_no LIKE 'JN-exp-%' AND x.operation = 'close';

-- (later tests see none of this file's orders pending nor its requests)
UPDATE pay.orders o SET status = 'cancelled'
  FROM pay.merchants m WHERE m.id = o.merchant_id AND m.code = 'jn_shop' AND o.status = 'pending';
DELETE FROM pay.outbox x USING pay.orders o, pay.merchants m
 WHERE o.id = x.order_id AND m.id = o.merchant_id AND m.code = 'jn_shop';
