-- pay 0.2 -> 0.3 (ALTER EXTENSION pay UPDATE TO '0.3').
\echo Use "ALTER EXTENSION pay UPDATE TO '0.3'" to load this file. \quit

-- pay 0.3 takes shared memory for its checkout waits (pay.wait_next_action):
-- with shared_preload_libraries = 'pay', restart the server after installing
-- the new library and before this update.

-- Orders: the buyer's next step and the PSP's reason for a refusal.
ALTER TABLE pay.orders ADD COLUMN next_action jsonb, ADD COLUMN failure_reason text;
COMMENT ON COLUMN pay.orders.next_action IS 'the buyer''s next step from the PSP''s answer (type qr_code, code_url, client_secret or redirect); NULL until the PSP answered';
COMMENT ON COLUMN pay.orders.failure_reason IS 'the PSP''s reason when it refused the payment';

-- Refunds: what the PSP said of them.
ALTER TABLE pay.refunds ADD COLUMN psp_refund_id text,
    ADD COLUMN psp_status text CHECK (psp_status IN ('requested', 'succeeded', 'failed'));
COMMENT ON COLUMN pay.refunds.psp_refund_id IS 'the PSP''s id of the refund, from its answer';
COMMENT ON COLUMN pay.refunds.psp_status IS
  'requested when the refund is sent to the PSP, then succeeded or failed as the PSP''s answer says; NULL: never sent';

-- PSP answers, kept with their verdict (81_psp_answers.sql).
CREATE TABLE pay.psp_answers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id    bigint NOT NULL,
    order_id     bigint NOT NULL,
    refund_id    bigint,
    gateway      text NOT NULL,
    operation    text NOT NULL,
    http_status  integer NOT NULL,
    headers      jsonb NOT NULL DEFAULT '{}',
    body         text,
    verdict      text NOT NULL CHECK (verdict IN ('applied', 'refused', 'rejected')),
    reason       text,
    received_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- an order's conversation with its PSP, in order; an outbox row's answers;
-- and the rejected ones, which someone should look at
CREATE INDEX psp_answers_order ON pay.psp_answers (order_id, received_at);
CREATE INDEX psp_answers_outbox ON pay.psp_answers (outbox_id);
CREATE INDEX psp_answers_rejected ON pay.psp_answers (received_at) WHERE verdict = 'rejected';
COMMENT ON TABLE pay.psp_answers IS
  'every PSP answer the dispatcher applied or refused (statement files excepted): status, headers (lower-case names), body, and the verdict: applied, refused (the PSP said no), rejected (unsigned, wrongly signed, malformed or not about our order: moved nothing)';
COMMENT ON COLUMN pay.psp_answers.reason IS
  'applied: what it changed; refused: the PSP''s reason; rejected: why the answer was not trusted';

-- The merchant API's keyset pages of a merchant's payments.
CREATE INDEX orders_merchant_newest ON pay.orders (merchant_id, id);

-- The dispatcher's entry point for answers takes their headers.
DROP FUNCTION pay._outbox_apply(bigint, integer, text);

-- The janitor's refunds whose outcome at the PSP is not known yet.
CREATE INDEX refunds_psp_requested ON pay.refunds (id) WHERE psp_status = 'requested';

-- The dispatcher's claims walk each destination's due rows.
CREATE INDEX outbox_destination_due ON pay.outbox (destination, next_attempt_at) WHERE state = 'pending';

-- Two-phase payments: status authorized, its edges, the capture mode and
-- the authorization on orders; wallet holds (pay.holds, pay.hold_releases,
-- account_balances.held).
INSERT INTO pay.order_statuses VALUES ('authorized', false);
INSERT INTO pay.order_transitions VALUES
  ('pending',   'authorized', 'payment authorized, not captured (capture => ''manual'')'),
  ('failed',    'authorized', 'a later attempt was authorized'),
  ('authorized', 'paid',      'captured (pay.capture)'),
  ('authorized', 'cancelled', 'voided (pay.void) or its authorization expired');
INSERT INTO pay.seed_rows
  SELECT 'order_statuses', s::text FROM pay.order_statuses s WHERE s.status = 'authorized'
  UNION ALL SELECT 'order_transitions', t::text FROM pay.order_transitions t
   WHERE 'authorized' IN (t.from_status, t.to_status);

-- (a new NOT NULL column is verified over the table, which PostgreSQL refuses
-- while a SQL-standard function body uses the row type: _order_json is
-- made again below with the functions)
DROP FUNCTION pay._order_json(pay.orders);
ALTER TABLE pay.orders ADD COLUMN capture_mode text NOT NULL DEFAULT 'automatic',
    ADD COLUMN authorized_at timestamptz, ADD COLUMN authorization_expires_at timestamptz,
    ADD COLUMN captured_amount bigint;
COMMENT ON COLUMN pay.orders.capture_mode IS 'automatic: the payment is captured as it is authorized; manual: it stops at authorized until pay.capture or pay.void';
COMMENT ON COLUMN pay.orders.authorized_at IS 'when the payment was authorized (manual capture); NULL otherwise';
COMMENT ON COLUMN pay.orders.authorization_expires_at IS 'when an uncaptured authorization lapses and is voided (pay.expire_authorizations)';
COMMENT ON COLUMN pay.orders.captured_amount IS
  'the amount a manual capture took (at most amount, which stays the authorized amount); NULL for an order paid in one step. What was paid is coalesce(captured_amount, amount): refunds are bounded by it';
CREATE INDEX orders_authorization_expiry ON pay.orders (authorization_expires_at) WHERE status = 'authorized';
COMMENT ON TABLE pay.refunds IS 'partial or full refunds; their sum never exceeds what the order paid, coalesce(captured_amount, amount)';

ALTER TABLE pay.account_balances ADD COLUMN held bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN pay.account_balances.held IS 'the sum of the account''s open holds (pay.holds without a release); its available balance is balance - held';

CREATE TABLE pay.holds (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     bigint NOT NULL UNIQUE,        -- in pay.orders: holds_order
    account_id   bigint NOT NULL,               -- in pay.accounts: holds_account
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     char(3) NOT NULL,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX holds_account ON pay.holds (account_id);
COMMENT ON TABLE pay.holds IS 'wallet funds reserved for an authorized order until its capture, void or expiry; append-only';

CREATE TABLE pay.hold_releases (
    hold_id      bigint PRIMARY KEY,            -- in pay.holds: hold_releases_hold
    outcome      text NOT NULL CHECK (outcome IN ('captured', 'voided', 'expired')),
    -- what the capture booked from the wallet (at most the hold's amount);
    -- the rest went back to the available balance
    captured     bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'captured') = (captured > 0))
);
COMMENT ON TABLE pay.hold_releases IS 'the end of a hold, once: captured (captured booked, the rest released), voided or expired (all released); append-only';
CREATE TRIGGER holds_append_only BEFORE UPDATE OR DELETE ON pay.holds
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON pay.holds
    FOR EACH STATEMENT EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER hold_releases_append_only BEFORE UPDATE OR DELETE ON pay.hold_releases
    FOR EACH ROW EXECUTE FUNCTION pay._append_only();
CREATE TRIGGER hold_releases_no_truncate BEFORE TRUNCATE ON pay.hold_releases
    FOR EACH STATEMENT EXECUTE FUNCTION pay._append_only();
ALTER TABLE pay.holds ENABLE ALWAYS TRIGGER holds_append_only;
ALTER TABLE pay.holds ENABLE ALWAYS TRIGGER holds_no_truncate;
ALTER TABLE pay.hold_releases ENABLE ALWAYS TRIGGER hold_releases_append_only;
ALTER TABLE pay.hold_releases ENABLE ALWAYS TRIGGER hold_releases_no_truncate;
CREATE TRIGGER holds_order BEFORE INSERT ON pay.holds
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('order_id', 'pay.orders', 'id');
CREATE TRIGGER holds_account BEFORE INSERT ON pay.holds
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('account_id', 'pay.accounts', 'id');
CREATE TRIGGER hold_releases_hold BEFORE INSERT ON pay.hold_releases
    FOR EACH ROW EXECUTE FUNCTION pay._reference_exists('hold_id', 'pay.holds', 'id');
ALTER TABLE pay.holds ENABLE ALWAYS TRIGGER holds_order;
ALTER TABLE pay.holds ENABLE ALWAYS TRIGGER holds_account;
ALTER TABLE pay.hold_releases ENABLE ALWAYS TRIGGER hold_releases_hold;


-- create_order takes the capture mode as a last argument.
DROP FUNCTION pay.create_order(text, text, bigint, text, text, interval, jsonb, text);

-- PayPal: what pay keeps of its conversations with PayPal besides the
-- outbox and the answers (src/provider_paypal.c, src/paypal_cert.c).

-- The ids PayPal gives an order's authorization and capture, which later
-- requests name (a capture or void names the authorization, a refund the
-- capture), kept as the answers that name them are applied.
CREATE TABLE pay.paypal_payments (
    order_id    bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('authorization', 'capture')),
    psp_id      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (order_id, kind, psp_id)
);
COMMENT ON TABLE pay.paypal_payments IS
  'PayPal''s authorization and capture ids of an order, from PayPal''s answers; capture, void and refund requests name them';

-- PayPal's webhook signing certificates, by the URL webhooks name them
-- with: fetched once from PayPal, verified (chain, validity, name), and
-- used until they expire.
CREATE TABLE pay.paypal_certs (
    url              text PRIMARY KEY,
    certificate_pem  text NOT NULL,
    not_after        timestamptz NOT NULL,
    fetched_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pay.paypal_certs IS
  'verified PayPal webhook signing certificates by PAYPAL-CERT-URL, kept until not_after: a webhook naming a kept URL fetches nothing';

-- Applying an event is C (src/callback_apply.c, src/event_refund.c); the
-- generic scheme's callbacks are parsed in C (src/provider_generic.c).
DROP FUNCTION pay._apply_event(pay.gateways, jsonb, bigint);
DROP FUNCTION pay._apply_deferred(pay.gateways, bigint);
DROP FUNCTION pay._apply_psp_refund(pay.orders, pay.gateways, jsonb, bigint);
DROP FUNCTION pay._callback_order(pay.gateways, jsonb);
DROP FUNCTION pay._event_amount(text, text, text);
DROP FUNCTION pay._callback_generic(pay.gateways, jsonb, text);
-- Payment requests are built in C, in each provider's file; Stripe's
-- answers are read there too.
DROP FUNCTION pay._build_stripe(pay.outbox, pay.gateways);
DROP FUNCTION pay._build_alipay(pay.outbox, pay.gateways);
DROP FUNCTION pay._build_wechatpay(pay.outbox, pay.gateways);
DROP FUNCTION pay._build_generic(pay.outbox, pay.gateways);
DROP FUNCTION pay._request_order(pay.outbox);
DROP FUNCTION pay._request_refund(pay.outbox);
-- Every provider's callbacks, answers and statement-fetch requests are C, in
-- its file (src/provider_<kind>.c, src/provider_answer.c).
DROP FUNCTION pay._build_statement_request(pay.outbox, pay.gateways);
DROP FUNCTION pay._build_stripe_statement(pay.outbox, pay.gateways);
DROP FUNCTION pay._build_wechatpay_statement(pay.outbox, pay.gateways);
DROP FUNCTION pay._build_alipay_statement(pay.outbox, pay.gateways);
DROP FUNCTION pay._alipay_request(pay.gateways, text, jsonb, text, jsonb);
DROP FUNCTION pay._stripe_report_columns();
DROP FUNCTION pay._wechatpay_trade_no(bigint);
DROP FUNCTION pay._callback_wechatpay(pay.gateways, jsonb, text);
DROP FUNCTION pay._check_window(pay.gateways, timestamptz);
DROP FUNCTION pay._unix_time(text);
DROP FUNCTION pay._require_content_type(jsonb, text[]);
DROP FUNCTION pay._gateway_option(pay.gateways, text);
DROP FUNCTION pay._gateway_secret(pay.gateways, text);
-- Statement answers are read by their provider (C): the bill answer and the
-- trusted file hosts are each provider's own.
DROP FUNCTION pay._apply_alipay_bill_answer(pay.outbox, pay.gateways, text, jsonb);
DROP FUNCTION pay._statement_url_trusted(text, pay.gateways);

-- Functions new or changed in 0.3 (their definitions as a fresh install has them).
CREATE OR REPLACE FUNCTION pay._anomaly(o pay.orders, g pay.gateways, p_callback bigint, p_kind text, p_detail text)
RETURNS text
    AS 'MODULE_PATHNAME', 'pay_anomaly' LANGUAGE C VOLATILE;

CREATE FUNCTION pay._apply_answer_event(gateway text, event jsonb, cause text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_apply_answer_event' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION pay._await_checkout(order_id bigint, timeout interval) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_await_checkout' LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION pay._build_merchant_notification(r pay.outbox, p_secret text DEFAULT NULL)
RETURNS pay.http_request
    AS 'MODULE_PATHNAME', 'pay_build_merchant_notification' LANGUAGE C STABLE;

CREATE FUNCTION pay._next_action_wake() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_next_action_wake' LANGUAGE C;

CREATE FUNCTION pay._provider_answer(r pay.outbox, g pay.gateways, o pay.orders, p_status integer, h jsonb,
                                     p_body text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_provider_answer' LANGUAGE C VOLATILE;

CREATE FUNCTION pay._provider_authorization_window(kind text) RETURNS interval
    AS 'MODULE_PATHNAME', 'pay_provider_authorization_window' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION pay._provider_kind_known(kind text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_provider_kind_known' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION pay._provider_kinds(feature text DEFAULT NULL) RETURNS text[]
    AS 'MODULE_PATHNAME', 'pay_provider_kinds' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION pay._provider_operation_kinds(operation text) RETURNS text[]
    AS 'MODULE_PATHNAME', 'pay_provider_operation_kinds' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION pay._provider_request(r pay.outbox, g pay.gateways) RETURNS pay.http_request
    AS 'MODULE_PATHNAME', 'pay_provider_request' LANGUAGE C STABLE STRICT;

CREATE FUNCTION pay._provider_statement_answer(r pay.outbox, g pay.gateways, p_body text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_provider_statement_answer' LANGUAGE C VOLATILE;

CREATE FUNCTION pay._provider_statement_file(r pay.outbox, g pay.gateways, p_file bytea,
                                             OUT content bytea, OUT format text, OUT reason text)
    AS 'MODULE_PATHNAME', 'pay_provider_statement_file' LANGUAGE C VOLATILE;

CREATE FUNCTION pay.wait_next_action(order_id bigint, timeout interval) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_wait_next_action' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION pay._api_authenticate(h jsonb, p_params jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint := pay._api_verify(h, p_params);
BEGIN
  INSERT INTO pay.api_nonces (merchant_id, nonce) VALUES (v_merchant, h->>'x-pay-nonce') ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'X-Pay-Nonce was already used' USING ERRCODE = 'PY012';
  END IF;
  RETURN v_merchant;
END $$;

CREATE FUNCTION pay._api_authenticate_again(h jsonb, p_params jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint := pay._api_verify(h, p_params);
BEGIN
  PERFORM 1 FROM pay.api_nonces n WHERE n.merchant_id = v_merchant AND n.nonce = h->>'x-pay-nonce';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'X-Pay-Nonce was not used by a request yet' USING ERRCODE = 'PY012';
  END IF;
  RETURN v_merchant;
END $$;

CREATE FUNCTION pay._api_body(body text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p jsonb;
BEGIN
  IF coalesce(btrim(body), '') = '' THEN
    RETURN '{}';
  END IF;
  BEGIN
    p := body::jsonb;
  EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'body is not valid JSON' USING ERRCODE = 'invalid_text_representation';
  END;
  IF jsonb_typeof(p) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'body must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN p;
END $$;

CREATE FUNCTION pay._api_error(p_status integer, p_code text, p_field text, p_message text)
RETURNS pay.http_response
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN ROW(p_status, 'application/json',
           jsonb_build_object('error', jsonb_build_object('code', p_code, 'sqlstate', NULL, 'field', p_field,
                                                          'message', p_message))::text)::pay.http_response;

CREATE FUNCTION pay._api_known_fields(p jsonb, p_known text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF p - p_known <> '{}' THEN
    RAISE EXCEPTION '%: unknown field', (SELECT min(k) FROM jsonb_object_keys(p - p_known) k)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END $$;

CREATE FUNCTION pay._api_order(p_merchant bigint, p_id text) RETURNS pay.orders
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
BEGIN
  IF p_id IS NULL OR p_id !~ '^[0-9]{1,18}$' THEN
    RAISE EXCEPTION 'id must be a payment id' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO o FROM pay.orders x WHERE x.id = p_id::bigint AND x.merchant_id = p_merchant;
  IF NOT FOUND OR NOT pay._acts_for(o.merchant_id) THEN
    RETURN NULL;
  END IF;
  RETURN o;
END $$;

CREATE FUNCTION pay._api_time(q jsonb, p_name text) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT q ? p_name THEN
    RETURN NULL;
  END IF;
  IF q->>p_name !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})$' THEN
    RAISE EXCEPTION '% must be an RFC 3339 time such as 2026-12-01T00:00:00Z, not "%"', p_name, q->>p_name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  BEGIN
    RETURN (q->>p_name)::timestamptz;
  EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
    RAISE EXCEPTION '% is not a valid time: "%"', p_name, q->>p_name USING ERRCODE = 'invalid_parameter_value';
  END;
END $$;

CREATE FUNCTION pay._api_verify(h jsonb, p_params jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_code text := h->>'x-pay-merchant';
  v_ts text := h->>'x-pay-timestamp';
  v_nonce text := h->>'x-pay-nonce';
  v_sig text := h->>'x-pay-signature';
  v_merchant bigint;
  v_secret text;
BEGIN
  IF v_code IS NULL OR v_ts IS NULL OR v_nonce IS NULL OR v_sig IS NULL THEN
    RAISE EXCEPTION 'X-Pay-Merchant, X-Pay-Timestamp, X-Pay-Nonce and X-Pay-Signature headers are required'
      USING ERRCODE = 'PY010';
  END IF;
  SELECT id INTO v_merchant FROM pay.merchants WHERE code = v_code;
  IF FOUND THEN
    BEGIN
      v_secret := pay.reveal_secret('merchant:' || v_code, 'api_secret');
    EXCEPTION WHEN undefined_object THEN
      v_secret := NULL;
    END;
  END IF;
  IF v_secret IS NULL OR NOT pay.constant_time_equal(
       pay.sign_params(p_params || jsonb_build_object('merchant', v_code, 'timestamp', v_ts, 'nonce', v_nonce),
                       v_secret),
       lower(v_sig)) THEN
    RAISE EXCEPTION 'X-Pay-Signature does not verify' USING ERRCODE = 'PY010';
  END IF;
  IF v_ts !~ '^[0-9]{1,12}$' OR abs(extract(epoch FROM now()) - v_ts::bigint) > pay._api_window_s() THEN
    RAISE EXCEPTION 'X-Pay-Timestamp is outside the % s window', pay._api_window_s() USING ERRCODE = 'PY011';
  END IF;
  IF length(v_nonce) NOT BETWEEN 8 AND 64 THEN
    RAISE EXCEPTION 'X-Pay-Nonce must be 8 to 64 characters' USING ERRCODE = 'PY012';
  END IF;
  RETURN v_merchant;
END $$;

CREATE FUNCTION pay._apply_answer(r pay.outbox, g pay.gateways, a jsonb) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  v_spared text;
  v_outcome text;
BEGIN
  SELECT * INTO o FROM pay.orders WHERE id = r.order_id FOR UPDATE;
  IF a->>'verdict' = 'refused' THEN
    IF r.operation IN ('create_payment', 'close') AND (a->>'already_paid')::boolean THEN
      -- the buyer paid before the close (or the create was sent again after
      -- the payment): a query gets the payment booked (and refunded, when
      -- the order is cancelled: pay._book_and_return)
      RETURN 'refused by the PSP: ' || (a->>'reason') || '; already paid, query '
             || pay.enqueue_psp_request(o.id, 'query') || ' queued';
    ELSIF r.operation = 'create_payment' AND (a->>'final')::boolean THEN
      v_spared := pay._refusal_spares(r, o);
      IF v_spared IS NOT NULL THEN
        RETURN 'refused by the PSP: ' || (a->>'reason') || ' (the order stays: ' || v_spared || ')';
      END IF;
      UPDATE pay.orders SET status = 'failed', failure_reason = left(a->>'reason', 1000),
                            status_cause = 'psp answer ' || r.id
       WHERE id = o.id;
      RETURN 'refused by the PSP: ' || (a->>'reason') || '; order failed';
    ELSIF r.operation = 'refund' AND (a->>'final')::boolean THEN
      RETURN 'refused by the PSP: ' || (a->>'reason') || '; '
             || pay._apply_refund_answer(r, g, o, 'failed', NULL, a->>'reason');
    END IF;
    RETURN 'refused by the PSP: ' || coalesce(a->>'reason', '(no reason)');
  END IF;

  PERFORM pay._store_psp_txn_id(o.id, a->>'psp_txn_id');
  CASE r.operation
  WHEN 'create_payment' THEN
    IF a->'next_action' IS NULL OR jsonb_typeof(a->'next_action') = 'null' THEN
      RETURN 'no next action';
    END IF;
    UPDATE pay.orders SET next_action = a->'next_action' WHERE id = o.id AND status = 'pending';
    RETURN CASE WHEN FOUND THEN 'next action ' || (a->'next_action'->>'type')
                ELSE 'next action not kept: order is ' || o.status END;
  WHEN 'query' THEN
    IF a->'event' IS NULL OR jsonb_typeof(a->'event') = 'null' THEN
      RETURN 'nothing to apply';
    END IF;
    RETURN pay._apply_answer_event(g.name, a->'event' || jsonb_build_object('cause', 'query ' || r.id),
                                   'query ' || r.id);
  WHEN 'refund', 'query_refund' THEN
    RETURN pay._apply_refund_answer(r, g, o, a->'refund'->>'status', a->'refund'->>'psp_refund_id', NULL);
  ELSE
    -- received: the PSP took the request; its outcome comes by notification (Adyen)
    v_outcome := r.operation || CASE WHEN (a->>'received')::boolean THEN ' received' ELSE ' confirmed' END;
  END CASE;
  RETURN v_outcome;
END $$;

CREATE FUNCTION pay._apply_refund_answer(r pay.outbox, g pay.gateways, o pay.orders, p_status text,
                                         p_psp_refund_id text, p_reason text)
RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  f pay.refunds;
  v_was text;
BEGIN
  SELECT x.psp_status INTO v_was FROM pay.refunds x
   WHERE x.id = (r.params->>'refund_id')::bigint AND x.order_id = o.id FOR UPDATE;
  UPDATE pay.refunds x
     SET psp_refund_id = coalesce(x.psp_refund_id, p_psp_refund_id),
         psp_status = CASE WHEN x.psp_status IN ('succeeded', 'failed') THEN x.psp_status
                           ELSE coalesce(p_status, x.psp_status) END
   WHERE x.id = (r.params->>'refund_id')::bigint AND x.order_id = o.id
  RETURNING * INTO f;
  IF NOT FOUND THEN
    RETURN 'refund ' || coalesce(r.params->>'refund_id', '(none)') || ' is not a refund of order ' || o.id;
  END IF;
  IF f.psp_status = 'failed' AND v_was IS DISTINCT FROM 'failed' THEN
    PERFORM pay._anomaly(o, g, NULL, 'refund_failed',
      format('the PSP did not refund %s %s (refund %s): %s', pay.format_amount(f.amount, o.currency), o.currency,
             f.id, coalesce(p_reason, 'refund failed')));
  END IF;
  RETURN format('refund %s %s', f.id, coalesce(f.psp_status, 'requested'));
END $$;

CREATE OR REPLACE FUNCTION pay._apply_statement_answer(r pay.outbox, g pay.gateways, p_body text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  a jsonb;
  v_id bigint;
BEGIN
  IF r.operation = 'fetch_statement_file' THEN
    RETURN pay._apply_statement_file(r, g, convert_to(coalesce(p_body, ''), 'UTF8'));
  END IF;
  BEGIN
    PERFORM p_body::jsonb;
  EXCEPTION WHEN OTHERS THEN
    RETURN 'the answer is not JSON';
  END;
  a := pay._provider_statement_answer(r, g, p_body);
  IF a->>'verdict' = 'refused' THEN
    RETURN a->>'reason';
  END IF;
  v_id := pay._enqueue('psp_request', r.destination, a->'next'->>'operation', NULL, a->'next'->'params',
                       (a->'next'->>'operation') || ':' || g.name || ':' || (a->'next'->>'key'), false);
  IF (a->'next'->>'delay_s')::integer > 0 THEN
    UPDATE pay.outbox SET next_attempt_at = now() + make_interval(secs => (a->'next'->>'delay_s')::integer)
     WHERE id = v_id AND state = 'pending';
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION pay._apply_statement_file(r pay.outbox, g pay.gateways, p_file bytea) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  f record;
BEGIN
  f := pay._provider_statement_file(r, g, p_file);
  IF f.reason IS NOT NULL THEN
    RETURN f.reason;
  END IF;
  PERFORM pay.import_statement(g.name, f.content, f.format);
  RETURN NULL;
END $$;

CREATE FUNCTION pay._authorization_window(p_gateway text) RETURNS interval
LANGUAGE sql STABLE AS $$
  SELECT coalesce((SELECT coalesce(make_interval(days => (g.options->>'authorization_days')::integer),
                                   pay._provider_authorization_window(g.kind))
                     FROM pay.gateways g WHERE g.name = p_gateway),
                  interval '7 days')
$$;

CREATE FUNCTION pay._authorize_from_wallet(o pay.orders, w pay.accounts) RETURNS pay.orders
LANGUAGE plpgsql AS $$
DECLARE
  v_expires timestamptz := now() + pay._authorization_window(NULL);
BEGIN
  PERFORM pay._hold(o.id, w.id, o.amount, o.currency, v_expires);
  UPDATE pay.orders
     SET status = 'authorized', status_cause = 'pay_with_balance: held', authorized_at = now(),
         authorization_expires_at = v_expires, paid_account_id = w.id
   WHERE id = o.id
  RETURNING * INTO o;
  RETURN o;
END $$;

CREATE OR REPLACE FUNCTION pay._book_refund(o pay.orders, p_amount bigint, p_reason text, p_key text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
BEGIN
  INSERT INTO pay.refunds (order_id, amount, reason, idempotency_key)
    VALUES (o.id, p_amount, p_reason, p_key) RETURNING id INTO v_id;
  UPDATE pay.orders
     SET refunded_amount = refunded_amount + p_amount,
         status = CASE WHEN refunded_amount + p_amount = coalesce(captured_amount, amount)
                       THEN 'refunded' ELSE status END,
         status_cause = 'refund'
   WHERE id = o.id;
  PERFORM pay._post('refund:' || v_id, o.id,
                    ARRAY[pay._merchant_account(o.merchant_id, o.currency), o.paid_account_id], ARRAY[-p_amount, p_amount]);
  -- the merchant hears of every refund (a full one also as the move to refunded)
  PERFORM pay.enqueue_merchant_notification(o.id, 'refund_' || v_id);
  RETURN v_id;
END $$;

CREATE FUNCTION pay._capture(o pay.orders, p_amount bigint, p_cause text, p_send boolean) RETURNS pay.orders
LANGUAGE plpgsql AS $$
BEGIN
  -- a wallet's hold goes first, so that the posting below spends the
  -- money it reserved
  PERFORM pay._release_hold(o.id, 'captured', p_amount);
  UPDATE pay.orders
     SET status = 'paid', status_cause = p_cause, paid_at = now(), captured_amount = p_amount
   WHERE id = o.id
  RETURNING * INTO o;
  PERFORM pay._post('order:' || o.id || ':paid', o.id,
                    ARRAY[o.paid_account_id, pay._merchant_account(o.merchant_id, o.currency)],
                    ARRAY[-p_amount, p_amount]);
  IF p_send AND pay._paid_through_psp(o) THEN
    PERFORM pay.enqueue_psp_request(o.id, 'capture', jsonb_build_object('amount', p_amount));
  END IF;
  RETURN o;
END $$;

CREATE FUNCTION pay._check_manual_capture(p_gateway text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_kind text;
BEGIN
  SELECT g.kind INTO v_kind FROM pay.gateways g WHERE g.name = p_gateway;
  -- the providers that authorize, capture and void (src/provider_registry.c)
  IF v_kind IS NULL OR v_kind <> ALL (pay._provider_kinds('manual_capture')) THEN
    RAISE EXCEPTION 'capture: gateway "%" (%) cannot authorize without capturing', p_gateway, coalesce(v_kind, 'unknown')
      USING ERRCODE = 'feature_not_supported',
            HINT = format('capture => ''manual'' needs a gateway of kind %s, or a wallet payment.',
                          array_to_string(pay._provider_kinds('manual_capture'), ' or '));
  END IF;
END $$;

CREATE FUNCTION pay._close_expired(p_orders bigint[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o record;
  n integer := 0;
BEGIN
  IF coalesce(cardinality(p_orders), 0) = 0 THEN
    RETURN 0;
  END IF;
  -- A row the dispatcher is claiming right now is waited for and then,
  -- being in flight, no longer matches: its order gets a close below.
  UPDATE pay.outbox x
     SET state = 'done', finished_at = now(),
         last_error = 'not sent: the order was cancelled (expired) before the request went out'
   WHERE x.order_id = ANY (p_orders) AND x.kind = 'psp_request' AND x.operation = 'create_payment'
     AND x.state = 'pending' AND x.attempts = 0;
  FOR o IN SELECT d.id, d.gateway, d.psp_txn_id, g.kind
             FROM pay.orders d JOIN pay.gateways g ON g.name = d.gateway
            WHERE d.id = ANY (p_orders) AND d.status = 'cancelled'
              AND g.kind = ANY (pay._provider_operation_kinds('close'))
              AND EXISTS (SELECT 1 FROM pay.outbox x
                           WHERE x.order_id = d.id AND x.kind = 'psp_request' AND x.operation = 'create_payment'
                             AND x.destination = 'gateway:' || d.gateway
                             AND (x.attempts > 0 OR x.state = 'in_flight'))
            ORDER BY d.id LOOP
    IF o.kind = ANY (pay._provider_kinds('close_needs_psp_id')) AND o.psp_txn_id IS NULL THEN
      PERFORM pay._enqueue('psp_request', 'gateway:' || o.gateway, 'query', o.id, '{}',
                           'psp_' || o.id || '_query_close', false);
    END IF;
    PERFORM pay._enqueue('psp_request', 'gateway:' || o.gateway, 'close', o.id, '{}',
                         'psp_' || o.id || '_close', false);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

CREATE FUNCTION pay._creates_at_psp(p_gateway text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce((SELECT g.kind = ANY (pay._provider_kinds('creates_payments'))
                          AND (g.base_url IS NOT NULL OR g.kind <> ALL (pay._provider_kinds('needs_base_url')))
                     FROM pay.gateways g WHERE g.name = p_gateway), false)
$$;

CREATE FUNCTION pay._gateway_queryable(p_gateway text, p_operation text DEFAULT 'query') RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT 1 FROM pay.gateways g
                WHERE g.name = p_gateway AND g.kind = ANY (pay._provider_operation_kinds(p_operation)));

CREATE FUNCTION pay._hold(p_order_id bigint, p_account_id bigint, p_amount bigint, p_currency char(3),
                          p_expires_at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_balance bigint;
  v_held bigint;
  v_id bigint;
BEGIN
  UPDATE pay.account_balances b SET held = b.held + p_amount
   WHERE b.account_id = p_account_id AND b.slot = 0
  RETURNING b.balance, b.held INTO v_balance, v_held;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'account % has no balance row to hold funds on', p_account_id;
  END IF;
  IF v_balance - v_held < 0 THEN
    RAISE EXCEPTION 'insufficient funds in account "%"', (SELECT a.code FROM pay.accounts a WHERE a.id = p_account_id)
      USING ERRCODE = 'PY003',
            DETAIL = format('Holding %s for order %s needs an available balance of %s; it is %s.',
                            p_amount, p_order_id, p_amount, v_balance - v_held + p_amount);
  END IF;
  INSERT INTO pay.holds (order_id, account_id, amount, currency, expires_at)
    VALUES (p_order_id, p_account_id, p_amount, p_currency, p_expires_at) RETURNING id INTO v_id;
  RETURN v_id;
END $$;

CREATE FUNCTION pay._janitor_dead_requests(p_before timestamptz, p_period text, p_max integer)
RETURNS SETOF bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT o.id FROM pay.orders o
   WHERE o.id IN (
       SELECT x.order_id FROM pay.outbox x
        WHERE x.state = 'dead' AND x.kind = 'psp_request'
          AND x.operation IN ('create_payment', 'close') AND x.order_id IS NOT NULL
          -- a refused close is news too: the PSP would not close a trade it saw paid
          AND (x.operation = 'close' OR pay._outcome_unknown(x.last_status))
          AND coalesce(x.last_attempt_at, x.created_at) < p_before
          AND NOT pay._query_answered_since(x.order_id, coalesce(x.last_attempt_at, x.created_at)))
     AND o.status <> 'pending' AND o.gateway IS NOT NULL AND pay._gateway_queryable(o.gateway)
     -- a request to a gateway the order has since left (re-routed) is not its trade
     AND EXISTS (SELECT 1 FROM pay.outbox x
                  WHERE x.order_id = o.id AND x.state = 'dead' AND x.destination = 'gateway:' || o.gateway
                    AND x.operation IN ('create_payment', 'close'))
     AND NOT pay._psp_request_open(o.id, '{query}')
     AND NOT EXISTS (SELECT 1 FROM pay.outbox k
                      WHERE k.idempotency_key = 'psp_' || o.id || '_query_janitor_' || p_period)
   ORDER BY o.id
   LIMIT p_max
   FOR NO KEY UPDATE OF o SKIP LOCKED
$$;

CREATE FUNCTION pay._janitor_pending_orders(p_before timestamptz, p_period text, p_max integer)
RETURNS SETOF bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT o.id FROM pay.orders o
   WHERE o.status = 'pending' AND o.gateway IS NOT NULL AND o.created_at < p_before
     AND pay._gateway_queryable(o.gateway)
     AND NOT pay._psp_request_open(o.id, '{create_payment,query}')
     AND NOT EXISTS (SELECT 1 FROM pay.outbox k
                      WHERE k.idempotency_key = 'psp_' || o.id || '_query_janitor_' || p_period)
   ORDER BY o.created_at, o.id
   LIMIT p_max
   FOR NO KEY UPDATE OF o SKIP LOCKED
$$;

CREATE FUNCTION pay._janitor_period(p_older_than interval) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN floor(extract(epoch FROM now()) / extract(epoch FROM p_older_than))::numeric::text;

CREATE FUNCTION pay._janitor_refunds(p_before timestamptz, p_period text, p_max integer)
RETURNS TABLE (refund_id bigint, order_id bigint)
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT f.id, f.order_id FROM pay.refunds f
   WHERE f.psp_status = 'requested'
     AND EXISTS (SELECT 1 FROM pay.orders o WHERE o.id = f.order_id AND pay._gateway_queryable(o.gateway, 'query_refund'))
     -- the latest request about it: answered "processing" (done), or dead
     -- without an answer; one the PSP refused for good is a person's to look at
     AND EXISTS (SELECT 1 FROM (SELECT y.state, y.last_status, coalesce(y.last_attempt_at, y.created_at) AS at
                                  FROM pay.outbox y
                                 WHERE y.order_id = f.order_id AND y.kind = 'psp_request'
                                   AND y.operation IN ('refund', 'query_refund') AND y.params->>'refund_id' = f.id::text
                                 ORDER BY y.id DESC LIMIT 1) l
                  WHERE l.at < p_before
                    AND (l.state = 'done' OR (l.state = 'dead' AND pay._outcome_unknown(l.last_status))))
     AND NOT EXISTS (SELECT 1 FROM pay.outbox y
                      WHERE y.order_id = f.order_id AND y.kind = 'psp_request'
                        AND y.operation IN ('refund', 'query_refund')
                        AND y.params->>'refund_id' = f.id::text AND y.state IN ('pending', 'in_flight'))
     AND NOT EXISTS (SELECT 1 FROM pay.outbox k
                      WHERE k.idempotency_key = 'psp_' || f.order_id || '_query_refund_' || f.id || '_janitor_' || p_period)
   ORDER BY f.id
   LIMIT p_max
   FOR NO KEY UPDATE OF f SKIP LOCKED
$$;

CREATE OR REPLACE FUNCTION pay._jobs() RETURNS TABLE (job text, schedule text)
LANGUAGE sql STABLE AS $$
  SELECT v.job, v.schedule FROM (VALUES
      (1, 'expire_orders', '* * * * *'),
      (2, 'janitor', '* * * * *'),
      (3, 'purge_callback_nonces', '*/5 * * * *'),
      (4, 'purge_api_nonces', '*/5 * * * *'),
      (5, 'purge_idempotency_keys', '*/5 * * * *'),
      (6, 'purge_outbox', '*/5 * * * *'),
      (7, 'purge_callbacks', '*/5 * * * *'),
      (8, 'expire_authorizations', '* * * * *')) v(n, job, schedule)
  UNION ALL
  SELECT 'fetch_statement:' || g.name,
         format('15 %s * * *', coalesce(current_setting('pay.statement_fetch_hour', true), '3')::integer)
    FROM pay.gateways g WHERE g.enabled AND g.kind = ANY (pay._provider_kinds('statements'))
$$;

CREATE OR REPLACE FUNCTION pay._order_json(o pay.orders) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN jsonb_build_object(
  'id', o.id, 'merchant_order_no', o.merchant_order_no, 'amount', o.amount, 'currency', o.currency,
  'status', o.status, 'refunded_amount', o.refunded_amount, 'gateway', o.gateway,
  'psp_txn_id', o.psp_txn_id, 'metadata', o.metadata, 'expires_at', o.expires_at,
  'paid_at', o.paid_at, 'created_at', o.created_at, 'updated_at', o.updated_at,
  'next_action', o.next_action, 'failure_reason', o.failure_reason,
  'capture', o.capture_mode, 'captured_amount', o.captured_amount,
  'authorization_expires_at', o.authorization_expires_at);

CREATE FUNCTION pay._outbox_apply(p_id bigint, p_status integer, p_body text, p_headers jsonb DEFAULT '{}')
RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r pay.outbox;
  g pay.gateways;
  o pay.orders;
  h jsonb := pay._lower_headers(p_headers);
  a jsonb;
  v_verdict text;
  v_reason text;
BEGIN
  SELECT * INTO r FROM pay.outbox WHERE id = p_id;
  IF NOT FOUND OR r.kind <> 'psp_request' THEN
    RETURN NULL;
  END IF;
  SELECT * INTO g FROM pay.gateways WHERE name = substr(r.destination, length('gateway:') + 1);
  IF r.operation LIKE 'fetch\_statement%' THEN
    RETURN CASE WHEN p_status BETWEEN 200 AND 299 THEN pay._apply_statement_answer(r, g, p_body) END;
  END IF;
  SELECT * INTO o FROM pay.orders WHERE id = r.order_id;
  IF NOT FOUND THEN
    RETURN 'the order of the request does not exist';
  END IF;
  BEGIN
    a := pay._provider_answer(r, g, o, p_status, h, p_body);
    IF a IS NULL THEN
      RAISE EXCEPTION 'answers of % gateways are not read', g.kind USING ERRCODE = 'feature_not_supported';
    END IF;
    v_verdict := a->>'verdict';
    v_reason := pay._apply_answer(r, g, a);
  EXCEPTION WHEN OTHERS THEN
    -- nothing it did stays; the answer is kept as rejected
    v_verdict := 'rejected';
    v_reason := SQLSTATE || ': ' || SQLERRM;
  END;
  INSERT INTO pay.psp_answers (outbox_id, order_id, refund_id, gateway, operation, http_status, headers, body,
                               verdict, reason)
    VALUES (r.id, o.id,
            CASE WHEN r.params->>'refund_id' ~ '^[0-9]{1,18}$' THEN (r.params->>'refund_id')::bigint END,
            g.name, r.operation, p_status, h, p_body, v_verdict, v_reason);
  RETURN CASE v_verdict WHEN 'applied' THEN NULL
                        WHEN 'refused' THEN v_reason
                        ELSE 'the answer was rejected: ' || v_reason END;
EXCEPTION WHEN OTHERS THEN
  RETURN 'applying the answer failed: ' || SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE OR REPLACE FUNCTION pay._outbox_request(r pay.outbox, p_secret text DEFAULT NULL) RETURNS pay.http_request
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  g pay.gateways;
BEGIN
  IF r.kind = 'merchant_notification' THEN
    RETURN pay._build_merchant_notification(r, p_secret);
  END IF;
  SELECT * INTO g FROM pay.gateways WHERE name = substr(r.destination, length('gateway:') + 1);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'gateway of % does not exist', r.destination USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN pay._provider_request(r, g);
END $$;

CREATE OR REPLACE FUNCTION pay._outbox_requests(p_ids bigint[])
RETURNS TABLE (id bigint, method text, url text, headers text[], body text, error text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = auto AS $$
DECLARE
  r pay.outbox;
  q pay.http_request;
  v_owner text;
  v_secret text;
BEGIN
  FOR r IN SELECT * FROM pay.outbox o WHERE o.id = ANY(p_ids) ORDER BY o.destination LOOP
    id := r.id;
    BEGIN
      IF r.kind = 'merchant_notification' AND r.destination IS DISTINCT FROM v_owner THEN
        v_owner := NULL;
        v_secret := pay._credential(r.destination, 'api_secret');
        v_owner := r.destination;
      END IF;
      q := CASE WHEN r.kind = 'merchant_notification' THEN pay._build_merchant_notification(r, v_secret)
                ELSE pay._outbox_request(r) END;
      method := q.method; url := q.url; headers := q.headers; body := q.body; error := NULL;
      -- the row's trace, with a new span id for this attempt
      IF r.trace_id IS NOT NULL THEN
        headers := coalesce(headers, '{}') || ('traceparent: ' || pay._traceparent(r.trace_id));
      END IF;
    EXCEPTION WHEN OTHERS THEN
      method := NULL; url := NULL; headers := NULL; body := NULL;
      error := 'building the request failed: ' || SQLSTATE || ': ' || SQLERRM;
    END;
    RETURN NEXT;
  END LOOP;
END $$;

CREATE FUNCTION pay._outcome_unknown(p_status integer) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN p_status IS NULL OR p_status IN (408, 429) OR p_status >= 500;

CREATE FUNCTION pay._paid_through_psp(o pay.orders) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT o.gateway IS NOT NULL
     AND EXISTS (SELECT 1 FROM pay.accounts a WHERE a.id = o.paid_account_id AND a.code LIKE 'psp:%')
$$;

CREATE FUNCTION pay._psp_request_open(p_order bigint, p_operations text[]) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT 1 FROM pay.outbox x
                WHERE x.order_id = p_order AND x.kind = 'psp_request'
                  AND x.operation = ANY (p_operations) AND x.state IN ('pending', 'in_flight'));

CREATE FUNCTION pay._query_answered_since(p_order bigint, p_since timestamptz) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT 1 FROM pay.outbox q
                WHERE q.order_id = p_order AND q.kind = 'psp_request' AND q.operation = 'query'
                  AND q.last_attempt_at > p_since
                  AND (q.state = 'done' OR (q.state = 'dead' AND NOT pay._outcome_unknown(q.last_status))));

CREATE FUNCTION pay._refund_json(r pay.refunds, p_currency text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN jsonb_build_object('id', r.id, 'payment_id', r.order_id, 'amount', r.amount, 'currency', p_currency,
                          'reason', r.reason, 'created_at', r.created_at);

CREATE FUNCTION pay._refusal_spares(r pay.outbox, o pay.orders) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE
    WHEN o.status <> 'pending' THEN 'order is ' || o.status
    WHEN r.destination <> 'gateway:' || o.gateway THEN 'order moved to gateway ' || o.gateway
    WHEN EXISTS (SELECT 1 FROM pay.routing_rules x WHERE x.id = o.routing_rule_id AND x.reroute)
         AND NOT EXISTS (SELECT 1 FROM pay.outbox x WHERE x.idempotency_key = 'psp_' || o.id || '_create_payment_rerouted')
      THEN 'its routing rule re-routes it' END
$$;

CREATE FUNCTION pay._release_hold(p_order_id bigint, p_outcome text, p_captured bigint DEFAULT 0)
RETURNS pay.holds
LANGUAGE plpgsql AS $$
DECLARE
  h pay.holds;
BEGIN
  SELECT * INTO h FROM pay.holds WHERE order_id = p_order_id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  -- the order's row lock serialises its release: a second one would fail
  -- on hold_releases' key
  INSERT INTO pay.hold_releases (hold_id, outcome, captured) VALUES (h.id, p_outcome, p_captured);
  UPDATE pay.account_balances b SET held = b.held - h.amount
   WHERE b.account_id = h.account_id AND b.slot = 0;
  RETURN h;
END $$;

CREATE OR REPLACE FUNCTION pay._statement_classify(p_statement bigint, p_gateway text) RETURNS void
LANGUAGE sql AS $$
  WITH lines AS (
    SELECT s.*, o.id AS order_id, o.amount AS order_amount, o.currency AS order_currency,
           o.status AS order_status, o.paid_at, o.psp_txn_id AS order_txn,
           (row_number() OVER (PARTITION BY s.psp_txn_id, s.kind ORDER BY s.line_no) > 1
            OR EXISTS (SELECT 1 FROM pay.statement_lines l JOIN pay.statements t ON t.id = l.statement_id
                        WHERE l.psp_txn_id = s.psp_txn_id AND l.kind = s.kind AND t.gateway = p_gateway)) AS dup
      FROM pg_temp.pay_statement_stage s
      LEFT JOIN pay.orders by_ref
        ON s.kind IN ('payment', 'refund') AND s.order_ref ~ '^[0-9]{1,18}$'
       AND by_ref.id = (CASE WHEN s.order_ref ~ '^[0-9]{1,18}$' THEN s.order_ref::bigint END)
       AND by_ref.gateway = p_gateway
      LEFT JOIN pay.orders by_txn
        ON s.kind IN ('payment', 'refund') AND by_ref.id IS NULL AND by_txn.gateway = p_gateway
       AND by_txn.psp_txn_id = coalesce(s.payment_ref, s.psp_txn_id)
      CROSS JOIN LATERAL (SELECT coalesce(by_ref.id, by_txn.id) AS id,
                                 -- what the order paid: a capture may take less than was authorized
                                 CASE WHEN by_ref.id IS NOT NULL THEN coalesce(by_ref.captured_amount, by_ref.amount)
                                      ELSE coalesce(by_txn.captured_amount, by_txn.amount) END AS amount,
                                 coalesce(by_ref.currency, by_txn.currency) AS currency,
                                 coalesce(by_ref.status, by_txn.status) AS status,
                                 CASE WHEN by_ref.id IS NOT NULL THEN by_ref.paid_at ELSE by_txn.paid_at END AS paid_at,
                                 CASE WHEN by_ref.id IS NOT NULL THEN by_ref.psp_txn_id ELSE by_txn.psp_txn_id END
                                   AS psp_txn_id) o
  ),
  -- refund lines that can take a refund of ours, numbered per order and amount
  refund_lines AS (
    SELECT l.line_no, l.order_id, l.amount,
           row_number() OVER (PARTITION BY l.order_id, l.amount ORDER BY l.line_no) AS nth
      FROM lines l
     WHERE l.kind = 'refund' AND NOT l.dup AND l.order_id IS NOT NULL AND l.currency = l.order_currency
  ),
  open_refunds AS (
    SELECT r.id, r.order_id, r.amount,
           row_number() OVER (PARTITION BY r.order_id, r.amount ORDER BY r.id) AS nth
      FROM pay.refunds r
     WHERE r.order_id IN (SELECT order_id FROM refund_lines)
       AND NOT EXISTS (SELECT 1 FROM pay.statement_lines x WHERE x.refund_id = r.id)
  ),
  paired AS (
    SELECT rl.line_no, orf.id AS refund_id, orf.amount
      FROM refund_lines rl JOIN open_refunds orf USING (order_id, amount, nth)
  ),
  classified AS (
    SELECT l.*, p.refund_id,
           CASE WHEN l.kind = 'payment' THEN pay._fee_of(fr.r, l.order_amount) END AS expected,
           -- a refund line's: the refund it took, else the order's first refund no line took
           CASE WHEN l.kind = 'refund'
                THEN coalesce(p.amount, (SELECT orf.amount FROM open_refunds orf
                                          WHERE orf.order_id = l.order_id
                                            AND orf.id NOT IN (SELECT x.refund_id FROM paired x)
                                          ORDER BY orf.id LIMIT 1))
                ELSE l.order_amount END AS ours
      FROM lines l LEFT JOIN paired p USING (line_no)
      -- the fee rule in force when the order was paid (pay._fee_rule_at, as a join)
      LEFT JOIN LATERAL (
        SELECT r FROM pay.fee_rules r
         WHERE l.kind = 'payment' AND l.order_id IS NOT NULL
           AND r.gateway = p_gateway AND (r.currency = l.order_currency OR r.currency IS NULL)
           AND r.valid_from <= coalesce(l.paid_at, l.occurred_at)
         ORDER BY r.currency IS NULL, r.valid_from DESC, r.id DESC LIMIT 1) fr ON true
  )
  INSERT INTO pay.statement_lines (statement_id, line_no, kind, psp_txn_id, order_id, amount, fee, currency,
                                   occurred_at, result, payment_ref, refund_id, our_amount, expected_fee, source_line)
  SELECT p_statement, c.line_no, c.kind, c.psp_txn_id, c.order_id, c.amount, c.fee, c.currency, c.occurred_at,
         CASE
           WHEN c.dup THEN 'duplicate'
           WHEN c.kind IN ('fee', 'payout') THEN 'matched'
           WHEN c.kind = 'other' OR c.order_id IS NULL THEN 'missing_in_books'
           WHEN c.kind = 'payment' AND c.paid_at IS NULL AND c.order_status IN ('pending', 'failed') THEN 'missing_in_books'
           WHEN c.kind = 'refund' AND c.refund_id IS NULL AND c.currency = c.order_currency
                AND NOT EXISTS (SELECT 1 FROM open_refunds orf WHERE orf.order_id = c.order_id AND orf.amount <> c.amount)
             THEN 'missing_in_books'
           WHEN c.currency <> c.order_currency THEN 'currency_mismatch'
           WHEN c.kind = 'payment' AND c.amount <> c.order_amount THEN 'amount_mismatch'
           WHEN c.kind = 'refund' AND c.refund_id IS NULL THEN 'amount_mismatch'
           WHEN c.kind = 'payment' AND (c.paid_at IS NULL OR c.order_txn IS DISTINCT FROM c.psp_txn_id) THEN 'status_mismatch'
           WHEN c.kind = 'payment' AND c.fee <> c.expected THEN 'fee_mismatch'
           ELSE 'matched'
         END,
         c.payment_ref, c.refund_id, CASE WHEN c.order_id IS NOT NULL THEN c.ours END,
         CASE WHEN c.order_id IS NOT NULL THEN c.expected END, c.source_line
    FROM classified c;
$$;

CREATE FUNCTION pay._void(o pay.orders, p_outcome text, p_cause text) RETURNS pay.orders
LANGUAGE plpgsql AS $$
DECLARE
  h pay.holds;
BEGIN
  h := pay._release_hold(o.id, p_outcome);
  UPDATE pay.orders SET status = 'cancelled', status_cause = p_cause WHERE id = o.id RETURNING * INTO o;
  IF h.id IS NULL AND pay._paid_through_psp(o) THEN
    PERFORM pay.enqueue_psp_request(o.id, 'void');
  END IF;
  RETURN o;
END $$;

CREATE FUNCTION pay.api_await_payment(headers jsonb, body text)
RETURNS TABLE (http_status integer, content_type text, response_body text, location text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h jsonb := pay._lower_headers(headers);
  p jsonb := pay._api_body(api_await_payment.body);
  v_merchant bigint;
  o pay.orders;
  v_answered boolean;
BEGIN
  v_merchant := pay._api_authenticate_again(h, p);
  SELECT * INTO o FROM pay.orders x WHERE x.merchant_id = v_merchant AND x.merchant_order_no = p->>'merchant_order_no';
  IF NOT FOUND OR NOT pay._acts_for(o.merchant_id) THEN
    RETURN QUERY SELECT e.*, NULL::text FROM pay._api_error(404, 'not_found', 'merchant_order_no', 'no such payment') e;
    RETURN;
  END IF;
  v_answered := pay._await_checkout(o.id, coalesce(current_setting('pay.checkout_wait', true), '2s')::interval);
  SELECT * INTO o FROM pay.orders x WHERE x.id = o.id;    -- a new snapshot: the answer, if any
  IF NOT v_answered THEN
    RETURN QUERY SELECT 202, 'application/json', pay._order_json(o)::text, '/api/v1/payments/' || o.id;
    RETURN;
  END IF;
  RETURN QUERY SELECT 201, 'application/json', pay._order_json(o)::text, NULL::text;
END $$;

CREATE OR REPLACE FUNCTION pay.api_create_payment(headers jsonb, body text) RETURNS SETOF pay.http_response
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h jsonb := pay._lower_headers(headers);
  p jsonb;
  v_merchant bigint;
  o pay.orders;
BEGIN
  -- the request's trace (pay-proxy passes its traceparent header) unless the caller set one
  IF h ? 'traceparent' AND coalesce(current_setting('pay.traceparent', true), '') = '' THEN
    PERFORM set_config('pay.traceparent', h->>'traceparent', true);
  END IF;
  p := pay._api_body(body);
  v_merchant := pay._api_authenticate(h, p);
  IF jsonb_typeof(p->'merchant_order_no') IS DISTINCT FROM 'string' THEN
    RAISE EXCEPTION 'merchant_order_no must be a string' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_typeof(p->'amount') IS DISTINCT FROM 'number' OR (p->>'amount') !~ '^[0-9]{1,18}$' THEN
    RAISE EXCEPTION 'amount must be a whole number of minor units' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_typeof(p->'currency') IS DISTINCT FROM 'string' THEN
    RAISE EXCEPTION 'currency must be a string' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p ? 'expires_in_s' AND (p->>'expires_in_s') !~ '^[0-9]{1,9}$' THEN
    RAISE EXCEPTION 'expires_in_s must be a whole number of seconds' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pay._api_known_fields(p, '{merchant_order_no,amount,currency,metadata,expires_in_s,gateway,capture}');
  -- a capture mode the API does not know is unprocessable, not malformed
  IF p ? 'capture' AND (jsonb_typeof(p->'capture') IS DISTINCT FROM 'string'
                        OR p->>'capture' NOT IN ('automatic', 'manual')) THEN
    RETURN NEXT pay._api_error(422, 'invalid_capture', 'capture', 'capture must be "automatic" or "manual"');
    RETURN;
  END IF;
  o := pay.create_order((SELECT code FROM pay.merchants WHERE id = v_merchant),
                        p->>'merchant_order_no', (p->>'amount')::bigint, p->>'currency',
                        idempotency_key => h->>'idempotency-key',
                        expires_in => coalesce((p->>'expires_in_s')::integer * interval '1 second', interval '15 minutes'),
                        metadata => coalesce(p->'metadata', '{}'),
                        gateway => p->>'gateway',
                        capture => coalesce(p->>'capture', 'automatic'));
  RETURN NEXT ROW(201, 'application/json', pay._order_json(o)::text)::pay.http_response;
END $$;

CREATE FUNCTION pay.api_create_refund(headers jsonb, id text, body text) RETURNS SETOF pay.http_response
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h jsonb := pay._lower_headers(headers);
  p jsonb := pay._api_body(api_create_refund.body);
  v_merchant bigint;
  o pay.orders;
  r pay.refunds;
  v_refund bigint;
BEGIN
  v_merchant := pay._api_authenticate(h, p || jsonb_build_object('id', id));
  PERFORM pay._api_known_fields(p, '{amount,reason}');
  IF NOT h ? 'idempotency-key' THEN
    RAISE EXCEPTION 'idempotency_key: the Idempotency-Key header is required' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_typeof(p->'amount') IS DISTINCT FROM 'number' OR (p->>'amount') !~ '^[0-9]{1,18}$' THEN
    RAISE EXCEPTION 'amount must be a whole number of minor units' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p ? 'reason' AND jsonb_typeof(p->'reason') <> 'string' THEN
    RAISE EXCEPTION 'reason must be a string' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  o := pay._api_order(v_merchant, id);
  IF o.id IS NULL THEN
    RETURN NEXT pay._api_error(404, 'not_found', 'id', 'no such payment');
    RETURN;
  END IF;
  v_refund := pay.refund(o.id, (p->>'amount')::bigint, p->>'reason', h->>'idempotency-key');
  SELECT * INTO STRICT r FROM pay.refunds f WHERE f.id = v_refund;
  RETURN NEXT ROW(201, 'application/json', pay._refund_json(r, o.currency)::text)::pay.http_response;
END $$;

CREATE OR REPLACE FUNCTION pay.api_get_payment(headers jsonb, id text) RETURNS SETOF pay.http_response
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h jsonb := pay._lower_headers(headers);
  v_merchant bigint;
  o pay.orders;
BEGIN
  v_merchant := pay._api_authenticate(h, jsonb_build_object('id', id));
  o := pay._api_order(v_merchant, id);
  IF o.id IS NULL THEN
    RETURN NEXT pay._api_error(404, 'not_found', 'id', 'no such payment');
    RETURN;
  END IF;
  RETURN NEXT ROW(200, 'application/json', pay._order_json(o)::text)::pay.http_response;
END $$;

CREATE FUNCTION pay.api_get_refund(headers jsonb, id text) RETURNS SETOF pay.http_response
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h jsonb := pay._lower_headers(headers);
  v_merchant bigint;
  r pay.refunds;
  o pay.orders;
BEGIN
  v_merchant := pay._api_authenticate(h, jsonb_build_object('id', id));
  IF id IS NULL OR id !~ '^[0-9]{1,18}$' THEN
    RAISE EXCEPTION 'id must be a refund id' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO r FROM pay.refunds f WHERE f.id = api_get_refund.id::bigint;
  IF FOUND THEN
    o := pay._api_order(v_merchant, r.order_id::text);
  END IF;
  IF o.id IS NULL THEN
    -- another merchant's refund is as absent as one that does not exist
    RETURN NEXT pay._api_error(404, 'not_found', 'id', 'no such refund');
    RETURN;
  END IF;
  RETURN NEXT ROW(200, 'application/json', pay._refund_json(r, o.currency)::text)::pay.http_response;
END $$;

CREATE FUNCTION pay.api_list_payments(headers jsonb, query jsonb) RETURNS SETOF pay.http_response
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h jsonb := pay._lower_headers(headers);
  q jsonb := coalesce(query, '{}');
  v_merchant bigint;
  v_limit integer := 20;
  v_after bigint;
  v_from timestamptz;
  v_to timestamptz;
  v_rows jsonb[];
BEGIN
  IF jsonb_typeof(q) IS DISTINCT FROM 'object'
     OR EXISTS (SELECT 1 FROM jsonb_each(q) e WHERE jsonb_typeof(e.value) <> 'string') THEN
    RAISE EXCEPTION 'query must be an object of strings' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_merchant := pay._api_authenticate(h, q);
  PERFORM pay._api_known_fields(q, '{status,created_from,created_to,limit,after}');
  IF q ? 'limit' THEN
    IF q->>'limit' !~ '^[0-9]{1,3}$' OR (q->>'limit')::integer NOT BETWEEN 1 AND 100 THEN
      RAISE EXCEPTION 'limit must be 1 to 100, not "%"', q->>'limit' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_limit := (q->>'limit')::integer;
  END IF;
  IF q ? 'after' THEN
    IF q->>'after' !~ '^[0-9]{1,18}$' THEN
      RAISE EXCEPTION 'after must be the "next" of a page, not "%"', q->>'after' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_after := (q->>'after')::bigint;
  END IF;
  IF q ? 'status' AND NOT EXISTS (SELECT 1 FROM pay.order_statuses s WHERE s.status = q->>'status') THEN
    RAISE EXCEPTION 'status: unknown status "%"', q->>'status' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_from := pay._api_time(q, 'created_from');
  v_to := pay._api_time(q, 'created_to');
  SELECT array_agg(page.j ORDER BY page.id DESC) INTO v_rows
    FROM (SELECT pay._order_json(x) AS j, x.id FROM pay.orders x
           WHERE x.merchant_id = v_merchant AND pay._acts_for(x.merchant_id)
             AND (v_after IS NULL OR x.id < v_after)
             AND (NOT q ? 'status' OR x.status = q->>'status')
             AND (v_from IS NULL OR x.created_at >= v_from)
             AND (v_to IS NULL OR x.created_at < v_to)
           ORDER BY x.id DESC
           LIMIT v_limit + 1) page;
  RETURN NEXT ROW(200, 'application/json', jsonb_build_object(
      'data', to_jsonb(coalesce(v_rows[1:v_limit], '{}'::jsonb[])),
      'next', CASE WHEN cardinality(v_rows) > v_limit THEN v_rows[v_limit]->>'id' END)::text)::pay.http_response;
END $$;

CREATE FUNCTION pay.api_move_payment(headers jsonb, id text, action text, body text)
RETURNS SETOF pay.http_response
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h jsonb := pay._lower_headers(headers);
  p jsonb := pay._api_body(api_move_payment.body);
  v_merchant bigint;
  o pay.orders;
BEGIN
  IF action IS NULL OR action NOT IN ('cancel', 'ship', 'complete', 'capture', 'void') THEN
    RAISE EXCEPTION 'action must be cancel, ship, complete, capture or void' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_merchant := pay._api_authenticate(h, p || jsonb_build_object('id', id));
  PERFORM pay._api_known_fields(p, CASE action WHEN 'cancel' THEN '{reason}'::text[]
                                               WHEN 'capture' THEN '{amount}'::text[] ELSE '{}' END);
  IF p ? 'reason' AND jsonb_typeof(p->'reason') <> 'string' THEN
    RAISE EXCEPTION 'reason must be a string' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p ? 'amount' AND (jsonb_typeof(p->'amount') <> 'number' OR (p->>'amount') !~ '^[0-9]{1,18}$') THEN
    RAISE EXCEPTION 'amount must be a whole number of minor units' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  o := pay._api_order(v_merchant, id);
  IF o.id IS NULL THEN
    RETURN NEXT pay._api_error(404, 'not_found', 'id', 'no such payment');
    RETURN;
  END IF;
  o := CASE action WHEN 'cancel' THEN pay.cancel(o.id, p->>'reason')
                   WHEN 'ship' THEN pay.ship(o.id)
                   WHEN 'capture' THEN pay.capture(o.id, (p->>'amount')::bigint)
                   WHEN 'void' THEN pay.void(o.id)
                   ELSE pay.complete(o.id) END;
  RETURN NEXT ROW(200, 'application/json', pay._order_json(o)::text)::pay.http_response;
END $$;

CREATE FUNCTION pay.available_balance(account text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_balance bigint := pay.balance(account);   -- the same errors, the same binding rule
BEGIN
  RETURN v_balance - (SELECT sum(b.held) FROM pay.account_balances b JOIN pay.accounts a ON a.id = b.account_id
                       WHERE a.code = available_balance.account)::bigint;
END $$;

CREATE FUNCTION pay.capture(order_id bigint, amount bigint DEFAULT NULL) RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  v_amount bigint;
BEGIN
  IF capture.amount IS NOT NULL AND capture.amount <= 0 THEN
    RAISE EXCEPTION 'amount must be a positive number of minor units, not %', capture.amount
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- the order's row lock serialises capture, void and expiry
  o := pay._lock_order(order_id);
  IF o.status <> 'authorized' THEN
    RAISE EXCEPTION 'order % is %; only an authorized order can be captured', o.id, o.status
      USING ERRCODE = 'PY001';
  END IF;
  v_amount := coalesce(capture.amount, o.amount);
  IF v_amount > o.amount THEN
    RAISE EXCEPTION 'capture of % exceeds the authorized amount % of order %', v_amount, o.amount, o.id
      USING ERRCODE = 'PY005';
  END IF;
  RETURN pay._capture(o, v_amount, 'capture', true);
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
  IF kind IS NULL OR kind <> ALL (pay._provider_kinds()) THEN
    RAISE EXCEPTION 'kind must be one of %; not "%"', array_to_string(pay._provider_kinds(), ', '), kind
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF base_url IS NOT NULL AND base_url !~ '^https?://[^[:space:]]+$' THEN
    RAISE EXCEPTION 'base_url must be an http or https URL' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pay._check_destination('base_url', base_url);
  IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- requests per second the dispatcher sends to this gateway at most (src/dispatcher_limit.c)
  IF options ? 'max_rate' AND NOT coalesce(CASE WHEN jsonb_typeof(options->'max_rate') = 'number'
      THEN (options->>'max_rate')::numeric > 0 AND (options->>'max_rate')::numeric <= 1000000 END, false) THEN
    RAISE EXCEPTION 'max_rate must be a number of requests per second above 0 and at most 1000000, not %',
      options->'max_rate' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- how long an authorization (capture => 'manual') waits for its capture
  IF options ? 'authorization_days' AND (jsonb_typeof(options->'authorization_days') <> 'number'
       OR options->>'authorization_days' !~ '^[0-9]{1,3}$'
       OR (options->>'authorization_days')::integer NOT BETWEEN 1 AND 365) THEN
    RAISE EXCEPTION 'options.authorization_days must be a whole number of days from 1 to 365'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pay.gateways (name, kind, base_url, options)
    VALUES (create_gateway.name, create_gateway.kind, create_gateway.base_url, create_gateway.options)
    RETURNING id INTO v_id;
  RETURN v_id;
END $$;

CREATE FUNCTION pay.create_order(merchant text, merchant_order_no text, amount bigint, currency text,
                                 idempotency_key text DEFAULT NULL,
                                 expires_in interval DEFAULT '15 minutes',
                                 metadata jsonb DEFAULT '{}', gateway text DEFAULT NULL,
                                 capture text DEFAULT 'automatic')
RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint;
  v_id bigint;
  v_request jsonb;
  v_key pay.idempotency_keys;
  o pay.orders;
  v_admitted record;
BEGIN
  v_merchant := pay._merchant_id(merchant);
  -- merchant binding (53_merchant_binding.sql)
  IF NOT pay._acts_for(v_merchant) THEN
    RAISE EXCEPTION 'merchant: role "%" is not bound to merchant "%"',
      pay._outer_role()::regrole, merchant USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM pay._check_order_args(merchant_order_no, amount, pay._exponent(currency),
                                expires_in, metadata, idempotency_key);
  IF capture IS NULL OR capture NOT IN ('automatic', 'manual') THEN
    RAISE EXCEPTION 'capture must be automatic or manual, not "%"', coalesce(capture, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_id := nextval('pay.orders_id_seq');

  IF idempotency_key IS NOT NULL THEN
    v_request := jsonb_build_object('merchant_order_no', merchant_order_no, 'amount', amount,
                                    'currency', currency, 'expires_in', expires_in,
                                    'metadata', metadata, 'gateway', gateway);
    -- named only when manual: keys stored before two-phase payments
    -- existed still match their automatic replays
    IF capture = 'manual' THEN
      v_request := v_request || jsonb_build_object('capture', capture);
    END IF;
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

  -- a token of the merchant's rate limit (a replay, returned above, costs
  -- none) and the route; an assignment, not a query (no FROM to plan)
  v_admitted := pay._admit(v_merchant, create_order.merchant, create_order.gateway, create_order.currency,
                           create_order.amount, create_order.merchant_order_no);
  -- the routed gateway must be able to authorize without capturing (the
  -- insert below is rolled back with the refusal)
  IF capture = 'manual' AND v_admitted.gateway IS NOT NULL THEN
    PERFORM pay._check_manual_capture(v_admitted.gateway);
  END IF;
  INSERT INTO pay.orders (id, merchant_id, merchant_order_no, amount, currency, gateway, metadata, expires_at,
                          routing_rule_id, capture_mode)
    VALUES (v_id, v_merchant, create_order.merchant_order_no, create_order.amount, create_order.currency,
            v_admitted.gateway, create_order.metadata, now() + create_order.expires_in, v_admitted.rule_id,
            create_order.capture)
    RETURNING * INTO o;
  -- The PSP's create request goes out with the order: queued in this
  -- transaction, under enqueue_psp_request's key for it, so a later
  -- enqueue_psp_request(id, 'create_payment') returns this row.
  IF o.gateway IS NOT NULL AND pay._creates_at_psp(o.gateway) THEN
    -- the request builders authorize only when params.capture is manual
    PERFORM pay._enqueue('psp_request', 'gateway:' || o.gateway, 'create_payment', o.id,
                         CASE WHEN o.capture_mode = 'manual' THEN '{"capture": "manual"}'::jsonb ELSE '{}' END,
                         'psp_' || o.id || '_create_payment', true);
  END IF;
  RETURN o;
END $$;

CREATE OR REPLACE FUNCTION pay.enqueue_merchant_notification(order_id bigint, event text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  m pay.merchants;
  v_event_id text;
BEGIN
  IF event IS NULL OR event !~ '^[a-z][a-z0-9_.:-]{0,63}$' THEN
    RAISE EXCEPTION 'event must be 1 to 64 lower-case letters, digits or _.:- starting with a letter, not "%"',
      coalesce(event, 'null') USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO o FROM pay.orders WHERE id = enqueue_merchant_notification.order_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'order_id: order % does not exist', coalesce(enqueue_merchant_notification.order_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO STRICT m FROM pay.merchants WHERE id = o.merchant_id;
  IF m.notify_url IS NULL THEN
    RETURN NULL;                -- the merchant takes no notifications
  END IF;
  v_event_id := 'evt_' || o.id || '_' || event;
  RETURN pay._enqueue('merchant_notification', 'merchant:' || m.code, event, o.id,
                      jsonb_build_object('id', o.id::text, 'merchant_order_no', o.merchant_order_no,
                                         -- what the order paid: a capture may take less than was authorized
                                         'amount', coalesce(o.captured_amount, o.amount)::text,
                                         'currency', o.currency::text,
                                         'status', o.status, 'event_id', v_event_id),
                      v_event_id, false);
END $$;

CREATE OR REPLACE FUNCTION pay.enqueue_psp_request(order_id bigint, operation text, params jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  v_key text;
  v_refund bigint;
BEGIN
  IF operation IS NULL OR operation NOT IN ('create_payment', 'query', 'refund', 'query_refund', 'close',
                                            'capture', 'void') THEN
    RAISE EXCEPTION 'operation must be one of create_payment, query, refund, query_refund, close, capture, void; not "%"', coalesce(operation, 'null')
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
    WHEN 'refund', 'query_refund' THEN
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
      IF operation = 'refund' THEN
        v_key := 'psp_' || o.id || '_refund_' || v_refund;
        -- until the PSP's answer says succeeded or failed (81_psp_answers.sql)
        UPDATE pay.refunds r SET psp_status = 'requested' WHERE r.id = v_refund AND r.psp_status IS NULL;
      ELSE
        -- a query changes nothing: every one is sent
        v_key := 'psp_' || o.id || '_query_refund_' || v_refund || '_' || nextval('pay.outbox_id_seq');
      END IF;
    WHEN 'capture' THEN
      IF jsonb_typeof(params->'amount') IS DISTINCT FROM 'number' OR params->>'amount' !~ '^[1-9][0-9]{0,17}$' THEN
        RAISE EXCEPTION 'params: a capture needs "amount", a positive number of minor units'
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      -- an order is captured once
      v_key := 'psp_' || o.id || '_capture';
    WHEN 'query' THEN
      -- a query changes nothing: every one is sent
      v_key := 'psp_' || o.id || '_query_' || nextval('pay.outbox_id_seq');
    ELSE
      v_key := 'psp_' || o.id || '_' || operation;
  END CASE;
  RETURN pay._enqueue('psp_request', 'gateway:' || o.gateway, operation, o.id, params, v_key, true);
END $$;

CREATE FUNCTION pay.expire_authorizations(at timestamptz DEFAULT now(), max_orders integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  n integer := 0;
BEGIN
  IF max_orders IS NULL OR max_orders < 1 THEN
    RAISE EXCEPTION 'max_orders must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- partial index orders_authorization_expiry; an order being captured
  -- right now is skipped, not waited for
  FOR o IN
    SELECT * FROM pay.orders
     WHERE status = 'authorized' AND authorization_expires_at <= expire_authorizations.at
     ORDER BY authorization_expires_at
     LIMIT max_orders
     FOR UPDATE SKIP LOCKED
  LOOP
    PERFORM pay._void(o, 'expired', 'authorization expired');
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

CREATE OR REPLACE FUNCTION pay.expire_orders(at timestamptz DEFAULT now(), max_orders integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_ids bigint[];
BEGIN
  IF max_orders IS NULL OR max_orders < 1 THEN
    RAISE EXCEPTION 'max_orders must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Only due pending orders are read (partial index orders_pending_expiry);
  -- an order being paid right now is skipped, not waited for.
  WITH due AS (
    SELECT id FROM pay.orders
     WHERE status = 'pending' AND expires_at <= expire_orders.at
     ORDER BY expires_at
     LIMIT max_orders
     FOR UPDATE SKIP LOCKED),
  cancelled AS (
    UPDATE pay.orders o SET status = 'cancelled', status_cause = 'expired'
      FROM due WHERE o.id = due.id
    RETURNING o.id)
  SELECT array_agg(id) INTO v_ids FROM cancelled;
  -- the trades close at the PSP in this transaction (82_expiry_close.sql)
  PERFORM pay._close_expired(v_ids);
  RETURN coalesce(cardinality(v_ids), 0);
END $$;

CREATE OR REPLACE FUNCTION pay.fetch_statement(gateway text, day date DEFAULT (now() AT TIME ZONE 'UTC')::date - 1)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  g pay.gateways;
  v_start bigint;
BEGIN
  SELECT * INTO g FROM pay.gateways x WHERE x.name = fetch_statement.gateway;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'gateway: unknown gateway "%"', gateway USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF g.kind <> ALL (pay._provider_kinds('statements')) THEN
    RAISE EXCEPTION 'gateway: fetching statements from % gateways is not supported; import their bills with pay.import_statement', g.kind
      USING ERRCODE = 'feature_not_supported';
  END IF;
  IF day IS NULL THEN
    RAISE EXCEPTION 'day must not be null' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_start := extract(epoch FROM day::timestamp AT TIME ZONE 'UTC')::bigint;
  RETURN pay._enqueue('psp_request', 'gateway:' || g.name, 'fetch_statement', NULL,
    jsonb_build_object('day', to_char(day, 'YYYY-MM-DD'), 'interval_start', v_start, 'interval_end', v_start + 86400),
    'fetch_statement:' || g.name || ':' || to_char(day, 'YYYY-MM-DD'), false);
END $$;

CREATE OR REPLACE FUNCTION pay.mark_paid(order_id bigint, psp_txn_id text, amount bigint, currency text)
RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
BEGIN
  IF psp_txn_id IS NULL OR length(psp_txn_id) NOT BETWEEN 1 AND 128 THEN
    RAISE EXCEPTION 'psp_txn_id must be 1 to 128 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  o := pay._lock_order(order_id);
  IF amount IS DISTINCT FROM o.amount THEN
    RAISE EXCEPTION 'amount % does not match the amount % of order %', coalesce(amount::text, 'null'), o.amount, o.id
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF currency IS DISTINCT FROM o.currency THEN
    RAISE EXCEPTION 'currency % does not match the currency % of order %', coalesce(currency, 'null'), o.currency, o.id
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- A retry of the same confirmation is answered, not refused.
  IF o.status IN ('authorized', 'paid', 'shipped', 'completed', 'refunded') AND o.psp_txn_id = mark_paid.psp_txn_id THEN
    RETURN o;
  END IF;

  IF o.paid_at IS NOT NULL THEN
    RAISE EXCEPTION 'order % is already paid, by psp_txn_id %', o.id, coalesce(o.psp_txn_id, '(none: wallet)')
      USING ERRCODE = 'PY001';
  ELSIF o.status NOT IN ('pending', 'failed') THEN
    RAISE EXCEPTION 'order % is %; only a pending or failed order can be paid', o.id, o.status
      USING ERRCODE = 'PY001';
  END IF;

  RETURN pay._settle(o, mark_paid.psp_txn_id, 'mark_paid');
END $$;

CREATE FUNCTION pay.next_action(order_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint;
  v_action jsonb;
BEGIN
  SELECT o.merchant_id, o.next_action INTO v_merchant, v_action FROM pay.orders o WHERE o.id = next_action.order_id;
  -- to a caller bound to other merchants (53_merchant_binding.sql) it does not exist
  IF NOT FOUND OR NOT pay._acts_for(v_merchant) THEN
    RAISE EXCEPTION 'order_id: order % does not exist', coalesce(next_action.order_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v_action;
END $$;

CREATE OR REPLACE FUNCTION pay.pay_with_balance(order_id bigint, wallet text) RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  w pay.accounts;
BEGIN
  o := pay._lock_order(order_id);
  IF o.status NOT IN ('pending', 'failed') THEN
    RAISE EXCEPTION 'order % is %; only a pending order can be paid', o.id, o.status USING ERRCODE = 'PY001';
  END IF;
  SELECT * INTO w FROM pay.accounts a WHERE a.code = wallet;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'wallet: unknown account "%"', wallet USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT w.non_negative THEN
    RAISE EXCEPTION 'wallet: account "%" is not a non-negative wallet account', wallet
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF w.currency <> o.currency THEN
    RAISE EXCEPTION 'wallet: account "%" holds %, order % is in %', wallet, w.currency, o.id, o.currency
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- two-phase: reserve the amount, book nothing (56_two_phase.sql)
  IF o.capture_mode = 'manual' THEN
    RETURN pay._authorize_from_wallet(o, w);
  END IF;
  UPDATE pay.orders
     SET status = 'paid', status_cause = 'pay_with_balance', paid_at = now(), paid_account_id = w.id
   WHERE id = o.id
  RETURNING * INTO o;
  PERFORM pay._post('order:' || o.id || ':paid', o.id,
                    ARRAY[w.id, pay._merchant_account(o.merchant_id, o.currency)], ARRAY[-o.amount, o.amount]);
  RETURN o;
END $$;

CREATE OR REPLACE FUNCTION pay.refund(order_id bigint, amount bigint, reason text DEFAULT NULL,
                           idempotency_key text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
  r pay.refunds;
BEGIN
  IF amount IS NULL OR amount <= 0 THEN
    RAISE EXCEPTION 'amount must be a positive number of minor units, not %', coalesce(amount::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF length(reason) > 500 THEN
    RAISE EXCEPTION 'reason is longer than 500 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF idempotency_key IS NOT NULL AND length(idempotency_key) NOT BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION 'idempotency_key must be 1 to 255 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The order's row lock serialises its refunds: the sum check below cannot race.
  o := pay._lock_order(order_id);
  IF idempotency_key IS NOT NULL THEN
    SELECT * INTO r FROM pay.refunds f WHERE f.order_id = o.id AND f.idempotency_key = refund.idempotency_key;
    IF FOUND THEN
      IF r.amount <> amount THEN
        RAISE EXCEPTION 'idempotency_key "%" was already used for a refund of %', idempotency_key, r.amount
          USING ERRCODE = 'PY002';
      END IF;
      RETURN r.id;
    END IF;
  END IF;
  IF o.status NOT IN ('paid', 'shipped', 'completed') THEN
    RAISE EXCEPTION 'order % is %; only a paid, shipped or completed order can be refunded', o.id, o.status
      USING ERRCODE = 'PY001';
  END IF;
  -- what was paid: a partial capture paid less than the order's amount
  IF amount > coalesce(o.captured_amount, o.amount) - o.refunded_amount THEN
    RAISE EXCEPTION 'refund of % exceeds the refundable amount % of order %', amount,
      coalesce(o.captured_amount, o.amount) - o.refunded_amount, o.id
      USING ERRCODE = 'PY005';
  END IF;
  r.id := pay._book_refund(o, amount, reason, idempotency_key);
  -- money paid through a PSP goes back through it: queue the refund request
  -- in this transaction (a wallet payment is returned by the ledger alone)
  IF o.gateway IS NOT NULL
     AND EXISTS (SELECT 1 FROM pay.accounts a WHERE a.id = o.paid_account_id AND a.code LIKE 'psp:%') THEN
    PERFORM pay.enqueue_psp_request(o.id, 'refund', jsonb_build_object('refund_id', r.id));
  END IF;
  RETURN r.id;
END $$;

CREATE OR REPLACE FUNCTION pay.repair_break(statement_id bigint, line_no integer) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  l pay.statement_lines;
  g pay.gateways;
  v_outcome text;
BEGIN
  SELECT * INTO l FROM pay.statement_lines x
   WHERE x.statement_id = repair_break.statement_id AND x.line_no = repair_break.line_no FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'line_no: statement % has no line %', coalesce(statement_id::text, 'null'), coalesce(line_no::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF l.repaired_at IS NOT NULL THEN
    RETURN 'already repaired';
  END IF;
  IF l.kind <> 'payment' OR l.result <> 'missing_in_books' OR l.order_id IS NULL THEN
    RAISE EXCEPTION 'line_no: line % of statement % is a % line, %, of %; only a missing_in_books payment of one of our orders can be repaired',
      l.line_no, l.statement_id, l.kind, l.result, coalesce('order ' || l.order_id, 'no order')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT gw.* INTO STRICT g FROM pay.gateways gw JOIN pay.statements s ON s.gateway = gw.name WHERE s.id = l.statement_id;
  v_outcome := pay._apply_answer_event(g.name, jsonb_build_object(
      'kind', 'payment_succeeded', 'order_ref', l.order_id::text, 'psp_txn_id', l.psp_txn_id,
      'amount', l.amount::text, 'currency', l.currency::text,
      'event_id', 'statement:' || l.statement_id || ':' || l.line_no,
      'cause', 'statement ' || l.statement_id || ' line ' || l.line_no),
    'statement ' || l.statement_id || ' line ' || l.line_no);
  IF v_outcome LIKE 'paid%' OR v_outcome = 'already paid by this transaction' THEN
    UPDATE pay.statement_lines x SET repaired_at = now()
     WHERE x.statement_id = l.statement_id AND x.line_no = l.line_no;
    IF l.fee > 0 THEN
      PERFORM pay._post('statement:' || l.statement_id || ':line:' || l.line_no || ':fee', l.order_id,
        ARRAY[pay._account('fees:' || g.name || ':' || l.currency, l.currency),
              pay._account('psp:' || g.name || ':' || l.currency, l.currency)],
        ARRAY[-l.fee, l.fee]);
    END IF;
  END IF;
  RETURN v_outcome;
END $$;

CREATE FUNCTION pay.run_janitor(older_than interval DEFAULT '5 minutes', max_orders integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_before timestamptz;
  v_period text;
  v_order bigint;
  f record;
  n integer := 0;
BEGIN
  IF older_than IS NULL OR older_than <= interval '0' OR older_than > interval '100 years' THEN
    RAISE EXCEPTION 'older_than must be a positive interval of at most 100 years, not %', coalesce(older_than::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF max_orders IS NULL OR max_orders < 1 OR max_orders > 100000 THEN
    RAISE EXCEPTION 'max_orders must be 1 to 100000, not %', coalesce(max_orders::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_before := now() - older_than;
  v_period := pay._janitor_period(older_than);
  FOR v_order IN SELECT * FROM pay._janitor_pending_orders(v_before, v_period, max_orders)
                 UNION ALL
                 SELECT * FROM pay._janitor_dead_requests(v_before, v_period, max_orders) LOOP
    EXIT WHEN n >= max_orders;
    PERFORM pay._enqueue('psp_request', 'gateway:' || o.gateway, 'query', o.id, '{}',
                         'psp_' || o.id || '_query_janitor_' || v_period, false)
       FROM pay.orders o WHERE o.id = v_order;
    n := n + 1;
  END LOOP;
  IF n < max_orders THEN
    FOR f IN SELECT * FROM pay._janitor_refunds(v_before, v_period, max_orders - n) LOOP
      PERFORM pay._enqueue('psp_request', 'gateway:' || o.gateway, 'query_refund', o.id,
                           jsonb_build_object('refund_id', f.refund_id),
                           'psp_' || o.id || '_query_refund_' || f.refund_id || '_janitor_' || v_period, false)
         FROM pay.orders o WHERE o.id = f.order_id;
      n := n + 1;
    END LOOP;
  END IF;
  RETURN n;
END $$;

CREATE OR REPLACE FUNCTION pay.run_job(job text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rows bigint;
BEGIN
  IF job IS NULL OR NOT EXISTS (SELECT 1 FROM pay._jobs() j WHERE j.job = run_job.job) THEN
    RAISE EXCEPTION 'job: unknown job "%"', job USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext('pay.run_job'), hashtext(job)) THEN
    RETURN job || ': skipped, already running';
  END IF;
  CASE job
    WHEN 'expire_orders' THEN v_rows := pay.expire_orders();
    -- PSP queries about orders, refunds and requests whose outcome is unknown
    WHEN 'janitor' THEN v_rows := pay.run_janitor();
    WHEN 'expire_authorizations' THEN v_rows := pay.expire_authorizations();
    WHEN 'purge_callback_nonces' THEN v_rows := pay.purge_callback_nonces();
    WHEN 'purge_api_nonces' THEN v_rows := pay.purge_api_nonces();
    WHEN 'purge_idempotency_keys' THEN v_rows := pay.purge_idempotency_keys();
    WHEN 'purge_outbox' THEN v_rows := pay.purge_outbox();
    -- callbacks that were not accepted; accepted ones are kept with the ledger
    WHEN 'purge_callbacks' THEN v_rows := pay.purge_callbacks(interval '30 days', 10000);
    -- yesterday's statement (UTC), imported and reconciled when it arrives
    ELSE
      RETURN format('%s: outbox row %s', job, pay.fetch_statement(substr(job, length('fetch_statement:') + 1)));
  END CASE;
  RETURN format('%s: %s', job, v_rows);
END $$;

CREATE OR REPLACE FUNCTION pay.schedule_jobs() RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j record;
BEGIN
  PERFORM pay._require_pg_cron();
  -- a job this installation no longer has (a gateway's, gone) is removed
  PERFORM pay._unschedule(ARRAY(SELECT 'pay:' || x.job FROM pay._jobs() x));
  FOR j IN SELECT * FROM pay._jobs() LOOP
    -- cron.schedule with a name creates the job or updates the one of that name
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
      USING 'pay:' || j.job, j.schedule, format('SELECT pay.run_job(%L)', j.job);
    RETURN NEXT 'pay:' || j.job;
  END LOOP;
END $$;

CREATE FUNCTION pay.void(order_id bigint) RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o pay.orders;
BEGIN
  o := pay._lock_order(order_id);
  IF o.status <> 'authorized' THEN
    RAISE EXCEPTION 'order % is %; only an authorized order can be voided', o.id, o.status
      USING ERRCODE = 'PY001';
  END IF;
  RETURN pay._void(o, 'voided', 'void');
END $$;

COMMENT ON FUNCTION pay._provider_kinds(text) IS
  'the gateway kinds of the provider registry, or those with the feature';
COMMENT ON FUNCTION pay._provider_kind_known(text) IS
  'true if the provider registry has a provider of this gateway kind (the CHECK on pay.gateways.kind)';
COMMENT ON FUNCTION pay._provider_operation_kinds(text) IS
  'the gateway kinds whose provider sends requests of this operation';
COMMENT ON FUNCTION pay._provider_authorization_window(text) IS
  'how long the provider of this gateway kind keeps an authorization capturable (NULL without manual capture)';
COMMENT ON FUNCTION pay.available_balance(text) IS
  'an account''s balance less what its open holds reserve: what a payment or a new hold may spend';
COMMENT ON FUNCTION pay.create_order(text, text, bigint, text, text, interval, jsonb, text, text) IS
  'creates a pending order and, for a gateway pay sends requests to, queues its create_payment request in the same transaction; the same (merchant, idempotency_key) returns the same order, different parameters (capture included) raise PY002; PY029 beyond the merchant''s rate limit; capture => ''manual'' authorizes only (pay.capture, pay.void)';
COMMENT ON FUNCTION pay.mark_paid(bigint, text, bigint, text) IS
  'confirms payment of an order (amount and currency must match) and books it in the ledger; a manual-capture order becomes authorized instead, booking nothing until pay.capture';
COMMENT ON FUNCTION pay.pay_with_balance(bigint, text) IS
  'pays a pending order from a non-negative wallet account (PY003 when the available balance is short); a manual-capture order is authorized instead: the amount is held until pay.capture, pay.void or expiry';
COMMENT ON FUNCTION pay.expire_orders(timestamptz, integer) IS
  'cancels pending orders whose expires_at has passed (at most max_orders per call) and queues the close of their trades at the PSP; returns how many';
COMMENT ON FUNCTION pay.capture(bigint, bigint) IS
  'captures an authorized order: all of it, or amount (PY005 past the authorized amount); books what it took, releases the rest of a wallet hold, moves the order to paid and queues the PSP capture request; PY001 unless authorized';
COMMENT ON FUNCTION pay.void(bigint) IS
  'voids an authorized order: cancelled, its wallet hold released or the PSP void request queued; PY001 unless authorized';
COMMENT ON FUNCTION pay.expire_authorizations(timestamptz, integer) IS
  'voids authorized orders whose authorization window has passed (at most max_orders per call): holds released, PSP voids queued; returns how many';
COMMENT ON FUNCTION pay.enqueue_psp_request(bigint, text, jsonb) IS
  'queues a request (create_payment, query, refund or query_refund with params.refund_id, close, capture with params.amount, void) to the order''s gateway; params.extra goes into the request body; the same request twice is queued once (every query is sent)';
COMMENT ON FUNCTION pay._close_expired(bigint[]) IS
  'for orders just cancelled by expiry: retires create requests not yet sent, queues the close of every trade the PSP may know (a provider whose close names its own id, Stripe, with that id unknown: a query too); returns how many closes';
COMMENT ON FUNCTION pay.run_janitor(interval, integer) IS
  'queues PSP queries (at most max_orders) about what pay cannot know: pending orders created more than older_than ago, orders whose create or close request died without an answer, refunds the PSP has not confirmed, last asked about more than older_than ago; once per period of older_than, never while one is open; returns how many it queued';
COMMENT ON FUNCTION pay.next_action(bigint) IS
  'the buyer''s next step from the PSP''s answer to the order''s create request (member type: qr_code, code_url, client_secret or redirect); NULL until the PSP answered';
COMMENT ON FUNCTION pay.wait_next_action(bigint, interval) IS
  'the order''s next_action, waiting up to timeout (0 to 10 minutes) for the PSP''s answer; at once for an order that has one or is no longer pending (its next_action as stored, possibly NULL); NULL on timeout. Woken at the commit that stores the answer (needs pay in shared_preload_libraries; without it, it sleeps the whole timeout). A REPEATABLE READ transaction does not see the answer.';
COMMENT ON FUNCTION pay.api_create_payment(jsonb, text) IS
  'POST /api/v1/payments, first call: a signed merchant request creating an order (Idempotency-Key honoured; the PSP''s create request is queued with it; capture automatic or manual, else 422); 201 with the order';
COMMENT ON FUNCTION pay.api_get_payment(jsonb, text) IS
  'GET /api/v1/payments/{id}: a signed merchant request reading one of its orders (with next_action and failure_reason)';
COMMENT ON FUNCTION pay.api_await_payment(jsonb, text) IS
  'POST /api/v1/payments, second call (after the create committed): waits up to pay.checkout_wait for the PSP''s answer; 201 with the order and its next_action, else 202 with the order and its Location';
COMMENT ON FUNCTION pay.api_list_payments(jsonb, jsonb) IS
  'GET /api/v1/payments: a merchant''s payments, newest first; query status, created_from (inclusive), created_to (exclusive, RFC 3339), limit (1 to 100, default 20), after (the "next" of the page before); {"data": [...], "next": cursor or null}';
COMMENT ON FUNCTION pay.api_move_payment(jsonb, text, text, text) IS
  'POST /api/v1/payments/{id}/cancel (body member reason), /ship, /complete, /capture (body member amount), /void: a signed merchant request moving one of its orders; 200 with the order';
COMMENT ON FUNCTION pay.api_create_refund(jsonb, text, text) IS
  'POST /api/v1/payments/{id}/refunds (Idempotency-Key required; body amount, reason): a signed merchant request refunding one of its orders through pay.refund; 201 with the refund';
COMMENT ON FUNCTION pay.api_get_refund(jsonb, text) IS
  'GET /api/v1/refunds/{id}: a signed merchant request reading a refund of one of its orders';
COMMENT ON FUNCTION pay.run_job(text) IS
  'runs one of pay''s periodic jobs (expire_orders, expire_authorizations, janitor, purge_callback_nonces, purge_api_nonces, purge_idempotency_keys, purge_outbox, purge_callbacks, fetch_statement:<gateway>) unless a run of it is in progress; what the pg_cron jobs call';
COMMENT ON FUNCTION pay.schedule_jobs() IS
  'creates or updates pay''s pg_cron jobs (names beginning with "pay:"): expire orders and the janitor every minute, the purges every 5 minutes, each Stripe and WeChat Pay gateway''s statement daily at pay.statement_fetch_hour (UTC, default 3); 55000 when pg_cron is not installed here';
-- Views that count captured money: what an order paid is coalesce(captured_amount, amount).
CREATE OR REPLACE VIEW pay.ledger_problems AS
  SELECT 'posting does not balance'::text AS problem, p.ref AS subject,
         format('%s sums to %s', e.currency, sum(e.amount)) AS detail
    FROM pay.postings p JOIN pay.entries e ON e.posting_id = p.id
   GROUP BY p.ref, e.currency HAVING sum(e.amount) <> 0
  UNION ALL
  SELECT 'balance differs from entries', a.code,
         format('balance %s, entries %s', b.total, coalesce(e.total, 0))
    FROM pay.accounts a
    JOIN (SELECT account_id, sum(balance) AS total FROM pay.account_balances GROUP BY account_id) b
      ON b.account_id = a.id
    LEFT JOIN (SELECT account_id, sum(amount) AS total FROM pay.entries GROUP BY account_id) e
      ON e.account_id = a.id
   WHERE b.total <> coalesce(e.total, 0)
  UNION ALL
  SELECT 'non-negative account below zero', a.code, format('balance %s', b.balance)
    FROM pay.accounts a JOIN pay.account_balances b ON b.account_id = a.id
   WHERE a.non_negative AND b.balance < 0
  UNION ALL
  SELECT 'holds exceed the balance', a.code, format('balance %s, held %s', b.balance, b.held)
    FROM pay.accounts a JOIN pay.account_balances b ON b.account_id = a.id
   WHERE b.held < 0 OR (a.non_negative AND b.held > b.balance)
  UNION ALL
  SELECT 'held differs from open holds', a.code, format('held %s, open holds %s', b.total, coalesce(h.total, 0))
    FROM pay.accounts a
    JOIN (SELECT account_id, sum(held) AS total FROM pay.account_balances GROUP BY account_id) b
      ON b.account_id = a.id
    LEFT JOIN (SELECT h.account_id, sum(h.amount) AS total FROM pay.holds h
                WHERE NOT EXISTS (SELECT 1 FROM pay.hold_releases r WHERE r.hold_id = h.id)
                GROUP BY h.account_id) h ON h.account_id = a.id
   WHERE b.total <> coalesce(h.total, 0)
  UNION ALL
  SELECT 'capture beyond its hold', h.order_id::text, format('held %s, captured %s', h.amount, r.captured)
    FROM pay.holds h JOIN pay.hold_releases r ON r.hold_id = h.id
   WHERE r.captured > h.amount;

COMMENT ON VIEW pay.ledger_problems IS 'ledger invariants that do not hold; empty when the ledger is sound';
CREATE OR REPLACE VIEW pay.order_ledger_mismatches AS
  SELECT o.id AS order_id, o.status, o.amount, o.refunded_amount,
         coalesce(l.merchant_net, 0) AS merchant_net
    FROM pay.orders o
    LEFT JOIN (
      SELECT p.order_id, sum(e.amount) AS merchant_net
        FROM pay.postings p
        JOIN pay.entries e ON e.posting_id = p.id
        JOIN pay.accounts a ON a.id = e.account_id AND a.code LIKE 'merchant:%'
       WHERE p.order_id IS NOT NULL
       GROUP BY p.order_id) l ON l.order_id = o.id
   WHERE coalesce(l.merchant_net, 0) <>
         CASE WHEN o.paid_at IS NULL THEN 0 ELSE coalesce(o.captured_amount, o.amount) - o.refunded_amount END;

COMMENT ON VIEW pay.order_ledger_mismatches IS
  'orders whose merchant ledger postings differ from amount paid (coalesce(captured_amount, amount)) minus refunded; empty when sound';

-- Breaks compare a PSP's payment with what was captured.
CREATE OR REPLACE VIEW pay.reconciliation_breaks AS
  SELECT l.statement_id, l.result, l.order_id, l.psp_txn_id,
         CASE WHEN l.result = 'fee_mismatch' THEN l.expected_fee ELSE l.our_amount END AS our_amount,
         CASE WHEN l.result = 'fee_mismatch' THEN l.fee ELSE l.amount END AS psp_amount,
         CASE l.result
           WHEN 'duplicate' THEN format('line %s: %s %s was on an earlier line', l.line_no, l.kind, l.psp_txn_id)
           WHEN 'missing_in_books' THEN
             CASE WHEN l.order_id IS NULL THEN format('line %s: %s %s matches no order of ours', l.line_no, l.kind, l.psp_txn_id)
                  ELSE format('line %s: %s %s of order %s (%s) is not in our books', l.line_no, l.kind, l.psp_txn_id,
                              l.order_id, o.status) END
           WHEN 'currency_mismatch' THEN format('line %s: PSP says %s, order %s is in %s', l.line_no, l.currency,
                                                l.order_id, o.currency)
           WHEN 'amount_mismatch' THEN format('line %s: %s of %s %s, ours %s', l.line_no, l.kind, l.amount,
                                              l.currency, coalesce(l.our_amount::text, '(none)'))
           WHEN 'status_mismatch' THEN format('line %s: order %s is %s, paid by %s', l.line_no, l.order_id, o.status,
                                              coalesce(o.psp_txn_id, '(nothing)'))
           WHEN 'fee_mismatch' THEN format('line %s: PSP charged %s, expected %s (%s)', l.line_no, l.fee,
                                           l.expected_fee, l.currency)
         END AS detail,
         l.line_no
    FROM pay.statement_lines l
    LEFT JOIN pay.orders o ON o.id = l.order_id
   WHERE l.result <> 'matched' AND l.repaired_at IS NULL
  UNION ALL
  SELECT s.id, 'missing_at_psp', o.id, o.psp_txn_id, coalesce(o.captured_amount, o.amount), NULL,
         format('payment of order %s (%s %s, paid %s) is on no %s statement line', o.id,
                coalesce(o.captured_amount, o.amount), o.currency,
                o.paid_at, s.gateway),
         NULL
    FROM pay.statements s
    JOIN pay.orders o ON o.gateway = s.gateway AND o.paid_at BETWEEN s.period_start AND s.period_end
    JOIN pay.accounts a ON a.id = o.paid_account_id AND a.code = 'psp:' || o.gateway || ':' || o.currency
   WHERE NOT EXISTS (SELECT 1 FROM pay.statement_lines l JOIN pay.statements t ON t.id = l.statement_id
                      WHERE l.order_id = o.id AND l.kind = 'payment' AND t.gateway = s.gateway)
  UNION ALL
  SELECT s.id, 'missing_at_psp', o.id, o.psp_txn_id, r.amount, NULL,
         format('refund %s of order %s (%s %s, %s) is on no %s statement line', r.id, o.id, r.amount, o.currency,
                r.created_at, s.gateway),
         NULL
    FROM pay.statements s
    JOIN pay.orders o ON o.gateway = s.gateway
    JOIN pay.accounts a ON a.id = o.paid_account_id AND a.code = 'psp:' || o.gateway || ':' || o.currency
    JOIN pay.refunds r ON r.order_id = o.id AND r.created_at BETWEEN s.period_start AND s.period_end
   WHERE NOT EXISTS (SELECT 1 FROM pay.statement_lines l WHERE l.refund_id = r.id);

-- The gateway kinds are the provider registry's (pay._provider_kind_known):
-- adding a provider lists it once.
ALTER TABLE pay.gateways DROP CONSTRAINT gateways_kind_check,
  ADD CONSTRAINT gateways_kind_check CHECK (pay._provider_kind_known(kind));

-- Waiters of pay.wait_next_action are woken at the commit that changed
-- their order (src/next_action_wait.c).
CREATE TRIGGER orders_next_action_wake AFTER UPDATE ON pay.orders
    FOR EACH ROW
    WHEN (OLD.next_action IS DISTINCT FROM NEW.next_action OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION pay._next_action_wake('id');
ALTER TABLE pay.orders ENABLE ALWAYS TRIGGER orders_next_action_wake;
CREATE TRIGGER outbox_create_answered_wake AFTER UPDATE ON pay.outbox
    FOR EACH ROW
    WHEN (NEW.operation = 'create_payment' AND NEW.order_id IS NOT NULL AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION pay._next_action_wake('order_id');
ALTER TABLE pay.outbox ENABLE ALWAYS TRIGGER outbox_create_answered_wake;


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
GRANT SELECT ON pay.psp_answers TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.run_janitor(interval, integer) TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.next_action(bigint), pay.wait_next_action(bigint, interval) TO pay_app;
GRANT EXECUTE ON FUNCTION pay.handle_callback(text, jsonb, text),
    pay.record_unreadable_callback(text, jsonb, text, text, bytea, integer) TO pay_callback;
GRANT EXECUTE ON FUNCTION pay.purge_callback_nonces(interval), pay.purge_callbacks(interval, integer) TO pay_admin;
GRANT SELECT ON pay.callbacks, pay.callback_events, pay.anomalies, pay.deferred_events,
    pay.unknown_gateway_callbacks TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.set_fee(text, text, numeric, bigint, integer, bigint, bigint),
    pay.expected_fee(text, bigint, text) TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.api_create_payment(jsonb, text), pay.api_get_payment(jsonb, text),
    pay.api_await_payment(jsonb, text), pay.api_list_payments(jsonb, jsonb),
    pay.api_move_payment(jsonb, text, text, text), pay.api_create_refund(jsonb, text, text),
    pay.api_get_refund(jsonb, text)
  TO pay_app;
GRANT EXECUTE ON FUNCTION pay.purge_api_nonces() TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.metrics() TO pay_callback, pay_admin, pay_readonly;
GRANT EXECUTE ON FUNCTION pay.run_job(text), pay.schedule_jobs(), pay.unschedule_jobs() TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.import_statement(text, bytea, text), pay.repair_break(bigint, integer) TO pay_admin;
GRANT SELECT ON pay.fee_rules, pay.statements, pay.statement_lines, pay.reconciliation_breaks,
    pay.settlement_by_day TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.fetch_statement(text, date) TO pay_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA pay FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pay FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pay FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pay._caller_merchants() TO pay_app, pay_admin, pay_readonly;
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
REVOKE ALL ON pay.seed_rows FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pay._restoring(), pay._restore_seeded_row(), pay._mark_dumped_tables(),
    pay._drop_guard() FROM PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA pay TO pay_readonly;
REVOKE SELECT ON pay.secrets, pay.master_keys FROM pay_readonly;
GRANT EXECUTE ON FUNCTION pay.dispatcher_status() TO pay_readonly;

-- Every table and sequence (the new ones too) is in pg_dump's output.
SELECT pay._mark_dumped_tables();
