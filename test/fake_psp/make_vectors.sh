#!/bin/sh
# test/fake_psp/make_vectors.sh — known-answer vectors for the fake PSP's
# signing code, produced by the openssl command alone (an implementation
# independent of both the fake PSP's Python and pay's C).  For each vector
# vectors/<name>.msg holds the exact signed bytes and vectors/<name>.sig the
# expected signature; test_fake_psp.py checks the fake PSP reproduces them.
# Keys: keys/ (make_keys.sh).  Re-run after rotating the keys.
set -eu
cd "$(dirname "$0")"
mkdir -p vectors
V=vectors

# hmac NAME KEY — hex HMAC-SHA256 of NAME.msg
hmac() { openssl dgst -sha256 -hmac "$2" -r < "$V/$1.msg" | cut -d' ' -f1 | tr -d '\n' > "$V/$1.sig"; }
# rsa NAME KEYFILE — base64 RSA PKCS#1 v1.5 SHA-256 signature of NAME.msg
rsa() { openssl dgst -sha256 -sign "keys/$2" < "$V/$1.msg" | base64 -w0 > "$V/$1.sig"; }

# Stripe: v1 = HMAC-SHA256(whsec, "<t>.<payload>")
printf 'whsec_kat_0123456789abcdefABCDEF' > "$V/stripe_v1.key"
printf '1700000000.{\n  "id": "evt_kat",\n  "type": "payment_intent.succeeded"\n}' > "$V/stripe_v1.msg"
hmac stripe_v1 "$(cat "$V/stripe_v1.key")"

# Alipay notify: canonical string (sorted, no sign/sign_type, unescaped values)
printf 'app_id=2021000000000001&notify_id=kat1&notify_time=2024-01-02 03:04:05&out_trade_no=42&total_amount=12.34&trade_no=2024010222001400000000000042&trade_status=TRADE_SUCCESS' > "$V/alipay_notify.msg"
rsa alipay_notify alipay_platform_private.pem

# Alipay request: signed with our app key, sign_type included
printf 'app_id=2021000000000001&biz_content={"out_trade_no":"42","subject":"kat","total_amount":"12.34"}&charset=utf-8&method=alipay.trade.precreate&sign_type=RSA2&timestamp=2024-01-02 03:04:05&version=1.0' > "$V/alipay_request.msg"
rsa alipay_request alipay_app_private.pem

# WeChat Pay: answer / notification signature by the platform key
printf '1700000000\nkatnonce\n{"code_url":"weixin://wxpay/bizpayurl?pr=kat"}\n' > "$V/wechat_response.msg"
rsa wechat_response wechat_platform_private.pem

# WeChat Pay: request signature by our merchant key
printf 'POST\n/v3/pay/transactions/native\n1700000000\nkatnonce\n{"out_trade_no":"order000042"}\n' > "$V/wechat_request.msg"
rsa wechat_request wechat_merchant_private.pem

# merchant notification: hex HMAC-SHA256 of the canonical string
printf 'merchant-kat-secret' > "$V/merchant_notify.key"
printf 'amount=1234&currency=USD&event_id=ev_kat&nonce=n1&order_id=42&status=paid&timestamp=1700000000' > "$V/merchant_notify.msg"
hmac merchant_notify "$(cat "$V/merchant_notify.key")"
# PayPal webhook: RSA-SHA256 by PayPal's signing key over
# "<transmission id>|<transmission time>|<webhook id>|<CRC32 of the body, unsigned decimal>";
# the CRC32 is gzip's (the 4-byte little-endian trailer before the length)
printf '{"id":"WH-KAT","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"id":"5KAT0000000000000","custom_id":"42","amount":{"currency_code":"USD","value":"12.34"}}}' > "$V/paypal_webhook.body"
CRC=$(gzip -c < "$V/paypal_webhook.body" | tail -c8 | od -An -tu4 -N4 | tr -d ' \n')
printf '8d2b3e2a-1c7e-4f6a-9b1d-6f2e0c4a5b3c|2024-01-02T03:04:05Z|8PT597110X687430LKGECATA|%s' "$CRC" > "$V/paypal_webhook.msg"
rsa paypal_webhook paypal_signing_private.pem

# Adyen notification item: base64 HMAC-SHA256 with the hex key over
# pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success.
# adyen_published: the example of Adyen's own library tests (expected Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I=);
# adyen_notification: a refund whose merchantReference holds ':' and '\', signed as is
# hmac_b64 NAME HEXKEY — base64 HMAC-SHA256 of NAME.msg with a hex key
hmac_b64() { openssl dgst -sha256 -mac HMAC -macopt "hexkey:$2" -binary < "$V/$1.msg" | base64 -w0 > "$V/$1.sig"; }
printf 'DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00' > "$V/adyen_published.key"
printf '7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true' > "$V/adyen_published.msg"
hmac_b64 adyen_published "$(cat "$V/adyen_published.key")"
printf '44A8D5E2B7C39F106E2D4B7A8C9F0E1D2A3B4C5D6E7F8091A2B3C4D5E6F70819' > "$V/adyen_notification.key"
printf '8816178952380553:7914073381342284:PayTestMerchantECOM:order:42\\x:250:EUR:REFUND:false' > "$V/adyen_notification.msg"
hmac_b64 adyen_notification "$(cat "$V/adyen_notification.key")"
echo "vectors written to $(pwd)/$V"
