-- Routing: amount bounds, weighted tiers, failover by priority, the rule
-- recorded on the order, pay.route, and add_routing_rule's refusals.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

SELECT pay.create_merchant('rr_shop', 'Routing Shop') > 0 AS merchant,
       pay.create_merchant('rr_other', 'Other Shop') > 0 AS other;
SELECT pay.create_gateway('rr_stripe', 'stripe', 'https://stripe.example') > 0 AS stripe,
       pay.create_gateway('rr_alipay', 'alipay', 'https://alipay.example') > 0 AS alipay,
       pay.create_gateway('rr_w70', 'generic', 'https://w70.example') > 0 AS w70,
       pay.create_gateway('rr_w30', 'generic', 'https://w30.example') > 0 AS w30;

-- 1. bad input: a clear SQLSTATE naming the field, and no rule written
SELECT count(*) AS rules_before FROM pay.routing_rules \gset
SELECT pg_temp.err($$SELECT pay.add_routing_rule('rr_stripe', min_amount => -1)$$) AS negative_min;
SELECT pg_temp.err($$SELECT pay.add_routing_rule('rr_stripe', max_amount => -5)$$) AS negative_max;
SELECT pg_temp.err($$SELECT pay.add_routing_rule('rr_stripe', min_amount => 500, max_amount => 499)$$) AS crossed;
SELECT pg_temp.err($$SELECT pay.add_routing_rule('rr_stripe', weight => 0)$$) AS weight_zero;
SELECT pg_temp.err($$SELECT pay.add_routing_rule('rr_stripe', weight => -3)$$) AS weight_negative;
SELECT pg_temp.err($$SELECT pay.add_routing_rule('rr_stripe', weight => NULL)$$) AS weight_null;
SELECT pg_temp.err($$SELECT pay.add_routing_rule('rr_nope')$$) AS unknown_gateway;
SELECT pg_temp.err($$SELECT pay.add_routing_rule('rr_stripe', 'rr_nope')$$) AS unknown_merchant;
SELECT pg_temp.err($$SELECT pay.add_routing_rule('rr_stripe', currency => 'XXQ')$$) AS unknown_currency;
SELECT count(*) - :rules_before AS rules_written FROM pay.routing_rules;
-- equal bounds are one amount; four positional arguments still work
SELECT pay.add_routing_rule('rr_stripe', 'rr_other', 'EUR', 5) > 0 AS positional_four;
SELECT min_amount, max_amount, weight, priority FROM pay.routing_rules ORDER BY id DESC LIMIT 1;

-- 2. an amount split: over 1000.00 CNY to Stripe, up to 1000.00 to Alipay
--    (priority 50: ahead of the catch-all rules other tests leave at 100)
SELECT pay.add_routing_rule('rr_stripe', 'rr_shop', 'CNY', 50, min_amount => 100001) AS stripe_rule \gset
SELECT pay.add_routing_rule('rr_alipay', 'rr_shop', 'CNY', 50, max_amount => 100000) AS alipay_rule \gset
SELECT o.amount, o.gateway, o.routing_rule_id = :stripe_rule AS by_stripe_rule,
       o.routing_rule_id = :alipay_rule AS by_alipay_rule
  FROM (VALUES (1), (100000), (100001), (5000000)) v(amount),
       LATERAL pay.create_order('rr_shop', 'RR-' || v.amount, v.amount, 'CNY') o
 ORDER BY o.amount;
SELECT pay.route('rr_shop', 100000, 'CNY') AS route_100000, pay.route('rr_shop', 100001, 'CNY') AS route_100001;
-- no rule for this currency (or another merchant): no gateway, no rule
SELECT gateway IS NULL AS no_gateway, routing_rule_id IS NULL AS no_rule
  FROM pay.create_order('rr_shop', 'RR-USD', 100, 'USD');
SELECT pay.route('rr_other', 100, 'CNY') IS DISTINCT FROM 'rr_alipay' AS not_by_rr_shop_rules;
-- a gateway asked for: no rule recorded
SELECT gateway, routing_rule_id IS NULL AS no_rule
  FROM pay.create_order('rr_shop', 'RR-ASK', 100, 'CNY', gateway => 'rr_stripe');
-- pay.route's refusals
SELECT pg_temp.err($$SELECT pay.route('rr_nope', 100, 'CNY')$$) AS route_unknown_merchant;
SELECT pg_temp.err($$SELECT pay.route('rr_shop', 100, 'XXQ')$$) AS route_unknown_currency;
SELECT pg_temp.err($$SELECT pay.route('rr_shop', 0, 'CNY')$$) AS route_zero_amount;

-- 3. failover (GBP): Stripe first, rr_w30 next; the Stripe circuit open
--    sends orders to the next priority
SELECT pay.add_routing_rule('rr_stripe', 'rr_shop', 'GBP', 10) AS gbp_stripe_rule \gset
SELECT pay.add_routing_rule('rr_w30', 'rr_shop', 'GBP', 20) AS backup_rule \gset
SELECT gateway, routing_rule_id = :gbp_stripe_rule AS by_stripe_rule
  FROM pay.create_order('rr_shop', 'RR-CLOSED', 200000, 'GBP');
INSERT INTO pay.circuit_breakers (destination, state, consecutive_failures, opened_at, open_until)
VALUES ('gateway:rr_stripe', 'open', 5, now(), now() + interval '1 minute');
SELECT gateway, routing_rule_id = :backup_rule AS by_backup_rule
  FROM pay.create_order('rr_shop', 'RR-FAILOVER', 200000, 'GBP');
SELECT pay.route('rr_shop', 200000, 'GBP') AS route_failover;
-- the circuit past its cool-down (half-open) is available again
UPDATE pay.circuit_breakers SET open_until = now() - interval '1 second' WHERE destination = 'gateway:rr_stripe';
SELECT pay.route('rr_shop', 200000, 'GBP') AS route_cooled_down;
UPDATE pay.circuit_breakers SET open_until = now() + interval '1 minute' WHERE destination = 'gateway:rr_stripe';
SELECT pay.route('rr_shop', 200000, 'GBP') AS route_open_again;
-- a merchant endpoint's circuit is not a gateway's
INSERT INTO pay.circuit_breakers (destination, state, consecutive_failures, opened_at, open_until)
VALUES ('merchant:rr_w30', 'open', 5, now(), now() + interval '1 minute');
SELECT pay.route('rr_shop', 200000, 'GBP') AS route_merchant_circuit;
-- every matching circuit open: the first enabled match, waiting for its circuit
INSERT INTO pay.circuit_breakers (destination, state, consecutive_failures, opened_at, open_until)
VALUES ('gateway:rr_w30', 'open', 5, now(), now() + interval '1 minute');
SELECT gateway, routing_rule_id = :gbp_stripe_rule AS by_stripe_rule
  FROM pay.create_order('rr_shop', 'RR-ALLOPEN', 200000, 'GBP');
DELETE FROM pay.circuit_breakers WHERE destination IN ('gateway:rr_stripe', 'gateway:rr_w30', 'merchant:rr_w30');
SELECT pay.route('rr_shop', 200000, 'GBP') AS route_all_closed;
-- a disabled gateway is skipped like an unavailable one
UPDATE pay.gateways SET enabled = false WHERE name = 'rr_stripe';
SELECT gateway FROM pay.create_order('rr_shop', 'RR-DISABLED', 200000, 'GBP');
UPDATE pay.gateways SET enabled = true WHERE name = 'rr_stripe';

-- 4. a weighted tier: 70/30 by (merchant, order number), the same on retry
SELECT pay.add_routing_rule('rr_w70', 'rr_shop', 'JPY', priority => 10, weight => 70) AS w70_rule \gset
SELECT pay.add_routing_rule('rr_w30', 'rr_shop', 'JPY', priority => 10, weight => 30) AS w30_rule \gset
SELECT pay.route('rr_shop', 100, 'JPY') AS heaviest;
CREATE TEMP TABLE split AS
  SELECT o.gateway, o.routing_rule_id, o.merchant_order_no
    FROM generate_series(1, 10000) i, LATERAL pay.create_order('rr_shop', 'W-' || i, 100, 'JPY') o;
SELECT gateway, count(*) BETWEEN 6800 AND 7200 AS near_70, count(*) BETWEEN 2800 AND 3200 AS near_30
  FROM split GROUP BY gateway ORDER BY gateway;
SELECT count(*) AS rule_gateway_disagree FROM split s
  JOIN pay.routing_rules r ON r.id = s.routing_rule_id JOIN pay.gateways g ON g.id = r.gateway_id
 WHERE g.name <> s.gateway;
-- the same (merchant, order number) lands on the same gateway: a retried
-- create with an idempotency key, and the routing itself
SELECT count(*) AS moved FROM split s
 WHERE (SELECT r.gateway FROM pay._route(NULL, pay._merchant_id('rr_shop'), 'JPY', 100, s.merchant_order_no) r)
       <> s.gateway;
SELECT (SELECT gateway FROM pay.create_order('rr_shop', 'W-KEY', 100, 'JPY', idempotency_key => 'k1'))
     = (SELECT gateway FROM pay.create_order('rr_shop', 'W-KEY', 100, 'JPY', idempotency_key => 'k1')) AS retry_same;
-- one of the tier unavailable: the rest of the tier takes everything
INSERT INTO pay.circuit_breakers (destination, state, consecutive_failures, opened_at, open_until)
VALUES ('gateway:rr_w70', 'open', 5, now(), now() + interval '1 minute');
SELECT count(DISTINCT o.gateway) AS gateways, min(o.gateway) AS gateway
  FROM generate_series(1, 50) i, LATERAL pay.create_order('rr_shop', 'W-OPEN-' || i, 100, 'JPY') o;
SELECT pay.route('rr_shop', 100, 'JPY') AS heaviest_available;
DELETE FROM pay.circuit_breakers WHERE destination = 'gateway:rr_w70';
-- a rule change shows in the next decision (the per-backend cache is dropped)
UPDATE pay.routing_rules SET weight = 1 WHERE id = :w70_rule;
SELECT pay.route('rr_shop', 100, 'JPY') AS heaviest_after_change;

-- 5. re-routing is a setting per rule, off by default (the dispatcher acts
--    on it: test/t/057_dispatcher_reroute.pl)
SELECT reroute AS default_reroute FROM pay.routing_rules WHERE id = :w70_rule;
SELECT pay.set_routing_rule_reroute(:w70_rule, true);
SELECT reroute AS reroute_on FROM pay.routing_rules WHERE id = :w70_rule;
SELECT pg_temp.err($$SELECT pay.set_routing_rule_reroute(-1, true)$$) AS unknown_rule;
SELECT pg_temp.err(format($$SELECT pay.set_routing_rule_reroute(%s, NULL)$$, :w70_rule)) AS null_setting;
