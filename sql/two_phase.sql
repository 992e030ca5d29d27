-- Two-phase payments: authorize, capture, void, expiry; wallet holds.
-- order ids depend on the tests before this one: messages show them as N
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '(order|account) \d+', '\1 N', 'g'); END $$;
-- the merchant's ledger net of an order
CREATE FUNCTION pg_temp.booked(p_order bigint) RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(e.amount), 0)::bigint FROM pay.postings p JOIN pay.entries e ON e.posting_id = p.id
    JOIN pay.accounts a ON a.id = e.account_id AND a.code LIKE 'merchant:%' WHERE p.order_id = p_order $$;

SELECT pay.create_merchant('tp_shop', 'Two-phase Shop') > 0 AS merchant;
SELECT pay.create_gateway('tp_stripe', 'stripe', 'https://api.stripe.example') > 0 AS stripe;
SELECT pay.create_gateway('tp_stripe3', 'stripe', 'https://stripe.example', '{"authorization_days": 3}') > 0 AS stripe3;
SELECT pay.create_gateway('tp_alipay', 'alipay') > 0 AS alipay;
SELECT pay.create_gateway('tp_generic', 'generic', 'https://psp.example') > 0 AS generic;
SELECT pg_temp.err($$SELECT pay.create_gateway('tp_bad', 'stripe', NULL, '{"authorization_days": 0}')$$) AS bad_days;
SELECT pg_temp.err($$SELECT pay.create_gateway('tp_bad', 'stripe', NULL, '{"authorization_days": "7"}')$$) AS text_days;

-- the status and its edges
SELECT * FROM pay.order_statuses WHERE status = 'authorized';
SELECT from_status, to_status FROM pay.order_transitions
 WHERE 'authorized' IN (from_status, to_status) ORDER BY 1, 2;
SELECT count(*) AS seeded FROM pay.seed_rows
 WHERE row_text LIKE '%authorized%';

-- create_order: capture is validated, refused for gateways that cannot authorize
SELECT pg_temp.err($$SELECT pay.create_order('tp_shop', 'T-bad', 100, 'USD', capture => 'later')$$) AS bad_capture;
SELECT pg_temp.err($$SELECT pay.create_order('tp_shop', 'T-null', 100, 'USD', capture => NULL)$$) AS null_capture;
SELECT pg_temp.err($$SELECT pay.create_order('tp_shop', 'T-ali', 100, 'CNY', gateway => 'tp_alipay', capture => 'manual')$$) AS alipay_manual;
SELECT pg_temp.err($$SELECT pay.create_order('tp_shop', 'T-gen', 100, 'USD', gateway => 'tp_generic', capture => 'manual')$$) AS generic_manual;
SELECT count(*) AS nothing_written FROM pay.orders WHERE merchant_order_no IN ('T-bad', 'T-null', 'T-ali', 'T-gen');
SELECT capture_mode, status FROM pay.create_order('tp_shop', 'T-auto', 100, 'USD');

-- a gateway order: the create request carries the capture mode
SELECT id AS g1 FROM pay.create_order('tp_shop', 'T-g1', 1000, 'USD', gateway => 'tp_stripe', capture => 'manual') \gset
SELECT operation, params FROM pay.outbox WHERE order_id = :g1 ORDER BY id;
SELECT id AS g0 FROM pay.create_order('tp_shop', 'T-g0', 1000, 'USD', gateway => 'tp_stripe') \gset
SELECT params AS automatic_params FROM pay.outbox WHERE order_id = :g0;

-- idempotency: the capture mode is part of the request
SELECT id AS k1 FROM pay.create_order('tp_shop', 'T-k1', 300, 'USD', 'tp-key-1', capture => 'manual') \gset
SELECT id = :k1 AS same_order FROM pay.create_order('tp_shop', 'T-k1', 300, 'USD', 'tp-key-1', capture => 'manual');
SELECT pg_temp.err($$SELECT pay.create_order('tp_shop', 'T-k1', 300, 'USD', 'tp-key-1')$$) AS replay_automatic;
SELECT id AS k2 FROM pay.create_order('tp_shop', 'T-k2', 300, 'USD', 'tp-key-2') \gset
SELECT pg_temp.err($$SELECT pay.create_order('tp_shop', 'T-k2', 300, 'USD', 'tp-key-2', capture => 'manual')$$) AS replay_manual;

-- the PSP confirms: authorized, nothing booked
SELECT status, paid_at IS NULL AS unpaid, authorized_at IS NOT NULL AS authorized,
       authorization_expires_at - authorized_at AS window, captured_amount
  FROM pay.mark_paid(:g1, 'pi_g1', 1000, 'USD');
SELECT status FROM pay.mark_paid(:g1, 'pi_g1', 1000, 'USD');       -- a retry is answered
SELECT pg_temp.booked(:g1) AS booked_authorized;
-- wrong states and amounts
SELECT pg_temp.err(format($$SELECT pay.capture(%s, 0)$$, :g1)) AS zero;
SELECT pg_temp.err(format($$SELECT pay.capture(%s, -5)$$, :g1)) AS negative;
SELECT pg_temp.err(format($$SELECT pay.capture(%s, 1001)$$, :g1)) AS beyond;
SELECT pg_temp.err(format($$SELECT pay.capture(%s)$$, :k2)) AS capture_pending;
SELECT pg_temp.err(format($$SELECT pay.void(%s)$$, :k2)) AS void_pending;
SELECT pg_temp.err(format($$SELECT pay.refund(%s, 10)$$, :g1)) AS refund_authorized;
SELECT pg_temp.err($$SELECT pay.capture(-1)$$) AS no_order;
-- partial capture: paid with what it took, the ledger books it, the PSP is asked
SELECT status, amount, captured_amount, paid_at IS NOT NULL AS paid FROM pay.capture(:g1, 600);
SELECT pg_temp.booked(:g1) AS booked_captured;
SELECT operation, params, idempotency_key ~ '^psp_\d+_capture$' AS key FROM pay.outbox
 WHERE order_id = :g1 AND operation = 'capture';
SELECT pg_temp.err(format($$SELECT pay.capture(%s, 100)$$, :g1)) AS capture_twice;
SELECT pg_temp.err(format($$SELECT pay.void(%s)$$, :g1)) AS void_paid;
-- refunds are bounded by the captured amount; all of it back -> refunded
SELECT pg_temp.err(format($$SELECT pay.refund(%s, 601)$$, :g1)) AS refund_beyond_captured;
SELECT pay.refund(:g1, 400) > 0 AS refund_part;
SELECT status, refunded_amount FROM pay.orders WHERE id = :g1;
SELECT pay.refund(:g1, 200) > 0 AS refund_rest;
SELECT status, refunded_amount FROM pay.orders WHERE id = :g1;
SELECT pg_temp.booked(:g1) AS booked_after_refunds;
SELECT from_status, to_status, cause FROM pay.order_events WHERE order_id = :g1 ORDER BY id;
-- captured_amount is the capture's alone
SELECT pg_temp.err($$UPDATE pay.orders SET captured_amount = 500 WHERE id = $$ || :g1) AS rewrite_captured;
SELECT pg_temp.err($$UPDATE pay.orders SET capture_mode = 'automatic' WHERE id = $$ || :g1) AS rewrite_mode;
-- an automatic order is never authorized
SELECT pg_temp.err($$UPDATE pay.orders SET status = 'authorized', authorized_at = now() WHERE merchant_order_no = 'T-auto'$$) AS auto_authorized;

-- void of a gateway order: cancelled, the PSP void queued, nothing booked
SELECT id AS g2 FROM pay.create_order('tp_shop', 'T-g2', 700, 'USD', gateway => 'tp_stripe3', capture => 'manual') \gset
SELECT authorization_expires_at - authorized_at AS window_3_days FROM pay.mark_paid(:g2, 'psp_g2', 700, 'USD');
SELECT status FROM pay.void(:g2);
SELECT operation, params FROM pay.outbox WHERE order_id = :g2 AND operation = 'void';
SELECT pg_temp.booked(:g2) AS booked_voided;
SELECT pg_temp.err(format($$SELECT pay.void(%s)$$, :g2)) AS void_twice;
SELECT pg_temp.err(format($$SELECT pay.capture(%s)$$, :g2)) AS capture_voided;
-- a PSP callback authorizes; its repetition is answered, not booked as a second payment
SELECT id AS c1 FROM pay.create_order('tp_shop', 'T-c1', 900, 'USD', gateway => 'tp_stripe', capture => 'manual') \gset
SELECT pay._apply_answer_event('tp_stripe',
  jsonb_build_object('kind', 'payment_succeeded', 'order_ref', :c1::text, 'amount', '900', 'currency', 'USD',
                     'psp_txn_id', 'pi_c1'), 'test callback') AS outcome;
SELECT pay._apply_answer_event('tp_stripe',
  jsonb_build_object('kind', 'payment_succeeded', 'order_ref', :c1::text, 'amount', '900', 'currency', 'USD',
                     'psp_txn_id', 'pi_c1'), 'test callback') AS outcome;
SELECT status, pg_temp.booked(:c1) AS booked FROM pay.orders WHERE id = :c1;
SELECT count(*) AS anomalies FROM pay.anomalies WHERE order_id = :c1;

-- full capture without an amount
SELECT id AS g3 FROM pay.create_order('tp_shop', 'T-g3', 800, 'USD', gateway => 'tp_stripe', capture => 'manual') \gset
SELECT status FROM pay.mark_paid(:g3, 'pi_g3', 800, 'USD');
SELECT status, captured_amount FROM pay.capture(:g3);
SELECT pg_temp.booked(:g3) AS booked_full;
SELECT pg_temp.err(format($$UPDATE pay.orders SET captured_amount = 500 WHERE id = %s$$, :g3)) AS recapture;
SELECT pg_temp.err(format($$UPDATE pay.orders SET captured_amount = 900 WHERE id = %s$$, :g3)) AS capture_beyond_amount;
SELECT status FROM pay.ship(:g3);

-- wallet holds
SELECT pay.open_account('wallet:tp-ann', 'USD', true) > 0 AS wallet;
SELECT pay.open_account('tp:bank', 'USD') > 0 AS bank;
SELECT pay.post('tp-topup', '[{"account": "tp:bank", "amount": -1000}, {"account": "wallet:tp-ann", "amount": 1000}]') > 0 AS topup;
SELECT id AS w1 FROM pay.create_order('tp_shop', 'T-w1', 700, 'USD', capture => 'manual') \gset
SELECT status, paid_at IS NULL AS unpaid, authorization_expires_at - authorized_at AS window
  FROM pay.pay_with_balance(:w1, 'wallet:tp-ann');
SELECT pay.balance('wallet:tp-ann') AS balance, pay.available_balance('wallet:tp-ann') AS available;
SELECT pg_temp.booked(:w1) AS booked_held;
SELECT amount, currency FROM pay.holds WHERE order_id = :w1;
-- a second hold or a payment beyond the available balance: PY003, nothing written
SELECT id AS w2 FROM pay.create_order('tp_shop', 'T-w2', 400, 'USD', capture => 'manual') \gset
SELECT pg_temp.err(format($$SELECT pay.pay_with_balance(%s, 'wallet:tp-ann')$$, :w2)) AS hold_short;
SELECT id AS w3 FROM pay.create_order('tp_shop', 'T-w3', 400, 'USD') \gset
SELECT pg_temp.err(format($$SELECT pay.pay_with_balance(%s, 'wallet:tp-ann')$$, :w3)) AS pay_short;
SELECT pg_temp.err(format($$SELECT pay.post('tp-out', '[{"account": "wallet:tp-ann", "amount": -301}, {"account": "tp:bank", "amount": 301}]')$$)) AS post_short;
SELECT status FROM pay.orders WHERE id IN (:w2, :w3) ORDER BY id;
SELECT count(*) AS holds FROM pay.holds WHERE order_id IN (:w2, :w3);
-- within the available balance it works
SELECT pg_temp.err(format($$SELECT pay.post('tp-out', '[{"account": "wallet:tp-ann", "amount": -300}, {"account": "tp:bank", "amount": 300}]')$$)) AS post_within;
SELECT pay.balance('wallet:tp-ann') AS balance, pay.available_balance('wallet:tp-ann') AS available;
-- capture part: books 500, releases the rest of the hold
SELECT status, captured_amount FROM pay.capture(:w1, 500);
SELECT pay.balance('wallet:tp-ann') AS balance, pay.available_balance('wallet:tp-ann') AS available;
SELECT pg_temp.booked(:w1) AS booked_captured;
SELECT r.outcome, r.captured FROM pay.hold_releases r JOIN pay.holds h ON h.id = r.hold_id WHERE h.order_id = :w1;
SELECT count(*) AS wallet_requests FROM pay.outbox WHERE order_id = :w1 AND kind = 'psp_request';
-- refund goes back to the wallet, bounded by the capture
SELECT pg_temp.err(format($$SELECT pay.refund(%s, 501)$$, :w1)) AS wallet_refund_beyond;
SELECT pay.refund(:w1, 500) > 0 AS wallet_refund;
SELECT status FROM pay.orders WHERE id = :w1;
SELECT pay.balance('wallet:tp-ann') AS balance, pay.available_balance('wallet:tp-ann') AS available;
-- void releases all
SELECT status FROM pay.pay_with_balance(:w2, 'wallet:tp-ann');
SELECT pay.available_balance('wallet:tp-ann') AS available_held;
SELECT status FROM pay.void(:w2);
SELECT pay.balance('wallet:tp-ann') AS balance, pay.available_balance('wallet:tp-ann') AS available;
SELECT pg_temp.booked(:w2) AS booked_voided;
-- holds are append-only
SELECT pg_temp.err($$UPDATE pay.holds SET amount = 1$$) AS update_hold;
SELECT pg_temp.err($$DELETE FROM pay.hold_releases$$) AS delete_release;

-- expiry: past its window an authorization is voided (holds released, PSP voids queued)
SELECT id AS e1 FROM pay.create_order('tp_shop', 'T-e1', 200, 'USD', capture => 'manual') \gset
SELECT status FROM pay.pay_with_balance(:e1, 'wallet:tp-ann');
SELECT id AS e2 FROM pay.create_order('tp_shop', 'T-e2', 200, 'USD', gateway => 'tp_stripe', capture => 'manual') \gset
SELECT status FROM pay.mark_paid(:e2, 'pi_e2', 200, 'USD');
SELECT pay.expire_authorizations() AS expired_now;
SELECT pay.expire_authorizations(now() + interval '8 days') AS expired_later;
SELECT o.status, e.cause FROM pay.orders o JOIN pay.order_events e ON e.order_id = o.id AND e.to_status = 'cancelled'
 WHERE o.id IN (:e1, :e2) ORDER BY o.id;
SELECT r.outcome FROM pay.hold_releases r JOIN pay.holds h ON h.id = r.hold_id WHERE h.order_id = :e1;
SELECT operation FROM pay.outbox WHERE order_id = :e2 AND operation = 'void';
SELECT pay.available_balance('wallet:tp-ann') = pay.balance('wallet:tp-ann') AS all_released;
SELECT pg_temp.err($$SELECT pay.expire_authorizations(max_orders => 0)$$) AS bad_max;
SELECT job FROM pay._jobs() WHERE job = 'expire_authorizations';
SELECT pay.run_job('expire_authorizations');

-- merchant binding: another merchant's order does not exist
SELECT pay.create_merchant('tp_other', 'Other') > 0 AS other;
CREATE ROLE tp_app NOLOGIN IN ROLE pay_app;
SELECT pay.bind_merchant_role('tp_app', 'tp_other');
SELECT id AS b1 FROM pay.create_order('tp_shop', 'T-b1', 100, 'USD', gateway => 'tp_stripe', capture => 'manual') \gset
SELECT status FROM pay.mark_paid(:b1, 'pi_b1', 100, 'USD');
SET ROLE tp_app;
SELECT pg_temp.err(format($$SELECT pay.capture(%s)$$, :b1)) AS capture_other;
SELECT pg_temp.err(format($$SELECT pay.void(%s)$$, :b1)) AS void_other;
RESET ROLE;
SET ROLE pay_app;
SELECT status FROM pay.capture(:b1, 50);
RESET ROLE;

-- the ledger is sound
SELECT * FROM pay.ledger_problems;
SELECT * FROM pay.order_ledger_mismatches WHERE order_id IN (SELECT id FROM pay.orders WHERE merchant_id = pay._merchant_id('tp_shop'));

-- the merchant's notification of a captured order carries what was
-- captured, not the authorized amount (the trigger's row, and
-- enqueue_merchant_notification's)
SELECT pay.create_merchant('tp_notified', 'Notified Shop', 'https://shop.example/notify') > 0 AS notified;
SELECT id AS n1 FROM pay.create_order('tp_notified', 'T-n1', 5000, 'USD', gateway => 'tp_stripe', capture => 'manual') \gset
SELECT status FROM pay.mark_paid(:n1, 'pi_n1', 5000, 'USD');
SELECT count(*) AS notified_of_authorization FROM pay.outbox WHERE order_id = :n1 AND kind = 'merchant_notification';
SELECT status, captured_amount FROM pay.capture(:n1, 4200);
SELECT operation, params->>'amount' AS amount, params->>'status' AS status
  FROM pay.outbox WHERE order_id = :n1 AND kind = 'merchant_notification';
SELECT pay.enqueue_merchant_notification(:n1, 'captured') AS nid \gset
SELECT params->>'amount' AS enqueued_amount FROM pay.outbox WHERE id = :nid;
-- a full refund of what was captured: refunded, notified with that amount
SELECT pay.refund(:n1, 4200) > 0 AS refunded;
SELECT operation, params->>'amount' AS amount FROM pay.outbox
 WHERE order_id = :n1 AND kind = 'merchant_notification' AND operation = 'refunded';
