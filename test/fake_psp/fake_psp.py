#!/usr/bin/python3
"""fake_psp.py — a small, independent server that plays Stripe, Alipay, WeChat
Pay, PayPal and Adyen (and a merchant's notify endpoint) closely enough to
exercise pay.
Its crypto is Python's hmac/hashlib and the cryptography package, never pay's.

  fake_psp.py [serve] [--port 0] [--host 127.0.0.1] [--config config.json]
              [--tls-cert cert.pem --tls-key key.pem] [--fast] [--verbose]
      Serve.  The first stdout line is "listening <port>" (port 0 picks a free
      one).  SIGTERM or SIGINT stops it.  See README.md for the routes.

  fake_psp.py send --provider stripe --target http://127.0.0.1:8080 \\
              --order-id 42 --amount 1234 --currency USD [--event paid]
              [--variant none] [--count 1] [--concurrency 1] [--gateway NAME] ...
      Build, sign and send callbacks to pay-proxy's POST /callbacks/{gateway};
      prints one line "HTTP <status> <body>" (or "ERROR <reason>") per request.
      With --via http://127.0.0.1:<port> a running fake PSP sends them (so its
      payment state is used and updated)."""

import argparse
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import config  # noqa: E402
import sender  # noqa: E402
import server  # noqa: E402


def serve(args):
    """Run the server until SIGTERM/SIGINT."""
    if bool(args.tls_cert) != bool(args.tls_key):
        print("fake_psp: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        cfg = config.load(args.config)
        srv, thread = server.start(cfg, args.host, args.port, args.tls_cert, args.tls_key,
                                   fast=args.fast, verbose=args.verbose, max_records=args.max_records)
    except (config.ConfigError, OSError, ValueError) as e:
        print(f"fake_psp: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"listening {srv.server_address[1]}", flush=True)
    if args.verbose:
        print(f"fake_psp: serving {srv.app.base_url} (fast={args.fast})", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        if not thread.is_alive():
            break
    server.stop(srv)
    return 0


def send(args):
    """Send callbacks and print what came back."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    params = {k: v for k, v in {
        "provider": args.provider, "gateway": args.gateway, "target": args.target, "url": args.url,
        "order_id": args.order_id, "amount": args.amount, "currency": args.currency, "event": args.event,
        "variant": args.variant, "count": args.count, "concurrency": args.concurrency,
        "txn_id": args.txn_id, "event_id": args.event_id, "refund_amount": args.refund_amount,
        "refund_id": args.refund_id, "age_s": args.age_s, "timeout_s": args.timeout_s,
        "cafile": args.cafile, "insecure": args.insecure or None, "dry_run": args.dry_run or None,
    }.items() if v is not None}
    if args.via:
        req = urllib.request.Request(args.via.rstrip("/") + "/control/send", data=json.dumps(params).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=args.timeout_s or 60) as resp:
                out = json.load(resp)
        except urllib.error.HTTPError as e:
            print(f"fake_psp send: {e.code} {e.read().decode('utf-8', 'replace')}", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"fake_psp send: {e}", file=sys.stderr)
            return 2
    else:
        try:
            app = server.App(config.load(args.config))
            out = sender.send(app, params)
        except (config.ConfigError, ValueError) as e:
            print(f"fake_psp send: {e}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
    elif args.dry_run:
        for r in out["requests"]:
            print(json.dumps(r, ensure_ascii=False))
    failed = 0
    for r in out.get("results", []):
        if r.get("error"):
            failed += 1
        if args.json:
            continue
        if r.get("error"):
            print(f"ERROR {r['error']}")
        else:
            body = r["body"].replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            print(f"HTTP {r['status']} {body}")
    return 1 if failed else 0


def main(argv):
    """Parse the command line and run serve or send."""
    top = argparse.ArgumentParser(prog="fake_psp.py", description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command")
    sv = sub.add_parser("serve", help="run the server (the default)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=0, help="0: pick a free port (printed as 'listening <port>')")
    sv.add_argument("--config", default=None, help="JSON configuration (default: config.json next to this file)")
    sv.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    sv.add_argument("--tls-key", help="the certificate's private key (PEM)")
    sv.add_argument("--fast", action="store_true", help="benchmark mode: counters only, no request recording")
    sv.add_argument("--verbose", action="store_true", help="access log on stderr")
    sv.add_argument("--max-records", type=int, default=100000, help="requests kept in memory (oldest dropped)")
    sd = sub.add_parser("send", help="send signed callbacks to pay")
    sd.add_argument("--provider", required=True, choices=sorted(sender.PROVIDERS))
    sd.add_argument("--gateway", help="gateway name in /callbacks/{gateway} (default: the provider)")
    sd.add_argument("--target", help="pay-proxy base URL, e.g. http://127.0.0.1:8080")
    sd.add_argument("--url", help="full callback URL (overrides --target/--gateway)")
    sd.add_argument("--order-id", required=True)
    sd.add_argument("--amount", required=True, type=int, help="minor units")
    sd.add_argument("--currency")
    sd.add_argument("--event", default="paid", help="native event name or paid | failed | refunded | closed")
    sd.add_argument("--variant", default="none", choices=sender.VARIANTS)
    sd.add_argument("--count", type=int)
    sd.add_argument("--concurrency", type=int)
    sd.add_argument("--txn-id")
    sd.add_argument("--event-id")
    sd.add_argument("--refund-amount", type=int)
    sd.add_argument("--refund-id")
    sd.add_argument("--age-s", type=int, help="age of a stale callback (default 3600)")
    sd.add_argument("--timeout-s", type=int)
    sd.add_argument("--cafile", help="CA bundle for an https target")
    sd.add_argument("--insecure", action="store_true", help="do not verify an https target")
    sd.add_argument("--config", default=None)
    sd.add_argument("--via", help="ask the fake PSP running at this base URL to send")
    sd.add_argument("--json", action="store_true", help="print the whole result as JSON")
    sd.add_argument("--dry-run", action="store_true", help="print the requests, send nothing")
    if not argv or argv[0] not in ("serve", "send", "-h", "--help"):
        argv = ["serve"] + list(argv)
    args = top.parse_args(argv)
    return serve(args) if args.command == "serve" else send(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
