-- pay 0.1 -> 0.2 (ALTER EXTENSION pay UPDATE TO '0.2').
\echo Use "ALTER EXTENSION pay UPDATE TO '0.2'" to load this file. \quit

-- References between pay's tables become row triggers (src/references.c).
CREATE FUNCTION pay._reference_exists() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_reference_exists' LANGUAGE C;
CREATE FUNCTION pay._reference_unused() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_reference_unused' LANGUAGE C;
REVOKE EXECUTE ON FUNCTION pay._reference_exists(), pay._reference_unused() FROM PUBLIC;

ALTER TABLE pay.routing_rules DROP CONSTRAINT routing_rules_merchant_id_fkey,
    DROP CONSTRAINT routing_rules_currency_fkey, DROP CONSTRAINT routing_rules_gateway_id_fkey;
ALTER TABLE pay.order_transitions DROP CONSTRAINT order_transitions_from_status_fkey,
    DROP CONSTRAINT order_transitions_to_status_fkey;
ALTER TABLE pay.refunds DROP CONSTRAINT refunds_order_id_fkey;
ALTER TABLE pay.accounts DROP CONSTRAINT accounts_currency_fkey;
ALTER TABLE pay.account_balances DROP CONSTRAINT account_balances_account_id_fkey;
ALTER TABLE pay.secrets DROP CONSTRAINT secrets_master_key_id_fkey;

CREATE TRIGGER routing_rules_merchant BEFORE INSERT OR UPDATE OF merchant_id ON pay.routing_rules
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('merchant_id', 'pay.merchants', 'id');
CREATE TRIGGER routing_rules_currency BEFORE INSERT OR UPDATE OF currency ON pay.routing_rules
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('currency', 'pay.currencies', 'code');
CREATE TRIGGER routing_rules_gateway BEFORE INSERT OR UPDATE OF gateway_id ON pay.routing_rules
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('gateway_id', 'pay.gateways', 'id');
ALTER TABLE pay.routing_rules ENABLE ALWAYS TRIGGER routing_rules_merchant;
ALTER TABLE pay.routing_rules ENABLE ALWAYS TRIGGER routing_rules_currency;
ALTER TABLE pay.routing_rules ENABLE ALWAYS TRIGGER routing_rules_gateway;
CREATE TRIGGER order_transitions_from BEFORE INSERT OR UPDATE OF from_status ON pay.order_transitions
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('from_status', 'pay.order_statuses', 'status');
CREATE TRIGGER order_transitions_to BEFORE INSERT OR UPDATE OF to_status ON pay.order_transitions
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('to_status', 'pay.order_statuses', 'status');
CREATE TRIGGER order_statuses_from BEFORE DELETE OR UPDATE OF status ON pay.order_statuses
    FOR EACH ROW EXECUTE FUNCTION pay._reference_unused('status', 'pay.order_transitions', 'from_status');
CREATE TRIGGER order_statuses_to BEFORE DELETE OR UPDATE OF status ON pay.order_statuses
    FOR EACH ROW EXECUTE FUNCTION pay._reference_unused('status', 'pay.order_transitions', 'to_status');
CREATE TRIGGER refunds_order BEFORE INSERT OR UPDATE OF order_id ON pay.refunds
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('order_id', 'pay.orders', 'id');
CREATE TRIGGER orders_refunds BEFORE DELETE ON pay.orders
    FOR EACH ROW EXECUTE FUNCTION pay._reference_unused('id', 'pay.refunds', 'order_id');
ALTER TABLE pay.order_transitions ENABLE ALWAYS TRIGGER order_transitions_from;
ALTER TABLE pay.order_transitions ENABLE ALWAYS TRIGGER order_transitions_to;
ALTER TABLE pay.order_statuses ENABLE ALWAYS TRIGGER order_statuses_from;
ALTER TABLE pay.order_statuses ENABLE ALWAYS TRIGGER order_statuses_to;
ALTER TABLE pay.refunds ENABLE ALWAYS TRIGGER refunds_order;
ALTER TABLE pay.orders ENABLE ALWAYS TRIGGER orders_refunds;
CREATE TRIGGER accounts_currency BEFORE INSERT OR UPDATE OF currency ON pay.accounts
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('currency', 'pay.currencies', 'code');
CREATE TRIGGER account_balances_account BEFORE INSERT OR UPDATE OF account_id ON pay.account_balances
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('account_id', 'pay.accounts', 'id');
ALTER TABLE pay.accounts ENABLE ALWAYS TRIGGER accounts_currency;
ALTER TABLE pay.account_balances ENABLE ALWAYS TRIGGER account_balances_account;
CREATE TRIGGER secrets_master_key BEFORE INSERT OR UPDATE OF master_key_id ON pay.secrets
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('master_key_id', 'pay.master_keys', 'id');
CREATE TRIGGER master_keys_secrets BEFORE DELETE OR UPDATE OF id ON pay.master_keys
    FOR EACH ROW EXECUTE FUNCTION pay._reference_unused('id', 'pay.secrets', 'master_key_id');
ALTER TABLE pay.secrets ENABLE ALWAYS TRIGGER secrets_master_key;
ALTER TABLE pay.master_keys ENABLE ALWAYS TRIGGER master_keys_secrets;

-- Callbacks: the full body is kept once verified, a prefix before; unknown
-- gateways are counted per day; pay.purge_callbacks; every callback about
-- an order must name its currency.
ALTER TABLE pay.callbacks ADD COLUMN body_length integer;
UPDATE pay.callbacks SET body_length = coalesce(octet_length(body), octet_length(body_bytes));
DROP INDEX pay.callbacks_received;
CREATE INDEX callbacks_purgeable ON pay.callbacks (received_at) WHERE verdict <> 'accepted';
COMMENT ON TABLE pay.callbacks IS
  'every callback to a gateway that takes callbacks, as received (headers; the body byte for byte once verified, else its first pay.callback_unverified_body_max bytes), with its verdict, the reason of a rejection and what it changed';
COMMENT ON COLUMN pay.callbacks.body IS
  'the body as received; cut to pay.callback_unverified_body_max bytes (on a character boundary) unless the callback was accepted or is a duplicate of an accepted one';
COMMENT ON COLUMN pay.callbacks.body_bytes IS
  'the raw bytes of a body pay-proxy refused to pass as text (not UTF-8), cut like body; body is then NULL';
COMMENT ON COLUMN pay.callbacks.body_length IS
  'the length in bytes of the body as received, also when less of it is kept';
CREATE TABLE pay.unknown_gateway_callbacks (
    day           date PRIMARY KEY,
    callbacks     bigint NOT NULL,
    body_bytes    bigint NOT NULL,
    last_gateway  text,
    last_at       timestamptz NOT NULL
);
COMMENT ON TABLE pay.unknown_gateway_callbacks IS
  'callbacks to names that are no gateway taking callbacks: counted per day (UTC), never stored; the last name tried (64 characters at most)';

CREATE OR REPLACE FUNCTION pay._callback_generic(g pay.gateways, h jsonb, p_body text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  p jsonb;
  v_status text;
BEGIN
  PERFORM pay._require_content_type(h, 'application/json', 'application/x-www-form-urlencoded');
  p := CASE WHEN lower(h->>'content-type') LIKE 'application/json%' THEN pay._json_body(p_body)
            ELSE pay.parse_form(p_body) END;
  -- the signed string leaves out empty values: so does everything below
  p := (SELECT coalesce(jsonb_object_agg(f.key, f.value), '{}') FROM jsonb_each(p) f
         WHERE f.value NOT IN ('""'::jsonb, 'null'::jsonb));
  v_status := p->>'status';
  IF p->>'sign' IS NULL OR NOT pay.constant_time_equal(
       pay.sign_params(p - 'sign', pay._gateway_secret(g, 'webhook_secret')), lower(p->>'sign')) THEN
    RAISE EXCEPTION 'sign does not verify' USING ERRCODE = 'PY010';
  END IF;
  PERFORM pay._check_window(g, pay._unix_time(p->>'timestamp'));
  IF p->>'nonce' IS NULL OR length(p->>'nonce') NOT BETWEEN 8 AND 64 THEN
    RAISE EXCEPTION 'nonce must be 8 to 64 characters' USING ERRCODE = 'PY012';
  END IF;
  RETURN jsonb_build_object(
    'event_id', p->>'event_id',
    'nonce', p->>'nonce',
    'type', v_status,
    'kind', CASE v_status WHEN 'success' THEN 'payment_succeeded' WHEN 'paid' THEN 'payment_succeeded'
                          WHEN 'failed' THEN 'payment_failed' WHEN 'refunded' THEN 'refunded'
                          WHEN 'closed' THEN 'closed' ELSE 'ignored' END,
    'order_ref', p->>'out_trade_no',
    'psp_txn_id', p->>'trade_no',
    'amount', p->>'amount',
    'currency', p->>'currency',
    'refund_id', p->>'refund_id',
    'refund_amount', p->>'refund_amount');
END $$;

CREATE OR REPLACE FUNCTION pay._apply_event(g pay.gateways, e jsonb, p_callback bigint, OUT order_id bigint, OUT outcome text)
LANGUAGE plpgsql AS $$
DECLARE
  o pay.orders;
  v_amount bigint;
  v_currency text := e->>'currency';
BEGIN
  IF e->>'kind' = 'ignored' THEN
    outcome := 'ignored event type ' || coalesce(e->>'type', '(none)');
    RETURN;
  END IF;
  o := pay._callback_order(g, e);
  order_id := o.id;
  IF v_currency IS NULL THEN
    outcome := pay._anomaly(o, g, p_callback, 'currency_missing',
      format('callback names no currency, order %s is in %s', o.id, o.currency));
    RETURN;
  ELSIF v_currency <> o.currency::text THEN
    outcome := pay._anomaly(o, g, p_callback, 'currency_mismatch',
      format('callback says %s, order %s is in %s', v_currency, o.id, o.currency));
    RETURN;
  END IF;

  IF e->>'kind' = 'refunded' THEN
    IF o.paid_at IS NULL THEN
      INSERT INTO pay.deferred_events (gateway, order_id, callback_id, event) VALUES (g.name, o.id, p_callback, e);
      outcome := 'refund deferred until the payment arrives';
    ELSE
      outcome := pay._apply_psp_refund(o, g, e, p_callback);
    END IF;
    RETURN;
  END IF;

  -- a payment must match exactly; a failure or close is checked when it names an amount
  v_amount := pay._event_amount(e->>'amount', e->>'amount_major', v_currency);
  IF v_amount <> o.amount OR (v_amount IS NULL AND e->>'kind' = 'payment_succeeded') THEN
    outcome := pay._anomaly(o, g, p_callback, 'amount_mismatch',
      format('callback says %s %s, order %s is %s %s', coalesce(v_amount::text, '(none)'), v_currency,
             o.id, o.amount, o.currency));
    RETURN;
  END IF;

  CASE e->>'kind'
  WHEN 'payment_succeeded' THEN
    IF o.status IN ('pending', 'failed') THEN
      o := pay._settle(o, e->>'psp_txn_id', 'callback ' || p_callback);
      outcome := 'paid' || pay._apply_deferred(g, o.id);
    ELSIF o.paid_at IS NOT NULL AND o.psp_txn_id IS NOT DISTINCT FROM e->>'psp_txn_id' THEN
      outcome := 'already paid by this transaction';
    ELSIF o.paid_at IS NOT NULL THEN
      outcome := pay._book_and_return(o, g, e, p_callback, v_amount, 'double_payment');
    ELSE
      outcome := pay._book_and_return(o, g, e, p_callback, v_amount, 'payment_after_' || o.status);
    END IF;
  WHEN 'payment_failed' THEN
    IF o.status = 'pending' THEN
      UPDATE pay.orders SET status = 'failed', status_cause = 'callback ' || p_callback
       WHERE id = o.id RETURNING * INTO o;
      outcome := 'failed';
    ELSE
      outcome := 'failure ignored: order is ' || o.status;
    END IF;
  WHEN 'closed' THEN
    IF o.status = 'pending' THEN
      UPDATE pay.orders SET status = 'cancelled', status_cause = 'callback ' || p_callback
       WHERE id = o.id RETURNING * INTO o;
      outcome := 'cancelled';
    ELSE
      outcome := 'close ignored: order is ' || o.status;
    END IF;
  END CASE;
END $$;

CREATE FUNCTION pay.purge_callbacks(older_than interval, max_rows integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  IF older_than IS NULL OR older_than < interval '0' THEN
    RAISE EXCEPTION 'older_than must be an interval of zero or more' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF max_rows IS NULL OR max_rows < 1 THEN
    RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- the partial index callbacks_purgeable holds exactly these rows
  DELETE FROM pay.callbacks c
   WHERE c.id IN (SELECT x.id FROM pay.callbacks x
                   WHERE x.verdict <> 'accepted' AND x.received_at < now() - older_than
                   ORDER BY x.received_at LIMIT max_rows);
  GET DIAGNOSTICS n = ROW_COUNT;
  DELETE FROM pay.unknown_gateway_callbacks u WHERE u.day < ((now() - older_than) AT TIME ZONE 'UTC')::date;
  RETURN n;
END $$;

COMMENT ON FUNCTION pay.purge_callbacks(interval, integer) IS
  'deletes up to max_rows callbacks older than older_than that were not accepted (rejected, error, duplicate), and the unknown-gateway day counts as old; returns how many callbacks';

CREATE OR REPLACE FUNCTION pay.record_unreadable_callback(provider text, headers jsonb, reason_code text, reason text,
                                               body_bytes bytea, http_status integer)
RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_record_unreadable_callback'
    LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION pay.record_unreadable_callback(text, jsonb, text, text, bytea, integer) IS
  'records a callback that pay-proxy refused before handle_callback (too large, not UTF-8); NULL, only counted, for a name that is no gateway taking callbacks';

-- Outbound destinations: notify_url and base_url refused on loopback, private and
-- link-local addresses unless pay.allow_private_destinations is on.
CREATE FUNCTION pay._check_destination(field text, url text) RETURNS void
    AS 'MODULE_PATHNAME', 'pay_check_destination' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION pay._check_destination(text, text) IS
  'raises 22023 naming field when url may not be sent to: malformed, a numeric host that is not a dotted quad, or (unless pay.allow_private_destinations) a loopback, link-local, private or unspecified address or localhost';


CREATE OR REPLACE FUNCTION pay.create_merchant(code text, name text, notify_url text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
BEGIN
  IF code IS NULL OR code !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
    RAISE EXCEPTION 'code must be 1 to 64 letters, digits or _.-' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF name IS NULL OR length(btrim(name)) = 0 OR length(name) > 200 THEN
    RAISE EXCEPTION 'name must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF notify_url IS NOT NULL AND (notify_url !~ '^https?://[^[:space:]]+$' OR length(notify_url) > 2000) THEN
    RAISE EXCEPTION 'notify_url must be an http or https URL' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pay._check_destination('notify_url', notify_url);
  INSERT INTO pay.merchants (code, name, notify_url)
    VALUES (create_merchant.code, create_merchant.name, create_merchant.notify_url)
    RETURNING id INTO v_id;
  RETURN v_id;
END $$;

CREATE OR REPLACE FUNCTION pay.create_gateway(name text, kind text, base_url text DEFAULT NULL,
                                   options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
BEGIN
  IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
    RAISE EXCEPTION 'name must be 1 to 64 letters, digits or _.-' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF kind IS NULL OR kind NOT IN ('stripe', 'alipay', 'wechatpay', 'adyen', 'paypal', 'generic') THEN
    RAISE EXCEPTION 'kind must be one of stripe, alipay, wechatpay, adyen, paypal, generic; not "%"', kind
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF base_url IS NOT NULL AND base_url !~ '^https?://[^[:space:]]+$' THEN
    RAISE EXCEPTION 'base_url must be an http or https URL' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pay._check_destination('base_url', base_url);
  IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pay.gateways (name, kind, base_url, options)
    VALUES (create_gateway.name, create_gateway.kind, create_gateway.base_url, create_gateway.options)
    RETURNING id INTO v_id;
  RETURN v_id;
END $$;

-- Roles: pay_readonly; merchant binding with row-level security; system
-- account prefixes; no stored secret computes for anyone but the owner.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pay_readonly') THEN
    CREATE ROLE pay_readonly NOLOGIN;
  END IF;
END $$;

CREATE TABLE pay.merchant_roles (
    role         regrole NOT NULL,
    merchant_id  bigint NOT NULL,       -- in pay.merchants: merchant_roles_merchant
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, merchant_id)
);
COMMENT ON TABLE pay.merchant_roles IS
  'which merchants an application role (and every member of it) is bound to; a role with no row here acts for every merchant';
-- References (src/references.c: triggers rather than foreign keys).
CREATE TRIGGER merchant_roles_merchant BEFORE INSERT OR UPDATE OF merchant_id ON pay.merchant_roles
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('merchant_id', 'pay.merchants', 'id');
ALTER TABLE pay.merchant_roles ENABLE ALWAYS TRIGGER merchant_roles_merchant;

CREATE FUNCTION pay._outer_role() RETURNS oid
    AS 'MODULE_PATHNAME', 'pay_outer_role' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay._outer_role() IS
  'internal: the role the caller acts as (SET ROLE''s role, else the session user), also inside SECURITY DEFINER functions';

-- The merchants the caller is bound to, or NULL when it is not bound (it
-- then acts for every merchant).  SECURITY DEFINER: the row-level security
-- policies call it as the querying role, which cannot read the bindings.
CREATE FUNCTION pay._caller_merchants() RETURNS bigint[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role oid;
  v_session oid;
  v_merchants bigint[];
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pay.merchant_roles) THEN
    RETURN NULL;
  END IF;
  v_role := pay._outer_role();
  -- superusers (members of every role) and the owner act for everyone
  IF pg_has_role(v_role, (SELECT c.relowner FROM pg_class c WHERE c.oid = 'pay.orders'::regclass), 'USAGE') THEN
    RETURN NULL;
  END IF;
  -- The login role's bindings hold too: a bound login that is also a
  -- member of pay_app must not shed them with SET ROLE pay_app.  (A
  -- superuser's session is no login of an application.)
  SELECT r.oid INTO v_session FROM pg_roles r WHERE r.rolname = session_user AND NOT r.rolsuper;
  SELECT array_agg(DISTINCT b.merchant_id ORDER BY b.merchant_id) INTO v_merchants
    FROM pay.merchant_roles b
   WHERE pg_has_role(v_role, b.role::oid, 'MEMBER')
      OR (v_session IS NOT NULL AND pg_has_role(v_session, b.role::oid, 'MEMBER'));
  RETURN v_merchants;
END $$;
COMMENT ON FUNCTION pay._caller_merchants() IS
  'internal: the merchants the calling role is bound to (pay.merchant_roles, through role membership); NULL when it is not bound';

-- May the caller act for this merchant (create, move or see its orders)?
-- C (src/merchant_binding.c): with no binding at all it answers from a
-- per-backend flag, since every payment asks; a write to the bindings
-- resets the flag in every backend.
CREATE FUNCTION pay._acts_for(merchant_id bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_acts_for' LANGUAGE C STABLE;
COMMENT ON FUNCTION pay._acts_for(bigint) IS
  'internal: whether the calling role may act for the merchant (not bound, or bound to it); true for NULL';
CREATE TRIGGER merchant_roles_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pay.merchant_roles
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
ALTER TABLE pay.merchant_roles ENABLE ALWAYS TRIGGER merchant_roles_cache;

CREATE FUNCTION pay._merchant_code_id(p_merchant text) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
BEGIN
  SELECT m.id INTO v_id FROM pay.merchants m WHERE m.code = p_merchant;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'merchant: unknown merchant "%"', coalesce(p_merchant, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v_id;
END $$;

CREATE FUNCTION pay.bind_merchant_role(role regrole, merchant text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint;
BEGIN
  IF role IS NULL THEN
    RAISE EXCEPTION 'role must not be null' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_merchant := pay._merchant_code_id(merchant);
  INSERT INTO pay.merchant_roles (role, merchant_id) VALUES (role, v_merchant)
    ON CONFLICT DO NOTHING;
  RETURN FOUND;
END $$;
COMMENT ON FUNCTION pay.bind_merchant_role(regrole, text) IS
  'binds a role (and its members) to a merchant: from then on it sees and moves only the orders of the merchants it is bound to; true if the binding is new';

CREATE FUNCTION pay.unbind_merchant_role(role regrole, merchant text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint;
BEGIN
  v_merchant := pay._merchant_code_id(merchant);
  DELETE FROM pay.merchant_roles b WHERE b.role = unbind_merchant_role.role AND b.merchant_id = v_merchant;
  RETURN FOUND;
END $$;
COMMENT ON FUNCTION pay.unbind_merchant_role(regrole, text) IS
  'removes a binding of a role to a merchant (a role left with none acts for every merchant again); true if it existed';

-- Reads: a bound role's queries see only its merchants' rows.  The
-- function runs once per query (an InitPlan), not once per row; for an
-- unbound role the first branch is true and the rest is not evaluated.
ALTER TABLE pay.orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE pay.order_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE pay.refunds ENABLE ROW LEVEL SECURITY;
CREATE POLICY orders_merchant_binding ON pay.orders FOR SELECT
  USING ((SELECT pay._caller_merchants()) IS NULL
         OR merchant_id OPERATOR(pg_catalog.=) ANY ((SELECT pay._caller_merchants())::bigint[]));
CREATE POLICY order_events_merchant_binding ON pay.order_events FOR SELECT
  USING ((SELECT pay._caller_merchants()) IS NULL
         OR EXISTS (SELECT 1 FROM pay.orders o
                     WHERE o.id OPERATOR(pg_catalog.=) order_events.order_id
                       AND o.merchant_id OPERATOR(pg_catalog.=) ANY ((SELECT pay._caller_merchants())::bigint[])));
CREATE POLICY refunds_merchant_binding ON pay.refunds FOR SELECT
  USING ((SELECT pay._caller_merchants()) IS NULL
         OR EXISTS (SELECT 1 FROM pay.orders o
                     WHERE o.id OPERATOR(pg_catalog.=) refunds.order_id
                       AND o.merchant_id OPERATOR(pg_catalog.=) ANY ((SELECT pay._caller_merchants())::bigint[])));

CREATE OR REPLACE FUNCTION pay.open_account(code text, currency text, non_negative boolean DEFAULT false,
                                 slots integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
  v_slots integer := coalesce(slots, CASE WHEN non_negative THEN 1 ELSE 8 END);
BEGIN
  IF code IS NULL OR code !~ '^[A-Za-z0-9_.:@-]{1,128}$' THEN
    RAISE EXCEPTION 'code must be 1 to 128 letters, digits or _.:@-'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The system's own accounts open on first use, in the currency of what
  -- they book (pay._account_open); one opened ahead by the application in
  -- another currency, or non-negative, would refuse every later payment.
  -- The caller is the outer role: current_user is the owner here.
  IF code ~* '^(merchant|psp|fees|bank):'
     AND NOT pg_has_role(pay._outer_role(), 'pay_admin', 'MEMBER')
     AND NOT pg_has_role(pay._outer_role(),
                         (SELECT c.relowner FROM pg_class c WHERE c.oid = 'pay.accounts'::regclass), 'USAGE') THEN
    RAISE EXCEPTION 'code: account "%" is under a system prefix (merchant:, psp:, fees:, bank:); only pay_admin may open it',
      code USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pay.currencies c WHERE c.code = currency) THEN
    RAISE EXCEPTION 'unknown currency "%"', currency USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF non_negative IS NULL THEN
    RAISE EXCEPTION 'non_negative must not be null' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_slots NOT BETWEEN 1 AND 64 OR (non_negative AND v_slots <> 1) THEN
    RAISE EXCEPTION 'slots must be between 1 and 64, and 1 for a non-negative account'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pay.accounts (code, currency, non_negative, slots)
    VALUES (open_account.code, open_account.currency, open_account.non_negative, v_slots)
    RETURNING id INTO v_id;
  INSERT INTO pay.account_balances (account_id, slot)
    SELECT v_id, s FROM generate_series(0, v_slots - 1) s;
  RETURN v_id;
END $$;
COMMENT ON FUNCTION pay.open_account(text, text, boolean, integer) IS
  'opens a ledger account; non_negative accounts (wallets) can never go below zero. Codes under merchant:, psp:, fees:, bank: (any case) are the system''s: pay_admin only';


CREATE OR REPLACE FUNCTION pay.balance(account text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
  v_balance numeric;
BEGIN
  SELECT id INTO v_id FROM pay.accounts WHERE code = account;
  -- to a role bound to other merchants (53_merchant_binding.sql), another
  -- merchant's account does not exist
  IF FOUND AND account ~* '^merchant:'
     AND NOT pay._acts_for((SELECT m.id FROM pay.merchants m WHERE m.code = split_part(account, ':', 2))) THEN
    v_id := NULL;
  END IF;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'unknown account "%"', account USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT sum(b.balance) INTO v_balance FROM pay.account_balances b WHERE b.account_id = v_id;
  RETURN v_balance::bigint;
END $$;

CREATE OR REPLACE FUNCTION pay.create_order(merchant text, merchant_order_no text, amount bigint, currency text,
                                 idempotency_key text DEFAULT NULL,
                                 expires_in interval DEFAULT '15 minutes',
                                 metadata jsonb DEFAULT '{}', gateway text DEFAULT NULL)
RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint;
  v_id bigint;
  v_request jsonb;
  v_key pay.idempotency_keys;
  o pay.orders;
BEGIN
  v_merchant := pay._merchant_id(merchant);
  -- merchant binding (53_merchant_binding.sql)
  IF NOT pay._acts_for(v_merchant) THEN
    RAISE EXCEPTION 'merchant: role "%" is not bound to merchant "%"',
      pay._outer_role()::regrole, merchant USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM pay._check_order_args(merchant_order_no, amount, pay._exponent(currency),
                                expires_in, metadata, idempotency_key);
  v_id := nextval('pay.orders_id_seq');

  IF idempotency_key IS NOT NULL THEN
    v_request := jsonb_build_object('merchant_order_no', merchant_order_no, 'amount', amount,
                                    'currency', currency, 'expires_in', expires_in,
                                    'metadata', metadata, 'gateway', gateway);
    -- A racing caller with the same key waits here until the first commits.
    INSERT INTO pay.idempotency_keys (merchant_id, key, request, order_id)
      VALUES (v_merchant, idempotency_key, v_request, v_id)
      ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT * INTO v_key FROM pay.idempotency_keys k
       WHERE k.merchant_id = v_merchant AND k.key = idempotency_key;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'idempotency key "%" is in use by a transaction this snapshot cannot see', idempotency_key
          USING ERRCODE = 'serialization_failure', HINT = 'Retry the call.';
      END IF;
      IF v_key.request <> v_request THEN
        RAISE EXCEPTION 'idempotency_key "%" was already used with different parameters', idempotency_key
          USING ERRCODE = 'PY002', DETAIL = format('First request: %s', v_key.request);
      END IF;
      SELECT * INTO STRICT o FROM pay.orders WHERE id = v_key.order_id;
      RETURN o;
    END IF;
  END IF;

  INSERT INTO pay.orders (id, merchant_id, merchant_order_no, amount, currency, gateway, metadata, expires_at)
    VALUES (v_id, v_merchant, merchant_order_no, amount, currency,
            pay._route(gateway, v_merchant, currency), metadata, now() + expires_in)
    RETURNING * INTO o;
  RETURN o;
END $$;

CREATE OR REPLACE FUNCTION pay._lock_order(p_order_id bigint) RETURNS pay.orders
LANGUAGE plpgsql AS $$
DECLARE
  o pay.orders;
BEGIN
  SELECT * INTO o FROM pay.orders WHERE id = p_order_id FOR UPDATE;
  IF NOT FOUND OR NOT pay._acts_for(o.merchant_id) THEN
    RAISE EXCEPTION 'order_id: order % does not exist', coalesce(p_order_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN o;
END $$;

CREATE OR REPLACE FUNCTION pay.enqueue_psp_request(order_id bigint, operation text, params jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  v_key text;
  v_refund bigint;
BEGIN
  IF operation IS NULL OR operation NOT IN ('create_payment', 'query', 'refund', 'close') THEN
    RAISE EXCEPTION 'operation must be one of create_payment, query, refund, close; not "%"', coalesce(operation, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF octet_length(params::text) > 8192 THEN
    RAISE EXCEPTION 'params is larger than 8192 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO o FROM pay.orders WHERE id = enqueue_psp_request.order_id;
  -- to a caller bound to other merchants (53_merchant_binding.sql) it does not exist
  IF NOT FOUND OR NOT pay._acts_for(o.merchant_id) THEN
    RAISE EXCEPTION 'order_id: order % does not exist', coalesce(enqueue_psp_request.order_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF o.gateway IS NULL THEN
    RAISE EXCEPTION 'order % has no gateway to send % to', o.id, operation USING ERRCODE = 'invalid_parameter_value';
  END IF;
  CASE operation
    WHEN 'refund' THEN
      IF params->>'refund_id' IS NULL OR params->>'refund_id' !~ '^[0-9]{1,18}$' THEN
        RAISE EXCEPTION 'params: a refund needs "refund_id", the id returned by pay.refund'
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      v_refund := (params->>'refund_id')::bigint;
      PERFORM 1 FROM pay.refunds r WHERE r.id = v_refund AND r.order_id = o.id;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'params: refund % is not a refund of order %', v_refund, o.id
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      v_key := 'psp_' || o.id || '_refund_' || v_refund;
    WHEN 'query' THEN
      -- a query changes nothing: every one is sent
      v_key := 'psp_' || o.id || '_query_' || nextval('pay.outbox_id_seq');
    ELSE
      v_key := 'psp_' || o.id || '_' || operation;
  END CASE;
  RETURN pay._enqueue('psp_request', 'gateway:' || o.gateway, operation, o.id, params, v_key, true);
END $$;

CREATE OR REPLACE FUNCTION pay.api_get_payment(headers jsonb, id text) RETURNS SETOF pay.http_response
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h jsonb := pay._lower_headers(headers);
  v_merchant bigint;
  o pay.orders;
BEGIN
  v_merchant := pay._api_authenticate(h, jsonb_build_object('id', id));
  IF id !~ '^[0-9]{1,18}$' THEN
    RAISE EXCEPTION 'id must be an order id' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO o FROM pay.orders x WHERE x.id = api_get_payment.id::bigint AND x.merchant_id = v_merchant;
  -- a role bound to other merchants (53_merchant_binding.sql) does not see it either
  IF NOT FOUND OR NOT pay._acts_for(o.merchant_id) THEN
    -- another merchant's order is as absent as one that does not exist
    RETURN NEXT ROW(404, 'application/json',
                    '{"error":{"code":"not_found","message":"no such payment"}}')::pay.http_response;
    RETURN;
  END IF;
  RETURN NEXT ROW(200, 'application/json', pay._order_json(o)::text)::pay.http_response;
END $$;

CREATE OR REPLACE FUNCTION pay.secret_hmac_sha256_hex(owner text, name text, message text) RETURNS text
LANGUAGE C STABLE STRICT AS 'MODULE_PATHNAME', 'pay_secret_hmac_sha256_hex';
COMMENT ON FUNCTION pay.secret_hmac_sha256_hex(text, text, text) IS
  'hex HMAC-SHA256 of message keyed with a stored credential, without revealing it; owner only (no role is granted it)';

CREATE OR REPLACE FUNCTION pay.set_secret(owner text, name text, value text) RETURNS void
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pay_set_secret';
COMMENT ON FUNCTION pay.set_secret(text, text, text) IS
  'stores (or replaces) a credential sealed under the current master key; the first call creates master key generation 1 from pay.master_key_file. Owner and pay_admin (write only: no role reads a value back). Pass the value as a bind parameter: statement logging can record literals';

CREATE OR REPLACE FUNCTION pay.delete_secret(owner text, name text) RETURNS boolean
LANGUAGE sql VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH gone AS (
    DELETE FROM pay.secrets s WHERE s.owner = $1 AND s.name = $2 RETURNING 1
  )
  SELECT count(*) > 0 FROM gone
$$;
COMMENT ON FUNCTION pay.delete_secret(text, text) IS 'deletes a credential; true if it existed. Owner and pay_admin';

-- Backups and the extension's lifecycle.
--
-- pg_dump keeps the rows of an extension's tables only when the install
-- script marks them (pg_extension_config_dump); everything else is part of
-- the extension and comes back from CREATE EXTENSION pay.  Every table that
-- holds data is marked, with its identity sequence (or ids would restart
-- at 1).  Not marked: pay.outbox_backlog, whose counts the outbox triggers
-- rebuild while the outbox rows are restored (same total, other slots), and
-- pay.seed_rows below.
--
-- A restore COPYs the rows into the tables CREATE EXTENSION made, with every
-- trigger live: the triggers tell a superuser's COPY from other writes
-- (src/restore.c) and let a restored order keep its status; every other
-- rule applies to restored rows as to new ones, and all of them guard again
-- once the restore is over.
--
-- The tables the install script seeds (currencies, order statuses and
-- transitions) are dumped only with the rows a user added or changed:
-- CREATE EXTENSION seeds the rest again.  A changed seeded row comes back
-- over the seed (pay._restore_seeded_row).

-- The seeded rows as the install script wrote them, each table's row as text.
CREATE TABLE pay.seed_rows (
    table_name  text NOT NULL,
    row_text    text NOT NULL,
    PRIMARY KEY (table_name, row_text)
);
COMMENT ON TABLE pay.seed_rows IS
  'the rows the install script seeded, as text: pg_dump keeps only the rows of pay.currencies, pay.order_statuses and pay.order_transitions that are not among them';
-- The seeds as 0.1 wrote them (the tables may hold a user's changes by now).
INSERT INTO pay.seed_rows
  SELECT 'currencies', ROW(v.code, v.numeric_code, v.exponent, v.name)::pay.currencies::text
    FROM (VALUES
  ('AED', 784, 2, 'UAE Dirham'),
  ('AFN', 971, 2, 'Afghani'),
  ('ALL', 8, 2, 'Lek'),
  ('AMD', 51, 2, 'Armenian Dram'),
  ('ANG', 532, 2, 'Netherlands Antillean Guilder'),
  ('AOA', 973, 2, 'Kwanza'),
  ('ARS', 32, 2, 'Argentine Peso'),
  ('AUD', 36, 2, 'Australian Dollar'),
  ('AWG', 533, 2, 'Aruban Florin'),
  ('AZN', 944, 2, 'Azerbaijan Manat'),
  ('BAM', 977, 2, 'Convertible Mark'),
  ('BBD', 52, 2, 'Barbados Dollar'),
  ('BDT', 50, 2, 'Taka'),
  ('BGN', 975, 2, 'Bulgarian Lev'),
  ('BHD', 48, 3, 'Bahraini Dinar'),
  ('BIF', 108, 0, 'Burundi Franc'),
  ('BMD', 60, 2, 'Bermudian Dollar'),
  ('BND', 96, 2, 'Brunei Dollar'),
  ('BOB', 68, 2, 'Boliviano'),
  ('BOV', 984, 2, 'Mvdol'),
  ('BRL', 986, 2, 'Brazilian Real'),
  ('BSD', 44, 2, 'Bahamian Dollar'),
  ('BTN', 64, 2, 'Ngultrum'),
  ('BWP', 72, 2, 'Pula'),
  ('BYN', 933, 2, 'Belarusian Ruble'),
  ('BZD', 84, 2, 'Belize Dollar'),
  ('CAD', 124, 2, 'Canadian Dollar'),
  ('CDF', 976, 2, 'Congolese Franc'),
  ('CHE', 947, 2, 'WIR Euro'),
  ('CHF', 756, 2, 'Swiss Franc'),
  ('CHW', 948, 2, 'WIR Franc'),
  ('CLF', 990, 4, 'Unidad de Fomento'),
  ('CLP', 152, 0, 'Chilean Peso'),
  ('CNY', 156, 2, 'Yuan Renminbi'),
  ('COP', 170, 2, 'Colombian Peso'),
  ('COU', 970, 2, 'Unidad de Valor Real'),
  ('CRC', 188, 2, 'Costa Rican Colon'),
  ('CUC', 931, 2, 'Peso Convertible'),
  ('CUP', 192, 2, 'Cuban Peso'),
  ('CVE', 132, 2, 'Cabo Verde Escudo'),
  ('CZK', 203, 2, 'Czech Koruna'),
  ('DJF', 262, 0, 'Djibouti Franc'),
  ('DKK', 208, 2, 'Danish Krone'),
  ('DOP', 214, 2, 'Dominican Peso'),
  ('DZD', 12, 2, 'Algerian Dinar'),
  ('EGP', 818, 2, 'Egyptian Pound'),
  ('ERN', 232, 2, 'Nakfa'),
  ('ETB', 230, 2, 'Ethiopian Birr'),
  ('EUR', 978, 2, 'Euro'),
  ('FJD', 242, 2, 'Fiji Dollar'),
  ('FKP', 238, 2, 'Falkland Islands Pound'),
  ('GBP', 826, 2, 'Pound Sterling'),
  ('GEL', 981, 2, 'Lari'),
  ('GHS', 936, 2, 'Ghana Cedi'),
  ('GIP', 292, 2, 'Gibraltar Pound'),
  ('GMD', 270, 2, 'Dalasi'),
  ('GNF', 324, 0, 'Guinean Franc'),
  ('GTQ', 320, 2, 'Quetzal'),
  ('GYD', 328, 2, 'Guyana Dollar'),
  ('HKD', 344, 2, 'Hong Kong Dollar'),
  ('HNL', 340, 2, 'Lempira'),
  ('HTG', 332, 2, 'Gourde'),
  ('HUF', 348, 2, 'Forint'),
  ('IDR', 360, 2, 'Rupiah'),
  ('ILS', 376, 2, 'New Israeli Sheqel'),
  ('INR', 356, 2, 'Indian Rupee'),
  ('IQD', 368, 3, 'Iraqi Dinar'),
  ('IRR', 364, 2, 'Iranian Rial'),
  ('ISK', 352, 0, 'Iceland Krona'),
  ('JMD', 388, 2, 'Jamaican Dollar'),
  ('JOD', 400, 3, 'Jordanian Dinar'),
  ('JPY', 392, 0, 'Yen'),
  ('KES', 404, 2, 'Kenyan Shilling'),
  ('KGS', 417, 2, 'Som'),
  ('KHR', 116, 2, 'Riel'),
  ('KMF', 174, 0, 'Comorian Franc'),
  ('KPW', 408, 2, 'North Korean Won'),
  ('KRW', 410, 0, 'Won'),
  ('KWD', 414, 3, 'Kuwaiti Dinar'),
  ('KYD', 136, 2, 'Cayman Islands Dollar'),
  ('KZT', 398, 2, 'Tenge'),
  ('LAK', 418, 2, 'Lao Kip'),
  ('LBP', 422, 2, 'Lebanese Pound'),
  ('LKR', 144, 2, 'Sri Lanka Rupee'),
  ('LRD', 430, 2, 'Liberian Dollar'),
  ('LSL', 426, 2, 'Loti'),
  ('LYD', 434, 3, 'Libyan Dinar'),
  ('MAD', 504, 2, 'Moroccan Dirham'),
  ('MDL', 498, 2, 'Moldovan Leu'),
  ('MGA', 969, 2, 'Malagasy Ariary'),
  ('MKD', 807, 2, 'Denar'),
  ('MMK', 104, 2, 'Kyat'),
  ('MNT', 496, 2, 'Tugrik'),
  ('MOP', 446, 2, 'Pataca'),
  ('MRU', 929, 2, 'Ouguiya'),
  ('MUR', 480, 2, 'Mauritius Rupee'),
  ('MVR', 462, 2, 'Rufiyaa'),
  ('MWK', 454, 2, 'Malawi Kwacha'),
  ('MXN', 484, 2, 'Mexican Peso'),
  ('MXV', 979, 2, 'Mexican Unidad de Inversion (UDI)'),
  ('MYR', 458, 2, 'Malaysian Ringgit'),
  ('MZN', 943, 2, 'Mozambique Metical'),
  ('NAD', 516, 2, 'Namibia Dollar'),
  ('NGN', 566, 2, 'Naira'),
  ('NIO', 558, 2, 'Cordoba Oro'),
  ('NOK', 578, 2, 'Norwegian Krone'),
  ('NPR', 524, 2, 'Nepalese Rupee'),
  ('NZD', 554, 2, 'New Zealand Dollar'),
  ('OMR', 512, 3, 'Rial Omani'),
  ('PAB', 590, 2, 'Balboa'),
  ('PEN', 604, 2, 'Sol'),
  ('PGK', 598, 2, 'Kina'),
  ('PHP', 608, 2, 'Philippine Peso'),
  ('PKR', 586, 2, 'Pakistan Rupee'),
  ('PLN', 985, 2, 'Zloty'),
  ('PYG', 600, 0, 'Guarani'),
  ('QAR', 634, 2, 'Qatari Rial'),
  ('RON', 946, 2, 'Romanian Leu'),
  ('RSD', 941, 2, 'Serbian Dinar'),
  ('RUB', 643, 2, 'Russian Ruble'),
  ('RWF', 646, 0, 'Rwanda Franc'),
  ('SAR', 682, 2, 'Saudi Riyal'),
  ('SBD', 90, 2, 'Solomon Islands Dollar'),
  ('SCR', 690, 2, 'Seychelles Rupee'),
  ('SDG', 938, 2, 'Sudanese Pound'),
  ('SEK', 752, 2, 'Swedish Krona'),
  ('SGD', 702, 2, 'Singapore Dollar'),
  ('SHP', 654, 2, 'Saint Helena Pound'),
  ('SLE', 925, 2, 'Leone'),
  ('SLL', 694, 2, 'Leone (old)'),
  ('SOS', 706, 2, 'Somali Shilling'),
  ('SRD', 968, 2, 'Surinam Dollar'),
  ('SSP', 728, 2, 'South Sudanese Pound'),
  ('STN', 930, 2, 'Dobra'),
  ('SVC', 222, 2, 'El Salvador Colon'),
  ('SYP', 760, 2, 'Syrian Pound'),
  ('SZL', 748, 2, 'Lilangeni'),
  ('THB', 764, 2, 'Baht'),
  ('TJS', 972, 2, 'Somoni'),
  ('TMT', 934, 2, 'Turkmenistan New Manat'),
  ('TND', 788, 3, 'Tunisian Dinar'),
  ('TOP', 776, 2, 'Pa''anga'),
  ('TRY', 949, 2, 'Turkish Lira'),
  ('TTD', 780, 2, 'Trinidad and Tobago Dollar'),
  ('TWD', 901, 2, 'New Taiwan Dollar'),
  ('TZS', 834, 2, 'Tanzanian Shilling'),
  ('UAH', 980, 2, 'Hryvnia'),
  ('UGX', 800, 0, 'Uganda Shilling'),
  ('USD', 840, 2, 'US Dollar'),
  ('USN', 997, 2, 'US Dollar (Next day)'),
  ('UYI', 940, 0, 'Uruguay Peso en Unidades Indexadas (UI)'),
  ('UYU', 858, 2, 'Peso Uruguayo'),
  ('UYW', 927, 4, 'Unidad Previsional'),
  ('UZS', 860, 2, 'Uzbekistan Sum'),
  ('VED', 926, 2, 'Bolivar Soberano (digital)'),
  ('VES', 928, 2, 'Bolivar Soberano'),
  ('VND', 704, 0, 'Dong'),
  ('VUV', 548, 0, 'Vatu'),
  ('WST', 882, 2, 'Tala'),
  ('XAF', 950, 0, 'CFA Franc BEAC'),
  ('XCD', 951, 2, 'East Caribbean Dollar'),
  ('XCG', 532, 2, 'Caribbean Guilder'),
  ('XOF', 952, 0, 'CFA Franc BCEAO'),
  ('XPF', 953, 0, 'CFP Franc'),
  ('YER', 886, 2, 'Yemeni Rial'),
  ('ZAR', 710, 2, 'Rand'),
  ('ZMW', 967, 2, 'Zambian Kwacha'),
  ('ZWG', 924, 2, 'Zimbabwe Gold'),
  ('ZWL', 932, 2, 'Zimbabwe Dollar')) v(code, numeric_code, exponent, name)
  UNION ALL
  SELECT 'order_statuses', ROW(v.status, v.terminal)::pay.order_statuses::text
    FROM (VALUES
  ('pending', false), ('paid', false), ('shipped', false), ('completed', false),
  ('cancelled', true), ('failed', false), ('refunded', true)) v(status, terminal)
  UNION ALL
  SELECT 'order_transitions', ROW(v.from_status, v.to_status, v.description)::pay.order_transitions::text
    FROM (VALUES
  ('pending',   'paid',      'payment confirmed (PSP callback, mark_paid or wallet)'),
  ('pending',   'cancelled', 'closed by the merchant or expired'),
  ('pending',   'failed',    'the PSP reported a failed payment'),
  ('failed',    'paid',      'a later attempt succeeded (PSPs allow retries after a failure)'),
  ('paid',      'shipped',   'the merchant shipped'),
  ('shipped',   'completed', 'the buyer confirmed receipt'),
  ('paid',      'refunded',  'fully refunded'),
  ('shipped',   'refunded',  'fully refunded'),
  ('completed', 'refunded',  'fully refunded')) v(from_status, to_status, description);

CREATE FUNCTION pay._restoring() RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_restoring' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pay._restoring() IS
  'true while a superuser''s COPY FROM writes rows: a restore (src/restore.c)';

-- A restored row of a seeded table whose key CREATE EXTENSION already
-- seeded replaces the seed's values instead of failing on the key.
CREATE FUNCTION pay._restore_seeded_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT pay._restoring() THEN
    RETURN NEW;
  END IF;
  CASE TG_TABLE_NAME
    WHEN 'currencies' THEN
      UPDATE pay.currencies c SET numeric_code = NEW.numeric_code, name = NEW.name
       WHERE c.code = NEW.code;
    WHEN 'order_statuses' THEN
      UPDATE pay.order_statuses s SET terminal = NEW.terminal WHERE s.status = NEW.status;
    WHEN 'order_transitions' THEN
      UPDATE pay.order_transitions t SET description = NEW.description
       WHERE t.from_status = NEW.from_status AND t.to_status = NEW.to_status;
  END CASE;
  RETURN CASE WHEN FOUND THEN NULL ELSE NEW END;
END $$;
CREATE TRIGGER currencies_restore BEFORE INSERT ON pay.currencies
    FOR EACH ROW EXECUTE FUNCTION pay._restore_seeded_row();
CREATE TRIGGER order_statuses_restore BEFORE INSERT ON pay.order_statuses
    FOR EACH ROW EXECUTE FUNCTION pay._restore_seeded_row();
CREATE TRIGGER order_transitions_restore BEFORE INSERT ON pay.order_transitions
    FOR EACH ROW EXECUTE FUNCTION pay._restore_seeded_row();
ALTER TABLE pay.currencies ENABLE ALWAYS TRIGGER currencies_restore;
ALTER TABLE pay.order_statuses ENABLE ALWAYS TRIGGER order_statuses_restore;
ALTER TABLE pay.order_transitions ENABLE ALWAYS TRIGGER order_transitions_restore;

-- Mark every table of schema pay that holds data, and every sequence.  A
-- new table is covered without a new line here; the upgrade scripts run
-- this function again.
CREATE FUNCTION pay._mark_dumped_tables() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS rel, c.relname, c.relkind
      FROM pg_class c
     WHERE c.relnamespace = 'pay'::regnamespace AND c.relkind IN ('r', 'S')
       AND c.relname NOT IN ('outbox_backlog', 'seed_rows')
     ORDER BY c.relname
  LOOP
    PERFORM pg_catalog.pg_extension_config_dump(r.rel,
      CASE WHEN r.relname IN ('currencies', 'order_statuses', 'order_transitions')
           THEN format('WHERE NOT EXISTS (SELECT FROM pay.seed_rows s WHERE s.table_name = %L AND s.row_text = %I::text)',
                       r.relname, r.relname)
           ELSE '' END);
  END LOOP;
END $$;
COMMENT ON FUNCTION pay._mark_dumped_tables() IS
  'marks every table and sequence of schema pay for pg_dump (the seeded tables: only rows users added or changed); run by the install and upgrade scripts';
SELECT pay._mark_dumped_tables();

-- DROP EXTENSION pay refuses while the ledger holds data (src/drop_guard.c).
CREATE FUNCTION pay._drop_guard() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'pay_drop_guard' LANGUAGE C;
CREATE EVENT TRIGGER pay_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION pay._drop_guard();
COMMENT ON FUNCTION pay._drop_guard() IS
  'refuses DROP EXTENSION pay and DROP SCHEMA pay while pay.orders or pay.postings has rows, unless pay.confirm_drop_ledger is on';

REVOKE ALL ON pay.seed_rows FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pay._restoring(), pay._restore_seeded_row(), pay._mark_dumped_tables(),
    pay._drop_guard() FROM PUBLIC;
-- Privileges: the four roles lose everything and get again exactly what
-- a fresh install grants (every GRANT and REVOKE of the install script, in
-- its order).
REVOKE ALL ON ALL TABLES IN SCHEMA pay FROM pay_app, pay_callback, pay_admin, pay_readonly;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pay FROM pay_app, pay_callback, pay_admin, pay_readonly;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pay FROM pay_app, pay_callback, pay_admin, pay_readonly;
REVOKE ALL ON SCHEMA pay FROM PUBLIC;
GRANT USAGE ON SCHEMA pay TO pay_app, pay_callback, pay_admin, pay_readonly;
REVOKE ALL ON pay.master_keys, pay.secrets, pay.secret_list FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
    pay.set_secret(text, text, text), pay.reveal_secret(text, text),
    pay.delete_secret(text, text), pay.rotate_master_key(text),
    pay.secret_hmac_sha256_hex(text, text, text)
  FROM PUBLIC;
GRANT SELECT ON pay.secret_list TO pay_admin, pay_readonly;
GRANT EXECUTE ON FUNCTION pay.set_secret(text, text, text), pay.delete_secret(text, text) TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.canonical_query(jsonb, text[]) TO pay_app, pay_admin;
GRANT EXECUTE ON FUNCTION
    pay.hmac_sha256_hex(text, text),
    pay.sign_params(jsonb, text),
    pay.sign_params_sha256(jsonb, text),
    pay.stripe_signature_header(text, text, timestamptz),
    pay.stripe_signature_valid(text, text, text, integer, timestamptz),
    pay.adyen_hmac_signature(jsonb, text),
    pay.adyen_hmac_valid(jsonb, text)
    TO pay_app, pay_admin;
GRANT EXECUTE ON FUNCTION
    pay.rsa_sha256_sign(text, text),
    pay.rsa_sha256_valid(text, text, text),
    pay.alipay_sign(jsonb, text, text[]),
    pay.alipay_signature_valid(jsonb, text, text[]),
    pay.alipay_response_valid(text, text),
    pay.wechatpay_authorization(text, text, text, text, text, text, bigint, text),
    pay.wechatpay_signature_valid(text, text, text, text, text),
    pay.wechatpay_decrypt(text, text, text, text),
    pay.wechatpay_parse_authorization(text),
    pay.paypal_signature_valid(jsonb, text, text, text)
  TO pay_app, pay_admin;
GRANT EXECUTE ON FUNCTION pay.enqueue_psp_request(bigint, text, jsonb), pay.gateway_available(text)
  TO pay_app, pay_admin;
GRANT EXECUTE ON FUNCTION pay.enqueue_merchant_notification(bigint, text) TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.redrive(bigint), pay.redrive_dead(text, integer),
    pay.purge_outbox(interval, integer), pay.dispatcher_status(), pay.form_urlencode(jsonb)
  TO pay_admin;
GRANT SELECT ON pay.outbox, pay.outbox_attempts, pay.outbox_dead_letters, pay.circuit_breakers,
    pay.circuits, pay.dispatcher
  TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.handle_callback(text, jsonb, text),
    pay.record_unreadable_callback(text, jsonb, text, text, bytea, integer) TO pay_callback;
GRANT EXECUTE ON FUNCTION pay.purge_callback_nonces(interval), pay.purge_callbacks(interval, integer) TO pay_admin;
GRANT SELECT ON pay.callbacks, pay.callback_events, pay.anomalies, pay.deferred_events,
    pay.unknown_gateway_callbacks TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.api_create_payment(jsonb, text), pay.api_get_payment(jsonb, text) TO pay_app;
GRANT EXECUTE ON FUNCTION pay.purge_api_nonces() TO pay_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA pay FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pay FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pay FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pay._caller_merchants() TO pay_app, pay_admin, pay_readonly;
GRANT EXECUTE ON FUNCTION
    pay.create_order(text, text, bigint, text, text, interval, jsonb, text),
    pay.ship(bigint), pay.complete(bigint), pay.cancel(bigint, text),
    pay.refund(bigint, bigint, text, text),
    pay.pay_with_balance(bigint, text),
    pay.open_account(text, text, boolean, integer), pay.balance(text),
    pay.parse_amount(text, text), pay.format_amount(bigint, text)
  TO pay_app;
GRANT SELECT ON pay.orders, pay.order_events, pay.refunds, pay.currencies TO pay_app;
GRANT EXECUTE ON FUNCTION
    pay.create_merchant(text, text, text), pay.create_gateway(text, text, text, jsonb),
    pay.add_routing_rule(text, text, text, integer),
    pay.bind_merchant_role(regrole, text), pay.unbind_merchant_role(regrole, text),
    pay.mark_paid(bigint, text, bigint, text),
    pay.open_account(text, text, boolean, integer), pay.post(text, jsonb), pay.balance(text),
    pay.expire_orders(timestamptz, integer), pay.purge_idempotency_keys(interval, integer),
    pay.idempotency_retention(),
    pay.parse_amount(text, text), pay.format_amount(bigint, text), pay.parse_form(text)
  TO pay_admin;
GRANT SELECT ON pay.currencies, pay.merchants, pay.gateways, pay.routing_rules,
    pay.order_statuses, pay.order_transitions, pay.orders, pay.order_events, pay.refunds,
    pay.idempotency_keys, pay.accounts, pay.account_balances, pay.postings, pay.entries,
    pay.ledger_problems, pay.order_ledger_mismatches, pay.merchant_roles
  TO pay_admin;
REVOKE ALL ON pay.seed_rows FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pay._restoring(), pay._restore_seeded_row(), pay._mark_dumped_tables(),
    pay._drop_guard() FROM PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA pay TO pay_readonly;
REVOKE SELECT ON pay.secrets, pay.master_keys FROM pay_readonly;
GRANT EXECUTE ON FUNCTION pay.dispatcher_status() TO pay_readonly;
