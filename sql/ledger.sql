-- The double-entry ledger: accounts, balanced postings, non-negative
-- accounts, slotted balances, append-only entries.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

SELECT pay.open_account('led:bank', 'USD') > 0 AS bank;
SELECT pay.open_account('led:alice', 'USD', true) > 0 AS alice;
SELECT pay.open_account('led:bob', 'USD', true) > 0 AS bob;
SELECT pay.open_account('led:bank_eur', 'EUR') > 0 AS bank_eur;
SELECT pay.open_account('led:alice_eur', 'EUR', true) > 0 AS alice_eur;
SELECT code, currency, non_negative, slots,
       (SELECT count(*) FROM pay.account_balances b WHERE b.account_id = a.id) AS balance_rows
  FROM pay.accounts a WHERE code LIKE 'led:%' ORDER BY code;

-- a balanced posting moves balances; entries carry the account's currency
SELECT pay.post('led:1', '[{"account":"led:bank","amount":-1000},{"account":"led:alice","amount":1000}]') > 0 AS p1;
SELECT pay.balance('led:bank') AS bank, pay.balance('led:alice') AS alice;
-- several currencies in one posting: each must balance on its own
SELECT pay.post('led:2', '[{"account":"led:bank","amount":-5},{"account":"led:bob","amount":5},
                           {"account":"led:bank_eur","amount":-7},{"account":"led:alice_eur","amount":7}]') > 0 AS p2;
SELECT pg_temp.err($$SELECT pay.post('led:3', '[{"account":"led:bank","amount":-5},{"account":"led:alice_eur","amount":5}]')$$) AS cross_currency;
-- the same account twice in one posting nets out
SELECT pay.post('led:4', '[{"account":"led:alice","amount":-300},{"account":"led:bob","amount":300},
                           {"account":"led:alice","amount":100},{"account":"led:bob","amount":-100}]') > 0 AS p4;
SELECT pay.balance('led:alice') AS alice, pay.balance('led:bob') AS bob;
SELECT p.ref, a.code, e.amount, e.currency FROM pay.postings p
  JOIN pay.entries e ON e.posting_id = p.id JOIN pay.accounts a ON a.id = e.account_id
 WHERE p.ref LIKE 'led:%' ORDER BY e.id;

-- non-negative: a posting that would overdraw is refused whole (PY003)
SELECT pg_temp.err($$SELECT pay.post('led:5', '[{"account":"led:alice","amount":-801},{"account":"led:bank","amount":801}]')$$) AS overdraw;
SELECT pay.post('led:6', '[{"account":"led:alice","amount":-800},{"account":"led:bank","amount":800}]') > 0 AS to_zero;
SELECT pay.balance('led:alice') AS alice_zero;
-- an account without a floor may go negative (the bank)
SELECT pay.balance('led:bank') AS bank;

-- overflow is an error, never a wrap-around
SELECT pay.open_account('led:big_a', 'USD') > 0 AS big_a, pay.open_account('led:big_b', 'USD', slots => 1) > 0 AS big_b;
SELECT pay.post('led:7', '[{"account":"led:big_a","amount":-9223372036854775807},{"account":"led:big_b","amount":9223372036854775807}]') > 0 AS p7;
SELECT pg_temp.err($$SELECT pay.post('led:8', '[{"account":"led:big_a","amount":-1},{"account":"led:big_b","amount":1}]')$$) AS balance_overflow;

-- balances are spread over slots; the balance is their sum and equals the entries
SELECT a.code, count(*) AS slots, sum(b.balance) AS balance,
       (SELECT sum(amount) FROM pay.entries e WHERE e.account_id = a.id) AS entries
  FROM pay.accounts a JOIN pay.account_balances b ON b.account_id = a.id
 WHERE a.code IN ('led:bank', 'led:alice') GROUP BY a.id, a.code ORDER BY a.code;

-- append-only for every role, the owner (superuser) included, replica mode too
SELECT pg_temp.err($$UPDATE pay.entries SET amount = 1 WHERE id = (SELECT min(id) FROM pay.entries)$$) AS update_entry;
SELECT pg_temp.err($$DELETE FROM pay.entries$$) AS delete_entries;
SELECT pg_temp.err($$TRUNCATE pay.entries$$) AS truncate_entries;
SELECT pg_temp.err($$UPDATE pay.postings SET ref = 'x'$$) AS update_posting;
SET session_replication_role = replica;
SELECT pg_temp.err($$DELETE FROM pay.entries$$) AS delete_in_replica_mode;
-- new journal rows are checked for every role too (C triggers, not CHECKs)
SELECT pg_temp.err($$INSERT INTO pay.entries (posting_id, account_id, amount, currency) VALUES (1, 1, 0, 'USD')$$) AS zero_entry_in_replica_mode;
RESET session_replication_role;
SELECT pg_temp.err($$INSERT INTO pay.entries (posting_id, account_id, amount, currency) VALUES (1, 1, 0, 'USD')$$) AS zero_entry;
SELECT pg_temp.err($$INSERT INTO pay.postings (ref) VALUES ('')$$) AS empty_ref;
SELECT pg_temp.err($$INSERT INTO pay.postings (ref) VALUES (repeat('r', 201))$$) AS long_ref;
SELECT count(*) AS zero_entries FROM pay.entries WHERE amount = 0;

-- a wallet pays an order; a refund goes back to the wallet
SELECT pay.create_merchant('led_shop', 'Ledger Shop') > 0 AS shop;
SELECT pay.post('led:9', '[{"account":"led:bank","amount":-250},{"account":"led:bob","amount":250}]') > 0 AS topup;
SELECT id AS wo FROM pay.create_order('led_shop', 'W-1', 400, 'USD') \gset
SELECT status, paid_account_id IS NOT NULL AS source_kept FROM pay.pay_with_balance(:wo, 'led:bob');
SELECT pay.balance('led:bob') AS bob_after, pay.balance('merchant:led_shop:USD') AS shop_after;
SELECT pay.refund(:wo, 150) > 0 AS refunded;
SELECT pay.balance('led:bob') AS bob_refunded, pay.balance('merchant:led_shop:USD') AS shop_refunded;
SELECT id AS wo2 FROM pay.create_order('led_shop', 'W-2', 1000, 'USD') \gset
SELECT pg_temp.err(format($$SELECT pay.pay_with_balance(%s, 'led:bob')$$, :wo2)) AS short_wallet;
SELECT status FROM pay.orders WHERE id = :wo2;

SELECT count(*) AS ledger_problems FROM pay.ledger_problems;
SELECT count(*) AS order_mismatches FROM pay.order_ledger_mismatches;
