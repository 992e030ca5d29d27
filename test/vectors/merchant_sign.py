#!/usr/bin/python3
"""X-Pay-Signature for a merchant API request, computed independently of pay.

usage: merchant_sign.py SECRET MERCHANT TIMESTAMP NONCE PARAMS_JSON
PARAMS_JSON is the JSON body (POST) or {"id": "..."} (GET).  Prints the hex
HMAC-SHA256 (Python's hmac) of the canonical string of the params plus
merchant, timestamp and nonce: keys sorted by bytes, k=v joined by &, empty
values left out, nested values as json.dumps(sort_keys=True) compact JSON.
"""
import hashlib
import hmac
import json
import sys


def text(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        return v or None
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign(secret, merchant, ts, nonce, params):
    """The hex signature of a request with these params (a dict)."""
    p = dict(params, merchant=merchant, timestamp=ts, nonce=nonce)
    pairs = [(k, text(p[k])) for k in sorted(p, key=lambda k: k.encode())]
    canonical = "&".join(f"{k}={v}" for k, v in pairs if v is not None)
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def main():
    secret, merchant, ts, nonce, params = sys.argv[1:6]
    print(sign(secret, merchant, ts, nonce, json.loads(params)))


if __name__ == "__main__":
    main()
