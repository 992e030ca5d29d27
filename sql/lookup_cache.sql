-- The per-backend caches of merchants, currencies and ledger accounts
-- (src/lookup_cache.c) never answer with a row that was rolled back: the
-- same session creates, rolls back and re-creates rows under the same code,
-- and every later call must see the row that exists.
SELECT pay.create_merchant('lc_pad', 'Takes an id first') > 0 AS pad;

-- A merchant created, used (so cached) and rolled back ...
BEGIN;
SELECT pay.create_merchant('lc_shop', 'Rolled back') AS rolled_back_id \gset
SELECT merchant_id = :rolled_back_id AS cached_in_xact FROM pay.create_order('lc_shop', 'LC-1', 100, 'USD');
ROLLBACK;
-- ... is unknown afterwards, not answered from the cache
SELECT pay.create_order('lc_shop', 'LC-2', 100, 'USD');
-- created again it has a new id, and orders get that id
SELECT pay.create_merchant('lc_shop', 'Committed') AS shop_id \gset
SELECT :shop_id <> :rolled_back_id AS new_id,
       merchant_id = :shop_id AS order_has_new_id
  FROM pay.create_order('lc_shop', 'LC-3', 100, 'USD');

-- The same inside a subtransaction (a PL/pgSQL EXCEPTION block rolls back
-- like this): the merchant's ledger account is opened by the first payment,
-- which is rolled back to the savepoint; the next payment opens it again.
SELECT id AS o4 FROM pay.create_order('lc_shop', 'LC-4', 250, 'USD') \gset
SELECT id AS o5 FROM pay.create_order('lc_shop', 'LC-5', 300, 'USD') \gset
BEGIN;
SAVEPOINT s;
SELECT status FROM pay.mark_paid(:o4, 'lc-tx-4', 250, 'USD');
SELECT count(*) AS account_in_savepoint FROM pay.accounts WHERE code = 'merchant:lc_shop:USD';
ROLLBACK TO SAVEPOINT s;
SELECT count(*) AS account_after_rollback FROM pay.accounts WHERE code = 'merchant:lc_shop:USD';
SELECT status FROM pay.mark_paid(:o5, 'lc-tx-5', 300, 'USD');
COMMIT;
SELECT pay.balance('merchant:lc_shop:USD') AS merchant_balance;
SELECT count(*) AS problems FROM pay.ledger_problems;
SELECT count(*) AS mismatches FROM pay.order_ledger_mismatches;

-- A currency lookup that failed is not remembered as a success, and a
-- known one keeps its exponent (JPY 0, KWD 3).
SELECT pay.parse_amount('12.345', 'KWD') AS kwd, pay.parse_amount('12', 'JPY') AS jpy;
SELECT pay.parse_amount('1', 'ZZZ');
SELECT pay.parse_amount('1', 'usd');

-- Whether a merchant takes notifications is cached too; an UPDATE of the
-- merchant empties the cache, in this session at once.
SELECT id AS o6 FROM pay.create_order('lc_shop', 'LC-6', 100, 'USD') \gset
SELECT id AS o7 FROM pay.create_order('lc_shop', 'LC-7', 100, 'USD') \gset
SELECT status FROM pay.mark_paid(:o6, 'lc-tx-6', 100, 'USD');
UPDATE pay.merchants SET notify_url = 'https://lc.example/notify' WHERE code = 'lc_shop';
SELECT status FROM pay.mark_paid(:o7, 'lc-tx-7', 100, 'USD');
SELECT o.merchant_order_no, x.operation FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id
 WHERE o.merchant_order_no IN ('LC-6', 'LC-7') ORDER BY 1;
