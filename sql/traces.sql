-- W3C trace context: pay.traceparent (set locally, or a route function's
-- traceparent header) is stored with the rows a transaction creates, and
-- every outbound request carries it with a new span id.
\getenv abs_srcdir PG_ABS_SRCDIR
\set master_key :abs_srcdir '/test/keys/master-a.hex'
SET pay.master_key_file = :'master_key';
SELECT pay.create_merchant('tr_shop', 'Trace Shop', 'https://shop.example/notify') > 0 AS merchant;
SELECT pay.create_gateway('tr_gw', 'generic', 'https://psp.example/pay') > 0 AS gateway;

-- no trace: no trace id
SELECT trace_id IS NULL AS untraced FROM pay.create_order('tr_shop', 'T-0', 100, 'USD');

-- SET LOCAL: the order and the PSP request it queues share the trace id
BEGIN;
SET LOCAL pay.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
SELECT trace_id FROM pay.create_order('tr_shop', 'T-1', 100, 'USD', gateway => 'tr_gw');
SELECT pay.enqueue_psp_request(id, 'create_payment') > 0 AS queued FROM pay.orders WHERE merchant_order_no = 'T-1';
COMMIT;
SELECT o.trace_id = x.trace_id AS same_trace, x.kind
  FROM pay.orders o JOIN pay.outbox x ON x.order_id = o.id WHERE o.merchant_order_no = 'T-1';
-- it was transaction-local
SELECT current_setting('pay.traceparent') = '' AS reset_after_commit;

-- malformed: ignored, no trace (upper case, all-zero ids, version ff, wrong length, version 00 with extra)
SELECT v, pay._trace_id() IS NULL AS ignored
  FROM (VALUES ('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'),
               ('00-00000000000000000000000000000000-00f067aa0ba902b7-01'),
               ('00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'),
               ('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
               ('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1'),
               ('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'),
               ('garbage')) t(v),
       LATERAL (SELECT set_config('pay.traceparent', v, true)) s;
-- a later version may carry more fields
SELECT set_config('pay.traceparent', '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future', false) IS NOT NULL AS set,
       pay._trace_id() AS future_version;
RESET pay.traceparent;

-- the outbound request carries the trace id with a new span id each time
SELECT pay.set_secret('gateway:tr_gw', 'api_key', 'k') IS NULL AS secret;
SELECT h ~ '^traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$' AS traced,
       h <> 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' AS new_span
  FROM pay._outbox_requests(ARRAY(SELECT x.id FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id
                                   WHERE o.merchant_order_no = 'T-1')) r, unnest(r.headers) h
 WHERE h LIKE 'traceparent:%';
SELECT count(DISTINCT pay._traceparent('4bf92f3577b34da6a3ce929d0e0e4736')) AS distinct_spans
  FROM generate_series(1, 20);
SELECT pay._traceparent('not-an-id') IS NULL AS refused;

-- a callback that carries no trace takes its order's, and so does the
-- notification the payment queues
BEGIN;
SET LOCAL pay.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
SELECT trace_id FROM pay.create_order('tr_shop', 'T-2', 500, 'USD', gateway => 'tr_gw');
COMMIT;
SELECT pay.set_secret('gateway:tr_gw', 'webhook_secret', 'tr-secret');
CREATE FUNCTION pg_temp.generic_callback(p_order bigint, p_event text, p_extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
  SELECT p || jsonb_build_object('sign', pay.sign_params(p, 'tr-secret'))
    FROM (SELECT jsonb_build_object('event_id', p_event, 'out_trade_no', p_order::text, 'trade_no', 't-' || p_event,
                 'status', 'paid', 'amount', '500', 'currency', 'USD', 'nonce', 'nonce-' || p_event,
                 'timestamp', extract(epoch FROM now())::bigint::text) || p_extra AS p) s $$;
SELECT a.http_status FROM pay.orders o,
  pay.handle_callback('tr_gw', '{"Content-Type": "application/json"}',
                      pg_temp.generic_callback(o.id, 'ev-tr-2')::text) a
 WHERE o.merchant_order_no = 'T-2';
SELECT 'callback' AS row, c.verdict, c.trace_id FROM pay.callbacks c JOIN pay.orders o ON o.id = c.order_id
 WHERE o.merchant_order_no = 'T-2'
UNION ALL
SELECT x.kind, '', x.trace_id FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id
 WHERE o.merchant_order_no = 'T-2' ORDER BY 1;

SELECT verdict, reason_code, reason FROM pay.callbacks WHERE gateway = 'tr_gw' ORDER BY id;
-- a callback that carries a traceparent header stores that trace (the order keeps its own)
SELECT trace_id IS NULL AS untraced FROM pay.create_order('tr_shop', 'T-3', 500, 'USD', gateway => 'tr_gw');
SELECT a.http_status FROM pay.orders o,
  pay.handle_callback('tr_gw', '{"Content-Type": "application/json",
                                 "Traceparent": "00-11111111111111111111111111111111-2222222222222222-01"}',
                      pg_temp.generic_callback(o.id, 'ev-tr-3')::text) a
 WHERE o.merchant_order_no = 'T-3';
SELECT 'callback' AS row, c.trace_id FROM pay.callbacks c JOIN pay.orders o ON o.id = c.order_id
 WHERE o.merchant_order_no = 'T-3'
UNION ALL
SELECT x.kind, x.trace_id FROM pay.outbox x JOIN pay.orders o ON o.id = x.order_id
 WHERE o.merchant_order_no = 'T-3' ORDER BY 1;
-- handle_callback adopted it for its own statement only
SELECT current_setting('pay.traceparent') = '' AS not_leaked;

-- one trace id finds the create, the PSP request, the callback and the notification
SELECT 'order' AS what, count(*) FROM pay.orders WHERE trace_id = '0af7651916cd43dd8448eb211c80319c'
UNION ALL SELECT 'callback', count(*) FROM pay.callbacks WHERE trace_id = '0af7651916cd43dd8448eb211c80319c'
UNION ALL SELECT 'outbox', count(*) FROM pay.outbox WHERE trace_id = '0af7651916cd43dd8448eb211c80319c';
