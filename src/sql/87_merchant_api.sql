-- The merchant REST API behind pay-proxy: payments (create, wait for the
-- PSP's answer, read, list, cancel, ship, complete) and refunds (create,
-- read).  Requests are authenticated here, in SQL, as follows:
-- X-Pay-Signature is the hex HMAC-SHA256 (pay.sign_params) of the request's
-- parameters plus merchant, timestamp and nonce, under the merchant's
-- api_secret; the timestamp must be within the window and the nonce unused.
-- A request's parameters are its JSON body's members, plus "id" for a route
-- with an id in its path, or its query parameters for a GET.  Errors are
-- raised with their SQLSTATE (and a message that begins with the field it
-- is about); pay-proxy maps them to HTTP statuses.  Another merchant's
-- payment or refund answers 404, exactly like a missing one.

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

-- Verify a merchant request's signature and timestamp: returns the
-- merchant's id.  The same PY010 for an unknown merchant and a wrong
-- signature, so the answer does not tell which merchant codes exist.
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

-- Authenticate a merchant request: verified, and its nonce used up.
CREATE FUNCTION pay._api_authenticate(h jsonb, p_params jsonb) RETURNS bigint
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

-- The second SQL call of one request (POST /api/v1/payments waits in a
-- statement of its own, after the create committed): the same verified
-- request, whose nonce its first call used up.
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

-- A request's JSON body as an object ('' is {}), or 22P02/22023.
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

-- 22023 naming the first member of p that is not one of p_known.
CREATE FUNCTION pay._api_known_fields(p jsonb, p_known text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF p - p_known <> '{}' THEN
    RAISE EXCEPTION '%: unknown field', (SELECT min(k) FROM jsonb_object_keys(p - p_known) k)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END $$;

-- An error answered as a row (not raised: 404), shaped as pay-proxy shapes
-- the errors it maps.
CREATE FUNCTION pay._api_error(p_status integer, p_code text, p_field text, p_message text)
RETURNS pay.http_response
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN ROW(p_status, 'application/json',
           jsonb_build_object('error', jsonb_build_object('code', p_code, 'sqlstate', NULL, 'field', p_field,
                                                          'message', p_message))::text)::pay.http_response;

-- The merchant's order with this id, or NULL: another merchant's order, or
-- one the calling role may not act for (53_merchant_binding.sql), is as
-- absent as one that does not exist.
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

-- An order as the API shows it.
CREATE FUNCTION pay._order_json(o pay.orders) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN jsonb_build_object(
  'id', o.id, 'merchant_order_no', o.merchant_order_no, 'amount', o.amount, 'currency', o.currency,
  'status', o.status, 'refunded_amount', o.refunded_amount, 'gateway', o.gateway,
  'psp_txn_id', o.psp_txn_id, 'metadata', o.metadata, 'expires_at', o.expires_at,
  'paid_at', o.paid_at, 'created_at', o.created_at, 'updated_at', o.updated_at,
  'next_action', o.next_action, 'failure_reason', o.failure_reason,
  'capture', o.capture_mode, 'captured_amount', o.captured_amount,
  'authorization_expires_at', o.authorization_expires_at);

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
COMMENT ON FUNCTION pay.api_create_payment(jsonb, text) IS
  'POST /api/v1/payments, first call: a signed merchant request creating an order (Idempotency-Key honoured; the PSP''s create request is queued with it; capture automatic or manual, else 422); 201 with the order';

CREATE FUNCTION pay.api_get_payment(headers jsonb, id text) RETURNS SETOF pay.http_response
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
COMMENT ON FUNCTION pay.api_get_payment(jsonb, text) IS
  'GET /api/v1/payments/{id}: a signed merchant request reading one of its orders (with next_action and failure_reason)';

-- POST /api/v1/payments, second call: after the create committed, wait up
-- to pay.checkout_wait for the PSP's answer to the order's create request.
-- 201 with the order when it is there (next_action, or the order is no
-- longer pending: a refusal shows as failed with failure_reason, or its
-- create request is no longer queued or in flight) or there is nothing to
-- wait for (no create request: a wallet payment); else 202
-- with the order and its Location.  The order is the request's own
-- (merchant, merchant_order_no); the request is the one the create call
-- verified.
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
COMMENT ON FUNCTION pay.api_await_payment(jsonb, text) IS
  'POST /api/v1/payments, second call (after the create committed): waits up to pay.checkout_wait for the PSP''s answer; 201 with the order and its next_action, else 202 with the order and its Location';

-- The merchant's payments, newest first (id descending): keyset pages of
-- `limit` (1 to 100, default 20); `after` is the `next` of the page before
-- (the last id it showed).  Filters: status, created_from (inclusive) and
-- created_to (exclusive), RFC 3339 times.
CREATE INDEX orders_merchant_newest ON pay.orders (merchant_id, id);

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
COMMENT ON FUNCTION pay.api_list_payments(jsonb, jsonb) IS
  'GET /api/v1/payments: a merchant''s payments, newest first; query status, created_from (inclusive), created_to (exclusive, RFC 3339), limit (1 to 100, default 20), after (the "next" of the page before); {"data": [...], "next": cursor or null}';

-- An RFC 3339 time of the query, or NULL when absent; 22023 naming it.
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

-- POST /api/v1/payments/{id}/cancel, /ship, /complete, /capture, /void:
-- the order moved as pay.cancel (body member reason), pay.ship,
-- pay.complete, pay.capture (body member amount, else all that was
-- authorized) and pay.void move it; 200 with the order.  PY001 (an illegal
-- move: a capture or void of an order that is not authorized) is
-- pay-proxy's 409, PY005 (a capture above the authorization) its 422.
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
COMMENT ON FUNCTION pay.api_move_payment(jsonb, text, text, text) IS
  'POST /api/v1/payments/{id}/cancel (body member reason), /ship, /complete, /capture (body member amount), /void: a signed merchant request moving one of its orders; 200 with the order';

-- A refund as the API shows it.
CREATE FUNCTION pay._refund_json(r pay.refunds, p_currency text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN jsonb_build_object('id', r.id, 'payment_id', r.order_id, 'amount', r.amount, 'currency', p_currency,
                          'reason', r.reason, 'created_at', r.created_at);

-- POST /api/v1/payments/{id}/refunds with an Idempotency-Key (required: a
-- retried refund must not refund twice): pay.refund, which queues the
-- PSP's refund; 201 with the refund (the same refund again for the same
-- key and amount; PY002 for another amount).
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
COMMENT ON FUNCTION pay.api_create_refund(jsonb, text, text) IS
  'POST /api/v1/payments/{id}/refunds (Idempotency-Key required; body amount, reason): a signed merchant request refunding one of its orders through pay.refund; 201 with the refund';

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
COMMENT ON FUNCTION pay.api_get_refund(jsonb, text) IS
  'GET /api/v1/refunds/{id}: a signed merchant request reading a refund of one of its orders';

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

GRANT EXECUTE ON FUNCTION pay.api_create_payment(jsonb, text), pay.api_get_payment(jsonb, text),
    pay.api_await_payment(jsonb, text), pay.api_list_payments(jsonb, jsonb),
    pay.api_move_payment(jsonb, text, text, text), pay.api_create_refund(jsonb, text, text),
    pay.api_get_refund(jsonb, text)
  TO pay_app;
GRANT EXECUTE ON FUNCTION pay.purge_api_nonces() TO pay_admin;
