-- PSP callbacks: pay.handle_callback records every callback as received,
-- verifies it with the gateway's stored credentials, rejects stale and
-- replayed ones, deduplicates by the PSP's event id, checks the amount
-- against the order, applies the event and answers what the PSP expects.
-- It is C (src/callback_handle.c), and so are the Stripe and Alipay
-- parsers and the common case of applying an event (a payment for a
-- pending order, src/callback_apply.c); the PL/pgSQL below parses WeChat
-- Pay and the generic scheme and applies every other event.
--
-- The internal helpers below (names beginning with "_") carry no SET
-- clause: they run only inside pay.handle_callback, a SECURITY DEFINER
-- function that pinned search_path, and no role may execute them directly
-- (a SET clause costs a settings save and restore on every call).
--
-- Each provider's parser turns a verified callback into one normalised
-- event (jsonb):
--   event_id    the PSP's id of this notification (deduplication key)
--   nonce       a per-delivery nonce, where the scheme has one (replay check)
--   kind        payment_succeeded | payment_captured | payment_failed | refunded | closed | ignored
--               (payment_succeeded of a manual-capture order: authorized;
--               payment_captured: what the PSP took of an authorization,
--               amount its captured part)
--   order_ref   our order id as the PSP echoes it, or NULL
--   psp_txn_id  the PSP's transaction id
--   amount      minor units, or amount_major: a decimal string (Alipay)
--   currency    ISO 4217 as the PSP names it (Stripe's lower case made
--               upper, ASCII letters only), or NULL when it names none;
--               either way it must be the order's (see src/callback_apply.c)
--   refund_id, refund_amount (this refund) or refund_total (cumulative)
--   type        the PSP's own name of the event, for the record
--
-- A parameter with an empty value (form, or a JSON object's "" or null) is
-- left out before a parser reads anything: the canonical strings that the
-- form-based schemes sign leave it out, so it is not signed.
--
-- What is kept (src/callback_record.c): a callback to a name that is no
-- gateway taking callbacks is only counted per day; any other gets a row
-- with at most pay.callback_unverified_body_max bytes of its body (64 kB)
-- until it is verified, and its whole body once it is.  pay.purge_callbacks
-- removes the rows that moved nothing; accepted callbacks stay.

CREATE TABLE pay.callbacks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway       text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    headers       jsonb NOT NULL,
    body          text,
    body_bytes    bytea,
    -- received, accepted, duplicate, rejected or error (src/callback_check.c)
    verdict       text NOT NULL DEFAULT 'received',
    reason_code   text,
    reason        text,
    event_id      text,
    event_type    text,
    order_id      bigint,
    outcome       text,
    http_status   integer,
    body_length   integer,             -- added in 0.2: new columns go last
    -- the W3C trace id the callback carried, else its order's
    trace_id      text
);
CREATE FUNCTION pay._callback_check() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_callback_check' LANGUAGE C;
CREATE TRIGGER callbacks_check BEFORE INSERT OR UPDATE ON pay.callbacks
    FOR EACH ROW EXECUTE FUNCTION pay._callback_check();
ALTER TABLE pay.callbacks ENABLE ALWAYS TRIGGER callbacks_check;
CREATE INDEX callbacks_order ON pay.callbacks (order_id) WHERE order_id IS NOT NULL;
-- what pay.purge_callbacks looks for; an accepted callback leaves it when
-- its verdict is recorded, so the payment path does not add to it
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

CREATE TABLE pay.callback_events (
    gateway      text NOT NULL,
    event_id     text NOT NULL,
    callback_id  bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, event_id)
);
COMMENT ON TABLE pay.callback_events IS 'PSP event ids already applied: a repeat is acknowledged and changes nothing';

CREATE TABLE pay.callback_nonces (
    gateway      text NOT NULL,
    nonce        text NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, nonce)
);
CREATE INDEX callback_nonces_age ON pay.callback_nonces (seen_at);
COMMENT ON TABLE pay.callback_nonces IS 'nonces seen within the timestamp window; a reuse is a replay (PY012)';

CREATE TABLE pay.anomalies (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     bigint,
    gateway      text,
    callback_id  bigint,
    kind         text NOT NULL,
    detail       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pay.anomalies IS
  'authentic PSP messages that did not fit the order (wrong amount, payment after cancel, double payment); for a human to look at';

CREATE TABLE pay.deferred_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway      text NOT NULL,
    order_id     bigint NOT NULL,
    callback_id  bigint NOT NULL,
    event        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    applied_at   timestamptz
);
CREATE INDEX deferred_events_waiting ON pay.deferred_events (order_id) WHERE applied_at IS NULL;
COMMENT ON TABLE pay.deferred_events IS
  'events that arrived before the one they depend on (a refund before the payment); applied when it arrives';

-- The body as a JSON object, or a clear 22P02 (src/json_body.c).
CREATE FUNCTION pay._json_body(p_body text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_json_body' LANGUAGE C IMMUTABLE;

-- Every provider's callbacks are verified and parsed in C, by its provider
-- (src/provider_<kind>.c).

-- Record an anomaly of order o at gateway g (p_callback NULL: none) and
-- return the outcome that says so, as the callbacks' C code records one
-- (src/anomaly_sql.c, src/callback_apply.c: EventAnomaly).
CREATE FUNCTION pay._anomaly(o pay.orders, g pay.gateways, p_callback bigint, p_kind text, p_detail text)
RETURNS text
    AS 'MODULE_PATHNAME', 'pay_anomaly' LANGUAGE C VOLATILE;

-- Money that reached us for an order that cannot take it (cancelled, or
-- already paid by another transaction): book it, book it back, queue the
-- refund at the PSP and record the anomaly.  Money is always accounted for.
CREATE FUNCTION pay._book_and_return(o pay.orders, g pay.gateways, e jsonb, p_callback bigint, p_amount bigint,
                                     p_kind text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_psp bigint := pay._account('psp:' || g.name || ':' || o.currency, o.currency);
  v_merchant bigint := pay._merchant_account(o.merchant_id, o.currency);
  v_ref text := g.name || ':' || coalesce(e->>'psp_txn_id', e->>'event_id');
  v_refund bigint;
BEGIN
  PERFORM pay._post('unexpected-payment:' || v_ref, o.id, ARRAY[v_psp, v_merchant], ARRAY[-p_amount, p_amount]);
  PERFORM pay._post('automatic-refund:' || v_ref, o.id, ARRAY[v_merchant, v_psp], ARRAY[-p_amount, p_amount]);
  -- the refund row the PSP request names; the order's own refunded_amount
  -- stays as it is (this money was never the order's)
  INSERT INTO pay.refunds (order_id, amount, reason, idempotency_key)
    VALUES (o.id, p_amount, 'automatic refund: payment ' || coalesce(e->>'psp_txn_id', '?') || ' for an order that is ' || o.status,
            'auto:' || v_ref)
    RETURNING id INTO v_refund;
  PERFORM pay.enqueue_psp_request(o.id, 'refund',
    jsonb_build_object('refund_id', v_refund, 'psp_txn_id', e->>'psp_txn_id', 'amount', p_amount));
  RETURN pay._anomaly(o, g, p_callback, p_kind,
    format('%s %s paid by %s to order %s (%s); booked and refunded automatically',
           pay.format_amount(p_amount, o.currency), o.currency, e->>'psp_txn_id', o.id, o.status));
END $$;

-- Applying an event to its order (the decisions: currency and amount
-- checks, refunds booked or deferred, double payments and payments after a
-- cancel booked and returned, failures, closes) is C: src/callback_apply.c
-- and src/event_refund.c.  pay._apply_answer_event (81_psp_answers.sql) is
-- its SQL entry.

CREATE FUNCTION pay.handle_callback(provider text, headers jsonb, body text)
RETURNS SETOF pay.http_response
    AS 'MODULE_PATHNAME', 'pay_handle_callback'
    LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION pay.handle_callback(text, jsonb, text) IS
  'records, verifies, deduplicates and applies a PSP callback; answers the status and body the PSP expects; never raises for a bad callback';

-- Nonces older than every gateway's window can go.
CREATE FUNCTION pay.purge_callback_nonces(older_than interval DEFAULT interval '1 hour') RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM pay.callback_nonces WHERE seen_at < now() - older_than;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay.purge_callback_nonces(interval) IS
  'deletes callback nonces older than the replay window (keep it above every gateway''s tolerance_s)';

-- Callbacks that moved nothing, received more than older_than ago:
-- rejected, error and duplicate ones, at most max_rows of them, oldest
-- first; and the day counts of unknown gateways as old.  Accepted
-- callbacks stay as long as the ledger: they are the source documents of
-- what they booked or changed (pay.order_events.cause says "callback
-- <id>"), and callback_events, anomalies and deferred_events name them; only a PSP's signature gets a callback accepted, so they grow
-- with the business, not with what anyone sends.  Returns how many
-- callbacks it deleted; run it until it returns less than max_rows.
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

-- A callback pay-proxy refused before handle_callback (body over its limit,
-- or not UTF-8 text): recorded all the same, with at most the
-- unverified-body bound of the bytes it kept; to an unknown gateway, only
-- counted (src/callback_record.c).
CREATE FUNCTION pay.record_unreadable_callback(provider text, headers jsonb, reason_code text, reason text,
                                               body_bytes bytea, http_status integer)
RETURNS bigint
    AS 'MODULE_PATHNAME', 'pay_record_unreadable_callback'
    LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION pay.record_unreadable_callback(text, jsonb, text, text, bytea, integer) IS
  'records a callback that pay-proxy refused before handle_callback (too large, not UTF-8); NULL, only counted, for a name that is no gateway taking callbacks';

GRANT EXECUTE ON FUNCTION pay.handle_callback(text, jsonb, text),
    pay.record_unreadable_callback(text, jsonb, text, text, bytea, integer) TO pay_callback;
GRANT EXECUTE ON FUNCTION pay.purge_callback_nonces(interval), pay.purge_callbacks(interval, integer) TO pay_admin;
GRANT SELECT ON pay.callbacks, pay.callback_events, pay.anomalies, pay.deferred_events,
    pay.unknown_gateway_callbacks TO pay_admin;
