#!/bin/sh
# Test keys for the callback tests, made with the openssl command (not our
# code): Alipay's platform key pair (it signs notifies, we verify with the
# public key) and a WeChat Pay platform key with a self-signed certificate
# whose serial the callbacks name.  Test keys only: never use them for money.
set -e
cd "$(dirname "$0")"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out alipay_platform_key.pem 2>/dev/null
openssl pkey -in alipay_platform_key.pem -pubout -out alipay_platform_pub.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out wechat_platform_key.pem 2>/dev/null
openssl req -new -x509 -key wechat_platform_key.pem -out wechat_platform_cert.pem -days 36500 \
  -subj "/CN=Test WeChat Pay platform" -set_serial 0x5157F09EFDC096DE15EBE81A47057A72 2>/dev/null
