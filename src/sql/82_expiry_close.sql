-- Closing at the PSP the trades of orders that expired here
-- (pay.expire_orders, 55_order_api.sql, calls it in its transaction).
--
-- An order cancelled here must not stay payable there: the buyer still has
-- the QR code or the client secret.  For each cancelled order routed to a
-- gateway:
--
--   its create request never went out (pending, not yet attempted): it is
--     retired instead (done, last_error says why) and nothing is closed —
--     the PSP never heard of the trade, and now never will;
--   it went out (or is going out): a close request is queued (Alipay
--     alipay.trade.close and WeChat Pay's close by out_trade_no, Stripe's
--     cancel of the PaymentIntent);
--   no create request at all: nothing is closed, pay never asked the PSP.
--
-- Stripe knows a PaymentIntent only by its id, which the create answer
-- gives (orders.psp_txn_id).  When that answer has not been stored (it is
-- still in flight, or it was lost), a query is queued too: its answer
-- finds the intent by metadata[order_id] and stores its id, and the close
-- request, which cannot be built without it, is retried on the PSP
-- schedule until it can be (about five minutes with the defaults).
--
-- A payment that still arrives for the cancelled order (the buyer paid at
-- the last second, before the close) is booked, booked back and refunded
-- at the PSP by the callbacks' path (pay._book_and_return).
CREATE FUNCTION pay._close_expired(p_orders bigint[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o record;
  n integer := 0;
BEGIN
  IF coalesce(cardinality(p_orders), 0) = 0 THEN
    RETURN 0;
  END IF;
  -- A row the dispatcher is claiming right now is waited for and then,
  -- being in flight, no longer matches: its order gets a close below.
  UPDATE pay.outbox x
     SET state = 'done', finished_at = now(),
         last_error = 'not sent: the order was cancelled (expired) before the request went out'
   WHERE x.order_id = ANY (p_orders) AND x.kind = 'psp_request' AND x.operation = 'create_payment'
     AND x.state = 'pending' AND x.attempts = 0;
  FOR o IN SELECT d.id, d.gateway, d.psp_txn_id, g.kind
             FROM pay.orders d JOIN pay.gateways g ON g.name = d.gateway
            WHERE d.id = ANY (p_orders) AND d.status = 'cancelled'
              AND g.kind = ANY (pay._provider_operation_kinds('close'))
              AND EXISTS (SELECT 1 FROM pay.outbox x
                           WHERE x.order_id = d.id AND x.kind = 'psp_request' AND x.operation = 'create_payment'
                             AND x.destination = 'gateway:' || d.gateway
                             AND (x.attempts > 0 OR x.state = 'in_flight'))
            ORDER BY d.id LOOP
    IF o.kind = ANY (pay._provider_kinds('close_needs_psp_id')) AND o.psp_txn_id IS NULL THEN
      PERFORM pay._enqueue('psp_request', 'gateway:' || o.gateway, 'query', o.id, '{}',
                           'psp_' || o.id || '_query_close', false);
    END IF;
    PERFORM pay._enqueue('psp_request', 'gateway:' || o.gateway, 'close', o.id, '{}',
                         'psp_' || o.id || '_close', false);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
COMMENT ON FUNCTION pay._close_expired(bigint[]) IS
  'for orders just cancelled by expiry: retires create requests not yet sent, queues the close of every trade the PSP may know (a provider whose close names its own id, Stripe, with that id unknown: a query too); returns how many closes';
