-- Fetching a statement through the dispatcher: the requests each step
-- sends and what each answer does (the dispatcher itself is tested end to
-- end by test/demo against the fake PSP's Stripe reporting API).
\getenv abs_srcdir PG_ABS_SRCDIR
\set master_key :abs_srcdir '/test/keys/master-a.hex'
SET pay.master_key_file = :'master_key';
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

SELECT pay.create_gateway('sf_stripe', 'stripe', 'https://psp.example') > 0 AS gateway,
       pay.create_gateway('sf_wechat', 'wechatpay', 'https://psp.example') > 0 AS wechat;
SELECT pay.set_secret('gateway:sf_stripe', 'api_key', 'sk_test_statement_fetch');

SELECT pg_temp.err($$SELECT pay.fetch_statement('sf_nowhere', '2026-12-01')$$) AS unknown_gateway;
SELECT pg_temp.err($$SELECT pay.fetch_statement('sf_wechat', '2026-12-01')$$) AS wechat_not_fetched;
SELECT pg_temp.err($$SELECT pay.fetch_statement('sf_stripe', NULL)$$) AS no_day;

-- one UTC day; asking again queues nothing new
SELECT pay.fetch_statement('sf_stripe', '2026-12-01') AS run_row \gset
SELECT pay.fetch_statement('sf_stripe', '2026-12-01') = :run_row AS same_row;
SELECT kind, destination, operation, order_id, params, idempotency_key, state FROM pay.outbox WHERE id = :run_row;
SELECT method, url, headers, replace(body, '&', E'&\n') AS body
  FROM pay._outbox_request((SELECT o FROM pay.outbox o WHERE id = :run_row));

-- the answer: a report still being prepared is polled a minute later
SELECT pay._outbox_apply(:run_row, 200, '{"id": "frr_1", "object": "reporting.report_run", "status": "pending"}') AS pending;
SELECT operation, params, next_attempt_at > now() + interval '50 seconds' AS in_a_minute
  FROM pay.outbox WHERE operation = 'fetch_statement_poll';
SELECT method, url, headers FROM pay._outbox_request((SELECT o FROM pay.outbox o WHERE operation = 'fetch_statement_poll'));
-- a file on another host: refused (the API key goes nowhere else)
SELECT pay._outbox_apply(:run_row, 200, '{"id": "frr_1", "status": "succeeded",
  "result": {"url": "https://evil.example/v1/files/file_1/contents"}}') AS other_host;
SELECT pay._outbox_apply(:run_row, 200, '{"id": "frr_1", "status": "succeeded",
  "result": {"url": "https://psp.example.evil/v1/files/file_1/contents"}}') AS lookalike_host;
SELECT pay._outbox_apply(:run_row, 200, '{"id": "frr_1", "status": "failed"}') AS failed;
SELECT pay._outbox_apply(:run_row, 200, 'not json') AS not_json;
SELECT count(*) AS file_rows FROM pay.outbox WHERE operation = 'fetch_statement_file';
-- succeeded: the file is fetched from the gateway's origin (or files.stripe.com)
SELECT pay._outbox_apply(:run_row, 200, '{"id": "frr_1", "status": "succeeded",
  "result": {"url": "https://psp.example/v1/files/file_1/contents"}}') AS succeeded;
SELECT id AS file_row FROM pay.outbox WHERE operation = 'fetch_statement_file' \gset
SELECT params, idempotency_key FROM pay.outbox WHERE id = :file_row;
SELECT method, url, headers, body FROM pay._outbox_request((SELECT o FROM pay.outbox o WHERE id = :file_row));
-- the file: imported; a malformed one is refused (the row goes dead, nothing imported)
SELECT pay._outbox_apply(:file_row, 200, E'balance_transaction_id,created_utc,currency,gross,fee,reporting_category,source_id\ntxn_1,2026-12-01 10:00:00,usd,x,0,payout,po_1\n') AS malformed;
SELECT count(*) AS statements FROM pay.statements WHERE gateway = 'sf_stripe';
SELECT pay._outbox_apply(:file_row, 200, E'balance_transaction_id,created_utc,currency,gross,fee,reporting_category,source_id\ntxn_1,2026-12-01 10:00:00,usd,-12.00,0,payout,po_1\n') AS imported;
SELECT format, line_count FROM pay.statements WHERE gateway = 'sf_stripe';
SELECT pay.balance('bank:sf_stripe:USD') AS bank;
