-- Privileges.  PUBLIC gets nothing; each role gets what its path needs
-- (README.md, "Roles"; the regression test grants.sql lists every grant).
-- The tables belong to the extension owner; the roles reach them only
-- through SECURITY DEFINER functions with a pinned search_path, plus the
-- read access granted below.  This fragment runs after every fragment that
-- creates API objects, so the REVOKEs cover them.
REVOKE ALL ON ALL TABLES IN SCHEMA pay FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pay FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pay FROM PUBLIC;

-- Row-level security on orders, events and refunds calls this as the
-- querying role (53_merchant_binding.sql): every role that reads them.
GRANT EXECUTE ON FUNCTION pay._caller_merchants() TO pay_app, pay_admin, pay_readonly;

-- pay_app: application code creating and moving orders, wallets, refunds.
-- Never a stored secret; accounts under the system prefixes are refused
-- inside open_account; a role bound to merchants acts for those only.
GRANT EXECUTE ON FUNCTION
    pay.create_order(text, text, bigint, text, text, interval, jsonb, text, text),
    pay.ship(bigint), pay.complete(bigint), pay.cancel(bigint, text),
    pay.refund(bigint, bigint, text, text),
    pay.pay_with_balance(bigint, text),
    pay.capture(bigint, bigint), pay.void(bigint),
    pay.open_account(text, text, boolean, integer), pay.balance(text), pay.available_balance(text),
    pay.parse_amount(text, text), pay.format_amount(bigint, text),
    pay.route(text, bigint, text)
  TO pay_app;
GRANT SELECT ON pay.orders, pay.order_events, pay.refunds, pay.currencies TO pay_app;

-- pay_callback: pay-proxy's callback route, nothing else.  handle_callback
-- (and record_unreadable_callback for bodies the proxy refuses) are
-- granted in 85_callbacks.sql; confirming a payment by hand (mark_paid)
-- is pay_admin's.

-- pay_admin: DBAs — set-up, merchant bindings, manual confirmations and
-- postings, jobs, reconciliation and reports.  Sees which secrets exist,
-- never a value (the secret store is the owner's).
GRANT EXECUTE ON FUNCTION
    pay.create_merchant(text, text, text), pay.create_gateway(text, text, text, jsonb),
    pay.add_routing_rule(text, text, text, integer, bigint, bigint, integer),
    pay.route(text, bigint, text), pay.set_rate_limit(text, numeric, integer),
    pay.set_routing_rule_reroute(bigint, boolean),
    pay.bind_merchant_role(regrole, text), pay.unbind_merchant_role(regrole, text),
    pay.mark_paid(bigint, text, bigint, text),
    pay.open_account(text, text, boolean, integer), pay.post(text, jsonb), pay.balance(text),
    pay.available_balance(text),
    pay.expire_orders(timestamptz, integer), pay.expire_authorizations(timestamptz, integer), pay.purge_idempotency_keys(interval, integer),
    pay.idempotency_retention(),
    pay.parse_amount(text, text), pay.format_amount(bigint, text), pay.parse_form(text)
  TO pay_admin;
GRANT SELECT ON pay.currencies, pay.merchants, pay.gateways, pay.routing_rules, pay.rate_limits,
    pay.order_statuses, pay.order_transitions, pay.orders, pay.order_events, pay.refunds,
    pay.idempotency_keys, pay.accounts, pay.account_balances, pay.postings, pay.entries,
    pay.ledger_problems, pay.order_ledger_mismatches, pay.merchant_roles, pay.holds, pay.hold_releases
  TO pay_admin;

-- pay_readonly: DBAs' reconciliation queries; granted by 99_readonly.sql,
-- the last fragment, so that it covers every table.
