#!/usr/bin/env bash
# test/vectors/rsa_vectors.sh — test keys and known-answer vectors for the RSA
# signers (sql/sign_rsa.sql, sign_alipay.sql, sign_wechatpay.sql, sign_paypal.sql).
#
# Independent implementations only: keys and certificates come from the
# `openssl` command; signatures, AES-GCM ciphertexts and CRC-32s from
# /usr/bin/python3 with python3-cryptography and zlib (rsa_vectors.py), and
# every RSA signature is re-checked here with `openssl dgst -sha256 -verify`.
# Keys are made only when missing (they are committed: new keys would change
# every fixture); rerun with REGEN_KEYS=1 to replace them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k=$here/keys
mkdir -p "$k"

if [ "${REGEN_KEYS:-0}" = 1 ] || [ ! -f "$k/a_pkcs8.pem" ]; then
  for n in a b; do
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k/${n}_pkcs8.pem"
    openssl pkey -in "$k/${n}_pkcs8.pem" -pubout -out "$k/${n}_spki.pem"
    openssl req -x509 -new -key "$k/${n}_pkcs8.pem" -subj "/CN=pay test key ${n}" \
      -days 36500 -sha256 -out "$k/${n}_cert.pem"
  done
  # PKCS#1 forms of key a: "RSA PRIVATE KEY" and "RSA PUBLIC KEY"
  openssl pkey -in "$k/a_pkcs8.pem" -traditional -out "$k/a_pkcs1.pem"
  openssl rsa -in "$k/a_pkcs8.pem" -RSAPublicKey_out -out "$k/a_rsapub.pem"
  # a passphrase-protected PKCS#8 key (must be refused, never prompt)
  openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$k/a_pkcs8.pem" -passout pass:secret \
    -out "$k/a_encrypted.pem"
  # not usable for RSA-SHA256: an EC key and a 1024-bit RSA key
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$k/ec_pkcs8.pem"
  openssl pkey -in "$k/ec_pkcs8.pem" -pubout -out "$k/ec_spki.pem"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$k/small_pkcs8.pem"
  openssl pkey -in "$k/small_pkcs8.pem" -pubout -out "$k/small_spki.pem"
fi

# Bare base64 bodies, as provider consoles hand them out: one line, no armour.
body() { grep -v -- '-----' "$1" | tr -d '\n'; }
body "$k/a_spki.pem" > "$k/a_spki.b64"
body "$k/a_rsapub.pem" > "$k/a_rsapub.b64"
body "$k/b_spki.pem" > "$k/b_spki.b64"

/usr/bin/python3 "$here/rsa_vectors.py" "$k" > "$here/rsa_vectors.json"

# Cross-check every RSA signature of the fixture with the openssl command.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$here/rsa_vectors.json" "$tmp" <<'PY'
import json, sys, base64, os
v = json.load(open(sys.argv[1])); out = sys.argv[2]; i = 0
def emit(msg, sig):
    global i
    open(os.path.join(out, f"{i}.msg"), "wb").write(msg.encode())
    open(os.path.join(out, f"{i}.sig"), "wb").write(base64.b64decode(sig)); i += 1
for r in v["rsa"]: emit(r["message"], r["signature"])
emit(v["alipay_notify"]["canonical"], v["alipay_notify"]["params"]["sign"])
emit(v["alipay_request"]["canonical"], v["alipay_request"]["sign"])
for r in v["alipay_response"]: emit(r["signed_text"], r["signature"])
emit(v["wechatpay_auth"]["message"], v["wechatpay_auth"]["signature"])
emit(v["wechatpay_callback"]["message"], v["wechatpay_callback"]["signature"])
emit(v["paypal"]["message"], v["paypal"]["signature"])
PY
for m in "$tmp"/*.msg; do
  openssl dgst -sha256 -verify "$k/a_spki.pem" -signature "${m%.msg}.sig" "$m" >/dev/null
  # PKCS#1 v1.5 is deterministic: openssl's own signature must be the same bytes
  openssl dgst -sha256 -sign "$k/a_pkcs8.pem" -out "$tmp/o.sig" "$m"
  cmp -s "$tmp/o.sig" "${m%.msg}.sig" || { echo "openssl disagrees on $m" >&2; exit 1; }
done
echo "rsa_vectors.json: $(ls "$tmp"/*.msg | wc -l) signatures checked with openssl" >&2
