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
SELECT pay.create_gateway('sf_alipay', 'alipay', 'https://psp.example') > 0 AS alipay;
SELECT pg_temp.err($$SELECT pay.fetch_statement('sf_alipay', '2026-12-01')$$) AS alipay_not_fetched;
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

-- WeChat Pay: the trade bill of a day, its SHA-1 named by the (signed) answer
SELECT pay._sha1_hex('abc'::bytea) = 'a9993e364706816aba3e25717850c26c9cd0d89d' AS sha1_fips_vector;
UPDATE pay.gateways SET options = '{"mchid": "1900000001", "serial_no": "3775B6A45ACD588826D15E583A95F5DD2C7C39A1"}'
 WHERE name = 'sf_wechat';
SELECT pay.set_secret('gateway:sf_wechat', 'private_key',
                      pg_read_file(:'abs_srcdir' || '/test/fake_psp/keys/wechat_merchant_private.pem'));
SELECT pay.fetch_statement('sf_wechat', '2026-11-30') AS wx_row \gset
SELECT operation, params, idempotency_key FROM pay.outbox WHERE id = :wx_row;
SELECT method, url, headers[1] LIKE 'Authorization: WECHATPAY2-SHA256-RSA2048 mchid="1900000001",%' AS signed,
       headers[2], body
  FROM pay._outbox_request((SELECT o FROM pay.outbox o WHERE id = :wx_row));
SELECT pay._outbox_apply(:wx_row, 200, '{"hash_type": "MD5", "hash_value": "00", "download_url": "https://psp.example/f"}') AS not_sha1;
SELECT pay._outbox_apply(:wx_row, 200, '{"hash_type": "SHA1", "hash_value": "38d6252c798374b2f607a39b8636644c22cd9658",
  "download_url": "https://evil.example/v3/billdownload/file?token=t"}') AS other_host;
SELECT pay._outbox_apply(:wx_row, 200, '{"hash_type": "SHA1", "hash_value": "38D6252C798374B2F607A39B8636644C22CD9658",
  "download_url": "https://psp.example/v3/billdownload/file?token=t1"}') AS named;
SELECT id AS wx_file FROM pay.outbox WHERE operation = 'fetch_statement_file' AND destination = 'gateway:sf_wechat' \gset
SELECT params, idempotency_key FROM pay.outbox WHERE id = :wx_file;
SELECT method, url, headers[1] LIKE 'Authorization: WECHATPAY2-SHA256-RSA2048 %' AS signed
  FROM pay._outbox_request((SELECT o FROM pay.outbox o WHERE id = :wx_file));
-- another file than the one named: refused; the named one: imported
SELECT pay._outbox_apply(:wx_file, 200, replace(pg_read_file(:'abs_srcdir' || '/test/vectors/statements/wechatpay.csv'),
                                               '`8.88', '`9.88')) AS other_file;
SELECT count(*) AS statements FROM pay.statements WHERE gateway = 'sf_wechat';
SELECT pay._outbox_apply(:wx_file, 200, pg_read_file(:'abs_srcdir' || '/test/vectors/statements/wechatpay.csv')) AS imported;
SELECT format, line_count FROM pay.statements WHERE gateway = 'sf_wechat';
