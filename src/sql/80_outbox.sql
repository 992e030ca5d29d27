-- The outbox: every request pay sends to the outside world (PSP calls and
-- merchant notifications), written in the same transaction as the change
-- that caused it and delivered by the dispatcher (src/dispatcher*.c).
--
-- A row is pending until the dispatcher claims it (in_flight, in a short
-- transaction committed before any HTTP), then done, pending again for the
-- next attempt, or dead.  Requests are built and signed at send time by
-- pay._outbox_request: secrets are never stored here.  destination names
-- whom the request is for, in the form of the secret store's owners:
-- 'gateway:<name>' or 'merchant:<code>'; circuit breakers are per destination.

-- The rules for its rows (kind, destination and operation forms, params an
-- object, key length, state and the timestamps that go with it) are a C
-- trigger, not CHECK constraints, which PostgreSQL re-plans on every
-- statement (src/outbox_check.c).
CREATE TABLE pay.outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    destination      text NOT NULL,
    operation        text NOT NULL,
    order_id         bigint,
    params           jsonb NOT NULL DEFAULT '{}',
    idempotency_key  text NOT NULL UNIQUE,
    state            text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    attempts_max     integer NOT NULL,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_at       timestamptz,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- the W3C trace id of the request that queued the row, else its order's;
    -- sent, with a new span id, as the traceparent of every attempt
    trace_id         text
);
CREATE FUNCTION pay._outbox_check() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_outbox_check' LANGUAGE C;
CREATE TRIGGER outbox_check BEFORE INSERT OR UPDATE ON pay.outbox
    FOR EACH ROW EXECUTE FUNCTION pay._outbox_check();
ALTER TABLE pay.outbox ENABLE ALWAYS TRIGGER outbox_check;
-- Partial indexes: a row is in each only while it is in that state.
CREATE INDEX outbox_due ON pay.outbox (next_attempt_at) WHERE state = 'pending';
-- The dispatcher's claim walks this one: each destination's due rows in
-- order, and the next destination in one probe (src/dispatcher_store.c).
CREATE INDEX outbox_destination_due ON pay.outbox (destination, next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_in_flight ON pay.outbox (claimed_at) WHERE state = 'in_flight';
CREATE INDEX outbox_dead ON pay.outbox (finished_at) WHERE state = 'dead';
CREATE INDEX outbox_order ON pay.outbox (order_id) WHERE order_id IS NOT NULL;
COMMENT ON TABLE pay.outbox IS
  'requests to send (PSP calls, merchant notifications): built and signed at send time, delivered by the dispatcher with retries';
COMMENT ON COLUMN pay.outbox.destination IS '''gateway:<name>'' or ''merchant:<code>'': whom the request goes to (circuit breakers are per destination)';
COMMENT ON COLUMN pay.outbox.idempotency_key IS 'sent with every attempt (Idempotency-Key header, out_trade_no/out_refund_no, event_id): a re-send has no second effect';
COMMENT ON COLUMN pay.outbox.claimed_at IS 'when the dispatcher claimed the row; a claim older than the lease (pay.dispatcher_lease) is taken back';

CREATE TABLE pay.outbox_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id    bigint NOT NULL,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    latency_ms   double precision,
    http_status  integer,
    outcome      text NOT NULL CHECK (outcome IN ('done', 'retry', 'dead', 'interrupted')),
    error        text
);
CREATE INDEX outbox_attempts_outbox ON pay.outbox_attempts (outbox_id);
COMMENT ON TABLE pay.outbox_attempts IS
  'every delivery attempt: when, HTTP status, latency, error and what followed; purged with pay.purge_outbox';

-- The bound on the outbox: undelivered rows (pending or in flight) counted in
-- slots, so that concurrent enqueuers do not all update one row.  Statement
-- triggers keep it exact whoever writes pay.outbox.
-- Slots 0 to 64, made here once; nothing inserts or deletes rows later
-- (no CHECK on slot: PostgreSQL 15 re-plans a table's CHECKs in every
-- statement that writes it, and every queued row updates this table).
CREATE TABLE pay.outbox_backlog (
    slot         smallint PRIMARY KEY,
    undelivered  bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);
INSERT INTO pay.outbox_backlog (slot) SELECT generate_series(0, 64);
COMMENT ON TABLE pay.outbox_backlog IS
  'undelivered outbox rows, split in slots (slot 64 is the dispatcher''s); the sum is bounded by pay.outbox_pending_max';

-- Circuit breakers, written by the dispatcher when a destination's state changes.
CREATE TABLE pay.circuit_breakers (
    destination          text PRIMARY KEY,
    state                text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures integer NOT NULL DEFAULT 0,
    opened_at            timestamptz,
    open_until           timestamptz,
    last_failure_at      timestamptz,
    last_error           text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pay.circuit_breakers IS
  'per destination: consecutive failures; open after pay.breaker_failures of them for pay.breaker_cooldown, then one probe (half_open)';
-- Routing caches which gateways' circuits are open in every backend
-- (src/order_route.c): a change of a gateway's state or cool-down empties
-- those caches.  Row triggers with WHEN, so that the failures counted for
-- merchants' endpoints (one write per failed attempt) do not.
CREATE TRIGGER circuit_breakers_route_cache_insert AFTER INSERT ON pay.circuit_breakers
    FOR EACH ROW WHEN (NEW.destination LIKE 'gateway:%' AND NEW.state = 'open')
    EXECUTE FUNCTION pay._cache_invalidate();
CREATE TRIGGER circuit_breakers_route_cache_update AFTER UPDATE ON pay.circuit_breakers
    FOR EACH ROW WHEN (NEW.destination LIKE 'gateway:%'
                       AND (OLD.state, OLD.open_until, OLD.destination) IS DISTINCT FROM (NEW.state, NEW.open_until, NEW.destination))
    EXECUTE FUNCTION pay._cache_invalidate();
CREATE TRIGGER circuit_breakers_route_cache_delete AFTER DELETE ON pay.circuit_breakers
    FOR EACH ROW WHEN (OLD.destination LIKE 'gateway:%' AND OLD.state = 'open')
    EXECUTE FUNCTION pay._cache_invalidate();
CREATE TRIGGER circuit_breakers_route_cache_truncate AFTER TRUNCATE ON pay.circuit_breakers
    FOR EACH STATEMENT EXECUTE FUNCTION pay._cache_invalidate();
ALTER TABLE pay.circuit_breakers ENABLE ALWAYS TRIGGER circuit_breakers_route_cache_insert;
ALTER TABLE pay.circuit_breakers ENABLE ALWAYS TRIGGER circuit_breakers_route_cache_update;
ALTER TABLE pay.circuit_breakers ENABLE ALWAYS TRIGGER circuit_breakers_route_cache_delete;
ALTER TABLE pay.circuit_breakers ENABLE ALWAYS TRIGGER circuit_breakers_route_cache_truncate;

-- C glue (src/outbox_wake.c, src/outbox_schedule.c, src/dispatcher_shmem.c, src/form_encode_sql.c).
CREATE FUNCTION pay._outbox_wake() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_outbox_wake' LANGUAGE C;
CREATE FUNCTION pay._outbox_attempts_max(kind text) RETURNS integer
    AS 'MODULE_PATHNAME', 'pay_outbox_attempts_max' LANGUAGE C STABLE STRICT;
CREATE FUNCTION pay.form_urlencode(params jsonb) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_form_urlencode' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pay.form_urlencode(jsonb) IS
  'application/x-www-form-urlencoded body of a JSON object: keys in byte order, values as text (nested values as compact JSON), NULLs left out';

-- Outbound destinations (src/destination_check.c): a notify_url or base_url
-- on a loopback, link-local or private address, or naming localhost, is
-- refused when set (and the dispatcher refuses to connect to such an address
-- whatever name resolves to it) unless pay.allow_private_destinations is on.
CREATE FUNCTION pay._check_destination(field text, url text) RETURNS void
    AS 'MODULE_PATHNAME', 'pay_check_destination' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION pay._check_destination(text, text) IS
  'raises 22023 naming field when url may not be sent to: malformed, a numeric host that is not a dotted quad, or (unless pay.allow_private_destinations) a loopback, link-local, private or unspecified address or localhost';

CREATE FUNCTION pay.dispatcher_status(
    OUT running boolean, OUT preloaded boolean, OUT database text, OUT pid integer,
    OUT started_at timestamptz, OUT in_flight integer, OUT claimed bigint, OUT delivered bigint,
    OUT retried bigint, OUT dead bigint, OUT wakeups bigint, OUT last_error text, OUT detail text)
    RETURNS record
    AS 'MODULE_PATHNAME', 'pay_dispatcher_status' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION pay.dispatcher_status() IS
  'whether the dispatcher delivers this database''s outbox (running), and its counters since it started; detail says why not';

CREATE VIEW pay.dispatcher AS SELECT * FROM pay.dispatcher_status();
COMMENT ON VIEW pay.dispatcher IS 'one row: is delivery running for this database, and its counters';

-- Keep the backlog slots exact and refuse to grow past pay.outbox_pending_max
-- (src/outbox_count.c).
CREATE FUNCTION pay._outbox_count() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_outbox_count' LANGUAGE C;

CREATE TRIGGER outbox_count_insert AFTER INSERT ON pay.outbox
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pay._outbox_count();
CREATE TRIGGER outbox_count_update AFTER UPDATE ON pay.outbox
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pay._outbox_count();
CREATE TRIGGER outbox_count_delete AFTER DELETE ON pay.outbox
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pay._outbox_count();
-- Wake the dispatcher when the transaction that queued something commits.
CREATE TRIGGER outbox_wake AFTER INSERT OR UPDATE ON pay.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION pay._outbox_wake();
CREATE FUNCTION pay._outbox_no_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'pay.outbox cannot be truncated' USING ERRCODE = 'restrict_violation',
    HINT = 'Use pay.purge_outbox, which keeps the backlog count exact.';
END $$;
CREATE TRIGGER outbox_no_truncate BEFORE TRUNCATE ON pay.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION pay._outbox_no_truncate();

-- Queue a request, or return the row already queued under the same key
-- (with other parameters: PY002 if p_strict, else the first row stands).
-- (No SET clause: only the SECURITY DEFINER enqueue functions call it.)
CREATE FUNCTION pay._enqueue(p_kind text, p_destination text, p_operation text, p_order_id bigint,
                             p_params jsonb, p_key text, p_strict boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  v_params jsonb;
BEGIN
  INSERT INTO pay.outbox (kind, destination, operation, order_id, params, idempotency_key, attempts_max, trace_id)
    VALUES (p_kind, p_destination, p_operation, p_order_id, p_params, p_key, pay._outbox_attempts_max(p_kind),
            coalesce(pay._trace_id(), (SELECT o.trace_id FROM pay.orders o WHERE o.id = p_order_id)))
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    SELECT id, params INTO v_id, v_params FROM pay.outbox WHERE idempotency_key = p_key;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'outbox key "%" is in use by a transaction this snapshot cannot see', p_key
        USING ERRCODE = 'serialization_failure', HINT = 'Retry the call.';
    END IF;
    IF p_strict AND v_params <> p_params THEN
      RAISE EXCEPTION 'a request with key "%" was already queued with different parameters', p_key
        USING ERRCODE = 'PY002', DETAIL = format('First parameters: %s', v_params);
    END IF;
  END IF;
  RETURN v_id;
END $$;

CREATE FUNCTION pay.enqueue_merchant_notification(order_id bigint, event text) RETURNS bigint
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
COMMENT ON FUNCTION pay.enqueue_merchant_notification(bigint, text) IS
  'queues the signed notification of an order event to its merchant''s notify_url, once per order and event (again: the first row''s id); NULL when the merchant has no notify_url';

-- params: refund_id (a refund, the id pay.refund returned), psp_txn_id (the
-- PSP's id when the order does not hold it), extra (an object merged into
-- the request body as it is, e.g. Stripe's payment_method).
CREATE FUNCTION pay.enqueue_psp_request(order_id bigint, operation text, params jsonb DEFAULT '{}')
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
COMMENT ON FUNCTION pay.enqueue_psp_request(bigint, text, jsonb) IS
  'queues a request (create_payment, query, refund or query_refund with params.refund_id, close, capture with params.amount, void) to the order''s gateway; params.extra goes into the request body; the same request twice is queued once (every query is sent)';

-- Every transition of an order to paid, refunded or failed notifies its
-- merchant (src/order_notify.c; it calls enqueue_merchant_notification).
CREATE FUNCTION pay._order_notify() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_order_notify' LANGUAGE C;
CREATE TRIGGER orders_notify AFTER UPDATE OF status ON pay.orders
    FOR EACH ROW EXECUTE FUNCTION pay._order_notify();
ALTER TABLE pay.orders ENABLE ALWAYS TRIGGER orders_notify;

-- Dead letters and re-driving them.
CREATE VIEW pay.outbox_dead_letters AS
  SELECT id, kind, destination, operation, order_id, idempotency_key, attempts,
         last_status, last_error, last_attempt_at, created_at, finished_at
    FROM pay.outbox
   WHERE state = 'dead';
COMMENT ON VIEW pay.outbox_dead_letters IS
  'requests that failed permanently or ran out of attempts; pay.redrive(id) queues one again';

-- Re-routing (routing_rules.reroute): a create_payment request that failed
-- for good at one gateway — refused (4xx), dead after its retries, or held
-- by an open circuit before it was ever sent — moves its still-pending
-- order, once, to the first other available gateway of the rules that
-- match it (priority, then id), in the transaction that records the
-- failure (the dispatcher's).  The first request is dead and says where the
-- order went; the new one has its own key, so the move happens once.
-- Returns the new outbox row, or NULL when the order does not move.
CREATE FUNCTION pay._reroute(p_outbox_id bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r pay.outbox;
  o pay.orders;
  v_rule bigint;
  v_gateway text;
  v_key text;
BEGIN
  SELECT * INTO r FROM pay.outbox WHERE id = p_outbox_id FOR UPDATE;
  IF NOT FOUND OR r.kind <> 'psp_request' OR r.operation <> 'create_payment'
     OR r.state NOT IN ('dead', 'pending') OR r.order_id IS NULL THEN
    RETURN NULL;
  END IF;
  v_key := 'psp_' || r.order_id || '_create_payment_rerouted';
  SELECT * INTO o FROM pay.orders WHERE id = r.order_id FOR UPDATE;
  IF NOT FOUND OR o.status <> 'pending' OR r.destination <> 'gateway:' || o.gateway
     OR NOT EXISTS (SELECT 1 FROM pay.routing_rules x WHERE x.id = o.routing_rule_id AND x.reroute)
     OR EXISTS (SELECT 1 FROM pay.outbox x WHERE x.idempotency_key = v_key) THEN
    RETURN NULL;
  END IF;
  SELECT x.id, g.name INTO v_rule, v_gateway
    FROM pay.routing_rules x JOIN pay.gateways g ON g.id = x.gateway_id
   WHERE g.enabled AND g.name <> o.gateway
     AND (x.merchant_id IS NULL OR x.merchant_id = o.merchant_id)
     AND (x.currency IS NULL OR x.currency = o.currency)
     AND o.amount >= coalesce(x.min_amount, 0) AND o.amount <= coalesce(x.max_amount, o.amount)
     AND pay.gateway_available(g.name)
   ORDER BY x.priority, x.id
   LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  UPDATE pay.orders SET gateway = v_gateway, routing_rule_id = v_rule WHERE id = o.id;
  UPDATE pay.outbox
     SET state = 'dead', finished_at = coalesce(finished_at, now()),
         last_error = left(coalesce(last_error || '; ', '') || 're-routed to gateway:' || v_gateway, 2000)
   WHERE id = r.id;
  RETURN pay._enqueue('psp_request', 'gateway:' || v_gateway, 'create_payment', o.id, r.params, v_key, false);
END $$;

-- The dispatcher's part for open circuits: pending create_payment requests
-- never sent to those destinations, of orders whose rule re-routes.
CREATE FUNCTION pay._reroute_blocked(p_destinations text[]) RETURNS integer
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT count(pay._reroute(s.id))::integer
    FROM (SELECT x.id FROM pay.outbox x
            JOIN pay.orders o ON o.id = x.order_id AND o.status = 'pending'
            JOIN pay.routing_rules rr ON rr.id = o.routing_rule_id AND rr.reroute
           WHERE x.state = 'pending' AND x.attempts = 0 AND x.kind = 'psp_request'
             AND x.operation = 'create_payment' AND x.destination = ANY (p_destinations)
           ORDER BY x.next_attempt_at LIMIT 100
           FOR UPDATE OF x SKIP LOCKED) s
$$;

-- A PSP request to a gateway its order has since left (re-routed): it must
-- not be sent again.
CREATE FUNCTION pay._rerouted_away(r pay.outbox) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT r.kind = 'psp_request' AND EXISTS (
    SELECT 1 FROM pay.orders o WHERE o.id = r.order_id AND r.destination <> 'gateway:' || o.gateway)
$$;

CREATE FUNCTION pay.redrive(outbox_id bigint) RETURNS pay.outbox
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r pay.outbox;
BEGIN
  SELECT * INTO r FROM pay.outbox WHERE id = outbox_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'outbox_id: outbox row % does not exist', coalesce(outbox_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF r.state NOT IN ('dead', 'pending') THEN
    RAISE EXCEPTION 'outbox row % is %; only a dead (or pending) row can be re-driven', r.id, r.state
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF pay._rerouted_away(r) THEN
    RAISE EXCEPTION 'outbox row % went to %, and its order was re-routed to another gateway', r.id, r.destination
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- A fresh schedule from now; the attempts so far stay in pay.outbox_attempts.
  UPDATE pay.outbox
     SET state = 'pending', attempts = 0, attempts_max = pay._outbox_attempts_max(kind),
         next_attempt_at = now(), finished_at = NULL
   WHERE id = r.id
  RETURNING * INTO r;
  RETURN r;
END $$;
COMMENT ON FUNCTION pay.redrive(bigint) IS
  'queues a dead outbox row again with a fresh schedule (a pending one is made due now); returns the row';

CREATE FUNCTION pay.redrive_dead(destination text DEFAULT NULL, max_rows integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  IF max_rows IS NULL OR max_rows < 1 THEN
    RAISE EXCEPTION 'max_rows must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE pay.outbox o
     SET state = 'pending', attempts = 0, attempts_max = pay._outbox_attempts_max(o.kind),
         next_attempt_at = now(), finished_at = NULL
   WHERE o.id IN (SELECT d.id FROM pay.outbox d
                   WHERE d.state = 'dead' AND (redrive_dead.destination IS NULL OR d.destination = redrive_dead.destination)
                     AND NOT pay._rerouted_away(d)
                   ORDER BY d.finished_at LIMIT max_rows FOR UPDATE);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.redrive_dead(text, integer) IS
  're-drives up to max_rows dead rows (of one destination, or all); returns how many';

CREATE FUNCTION pay.purge_outbox(older_than interval DEFAULT '30 days', max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  IF older_than IS NULL OR older_than < interval '0' OR max_rows IS NULL OR max_rows < 1 THEN
    RAISE EXCEPTION 'older_than must not be negative and max_rows must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  WITH gone AS (
    DELETE FROM pay.outbox o
     WHERE o.id IN (SELECT id FROM pay.outbox
                     WHERE state = 'done' AND finished_at < now() - older_than
                     ORDER BY id LIMIT max_rows)
    RETURNING o.id)
  DELETE FROM pay.outbox_attempts a USING gone WHERE a.outbox_id = gone.id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.purge_outbox(interval, integer) IS
  'deletes delivered outbox rows finished more than older_than ago, with their attempts (at most max_rows rows); dead rows stay';

-- Circuit breakers as routing sees them.
CREATE VIEW pay.circuits AS
  SELECT destination,
         CASE WHEN state = 'open' AND open_until <= now() THEN 'half_open' ELSE state END AS state,
         consecutive_failures, opened_at, open_until, last_failure_at, last_error, updated_at
    FROM pay.circuit_breakers;
COMMENT ON VIEW pay.circuits IS
  'circuit breaker per destination; an open circuit past its cool-down lets one probe through (half_open)';

CREATE FUNCTION pay.gateway_available(name text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN NOT EXISTS (SELECT 1 FROM pay.circuit_breakers c
                    WHERE c.destination = 'gateway:' || gateway_available.name
                      AND c.state = 'open' AND c.open_until > now());
COMMENT ON FUNCTION pay.gateway_available(text) IS
  'false while the gateway''s circuit is open (before its cool-down ends): routing should pick another gateway';

-- ---------------------------------------------------------------------------
-- RequestBuilder: the HTTP request of an outbox row, built and signed at send
-- time with credentials from the secret store.  Each returns the method, URL,
-- headers ("Name: value") and body.

CREATE TYPE pay.http_request AS (method text, url text, headers text[], body text);
COMMENT ON TYPE pay.http_request IS 'an HTTP request to send: method, URL, headers as "Name: value", body';

-- A credential for the request builders (they run as the extension owner).
CREATE FUNCTION pay._credential(p_owner text, p_name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text;
BEGIN
  v := pay.reveal_secret(p_owner, p_name);
  IF v IS NULL THEN
    RAISE EXCEPTION 'secret "%" of "%" is not set', p_name, p_owner USING ERRCODE = 'undefined_object',
      HINT = 'Store it with pay.set_secret.';
  END IF;
  RETURN v;
END $$;

-- A merchant notification (doc/api.md, "Callbacks"): form fields signed with
-- pay.sign_params under the merchant's api_secret (read here unless the
-- caller has it already), new timestamp and nonce for every attempt
-- (src/notification_request.c).
CREATE FUNCTION pay._build_merchant_notification(r pay.outbox, p_secret text DEFAULT NULL)
RETURNS pay.http_request
    AS 'MODULE_PATHNAME', 'pay_build_merchant_notification' LANGUAGE C STABLE;

-- A PSP's payment requests are built in C by its provider
-- (src/provider_<kind>.c), through pay._provider_request below.

-- The request of operation r.operation built by the provider of g.kind
-- (src/provider_dispatch.c), statement fetches included; 0A000 for an
-- operation it does not have.
CREATE FUNCTION pay._provider_request(r pay.outbox, g pay.gateways) RETURNS pay.http_request
    AS 'MODULE_PATHNAME', 'pay_provider_request' LANGUAGE C STABLE STRICT;

CREATE FUNCTION pay._outbox_request(r pay.outbox, p_secret text DEFAULT NULL) RETURNS pay.http_request
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
COMMENT ON FUNCTION pay._outbox_request(pay.outbox, text) IS
  'RequestBuilder: the signed HTTP request of an outbox row, built now with credentials from the secret store';

-- For the dispatcher: the requests of claimed rows; a row whose request
-- cannot be built gets the error instead.  Rows come by destination, so a
-- merchant's api_secret is read once per batch.
-- plan_cache_mode = auto: the dispatcher's session plans custom plans
-- (its claim's plans depend on the backlog), but every statement reached
-- from here looks rows up by key and has one good plan whatever the values;
-- planning each of them again for every row was most of a claim's CPU.
CREATE FUNCTION pay._outbox_requests(p_ids bigint[])
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

-- A PSP's answers are read and applied by pay._outbox_apply (81_psp_answers.sql).

-- Privileges (90_privileges.sql revokes everything from PUBLIC afterwards).
GRANT EXECUTE ON FUNCTION pay.enqueue_psp_request(bigint, text, jsonb), pay.gateway_available(text)
  TO pay_app, pay_admin;
GRANT EXECUTE ON FUNCTION pay.enqueue_merchant_notification(bigint, text) TO pay_admin;
GRANT EXECUTE ON FUNCTION pay.redrive(bigint), pay.redrive_dead(text, integer),
    pay.purge_outbox(interval, integer), pay.dispatcher_status(), pay.form_urlencode(jsonb)
  TO pay_admin;
GRANT SELECT ON pay.outbox, pay.outbox_attempts, pay.outbox_dead_letters, pay.circuit_breakers,
    pay.circuits, pay.dispatcher
  TO pay_admin;
