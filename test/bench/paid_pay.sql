-- (b) pay: create an order and confirm its payment (which books it in the
-- ledger) in one transaction.
\set m random(1, :merchants)
\set r random(1, 9000000000000000000)
BEGIN;
SELECT id AS oid FROM pay.create_order('bm' || :m, 'p' || :client_id || '-' || :r, 1000, 'USD') \gset
SELECT status FROM pay.mark_paid(:oid, 'tx' || :oid, 1000, 'USD');
END;
