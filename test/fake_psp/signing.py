"""Signing and verification for the fake PSP: the providers' schemes built on
Python's hmac/hashlib and the cryptography package (RSA PKCS#1 v1.5 SHA-256,
AES-256-GCM).  Independent of pay's C code on purpose."""

import base64
import binascii
import hashlib
import hmac
import time
import zlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def canonical_query(params, exclude=("sign", "sign_type")):
    """Keys in byte order, k=v joined by &, empty values and excluded keys left out, values unescaped."""
    items = []
    for key, value in params.items():
        if key in exclude or value is None:
            continue
        value = value if isinstance(value, str) else str(value)
        if value == "":
            continue
        items.append((key, value))
    items.sort(key=lambda kv: kv[0].encode("utf-8"))
    return "&".join(f"{k}={v}" for k, v in items)


def to_bytes(text):
    """UTF-8 bytes of text (bytes pass through)."""
    return text if isinstance(text, bytes) else text.encode("utf-8")


def hmac_sha256_hex(key, message):
    """Lower-case hex HMAC-SHA256."""
    return hmac.new(to_bytes(key), to_bytes(message), hashlib.sha256).hexdigest()


def hex_equal(expected_hex, given):
    """Constant-time comparison of a hex digest with a given (any case) string."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(expected_hex.encode(), given.strip().lower().encode())


def load_private_key(pem):
    """An RSA private key from PKCS#8 or PKCS#1 PEM bytes."""
    return serialization.load_pem_private_key(to_bytes(pem), password=None)


def load_public_key(data):
    """A public key from SubjectPublicKeyInfo PEM, an X.509 certificate PEM or a bare base64 key body."""
    data = to_bytes(data).strip()
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    if b"-----BEGIN" in data:
        return serialization.load_pem_public_key(data)
    return serialization.load_der_public_key(base64.b64decode(data))


def cert_serial_hex(pem):
    """A certificate's serial number as upper-case hex, as WeChat Pay writes it."""
    return format(x509.load_pem_x509_certificate(to_bytes(pem)).serial_number, "X")


def rsa_sign_b64(private_key, message):
    """Base64 RSA PKCS#1 v1.5 SHA-256 signature of message."""
    sig = private_key.sign(to_bytes(message), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sig).decode("ascii")


def rsa_valid_b64(public_key, message, signature_b64):
    """True when signature_b64 is a valid RSA PKCS#1 v1.5 SHA-256 signature of message."""
    if not signature_b64 or not isinstance(signature_b64, str):
        return False
    try:
        sig = base64.b64decode(signature_b64, validate=True)
        public_key.verify(sig, to_bytes(message), padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, binascii.Error, ValueError):
        return False


# --- Stripe -----------------------------------------------------------------

def stripe_signature(payload, secret, ts):
    """Hex v1 signature: HMAC-SHA256(secret, "<ts>.<payload>")."""
    return hmac_sha256_hex(secret, to_bytes(str(ts)) + b"." + to_bytes(payload))


def stripe_signature_header(payload, secret, ts, extra_v0_secret=None):
    """A Stripe-Signature header value: t=...,v1=...[,v0=...]."""
    header = f"t={ts},v1={stripe_signature(payload, secret, ts)}"
    if extra_v0_secret:
        header += f",v0={stripe_signature(payload, extra_v0_secret, ts)}"
    return header


def stripe_signature_valid(payload, header, secret, tolerance_s=300, now=None):
    """Stripe's rule: any v1 matches and |now - t| <= tolerance_s (0 disables the time check)."""
    ts, sigs = None, []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            ts = value
        elif key == "v1":
            sigs.append(value)
    if ts is None or not ts.isdigit() or not sigs:
        return False
    if tolerance_s and abs((now or time.time()) - int(ts)) > tolerance_s:
        return False
    expected = stripe_signature(payload, secret, ts)
    return any(hex_equal(expected, s) for s in sigs)


# --- WeChat Pay v3 ----------------------------------------------------------

def wechat_request_message(method, url, ts, nonce, body):
    """What a WeChat Pay v3 request signature covers."""
    return f"{method}\n{url}\n{ts}\n{nonce}\n".encode("utf-8") + to_bytes(body) + b"\n"


def wechat_response_message(ts, nonce, body):
    """What a WeChat Pay v3 answer or notification signature covers."""
    return f"{ts}\n{nonce}\n".encode("utf-8") + to_bytes(body) + b"\n"


def wechat_authorization(method, url, body, mchid, serial_no, private_key, ts, nonce):
    """An Authorization header value for a WeChat Pay v3 request."""
    sig = rsa_sign_b64(private_key, wechat_request_message(method, url, ts, nonce, body))
    return (f'WECHATPAY2-SHA256-RSA2048 mchid="{mchid}",nonce_str="{nonce}",'
            f'signature="{sig}",timestamp="{ts}",serial_no="{serial_no}"')


def parse_wechat_authorization(value):
    """The scheme's fields (mchid, nonce_str, signature, timestamp, serial_no), or None."""
    scheme, _, rest = (value or "").strip().partition(" ")
    if scheme != "WECHATPAY2-SHA256-RSA2048":
        return None
    fields = {}
    for part in rest.split(","):
        key, eq, val = part.strip().partition("=")
        if not eq:
            return None
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1]
        fields[key.strip()] = val
    return fields


def aes_gcm_encrypt(key, nonce, associated_data, plaintext):
    """Base64 of AES-256-GCM ciphertext with the 16-byte tag appended."""
    ct = AESGCM(to_bytes(key)).encrypt(to_bytes(nonce), to_bytes(plaintext), to_bytes(associated_data))
    return base64.b64encode(ct).decode("ascii")


def aes_gcm_decrypt(key, nonce, associated_data, ciphertext_b64):
    """The plaintext bytes, or None when the tag does not verify."""
    try:
        return AESGCM(to_bytes(key)).decrypt(to_bytes(nonce), base64.b64decode(ciphertext_b64),
                                             to_bytes(associated_data))
    except (InvalidTag, binascii.Error, ValueError):
        return None


# --- PayPal -----------------------------------------------------------------

def paypal_cert_id(pem):
    """The id PayPal puts in PAYPAL-CERT-URL for a certificate: CERT-<serial in
    lower-case hex, a dash every 8 digits> (CERT-360caa42-fca2a594-1d93a270)."""
    hexs = format(x509.load_pem_x509_certificate(to_bytes(pem)).serial_number, "x")
    hexs = hexs.rjust((len(hexs) + 7) // 8 * 8, "0")
    return "CERT-" + "-".join(hexs[i:i + 8] for i in range(0, len(hexs), 8))


def paypal_signed_message(transmission_id, transmission_time, webhook_id, body):
    """What PAYPAL-TRANSMISSION-SIG covers: "<id>|<time>|<webhook id>|<CRC32 of the raw
    body as an unsigned decimal>"."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(to_bytes(body))}".encode("utf-8")


# --- Adyen ------------------------------------------------------------------

ADYEN_HMAC_FIELDS = ("pspReference", "originalReference", "merchantAccountCode", "merchantReference",
                     "value", "currency", "eventCode", "success")


def adyen_hmac_data(item):
    """The string an Adyen standard notification item's hmacSignature covers: the eight
    values joined by ':' as they appear in the item (value and currency from amount,
    empty for a missing field).  No escaping: Adyen's own libraries join the raw
    values for notifications (the backslash/colon escaping is the rule of Adyen's
    hosted-page signing strings, not of notifications)."""
    amount = item.get("amount") or {}
    values = dict(item, value=amount.get("value", ""), currency=amount.get("currency", ""))
    return ":".join("" if values.get(f) is None else str(values.get(f)) for f in ADYEN_HMAC_FIELDS)


def adyen_hmac_b64(hex_key, item):
    """Base64 HMAC-SHA256 of adyen_hmac_data(item), the key given in hex."""
    mac = hmac.new(bytes.fromhex(hex_key), adyen_hmac_data(item).encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")
