-- The outbox (src/sql/80_outbox.sql): form encoding against Python's urllib
-- (test/vectors/form_encode.py), queuing and its validation, the order
-- trigger, the bound, dead letters and re-driving, purging, circuits, the
-- request builders' output, and the dispatcher's status in a database it
-- does not serve.  Delivery itself is tested by test/t/05*_dispatcher*.pl.
\getenv abs_srcdir PG_ABS_SRCDIR
\set master_key :abs_srcdir '/test/keys/master-a.hex'
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
-- ids depend on the files run before this one: N stands for any number
CREATE FUNCTION pg_temp.n(t text) RETURNS text LANGUAGE sql AS $$ SELECT regexp_replace(t, '[0-9]+', 'N', 'g') $$;

-- 1. form_urlencode: every known answer matches
SELECT n, pay.form_urlencode(params) = expected AS matches, pay.form_urlencode(params) AS encoded
  FROM (VALUES
  (1, '{"a": "1", "b": "2"}'::jsonb, 'a=1&b=2'),
  (2, '{"b": "x y", "a": "1&2=3", "c": null, "d": ""}'::jsonb, 'a=1%262%3D3&b=x+y&d='),
  (3, '{"amount": "1000", "currency": "USD", "event_id": "evt_7_paid", "id": "7", "merchant_order_no": "A/B+C?D", "status": "paid"}'::jsonb, 'amount=1000&currency=USD&event_id=evt_7_paid&id=7&merchant_order_no=A%2FB%2BC%3FD&status=paid'),
  (4, '{"é": "ü€", "z": "~*-._!''()"}'::jsonb, 'z=%7E*-._%21%27%28%29&%C3%A9=%C3%BC%E2%82%AC'),
  (5, '{"n": 12.5, "t": true, "f": false, "i": -3}'::jsonb, 'f=false&i=-3&n=12.5&t=true'),
  (6, '{"o": {"k": [1, "v w"], "a": null}, "metadata[order_id]": "42"}'::jsonb, 'metadata%5Border_id%5D=42&o=%7B%22a%22%3Anull%2C%22k%22%3A%5B1%2C%22v+w%22%5D%7D'),
  (7, '{"ab": "1", "a": "2", "b": "3", "aa": "4", "B": "5"}'::jsonb, 'B=5&a=2&aa=4&ab=1&b=3'),
  (8, '{}'::jsonb, '')
  ) AS v(n, params, expected) ORDER BY n;
SELECT pg_temp.err($$SELECT pay.form_urlencode('[1, 2]')$$) AS array_refused;

-- 2. queuing PSP requests: validation
SELECT pay.create_merchant('ob_shop', 'Outbox Shop', 'https://shop.example/notify') > 0 AS shop;
SELECT pay.create_merchant('ob_quiet', 'No notifications') > 0 AS quiet;
SELECT pay.create_gateway('ob_gen', 'generic', 'https://psp.example/api') > 0 AS gateway;
SELECT id AS o1 FROM pay.create_order('ob_shop', 'OB-1', 1500, 'USD', gateway => 'ob_gen') \gset
SELECT id AS o2 FROM pay.create_order('ob_shop', 'OB-2', 700, 'USD') \gset
SELECT pg_temp.err(format($$SELECT pay.enqueue_psp_request(%s, 'charge')$$, :o1)) AS bad_operation;
SELECT pg_temp.err($$SELECT pay.enqueue_psp_request(-1, 'query')$$) AS unknown_order;
SELECT pg_temp.n(pg_temp.err(format($$SELECT pay.enqueue_psp_request(%s, 'query')$$, :o2))) AS no_gateway;
SELECT pg_temp.err(format($$SELECT pay.enqueue_psp_request(%s, 'refund')$$, :o1)) AS refund_without_id;
SELECT pg_temp.n(pg_temp.err(format($$SELECT pay.enqueue_psp_request(%s, 'refund', '{"refund_id": 999999}')$$, :o1))) AS refund_of_another_order;
SELECT pg_temp.err(format($$SELECT pay.enqueue_psp_request(%s, 'query', '[]')$$, :o1)) AS params_not_object;
SELECT pay.enqueue_psp_request(:o1, 'create_payment') AS c1 \gset
SELECT pay.enqueue_psp_request(:o1, 'create_payment') = :c1 AS same_request_queued_once;
SELECT pg_temp.n(pg_temp.err(format($$SELECT pay.enqueue_psp_request(%s, 'create_payment', '{"extra": {"x": "1"}}')$$, :o1))) AS same_key_other_params;
SELECT pay.enqueue_psp_request(:o1, 'query') <> pay.enqueue_psp_request(:o1, 'query') AS every_query_is_sent;
SELECT kind, destination, operation, pg_temp.n(idempotency_key) AS idempotency_key, state, attempts, attempts_max
  FROM pay.outbox WHERE order_id = :o1 ORDER BY id;

-- 3. merchant notifications: the trigger (paid, refunded, failed), pay.refund (one per
-- refund) and the function
SELECT pg_temp.err(format($$SELECT pay.enqueue_merchant_notification(%s, 'Paid!')$$, :o2)) AS bad_event;
SELECT pg_temp.err($$SELECT pay.enqueue_merchant_notification(-1, 'paid')$$) AS unknown_order;
SELECT status FROM pay.mark_paid(:o2, 'ob-txn-2', 700, 'USD');
SELECT operation, destination, pg_temp.n((params - 'id')::text) AS params, pg_temp.n(idempotency_key) AS idempotency_key
  FROM pay.outbox WHERE order_id = :o2 ORDER BY id;
SELECT pay.refund(:o2, 300) > 0 AS partial_refund;
SELECT count(*) AS after_partial_refund FROM pay.outbox WHERE order_id = :o2;
SELECT pay.refund(:o2, 400) > 0 AS full_refund;
SELECT pg_temp.n(string_agg(operation, ',' ORDER BY id)) AS after_full_refund FROM pay.outbox WHERE order_id = :o2;
SELECT pay.enqueue_merchant_notification(:o2, 'paid') = (SELECT id FROM pay.outbox WHERE idempotency_key = 'evt_' || :o2 || '_paid')
  AS repeated_event_same_row;
SELECT id AS o3 FROM pay.create_order('ob_quiet', 'OB-3', 100, 'USD') \gset
SELECT status FROM pay.mark_paid(:o3, 'ob-txn-3', 100, 'USD');
SELECT pay.enqueue_merchant_notification(:o3, 'paid') IS NULL AS no_notify_url_no_row,
       (SELECT count(*) FROM pay.outbox WHERE order_id = :o3) AS rows_for_quiet_merchant;

-- 4. the bound: undelivered rows are counted exactly; past the limit, PY029
SELECT (SELECT sum(undelivered) FROM pay.outbox_backlog) =
       (SELECT count(*) FROM pay.outbox WHERE state IN ('pending', 'in_flight')) AS backlog_exact;
BEGIN;
SELECT set_config('pay.outbox_pending_max', (SELECT sum(undelivered) FROM pay.outbox_backlog)::text, true) IS NOT NULL AS limit_set;
SELECT regexp_replace(pg_temp.err(format($$SELECT pay.enqueue_psp_request(%s, 'close')$$, :o1)), '[0-9]+', 'N', 'g') AS full;
ROLLBACK;
SELECT pg_temp.err('TRUNCATE pay.outbox') AS truncate_refused;

-- 5. dead letters, re-driving, purging
UPDATE pay.outbox SET state = 'dead', finished_at = now(), attempts = 3, last_status = 404, last_error = 'HTTP 404 (permanent)'
 WHERE id = :c1;
SELECT kind, operation, attempts, last_status, last_error FROM pay.outbox_dead_letters WHERE id = :c1;
SELECT state, attempts, finished_at IS NULL AS unfinished, next_attempt_at <= now() AS due FROM pay.redrive(:c1);
SELECT pg_temp.err('SELECT pay.redrive(-5)') AS redrive_unknown;
UPDATE pay.outbox SET state = 'done', finished_at = now() - interval '40 days' WHERE id = :c1;
SELECT pg_temp.n(pg_temp.err(format('SELECT pay.redrive(%s)', :c1))) AS redrive_done;
INSERT INTO pay.outbox_attempts (outbox_id, attempt, started_at, outcome) VALUES (:c1, 1, now(), 'done');
SELECT pay.purge_outbox('50 days') AS purged_nothing_younger;
SELECT pay.purge_outbox('30 days') AS purged;
SELECT (SELECT count(*) FROM pay.outbox WHERE id = :c1) AS row_left,
       (SELECT count(*) FROM pay.outbox_attempts WHERE outbox_id = :c1) AS attempts_left,
       (SELECT count(*) FROM pay.outbox WHERE order_id = :o1) AS other_rows_of_the_order;
SELECT (SELECT sum(undelivered) FROM pay.outbox_backlog) =
       (SELECT count(*) FROM pay.outbox WHERE state IN ('pending', 'in_flight')) AS backlog_still_exact;

-- 6. circuits as routing sees them
INSERT INTO pay.circuit_breakers (destination, state, consecutive_failures, opened_at, open_until)
VALUES ('gateway:ob_gen', 'open', 5, now(), now() + interval '1 minute');
SELECT pay.gateway_available('ob_gen') AS open_unavailable, pay.gateway_available('ob_other') AS unknown_available;
UPDATE pay.circuit_breakers SET open_until = now() - interval '1 second' WHERE destination = 'gateway:ob_gen';
SELECT state AS after_cooldown, pay.gateway_available('ob_gen') AS available FROM pay.circuits WHERE destination = 'gateway:ob_gen';
DELETE FROM pay.circuit_breakers WHERE destination = 'gateway:ob_gen';

-- 6b. routing skips a gateway whose circuit is open.  Rules for JPY: rt_a
-- first, rt_b second.  Each change of rules, gateways or circuits shows in
-- the next order of this session (rules and gateways are cached per
-- backend and dropped on every change of their tables).
SELECT pay.create_gateway('rt_a', 'generic', 'https://a.example') > 0 AS a,
       pay.create_gateway('rt_b', 'generic', 'https://b.example') > 0 AS b;
SELECT pay.add_routing_rule('rt_a', currency => 'JPY', priority => 1) > 0 AS rule_a,
       pay.add_routing_rule('rt_b', currency => 'JPY', priority => 2) > 0 AS rule_b;
SELECT gateway AS both_closed FROM pay.create_order('ob_quiet', 'RT-1', 100, 'JPY');
INSERT INTO pay.circuit_breakers (destination, state, consecutive_failures, opened_at, open_until)
VALUES ('gateway:rt_a', 'open', 5, now(), now() + interval '1 minute');
SELECT gateway AS a_open FROM pay.create_order('ob_quiet', 'RT-2', 100, 'JPY');
INSERT INTO pay.circuit_breakers (destination, state, consecutive_failures, opened_at, open_until)
VALUES ('gateway:rt_b', 'open', 5, now(), now() + interval '1 minute');
-- every matching circuit open: the first matching gateway still takes it
SELECT gateway AS both_open FROM pay.create_order('ob_quiet', 'RT-3', 100, 'JPY');
DELETE FROM pay.circuit_breakers WHERE destination IN ('gateway:rt_a', 'gateway:rt_b');
UPDATE pay.gateways SET enabled = false WHERE name = 'rt_a';
SELECT gateway AS a_disabled FROM pay.create_order('ob_quiet', 'RT-4', 100, 'JPY');
SELECT pg_temp.err($$SELECT pay.create_order('ob_quiet', 'RT-5', 100, 'JPY', gateway => 'rt_a')$$) AS asked_for_disabled;
UPDATE pay.gateways SET enabled = true WHERE name = 'rt_a';
UPDATE pay.routing_rules SET priority = 3 WHERE gateway_id = (SELECT id FROM pay.gateways WHERE name = 'rt_a');
SELECT gateway AS a_demoted FROM pay.create_order('ob_quiet', 'RT-6', 100, 'JPY');
DELETE FROM pay.routing_rules WHERE currency = 'JPY';
SELECT gateway IS NULL AS no_rule FROM pay.create_order('ob_quiet', 'RT-7', 100, 'JPY');

-- 7. request builders: a generic PSP request and a signed merchant notification
SELECT pay.enqueue_psp_request(:o1, 'create_payment', '{"extra": {"note": "again"}}') AS c2 \gset
SELECT (r).method, (r).url, pg_temp.n((r).headers::text) AS headers, pg_temp.n(((r).body::jsonb - 'order_id')::text) AS body
  FROM (SELECT pay._outbox_request(o) AS r FROM pay.outbox o WHERE o.id = :c2) s;
DELETE FROM pay.secrets;
DELETE FROM pay.master_keys;
SET pay.master_key_file = :'master_key';
SELECT pay.set_secret('merchant:ob_shop', 'api_secret', 'ob-secret');
-- (MATERIALIZED: one request, not one per column; each has its own nonce)
WITH q AS MATERIALIZED (SELECT (pay._outbox_request(o)).* FROM pay.outbox o WHERE o.idempotency_key = 'evt_' || :o2 || '_paid'),
     f AS (SELECT q.*, pay.parse_form(q.body) AS form FROM q)
SELECT method, url, pg_temp.n(headers::text) AS headers,
       pg_temp.n((form - ARRAY['id', 'timestamp', 'nonce', 'sign'])::text) AS fields,
       form->>'sign' = pay.hmac_sha256_hex('ob-secret', pay.canonical_query(form)) AS signed_with_api_secret,
       form->>'sign' = pay.hmac_sha256_hex('another secret', pay.canonical_query(form)) AS signed_with_another,
       abs((form->>'timestamp')::bigint - extract(epoch FROM now())) < 60 AS timestamp_now,
       form->>'nonce' ~ '^[0-9a-f]{32}$' AS nonce
  FROM f;
SELECT id AS n2 FROM pay.outbox WHERE idempotency_key = 'evt_' || :o2 || '_paid' \gset
-- a merchant's notify_url changed in the transaction is the one the next request goes to
BEGIN;
SELECT (pay._build_merchant_notification(o, 'k')).url = m.notify_url AS to_notify_url
  FROM pay.outbox o, pay.merchants m WHERE o.id = :n2 AND m.code = 'ob_shop';
UPDATE pay.merchants SET notify_url = notify_url || '/moved' WHERE code = 'ob_shop';
SELECT (pay._build_merchant_notification(o, 'k')).url LIKE '%/moved' AS to_the_new_url FROM pay.outbox o WHERE o.id = :n2;
UPDATE pay.merchants SET notify_url = NULL WHERE code = 'ob_shop';
SELECT pg_temp.err(format('SELECT pay._build_merchant_notification(o) FROM pay.outbox o WHERE o.id = %s', :n2));
ROLLBACK;
SELECT regexp_replace(error, '[0-9]+', 'N', 'g') AS error, url IS NOT NULL AS built
  FROM pay._outbox_requests(ARRAY[:n2, :c2]) ORDER BY id;
DELETE FROM pay.secrets;
SELECT regexp_replace(error, '\d+', 'N', 'g') AS without_secret FROM pay._outbox_requests(ARRAY[:n2]);
RESET pay.master_key_file;
DELETE FROM pay.master_keys;

-- 8. the dispatcher serves pay.database (postgres), not this database
SELECT running, preloaded, database, detail FROM pay.dispatcher;

-- 8. the rules of an outbox row hold for every writer (a C trigger, not
-- CHECK constraints): each bad row is refused with 23514 naming the column
SELECT pg_temp.err(format($$INSERT INTO pay.outbox (kind, destination, operation, idempotency_key, attempts_max, params, state, attempts, claimed_at, finished_at)
                            VALUES (%L, %L, %L, %L, %s, %L, %L, %s, %s, %s)$$,
                          k, d, op, key, amax, p, st, att, ca, fa)) AS refused
  FROM (VALUES
    ('refund', 'merchant:m', 'paid', 'x1', 5, '{}', 'pending', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:', 'paid', 'x2', 5, '{}', 'pending', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'shop:m', 'paid', 'x3', 5, '{}', 'pending', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:a b', 'paid', 'x4', 5, '{}', 'pending', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:m', 'Paid', 'x5', 5, '{}', 'pending', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:m', 'paid', 'x6', 5, '[1]', 'pending', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:m', 'paid', '', 5, '{}', 'pending', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:m', 'paid', repeat('k', 256), 5, '{}', 'pending', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:m', 'paid', 'x9', 0, '{}', 'pending', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:m', 'paid', 'x10', 5, '{}', 'sent', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:m', 'paid', 'x11', 5, '{}', 'pending', -1, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:m', 'paid', 'x12', 5, '{}', 'in_flight', 0, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:m', 'paid', 'x13', 5, '{}', 'pending', 0, 'now()', 'NULL'),
    ('merchant_notification', 'merchant:m', 'paid', 'x14', 5, '{}', 'done', 1, 'NULL', 'NULL'),
    ('merchant_notification', 'merchant:m', 'paid', 'x15', 5, '{}', 'pending', 0, 'NULL', 'now()')
  ) AS t(k, d, op, key, amax, p, st, att, ca, fa);
SELECT count(*) AS none_written FROM pay.outbox WHERE idempotency_key ~ '^(x[0-9]+|k+)?$';
-- and an UPDATE that breaks them, by the owner, too
SELECT pg_temp.err($$UPDATE pay.outbox SET state = 'done' WHERE id = (SELECT min(id) FROM pay.outbox WHERE state = 'pending')$$) AS done_without_finished_at;
