-- A PSP's answers to pay's requests: kept, verified and applied.
--
-- The dispatcher hands every answer it does not retry (a 2xx, or a
-- permanent 4xx) to pay._outbox_apply with its status, header lines and
-- body.  Each gateway's reader (its provider's read operation: C for
-- Stripe, pay._answer_<kind> for the others) verifies the answer
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

-- Raise 22023 (the answer is rejected) unless a member the answer names
-- is ours.  A NULL p_theirs (the answer does not say) passes only when
-- p_required is false.
CREATE FUNCTION pay._answer_expect(p_what text, p_theirs text, p_ours text, p_required boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF p_theirs IS NULL AND NOT p_required THEN
    RETURN;
  END IF;
  IF p_theirs IS DISTINCT FROM p_ours THEN
    RAISE EXCEPTION 'the answer''s % is "%", not ours ("%")', p_what, coalesce(p_theirs, '(none)'), p_ours
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END $$;

-- The body as a JSON object; an empty body is {} (a 204).
CREATE FUNCTION pay._answer_json(p_body text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN CASE WHEN coalesce(p_body, '') = '' THEN '{}'::jsonb ELSE pay._json_body(p_body) END;
END $$;

-- The body of a refusal (a 4xx of a PSP that does not sign its answers):
-- a JSON object, else {"message": "HTTP <status>: <its text>"} (a proxy's
-- error page still refuses the request).
CREATE FUNCTION pay._answer_refusal_json(p_status integer, p_body text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN pay._answer_json(p_body);
EXCEPTION WHEN invalid_text_representation OR program_limit_exceeded THEN
  RETURN jsonb_build_object('message', 'HTTP ' || p_status || ': ' || left(p_body, 200));
END $$;

-- Stripe's answers are read in C (src/provider_stripe.c).

-- Alipay: {"<method>_response": {...}, "sign": "..."}, the signature over
-- the raw text of the member, with Alipay's public key.  Gateway errors
-- (40001, 40002) come unsigned: they are rejected like any unsigned answer.
CREATE FUNCTION pay._answer_alipay(r pay.outbox, g pay.gateways, o pay.orders, p_status integer, p_body text)
RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_member text := CASE r.operation WHEN 'create_payment' THEN 'alipay_trade_precreate_response'
                                    WHEN 'query' THEN 'alipay_trade_query_response'
                                    WHEN 'refund' THEN 'alipay_trade_refund_response'
                                    WHEN 'query_refund' THEN 'alipay_trade_fastpay_refund_query_response'
                                    ELSE 'alipay_trade_close_response' END;
  v jsonb := pay._answer_json(p_body)->v_member;
  v_currency text;
  v_kind text;
BEGIN
  IF jsonb_typeof(v) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'alipay''s answer (HTTP %) has no % object', p_status, v_member USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT pay.alipay_response_valid(p_body, pay._credential('gateway:' || g.name, 'public_key')) THEN
    RAISE EXCEPTION 'the signature of alipay''s answer does not verify (code %, %)',
      coalesce(v->>'code', '(none)'), coalesce(v->>'sub_code', v->>'msg', '')
      USING ERRCODE = 'PY010';
  END IF;
  PERFORM pay._answer_expect('out_trade_no', v->>'out_trade_no', o.id::text, v->>'code' = '10000' AND r.operation <> 'query_refund');
  IF v->>'code' IS DISTINCT FROM '10000' THEN
    RETURN jsonb_build_object('verdict', 'refused', 'final', v->>'code' = '40004',
      'reason', coalesce(v->>'sub_msg', v->>'msg', 'code ' || coalesce(v->>'code', '(none)')),
      'code', coalesce(v->>'sub_code', v->>'code'),
      'already_paid', (r.operation = 'close' AND v->>'sub_code' = 'ACQ.TRADE_STATUS_ERROR')
                      OR v->>'sub_code' = 'ACQ.TRADE_HAS_SUCCESS');
  END IF;
  CASE r.operation
  WHEN 'create_payment' THEN
    RETURN jsonb_build_object('verdict', 'applied',
      'next_action', CASE WHEN v->>'qr_code' IS NOT NULL
                          THEN jsonb_build_object('type', 'qr_code', 'qr_code', v->>'qr_code') END);
  WHEN 'query' THEN
    -- the currency total_amount is in, as the notify parser reads it
    v_currency := coalesce(v->>'trans_currency', v->>'currency', 'CNY');
    PERFORM pay._answer_expect('currency', v_currency, o.currency::text);
    PERFORM pay._answer_expect('total_amount', pay.parse_amount(v->>'total_amount', o.currency)::text, o.amount::text);
    v_kind := CASE WHEN v->>'trade_status' IN ('TRADE_SUCCESS', 'TRADE_FINISHED') THEN 'payment_succeeded'
                   WHEN v->>'trade_status' = 'TRADE_CLOSED' THEN 'closed' END;
    RETURN jsonb_build_object('verdict', 'applied', 'psp_txn_id', v->>'trade_no',
      'event', CASE WHEN v_kind IS NOT NULL THEN jsonb_build_object(
                 'event_id', 'query:' || r.id, 'type', v->>'trade_status', 'kind', v_kind,
                 'order_ref', v->>'out_trade_no', 'psp_txn_id', v->>'trade_no',
                 'amount_major', v->>'total_amount', 'currency', v_currency) END);
  WHEN 'refund' THEN
    -- code 10000: the refund is done (fund_change N: an earlier request did it)
    RETURN jsonb_build_object('verdict', 'applied', 'psp_txn_id', v->>'trade_no',
      'refund', jsonb_build_object('status', 'succeeded'));
  WHEN 'query_refund' THEN
    PERFORM pay._answer_expect('out_request_no', v->>'out_request_no', r.params->>'refund_id', false);
    -- no refund_status: Alipay has not (yet) refunded
    RETURN jsonb_build_object('verdict', 'applied',
      'refund', jsonb_build_object('status', CASE WHEN v->>'refund_status' = 'REFUND_SUCCESS' THEN 'succeeded' END));
  ELSE
    RETURN jsonb_build_object('verdict', 'applied');
  END CASE;
END $$;

-- WeChat Pay v3: every answer is signed like a callback (Wechatpay-*
-- headers, platform certificate by serial, the gateway's window); errors
-- are {"code": ..., "message": ...}.  out_trade_no is zero-padded.
CREATE FUNCTION pay._answer_wechatpay(r pay.outbox, g pay.gateways, o pay.orders, p_status integer, h jsonb,
                                      p_body text)
RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb;
  v_kind text;
BEGIN
  PERFORM pay._wechatpay_verify(g, h, coalesce(p_body, ''));
  v := pay._answer_json(p_body);
  IF p_status >= 400 THEN
    RETURN jsonb_build_object('verdict', 'refused', 'final', true,
      'reason', coalesce(v->>'message', 'HTTP ' || p_status), 'code', v->>'code',
      'already_paid', v->>'code' = 'ORDERPAID');
  END IF;
  PERFORM pay._answer_expect('out_trade_no', v->>'out_trade_no', pay._wechatpay_trade_no(o.id),
                             r.operation = 'query');
  CASE r.operation
  WHEN 'create_payment' THEN
    RETURN jsonb_build_object('verdict', 'applied',
      'next_action', CASE WHEN v->>'code_url' IS NOT NULL
                          THEN jsonb_build_object('type', 'code_url', 'code_url', v->>'code_url') END);
  WHEN 'query' THEN
    PERFORM pay._answer_expect('amount.total', v->'amount'->>'total', o.amount::text);
    PERFORM pay._answer_expect('amount.currency', coalesce(v->'amount'->>'currency', 'CNY'), o.currency::text);
    v_kind := CASE WHEN v->>'trade_state' = 'SUCCESS' THEN 'payment_succeeded'
                   WHEN v->>'trade_state' IN ('CLOSED', 'REVOKED') THEN 'closed'
                   WHEN v->>'trade_state' = 'PAYERROR' THEN 'payment_failed' END;
    RETURN jsonb_build_object('verdict', 'applied', 'psp_txn_id', v->>'transaction_id',
      'event', CASE WHEN v_kind IS NOT NULL THEN jsonb_build_object(
                 'event_id', 'query:' || r.id, 'type', v->>'trade_state', 'kind', v_kind,
                 'order_ref', v->>'out_trade_no', 'psp_txn_id', v->>'transaction_id',
                 'amount', v->'amount'->>'total', 'currency', coalesce(v->'amount'->>'currency', 'CNY')) END);
  WHEN 'refund', 'query_refund' THEN
    PERFORM pay._answer_expect('out_refund_no', v->>'out_refund_no', r.params->>'refund_id');
    RETURN jsonb_build_object('verdict', 'applied', 'refund', jsonb_build_object(
      'psp_refund_id', v->>'refund_id',
      'status', CASE WHEN v->>'status' = 'SUCCESS' THEN 'succeeded'
                     WHEN v->>'status' IN ('CLOSED', 'ABNORMAL') THEN 'failed' END));
  ELSE
    RETURN jsonb_build_object('verdict', 'applied');
  END CASE;
END $$;

-- pay's generic scheme: JSON answers naming order_id, psp_txn_id, status
-- (the callback's words: paid, failed, closed; refunds: succeeded,
-- failed), amount, currency, next_action; errors {"message": ...}.
CREATE FUNCTION pay._answer_generic(r pay.outbox, o pay.orders, p_status integer, p_body text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb;
  v_kind text;
BEGIN
  IF p_status >= 400 THEN
    v := pay._answer_refusal_json(p_status, p_body);
    RETURN jsonb_build_object('verdict', 'refused', 'final', true,
      'reason', coalesce(v->>'message', v->>'error', 'HTTP ' || p_status), 'code', v->>'code',
      'already_paid', r.operation = 'close' AND v->>'code' = 'already_paid');
  END IF;
  v := pay._answer_json(p_body);
  PERFORM pay._answer_expect('order_id', v->>'order_id', o.id::text, false);
  IF r.operation IN ('refund', 'query_refund') THEN
    PERFORM pay._answer_expect('refund_id', v->>'refund_id', r.params->>'refund_id', false);
    RETURN jsonb_build_object('verdict', 'applied', 'refund', jsonb_build_object(
      'psp_refund_id', v->>'psp_refund_id',
      'status', CASE WHEN v->>'status' IN ('succeeded', 'refunded') THEN 'succeeded'
                     WHEN v->>'status' = 'failed' THEN 'failed' END));
  END IF;
  PERFORM pay._answer_expect('amount', v->>'amount', o.amount::text, false);
  v_kind := CASE WHEN v->>'status' IN ('paid', 'success') THEN 'payment_succeeded'
                 WHEN v->>'status' = 'failed' THEN 'payment_failed'
                 WHEN v->>'status' = 'closed' THEN 'closed' END;
  RETURN jsonb_build_object('verdict', 'applied', 'psp_txn_id', v->>'psp_txn_id',
    'next_action', CASE WHEN jsonb_typeof(v->'next_action') = 'object' THEN v->'next_action' END,
    'event', CASE WHEN r.operation = 'query' AND v_kind IS NOT NULL THEN jsonb_build_object(
               'event_id', 'query:' || r.id, 'type', v->>'status', 'kind', v_kind,
               'order_ref', o.id::text, 'psp_txn_id', v->>'psp_txn_id',
               'amount', coalesce(v->>'amount', o.amount::text), 'currency', v->>'currency') END);
END $$;

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
