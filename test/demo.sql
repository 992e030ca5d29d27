-- The demo payment (test/demo): one order paid by a PSP, shipped, partly
-- refunded; one order paid from a wallet; the ledger explains all of it.
\pset footer off
CREATE EXTENSION pay;
\echo '== set-up: a merchant, a gateway, a customer wallet'
SELECT pay.create_merchant('acme', 'ACME Books', 'https://acme.example/pay/notify') AS merchant_id;
SELECT pay.create_gateway('stripe_main', 'stripe', 'https://api.stripe.com') AS gateway_id;
SELECT pay.add_routing_rule('stripe_main', currency => 'USD') AS routing_rule;
SELECT pay.open_account('psp:stripe_main:USD', 'USD') AS clearing_id;
SELECT pay.open_account('wallet:alice', 'USD', non_negative => true) AS wallet_id;
SELECT pay.post('topup:alice:1', '[{"account": "psp:stripe_main:USD", "amount": -5000},
                                   {"account": "wallet:alice", "amount": 5000}]') AS topup_posting;

\echo '== an order, created twice with the same idempotency key: one order'
SELECT id, merchant_order_no, pay.format_amount(amount, currency) AS amount, currency, status, gateway
  FROM pay.create_order('acme', 'INV-1001', 12999, 'USD', idempotency_key => 'req-7f3a');
SELECT id, status FROM pay.create_order('acme', 'INV-1001', 12999, 'USD', idempotency_key => 'req-7f3a');
SELECT id AS order_id FROM pay.orders WHERE merchant_order_no = 'INV-1001' \gset

\echo '== the PSP confirms the payment; the merchant ships; a partial refund'
SELECT id, status, psp_txn_id FROM pay.mark_paid(:order_id, 'pi_3NxDemo', 12999, 'USD');
SELECT id, status FROM pay.ship(:order_id);
SELECT pay.refund(:order_id, 2999, 'one book arrived damaged') AS refund_id;

\echo '== an illegal move is refused (PY001) and changes nothing'
\set ON_ERROR_STOP 0
SELECT pay.cancel(:order_id);
\set ON_ERROR_STOP 1

\echo '== a second order paid from the wallet'
SELECT id AS order2 FROM pay.create_order('acme', 'INV-1002', 3500, 'USD') \gset
SELECT id, status FROM pay.pay_with_balance(:order2, 'wallet:alice');

\echo '== what happened: the audit trail'
SELECT o.merchant_order_no, e.from_status, e.to_status, e.cause
  FROM pay.order_events e JOIN pay.orders o ON o.id = e.order_id ORDER BY e.id;
\echo '== the ledger'
SELECT p.ref, a.code AS account, pay.format_amount(e.amount, e.currency) AS amount, e.currency
  FROM pay.postings p JOIN pay.entries e ON e.posting_id = p.id JOIN pay.accounts a ON a.id = e.account_id
 ORDER BY e.id;
SELECT code AS account, pay.format_amount(pay.balance(code), currency) AS balance, currency
  FROM pay.accounts ORDER BY code;
\echo '== checks: both views are empty when the books are sound'
SELECT count(*) AS ledger_problems FROM pay.ledger_problems;
SELECT count(*) AS orders_not_explained_by_ledger FROM pay.order_ledger_mismatches;
