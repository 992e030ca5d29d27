-- A PSP's answers to pay's requests: kept, verified and applied.
--
-- The dispatcher hands every answer it does not retry (a 2xx, or a
-- permanent 4xx) to pay._outbox_apply with its status, header lines and
-- body.  Each gateway's reader (its provider's read operation, C in
-- src/provider_<kind>.c) verifies the answer
-- (Alipay: RSA2 over the *_response member; WeChat Pay: the platform
-- certificate named by Wechatpay-Serial, exactly as a callback; Stripe and
-- generic gateways do not sign answers, the TLS connection and our key
-- authenticate them), checks that it is about the order (and refund) the
-- request was about, and reads it into one normalised answer (jsonb):
--   verdict       applied | refused (the PSP said no to the request)
--   final         a refusal that sending again cannot change (a 4xx;
--                 Alipay's 40004 "Business Failed")
--   reason, code  the PSP's message and error code of a refusal
--   psp_txn_id    the PSP's transaction id
--   next_action   the buyer's next step (create_payment)
--   event         a query's answer as the event a callback of the same
--                 news would be (85_callbacks.sql), or null
--   refund        {status: succeeded | failed | null (still processing),
--                 psp_refund_id} (refund, query_refund)
--   already_paid  a close (or create) refused because the buyer has paid
--   received      the PSP took the request and will report its outcome
--                 later, by notification (Adyen's modifications)
-- Anything a reader raises (a bad or missing signature, a stale
-- timestamp, a malformed answer, another order's or another amount) makes
-- the answer rejected: it is recorded and moves nothing.
-- pay._apply_answer then applies the normalised answer, the same way for
-- every gateway.  Every answer is kept in pay.psp_answers (statement
-- fetches excepted: their answers are files, kept as statements).

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

-- The PSP's transaction id, the first time one is known.
CREATE FUNCTION pay._store_psp_txn_id(p_order bigint, p_txn text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE pay.orders SET psp_txn_id = p_txn
   WHERE id = p_order AND psp_txn_id IS NULL AND p_txn IS NOT NULL AND p_txn <> ''
$$;

-- A query's answer applied as the callback with the same news would be,
-- through the callbacks' own code (src/answer_event.c: CallbackApply): the
-- same settling UPDATE, ledger posting, notification, anomalies; a query
-- racing a callback for the same payment books it once.  cause is what the
-- order's events record ('query <outbox id>').  Returns the outcome.
CREATE FUNCTION pay._apply_answer_event(gateway text, event jsonb, cause text) RETURNS text
    AS 'MODULE_PATHNAME', 'pay_apply_answer_event' LANGUAGE C VOLATILE STRICT;

-- Why the order should not be failed by a refusal of its create request:
-- NULL when it should.  A create_payment refused for good moves a pending
-- order to failed, unless the order's routing rule re-routes it and it has
-- not moved yet (pay._reroute moves it in the same transaction).
CREATE FUNCTION pay._refusal_spares(r pay.outbox, o pay.orders) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE
    WHEN o.status <> 'pending' THEN 'order is ' || o.status
    WHEN r.destination <> 'gateway:' || o.gateway THEN 'order moved to gateway ' || o.gateway
    WHEN EXISTS (SELECT 1 FROM pay.routing_rules x WHERE x.id = o.routing_rule_id AND x.reroute)
         AND NOT EXISTS (SELECT 1 FROM pay.outbox x WHERE x.idempotency_key = 'psp_' || o.id || '_create_payment_rerouted')
      THEN 'its routing rule re-routes it' END
$$;

-- What the PSP said about our refund: its id, and succeeded or failed
-- (once; a refund the PSP has not finished stays requested).  A failed
-- refund was booked when it was made: someone must look (an anomaly).
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

-- Apply a normalised answer (see the top of this file).  Returns what it did.
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

-- The answer to r read by the provider of g.kind (src/provider_dispatch.c):
-- the summary _apply_answer consumes; 0A000 for an operation it does not have.
CREATE FUNCTION pay._provider_answer(r pay.outbox, g pay.gateways, o pay.orders, p_status integer, h jsonb,
                                     p_body text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_provider_answer' LANGUAGE C VOLATILE;

-- The dispatcher's entry: an answer (2xx, or a permanent 4xx) to outbox row
-- p_id, with its header lines as a JSON object.  Returns NULL when the
-- answer was applied, else why not (a 2xx then leaves the row dead for a
-- person to look at; a 4xx row is dead anyway).
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

GRANT SELECT ON pay.psp_answers TO pay_admin;
