-- The PSP's answers to pay's requests (pay._outbox_apply, 81_psp_answers.sql):
-- kept in pay.psp_answers, verified, and applied.  Alipay's and WeChat Pay's
-- answers are signed at test time by an independent implementation
-- (test/vectors/answer_fixture.py: python3-cryptography) with the openssl-made
-- keys of test/vectors/callback_keys.
\getenv abs_srcdir PG_ABS_SRCDIR
\getenv abs_builddir PG_ABS_BUILDDIR
\set keys :abs_srcdir '/test/vectors/callback_keys/'
\set master_key :abs_srcdir '/test/keys/master-a.hex'
SET pay.master_key_file = :'master_key';

SELECT pay.create_merchant('an_shop', 'Answer Shop', 'https://shop.example/notify') > 0 AS merchant;
SELECT pay.create_gateway(g, k) > 0 AS gateway FROM (VALUES
  ('an_stripe', 'stripe'), ('an_alipay', 'alipay'), ('an_wechat', 'wechatpay'), ('an_generic', 'generic')) v(g, k);
SELECT pay.set_secret('gateway:an_alipay', 'public_key', pg_read_file(:'keys' || 'alipay_platform_pub.pem')) IS NOT NULL AS alipay_key;
SELECT pay.set_secret('gateway:an_wechat', 'platform_cert:5157F09EFDC096DE15EBE81A47057A72',
                      pg_read_file(:'keys' || 'wechat_platform_cert.pem')) IS NOT NULL AS wechat_cert;

INSERT INTO pay.orders (id, merchant_id, merchant_order_no, amount, currency, gateway, expires_at)
SELECT v.id, m.id, 'AN-' || v.id, v.amount, v.currency, v.gateway, now() + interval '1 hour'
  FROM pay.merchants m, (VALUES
    (940001, 1000::bigint, 'CNY', 'an_alipay'), (940002, 1000, 'CNY', 'an_alipay'),
    (940003, 1000, 'CNY', 'an_alipay'), (940004, 1234, 'CNY', 'an_alipay'),
    (940005, 500, 'CNY', 'an_alipay'), (940006, 500, 'CNY', 'an_alipay'),
    (940011, 888, 'CNY', 'an_wechat'), (940012, 888, 'CNY', 'an_wechat'),
    (940013, 888, 'CNY', 'an_wechat'), (940014, 888, 'CNY', 'an_wechat'),
    (940015, 888, 'CNY', 'an_wechat'), (940016, 888, 'CNY', 'an_wechat'),
    (940021, 2100, 'USD', 'an_stripe'), (940022, 2200, 'USD', 'an_stripe'),
    (940023, 2300, 'USD', 'an_stripe'), (940024, 2400, 'USD', 'an_stripe'),
    (940025, 2500, 'USD', 'an_stripe'), (940031, 3100, 'USD', 'an_generic'),
    (940032, 3200, 'USD', 'an_generic'), (940033, 3300, 'USD', 'an_generic')) v(id, amount, currency, gateway)
 WHERE m.code = 'an_shop';

-- the WeChat Pay refund (of an order paid by hand) the refund answer names
SELECT status FROM pay.mark_paid(940016, '4200000000920016', 888, 'CNY');
SELECT pay.refund(940016, 100, 'answer test') AS wx_refund \gset
SELECT psp_status, psp_refund_id FROM pay.refunds WHERE id = :wx_refund;

CREATE TEMP TABLE ans (name text PRIMARY KEY, status integer, headers jsonb, body text);
\set fixture :abs_builddir '/results/answer_fixture.sql'
\set made `/usr/bin/python3 "$PG_ABS_SRCDIR/test/vectors/answer_fixture.py" :'fixture' :wx_refund`
\set ECHO none
\i :fixture
\set ECHO all
SELECT count(*) AS fixture_answers FROM ans;

-- Queue the request (create_payment, query, ...) and apply a fixture answer
-- to it as the dispatcher does; NULL: applied.
-- (Outbox ids depend on the tests before this one: shown as N.)
CREATE FUNCTION pg_temp.answer(p_order bigint, p_op text, p_name text, p_params jsonb DEFAULT '{}') RETURNS text
LANGUAGE sql AS $$
  SELECT regexp_replace(pay._outbox_apply(pay.enqueue_psp_request(p_order, p_op, p_params), a.status, a.body, a.headers),
                        '(query|answer) [0-9]+', '\1 N', 'g')
    FROM ans a WHERE a.name = p_name $$;
-- The latest answer as kept.
CREATE FUNCTION pg_temp.kept() RETURNS text LANGUAGE sql AS $$
  SELECT format('%s %s %s %s | %s', verdict, gateway, operation, http_status,
                regexp_replace(reason, '(query|answer) [0-9]+', '\1 N', 'g'))
    FROM pay.psp_answers ORDER BY id DESC LIMIT 1 $$;
-- An order: status, PSP id, next action, failure reason and what moved it last.
CREATE FUNCTION pg_temp.ord(p_id bigint) RETURNS text LANGUAGE sql AS $$
  SELECT format('%s psp_txn_id=%s next_action=%s failure_reason=%s cause=%s', o.status, o.psp_txn_id, o.next_action,
                o.failure_reason,
                (SELECT regexp_replace(e.cause, '[0-9]+$', 'N') FROM pay.order_events e
                  WHERE e.order_id = o.id AND e.from_status IS NOT NULL ORDER BY e.id DESC LIMIT 1))
    FROM pay.orders o WHERE o.id = p_id $$;

-- Alipay precreate: a verified answer for our order gives the QR code
SELECT pg_temp.answer(940001, 'create_payment', 'ali_precreate');
SELECT pg_temp.kept();
SELECT pg_temp.ord(940001);
-- tampered, unsigned, signed by another key, another order's: rejected, order untouched
SELECT pg_temp.answer(940002, 'create_payment', n) FROM unnest(ARRAY['ali_precreate_tampered',
  'ali_precreate_unsigned', 'ali_precreate_wrong_key', 'ali_precreate_other_order']) n;
SELECT verdict, reason FROM pay.psp_answers WHERE order_id = 940002 ORDER BY id;
SELECT pg_temp.ord(940002);
-- a signed business refusal of the create: the order fails with Alipay's sub_msg
SELECT pg_temp.answer(940003, 'create_payment', 'ali_precreate_refused');
SELECT pg_temp.kept();
SELECT pg_temp.ord(940003);

-- WeChat Pay Native: the code_url, verified with the certificate Wechatpay-Serial names
SELECT pg_temp.answer(940011, 'create_payment', 'wx_native');
SELECT pg_temp.kept();
SELECT pg_temp.ord(940011);
-- the headers are kept with lower-case names
SELECT headers ? 'wechatpay-serial' AS lower_case, headers ? 'Wechatpay-Serial' AS as_sent
  FROM pay.psp_answers WHERE order_id = 940011;
SELECT pg_temp.answer(940012, 'create_payment', n) FROM unnest(ARRAY['wx_native_tampered',
  'wx_native_unsigned', 'wx_native_wrong_serial', 'wx_native_stale']) n;
SELECT verdict, reason FROM pay.psp_answers WHERE order_id = 940012 ORDER BY id;
SELECT pg_temp.ord(940012);
-- a 4xx (signed) to a create: the order fails with WeChat Pay's message
SELECT pg_temp.answer(940015, 'create_payment', 'wx_refused');
SELECT pg_temp.ord(940015);

-- Stripe: the client_secret and the PaymentIntent's id
SELECT pg_temp.answer(940021, 'create_payment', 'st_create');
SELECT pg_temp.ord(940021);
SELECT pg_temp.answer(940022, 'create_payment', n) FROM unnest(ARRAY['st_create_other_order', 'st_create_wrong_amount']) n;
SELECT verdict, reason FROM pay.psp_answers WHERE order_id = 940022 ORDER BY id;
SELECT pg_temp.ord(940022);
SELECT pg_temp.answer(940023, 'create_payment', 'st_refused');
SELECT pg_temp.kept();
SELECT pg_temp.ord(940023);

-- generic: its own next_action object
INSERT INTO ans VALUES ('gen_create', 200, '{}',
  '{"order_id": "940031", "psp_txn_id": "g-31", "next_action": {"type": "redirect", "url": "https://psp.example/pay/31"}}');
SELECT pg_temp.answer(940031, 'create_payment', 'gen_create');
SELECT pg_temp.ord(940031);

-- a refusal whose body is no JSON (an error page) still refuses
INSERT INTO ans VALUES ('gen_refused_text', 402, '{}', 'Payment Required');
SELECT pg_temp.answer(940033, 'create_payment', 'gen_refused_text');
SELECT pg_temp.ord(940033);

-- next_action is set only while the order is pending
SELECT status FROM pay.cancel(940032);
INSERT INTO ans VALUES ('gen_create_late', 200, '{}',
  '{"order_id": "940032", "next_action": {"type": "redirect", "url": "https://psp.example/pay/32"}}');
SELECT pg_temp.answer(940032, 'create_payment', 'gen_create_late');
SELECT pg_temp.kept();
SELECT pg_temp.ord(940032);

-- Queries move the order as the callback would: paid, booked once, the merchant notified once
SELECT pg_temp.answer(940004, 'query', 'ali_query_paid');
SELECT pg_temp.kept();
SELECT pg_temp.ord(940004);
SELECT pg_temp.answer(940013, 'query', 'wx_query_paid');
SELECT pg_temp.ord(940013);
SELECT pg_temp.answer(940024, 'query', 'st_query_paid');
SELECT pg_temp.ord(940024);
-- the same answer again changes nothing
SELECT pg_temp.answer(940004, 'query', 'ali_query_paid');
SELECT pg_temp.kept();
SELECT p.order_id, p.ref, count(*) AS postings FROM pay.postings p
 WHERE p.order_id IN (940004, 940013, 940024) GROUP BY 1, 2 ORDER BY 1;
SELECT order_id, operation, count(*) AS notifications FROM pay.outbox
 WHERE kind = 'merchant_notification' AND order_id IN (940004, 940013, 940024) GROUP BY 1, 2 ORDER BY 1;
-- waiting for the buyer: nothing; a wrong amount or another order: rejected
SELECT pg_temp.answer(940005, 'query', 'ali_query_wait');
SELECT pg_temp.kept();
SELECT pg_temp.answer(940005, 'query', 'ali_query_wrong_amount');
SELECT pg_temp.kept();
SELECT pg_temp.answer(940014, 'query', 'wx_query_other_order');
SELECT pg_temp.kept();
SELECT pg_temp.ord(940005), pg_temp.ord(940014);
SELECT count(*) AS postings_of_rejected FROM pay.postings WHERE order_id IN (940005, 940014);
-- Stripe canceled: closed, as payment_intent.canceled would
SELECT pg_temp.answer(940025, 'query', 'st_query_canceled');
SELECT pg_temp.ord(940025);

-- Refund answers: the PSP confirmed our refund
SELECT pg_temp.answer(940016, 'refund', 'wx_refund', jsonb_build_object('refund_id', :wx_refund));
SELECT psp_status, psp_refund_id FROM pay.refunds WHERE id = :wx_refund;
-- the answer about that refund, to a query of another refund: rejected
SELECT pay.refund(940016, 50, 'second') AS wx_refund2 \gset
SELECT pg_temp.answer(940016, 'query_refund', 'wx_refund', jsonb_build_object('refund_id', :wx_refund2)) IS NOT NULL AS rejected;
SELECT verdict, refund_id = :wx_refund2 AS second_refund FROM pay.psp_answers ORDER BY id DESC LIMIT 1;
SELECT psp_status, psp_refund_id FROM pay.refunds WHERE id = :wx_refund2;

-- Close answers "already paid": a query is queued so that the payment is booked
SELECT pg_temp.answer(940006, 'close', 'ali_close_paid');
SELECT pg_temp.answer(940016, 'close', 'wx_close_paid');
-- a create refused because the buyer has paid: not a failure, a query too
SELECT pg_temp.answer(940014, 'create_payment', 'wx_close_paid');
SELECT pg_temp.ord(940014);
SELECT order_id, operation, state FROM pay.outbox
 WHERE kind = 'psp_request' AND operation = 'query' AND state = 'pending' AND order_id IN (940006, 940014, 940016)
 ORDER BY order_id;

-- query_refund requests need the refund, and are built at send time
SELECT pay.enqueue_psp_request(940016, 'query_refund', '{}');
UPDATE pay.gateways SET options = '{"mchid": "1900000001", "serial_no": "0A1B", "appid": "wx01"}' WHERE name = 'an_wechat';
SELECT pay.set_secret('gateway:an_wechat', 'private_key', pg_read_file(:'keys' || 'wechat_platform_key.pem')) IS NOT NULL AS key;
SELECT pay.enqueue_psp_request(940016, 'query_refund', jsonb_build_object('refund_id', :wx_refund)) AS qr_row \gset
SELECT q.method, q.url = 'https://api.mch.weixin.qq.com/v3/refund/domestic/refunds/' || :wx_refund AS url, q.body
  FROM pay.outbox o, pay._outbox_request(o) q WHERE o.id = :qr_row;

SELECT verdict, count(*) FROM pay.psp_answers GROUP BY 1 ORDER BY 1;
