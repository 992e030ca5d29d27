-- The merchant REST API behind pay-proxy: POST /api/v1/payments and
-- GET /api/v1/payments/{id}.  Requests are authenticated here, in SQL, as
-- follows: X-Pay-Signature is the hex HMAC-SHA256 (pay.sign_params)
-- of the request's parameters plus merchant, timestamp and nonce, under the
-- merchant's api_secret; the timestamp must be within the window and the
-- nonce unused.  Errors are raised with their SQLSTATE; pay-proxy maps them
-- to HTTP statuses.

CREATE TABLE pay.api_nonces (
    merchant_id  bigint NOT NULL,
    nonce        text NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, nonce)
);
CREATE INDEX api_nonces_age ON pay.api_nonces (seen_at);
COMMENT ON TABLE pay.api_nonces IS 'nonces of signed merchant API requests within the window; a reuse is a replay (PY012)';

-- Seconds a signed merchant request stays valid.
CREATE FUNCTION pay._api_window_s() RETURNS integer
LANGUAGE sql IMMUTABLE RETURN 300;

-- Authenticate a merchant request: returns the merchant's id.  The same
-- PY010 for an unknown merchant and a wrong signature, so the answer does
-- not tell which merchant codes exist.
CREATE FUNCTION pay._api_authenticate(h jsonb, p_params jsonb) RETURNS bigint
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
  INSERT INTO pay.api_nonces (merchant_id, nonce) VALUES (v_merchant, v_nonce) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'X-Pay-Nonce was already used' USING ERRCODE = 'PY012';
  END IF;
  RETURN v_merchant;
END $$;

-- An order as the API shows it.
CREATE FUNCTION pay._order_json(o pay.orders) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN jsonb_build_object(
  'id', o.id, 'merchant_order_no', o.merchant_order_no, 'amount', o.amount, 'currency', o.currency,
  'status', o.status, 'refunded_amount', o.refunded_amount, 'gateway', o.gateway,
  'psp_txn_id', o.psp_txn_id, 'metadata', o.metadata, 'expires_at', o.expires_at,
  'paid_at', o.paid_at, 'created_at', o.created_at, 'updated_at', o.updated_at);

CREATE FUNCTION pay.api_create_payment(headers jsonb, body text) RETURNS SETOF pay.http_response
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
  BEGIN
    p := body::jsonb;
  EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'body is not valid JSON' USING ERRCODE = 'invalid_text_representation';
  END;
  IF jsonb_typeof(p) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'body must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
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
  IF p - '{merchant_order_no,amount,currency,metadata,expires_in_s,gateway}'::text[] <> '{}' THEN
    RAISE EXCEPTION 'unknown field "%"',
      (SELECT min(k) FROM jsonb_object_keys(p - '{merchant_order_no,amount,currency,metadata,expires_in_s,gateway}'::text[]) k)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  o := pay.create_order((SELECT code FROM pay.merchants WHERE id = v_merchant),
                        p->>'merchant_order_no', (p->>'amount')::bigint, p->>'currency',
                        idempotency_key => h->>'idempotency-key',
                        expires_in => coalesce((p->>'expires_in_s')::integer * interval '1 second', interval '15 minutes'),
                        metadata => coalesce(p->'metadata', '{}'),
                        gateway => p->>'gateway');
  RETURN NEXT ROW(201, 'application/json', pay._order_json(o)::text)::pay.http_response;
END $$;
COMMENT ON FUNCTION pay.api_create_payment(jsonb, text) IS
  'POST /api/v1/payments: a signed merchant request creating an order (Idempotency-Key honoured); 201 with the order';

CREATE FUNCTION pay.api_get_payment(headers jsonb, id text) RETURNS SETOF pay.http_response
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
COMMENT ON FUNCTION pay.api_get_payment(jsonb, text) IS
  'GET /api/v1/payments/{id}: a signed merchant request reading one of its orders';

-- API nonces older than the window can go.
CREATE FUNCTION pay.purge_api_nonces() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM pay.api_nonces WHERE seen_at < now() - 2 * pay._api_window_s() * interval '1 second';
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.purge_api_nonces() IS 'deletes merchant API nonces older than twice the signature window';

GRANT EXECUTE ON FUNCTION pay.api_create_payment(jsonb, text), pay.api_get_payment(jsonb, text) TO pay_app;
GRANT EXECUTE ON FUNCTION pay.purge_api_nonces() TO pay_admin;
