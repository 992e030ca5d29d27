-- Reconciliation: fee rules, PSP statements in their own formats (made by an
-- independent generator: test/vectors/statements/make_statements.py, Python's
-- csv module and GBK codec), every break kind planted and found, bookings
-- once, the settlement view and the repair of a payment the books miss.
\getenv abs_srcdir PG_ABS_SRCDIR
\set dir :abs_srcdir '/test/vectors/statements/'
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

SELECT pay.create_merchant('rc_shop', 'Reconciliation Shop', 'https://shop.example/notify') > 0 AS merchant;
SELECT pay.create_gateway(g, k) > 0 AS gateway FROM (VALUES
  ('rc_generic', 'generic'), ('rc_stripe', 'stripe'), ('rc_alipay', 'alipay'), ('rc_wechat', 'wechatpay')) v(g, k);

-- fees: no rule, no fee
SELECT pay.expected_fee('rc_stripe', 2000, 'USD') AS no_rule;
-- the README's table: Stripe 2.9% + 0.30, T+2; Alipay 0.6%, T+1
SELECT pay.set_fee('rc_stripe', percent => 2.9, fixed => 30, settlement_days => 2);
SELECT pay.set_fee('rc_alipay', 'CNY', 0.6, 0, 1);
SELECT pay.expected_fee('rc_stripe', 2000, 'USD') AS stripe_20_usd,
       pay.expected_fee('rc_stripe', 1000, 'EUR') AS stripe_10_eur,
       pay.expected_fee('rc_alipay', 1250, 'CNY') AS alipay_half_up,
       pay.expected_fee('rc_alipay', 1249, 'CNY') AS alipay_down,
       pay.expected_fee('rc_alipay', 1250, 'USD') AS alipay_usd_no_rule,
       pay.expected_fee('rc_stripe', 0, 'USD') AS stripe_zero;
-- a rule for a currency wins over the gateway's rule for every currency; a
-- new version replaces the old from now on
SELECT pay.set_fee('rc_stripe', 'JPY', 3.6, 0, 3);
SELECT pay.set_fee('rc_stripe', percent => 3.4, fixed => 30, settlement_days => 2);
SELECT pay.expected_fee('rc_stripe', 1000, 'JPY') AS stripe_jpy, pay.expected_fee('rc_stripe', 2000, 'USD') AS stripe_usd_now;
SELECT count(*) AS stripe_rule_versions FROM pay.fee_rules WHERE gateway = 'rc_stripe';
SELECT pg_temp.err($$SELECT pay.set_fee('rc_nowhere', percent => 1)$$) AS unknown_gateway;
SELECT pg_temp.err($$SELECT pay.set_fee('rc_stripe', 'XXX', 1)$$) AS unknown_currency;
SELECT pg_temp.err($$SELECT pay.set_fee('rc_stripe', percent => 100)$$) AS percent_100;
SELECT pg_temp.err($$SELECT pay.set_fee('rc_stripe', percent => -1)$$) AS percent_negative;
SELECT pg_temp.err($$SELECT pay.set_fee('rc_stripe', fixed => -1)$$) AS fixed_negative;
SELECT pg_temp.err($$SELECT pay.set_fee('rc_stripe', settlement_days => -1)$$) AS days_negative;
SELECT pg_temp.err($$SELECT pay.expected_fee('rc_stripe', -5, 'USD')$$) AS amount_negative;
SELECT pg_temp.err($$UPDATE pay.fee_rules SET percent = 0$$) AS rules_are_history;

-- minimum and maximum fee (minor units): the fee is clamped to them; a bad
-- bound is refused naming the argument, and nothing is written
SELECT pay.create_gateway('rc_fees', 'generic') > 0 AS fees_gateway;
SELECT pg_temp.err($$SELECT pay.set_fee('rc_fees', percent => 1, minimum => -1)$$) AS minimum_negative;
SELECT pg_temp.err($$SELECT pay.set_fee('rc_fees', percent => 1, maximum => -1)$$) AS maximum_negative;
SELECT pg_temp.err($$SELECT pay.set_fee('rc_fees', percent => 1, minimum => 100, maximum => 99)$$) AS maximum_below_minimum;
SELECT count(*) AS fees_rules_after_bad_input FROM pay.fee_rules WHERE gateway = 'rc_fees';
SELECT pay.set_fee('rc_fees', 'USD', 1, 5, 1, minimum => 50, maximum => 500);
SELECT pay.expected_fee('rc_fees', 1000, 'USD') AS clamped_up,        -- 10 + 5 -> 50
       pay.expected_fee('rc_fees', 0, 'USD') AS zero_amount_minimum,  -- 0 + 5 -> 50
       pay.expected_fee('rc_fees', 20000, 'USD') AS inside,           -- 200 + 5
       pay.expected_fee('rc_fees', 49500, 'USD') AS at_maximum,       -- 495 + 5
       pay.expected_fee('rc_fees', 100000, 'USD') AS clamped_down;    -- 1000 + 5 -> 500
SELECT pay.set_fee('rc_fees', 'EUR', 1, minimum => 25, maximum => 25);
SELECT pay.expected_fee('rc_fees', 1, 'EUR') AS flat_low, pay.expected_fee('rc_fees', 99999, 'EUR') AS flat_high;
SELECT pay.set_fee('rc_fees', 'GBP', 1, maximum => 0);
SELECT pay.expected_fee('rc_fees', 99999, 'GBP') AS capped_at_zero;
SELECT minimum, maximum FROM pay.fee_rules WHERE gateway = 'rc_fees' ORDER BY id;
-- half-up at exactly .5 of the minor unit, whatever the currency's exponent
-- (JPY 0, USD 2, KWD 3): x.5 goes up, just below it goes down
SELECT pay.set_fee('rc_fees', 'JPY', 0.5);
SELECT pay.set_fee('rc_fees', 'KWD', 1.5);
SELECT pay.set_fee('rc_fees', 'USD', 2.5);
SELECT pay.expected_fee('rc_fees', 100, 'JPY') AS jpy_0_5,    -- 0.5 -> 1
       pay.expected_fee('rc_fees', 300, 'JPY') AS jpy_1_5,    -- 1.5 -> 2
       pay.expected_fee('rc_fees', 99, 'JPY') AS jpy_0_495,   -- 0.495 -> 0
       pay.expected_fee('rc_fees', 20, 'USD') AS usd_0_5,     -- 0.5 -> 1
       pay.expected_fee('rc_fees', 100, 'USD') AS usd_2_5,    -- 2.5 -> 3
       pay.expected_fee('rc_fees', 19, 'USD') AS usd_0_475,   -- 0.475 -> 0
       pay.expected_fee('rc_fees', 100, 'KWD') AS kwd_1_5,    -- 1.5 -> 2
       pay.expected_fee('rc_fees', 3300, 'KWD') AS kwd_49_5,  -- 49.5 -> 50
       pay.expected_fee('rc_fees', 33, 'KWD') AS kwd_0_495;   -- 0.495 -> 0

-- The rules in force when the statements' payments were made (November
-- 2026): set then, so written here with that date.  Statement lines are
-- compared with the rule in force at the payment, not today's.
INSERT INTO pay.fee_rules (gateway, currency, percent, fixed, settlement_days, valid_from) VALUES
  ('rc_generic', NULL, 2.9, 30, 2, '2026-01-01Z'), ('rc_stripe', NULL, 2.9, 30, 2, '2026-01-01Z'),
  ('rc_alipay', 'CNY', 0.6, 0, 1, '2026-01-01Z'), ('rc_wechat', 'CNY', 0.6, 0, 1, '2026-01-01Z');
SELECT pay.set_fee('rc_generic', percent => 5);

-- our books: orders routed to each gateway, paid, refunded
INSERT INTO pay.orders (id, merchant_id, merchant_order_no, amount, currency, gateway)
SELECT v.id, m.id, 'RC-' || v.id, v.amount, v.currency, v.gateway
  FROM pay.merchants m, (VALUES
    (920001, 1000::bigint, 'USD', 'rc_generic'), (920002, 2000, 'USD', 'rc_generic'),
    (920003, 1500, 'USD', 'rc_generic'), (920004, 1200, 'USD', 'rc_generic'),
    (920005, 800, 'USD', 'rc_generic'), (920006, 700, 'USD', 'rc_generic'),
    (920007, 900, 'USD', 'rc_generic'), (920101, 2000, 'USD', 'rc_stripe'),
    (920201, 1250, 'CNY', 'rc_alipay'), (920202, 500, 'CNY', 'rc_alipay'),
    (920203, 10000, 'CNY', 'rc_alipay'), (920301, 888, 'CNY', 'rc_wechat'),
    (920302, 300, 'CNY', 'rc_wechat')) v(id, amount, currency, gateway)
 WHERE m.code = 'rc_shop';
SELECT count(*) AS paid FROM (VALUES
    (920001, 'g_1'), (920002, 'g_2'), (920003, 'g_3'), (920004, 'g_4'), (920007, 'g_7'),
    (920101, 'pi_1'), (920201, '2026113022001400000001'), (920202, '2026113022001400000002'),
    (920203, '2026113022001400000003'), (920301, '4200000001202611300000000001')) v(id, txn),
  LATERAL pay.mark_paid(v.id, v.txn, (SELECT amount FROM pay.orders WHERE id = v.id),
                        (SELECT currency FROM pay.orders WHERE id = v.id)) p;
SELECT status FROM pay.cancel(920006);
SELECT pay.refund(920001, 300) > 0, pay.refund(920001, 200) > 0, pay.refund(920101, 500) > 0,
       pay.refund(920201, 200) > 0, pay.refund(920301, 100) > 0;
-- when they happened (the statements are of 30 November 2026)
UPDATE pay.orders SET paid_at = '2026-11-30 09:00Z' WHERE id IN (920001, 920002, 920003, 920004);
UPDATE pay.orders SET paid_at = '2026-11-30 10:30Z' WHERE id = 920007;
UPDATE pay.orders SET paid_at = '2026-11-30 08:00Z' WHERE id = 920101;
UPDATE pay.orders SET paid_at = '2026-11-30 02:00Z' WHERE gateway = 'rc_alipay';
UPDATE pay.orders SET paid_at = '2026-11-30 02:00Z' WHERE id = 920301;
UPDATE pay.refunds SET created_at = '2026-11-30 10:00Z' WHERE order_id = 920001;
UPDATE pay.refunds SET created_at = '2026-11-30 09:00Z' WHERE order_id = 920101;
UPDATE pay.refunds SET created_at = '2026-11-30 03:00Z' WHERE order_id IN (920201, 920301);

-- generic_csv, format detected
SELECT pay.import_statement('rc_generic', pg_read_binary_file(:'dir' || 'generic.csv')) AS generic_id \gset
SELECT format, line_count, period_start, period_end, period_declared FROM pay.statements WHERE id = :generic_id;
SELECT line_no, kind, psp_txn_id, order_id, amount, fee, currency, occurred_at, result, refund_id IS NOT NULL AS has_refund,
       our_amount, expected_fee
  FROM pay.statement_lines WHERE statement_id = :generic_id ORDER BY line_no;
SELECT result, order_id, psp_txn_id, our_amount, psp_amount, regexp_replace(detail, 'refund [0-9]+', 'refund #') AS detail
  FROM pay.reconciliation_breaks WHERE statement_id = :generic_id ORDER BY result, order_id, psp_txn_id, psp_amount;
-- booked once: the PSP's actual fees of the matched and fee_mismatch
-- payments (0.59 + 0.50) and the fee line (5.00); the payout (20.00)
SELECT pay.balance('fees:rc_generic:USD') AS fees, pay.balance('bank:rc_generic:USD') AS bank,
       pay.balance('psp:rc_generic:USD') AS psp_clearing;
-- the same content again: the same statement, nothing changes
SELECT pay.import_statement('rc_generic', pg_read_binary_file(:'dir' || 'generic.csv')) = :generic_id AS same_id;
SELECT pay.import_statement('rc_generic', pg_read_binary_file(:'dir' || 'generic.csv'), 'generic_csv') = :generic_id AS same_id_explicit;
SELECT count(*) AS statements, (SELECT count(*) FROM pay.statement_lines) AS lines FROM pay.statements;
SELECT pay.balance('fees:rc_generic:USD') AS fees_again, pay.balance('bank:rc_generic:USD') AS bank_again;
-- a later statement repeating a line: a duplicate, not booked again
SELECT pay.import_statement('rc_generic', pg_read_binary_file(:'dir' || 'generic_overlap.csv')) AS overlap_id \gset
SELECT line_no, psp_txn_id, result FROM pay.statement_lines WHERE statement_id = :overlap_id ORDER BY line_no;
SELECT pay.balance('fees:rc_generic:USD') AS fees_after_overlap, pay.balance('bank:rc_generic:USD') AS bank_after_overlap;
-- the same bytes for another gateway are another statement
SELECT pay.import_statement('rc_stripe', pg_read_binary_file(:'dir' || 'generic_overlap.csv')) <> :overlap_id AS other_gateway;

-- breaks are also anomalies (duplicates are not: overlapping statements are normal)
SELECT kind, order_id, detail FROM pay.anomalies WHERE gateway = 'rc_generic' ORDER BY id;

-- a malformed file is refused whole, naming the line and column; nothing is written
CREATE TEMP TABLE counts AS SELECT (SELECT count(*) FROM pay.statements) s, (SELECT count(*) FROM pay.statement_lines) l,
                                   (SELECT count(*) FROM pay.postings) p;
SELECT name, pg_temp.err(format('SELECT pay.import_statement(%L, convert_to(%L, ''UTF8''), %L)', 'rc_generic', body, fmt)) AS refused
  FROM (VALUES
    ('bad amount', E'psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\nx1,,payment,1.00,0,USD,2026-11-30T09:00:00Z\nx2,,payment,1.0O,0,USD,2026-11-30T09:00:00Z\n', NULL),
    ('too many decimals', E'psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\nx1,,payment,1.001,0,USD,2026-11-30T09:00:00Z\n', NULL),
    ('bad kind', E'psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\nx1,,chargeback,1.00,0,USD,2026-11-30T09:00:00Z\n', NULL),
    ('bad currency', E'psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\nx1,,payment,1.00,0,XYZ,2026-11-30T09:00:00Z\n', NULL),
    ('bad time', E'psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\nx1,,payment,1.00,0,USD,30/11/2026\n', NULL),
    ('short line', E'psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\nx1,,payment,1.00,0,USD\n', NULL),
    ('open quote', E'psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\n"x1,,payment,1.00,0,USD,2026-11-30T09:00:00Z\n', NULL),
    ('empty id', E'psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\n,,payment,1.00,0,USD,2026-11-30T09:00:00Z\n', NULL),
    ('missing column', E'psp_txn_id,order_id,kind,amount,currency,occurred_at\nx1,,payment,1.00,USD,2026-11-30T09:00:00Z\n', 'generic_csv'),
    ('not a statement', E'hello,world\n', NULL),
    ('unknown format', E'a,b\n', 'mt940'),
    ('empty', E'', 'generic_csv')) v(name, body, fmt);
SELECT pg_temp.err($$SELECT pay.import_statement('rc_nowhere', 'x'::bytea)$$) AS unknown_gateway;
SELECT pg_temp.err($$SELECT pay.import_statement('rc_generic', '\xff'::bytea, 'generic_csv')$$) AS not_utf8;
SELECT (SELECT count(*) FROM pay.statements) = s AND (SELECT count(*) FROM pay.statement_lines) = l
       AND (SELECT count(*) FROM pay.postings) = p AS nothing_written FROM counts;
-- a header and no line is a statement of a day without business
SELECT line_count, period_start FROM pay.statements WHERE id = pay.import_statement('rc_generic',
  convert_to(E'psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\r\n', 'UTF8'));

-- Stripe's itemized report: lower-case currency, negative gross for
-- refunds and payouts, a description with a comma and quotes
SELECT pay.import_statement('rc_stripe', pg_read_binary_file(:'dir' || 'stripe.csv')) AS stripe_id \gset
SELECT format FROM pay.statements WHERE id = :stripe_id;
SELECT line_no, kind, psp_txn_id, payment_ref, order_id, amount, fee, currency, result, expected_fee
  FROM pay.statement_lines WHERE statement_id = :stripe_id ORDER BY line_no;
SELECT pay.balance('fees:rc_stripe:USD') AS stripe_fees, pay.balance('bank:rc_stripe:USD') AS stripe_bank;

-- Alipay's bill, GBK, with its declared period (China time)
SELECT pay.import_statement('rc_alipay', pg_read_binary_file(:'dir' || 'alipay.csv')) AS alipay_id \gset
SELECT format, period_start, period_end, period_declared FROM pay.statements WHERE id = :alipay_id;
SELECT line_no, source_line, kind, psp_txn_id, order_id, amount, fee, currency, occurred_at, result, expected_fee
  FROM pay.statement_lines WHERE statement_id = :alipay_id ORDER BY line_no;
SELECT result, order_id, our_amount, psp_amount, detail FROM pay.reconciliation_breaks
 WHERE statement_id = :alipay_id ORDER BY result, order_id;

-- WeChat Pay's trade bill: backquoted values, a summary block at the end
SELECT pay.import_statement('rc_wechat', pg_read_binary_file(:'dir' || 'wechatpay.csv'), 'wechatpay_trade_bill') AS wechat_id \gset
SELECT line_no, kind, psp_txn_id, order_id, amount, fee, currency, occurred_at, result, expected_fee
  FROM pay.statement_lines WHERE statement_id = :wechat_id ORDER BY line_no;

-- every result kind was found
SELECT r AS result, count(b.*) AS found
  FROM unnest(ARRAY['missing_in_books', 'missing_at_psp', 'amount_mismatch', 'currency_mismatch',
                    'status_mismatch', 'fee_mismatch', 'duplicate']) r
  LEFT JOIN pay.reconciliation_breaks b ON b.result = r GROUP BY r ORDER BY r;

-- repair: the payment WeChat Pay proves for order 920302, through the
-- callbacks' path: paid, booked once, the merchant notified
SELECT line_no AS wline FROM pay.statement_lines WHERE statement_id = :wechat_id AND order_id = 920302 \gset
-- the open breaks as pay.metrics() reports them, before and after the repair
SELECT substring(pay.metrics() FROM '\npay_reconciliation_breaks (\d+)')::bigint AS breaks_gauge_before \gset
SELECT :breaks_gauge_before = count(*) AS gauge_counts_open_lines
  FROM pay.statement_lines WHERE result <> 'matched' AND repaired_at IS NULL;
SELECT pay.repair_break(:wechat_id, :wline) AS repaired;
SELECT :breaks_gauge_before - substring(pay.metrics() FROM '\npay_reconciliation_breaks (\d+)')::bigint AS gauge_after_repair_drops_by;
SELECT status, psp_txn_id FROM pay.orders WHERE id = 920302;
SELECT to_status, cause FROM pay.order_events WHERE order_id = 920302 ORDER BY id;
SELECT count(*) AS notifications FROM pay.outbox WHERE order_id = 920302 AND kind = 'merchant_notification';
SELECT p.ref, e.amount FROM pay.postings p JOIN pay.entries e ON e.posting_id = p.id
  JOIN pay.accounts a ON a.id = e.account_id WHERE p.order_id = 920302 ORDER BY p.id, a.code;
SELECT pay.repair_break(:wechat_id, :wline) AS repaired_again;
SELECT count(*) AS wechat_breaks_left FROM pay.reconciliation_breaks WHERE statement_id = :wechat_id;
SELECT pg_temp.err(format('SELECT pay.repair_break(%s, 1)', :wechat_id)) AS repair_matched_line;
SELECT pg_temp.err(format('SELECT pay.repair_break(%s, 99)', :wechat_id)) AS repair_no_line;
-- a missing_in_books line of ours with no order cannot be repaired
SELECT pg_temp.err(format('SELECT pay.repair_break(%s, 6)', :generic_id)) AS repair_no_order;

-- the settlement per gateway, currency and day
SELECT * FROM pay.settlement_by_day WHERE gateway LIKE 'rc_%' ORDER BY gateway, currency, day;
SELECT * FROM pay.ledger_problems;

-- a manual-capture order is reconciled against what was captured, not
-- against the authorization: 42.00 of 50.00 matches, 50.00 is a break
SELECT pay.create_gateway('rc_manual', 'stripe') > 0 AS manual_gateway;
SELECT id AS m1 FROM pay.create_order('rc_shop', 'RC-M1', 5000, 'USD', gateway => 'rc_manual', capture => 'manual') \gset
SELECT id AS m2 FROM pay.create_order('rc_shop', 'RC-M2', 5000, 'USD', gateway => 'rc_manual', capture => 'manual') \gset
SELECT status FROM pay.mark_paid(:m1, 'pi_rc_m1', 5000, 'USD');
SELECT status FROM pay.mark_paid(:m2, 'pi_rc_m2', 5000, 'USD');
SELECT status, captured_amount FROM pay.capture(:m1, 4200);
SELECT status, captured_amount FROM pay.capture(:m2, 4200);
SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS now_utc \gset
SELECT pay.import_statement('rc_manual', convert_to(format(
  E'psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\npi_rc_m1,%s,payment,42.00,0,USD,%s\npi_rc_m2,%s,payment,50.00,0,USD,%s\n',
  :m1, :'now_utc', :m2, :'now_utc'), 'UTF8'), 'generic_csv') AS manual_id \gset
SELECT line_no, psp_txn_id, amount, our_amount, result FROM pay.statement_lines WHERE statement_id = :manual_id ORDER BY line_no;
SELECT result, psp_txn_id, our_amount, psp_amount FROM pay.reconciliation_breaks WHERE statement_id = :manual_id;
