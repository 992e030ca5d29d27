-- Adyen on the wire (src/provider_adyen.c, src/event_modification.c): the
-- Checkout API requests pay builds, the answers it reads, and the standard
-- notifications it verifies and applies, item by item.  Items are signed
-- here with pay.adyen_hmac_signature, whose known answers sign_adyen
-- checks; test/t/076_adyen.pl runs the flows against the fake PSP's own
-- signer.  Order ids are shown by name (pg_temp.named), as they depend on
-- the tests before this one.

\getenv abs_srcdir PG_ABS_SRCDIR
\set master_key :abs_srcdir '/test/keys/master-a.hex'
SET pay.master_key_file = :'master_key';
SET wa.hmac_key = '0EE4EC5B60D783CF5A5429FBF519D6F7D6FA5318787D71CAAB8E683C2893B4CA';

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'NO ERROR';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TEMP TABLE named (name text PRIMARY KEY, id bigint);
-- t with every order id named (not inside a longer number)
CREATE FUNCTION pg_temp.named(t text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  n record;
BEGIN
  FOR n IN SELECT * FROM pg_temp.named ORDER BY length(id::text) DESC LOOP
    t := regexp_replace(t, '(?<![0-9])' || n.id || '(?![0-9])', '<' || n.name || '>', 'g');
  END LOOP;
  -- callback and refund ids depend on the tests before this one too
  -- ("refund 300 EUR" is an amount)
  RETURN regexp_replace(regexp_replace(t, '(callback|refund) [0-9]+(?![0-9]* [A-Z]{3})', '\1 N', 'g'),
                        '_refund_[0-9]+', '_refund_N', 'g');
END $$;
CREATE FUNCTION pg_temp.order(p_name text, p_amount bigint, p_capture text DEFAULT 'automatic') RETURNS bigint
LANGUAGE sql AS $$
  INSERT INTO pg_temp.named
  SELECT p_name, id FROM pay.create_order('wa_shop', 'WA-' || p_name, p_amount, 'EUR', gateway => 'wa_adyen',
                                          capture => p_capture)
  RETURNING id
$$;
-- a signed NotificationRequestItem
CREATE FUNCTION pg_temp.item(p_psp text, p_code text, p_ref bigint, p_value bigint, p_success boolean DEFAULT true,
                             p_original text DEFAULT NULL, p_account text DEFAULT 'WaMerchant',
                             p_reason text DEFAULT '') RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  i jsonb := jsonb_strip_nulls(jsonb_build_object(
    'amount', jsonb_build_object('currency', 'EUR', 'value', p_value), 'eventCode', p_code,
    'eventDate', '2026-01-02T03:04:05+01:00', 'merchantAccountCode', p_account,
    'merchantReference', p_ref::text, 'originalReference', p_original, 'pspReference', p_psp,
    'reason', p_reason, 'success', p_success::text, 'paymentMethod', 'visa'));
BEGIN
  RETURN i || jsonb_build_object('additionalData', jsonb_build_object('hmacSignature',
    pay.adyen_hmac_signature(i, current_setting('wa.hmac_key'))));
END $$;
-- a notification of these items: the answer, and what pay.callbacks recorded
CREATE FUNCTION pg_temp.notify(VARIADIC p_items jsonb[]) RETURNS TABLE (answer text, record text)
LANGUAGE plpgsql AS $$
BEGIN
  SELECT format('%s %s %s', r.http_status, r.content_type, r.body) INTO answer
    FROM pay.handle_callback('wa_adyen', '{"Content-Type": "application/json"}',
           jsonb_build_object('live', 'false', 'notificationItems',
             (SELECT jsonb_agg(jsonb_build_object('NotificationRequestItem', x)) FROM unnest(p_items) x))::text) r;
  -- (a statement of its own: it sees the row handle_callback wrote)
  SELECT pg_temp.named(format('%s %s | %s | %s', c.verdict, coalesce(c.reason_code, '-'),
                              coalesce(c.event_type, '-'), coalesce(c.outcome, c.reason, '-'))) INTO record
    FROM pay.callbacks c ORDER BY c.id DESC LIMIT 1;
  RETURN NEXT;
END $$;
-- the request an outbox row makes, its key and order ids named
CREATE FUNCTION pg_temp.request(p_id bigint) RETURNS text LANGUAGE sql AS $$
  SELECT pg_temp.named(format('%s %s %s %s', (q).method, (q).url, (q).headers, (q).body))
    FROM (SELECT pay._outbox_request(o) AS q FROM pay.outbox o WHERE o.id = p_id) s
$$;
-- apply an answer to an outbox row, as the dispatcher does: what psp_answers kept
CREATE FUNCTION pg_temp.answer(p_id bigint, p_status integer, p_body jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pay._outbox_apply(p_id, p_status, p_body::text);
  RETURN (SELECT pg_temp.named(a.verdict || ': ' || a.reason) FROM pay.psp_answers a
           WHERE a.outbox_id = p_id ORDER BY a.id DESC LIMIT 1);
END $$;
CREATE FUNCTION pg_temp.outbox(p_order bigint, p_operation text) RETURNS bigint LANGUAGE sql AS $$
  SELECT max(id) FROM pay.outbox WHERE order_id = p_order AND operation = p_operation
$$;

-- order ids no other number in this test looks like
SELECT setval(pg_get_serial_sequence('pay.orders', 'id'), greatest(7000000, (SELECT max(id) FROM pay.orders))) > 0 AS ids;
SELECT pay.create_merchant('wa_shop', 'Adyen Shop') > 0 AS merchant;
SELECT pay.create_gateway('wa_adyen', 'adyen', 'https://adyen.example/', '{"merchant_account": "WaMerchant"}') > 0 AS gateway;
SELECT pay.set_secret('gateway:wa_adyen', 'api_key', 'wa-api-key');
SELECT pay.set_secret('gateway:wa_adyen', 'hmac_key', current_setting('wa.hmac_key'));

-- 1. requests: JSON, X-API-Key, Idempotency-Key, merchantAccount, reference = our order id
SELECT pg_temp.order('auto', 1250) IS NOT NULL AS auto, pg_temp.order('manual', 5000, 'manual') IS NOT NULL AS manual;
SELECT name, pg_temp.request(pg_temp.outbox(id, 'create_payment')) FROM pg_temp.named ORDER BY name;
-- no pspReference yet: nothing to capture, void or refund
SELECT op, pg_temp.named(pg_temp.err(format($$SELECT pay._outbox_request(jsonb_populate_record(o, '{"operation": "%s"}'))
                                        FROM pay.outbox o WHERE o.id = %s$$, op, pg_temp.outbox(id, 'create_payment'))))
  FROM pg_temp.named, unnest(ARRAY['capture', 'void', 'query']) op WHERE name = 'manual';
-- a pspReference goes into the path: anything but letters and digits is refused
SELECT pg_temp.err(format($$SELECT pay._outbox_request(jsonb_populate_record(o, '{"operation": "void", "params": {"psp_txn_id": "../x"}}'))
                            FROM pay.outbox o WHERE o.id = %s$$, pg_temp.outbox(id, 'create_payment')))
  FROM pg_temp.named WHERE name = 'manual';
-- the merchant account is required
UPDATE pay.gateways SET options = '{}' WHERE name = 'wa_adyen';
SELECT pg_temp.err(format('SELECT pay._outbox_request(o) FROM pay.outbox o WHERE o.id = %s', pg_temp.outbox(id, 'create_payment')))
  FROM pg_temp.named WHERE name = 'auto';
UPDATE pay.gateways SET options = '{"merchant_account": "WaMerchant"}' WHERE name = 'wa_adyen';

-- 2. answers to create_payment: the pspReference kept, a redirect as next_action
SELECT pg_temp.answer(pg_temp.outbox(id, 'create_payment'), 200,
         jsonb_build_object('pspReference', 'WAPSPAUTO0000001', 'resultCode', 'Authorised', 'merchantReference', id::text,
                            'amount', jsonb_build_object('value', 1250, 'currency', 'EUR'))) AS auto
  FROM pg_temp.named n WHERE name = 'auto';
SELECT pg_temp.answer(pg_temp.outbox(id, 'create_payment'), 200,
         jsonb_build_object('pspReference', 'WAPSPMANUAL00001', 'resultCode', 'RedirectShopper', 'merchantReference', id::text,
                            'action', jsonb_build_object('type', 'redirect', 'method', 'GET',
                                                         'url', 'https://checkoutshopper-test.adyen.com/x'))) AS manual
  FROM pg_temp.named n WHERE name = 'manual';
SELECT name, psp_txn_id, next_action FROM pg_temp.named JOIN pay.orders USING (id) WHERE name IN ('auto', 'manual') ORDER BY name;
-- refusals: resultCode Refused (its refusalReason), a 4xx (its message); the order fails
SELECT pg_temp.order('refused', 700) IS NOT NULL AS refused, pg_temp.order('invalid', 800) IS NOT NULL AS invalid;
SELECT pg_temp.answer(pg_temp.outbox(id, 'create_payment'), 200,
         jsonb_build_object('pspReference', 'WAPSPREFUSED0001', 'resultCode', 'Refused', 'merchantReference', id::text,
                            'refusalReason', 'Not enough balance', 'refusalReasonCode', '12')) AS refused
  FROM pg_temp.named n WHERE name = 'refused';
SELECT pg_temp.answer(pg_temp.outbox(id, 'create_payment'), 422,
         '{"status": 422, "errorCode": "137", "message": "Invalid amount specified", "errorType": "validation"}') AS invalid
  FROM pg_temp.named n WHERE name = 'invalid';
SELECT name, status, failure_reason FROM pg_temp.named JOIN pay.orders USING (id) WHERE name IN ('refused', 'invalid') ORDER BY name;
-- an answer about another order, or another amount, is rejected and moves nothing
SELECT pg_temp.order('other', 900) IS NOT NULL AS other;
SELECT pg_temp.answer(pg_temp.outbox(id, 'create_payment'), 200,
         jsonb_build_object('pspReference', 'WAPSPOTHER000001', 'resultCode', 'Authorised', 'merchantReference', '999999999')) AS other_order,
       pg_temp.answer(pg_temp.outbox(id, 'create_payment'), 200,
         jsonb_build_object('pspReference', 'WAPSPOTHER000001', 'resultCode', 'Authorised', 'merchantReference', id::text,
                            'amount', jsonb_build_object('value', 901, 'currency', 'EUR'))) AS other_amount
  FROM pg_temp.named n WHERE name = 'other';
SELECT status, psp_txn_id IS NULL AS nothing_kept FROM pg_temp.named JOIN pay.orders USING (id) WHERE name = 'other';

-- 3. notifications: AUTHORISATION pays (or authorizes), [accepted]; a repeat is a duplicate
SELECT * FROM pg_temp.notify(pg_temp.item('WAPSPAUTO0000001', 'AUTHORISATION', (SELECT id FROM pg_temp.named WHERE name = 'auto'), 1250));
SELECT * FROM pg_temp.notify(pg_temp.item('WAPSPAUTO0000001', 'AUTHORISATION', (SELECT id FROM pg_temp.named WHERE name = 'auto'), 1250));
-- a batch: the manual order's authorization, an event pay does not apply, another merchant account's item
SELECT * FROM pg_temp.notify(
  pg_temp.item('WAPSPMANUAL00001', 'AUTHORISATION', (SELECT id FROM pg_temp.named WHERE name = 'manual'), 5000),
  pg_temp.item('WAREPORT00000001', 'REPORT_AVAILABLE', (SELECT id FROM pg_temp.named WHERE name = 'manual'), 0),
  pg_temp.item('WAPSPELSEWHERE01', 'AUTHORISATION', (SELECT id FROM pg_temp.named WHERE name = 'other'), 900,
               p_account => 'SomeoneElse'));
SELECT name, status FROM pg_temp.named JOIN pay.orders o USING (id) WHERE name IN ('auto', 'manual', 'other') ORDER BY name;
-- one bad signature refuses the whole batch: nothing of it applied, no event id used up
SELECT count(*) AS events_before FROM pay.callback_events \gset
SELECT * FROM pg_temp.notify(
  pg_temp.item('WAPSPOTHER000001', 'AUTHORISATION', (SELECT id FROM pg_temp.named WHERE name = 'other'), 900),
  pg_temp.item('WAPSPOTHER000001', 'AUTHORISATION', (SELECT id FROM pg_temp.named WHERE name = 'other'), 900) ||
    '{"additionalData": {"hmacSignature": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}');
SELECT count(*) - :events_before AS events_used, (SELECT status FROM pay.orders o JOIN pg_temp.named n USING (id)
                                                   WHERE n.name = 'other') AS other
  FROM pay.callback_events;
-- malformed: no items, an item without its fields, not JSON, another content type
SELECT format('%s %s', http_status, body) AS answer FROM pay.handle_callback('wa_adyen', '{"Content-Type": "application/json"}',
  '{"live": "false", "notificationItems": []}');
SELECT format('%s %s', http_status, body) AS answer FROM pay.handle_callback('wa_adyen', '{"Content-Type": "application/json"}',
  '{"live": "false", "notificationItems": [{"NotificationRequestItem": {"additionalData": {"hmacSignature": "x"}}}]}');
SELECT format('%s %s', http_status, body) AS answer FROM pay.handle_callback('wa_adyen', '{"Content-Type": "application/json"}', 'nope');
SELECT format('%s %s', http_status, body) AS answer FROM pay.handle_callback('wa_adyen', '{"Content-Type": "text/plain"}', '{}');
SELECT verdict, reason_code, reason FROM pay.callbacks ORDER BY id DESC LIMIT 4;

-- 4. refunds: the REFUND confirms the refund pay sent, even before the request's answer names it
SELECT pay.refund((SELECT id FROM pg_temp.named WHERE name = 'auto'), 250, 'first') AS r1 \gset
SELECT pg_temp.request(pg_temp.outbox(id, 'refund')) FROM pg_temp.named WHERE name = 'auto';
SELECT * FROM pg_temp.notify(pg_temp.item('WAREFUND00000001', 'REFUND', (SELECT id FROM pg_temp.named WHERE name = 'auto'), 250,
                                          p_original => 'WAPSPAUTO0000001'));
SELECT pg_temp.answer(pg_temp.outbox(id, 'refund'), 201,
         '{"merchantAccount": "WaMerchant", "paymentPspReference": "WAPSPAUTO0000001", "pspReference": "WAREFUND00000001", "status": "received"}')
  FROM pg_temp.named WHERE name = 'auto';
SELECT psp_refund_id, psp_status FROM pay.refunds WHERE id = :r1;
-- the answer first, then the notification: found by the PSP's id
SELECT pay.refund((SELECT id FROM pg_temp.named WHERE name = 'auto'), 300, 'second') AS r2 \gset
SELECT pg_temp.answer(pg_temp.outbox(id, 'refund'), 201,
         '{"merchantAccount": "WaMerchant", "paymentPspReference": "WAPSPAUTO0000001", "pspReference": "WAREFUND00000002", "status": "received"}')
  FROM pg_temp.named WHERE name = 'auto';
SELECT psp_refund_id, psp_status FROM pay.refunds WHERE id = :r2;
-- the refund failed at Adyen: failed, and an anomaly (it was booked)
SELECT * FROM pg_temp.notify(pg_temp.item('WAREFUND00000002', 'REFUND', (SELECT id FROM pg_temp.named WHERE name = 'auto'), 300,
                                          false, 'WAPSPAUTO0000001', p_reason => 'Insufficient in process funds'));
SELECT psp_status FROM pay.refunds WHERE id = :r2;
-- a refund made in Adyen's customer area: booked as the PSP reports it
SELECT * FROM pg_temp.notify(pg_temp.item('WAREFUND00000003', 'REFUND', (SELECT id FROM pg_temp.named WHERE name = 'auto'), 100,
                                          p_original => 'WAPSPAUTO0000001'));
-- a refund that failed after its success (REFUND_FAILED): failed; a repeat of the success changes nothing
SELECT * FROM pg_temp.notify(pg_temp.item('WAREFUND00000001', 'REFUND_FAILED', (SELECT id FROM pg_temp.named WHERE name = 'auto'), 250,
                                          p_original => 'WAPSPAUTO0000001', p_reason => 'Refund rejected by the issuer'));
SELECT * FROM pg_temp.notify(pg_temp.item('WAREFUND00000002', 'REFUND', (SELECT id FROM pg_temp.named WHERE name = 'auto'), 300,
                                          p_original => 'WAPSPAUTO0000001'));
SELECT amount, reason, psp_status FROM pay.refunds WHERE order_id = (SELECT id FROM pg_temp.named WHERE name = 'auto') ORDER BY id;
-- an answer about another payment is rejected
SELECT pay.refund((SELECT id FROM pg_temp.named WHERE name = 'auto'), 10, 'third') AS r3 \gset
SELECT pg_temp.answer(pg_temp.outbox(id, 'refund'), 201,
         '{"merchantAccount": "WaMerchant", "paymentPspReference": "SOMEONEELSES0001", "pspReference": "WAREFUND00000004", "status": "received"}')
  FROM pg_temp.named WHERE name = 'auto';

-- 5. two-phase: capture received, confirmed by CAPTURE; a failed capture is an anomaly
SELECT status, captured_amount FROM pay.capture((SELECT id FROM pg_temp.named WHERE name = 'manual'), 4000);
SELECT pg_temp.request(pg_temp.outbox(id, 'capture')) FROM pg_temp.named WHERE name = 'manual';
SELECT pg_temp.answer(pg_temp.outbox(id, 'capture'), 201,
         '{"merchantAccount": "WaMerchant", "paymentPspReference": "WAPSPMANUAL00001", "pspReference": "WACAPTURE0000001", "status": "received"}')
  FROM pg_temp.named WHERE name = 'manual';
SELECT * FROM pg_temp.notify(pg_temp.item('WACAPTURE0000001', 'CAPTURE', (SELECT id FROM pg_temp.named WHERE name = 'manual'), 4000,
                                          p_original => 'WAPSPMANUAL00001'));
SELECT * FROM pg_temp.notify(pg_temp.item('WACAPTURE0000001', 'CAPTURE', (SELECT id FROM pg_temp.named WHERE name = 'manual'), 4000,
                                          false, 'WAPSPMANUAL00001', p_reason => 'Transaction already captured'));
-- captured at Adyen while authorized here: booked, and not asked of Adyen again
SELECT pg_temp.order('elsewhere', 3000, 'manual') IS NOT NULL AS elsewhere;
SELECT * FROM pg_temp.notify(pg_temp.item('WAPSPELSEWHERE02', 'AUTHORISATION', (SELECT id FROM pg_temp.named WHERE name = 'elsewhere'), 3000));
SELECT * FROM pg_temp.notify(pg_temp.item('WACAPTURE0000002', 'CAPTURE', (SELECT id FROM pg_temp.named WHERE name = 'elsewhere'), 2000,
                                          p_original => 'WAPSPELSEWHERE02'));
SELECT o.status, o.captured_amount,
       (SELECT count(*) FROM pay.outbox x WHERE x.order_id = o.id AND x.operation = 'capture') AS capture_requests
  FROM pay.orders o JOIN pg_temp.named n USING (id) WHERE n.name = 'elsewhere';
-- void: the cancel request, confirmed by CANCELLATION; a cancellation Adyen refused is an anomaly
SELECT pg_temp.order('voided', 1500, 'manual') IS NOT NULL AS voided, pg_temp.order('cancelled_there', 1600, 'manual') IS NOT NULL AS there;
SELECT * FROM pg_temp.notify(
  pg_temp.item('WAPSPVOIDED00001', 'AUTHORISATION', (SELECT id FROM pg_temp.named WHERE name = 'voided'), 1500),
  pg_temp.item('WAPSPTHERE000001', 'AUTHORISATION', (SELECT id FROM pg_temp.named WHERE name = 'cancelled_there'), 1600));
SELECT status FROM pay.void((SELECT id FROM pg_temp.named WHERE name = 'voided'));
SELECT pg_temp.request(pg_temp.outbox(id, 'void')) FROM pg_temp.named WHERE name = 'voided';
SELECT * FROM pg_temp.notify(pg_temp.item('WACANCEL00000001', 'CANCELLATION', (SELECT id FROM pg_temp.named WHERE name = 'voided'), 1500,
                                          p_original => 'WAPSPVOIDED00001'));
SELECT * FROM pg_temp.notify(pg_temp.item('WACANCEL00000001', 'CANCELLATION', (SELECT id FROM pg_temp.named WHERE name = 'voided'), 1500,
                                          false, 'WAPSPVOIDED00001', p_reason => 'Transaction already captured'));
-- cancelled at Adyen while authorized here: cancelled, and not asked of Adyen again
SELECT * FROM pg_temp.notify(pg_temp.item('WACANCEL00000002', 'CANCELLATION', (SELECT id FROM pg_temp.named WHERE name = 'cancelled_there'), 1600,
                                          p_original => 'WAPSPTHERE000001'));
SELECT o.status, (SELECT count(*) FROM pay.outbox x WHERE x.order_id = o.id AND x.operation = 'void') AS void_requests
  FROM pay.orders o JOIN pg_temp.named n USING (id) WHERE n.name = 'cancelled_there';

SELECT kind, pg_temp.named(detail) FROM pay.anomalies WHERE gateway = 'wa_adyen' ORDER BY id;
SELECT count(*) AS mismatches FROM pay.order_ledger_mismatches o JOIN pg_temp.named n ON n.id = o.order_id;
