-- Checkout: the buyer's next step from the PSP's answer to an order's create
-- request (pay.orders.next_action), and waiting for it without polling.

CREATE FUNCTION pay.next_action(order_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_merchant bigint;
  v_action jsonb;
BEGIN
  SELECT o.merchant_id, o.next_action INTO v_merchant, v_action FROM pay.orders o WHERE o.id = next_action.order_id;
  -- to a caller bound to other merchants (53_merchant_binding.sql) it does not exist
  IF NOT FOUND OR NOT pay._acts_for(v_merchant) THEN
    RAISE EXCEPTION 'order_id: order % does not exist', coalesce(next_action.order_id::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v_action;
END $$;
COMMENT ON FUNCTION pay.next_action(bigint) IS
  'the buyer''s next step from the PSP''s answer to the order''s create request (member type: qr_code, code_url, client_secret or redirect); NULL until the PSP answered';

-- src/next_action_wait.c.  VOLATILE: every read takes a new snapshot.
CREATE FUNCTION pay.wait_next_action(order_id bigint, timeout interval) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'pay_wait_next_action' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION pay.wait_next_action(bigint, interval) IS
  'the order''s next_action, waiting up to timeout (0 to 10 minutes) for the PSP''s answer; at once for an order that has one or is no longer pending (its next_action as stored, possibly NULL); NULL on timeout. Woken at the commit that stores the answer (needs pay in shared_preload_libraries; without it, it sleeps the whole timeout). A REPEATABLE READ transaction does not see the answer.';

-- The merchant API's wait (POST /api/v1/payments): true once the order has
-- a next_action, is no longer pending, or has no create request queued or
-- in flight (the PSP answered without a next step, or the request failed);
-- false at the timeout.  Merchant binding as wait_next_action.
CREATE FUNCTION pay._await_checkout(order_id bigint, timeout interval) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pay_await_checkout' LANGUAGE C VOLATILE;

-- Wakes the waiters of an order when a transaction commits that changed
-- its next_action or status, or the state of its create request
-- (src/next_action_wait.c; the argument names the order id's column).
CREATE FUNCTION pay._next_action_wake() RETURNS trigger
    AS 'MODULE_PATHNAME', 'pay_next_action_wake' LANGUAGE C;
CREATE TRIGGER orders_next_action_wake AFTER UPDATE ON pay.orders
    FOR EACH ROW
    WHEN (OLD.next_action IS DISTINCT FROM NEW.next_action OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION pay._next_action_wake('id');
ALTER TABLE pay.orders ENABLE ALWAYS TRIGGER orders_next_action_wake;
CREATE TRIGGER outbox_create_answered_wake AFTER UPDATE ON pay.outbox
    FOR EACH ROW
    WHEN (NEW.operation = 'create_payment' AND NEW.order_id IS NOT NULL AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION pay._next_action_wake('order_id');
ALTER TABLE pay.outbox ENABLE ALWAYS TRIGGER outbox_create_answered_wake;

GRANT EXECUTE ON FUNCTION pay.next_action(bigint), pay.wait_next_action(bigint, interval) TO pay_app;
