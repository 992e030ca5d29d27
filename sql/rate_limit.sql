-- Rate limits: set_rate_limit's refusals, a token bucket per merchant
-- (PY029 with the seconds to wait in DETAIL, nothing written), idempotent
-- replays free, other merchants unaffected, removal.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN SQLSTATE = 'PY029' THEN ' / detail is seconds: ' || (d ~ '^[1-9][0-9]*$') ELSE '' END;
END $$;

SELECT pay.create_merchant('rl_shop', 'Limited Shop') > 0 AS merchant,
       pay.create_merchant('rl_free', 'Free Shop') > 0 AS free;

-- 1. bad input: 22023 naming the field, nothing written
SELECT pg_temp.err($$SELECT pay.set_rate_limit('rl_shop', 0, 10)$$) AS zero_rate;
SELECT pg_temp.err($$SELECT pay.set_rate_limit('rl_shop', -1, 10)$$) AS negative_rate;
SELECT pg_temp.err($$SELECT pay.set_rate_limit('rl_shop', 5, 0)$$) AS zero_burst;
SELECT pg_temp.err($$SELECT pay.set_rate_limit('rl_shop', 5, NULL)$$) AS null_burst;
SELECT pg_temp.err($$SELECT pay.set_rate_limit('rl_nope', 5, 10)$$) AS unknown_merchant;
SELECT count(*) AS limits_written FROM pay.rate_limits;

-- 2. a bucket of 2 that refills once in 1000 s: two orders, then PY029
SELECT pay.set_rate_limit('rl_shop', 0.001, 2);
SELECT per_second, burst FROM pay.rate_limits;
SELECT status FROM pay.create_order('rl_shop', 'RL-1', 100, 'USD', idempotency_key => 'rl-k1');
SELECT status FROM pay.create_order('rl_shop', 'RL-2', 100, 'USD');
SELECT count(*) AS orders_before FROM pay.orders \gset
SELECT count(*) AS keys_before FROM pay.idempotency_keys \gset
SELECT substring(pay.metrics() FROM '\npay_rate_limited_total (\d+)')::bigint AS limited_before \gset
SELECT pg_temp.err($$SELECT pay.create_order('rl_shop', 'RL-3', 100, 'USD', idempotency_key => 'rl-k3')$$) AS over_limit;
-- counted in pay.metrics(), although the refusal rolled back
SELECT substring(pay.metrics() FROM '\npay_rate_limited_total (\d+)')::bigint - :limited_before AS counted_as_limited;
SELECT count(*) - :orders_before AS orders_written FROM pay.orders;
SELECT count(*) - :keys_before AS keys_written FROM pay.idempotency_keys;
-- the arguments are checked first: a bad argument is its own error
SELECT pg_temp.err($$SELECT pay.create_order('rl_shop', 'RL-4', -1, 'USD')$$) AS bad_amount_first;
-- a replay of an idempotent create returns the order and costs no token
SELECT merchant_order_no AS replayed FROM pay.create_order('rl_shop', 'RL-1', 100, 'USD', idempotency_key => 'rl-k1');
-- another merchant is not limited
SELECT count(*) AS free_orders
  FROM generate_series(1, 20) i, LATERAL pay.create_order('rl_free', 'RF-' || i, 100, 'USD') o;

-- 3. a change applies at once, as a new limit with a full bucket; the
--    same limit set again changes nothing; removing it lets orders through
SELECT pay.set_rate_limit('rl_shop', 0.001, 3);
SELECT count(*) AS taken
  FROM generate_series(1, 3) i, LATERAL pay.create_order('rl_shop', 'RL-5-' || i, 100, 'USD') o;
SELECT pay.set_rate_limit('rl_shop', 0.001, 3);
SELECT pg_temp.err($$SELECT pay.create_order('rl_shop', 'RL-5', 100, 'USD')$$) AS still_empty;
SELECT pay.set_rate_limit('rl_shop', NULL, NULL);
SELECT count(*) AS limits_left FROM pay.rate_limits;
SELECT status AS unlimited FROM pay.create_order('rl_shop', 'RL-6', 100, 'USD');
-- a fast refill: 5 per second lets the next order through after a pause
SELECT pay.set_rate_limit('rl_shop', 5, 1);
SELECT status FROM pay.create_order('rl_shop', 'RL-7', 100, 'USD');
SELECT pg_temp.err($$SELECT pay.create_order('rl_shop', 'RL-7b', 100, 'USD')$$) AS at_once;
SELECT pg_sleep(0.3);
SELECT status FROM pay.create_order('rl_shop', 'RL-8', 100, 'USD');
SELECT pay.set_rate_limit('rl_shop', NULL, 1);
