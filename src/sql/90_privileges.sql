-- Privileges.  PUBLIC gets nothing; each role gets what its path needs.
-- The tables belong to the extension owner; the roles reach them only
-- through SECURITY DEFINER functions with a pinned search_path, plus the
-- read access granted below.  This fragment runs last, so the REVOKEs cover
-- every object of the install script.
REVOKE ALL ON ALL TABLES IN SCHEMA pay FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pay FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pay FROM PUBLIC;

-- pay_app: application code creating and moving orders, wallets, refunds.
GRANT EXECUTE ON FUNCTION
    pay.create_order(text, text, bigint, text, text, interval, jsonb, text),
    pay.ship(bigint), pay.complete(bigint), pay.cancel(bigint, text),
    pay.refund(bigint, bigint, text, text),
    pay.pay_with_balance(bigint, text),
    pay.open_account(text, text, boolean, integer), pay.balance(text),
    pay.parse_amount(text, text), pay.format_amount(bigint, text)
  TO pay_app;
GRANT SELECT ON pay.orders, pay.order_events, pay.refunds, pay.currencies TO pay_app;

-- pay_callback: the PSP callback path confirms payments.
GRANT EXECUTE ON FUNCTION
    pay.mark_paid(bigint, text, bigint, text),
    pay.parse_amount(text, text), pay.format_amount(bigint, text), pay.parse_form(text)
  TO pay_callback;
GRANT SELECT ON pay.currencies TO pay_callback;

-- pay_admin: DBAs — set-up, manual postings, jobs, reconciliation and reports.
GRANT EXECUTE ON FUNCTION
    pay.create_merchant(text, text, text), pay.create_gateway(text, text, text, jsonb),
    pay.add_routing_rule(text, text, text, integer),
    pay.open_account(text, text, boolean, integer), pay.post(text, jsonb), pay.balance(text),
    pay.expire_orders(timestamptz, integer), pay.purge_idempotency_keys(interval, integer),
    pay.idempotency_retention(),
    pay.parse_amount(text, text), pay.format_amount(bigint, text), pay.parse_form(text)
  TO pay_admin;
GRANT SELECT ON pay.currencies, pay.merchants, pay.gateways, pay.routing_rules,
    pay.order_statuses, pay.order_transitions, pay.orders, pay.order_events, pay.refunds,
    pay.idempotency_keys, pay.accounts, pay.account_balances, pay.postings, pay.entries,
    pay.ledger_problems, pay.order_ledger_mismatches
  TO pay_admin;
