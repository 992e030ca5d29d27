-- Orders: creation, idempotency, the state machine, refunds and expiry.
-- order ids depend on the tests before this one: messages show them as N
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'order \d+', 'order N', 'g'); END $$;

SELECT pay.create_merchant('ord_shop', 'Order Shop', 'https://shop.example/notify') > 0 AS merchant;
SELECT pay.create_gateway('ord_stripe', 'stripe', 'https://api.stripe.example') > 0 AS gateway;
SELECT pay.create_gateway('ord_alipay', 'alipay') > 0 AS gateway2;

-- create: pending, routed to the gateway asked for, expiring after expires_in
SELECT merchant_order_no, amount, currency, status, refunded_amount, gateway, psp_txn_id,
       expires_at - created_at AS expires_in, metadata
  FROM pay.create_order('ord_shop', 'O-1', 1999, 'USD', gateway => 'ord_stripe',
                        metadata => '{"cart": [1, 2], "note": "中文"}');
-- routing: no gateway asked for and no rule -> none; a rule for CNY -> that gateway
SELECT gateway IS NULL AS unrouted FROM pay.create_order('ord_shop', 'O-2', 100, 'EUR');
SELECT pay.add_routing_rule('ord_alipay', currency => 'CNY') > 0 AS rule;
SELECT gateway FROM pay.create_order('ord_shop', 'O-3', 100, 'CNY');
-- without an idempotency key, a repeated merchant_order_no is a unique violation
SELECT pg_temp.err($$SELECT pay.create_order('ord_shop', 'O-1', 1999, 'USD')$$) AS duplicate_no;

-- idempotency: same key + same parameters -> the same order, nothing new written
SELECT id AS idem_id FROM pay.create_order('ord_shop', 'O-4', 500, 'USD', 'key-4') \gset
SELECT id = :idem_id AS same_order, status FROM pay.create_order('ord_shop', 'O-4', 500, 'USD', 'key-4');
SELECT count(*) AS orders_o4 FROM pay.orders WHERE merchant_order_no = 'O-4';
-- same key, any parameter different -> PY002
SELECT pg_temp.err($$SELECT pay.create_order('ord_shop', 'O-4', 501, 'USD', 'key-4')$$) AS other_amount;
SELECT pg_temp.err($$SELECT pay.create_order('ord_shop', 'O-4b', 500, 'USD', 'key-4')$$) AS other_order_no;
SELECT pg_temp.err($$SELECT pay.create_order('ord_shop', 'O-4', 500, 'EUR', 'key-4')$$) AS other_currency;
SELECT pg_temp.err($$SELECT pay.create_order('ord_shop', 'O-4', 500, 'USD', 'key-4', metadata => '{"x":1}')$$) AS other_metadata;
-- the key is per merchant: another merchant may use the same key
SELECT pay.create_merchant('ord_other', 'Other Shop') > 0 AS other_merchant;
SELECT id <> :idem_id AS other_merchant_other_order FROM pay.create_order('ord_other', 'O-4', 500, 'USD', 'key-4');
-- purge: keys younger than the retention stay; older ones go
SHOW pay.idempotency_retention;
SELECT pay.idempotency_retention();
SELECT pay.purge_idempotency_keys() AS purged_now;
UPDATE pay.idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'key-4';
SELECT pay.purge_idempotency_keys() AS purged_old;
SELECT count(*) AS keys_left FROM pay.idempotency_keys WHERE key = 'key-4';

-- mark_paid checks amount and currency, books the ledger, and is idempotent per psp_txn_id
SELECT id AS o1 FROM pay.orders WHERE merchant_order_no = 'O-1' \gset
SELECT pg_temp.err(format($$SELECT pay.mark_paid(%s, 'ch_1', 1998, 'USD')$$, :o1)) AS wrong_amount;
SELECT pg_temp.err(format($$SELECT pay.mark_paid(%s, 'ch_1', 1999, 'EUR')$$, :o1)) AS wrong_currency;
SELECT status, psp_txn_id, paid_at IS NOT NULL AS paid_at_set FROM pay.mark_paid(:o1, 'ch_1', 1999, 'USD');
SELECT status, psp_txn_id FROM pay.mark_paid(:o1, 'ch_1', 1999, 'USD');
SELECT pg_temp.err(format($$SELECT pay.mark_paid(%s, 'ch_other', 1999, 'USD')$$, :o1)) AS second_payment;
SELECT replace(p.ref, :'o1', 'N') AS ref, a.code, e.amount, e.currency
  FROM pay.postings p JOIN pay.entries e ON e.posting_id = p.id JOIN pay.accounts a ON a.id = e.account_id
 WHERE p.order_id = :o1 ORDER BY e.amount;

-- ship, complete; partial refunds; the last one makes the order refunded
SELECT status FROM pay.ship(:o1);
SELECT status FROM pay.complete(:o1);
SELECT pay.refund(:o1, 999, 'damaged') > 0 AS refund1;
SELECT status, refunded_amount FROM pay.orders WHERE id = :o1;
SELECT pg_temp.err(format($$SELECT pay.refund(%s, 1001)$$, :o1)) AS over_refund;
-- a refund idempotency key returns the same refund; another amount with it is PY002
SELECT pay.refund(:o1, 500, 'partial', 'r-1') AS r1 \gset
SELECT pay.refund(:o1, 500, 'partial', 'r-1') = :r1 AS same_refund;
SELECT pg_temp.err(format($$SELECT pay.refund(%s, 400, 'partial', 'r-1')$$, :o1)) AS refund_key_reused;
SELECT pay.refund(:o1, 500) > 0 AS refund3;
SELECT status, refunded_amount FROM pay.orders WHERE id = :o1;
SELECT pg_temp.err(format($$SELECT pay.refund(%s, 1)$$, :o1)) AS refund_after_full;
SELECT count(*) AS refunds, sum(amount) AS refunded FROM pay.refunds WHERE order_id = :o1;
-- the audit trail, written by the C trigger
SELECT from_status, to_status, cause FROM pay.order_events WHERE order_id = :o1 ORDER BY id;
SELECT pay.balance('merchant:ord_shop:USD') AS merchant_usd, pay.balance('psp:ord_stripe:USD') AS stripe_usd;

-- cancel and fail
SELECT id AS o2 FROM pay.orders WHERE merchant_order_no = 'O-2' \gset
SELECT status FROM pay.cancel(:o2, 'customer changed mind');
SELECT cause FROM pay.order_events WHERE order_id = :o2;
SELECT pg_temp.err(format($$SELECT pay.mark_paid(%s, 'ch_late', 100, 'EUR')$$, :o2)) AS paid_after_cancel;
-- a failed payment may still succeed later (PSPs allow a retry)
SELECT id AS o3 FROM pay.orders WHERE merchant_order_no = 'O-3' \gset
UPDATE pay.orders SET status = 'failed', status_cause = 'psp said no' WHERE id = :o3;
SELECT status FROM pay.mark_paid(:o3, 'ali_1', 100, 'CNY');
SELECT from_status, to_status, cause FROM pay.order_events WHERE order_id = :o3 ORDER BY id;
SELECT status_cause IS NULL AS cause_not_stored FROM pay.orders WHERE id = :o3;

-- the money and owner of an order never change
SELECT pg_temp.err(format($$UPDATE pay.orders SET amount = 1 WHERE id = %s$$, :o3)) AS change_amount;
SELECT pg_temp.err(format($$UPDATE pay.orders SET currency = 'EUR' WHERE id = %s$$, :o3)) AS change_currency;
SELECT pg_temp.err(format($$UPDATE pay.orders SET merchant_id = merchant_id + 1 WHERE id = %s$$, :o3)) AS change_merchant;
SELECT pg_temp.err($$INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency, status) VALUES (1, 'X', 1, 'USD', 'paid')$$) AS insert_paid;

-- Every legal and illegal transition, through plain UPDATEs by the table
-- owner (the trigger applies to every role).  Each order is driven to the
-- "from" status along legal edges, then moved to "to".
CREATE FUNCTION pg_temp.try_move(p_from text, p_to text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  v_path text[] := CASE p_from
    WHEN 'pending' THEN '{}'::text[] WHEN 'paid' THEN '{paid}' WHEN 'shipped' THEN '{paid,shipped}'
    WHEN 'completed' THEN '{paid,shipped,completed}' WHEN 'cancelled' THEN '{cancelled}'
    WHEN 'failed' THEN '{failed}' WHEN 'refunded' THEN '{paid,refunded}'
    WHEN 'authorized' THEN '{authorized}' END;
  s text;
  -- the moves of a two-phase order say when it was authorized and what its
  -- capture took, as pay.capture does
  v_set text := 'authorized_at = coalesce(authorized_at, now()), captured_amount = CASE WHEN status = '
                '''authorized'' AND %1$L = ''paid'' THEN amount ELSE captured_amount END, status = %1$L';
BEGIN
  SELECT id INTO v_id FROM pay.create_order('ord_shop', 'T-' || p_from || '-' || p_to, 100, 'USD',
    capture => CASE WHEN p_from = 'authorized' OR (p_to = 'authorized' AND p_from IN ('pending', 'failed'))
                    THEN 'manual' ELSE 'automatic' END);
  FOREACH s IN ARRAY v_path LOOP
    EXECUTE format('UPDATE pay.orders SET ' || v_set || ' WHERE id = %2$s', s, v_id);
  END LOOP;
  RETURN pg_temp.err(format('UPDATE pay.orders SET ' || v_set || ' WHERE id = %2$s', p_to, v_id));
END $$;
SELECT f.status AS from_status, t.status AS to_status,
       pg_temp.try_move(f.status, t.status) AS result,
       EXISTS (SELECT 1 FROM pay.order_transitions x WHERE x.from_status = f.status AND x.to_status = t.status) AS edge
  FROM pay.order_statuses f, pay.order_statuses t
 WHERE f.status <> t.status
 ORDER BY f.status, t.status;
-- the table is the truth: adding an edge takes effect at once (cache invalidated), removing it too
BEGIN;
INSERT INTO pay.order_transitions VALUES ('cancelled', 'pending', 'reopen (test only)');
UPDATE pay.orders SET status = 'pending' WHERE merchant_order_no = 'T-cancelled-pending' RETURNING status AS with_edge;
ROLLBACK;
SELECT pg_temp.err($$UPDATE pay.orders SET status = 'pending' WHERE merchant_order_no = 'T-cancelled-pending'$$) AS edge_gone;
-- replica mode does not switch the trigger off
SET session_replication_role = replica;
SELECT pg_temp.err($$UPDATE pay.orders SET status = 'pending' WHERE merchant_order_no = 'T-cancelled-paid'$$) AS replica_mode;
RESET session_replication_role;

-- expiry: only due pending orders, cost proportional to the due ones
SELECT pay.create_merchant('exp_shop', 'Expiry Shop') > 0 AS exp_merchant;
SELECT count(*) AS created FROM generate_series(1, 5) i,
  LATERAL pay.create_order('exp_shop', 'E-' || i, 100, 'USD', expires_in => i * interval '1 minute');
SELECT pay.expire_orders(now() + interval '150 seconds') AS expired_two;
SELECT pay.expire_orders(now() + interval '150 seconds') AS expired_none_again;
SELECT pay.expire_orders(now() + interval '1 hour', max_orders => 2) AS capped_at_two;
SELECT merchant_order_no, status FROM pay.orders o JOIN pay.merchants m ON m.id = o.merchant_id
 WHERE m.code = 'exp_shop' ORDER BY merchant_order_no;
SELECT DISTINCT cause FROM pay.order_events e JOIN pay.orders o ON o.id = e.order_id
  JOIN pay.merchants m ON m.id = o.merchant_id WHERE m.code = 'exp_shop';
-- the plan reads the partial index of pending orders, not the whole table
SET enable_seqscan = off;  -- a small table would be scanned anyway; show the index is usable
EXPLAIN (COSTS OFF) SELECT id FROM pay.orders WHERE status = 'pending' AND expires_at <= now() ORDER BY expires_at LIMIT 10;

RESET enable_seqscan;

-- the ledger explains every order's money
SELECT count(*) AS mismatches FROM pay.order_ledger_mismatches;
SELECT count(*) AS ledger_problems FROM pay.ledger_problems;
