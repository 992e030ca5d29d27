#!/bin/sh
# test/fake_psp/make_keys.sh — (re)generate the fake PSP's test key set and
# config.json with the openssl command.  The keys are test-only and committed;
# run this only to rotate them.  Everything lands in keys/ next to this script.
#
#   alipay_app_*          our Alipay app key pair: pay signs requests with the
#                         private key, the fake PSP verifies with the public key
#   alipay_platform_*     Alipay's key pair: the fake PSP signs notifies and
#                         gateway answers, pay verifies with the public key
#   wechat_merchant_*     our WeChat Pay merchant key and certificate (serial
#                         MERCHANT_SERIAL): pay signs Authorization headers
#   wechat_platform_*     WeChat Pay's platform key and certificate (serial
#                         PLATFORM_SERIAL): the fake PSP signs answers/notifies
#   wrong_*               an unrelated key pair, for "wrong key" variants
#   paypal_ca.*           a CA standing for PayPal's certificate chain
#   paypal_signing_*      PayPal's webhook signing key and its certificate
#                         (CN=messageverificationcerts.paypal.com, serial
#                         PAYPAL_SERIAL) signed by paypal_ca: the fake PSP signs
#                         webhooks, serves leaf + CA at PAYPAL-CERT-URL, pay
#                         verifies the chain up to paypal_ca.pem
#   tls_ca.*, tls_server.* a CA and a server certificate for 127.0.0.1/localhost
#   tls_other_ca.*        a second CA that did not sign the server certificate
set -eu
cd "$(dirname "$0")"
mkdir -p keys
cd keys

MERCHANT_SERIAL=3775B6A45ACD588826D15E583A95F5DD2C7C39A1
PLATFORM_SERIAL=5157F09EFDC096DE15EBE81A47057A7232F1B8E1
PAYPAL_SERIAL=360CAA42FCA2A5941D93A270
DAYS=3650

# rsa NAME — a 2048-bit RSA key (PKCS#8 PEM) and its SubjectPublicKeyInfo PEM
rsa() {
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1_private.pem" 2>/dev/null
  openssl pkey -in "$1_private.pem" -pubout -out "$1_public.pem"
}

# selfsigned NAME SERIAL SUBJECT — a self-signed certificate for NAME_private.pem
selfsigned() {
  openssl req -new -x509 -key "$1_private.pem" -days "$DAYS" -set_serial "0x$2" \
    -subj "$3" -out "$1_cert.pem"
}

rsa alipay_app
rsa alipay_platform
rsa wechat_merchant
selfsigned wechat_merchant "$MERCHANT_SERIAL" "/C=CN/O=pay test merchant/CN=1900000001"
rsa wechat_platform
selfsigned wechat_platform "$PLATFORM_SERIAL" "/C=CN/O=Tenpay.com/CN=Tenpay.com Root CA test"
rsa wrong

# PayPal: a CA and the webhook signing certificate it signed (the cert id in
# PAYPAL-CERT-URL is CERT-<serial in lower-case hex, dash every 8 digits>)
paypal() {
  openssl req -new -x509 -newkey rsa:2048 -nodes -keyout paypal_ca.key -days "$DAYS" -set_serial 0x2001 \
    -subj "/C=US/O=pay fake PayPal/CN=pay fake PayPal test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out paypal_ca.pem 2>/dev/null
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out paypal_signing_private.pem 2>/dev/null
  openssl req -new -key paypal_signing_private.pem \
    -subj "/C=US/ST=California/L=San Jose/O=PayPal, Inc./OU=pay fake PSP/CN=messageverificationcerts.paypal.com" \
    -out paypal_signing.csr
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' > paypal_signing.ext
  openssl x509 -req -in paypal_signing.csr -CA paypal_ca.pem -CAkey paypal_ca.key -set_serial "0x$PAYPAL_SERIAL" \
    -days "$DAYS" -extfile paypal_signing.ext -out paypal_signing_cert.pem 2>/dev/null
  rm -f paypal_signing.csr paypal_signing.ext
}
paypal

# TLS: a CA, a server certificate signed by it, and an unrelated CA
openssl req -new -x509 -newkey rsa:2048 -nodes -keyout tls_ca.key -days "$DAYS" \
  -subj "/CN=pay fake PSP test CA" -out tls_ca.pem 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout tls_server.key \
  -subj "/CN=localhost" -out tls_server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > tls_server.ext
openssl x509 -req -in tls_server.csr -CA tls_ca.pem -CAkey tls_ca.key -set_serial 0x1001 \
  -days "$DAYS" -extfile tls_server.ext -out tls_server.pem 2>/dev/null
rm -f tls_server.csr tls_server.ext
openssl req -new -x509 -newkey rsa:2048 -nodes -keyout tls_other_ca.key -days "$DAYS" \
  -subj "/CN=pay fake PSP other CA" -out tls_other_ca.pem 2>/dev/null

# secrets: random, in the formats the providers use
rnd() { openssl rand -hex 32 | cut -c1-"$1"; }
WHSEC="whsec_$(openssl rand -base64 24 | tr -d '/+=' | cut -c1-32)"
SK="sk_test_$(rnd 40)"
APIV3=$(rnd 32)
GENERIC=$(rnd 40)
GENERIC_API_KEY=gk_test_$(rnd 32)
ACME=$(rnd 48)
OTHER=$(rnd 48)
PAYPAL_CLIENT_ID="A$(openssl rand -base64 60 | tr -d '/+=\n' | cut -c1-79)"
PAYPAL_SECRET="E$(openssl rand -base64 60 | tr -d '/+=\n' | cut -c1-79)"
PAYPAL_WEBHOOK_ID=$(openssl rand -hex 16 | tr a-f A-F | cut -c1-17)
ADYEN_API_KEY="AQE$(openssl rand -base64 90 | tr -d '/+=\n' | cut -c1-100)"
ADYEN_HMAC=$(openssl rand -hex 32 | tr a-f A-F)

cat > ../config.json <<JSON
{
  "stripe": {
    "api_key": "$SK",
    "webhook_secret": "$WHSEC"
  },
  "alipay": {
    "app_id": "2021000000000001",
    "seller_id": "2088000000000001",
    "app_public_key": "keys/alipay_app_public.pem",
    "platform_private_key": "keys/alipay_platform_private.pem",
    "timestamp_tolerance_s": 900
  },
  "wechatpay": {
    "mchid": "1900000001",
    "appid": "wx00000000000000a1",
    "merchant_cert": "keys/wechat_merchant_cert.pem",
    "platform_private_key": "keys/wechat_platform_private.pem",
    "platform_cert": "keys/wechat_platform_cert.pem",
    "apiv3_key": "$APIV3",
    "timestamp_tolerance_s": 300
  },
  "paypal": {
    "client_id": "$PAYPAL_CLIENT_ID",
    "client_secret": "$PAYPAL_SECRET",
    "webhook_id": "$PAYPAL_WEBHOOK_ID",
    "signing_private_key": "keys/paypal_signing_private.pem",
    "signing_cert": "keys/paypal_signing_cert.pem",
    "ca_cert": "keys/paypal_ca.pem",
    "token_ttl_s": 32400
  },
  "adyen": {
    "api_key": "$ADYEN_API_KEY",
    "hmac_key": "$ADYEN_HMAC",
    "merchant_account": "PayTestMerchantECOM"
  },
  "generic": {
    "webhook_secret": "$GENERIC",
    "api_key": "$GENERIC_API_KEY"
  },
  "merchants": {
    "acme": {"api_secret": "$ACME"},
    "other": {"api_secret": "$OTHER"}
  },
  "merchant_tolerance_s": 300,
  "wrong_private_key": "keys/wrong_private.pem",
  "pay": {
    "comment": "what pay's secret store needs to talk to this fake PSP (the fake ignores this section)",
    "alipay_app_private_key": "keys/alipay_app_private.pem",
    "alipay_platform_public_key": "keys/alipay_platform_public.pem",
    "wechat_merchant_private_key": "keys/wechat_merchant_private.pem",
    "wechat_merchant_serial": "$MERCHANT_SERIAL",
    "wechat_platform_cert": "keys/wechat_platform_cert.pem",
    "wechat_platform_serial": "$PLATFORM_SERIAL",
    "tls_ca": "keys/tls_ca.pem",
    "tls_server_cert": "keys/tls_server.pem",
    "tls_server_key": "keys/tls_server.key",
    "tls_other_ca": "keys/tls_other_ca.pem",
    "paypal_ca": "keys/paypal_ca.pem"
  }
}
JSON
echo "keys written to $(pwd), config to $(cd .. && pwd)/config.json"
