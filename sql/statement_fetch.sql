-- Fetching a statement through the dispatcher: the requests each step
-- sends and what each answer does (the dispatcher itself is tested end to
-- end by test/demo against the fake PSP's Stripe reporting API, and by
-- test/t/071_statement_fetch.pl against its Alipay and WeChat Pay bills).
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
SELECT pay.create_gateway('sf_alipay', 'alipay', 'https://psp.example/gateway.do') > 0 AS alipay;
SELECT pay.create_gateway('sf_generic', 'generic', 'https://psp.example') > 0 AS generic;
SELECT pg_temp.err($$SELECT pay.fetch_statement('sf_generic', '2026-12-01')$$) AS generic_not_fetched;
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

-- Alipay's bill is a zip archive: the 业务明细 CSV and its 汇总 summary.  The
-- reader on archives Python's zipfile made (test/vectors/statements/make_zips.py)
\set zips :abs_srcdir '/test/vectors/statements/'
SELECT pay._zip_member(pg_read_binary_file(:'zips' || 'alipay_stored.zip'), '业务明细', '汇总')
         = pg_read_binary_file(:'zips' || 'alipay.csv') AS stored_gbk_names,
       pay._zip_member(pg_read_binary_file(:'zips' || 'alipay_deflated.zip'), '业务明细', '汇总')
         = pg_read_binary_file(:'zips' || 'alipay.csv') AS deflated_gbk_names,
       pay._zip_member(pg_read_binary_file(:'zips' || 'alipay_utf8.zip'), '业务明细', '汇总')
         = pg_read_binary_file(:'zips' || 'alipay.csv') AS deflated_utf8_names,
       convert_from(pay._zip_member(pg_read_binary_file(:'zips' || 'alipay_deflated.zip'), '汇总'), 'GBK')
         LIKE '#支付宝业务汇总查询%' AS the_summary;
SELECT f, pg_temp.err(format($$SELECT pay._zip_member(pg_read_binary_file(%L), %L, %L)$$,
                             :'zips' || f, part, avoid)) AS refused
  FROM (VALUES ('alipay_bad_crc.zip', '业务明细', '汇总'), ('alipay_truncated.zip', '业务明细', '汇总'),
               ('alipay_cut_member.zip', '业务明细', '汇总'), ('bomb.zip', '业务明细', '汇总'),
               ('many.zip', '业务明细', '汇总'), ('two_details.zip', '业务明细', '汇总'),
               ('alipay_deflated.zip', '业务明细', NULL), ('alipay_deflated.zip', '对账单', NULL),
               ('alipay.csv', '业务明细', '汇总')) v(f, part, avoid);
SELECT pg_temp.err($$SELECT pay._zip_member('\x504b0506'::bytea, 'x')$$) AS too_short,
       pay._zip_member(NULL, 'x') IS NULL AS null_content;

-- the request: alipay.data.dataservice.bill.downloadurl.query of the bill
-- date, RSA2-signed with the app key (checked with the app's public key)
UPDATE pay.gateways SET options = '{"app_id": "2021000000000001"}' WHERE name = 'sf_alipay';
SELECT pay.set_secret('gateway:sf_alipay', 'private_key',
                      pg_read_file(:'abs_srcdir' || '/test/fake_psp/keys/alipay_app_private.pem'));
SELECT pay.set_secret('gateway:sf_alipay', 'public_key',
                      pg_read_file(:'abs_srcdir' || '/test/fake_psp/keys/alipay_platform_public.pem'));
SELECT pay.fetch_statement('sf_alipay', '2026-11-30') AS ali_row \gset
SELECT operation, params, idempotency_key FROM pay.outbox WHERE id = :ali_row;
SELECT q.method, q.url, q.headers, f->>'method' AS api, f->>'biz_content' AS biz_content, f->>'app_id' AS app_id,
       f->>'sign_type' AS sign_type, f->>'charset' AS charset,
       pay.alipay_signature_valid(f, pg_read_file(:'abs_srcdir' || '/test/fake_psp/keys/alipay_app_public.pem'),
                                  '{sign}') AS signed
  FROM pay._outbox_request((SELECT o FROM pay.outbox o WHERE id = :ali_row)) q, pay.parse_form(q.body) f;
-- the answer: signed by Alipay over its *_response member
CREATE FUNCTION pg_temp.ali_answer(member text) RETURNS text LANGUAGE sql AS $$
  SELECT '{"alipay_data_dataservice_bill_downloadurl_query_response":' || member || ',"sign":"'
         || pay.rsa_sha256_sign(member, pg_read_file(current_setting('pay_test.abs_srcdir')
                                                      || '/test/fake_psp/keys/alipay_platform_private.pem')) || '"}'
$$;
SELECT set_config('pay_test.abs_srcdir', :'abs_srcdir', false) IS NOT NULL AS ready;
SELECT pay._outbox_apply(:ali_row, 200, pg_temp.ali_answer(
  '{"code":"40004","msg":"Business Failed","sub_code":"isp.bill_not_exist","sub_msg":"账单不存在"}')) AS no_bill;
SELECT pay._outbox_apply(:ali_row, 200, replace(pg_temp.ali_answer(
  '{"code":"10000","msg":"Success","bill_download_url":"https://psp.example/bill?t=1"}'), 't=1', 't=2')) AS not_signed;
SELECT pay._outbox_apply(:ali_row, 200, pg_temp.ali_answer(
  '{"code":"10000","msg":"Success","bill_download_url":"https://evil.example/bill?t=1"}')) AS other_host;
SELECT pay._outbox_apply(:ali_row, 200, pg_temp.ali_answer(
  '{"code":"10000","msg":"Success","bill_download_url":"https://psp.example.evil/bill?t=1"}')) AS lookalike_host;
SELECT count(*) AS file_rows FROM pay.outbox WHERE operation = 'fetch_statement_file' AND destination = 'gateway:sf_alipay';
SELECT pay._outbox_apply(:ali_row, 200, pg_temp.ali_answer(
  '{"code":"10000","msg":"Success","bill_download_url":"https://psp.example/downloadBillFile.resource?fileId=f1"}')) AS named;
SELECT id AS ali_file FROM pay.outbox WHERE operation = 'fetch_statement_file' AND destination = 'gateway:sf_alipay' \gset
SELECT params, idempotency_key FROM pay.outbox WHERE id = :ali_file;
SELECT method, url, headers, body FROM pay._outbox_request((SELECT o FROM pay.outbox o WHERE id = :ali_file));
-- Alipay's own bill host is trusted too (the day's file row is queued
-- already: no second one); nothing else
SELECT v.n, pay._outbox_apply(:ali_row, 200, pg_temp.ali_answer(
         format('{"code":"10000","msg":"Success","bill_download_url":"%s"}', v.url))) AS refused
  FROM (VALUES ('bill_host', 'https://dwbillcenter.alipay.com/downloadBillFile.resource?x=1'),
               ('plain_http', 'http://dwbillcenter.alipay.com/downloadBillFile.resource?x=1'),
               ('userinfo', 'https://psp.example@evil.example/x'),
               ('backslash', 'https://psp.example/\\evil.example/x'),
               ('space', 'https://psp.example/x y')) v(n, url);
SELECT count(*) AS file_rows FROM pay.outbox WHERE operation = 'fetch_statement_file' AND destination = 'gateway:sf_alipay';
-- the file (bytes, as the dispatcher hands over an answer that is not
-- text): a corrupt zip is refused and nothing imported; the detail is imported
SELECT pay._outbox_apply_bytes(:ali_file, 200, pg_read_binary_file(:'zips' || 'alipay_bad_crc.zip')) AS bad_crc;
SELECT pay._outbox_apply_bytes(:ali_file, 200, pg_read_binary_file(:'zips' || 'bomb.zip')) AS bomb;
SELECT count(*) AS statements FROM pay.statements WHERE gateway = 'sf_alipay';
SELECT pay._outbox_apply_bytes(:ali_file, 200, pg_read_binary_file(:'zips' || 'alipay_deflated.zip')) AS imported;
SELECT format, line_count, period_start, period_end FROM pay.statements WHERE gateway = 'sf_alipay';
-- bytes anywhere else are refused as before
SELECT pay._outbox_apply_bytes(:ali_row, 200, '\x00ff'::bytea) AS bytes_for_json;
