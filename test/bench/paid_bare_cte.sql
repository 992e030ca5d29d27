-- (b) baseline: the writes of create_order + mark_paid as plain SQL, in as
-- many round trips as pay needs (BEGIN, two statements, END): INSERT the
-- order; then one statement that UPDATEs its status, INSERTs the order event,
-- the posting and its 2 entries and UPDATEs the 2 balance slots (PSP clearing
-- account 1 first, then the merchant's account, slot pid % 8, like pay).
-- (No ":word" inside string literals: pgbench would take it for a variable.)
\set m random(1, :merchants)
\set r random(1, 9000000000000000000)
BEGIN;
INSERT INTO bare.orders (merchant_id, merchant_order_no, amount, currency, gateway, metadata, expires_at)
VALUES (:m, 'p' || :client_id || '-' || :r, 1000, 'USD', NULL, '{}', now() + interval '15 minutes')
RETURNING id AS oid \gset
WITH u AS (
  UPDATE bare.orders
     SET status = 'paid', psp_txn_id = 'tx' || :oid, paid_at = now(), paid_account_id = 1, updated_at = now()
   WHERE id = :oid
  RETURNING id, amount, merchant_id),
ev AS (
  INSERT INTO bare.order_events (order_id, from_status, to_status, cause)
  SELECT id, 'pending', 'paid', 'mark_paid' FROM u),
p AS (
  INSERT INTO bare.postings (ref, order_id) SELECT concat_ws(':', 'order', id, 'paid'), id FROM u RETURNING id),
e AS (
  INSERT INTO bare.entries (posting_id, account_id, amount, currency)
  SELECT p.id, x.account_id, x.amount, 'USD'
    FROM p, u, LATERAL (VALUES (1::bigint, -u.amount), (u.merchant_id + 1, u.amount)) x(account_id, amount))
UPDATE bare.account_balances b SET balance = b.balance + x.delta
  FROM (VALUES (1::bigint, -1000::bigint), (:m::bigint + 1, 1000::bigint)) x(account_id, delta)
 WHERE b.account_id = x.account_id AND b.slot = pg_backend_pid() % 8;
END;
