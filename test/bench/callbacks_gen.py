#!/usr/bin/python3
"""Signed PSP callbacks for test/bench/callbacks.sh, made by the fake PSP.

The callbacks are the ones test/fake_psp sends (its own payloads, its own
crypto: hmac/hashlib and python3-cryptography), built in-process with
sender.plan() in dry-run mode: a valid "paid" callback per order.  Alipay's
RSA2 signatures cost about a millisecond each in Python, so the work is split
over --jobs processes.

usage: callbacks_gen.py --provider stripe|alipay --gateway NAME --currency CUR
                        --csv OUT.csv [--first N] [--wrk OUT.req] [--jobs N]
                        < "order_id amount" lines

--csv   one CSV row per order for COPY ... (FORMAT csv):
        n (1, 2, ...), order_id, event_id, psp_txn_id, amount, headers (JSON), body
        headers are what pay-proxy would pass (the fake's headers plus Host
        and Content-Length).
--wrk   the same requests, appended to the file, for test/bench/callbacks.lua: per request a line
        "<path>\t<number of header lines>\t<body bytes>\n", the header lines
        "Name: value\n", then the body and "\n".
"""
import argparse
import csv
import json
import multiprocessing
import os
import random
import string
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fake_psp"))

import config  # noqa: E402  (the fake PSP's modules)
import ids  # noqa: E402
import sender  # noqa: E402
import server  # noqa: E402

_app = None


def _init():
    """Each worker: its own fake PSP state (no server, nothing listens).  Its
    random ids (evt_..., pi_..., notify_id, trade_no) come from a PRNG seeded
    from os.urandom per process instead of os.urandom per character: unique
    is all they need to be here, and that makes the Stripe callbacks 3x faster."""
    global _app
    rng = random.Random(os.urandom(16))
    letters = string.ascii_letters + string.digits
    ids.alnum = lambda n: "".join(rng.choices(letters, k=n))
    ids.digits = lambda n: "".join(rng.choices(string.digits, k=n))
    _app = server.App(config.load(), fast=True)


def _one(job):
    """(order_id, event_id, psp_txn_id, amount, headers dict, body str) of a paid callback."""
    provider, gateway, currency, order_id, amount = job
    p = sender.normalize({"provider": provider, "gateway": gateway, "order_id": order_id,
                          "amount": amount, "currency": currency, "event": "paid", "dry_run": True})
    req = sender.plan(_app, p)[0][0]
    body = req["body"].decode("utf-8") if isinstance(req["body"], bytes) else req["body"]
    if provider == "stripe":
        txn = json.loads(body)["data"]["object"]["id"]
    else:
        txn = dict(urllib.parse.parse_qsl(body))["trade_no"]
    return order_id, req["event_id"], txn, amount, dict(req["headers"]), body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--provider", required=True, choices=("stripe", "alipay"))
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--currency", required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--wrk")
    ap.add_argument("--first", type=int, default=1, help="number of the first row (--csv)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()

    jobs = []
    for line in sys.stdin:
        if line.strip():
            oid, amount = line.split()
            jobs.append((a.provider, a.gateway, a.currency, oid, int(amount)))
    if a.jobs > 1 and len(jobs) > 200:
        with multiprocessing.Pool(a.jobs, initializer=_init) as pool:
            rows = pool.map(_one, jobs, chunksize=max(1, len(jobs) // (a.jobs * 8)))
    else:
        _init()
        rows = [_one(j) for j in jobs]

    path = "/callbacks/" + a.gateway
    with open(a.csv, "w", newline="", encoding="utf-8") as f_csv:
        w = csv.writer(f_csv)
        f_wrk = open(a.wrk, "ab") if a.wrk else None
        for n, (oid, eid, txn, amount, headers, body) in enumerate(rows, a.first):
            raw = body.encode("utf-8")
            sql_headers = dict(headers, Host="127.0.0.1", **{"Content-Length": str(len(raw))})
            w.writerow([n, oid, eid, txn, amount, json.dumps(sql_headers, ensure_ascii=False), body])
            if f_wrk:
                lines = "".join(f"{k}: {v}\n" for k, v in headers.items())
                assert "\t" not in path and all("\n" not in f"{k}{v}" for k, v in headers.items())
                f_wrk.write(f"{path}\t{len(headers)}\t{len(raw)}\n{lines}".encode("utf-8") + raw + b"\n")
        if f_wrk:
            f_wrk.close()
    print(f"{len(rows)} {a.provider} callbacks", file=sys.stderr)


if __name__ == "__main__":
    main()
