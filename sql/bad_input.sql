-- Bad input: every case is refused with a proper SQLSTATE and a message
-- naming the field, and writes nothing (row counts of every pay table are
-- compared before and after each call).
CREATE FUNCTION pg_temp.counts() RETURNS text LANGUAGE sql AS $$
  SELECT format('merchants=%s gateways=%s orders=%s events=%s refunds=%s keys=%s accounts=%s balances=%s postings=%s entries=%s',
    (SELECT count(*) FROM pay.merchants), (SELECT count(*) FROM pay.gateways),
    (SELECT count(*) FROM pay.orders), (SELECT count(*) FROM pay.order_events),
    (SELECT count(*) FROM pay.refunds), (SELECT count(*) FROM pay.idempotency_keys),
    (SELECT count(*) FROM pay.accounts), (SELECT sum(balance) FROM pay.account_balances),
    (SELECT count(*) FROM pay.postings), (SELECT count(*) FROM pay.entries)) $$;
-- Run q; report its SQLSTATE and message, and whether any row changed.
CREATE FUNCTION pg_temp.bad(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  before text := pg_temp.counts();
  result text;
BEGIN
  BEGIN
    EXECUTE q;
    result := 'NO ERROR';
  EXCEPTION WHEN OTHERS THEN
    result := SQLSTATE || ': ' || SQLERRM;
  END;
  IF pg_temp.counts() <> before THEN
    result := result || ' [ROWS CHANGED]';
  END IF;
  RETURN result;
END $$;

-- fixtures
SELECT pay.create_merchant('bad_shop', 'Bad Input Shop') > 0 AS merchant;
SELECT pay.create_gateway('bad_gw', 'generic') > 0 AS gateway;
SELECT pay.create_gateway('bad_gw_off', 'generic') > 0 AS gateway_off;
UPDATE pay.gateways SET enabled = false WHERE name = 'bad_gw_off';
SELECT id AS pending_id FROM pay.create_order('bad_shop', 'B-pending', 1000, 'USD') \gset
SELECT id AS paid_id FROM pay.create_order('bad_shop', 'B-paid', 1000, 'USD') \gset
SELECT status FROM pay.mark_paid(:paid_id, 'txn-bad-1', 1000, 'USD');
SELECT (pay.create_order('bad_shop', 'B-key', 10, 'USD', 'bad-key')).id IS NOT NULL AS keyed;
SELECT pay.open_account('bad:wallet', 'USD', true) > 0 AS wallet;
SELECT pay.open_account('bad:eur_wallet', 'EUR', true) > 0 AS eur_wallet;
SELECT pay.open_account('bad:plain', 'USD') > 0 AS plain;
SELECT pay.post('bad:topup', '[{"account":"bad:plain","amount":-50},{"account":"bad:wallet","amount":50}]') > 0 AS topup;

SELECT n, pg_temp.bad(q) AS result FROM (VALUES
  -- create_merchant
  (1, $$SELECT pay.create_merchant('has space', 'X')$$),
  (2, $$SELECT pay.create_merchant(NULL, 'X')$$),
  (3, $$SELECT pay.create_merchant('bad_m2', '  ')$$),
  (4, $$SELECT pay.create_merchant('bad_m3', 'X', 'ftp://example.com')$$),
  (5, $$SELECT pay.create_merchant('bad_shop', 'Again')$$),
  -- create_gateway
  (6, $$SELECT pay.create_gateway('bad_g2', 'bitcoin')$$),
  (7, $$SELECT pay.create_gateway('bad g3', 'stripe')$$),
  (8, $$SELECT pay.create_gateway('bad_g4', 'stripe', 'not a url')$$),
  (9, $$SELECT pay.create_gateway('bad_g5', 'stripe', NULL, '[1]')$$),
  (10, $$SELECT pay.create_gateway('bad_gw', 'stripe')$$),
  -- create_order
  (11, $$SELECT pay.create_order('nobody', 'N-1', 100, 'USD')$$),
  (12, $$SELECT pay.create_order(NULL, 'N-1', 100, 'USD')$$),
  (13, $$SELECT pay.create_order('bad_shop', '', 100, 'USD')$$),
  (14, $$SELECT pay.create_order('bad_shop', NULL, 100, 'USD')$$),
  (15, $$SELECT pay.create_order('bad_shop', repeat('x', 65), 100, 'USD')$$),
  (16, $$SELECT pay.create_order('bad_shop', 'has space', 100, 'USD')$$),
  (17, $$SELECT pay.create_order('bad_shop', E'tab\there', 100, 'USD')$$),
  (18, $$SELECT pay.create_order('bad_shop', 'N-1', 0, 'USD')$$),
  (19, $$SELECT pay.create_order('bad_shop', 'N-1', -100, 'USD')$$),
  (20, $$SELECT pay.create_order('bad_shop', 'N-1', NULL, 'USD')$$),
  (21, $$SELECT pay.create_order('bad_shop', 'N-1', 100000000001, 'USD')$$),
  (22, $$SELECT pay.create_order('bad_shop', 'N-1', 1000000001, 'JPY')$$),
  (23, $$SELECT pay.create_order('bad_shop', 'N-1', 9223372036854775807, 'KWD')$$),
  (24, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'XXX')$$),
  (25, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'usd')$$),
  (26, $$SELECT pay.create_order('bad_shop', 'N-1', 100, NULL)$$),
  (27, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USDX')$$),
  (28, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', expires_in => '0')$$),
  (29, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', expires_in => '-5 minutes')$$),
  (30, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', expires_in => '31 days')$$),
  (31, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', expires_in => NULL)$$),
  (32, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', metadata => '[1, 2]')$$),
  (33, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', metadata => '"text"')$$),
  (34, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', metadata => NULL)$$),
  (35, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', metadata => jsonb_build_object('blob', repeat('x', 9000)))$$),
  (36, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', metadata => '{bad json')$$),
  (37, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', '')$$),
  (38, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', repeat('k', 256))$$),
  (39, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', gateway => 'no_such_gw')$$),
  (40, $$SELECT pay.create_order('bad_shop', 'N-1', 100, 'USD', gateway => 'bad_gw_off')$$),
  (41, $$SELECT pay.create_order('bad_shop', 'B-pending', 1000, 'USD')$$),
  (42, $$SELECT pay.create_order('bad_shop', 'B-key', 11, 'USD', 'bad-key')$$),
  (43, $$SELECT pay.create_order('bad_shop', 'N-1', 'abc', 'USD')$$),
  -- mark_paid
  (44, $$SELECT pay.mark_paid(999999999, 'txn', 1000, 'USD')$$),
  (45, format($$SELECT pay.mark_paid(%s, 'txn', 999, 'USD')$$, :pending_id)),
  (46, format($$SELECT pay.mark_paid(%s, 'txn', 1000, 'EUR')$$, :pending_id)),
  (47, format($$SELECT pay.mark_paid(%s, '', 1000, 'USD')$$, :pending_id)),
  (48, format($$SELECT pay.mark_paid(%s, 'txn', NULL, 'USD')$$, :pending_id)),
  (49, format($$SELECT pay.mark_paid(%s, 'txn-bad-1', 1000, 'USD')$$, :pending_id)),
  -- moves along illegal edges
  (50, format($$SELECT pay.ship(%s)$$, :pending_id)),
  (51, format($$SELECT pay.complete(%s)$$, :paid_id)),
  (52, format($$SELECT pay.cancel(%s)$$, :paid_id)),
  (53, format($$SELECT pay.cancel(%s, repeat('r', 501))$$, :pending_id)),
  (54, $$SELECT pay.ship(NULL)$$),
  -- refund
  (55, format($$SELECT pay.refund(%s, 0)$$, :paid_id)),
  (56, format($$SELECT pay.refund(%s, -1)$$, :paid_id)),
  (57, format($$SELECT pay.refund(%s, 1001)$$, :paid_id)),
  (58, format($$SELECT pay.refund(%s, 10)$$, :pending_id)),
  (59, $$SELECT pay.refund(999999999, 10)$$),
  (60, format($$SELECT pay.refund(%s, 10, repeat('r', 501))$$, :paid_id)),
  -- open_account
  (61, $$SELECT pay.open_account('bad space', 'USD')$$),
  (62, $$SELECT pay.open_account('bad:x', 'ZZZ')$$),
  (63, $$SELECT pay.open_account('bad:wallet', 'USD')$$),
  (64, $$SELECT pay.open_account('bad:y', 'USD', true, 4)$$),
  (65, $$SELECT pay.open_account('bad:z', 'USD', false, 0)$$),
  -- post
  (66, $$SELECT pay.post('', '[{"account":"bad:plain","amount":-1},{"account":"bad:wallet","amount":1}]')$$),
  (67, $$SELECT pay.post('bad:p1', '{"account":"bad:plain"}')$$),
  (68, $$SELECT pay.post('bad:p2', '[{"account":"bad:plain","amount":0}]')$$),
  (69, $$SELECT pay.post('bad:p3', '[{"account":"bad:plain","amount":-1},{"account":"nope","amount":1}]')$$),
  (70, $$SELECT pay.post('bad:p4', '[{"account":"bad:plain","amount":-1.5},{"account":"bad:wallet","amount":1.5}]')$$),
  (71, $$SELECT pay.post('bad:p5', '[{"account":"bad:plain","amount":"-1"},{"account":"bad:wallet","amount":"1"}]')$$),
  (72, $$SELECT pay.post('bad:p6', '[{"account":"bad:plain","amount":0},{"account":"bad:wallet","amount":0}]')$$),
  (73, $$SELECT pay.post('bad:p7', '[{"account":"bad:plain","amount":-5},{"account":"bad:wallet","amount":4}]')$$),
  (74, $$SELECT pay.post('bad:p8', '[{"account":"bad:plain","amount":-1},{"account":"bad:eur_wallet","amount":1}]')$$),
  (75, $$SELECT pay.post('bad:p9', '[{"account":"bad:plain","amount":-99999999999999999999},{"account":"bad:wallet","amount":99999999999999999999}]')$$),
  (76, $$SELECT pay.post('bad:p10', '[{"account":"bad:plain","amount":100},{"account":"bad:wallet","amount":-100}]')$$),
  (77, $$SELECT pay.post('bad:topup', '[{"account":"bad:plain","amount":-1},{"account":"bad:wallet","amount":1}]')$$),
  (78, $$SELECT pay.post('bad:p11', '[{"acct":"bad:plain","amount":-1},{"account":"bad:wallet","amount":1}]')$$),
  -- pay_with_balance and balance
  (79, format($$SELECT pay.pay_with_balance(%s, 'nope')$$, :pending_id)),
  (80, format($$SELECT pay.pay_with_balance(%s, 'bad:plain')$$, :pending_id)),
  (81, format($$SELECT pay.pay_with_balance(%s, 'bad:eur_wallet')$$, :pending_id)),
  (82, format($$SELECT pay.pay_with_balance(%s, 'bad:wallet')$$, :pending_id)),
  (83, format($$SELECT pay.pay_with_balance(%s, 'bad:wallet')$$, :paid_id)),
  (84, $$SELECT pay.balance('nope')$$),
  -- direct writes that would break the books
  (85, $$UPDATE pay.entries SET amount = amount + 1$$),
  (86, $$DELETE FROM pay.entries$$),
  (87, $$TRUNCATE pay.entries$$),
  (88, $$DELETE FROM pay.postings$$),
  (89, $$DELETE FROM pay.order_events$$),
  (90, $$DELETE FROM pay.merchants WHERE code = 'bad_shop'$$),
  (91, $$DELETE FROM pay.accounts WHERE code = 'bad:wallet'$$),
  (92, format($$UPDATE pay.orders SET refunded_amount = 2000 WHERE id = %s$$, :paid_id))
) AS cases(n, q) ORDER BY n;

-- and the books still balance
SELECT count(*) AS ledger_problems FROM pay.ledger_problems;
SELECT pay.balance('bad:wallet') AS wallet, pay.balance('bad:plain') AS plain;
