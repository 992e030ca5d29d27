#!/usr/bin/python3
"""Load for test/bench/checkout.sh: CLIENTS threads, each with one keep-alive
connection, for SECONDS seconds.

  checkout_client.py pay URL SECRET MERCHANT CLIENTS SECONDS
      POST /api/v1/payments (signed with Python's hmac, as a merchant would),
      timing each call from the first byte sent to the answer: a 201 carries
      next_action (the PSP answered within the wait), a 202 does not.
  checkout_client.py psp URL API_KEY CLIENTS SECONDS
      the PSP alone: POST /v1/payment_intents to the fake PSP, the same
      number of clients (the baseline: what the PSP itself costs).

Prints one JSON object: calls, per status, requests/s, p50/p99 in ms (of the
calls that got next_action, or of every PSP call), errors."""
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

# the merchant's side of the signature, as test/vectors/merchant_sign.py computes it
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors"))
from merchant_sign import sign  # noqa: E402


def pay_call(conn, secret, merchant, n):
    body = {"merchant_order_no": f"B-{os.getpid()}-{threading.get_ident()}-{n}", "amount": 1000 + n % 9000,
            "currency": "USD"}
    ts = str(int(time.time()))
    nonce = f"n{threading.get_ident()}x{n}x{time.monotonic_ns()}"
    sig = sign(secret, merchant, ts, nonce, body)
    raw = json.dumps(body)
    conn.request("POST", "/api/v1/payments", raw, {
        "Content-Type": "application/json", "X-Pay-Merchant": merchant, "X-Pay-Timestamp": ts,
        "X-Pay-Nonce": nonce, "X-Pay-Signature": sig})
    r = conn.getresponse()
    answer = r.read()
    if r.status == 201 and json.loads(answer).get("next_action") is None:
        return "201_without_next_action"
    return str(r.status)


def psp_call(conn, api_key, n):
    form = urllib.parse.urlencode({"amount": str(1000 + n % 9000), "currency": "usd",
                                   "metadata[order_id]": str(n)})
    conn.request("POST", "/v1/payment_intents", form, {
        "Authorization": "Bearer " + api_key, "Content-Type": "application/x-www-form-urlencoded",
        "Idempotency-Key": f"bench-{threading.get_ident()}-{n}-{time.monotonic_ns()}"})
    r = conn.getresponse()
    r.read()
    return "ok" if r.status == 200 else str(r.status)


def run(kind, url, args, clients, seconds):
    u = urllib.parse.urlsplit(url)
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    times, statuses, errors = [], {}, []

    def worker(w):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        n = w * 10_000_000
        while time.monotonic() < stop:
            n += 1
            t0 = time.monotonic()
            try:
                s = pay_call(conn, *args, n) if kind == "pay" else psp_call(conn, *args, n)
            except Exception as e:          # a refused or dropped connection: counted, then a new one
                with lock:
                    errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                continue
            dt = (time.monotonic() - t0) * 1000.0
            with lock:
                statuses[s] = statuses.get(s, 0) + 1
                if s in ("201", "ok"):
                    times.append(dt)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    times.sort()

    def pct(p):
        return round(times[min(len(times) - 1, int(p * len(times)))], 1) if times else None
    calls = sum(statuses.values())
    print(json.dumps({"calls": calls, "statuses": statuses, "per_s": round(calls / elapsed, 1),
                      "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": len(errors),
                      "first_error": errors[0] if errors else None}))


def main():
    kind = sys.argv[1]
    if kind == "pay":
        url, secret, merchant, clients, seconds = sys.argv[2:7]
        run("pay", url, (secret, merchant), int(clients), float(seconds))
    elif kind == "psp":
        url, api_key, clients, seconds = sys.argv[2:6]
        run("psp", url, (api_key,), int(clients), float(seconds))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
