-- Two-phase payments: authorize, then capture or void.
--
-- An order created with capture => 'manual' stops at 'authorized' when its
-- payment is confirmed: by the PSP (its callback or mark_paid, through
-- pay._settle) or from a wallet (pay.pay_with_balance, which holds the
-- amount).  Nothing is booked while it is authorized.  pay.capture books
-- what it takes (at most the authorized amount, which stays in
-- pay.orders.amount; the captured part goes to captured_amount and is what
-- the order paid, the bound of its refunds) and moves the order to paid;
-- pay.void, or pay.expire_authorizations once the authorization window has
-- passed, cancels it.  Either releases the wallet's hold.
--
-- For a gateway order the order moves at once and the PSP request (capture
-- with params.amount, or void) is queued in the same transaction, under a
-- fixed idempotency key, as pay.refund books at once and sends its request:
-- the PSP's refusal of it is for the answer readers to record.

-- The authorization window of a gateway: its option authorization_days
-- (whole days), else how long its provider keeps an authorization
-- (Stripe 7 days, Adyen 28, PayPal 29); NULL, a wallet: 7 days.
CREATE FUNCTION pay._authorization_window(p_gateway text) RETURNS interval
LANGUAGE sql STABLE AS $$
  SELECT coalesce((SELECT coalesce(make_interval(days => (g.options->>'authorization_days')::integer),
                                   pay._provider_authorization_window(g.kind))
                     FROM pay.gateways g WHERE g.name = p_gateway),
                  interval '7 days')
$$;

-- Refuses capture => 'manual' for a gateway whose kind cannot authorize
-- without capturing (alipay and wechatpay capture as the buyer pays; a
-- generic PSP has no capture operation pay knows).
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

-- Reserves p_amount of a wallet for an order: the wallet's one balance row
-- is locked (the same row every posting to it locks, so holds and payments
-- take turns) and its available balance, balance - held, must cover it.
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

-- Ends an order's open hold, if it has one: a release row (captured,
-- voided or expired; p_captured is what the capture books, the caller's
-- posting) and the wallet's held amount down by all of the hold.  NULL: the
-- order holds nothing (a PSP authorization).
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

-- pay_with_balance for a manual-capture order: hold the amount, authorize.
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

-- Does the order's money sit at a PSP (so capture and void go to it)?
CREATE FUNCTION pay._paid_through_psp(o pay.orders) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT o.gateway IS NOT NULL
     AND EXISTS (SELECT 1 FROM pay.accounts a WHERE a.id = o.paid_account_id AND a.code LIKE 'psp:%')
$$;

-- Captures p_amount (at most the authorized amount) of a locked authorized
-- order: the rest of a wallet hold released, the order paid with
-- captured_amount, what it took booked.  p_send: queue the PSP's capture
-- request (pay.capture); false for a capture the PSP reports it made (its
-- callback), which must not be asked of it again.
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
COMMENT ON FUNCTION pay.capture(bigint, bigint) IS
  'captures an authorized order: all of it, or amount (PY005 past the authorized amount); books what it took, releases the rest of a wallet hold, moves the order to paid and queues the PSP capture request; PY001 unless authorized';

-- Cancels a locked authorized order: releases its hold, or queues the void
-- for the PSP.
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
COMMENT ON FUNCTION pay.void(bigint) IS
  'voids an authorized order: cancelled, its wallet hold released or the PSP void request queued; PY001 unless authorized';

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
COMMENT ON FUNCTION pay.expire_authorizations(timestamptz, integer) IS
  'voids authorized orders whose authorization window has passed (at most max_orders per call): holds released, PSP voids queued; returns how many';
