-- test/bench/callbacks_baseline.sql — the bare-SQL baseline of
-- test/bench/callbacks.sh: the writes one accepted "paid" callback makes in
-- pay, on plain copies of pay's tables, with no checks at all.
--
-- The copies have the same columns, defaults, identity columns and indexes
-- (primary keys, unique and partial indexes: index upkeep is part of the
-- writes) but no CHECK constraints, no foreign keys and no triggers.  Nothing
-- is verified, parsed or looked up: the event id, transaction id, order and
-- amount come in as arguments, taken from columns the generator filled.

CREATE TABLE bench.callbacks        (LIKE pay.callbacks        INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bench.callback_events  (LIKE pay.callback_events  INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bench.orders           (LIKE pay.orders           INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bench.order_events     (LIKE pay.order_events     INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bench.postings         (LIKE pay.postings         INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bench.entries          (LIKE pay.entries          INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);
CREATE TABLE bench.account_balances (LIKE pay.account_balances INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)
  WITH (fillfactor = 50);
CREATE TABLE bench.outbox           (LIKE pay.outbox           INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);

INSERT INTO bench.account_balances SELECT * FROM pay.account_balances;

-- One accepted callback, the k-th of this run: insert the callback row,
-- update it, insert the event-id row, update the order, insert an order
-- event, insert a posting and two entries, update two balance rows, insert
-- an outbox row.  Order k of bench.orders; event and transaction ids made
-- distinct with k (the callback rows are reused round after round).
CREATE FUNCTION bench.baseline(k bigint, p_gateway text, p_headers jsonb, p_body text, p_event_id text,
                               p_txn text, p_amount bigint, p_currency text, p_source bigint, p_merchant bigint)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_cb bigint;
  v_posting bigint;
  v_slot integer := pg_backend_pid() % 8;
BEGIN
  INSERT INTO bench.callbacks (gateway, headers, body, body_length) VALUES (p_gateway, p_headers, p_body, octet_length(p_body))
    RETURNING id INTO v_cb;
  UPDATE bench.callbacks
     SET verdict = 'accepted', event_id = p_event_id || ':' || k, event_type = 'paid', order_id = k,
         outcome = 'paid', http_status = 200
   WHERE id = v_cb;
  INSERT INTO bench.callback_events (gateway, event_id, callback_id) VALUES (p_gateway, p_event_id || ':' || k, v_cb);
  UPDATE bench.orders
     SET status = 'paid', psp_txn_id = p_txn || ':' || k, paid_at = now(), paid_account_id = p_source,
         updated_at = now()
   WHERE id = k;
  INSERT INTO bench.order_events (order_id, from_status, to_status, cause)
    VALUES (k, 'pending', 'paid', 'callback ' || v_cb);
  INSERT INTO bench.postings (ref, order_id) VALUES ('order:' || k || ':paid', k) RETURNING id INTO v_posting;
  INSERT INTO bench.entries (posting_id, account_id, amount, currency)
    VALUES (v_posting, p_source, -p_amount, p_currency), (v_posting, p_merchant, p_amount, p_currency);
  UPDATE bench.account_balances SET balance = balance - p_amount WHERE account_id = p_source AND slot = v_slot;
  UPDATE bench.account_balances SET balance = balance + p_amount WHERE account_id = p_merchant AND slot = v_slot;
  INSERT INTO bench.outbox (kind, destination, operation, order_id, params, idempotency_key, attempts_max)
    VALUES ('merchant_notification', 'merchant:acme', 'paid', k,
            jsonb_build_object('id', k::text, 'merchant_order_no', 'BASE-' || k, 'amount', p_amount::text,
                               'currency', p_currency, 'status', 'paid', 'event_id', 'evt_' || k || '_paid'),
            'evt_' || k || '_paid', 12);
  RETURN 200;
END $$;
