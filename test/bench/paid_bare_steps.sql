-- (b) baseline, one statement per write, as an application without pay
-- would send them: INSERT the order; UPDATE its status; INSERT the order
-- event; INSERT the posting; INSERT its 2 entries; UPDATE the 2 balance
-- slots (PSP clearing account 1 first, then the merchant's, slot pid % 8).
\set m random(1, :merchants)
\set r random(1, 9000000000000000000)
BEGIN;
INSERT INTO bare.orders (merchant_id, merchant_order_no, amount, currency, gateway, metadata, expires_at)
VALUES (:m, 'p' || :client_id || '-' || :r, 1000, 'USD', NULL, '{}', now() + interval '15 minutes')
RETURNING id AS oid \gset
UPDATE bare.orders
   SET status = 'paid', psp_txn_id = 'tx' || :oid, paid_at = now(), paid_account_id = 1, updated_at = now()
 WHERE id = :oid;
INSERT INTO bare.order_events (order_id, from_status, to_status, cause) VALUES (:oid, 'pending', 'paid', 'mark_paid');
INSERT INTO bare.postings (ref, order_id) VALUES (concat_ws(':', 'order', :oid::bigint, 'paid'), :oid)
RETURNING id AS pid \gset
INSERT INTO bare.entries (posting_id, account_id, amount, currency)
VALUES (:pid::bigint, 1::bigint, -1000::bigint, 'USD'), (:pid::bigint, :m::bigint + 1, 1000::bigint, 'USD');
UPDATE bare.account_balances SET balance = balance - 1000 WHERE account_id = 1 AND slot = pg_backend_pid() % 8;
UPDATE bare.account_balances SET balance = balance + 1000 WHERE account_id = :m::bigint + 1 AND slot = pg_backend_pid() % 8;
END;
