-- (a) baseline: the row pay.create_order writes, as one plain INSERT.
\set m random(1, :merchants)
\set r random(1, 9000000000000000000)
INSERT INTO bare.orders (merchant_id, merchant_order_no, amount, currency, gateway, metadata, expires_at)
VALUES (:m, 'c' || :client_id || '-' || :r, 1000, 'USD', NULL, '{}', now() + interval '15 minutes')
RETURNING id;
