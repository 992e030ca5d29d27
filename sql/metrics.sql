-- pay.metrics(): counters in shared memory (this cluster preloads pay),
-- counted when the transaction commits, bounded labels, and the gauges.
-- Counters are per cluster and other tests count too: every check is a
-- difference across the statements under test.
\getenv abs_srcdir PG_ABS_SRCDIR
\set master_key :abs_srcdir '/test/keys/master-a.hex'
SET pay.master_key_file = :'master_key';

-- The value of one sample line ("name{labels} value"), 0 when absent.
CREATE FUNCTION pg_temp.sample(p_series text) RETURNS numeric LANGUAGE sql AS $$
  SELECT coalesce(sum(split_part(l, ' ', 2)::numeric), 0)
    FROM regexp_split_to_table(pay.metrics(), E'\n') l
   WHERE l NOT LIKE '#%' AND split_part(l, ' ', 1) = p_series $$;
CREATE TEMP TABLE seen (series text PRIMARY KEY, value numeric);
-- Remember the current values of some series; pg_temp.delta tells how much they grew.
CREATE FUNCTION pg_temp.mark(VARIADIC p_series text[]) RETURNS void LANGUAGE sql AS $$
  INSERT INTO seen SELECT s, pg_temp.sample(s) FROM unnest(p_series) s
    ON CONFLICT (series) DO UPDATE SET value = excluded.value $$;
CREATE FUNCTION pg_temp.delta(p_series text) RETURNS numeric LANGUAGE sql AS $$
  SELECT pg_temp.sample(p_series) - (SELECT value FROM seen WHERE series = p_series) $$;

SELECT pg_temp.sample('pay_metrics_available') AS available;
-- every family is announced with HELP and TYPE
SELECT l FROM regexp_split_to_table(pay.metrics(), E'\n') l WHERE l LIKE '# TYPE %' ORDER BY l;

SELECT pay.create_merchant('met_shop', 'Metrics Shop') > 0 AS merchant;
SELECT pay.create_gateway('met_stripe', 'stripe') > 0 AS gateway;
SELECT pay.set_secret('gateway:met_stripe', 'webhook_secret', 'whsec_metrics_0123456789');

-- orders created: counted at commit, not when rolled back (also a savepoint's)
SELECT pg_temp.mark('pay_orders_created_total', 'pay_order_transitions_total{to="paid"}',
                    'pay_order_transitions_total{to="cancelled"}');
SELECT count(*) FROM pay.create_order('met_shop', 'M-1', 1000, 'USD', gateway => 'met_stripe');
BEGIN;
SELECT count(*) FROM pay.create_order('met_shop', 'M-2', 1000, 'USD');
ROLLBACK;
BEGIN;
SAVEPOINT a;
SELECT count(*) FROM pay.create_order('met_shop', 'M-3', 1000, 'USD');
ROLLBACK TO a;
SAVEPOINT b;
SELECT count(*) FROM pay.create_order('met_shop', 'M-4', 1000, 'USD');
RELEASE b;
COMMIT;
SELECT pg_temp.delta('pay_orders_created_total') AS created;

-- transitions by the status moved to
SELECT status FROM pay.cancel((SELECT id FROM pay.orders WHERE merchant_order_no = 'M-4'), 'metrics test');
BEGIN;
SELECT status FROM pay.mark_paid((SELECT id FROM pay.orders WHERE merchant_order_no = 'M-1'), 'pi_m1', 1000, 'USD');
ROLLBACK;
SELECT pg_temp.delta('pay_order_transitions_total{to="cancelled"}') AS cancelled,
       pg_temp.delta('pay_order_transitions_total{to="paid"}') AS paid_rolled_back;

-- callbacks by gateway and verdict: accepted, duplicate, a bad signature
-- (rejected and a signature failure), and a name that is no gateway
CREATE TEMP TABLE ev AS SELECT format(
  '{"id":"evt_met_1","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_m1","object":"payment_intent","amount":1000,"amount_received":1000,"currency":"usd","metadata":{"order_id":"%s"}}}}',
  (SELECT id FROM pay.orders WHERE merchant_order_no = 'M-1')) AS body;
SELECT pg_temp.mark('pay_callbacks_total{gateway="met_stripe",verdict="accepted"}',
                    'pay_callbacks_total{gateway="met_stripe",verdict="duplicate"}',
                    'pay_callbacks_total{gateway="met_stripe",verdict="rejected"}',
                    'pay_signature_failures_total{gateway="met_stripe"}',
                    'pay_callbacks_total{gateway="(unknown)",verdict="rejected"}',
                    'pay_order_transitions_total{to="paid"}');
SELECT a.http_status FROM ev, pay.handle_callback('met_stripe',
  jsonb_build_object('Content-Type', 'application/json', 'Stripe-Signature', pay.stripe_signature_header(ev.body, 'whsec_metrics_0123456789')), ev.body) a;
SELECT a.http_status FROM ev, pay.handle_callback('met_stripe',
  jsonb_build_object('Content-Type', 'application/json', 'Stripe-Signature', pay.stripe_signature_header(ev.body, 'whsec_metrics_0123456789')), ev.body) a;
SELECT a.http_status FROM ev, pay.handle_callback('met_stripe',
  jsonb_build_object('Content-Type', 'application/json', 'Stripe-Signature', pay.stripe_signature_header(ev.body, 'whsec_wrong')), ev.body) a;
SELECT http_status FROM pay.handle_callback('met_nosuch', '{}', 'x');
SELECT http_status FROM pay.handle_callback('met_nosuch_either', '{}', 'x');
SELECT pg_temp.delta('pay_callbacks_total{gateway="met_stripe",verdict="accepted"}') AS accepted,
       pg_temp.delta('pay_callbacks_total{gateway="met_stripe",verdict="duplicate"}') AS duplicate,
       pg_temp.delta('pay_callbacks_total{gateway="met_stripe",verdict="rejected"}') AS rejected,
       pg_temp.delta('pay_signature_failures_total{gateway="met_stripe"}') AS signature_failures,
       pg_temp.delta('pay_callbacks_total{gateway="(unknown)",verdict="rejected"}') AS unknown,
       pg_temp.delta('pay_order_transitions_total{to="paid"}') AS paid;
SELECT verdict, reason_code FROM pay.callbacks WHERE gateway = 'met_stripe' ORDER BY id;
-- names that are no gateway never become a label
SELECT count(*) AS nosuch_series FROM regexp_split_to_table(pay.metrics(), E'\n') l WHERE l LIKE '%met_nosuch%';

-- counters never decrease: purging the callbacks leaves them
DELETE FROM pay.callbacks WHERE gateway = 'met_stripe';
SELECT pg_temp.delta('pay_callbacks_total{gateway="met_stripe",verdict="accepted"}') AS accepted_after_purge;

-- pay.metrics_enabled = off: nothing is counted
SET pay.metrics_enabled = off;
SELECT pg_temp.mark('pay_orders_created_total');
SELECT count(*) FROM pay.create_order('met_shop', 'M-5', 1000, 'USD');
SELECT pg_temp.delta('pay_orders_created_total') AS created_while_off;
RESET pay.metrics_enabled;
SET ROLE pay_app;
SET pay.metrics_enabled = off;
RESET ROLE;

-- label values are bounded: gateways beyond the table count as (other)
SELECT count(pay.create_gateway('met_gw_' || i, 'stripe')) FROM generate_series(1, 40) i;
SELECT count(*) FROM generate_series(1, 40) i, pay.handle_callback('met_gw_' || i, '{}', 'x');
SELECT count(DISTINCT substring(l FROM 'gateway="([^"]*)"')) <= 34 AS bounded,
       bool_or(l LIKE '%gateway="(other)"%') AS has_other
  FROM regexp_split_to_table(pay.metrics(), E'\n') l WHERE l LIKE 'pay_callbacks_total%';

-- gauges: the outbox backlog as pay.outbox_backlog counts it
SELECT pg_temp.sample('pay_outbox_pending') = (SELECT sum(undelivered) FROM pay.outbox_backlog) AS pending_gauge;
SELECT pg_temp.sample('pay_oldest_pending_order_age_seconds') >= 0 AS age_gauge;

-- the scraper's role reads it, without any table grant
SET ROLE pay_callback;
SELECT pay.metrics() LIKE '%pay_callbacks_total{gateway="met_stripe",verdict="accepted"}%' AS scraped;
RESET ROLE;
SET ROLE pay_app;
SELECT pay.metrics();
RESET ROLE;
