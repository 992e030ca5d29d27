-- Order functions: merchants, gateways, creating and moving orders.

CREATE FUNCTION pay._amount_max(exponent integer) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_amount_max' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pay._parse_amount(amount text, exponent integer) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_parse_amount_exp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pay._format_amount(amount bigint, exponent integer) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_format_amount_exp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pay.idempotency_retention() RETURNS interval
    AS 'MODULE_PATHNAME', 'pay_idempotency_retention' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pay.idempotency_retention() IS 'the setting pay.idempotency_retention as an interval';

-- The exponent of a currency, or a clear error naming the argument
-- (src/lookup_sql.c, from a per-backend cache of pay.currencies).  These C
-- lookups are VOLATILE: a miss reads the table with a fresh snapshot, so
-- that a row written earlier in the same transaction is seen.
CREATE FUNCTION pay._exponent(p_currency text, p_arg text DEFAULT 'currency') RETURNS smallint
    AS 'MODULE_PATHNAME', 'pay_exponent' LANGUAGE C VOLATILE;
-- A merchant's id by code, or 'merchant: unknown merchant'.
CREATE FUNCTION pay._merchant_id(p_code text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_merchant_id' LANGUAGE C VOLATILE;

CREATE FUNCTION pay.parse_amount(amount text, currency text) RETURNS bigint
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp
RETURN pay._parse_amount(amount, pay._exponent(currency));
COMMENT ON FUNCTION pay.parse_amount(text, text) IS
  'major-unit decimal text to minor units, exactly (''12.34'', ''CNY'' -> 1234); never through floating point';

CREATE FUNCTION pay.format_amount(amount bigint, currency text) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp
RETURN pay._format_amount(amount, pay._exponent(currency));
COMMENT ON FUNCTION pay.format_amount(bigint, text) IS
  'minor units to major-unit decimal text (1234, ''KWD'' -> ''1.234'')';

CREATE FUNCTION pay.create_merchant(code text, name text, notify_url text DEFAULT NULL) RETURNS bigint
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
COMMENT ON FUNCTION pay.create_merchant(text, text, text) IS 'registers a merchant; code is its public identifier';

CREATE FUNCTION pay.create_gateway(name text, kind text, base_url text DEFAULT NULL,
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
COMMENT ON FUNCTION pay.create_gateway(text, text, text, jsonb) IS
  'registers a payment gateway; its credentials go into the secret store';

CREATE FUNCTION pay.add_routing_rule(gateway text, merchant text DEFAULT NULL, currency text DEFAULT NULL,
                                     priority integer DEFAULT 100, min_amount bigint DEFAULT NULL,
                                     max_amount bigint DEFAULT NULL, weight integer DEFAULT 1) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_gateway bigint;
  v_merchant bigint;
  v_id bigint;
BEGIN
  SELECT id INTO v_gateway FROM pay.gateways g WHERE g.name = gateway;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'gateway: unknown gateway "%"', gateway USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF merchant IS NOT NULL THEN
    SELECT id INTO v_merchant FROM pay.merchants m WHERE m.code = merchant;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'merchant: unknown merchant "%"', merchant USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END IF;
  IF currency IS NOT NULL THEN
    PERFORM pay._exponent(currency);
  END IF;
  IF min_amount < 0 THEN
    RAISE EXCEPTION 'min_amount must not be negative, not %', min_amount USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF max_amount < 0 THEN
    RAISE EXCEPTION 'max_amount must not be negative, not %', max_amount USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF min_amount > max_amount THEN
    RAISE EXCEPTION 'min_amount % is greater than max_amount %', min_amount, max_amount
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF weight IS NULL OR weight < 1 THEN
    RAISE EXCEPTION 'weight must be at least 1, not %', coalesce(weight::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO pay.routing_rules (merchant_id, currency, gateway_id, priority, min_amount, max_amount, weight)
    VALUES (v_merchant, currency, v_gateway, coalesce(priority, 100), min_amount, max_amount, weight)
    RETURNING id INTO v_id;
  RETURN v_id;
END $$;
COMMENT ON FUNCTION pay.add_routing_rule(text, text, text, integer, bigint, bigint, integer) IS
  'routes orders created without a gateway: lowest priority first; NULL merchant, currency or amount bound matches any; inclusive amount bounds in minor units; a tier splits by weight';

CREATE FUNCTION pay.set_routing_rule_reroute(rule_id bigint, reroute boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF reroute IS NULL THEN
    RAISE EXCEPTION 'reroute must be true or false' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE pay.routing_rules r SET reroute = set_routing_rule_reroute.reroute WHERE r.id = rule_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'rule_id: routing rule % does not exist', coalesce(rule_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END $$;
COMMENT ON FUNCTION pay.set_routing_rule_reroute(bigint, boolean) IS
  'on: a pending order the rule routed moves once to the next available gateway when its create_payment request is refused (4xx), dead after its retries, or held by an open circuit before it was sent';

-- Validates every argument of create_order before anything is written
-- (src/order_args.c).
CREATE FUNCTION pay._check_order_args(p_merchant_order_no text, p_amount bigint, p_exponent smallint,
                                      p_expires_in interval, p_metadata jsonb, p_key text)
RETURNS void
    AS 'MODULE_PATHNAME', 'pay_check_order_args' LANGUAGE C STABLE;

-- The gateway an order goes to, and the rule that chose it: the gateway
-- asked for (it must exist and be enabled; no rule), else among the
-- matching rules of the lowest priority whose gateway is enabled and whose
-- circuit is not open, one by weight at a point given by (merchant,
-- order number) — the heaviest without an order number — else the first
-- enabled match, else none (src/order_route.c).
CREATE FUNCTION pay._route(p_gateway text, p_merchant bigint, p_currency text, p_amount bigint,
                           p_order_no text, OUT gateway text, OUT rule_id bigint)
    AS 'MODULE_PATHNAME', 'pay_route' LANGUAGE C VOLATILE;

CREATE FUNCTION pay.route(merchant text, amount bigint, currency text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint := pay._merchant_id(merchant);
  v_gateway text;
BEGIN
  IF amount IS NULL OR amount <= 0 THEN
    RAISE EXCEPTION 'amount must be a positive number of minor units, not %', coalesce(amount::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pay._exponent(currency);
  SELECT r.gateway INTO v_gateway FROM pay._route(NULL, v_merchant, currency, amount, NULL) r;
  RETURN v_gateway;
END $$;
COMMENT ON FUNCTION pay.route(text, bigint, text) IS
  'the gateway a new order without one would get now (a weighted tier answers with its heaviest rule); NULL: no rule matches';

-- A new order's admission, called by create_order's INSERT (src/order_admit.c):
-- one token of the merchant's rate limit (src/rate_limit.c: PY029, with the
-- seconds until the next token in DETAIL), then its route as pay._route.
CREATE FUNCTION pay._admit(p_merchant bigint, p_code text, p_gateway text, p_currency text,
                           p_amount bigint, p_order_no text, OUT gateway text, OUT rule_id bigint)
    AS 'MODULE_PATHNAME', 'pay_admit' LANGUAGE C VOLATILE;
CREATE FUNCTION pay._rate_limits_active() RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_rate_limits_active' LANGUAGE C VOLATILE;

CREATE FUNCTION pay.set_rate_limit(merchant text, per_second numeric, burst integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint := pay._merchant_id(merchant);
BEGIN
  IF per_second IS NULL THEN
    DELETE FROM pay.rate_limits l WHERE l.merchant_id = v_merchant;
    RETURN;
  END IF;
  IF per_second <= 0 OR per_second > 1000000000 THEN
    RAISE EXCEPTION 'per_second must be greater than 0 (and at most 1e9), not %', per_second
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF burst IS NULL OR burst < 1 THEN
    RAISE EXCEPTION 'burst must be at least 1, not %', coalesce(burst::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT pay._rate_limits_active() THEN
    RAISE EXCEPTION 'rate limits need pay in shared_preload_libraries'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  INSERT INTO pay.rate_limits (merchant_id, per_second, burst)
    VALUES (v_merchant, set_rate_limit.per_second, set_rate_limit.burst)
    ON CONFLICT (merchant_id) DO UPDATE
      SET per_second = excluded.per_second, burst = excluded.burst, updated_at = now();
END $$;
COMMENT ON FUNCTION pay.set_rate_limit(text, numeric, integer) IS
  'limits the merchant''s create_order to per_second with bursts of burst (a token bucket in shared memory; PY029 beyond); NULL per_second removes it (pay.default_rate_limit applies)';

-- Does a new order for this gateway get its create request queued?  When
-- its provider creates payments (src/provider_registry.c), and has an
-- address to send to: a provider with no default API address (generic)
-- only with a base_url.  NULL (a wallet payment): no.
CREATE FUNCTION pay._creates_at_psp(p_gateway text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce((SELECT g.kind = ANY (pay._provider_kinds('creates_payments'))
                          AND (g.base_url IS NOT NULL OR g.kind <> ALL (pay._provider_kinds('needs_base_url')))
                     FROM pay.gateways g WHERE g.name = p_gateway), false)
$$;

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
COMMENT ON FUNCTION pay.create_order(text, text, bigint, text, text, interval, jsonb, text, text) IS
  'creates a pending order and, for a gateway pay sends requests to, queues its create_payment request in the same transaction; the same (merchant, idempotency_key) returns the same order, different parameters (capture included) raise PY002; PY029 beyond the merchant''s rate limit; capture => ''manual'' authorizes only (pay.capture, pay.void)';

-- Lock an order for a state change, or fail naming the argument.  To a
-- caller bound to other merchants (53_merchant_binding.sql) another
-- merchant's order does not exist: the same error as for a missing one.
CREATE FUNCTION pay._lock_order(p_order_id bigint) RETURNS pay.orders
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

-- Books the payment of a locked pending or failed order that a PSP
-- confirmed: the order becomes paid, the ledger moves the money from the
-- gateway's clearing account to the merchant.  Shared by mark_paid and the
-- callback path (src/order_settle.c).
CREATE FUNCTION pay._settle(o pay.orders, p_psp_txn_id text, p_cause text) RETURNS pay.orders
    AS 'MODULE_PATHNAME', 'pay_settle' LANGUAGE C VOLATILE;

CREATE FUNCTION pay.mark_paid(order_id bigint, psp_txn_id text, amount bigint, currency text)
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
COMMENT ON FUNCTION pay.mark_paid(bigint, text, bigint, text) IS
  'confirms payment of an order (amount and currency must match) and books it in the ledger; a manual-capture order becomes authorized instead, booking nothing until pay.capture';

CREATE FUNCTION pay.pay_with_balance(order_id bigint, wallet text) RETURNS pay.orders
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
COMMENT ON FUNCTION pay.pay_with_balance(bigint, text) IS
  'pays a pending order from a non-negative wallet account (PY003 when the available balance is short); a manual-capture order is authorized instead: the amount is held until pay.capture, pay.void or expiry';

-- Moves an order to a status; the trigger refuses illegal moves with PY001.
-- Asking for the status the order already has changes nothing (a retried
-- ship or cancel is answered, not refused).
CREATE FUNCTION pay._move(p_order_id bigint, p_status text, p_cause text) RETURNS pay.orders
LANGUAGE plpgsql AS $$
DECLARE
  o pay.orders;
BEGIN
  o := pay._lock_order(p_order_id);
  UPDATE pay.orders SET status = p_status, status_cause = p_cause WHERE id = o.id RETURNING * INTO o;
  RETURN o;
END $$;

CREATE FUNCTION pay.ship(order_id bigint) RETURNS pay.orders
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN pay._move(order_id, 'shipped', 'ship');
COMMENT ON FUNCTION pay.ship(bigint) IS 'paid -> shipped';

CREATE FUNCTION pay.complete(order_id bigint) RETURNS pay.orders
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN pay._move(order_id, 'completed', 'complete');
COMMENT ON FUNCTION pay.complete(bigint) IS 'shipped -> completed';

CREATE FUNCTION pay.cancel(order_id bigint, reason text DEFAULT NULL) RETURNS pay.orders
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF length(reason) > 500 THEN
    RAISE EXCEPTION 'reason is longer than 500 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN pay._move(order_id, 'cancelled', coalesce('cancel: ' || reason, 'cancel'));
END $$;
COMMENT ON FUNCTION pay.cancel(bigint, text) IS 'pending -> cancelled';

-- Books a refund of a locked paid order whose refundable amount was
-- checked: a refund row, the order's refunded amount (and status refunded
-- once all of it is back), and the ledger moving the money from the
-- merchant back to where it came from.  Shared by refund and callbacks.
CREATE FUNCTION pay._book_refund(o pay.orders, p_amount bigint, p_reason text, p_key text) RETURNS bigint
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

CREATE FUNCTION pay.refund(order_id bigint, amount bigint, reason text DEFAULT NULL,
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
COMMENT ON FUNCTION pay.refund(bigint, bigint, text, text) IS
  'refunds part or all of a paid order back to where the money came from (queuing the PSP refund request); PY005 past the paid amount';

CREATE FUNCTION pay.expire_orders(at timestamptz DEFAULT now(), max_orders integer DEFAULT 10000)
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
COMMENT ON FUNCTION pay.expire_orders(timestamptz, integer) IS
  'cancels pending orders whose expires_at has passed (at most max_orders per call) and queues the close of their trades at the PSP; returns how many';

CREATE FUNCTION pay.purge_idempotency_keys(older_than interval DEFAULT NULL, max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM pay.idempotency_keys k
   WHERE (k.merchant_id, k.key) IN (
     SELECT merchant_id, key FROM pay.idempotency_keys
      WHERE created_at < now() - coalesce(older_than, pay.idempotency_retention())
      LIMIT max_rows);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.purge_idempotency_keys(interval, integer) IS
  'deletes idempotency keys older than pay.idempotency_retention (default 24 h); returns how many';

-- For DBAs: orders whose ledger does not explain their money.  Empty when sound.
CREATE VIEW pay.order_ledger_mismatches AS
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
