-- The janitor: asks the PSP about what pay cannot know by itself.
--
-- A callback can be lost, an answer can time out, a request can die after
-- its retries without anyone knowing whether the PSP acted on it.  The
-- janitor queues a query (an outbox row, sent by the dispatcher) for each
-- such thing; the query's verified answer moves the order or refund exactly
-- as the equivalent callback would (81_psp_answers.sql).  What it asks about:
--
--   a pending order routed to a gateway, created more than older_than ago:
--     while it is pending its payment's outcome is unknown, whatever the
--     PSP last said (the buyer may have paid since; the callback may be lost);
--   an order whose create_payment request died without an answer
--     (transport errors, timeouts, 408, 429, 5xx), or whose close request
--     died at all (a PSP refuses to close a trade that was paid), more than
--     older_than ago: the PSP may have created or paid the trade, or not
--     closed it.  Pending orders are the first case's; these are cancelled
--     or failed ones;
--   a refund the PSP has neither confirmed nor refused (its request died
--     without an answer, or the PSP said it is processing), last asked
--     about more than older_than ago: a query_refund naming it.
--
-- Nothing is asked twice at once: a thing with a query pending or in flight
-- is skipped.  A query's idempotency key names the period of older_than it
-- was queued in (now() divided by older_than), so a run in the same period
-- finds the key taken and queues nothing, and a run in a later period may
-- ask again.  A dead request stops being asked about once a query sent
-- after its last attempt was answered, applied or refused for good (a 4xx
-- such as "no such trade" is an answer too): its outcome is known then; a
-- refund, once the PSP said succeeded or failed (refunds.psp_status), or
-- refused the last query about it for good (a dead letter for a person).
-- The rows are locked FOR NO KEY UPDATE SKIP LOCKED: two janitors take
-- different rows, and an order being paid right now is left to the next run.

-- The period of older_than that now() is in: part of a janitor query's key.
CREATE FUNCTION pay._janitor_period(p_older_than interval) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN floor(extract(epoch FROM now()) / extract(epoch FROM p_older_than))::numeric::text;

-- Whether a dead request's last answer leaves its outcome unknown: no HTTP
-- status (a transport error or timeout), or a status that says "try again"
-- (408, 429, 5xx).  A 4xx is the PSP refusing: known.
CREATE FUNCTION pay._outcome_unknown(p_status integer) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
RETURN p_status IS NULL OR p_status IN (408, 429) OR p_status >= 500;

-- Whether a query of the order sent after p_since got an answer: applied
-- (done), or refused for good (dead with a 4xx such as "no such trade", or
-- with a 2xx whose answer could not be applied: a person must look, asking
-- again would get the same).
CREATE FUNCTION pay._query_answered_since(p_order bigint, p_since timestamptz) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT 1 FROM pay.outbox q
                WHERE q.order_id = p_order AND q.kind = 'psp_request' AND q.operation = 'query'
                  AND q.last_attempt_at > p_since
                  AND (q.state = 'done' OR (q.state = 'dead' AND NOT pay._outcome_unknown(q.last_status))));

-- Whether the order's gateway can be asked about it: its provider sends
-- p_operation requests (the registry; Adyen's API has no query).
CREATE FUNCTION pay._gateway_queryable(p_gateway text, p_operation text DEFAULT 'query') RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT 1 FROM pay.gateways g
                WHERE g.name = p_gateway AND g.kind = ANY (pay._provider_operation_kinds(p_operation)));

-- A PSP request of the order that is waiting to be sent or being sent:
-- a query now would cross it.
CREATE FUNCTION pay._psp_request_open(p_order bigint, p_operations text[]) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT 1 FROM pay.outbox x
                WHERE x.order_id = p_order AND x.kind = 'psp_request'
                  AND x.operation = ANY (p_operations) AND x.state IN ('pending', 'in_flight'));

-- (a) Pending orders routed to a gateway, created before p_before, whose
-- create request is not waiting to be sent and that have no query open.
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

-- (c) Orders no longer pending whose create_payment request went dead
-- without an answer, or whose close request went dead, before p_before, still at that gateway, with no
-- query answered since that request's last attempt and none open.
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

-- (b) Refunds the PSP has not confirmed nor refused (psp_status still
-- requested: the request died without an answer, or the PSP answered that
-- it is processing), whose last request about them (the refund itself or a
-- query_refund) was before p_before and did not end in a refusal, with
-- none open.
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
-- the refunds still waiting for the PSP's word: few, whatever the table's size
CREATE INDEX refunds_psp_requested ON pay.refunds (id) WHERE psp_status = 'requested';

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
COMMENT ON FUNCTION pay.run_janitor(interval, integer) IS
  'queues PSP queries (at most max_orders) about what pay cannot know: pending orders created more than older_than ago, orders whose create or close request died without an answer, refunds the PSP has not confirmed, last asked about more than older_than ago; once per period of older_than, never while one is open; returns how many it queued';

GRANT EXECUTE ON FUNCTION pay.run_janitor(interval, integer) TO pay_admin;
