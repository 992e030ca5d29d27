-- (a) pay: create an order (no idempotency key); merchant_order_no unique per call.
\set m random(1, :merchants)
\set r random(1, 9000000000000000000)
SELECT id FROM pay.create_order('bm' || :m, 'c' || :client_id || '-' || :r, 1000, 'USD');
