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
echo "vectors written to $(pwd)/$V"
