#!/usr/bin/python3
"""Tests of the fake PSP itself.  Run: /usr/bin/python3 -m unittest -v test_fake_psp
(from test/fake_psp).  The server runs in-process on a free port; requests are
built here with Python's own crypto (hmac/hashlib, cryptography), not with the
fake PSP's signing module, and known answers come from the openssl command."""

import base64
import csv
import io
import datetime
import functools
import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import warnings
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import config as fp_config  # noqa: E402
import server as fp_server  # noqa: E402
import signing as fp_signing  # noqa: E402

with open(os.path.join(HERE, "config.json"), encoding="utf-8") as _f:
    CONF = json.load(_f)
KEYS = os.path.join(HERE, "keys")
BEIJING = datetime.timezone(datetime.timedelta(hours=8))
STRIPE_KEY = CONF["stripe"]["api_key"]
WHSEC = CONF["stripe"]["webhook_secret"]
ALIPAY_APP_ID = CONF["alipay"]["app_id"]
MCHID = CONF["wechatpay"]["mchid"]
APPID = CONF["wechatpay"]["appid"]
APIV3 = CONF["wechatpay"]["apiv3_key"]
MERCHANT_SERIAL = CONF["pay"]["wechat_merchant_serial"]
PLATFORM_SERIAL = CONF["pay"]["wechat_platform_serial"]
ACME_SECRET = CONF["merchants"]["acme"]["api_secret"]


# --- the test's own crypto (independent of signing.py) -----------------------

def read(path):
    with open(path, "rb") as f:
        return f.read()


@functools.lru_cache(maxsize=None)
def priv(name):
    return serialization.load_pem_private_key(read(os.path.join(KEYS, name)), password=None)


@functools.lru_cache(maxsize=None)
def pub(name):
    data = read(os.path.join(KEYS, name))
    if b"CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)


def rsa_sign(key, msg):
    return base64.b64encode(key.sign(msg if isinstance(msg, bytes) else msg.encode(),
                                     padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_ok(key, msg, sig_b64):
    try:
        key.verify(base64.b64decode(sig_b64), msg if isinstance(msg, bytes) else msg.encode(),
                   padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, ValueError):
        return False


def canon(params, exclude=("sign", "sign_type")):
    return "&".join(f"{k}={params[k]}" for k in sorted(params, key=lambda k: k.encode())
                    if k not in exclude and params[k] != "")


def hmac_hex(key, msg):
    return hmac.new(key.encode(), msg if isinstance(msg, bytes) else msg.encode(), hashlib.sha256).hexdigest()


def bj(ts):
    return datetime.datetime.fromtimestamp(ts, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def openssl(*args, stdin=b""):
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=True).stdout


# --- HTTP helpers ------------------------------------------------------------

def request(base, method, path, body=b"", headers=None, timeout=10, context=None):
    """(status, headers dict lower-case, body bytes)."""
    u = urllib.parse.urlsplit(base)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def control(base, method, path, obj=None):
    status, _, body = request(base, method, "/control/" + path,
                              json.dumps(obj).encode() if obj is not None else b"",
                              {"Content-Type": "application/json"})
    return status, json.loads(body)


class ServerCase(unittest.TestCase):
    """A fake PSP in-process on a free port, reset before each test."""

    fast = False

    @classmethod
    def setUpClass(cls):
        cls.srv, _ = fp_server.start(fp_config.load(), "127.0.0.1", 0, fast=cls.fast)
        cls.base = cls.srv.app.base_url

    @classmethod
    def tearDownClass(cls):
        fp_server.stop(cls.srv)

    def setUp(self):
        control(self.base, "POST", "reset", {})

    def effects(self):
        return control(self.base, "GET", "effects")[1]

    def call(self, method, path, body=b"", headers=None, timeout=10):
        return request(self.base, method, path, body, headers, timeout)


# --- request builders playing pay ----------------------------------------------

def stripe_post(case, path, form, key=STRIPE_KEY, idem=None):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-www-form-urlencoded"}
    if idem:
        headers["Idempotency-Key"] = idem
    status, h, body = case.call("POST", path, urllib.parse.urlencode(form), headers)
    return status, h, json.loads(body)


def alipay_body(method, biz, key=None, ts=None, sign_without_sign_type=False, app_id=ALIPAY_APP_ID):
    params = {"app_id": app_id, "method": method, "format": "JSON", "charset": "utf-8",
              "sign_type": "RSA2", "timestamp": bj(ts if ts is not None else time.time()),
              "version": "1.0", "biz_content": json.dumps(biz, separators=(",", ":"))}
    exclude = ("sign", "sign_type") if sign_without_sign_type else ("sign",)
    params["sign"] = rsa_sign(key or priv("alipay_app_private.pem"), canon(params, exclude))
    return params


def alipay_call(case, method, biz, **kw):
    params = alipay_body(method, biz, **kw)
    status, h, body = case.call("POST", "/gateway.do", urllib.parse.urlencode(params),
                                {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
    case.assertEqual(status, 200)
    return body.decode()


def alipay_member(text):
    """(name, member object, raw member text, sign or None), parsed by hand."""
    dec = json.JSONDecoder()
    assert text.startswith('{"')
    name_end = text.index('":', 2)
    name = text[2:name_end]
    start = name_end + 2
    member, end = dec.raw_decode(text, start)
    raw = text[start:end]
    rest = json.loads("{" + text[end + 1:]) if text[end] == "," else {}
    return name, member, raw, rest.get("sign")


def wechat_headers(method, url, body, key=None, serial=MERCHANT_SERIAL, ts=None, nonce=None, mchid=MCHID):
    ts = str(int(ts if ts is not None else time.time()))
    nonce = nonce or secrets.token_hex(16)
    msg = f"{method}\n{url}\n{ts}\n{nonce}\n{body}\n"
    sig = rsa_sign(key or priv("wechat_merchant_private.pem"), msg)
    h = {"Authorization": f'WECHATPAY2-SHA256-RSA2048 mchid="{mchid}",nonce_str="{nonce}",'
                          f'signature="{sig}",timestamp="{ts}",serial_no="{serial}"',
         "Accept": "application/json", "User-Agent": "pay-test"}
    if method == "POST":
        h["Content-Type"] = "application/json"
    return h


def wechat_call(case, method, url, obj=None, **kw):
    body = json.dumps(obj) if obj is not None else ""
    return case.call(method, url, body, wechat_headers(method, url, body, **kw))


def wechat_answer_ok(case, headers, body):
    """The answer's platform signature verifies with the platform certificate."""
    case.assertEqual(headers["wechatpay-serial"], PLATFORM_SERIAL)
    msg = headers["wechatpay-timestamp"].encode() + b"\n" + headers["wechatpay-nonce"].encode() + b"\n" + body + b"\n"
    case.assertTrue(rsa_ok(pub("wechat_platform_cert.pem"), msg, headers["wechatpay-signature"]))


def native_order(no, total=1234, description="test order"):
    return {"appid": APPID, "mchid": MCHID, "description": description, "out_trade_no": no,
            "notify_url": "https://pay.example/callbacks/wx", "amount": {"total": total, "currency": "CNY"}}


def merchant_form(secret=ACME_SECRET, ts=None, nonce=None, event_id=None, status="paid", **extra):
    params = {"order_id": "42", "merchant_order_no": "INV-42", "amount": "1234", "currency": "USD",
              "status": status, "event_id": event_id or "ev_" + secrets.token_hex(8),
              "timestamp": str(int(ts if ts is not None else time.time())),
              "nonce": nonce or secrets.token_hex(12)}
    params.update(extra)
    params["sign"] = hmac_hex(secret, canon(params))
    return params


# --- tests ---------------------------------------------------------------------

class StripeApiTest(ServerCase):

    def test_api_key_checked(self):
        status, _, body = stripe_post(self, "/v1/payment_intents", {"amount": 100, "currency": "usd"})
        self.assertEqual(status, 200, body)
        status, _, body = stripe_post(self, "/v1/payment_intents", {"amount": 100, "currency": "usd"},
                                      key="sk_test_wrong0000000000000000")
        self.assertEqual(status, 401)
        self.assertIn("Invalid API Key", body["error"]["message"])
        status, _, body = self.call("POST", "/v1/payment_intents", "amount=1&currency=usd",
                                    {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 401)
        basic = base64.b64encode(f"{STRIPE_KEY}:".encode()).decode()
        status, _, _ = self.call("POST", "/v1/payment_intents", "amount=1&currency=usd",
                                 {"Authorization": f"Basic {basic}",
                                  "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200)

    def test_create_retrieve_validate(self):
        status, _, pi = stripe_post(self, "/v1/payment_intents",
                                    {"amount": 1234, "currency": "USD", "metadata[order_id]": "42"})
        self.assertEqual(status, 200)
        self.assertTrue(pi["id"].startswith("pi_"))
        self.assertEqual((pi["amount"], pi["currency"], pi["metadata"], pi["status"]),
                         (1234, "usd", {"order_id": "42"}, "requires_payment_method"))
        status, _, body = self.call("GET", f"/v1/payment_intents/{pi['id']}", b"",
                                    {"Authorization": f"Bearer {STRIPE_KEY}"})
        self.assertEqual((status, json.loads(body)), (200, pi))
        status, _, body = self.call("GET", "/v1/payment_intents/pi_nope", b"",
                                    {"Authorization": f"Bearer {STRIPE_KEY}"})
        self.assertEqual((status, json.loads(body)["error"]["code"]), (404, "resource_missing"))
        status, _, body = stripe_post(self, "/v1/payment_intents", {"currency": "usd"})
        self.assertEqual((status, body["error"]["code"], body["error"]["param"]), (400, "parameter_missing", "amount"))

    def test_itemized_report(self):
        """A report run of the fake's own records, its columns in index order, the CSV file."""
        status, _, pi = stripe_post(self, "/v1/payment_intents",
                                    {"amount": 2500, "currency": "usd", "metadata[order_id]": "77",
                                     "confirm": "true", "payment_method": "pm_card_visa"})
        self.assertEqual((status, pi["status"]), (200, "succeeded"))
        status, _, ref = stripe_post(self, "/v1/refunds", {"payment_intent": pi["id"], "amount": 500})
        self.assertEqual(status, 200, ref)
        cols = ["payment_intent_id", "reporting_category", "gross", "fee", "net", "currency", "source_id",
                "description", "created_utc", "balance_transaction_id", "payment_metadata[order_id]"]
        # indices as a sorting form encoder sends them: [0], [10], [1], ...
        form = [("report_type", "balance_change_from_activity.itemized.3"),
                ("parameters[interval_start]", "0"), ("parameters[interval_end]", "9999999999")]
        form += sorted((f"parameters[columns][{i}]", c) for i, c in enumerate(cols))
        status, _, run = stripe_post(self, "/v1/reporting/report_runs", form)
        self.assertEqual((status, run["status"], run["parameters"]["columns"]), (200, "succeeded", cols))
        path = urllib.parse.urlsplit(run["result"]["url"]).path
        status, _, body = self.call("GET", path, b"", {"Authorization": f"Bearer {STRIPE_KEY}"})
        self.assertEqual(status, 200)
        rows = list(csv.reader(io.StringIO(body.decode())))
        self.assertEqual(rows[0], cols)
        self.assertEqual(rows[1][:6], [pi["id"], "charge", "25.00", "1.03", "23.97", "usd"])
        self.assertEqual(rows[1][10], "77")
        self.assertEqual(rows[2][:6], [pi["id"], "refund", "-5.00", "0.00", "-5.00", "usd"])
        self.assertEqual(rows[2][6], ref["id"])
        status, _, _ = self.call("GET", path, b"")
        self.assertEqual(status, 401)
        status, _, body = stripe_post(self, "/v1/reporting/report_runs", {"report_type": "balance.summary.1"})
        self.assertEqual(status, 400)

    def test_idempotency_key(self):
        form = {"amount": 500, "currency": "usd", "metadata[order_id]": "7"}
        answers = [stripe_post(self, "/v1/payment_intents", form, idem="create-7") for _ in range(3)]
        self.assertEqual({a[0] for a in answers}, {200})
        self.assertEqual(answers[0][2], answers[1][2])
        self.assertEqual(answers[0][2], answers[2][2])
        self.assertNotIn("idempotent-replayed", answers[0][1])
        self.assertEqual(answers[1][1]["idempotent-replayed"], "true")
        status, _, body = stripe_post(self, "/v1/payment_intents", dict(form, amount=501), idem="create-7")
        self.assertEqual((status, body["error"]["type"]), (400, "idempotency_error"))
        eff = self.effects()
        self.assertEqual(eff["keys"]["stripe:create-7"]["effects"], 1)
        self.assertEqual(eff["keys"]["stripe:create-7"]["requests"], 4)
        self.assertEqual(eff["keys"]["stripe:create-7"]["conflicts"], 1)
        self.assertEqual(eff["orders"]["stripe:7"]["payment_intents"], 1)
        # a validation error is not saved under the key
        status, _, _ = stripe_post(self, "/v1/payment_intents", {"currency": "usd"}, idem="create-8")
        self.assertEqual(status, 400)
        status, _, _ = stripe_post(self, "/v1/payment_intents", {"amount": 5, "currency": "usd"}, idem="create-8")
        self.assertEqual(status, 200)
        # the same key concurrently: one effect
        results = []

        def go():
            results.append(stripe_post(self, "/v1/payment_intents", form, idem="create-9")[2]["id"])
        threads = [threading.Thread(target=go) for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        self.assertEqual(len(set(results)), 1)
        self.assertEqual(self.effects()["keys"]["stripe:create-9"]["effects"], 1)

    def test_refund_cancel_decline(self):
        status, _, pi = stripe_post(self, "/v1/payment_intents",
                                    {"amount": 1000, "currency": "usd", "confirm": "true",
                                     "payment_method": "pm_card_visa", "metadata[order_id]": "11"})
        self.assertEqual((status, pi["status"]), (200, "succeeded"))
        for _ in range(2):
            status, _, rf = stripe_post(self, "/v1/refunds", {"payment_intent": pi["id"], "amount": 400}, idem="rf-11-a")
            self.assertEqual((status, rf["amount"], rf["status"]), (200, 400, "succeeded"))
        status, _, body = stripe_post(self, "/v1/refunds", {"payment_intent": pi["id"], "amount": 601}, idem="rf-11-b")
        self.assertEqual(status, 400)
        status, _, rf = stripe_post(self, "/v1/refunds", {"payment_intent": pi["id"]}, idem="rf-11-c")
        self.assertEqual((status, rf["amount"]), (200, 600))
        status, _, body = stripe_post(self, "/v1/refunds", {"payment_intent": pi["id"]}, idem="rf-11-d")
        self.assertEqual((status, body["error"].get("code")), (400, "charge_already_refunded"))
        eff = self.effects()
        self.assertEqual(eff["keys"]["stripe:rf-11-a"], dict(eff["keys"]["stripe:rf-11-a"], effects=1, requests=2))
        self.assertEqual(eff["orders"]["stripe:11"]["refunds"], 2)
        self.assertEqual(eff["orders"]["stripe:11"]["refunded_amount"], 1000)
        status, _, body = stripe_post(self, f"/v1/payment_intents/{pi['id']}/cancel", {})
        self.assertEqual((status, body["error"]["code"]), (400, "payment_intent_unexpected_state"))
        status, _, pi2 = stripe_post(self, "/v1/payment_intents", {"amount": 10, "currency": "usd"})
        status, _, c = stripe_post(self, f"/v1/payment_intents/{pi2['id']}/cancel", {}, idem="cancel-1")
        self.assertEqual((status, c["status"]), (200, "canceled"))
        status, _, body = stripe_post(self, "/v1/payment_intents",
                                      {"amount": 10, "currency": "usd", "confirm": "true",
                                       "payment_method": "pm_card_chargeDeclined"})
        self.assertEqual((status, body["error"]["code"]), (402, "card_declined"))


class StripeManualCaptureTest(ServerCase):
    """capture_method=manual: requires_capture, partial capture, cancel, and the webhooks an account gets."""

    def setUp(self):
        super().setUp()
        self.sink = Sink()

    def tearDown(self):
        control(self.base, "POST", "outbox", {"provider": "stripe", "paused": True, "url": None})
        self.sink.close()

    def hook_to_sink(self):
        status, out = control(self.base, "POST", "outbox", {"provider": "stripe", "target": self.sink.url,
                                                            "gateway": "stripe_main", "delay_ms": 0,
                                                            "retry_ms": [50], "paused": False})
        self.assertEqual(status, 200, out)

    def events(self):
        status, _, _ = request(self.base, "GET", "/control/outbox/wait?timeout_s=10")
        self.assertEqual(status, 200)
        out = []
        for path, headers, body in self.sink.requests:
            self.assertEqual(path, "/callbacks/stripe_main")
            self.assertTrue(stripe_ok(headers, body)[0])
            out.append(json.loads(body))
        return out

    def manual_pi(self, ref, amount=5000):
        status, _, pi = stripe_post(self, "/v1/payment_intents",
                                    {"amount": amount, "currency": "usd", "metadata[order_id]": ref,
                                     "capture_method": "manual"}, idem=f"create-{ref}")
        self.assertEqual((status, pi["capture_method"], pi["status"]), (200, "manual", "requires_payment_method"))
        return pi

    def test_authorize_partial_capture_refund(self):
        self.hook_to_sink()
        pi = self.manual_pi("61")
        # the buyer pays, as pay's tests make it happen: authorized, not captured
        status, out = control(self.base, "POST", "send", {"provider": "stripe", "gateway": "stripe_main",
                                                          "order_id": 61, "amount": 5000,
                                                          "target": self.sink.url})
        self.assertEqual(status, 200, out)
        auth = json.loads(out["requests"][0]["body"])
        self.assertEqual(auth["type"], "payment_intent.amount_capturable_updated")
        obj = auth["data"]["object"]
        self.assertEqual((obj["id"], obj["status"], obj["amount_capturable"], obj["amount_received"]),
                         (pi["id"], "requires_capture", 5000, 0))
        # a refund needs a captured charge
        status, _, body = stripe_post(self, "/v1/refunds", {"payment_intent": pi["id"], "amount": 10})
        self.assertEqual(status, 400, body)
        # more than authorized: 400, nothing captured
        status, _, body = stripe_post(self, f"/v1/payment_intents/{pi['id']}/capture",
                                      {"amount_to_capture": 5001}, idem="cap-61-a")
        self.assertEqual((status, body["error"]["code"], body["error"]["param"]),
                         (400, "amount_too_large", "amount_to_capture"))
        for _ in range(2):
            status, h, cap = stripe_post(self, f"/v1/payment_intents/{pi['id']}/capture",
                                         {"amount_to_capture": 4200}, idem="cap-61-b")
            self.assertEqual(status, 200, cap)
            self.assertEqual((cap["status"], cap["amount"], cap["amount_received"], cap["amount_capturable"]),
                             ("succeeded", 5000, 4200, 0))
        self.assertEqual(h["idempotent-replayed"], "true")
        status, _, body = stripe_post(self, f"/v1/payment_intents/{pi['id']}/capture", {}, idem="cap-61-c")
        self.assertEqual((status, body["error"]["code"]), (400, "payment_intent_unexpected_state"))
        status, _, body = stripe_post(self, f"/v1/payment_intents/{pi['id']}/cancel", {}, idem="cancel-61")
        self.assertEqual((status, body["error"]["code"]), (400, "payment_intent_unexpected_state"))
        # refunds stop at what was captured
        status, _, body = stripe_post(self, "/v1/refunds", {"payment_intent": pi["id"], "amount": 4201})
        self.assertEqual(status, 400, body)
        status, _, rf = stripe_post(self, "/v1/refunds", {"payment_intent": pi["id"], "amount": 1000}, idem="rf-61")
        self.assertEqual((status, rf["amount"]), (200, 1000))
        eff = self.effects()
        self.assertEqual(eff["orders"]["stripe:61"]["captures"], 1)
        self.assertEqual(eff["orders"]["stripe:61"]["captured_amount"], 4200)
        evts = self.events()
        self.assertEqual([e["type"] for e in evts],
                         ["payment_intent.amount_capturable_updated", "payment_intent.succeeded", "charge.refunded"])
        succeeded, refunded = evts[1]["data"]["object"], evts[2]["data"]["object"]
        self.assertEqual((succeeded["amount_received"], succeeded["metadata"]["order_id"]), (4200, "61"))
        self.assertEqual(evts[1]["data"]["previous_attributes"]["status"], "requires_capture")
        self.assertEqual((refunded["object"], refunded["payment_intent"], refunded["amount"],
                          refunded["amount_captured"], refunded["amount_refunded"], refunded["refunded"]),
                         ("charge", pi["id"], 5000, 4200, 1000, False))

    def test_cancel_authorized_and_confirm_at_create(self):
        self.hook_to_sink()
        pi = self.manual_pi("62")
        control(self.base, "POST", "pay", {"provider": "stripe", "order_id": "62", "amount": 5000,
                                           "currency": "USD"})
        state = control(self.base, "GET", "state")[1]["stripe"]["pis"][pi["id"]]
        self.assertEqual((state["status"], state["amount_capturable"]), ("requires_capture", 5000))
        status, _, c = stripe_post(self, f"/v1/payment_intents/{pi['id']}/cancel", {}, idem="cancel-62")
        self.assertEqual((status, c["status"], c["amount_capturable"]), (200, "canceled", 0))
        status, _, body = stripe_post(self, f"/v1/payment_intents/{pi['id']}/capture", {}, idem="cap-62")
        self.assertEqual((status, body["error"]["code"]), (400, "payment_intent_unexpected_state"))
        status, _, p2 = stripe_post(self, "/v1/payment_intents",
                                    {"amount": 700, "currency": "usd", "metadata[order_id]": "63",
                                     "capture_method": "manual", "confirm": "true",
                                     "payment_method": "pm_card_visa"})
        self.assertEqual((status, p2["status"], p2["amount_capturable"]), (200, "requires_capture", 700))
        status, _, body = stripe_post(self, "/v1/payment_intents",
                                      {"amount": 700, "currency": "usd", "capture_method": "later"})
        self.assertEqual((status, body["error"]["param"]), (400, "capture_method"))
        self.assertEqual([(e["type"], e["data"]["object"]["id"]) for e in self.events()],
                         [("payment_intent.canceled", pi["id"]),
                          ("payment_intent.amount_capturable_updated", p2["id"])])

    def test_no_events_without_an_endpoint(self):
        pi = self.manual_pi("64")
        control(self.base, "POST", "pay", {"provider": "stripe", "order_id": "64", "amount": 5000,
                                           "currency": "USD"})
        self.assertEqual(stripe_post(self, f"/v1/payment_intents/{pi['id']}/capture", {})[0], 200)
        self.assertEqual(control(self.base, "GET", "outbox")[1]["pending"], [])

    def test_sent_events_follow_the_intent(self):
        """/control/send: authorized, then a capture made on Stripe's side, then canceled for another."""
        pi = self.manual_pi("65")
        out = control(self.base, "POST", "send", {"provider": "stripe", "order_id": 65, "amount": 5000,
                                                  "event": "authorized", "target": self.sink.url})[1]
        self.assertEqual(json.loads(out["requests"][0]["body"])["data"]["object"]["status"], "requires_capture")
        out = control(self.base, "POST", "send", {"provider": "stripe", "order_id": 65, "amount": 3000,
                                                  "event": "captured", "target": self.sink.url})[1]
        obj = json.loads(out["requests"][0]["body"])["data"]["object"]
        self.assertEqual((obj["id"], obj["status"], obj["amount"], obj["amount_received"]),
                         (pi["id"], "succeeded", 5000, 3000))
        out = control(self.base, "POST", "send", {"provider": "stripe", "order_id": 65, "amount": 5000,
                                                  "event": "refunded", "refund_amount": 3000,
                                                  "target": self.sink.url})[1]
        obj = json.loads(out["requests"][0]["body"])["data"]["object"]
        self.assertEqual((obj["amount"], obj["amount_captured"], obj["amount_refunded"], obj["refunded"]),
                         (5000, 3000, 3000, True))

    def test_faults_on_capture(self):
        pi = self.manual_pi("66")
        control(self.base, "POST", "pay", {"provider": "stripe", "order_id": "66", "amount": 5000,
                                           "currency": "USD"})
        control(self.base, "POST", "faults", {"path": f"/v1/payment_intents/{pi['id']}/capture", "mode": "status",
                                              "status": 500, "after": True, "count": 1})
        self.assertEqual(stripe_post(self, f"/v1/payment_intents/{pi['id']}/capture",
                                     {"amount_to_capture": 100}, idem="cap-66")[0], 500)
        # applied before the answer was lost: the retry on the key replays it
        status, h, cap = stripe_post(self, f"/v1/payment_intents/{pi['id']}/capture",
                                     {"amount_to_capture": 100}, idem="cap-66")
        self.assertEqual((status, cap["amount_received"], h["idempotent-replayed"]), (200, 100, "true"))
        self.assertEqual(self.effects()["orders"]["stripe:66"]["captures"], 1)


class AlipayApiTest(ServerCase):

    def test_signature_verified_and_answer_signed(self):
        text = alipay_call(self, "alipay.trade.precreate",
                           {"out_trade_no": "A1", "total_amount": "12.34", "subject": "book"})
        name, member, raw, sign = alipay_member(text)
        self.assertEqual(name, "alipay_trade_precreate_response")
        self.assertEqual((member["code"], member["out_trade_no"]), ("10000", "A1"))
        self.assertTrue(member["qr_code"].startswith("https://qr.alipay.com/"))
        self.assertTrue(rsa_ok(pub("alipay_platform_public.pem"), raw.encode(), sign))
        self.assertFalse(rsa_ok(pub("alipay_platform_public.pem"), raw.replace("A1", "A2").encode(), sign))

    def test_bad_requests_rejected(self):
        biz = {"out_trade_no": "A2", "total_amount": "1.00", "subject": "x"}
        cases = {
            "wrong key": dict(key=priv("wrong_private.pem")),
            "sign_type left out of the signed string": dict(sign_without_sign_type=True),
        }
        for what, kw in cases.items():
            name, member, _, sign = alipay_member(alipay_call(self, "alipay.trade.precreate", biz, **kw))
            self.assertEqual((member["code"], member["sub_code"], sign), ("40002", "isv.invalid-signature", None), what)
        # a parameter changed after signing
        params = alipay_body("alipay.trade.precreate", biz)
        params["biz_content"] = params["biz_content"].replace("1.00", "0.01")
        _, _, body = self.call("POST", "/gateway.do", urllib.parse.urlencode(params),
                               {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(alipay_member(body.decode())[1]["sub_code"], "isv.invalid-signature")
        # timestamps are Beijing time: UTC (8 h off) and stale ones are refused
        for ts in (time.time() - 8 * 3600, time.time() - 3600):
            member = alipay_member(alipay_call(self, "alipay.trade.precreate", biz, ts=ts))[1]
            self.assertEqual(member["sub_code"], "isv.invalid-timestamp")
        member = alipay_member(alipay_call(self, "alipay.trade.precreate", biz, app_id="2021999"))[1]
        self.assertEqual(member["sub_code"], "isv.invalid-app-id")
        member = alipay_member(alipay_call(self, "alipay.trade.nope", biz))[1]
        self.assertEqual(member["sub_code"], "isv.invalid-method")
        self.assertEqual(self.effects()["totals"]["effects"], 0)

    def test_idempotency_and_lifecycle(self):
        biz = {"out_trade_no": "A3", "total_amount": "12.34", "subject": "book"}
        qr = {alipay_member(alipay_call(self, "alipay.trade.precreate", biz))[1]["qr_code"] for _ in range(3)}
        self.assertEqual(len(qr), 1)
        member = alipay_member(alipay_call(self, "alipay.trade.precreate", dict(biz, total_amount="12.35")))[1]
        self.assertEqual(member["sub_code"], "ACQ.CONTEXT_INCONSISTENT")
        q = alipay_member(alipay_call(self, "alipay.trade.query", {"out_trade_no": "A3"}))[1]
        self.assertEqual((q["trade_status"], q["total_amount"]), ("WAIT_BUYER_PAY", "12.34"))
        for _ in range(2):
            c = alipay_member(alipay_call(self, "alipay.trade.close", {"out_trade_no": "A3"}))[1]
            self.assertEqual(c["code"], "10000")
        eff = self.effects()
        self.assertEqual(eff["keys"]["alipay:precreate:A3"]["effects"], 1)
        self.assertEqual(eff["keys"]["alipay:precreate:A3"]["requests"], 4)
        self.assertEqual(eff["keys"]["alipay:precreate:A3"]["conflicts"], 1)
        self.assertEqual(eff["keys"]["alipay:close:A3"], dict(eff["keys"]["alipay:close:A3"], effects=1, requests=2))
        unknown = alipay_member(alipay_call(self, "alipay.trade.query", {"out_trade_no": "nope"}))
        self.assertEqual((unknown[1]["sub_code"], rsa_ok(pub("alipay_platform_public.pem"), unknown[2].encode(), unknown[3])),
                         ("ACQ.TRADE_NOT_EXIST", True))
        # refunds of a paid trade, idempotent on out_request_no
        control(self.base, "POST", "pay", {"provider": "alipay", "order_id": "A4", "amount": 1000})
        r1 = alipay_member(alipay_call(self, "alipay.trade.refund",
                                       {"out_trade_no": "A4", "refund_amount": "4.00", "out_request_no": "R1"}))[1]
        r2 = alipay_member(alipay_call(self, "alipay.trade.refund",
                                       {"out_trade_no": "A4", "refund_amount": "4.00", "out_request_no": "R1"}))[1]
        self.assertEqual((r1["fund_change"], r1["refund_fee"], r2["fund_change"], r2["refund_fee"]), ("Y", "4.00", "N", "4.00"))
        r3 = alipay_member(alipay_call(self, "alipay.trade.refund",
                                       {"out_trade_no": "A4", "refund_amount": "5.00", "out_request_no": "R1"}))[1]
        self.assertEqual(r3["sub_code"], "ACQ.DISCORDANT_REPEAT_REQUEST")
        r4 = alipay_member(alipay_call(self, "alipay.trade.refund",
                                       {"out_trade_no": "A4", "refund_amount": "6.01", "out_request_no": "R2"}))[1]
        self.assertEqual(r4["sub_code"], "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
        eff = self.effects()
        self.assertEqual(eff["keys"]["alipay:refund:A4:R1"]["effects"], 1)
        self.assertEqual(eff["orders"]["alipay:A4"]["refunded_amount"], 400)
        # the refund query: REFUND_SUCCESS for a refund made, no refund_status for one never made; signed
        q1 = alipay_member(alipay_call(self, "alipay.trade.fastpay.refund.query", {"out_trade_no": "A4", "out_request_no": "R1"}))
        q2 = alipay_member(alipay_call(self, "alipay.trade.fastpay.refund.query", {"out_trade_no": "A4", "out_request_no": "R2"}))
        self.assertEqual((q1[0], q1[1].get("refund_status"), q1[1]["refund_amount"], q2[1]["code"], q2[1].get("refund_status")),
                         ("alipay_trade_fastpay_refund_query_response", "REFUND_SUCCESS", "4.00", "10000", None))
        self.assertTrue(rsa_ok(pub("alipay_platform_public.pem"), q1[2].encode(), q1[3]))


    def test_bill_downloadurl_and_zip(self):
        """A day's trade bill of the fake's records: a signed answer naming the zip, whose
        GBK-named 业务明细 member is the GBK bill with tab-padded values, and its 汇总 summary."""
        control(self.base, "POST", "pay", {"provider": "alipay", "order_id": "A5", "amount": 1250})
        alipay_call(self, "alipay.trade.refund", {"out_trade_no": "A5", "refund_amount": "2.00", "out_request_no": "R9"})
        trade = self.srv.app.store.state["alipay"]["trades"]["A5"]
        day = time.strftime("%Y-%m-%d", time.gmtime(trade["paid_at"] + 8 * 3600))
        name, member, raw, sign = alipay_member(alipay_call(
            self, "alipay.data.dataservice.bill.downloadurl.query", {"bill_type": "trade", "bill_date": day}))
        self.assertEqual((name, member["code"]), ("alipay_data_dataservice_bill_downloadurl_query_response", "10000"))
        self.assertTrue(rsa_ok(pub("alipay_platform_public.pem"), raw.encode(), sign))
        url = urllib.parse.urlsplit(member["bill_download_url"])
        self.assertEqual(f"{url.scheme}://{url.netloc}", self.base)
        status, _, data = self.call("GET", url.path + "?" + url.query)
        self.assertEqual(status, 200)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            # names stored in GBK, without the UTF-8 flag: zipfile reads them as cp437
            names = [i.filename.encode("cp437").decode("gbk") for i in infos]
            self.assertEqual([i.flag_bits & 0x800 for i in infos], [0, 0])
            self.assertEqual([i.compress_type for i in infos], [zipfile.ZIP_DEFLATED] * 2)
            self.assertTrue(names[0].endswith(f"_{day.replace('-', '')}_业务明细.csv"), names)
            self.assertTrue(names[1].endswith("_业务明细(汇总).csv"), names)
            bill = z.read(infos[0]).decode("gbk")
            self.assertIn("#支付宝业务汇总查询", z.read(infos[1]).decode("gbk"))
        lines = bill.split("\n")
        self.assertEqual(lines[0], "#支付宝业务明细查询")
        self.assertRegex(lines[2], r"^#起始日期：\[\d{4}年\d\d月\d\d日 00:00:00\]   终止日期：")
        rows = list(csv.reader(io.StringIO("\n".join(l for l in lines if not l.startswith("#")))))
        self.assertEqual(rows[0][:3], ["支付宝交易号", "商户订单号", "业务类型"])
        fields = [[v.rstrip("\t") for v in r] for r in rows[1:] if r]
        self.assertTrue(all(v.endswith("\t") for v in rows[1]))
        pick = [(r[1], r[2], r[11], r[21], r[22]) for r in fields]
        # 0.6% of 12.50 = 0.075, half-up 0.08; the refund gives back 0.012 -> 0.01
        self.assertEqual(pick, [("A5", "交易", "12.50", "", "0.08"), ("A5", "退款", "-2.00", "R9", "-0.01")])
        self.assertIn("#交易合计：1笔，商家实收共12.50元，商家服务费共0.08元", lines)
        # another day has no rows; a bad date or type is a signed business error; an unknown file 404
        other = alipay_member(alipay_call(self, "alipay.data.dataservice.bill.downloadurl.query",
                                          {"bill_type": "trade", "bill_date": "2001-01-01"}))[1]
        status, _, data = self.call("GET", urllib.parse.urlsplit(other["bill_download_url"]).path + "?"
                                    + urllib.parse.urlsplit(other["bill_download_url"]).query)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            self.assertNotIn("A5", z.read(z.infolist()[0]).decode("gbk"))
        for biz, sub in (({"bill_type": "trade", "bill_date": "yesterday"}, "isv.invalid-parameter"),
                         ({"bill_type": "signcustomer", "bill_date": day}, "isp.bill_type_not_support")):
            _, m, raw, sign = alipay_member(alipay_call(self, "alipay.data.dataservice.bill.downloadurl.query", biz))
            self.assertEqual((m["code"], m["sub_code"]), ("40004", sub))
            self.assertTrue(rsa_ok(pub("alipay_platform_public.pem"), raw.encode(), sign))
        status, _, _ = self.call("GET", "/downloadBillFile.resource?fileId=nope")
        self.assertEqual(status, 404)


class WechatApiTest(ServerCase):

    def test_signature_verified_and_answer_signed(self):
        status, h, body = wechat_call(self, "POST", "/v3/pay/transactions/native", native_order("W0000001"))
        self.assertEqual(status, 200, body)
        self.assertTrue(json.loads(body)["code_url"].startswith("weixin://wxpay/bizpayurl?pr="))
        wechat_answer_ok(self, h, body)
        url = f"/v3/pay/transactions/out-trade-no/W0000001?mchid={MCHID}"
        status, h, body = wechat_call(self, "GET", url)
        self.assertEqual((status, json.loads(body)["trade_state"]), (200, "NOTPAY"))
        wechat_answer_ok(self, h, body)

    def test_tradebill(self):
        """A day's bill of the fake's records: its SHA-1 named in the signed answer, backquoted rows, summary."""
        status, _, _ = wechat_call(self, "POST", "/v3/pay/transactions/native", native_order("W0000077", 888))
        self.assertEqual(status, 200)
        trade = self.srv.app.store.state["wechatpay"]["trades"]["W0000077"]
        trade["success_time"], trade["state"] = time.time(), "SUCCESS"
        day = time.strftime("%Y-%m-%d", time.gmtime(trade["success_time"] + 8 * 3600))
        status, h, body = wechat_call(self, "GET", f"/v3/bill/tradebill?bill_date={day}&bill_type=ALL")
        self.assertEqual(status, 200, body)
        wechat_answer_ok(self, h, body)
        answer = json.loads(body)
        self.assertEqual(answer["hash_type"], "SHA1")
        path = urllib.parse.urlsplit(answer["download_url"])
        url = path.path + "?" + path.query
        status, _, bill = self.call("GET", url, b"", wechat_headers("GET", url, ""))
        self.assertEqual(status, 200)
        self.assertEqual(hashlib.sha1(bill).hexdigest(), answer["hash_value"])
        rows = list(csv.reader(io.StringIO(bill.decode("utf-8"))))
        self.assertEqual((rows[0][5], rows[0][6]), ("微信订单号", "商户订单号"))
        self.assertEqual([rows[1][i] for i in (6, 9, 12, 22)], ["`W0000077", "`SUCCESS", "`8.88", "`0.05"])
        self.assertEqual((rows[2][0], rows[3][:2]), ("总交易单数", ["`1", "`8.88"]))
        status, _, _ = self.call("GET", url, b"")
        self.assertEqual(status, 401)
        status, _, _ = wechat_call(self, "GET", "/v3/bill/tradebill?bill_date=yesterday")
        self.assertEqual(status, 400)

    def test_bad_requests_rejected(self):
        url = "/v3/pay/transactions/native"
        order = native_order("W0000002")
        body = json.dumps(order)
        variants = {
            "wrong key": wechat_headers("POST", url, body, key=priv("wrong_private.pem")),
            "wrong serial": wechat_headers("POST", url, body, serial="00AA"),
            "stale": wechat_headers("POST", url, body, ts=time.time() - 3600),
            "wrong mchid": wechat_headers("POST", url, body, mchid="1900000999"),
            "other URL signed": wechat_headers("POST", url + "?x=1", body),
        }
        for what, headers in variants.items():
            status, h, answer = self.call("POST", url, body, headers)
            self.assertEqual((status, json.loads(answer)["code"]), (401, "SIGN_ERROR"), what)
            wechat_answer_ok(self, h, answer)
        tampered = wechat_headers("POST", url, body)
        status, _, _ = self.call("POST", url, body.replace("1234", "1235"), tampered)
        self.assertEqual(status, 401)
        status, _, _ = self.call("POST", url, body, {"Content-Type": "application/json"})
        self.assertEqual(status, 401)
        status, _, answer = wechat_call(self, "POST", url, native_order("W3"))
        self.assertEqual((status, json.loads(answer)["code"]), (400, "PARAM_ERROR"))
        self.assertEqual(self.effects()["totals"]["effects"], 0)

    def test_idempotency_and_lifecycle(self):
        url = "/v3/pay/transactions/native"
        codes = {json.loads(wechat_call(self, "POST", url, native_order("W0000004"))[2])["code_url"] for _ in range(3)}
        self.assertEqual(len(codes), 1)
        status, _, body = wechat_call(self, "POST", url, native_order("W0000004", total=1))
        self.assertEqual((status, json.loads(body)["code"]), (403, "OUT_TRADE_NO_USED"))
        for _ in range(2):
            status, h, body = wechat_call(self, "POST", "/v3/pay/transactions/out-trade-no/W0000004/close", {"mchid": MCHID})
            self.assertEqual((status, body), (204, b""))
            wechat_answer_ok(self, h, body)
        eff = self.effects()
        self.assertEqual(eff["keys"]["wechatpay:native:W0000004"], dict(eff["keys"]["wechatpay:native:W0000004"],
                                                                          effects=1, requests=4, conflicts=1))
        self.assertEqual(eff["keys"]["wechatpay:close:W0000004"]["effects"], 1)
        # refunds of a paid transaction, idempotent on out_refund_no
        control(self.base, "POST", "pay", {"provider": "wechatpay", "order_id": "W0000005", "amount": 1000})
        rf = {"out_trade_no": "W0000005", "out_refund_no": "RF1", "amount": {"refund": 300, "total": 1000, "currency": "CNY"}}
        answers = [wechat_call(self, "POST", "/v3/refund/domestic/refunds", rf) for _ in range(2)]
        self.assertEqual([a[0] for a in answers], [200, 200])
        self.assertEqual(json.loads(answers[0][2])["refund_id"], json.loads(answers[1][2])["refund_id"])
        status, _, body = wechat_call(self, "POST", "/v3/refund/domestic/refunds",
                                      dict(rf, amount={"refund": 301, "total": 1000, "currency": "CNY"}))
        self.assertEqual(status, 400)
        status, _, body = wechat_call(self, "POST", "/v3/refund/domestic/refunds",
                                      dict(rf, out_refund_no="RF2", amount={"refund": 701, "total": 1000, "currency": "CNY"}))
        self.assertEqual(status, 400)
        eff = self.effects()
        self.assertEqual(eff["keys"]["wechatpay:refund:RF1"]["effects"], 1)
        self.assertEqual(eff["orders"]["wechatpay:W0000005"]["refunded_amount"], 300)
        status, _, body = wechat_call(self, "GET", f"/v3/pay/transactions/out-trade-no/W0000005?mchid={MCHID}")
        self.assertEqual(json.loads(body)["trade_state"], "REFUND")
        status, _, body = wechat_call(self, "GET", f"/v3/pay/transactions/out-trade-no/W9999999?mchid={MCHID}")
        self.assertEqual((status, json.loads(body)["code"]), (404, "ORDER_NOT_EXIST"))


class MerchantSinkTest(ServerCase):

    def post(self, params, code="acme"):
        status, _, body = self.call("POST", f"/merchant/{code}/notify", urllib.parse.urlencode(params),
                                    {"Content-Type": "application/x-www-form-urlencoded"})
        return status, body.decode()

    def test_verifies_and_counts_each_event_once(self):
        self.assertEqual(self.post(merchant_form(event_id="ev_1")), (200, "success"))
        self.assertEqual(self.post(merchant_form(event_id="ev_1")), (200, "success"))
        self.assertEqual(self.post(merchant_form(event_id="ev_1", status="refunded")), (200, "success"))
        eff = self.effects()
        self.assertEqual(eff["keys"]["merchant:acme:ev_1"], dict(eff["keys"]["merchant:acme:ev_1"],
                                                                  effects=1, requests=3, conflicts=1))
        self.assertEqual(eff["orders"]["merchant:acme:42"], {"notified_paid": 1})

    def test_rejections(self):
        bad = merchant_form()
        bad["amount"] = "1235"
        self.assertEqual(self.post(bad), (401, "fail: bad signature"))
        self.assertEqual(self.post(merchant_form(secret="not-the-secret")), (401, "fail: bad signature"))
        self.assertEqual(self.post(merchant_form(ts=time.time() - 3600)), (401, "fail: stale timestamp"))
        self.assertEqual(self.post(merchant_form(nonce="n-1")), (200, "success"))
        self.assertEqual(self.post(merchant_form(nonce="n-1")), (401, "fail: nonce reused"))
        self.assertEqual(self.post(merchant_form(), code="nobody")[0], 404)
        unsigned = merchant_form()
        del unsigned["sign"]
        self.assertEqual(self.post(unsigned), (401, "fail: missing sign"))
        self.assertEqual(self.effects()["totals"]["effects"], 1)
        status, _ = control(self.base, "POST", "merchants", {"code": "late", "api_secret": "s3cret"})
        self.assertEqual(status, 200)
        self.assertEqual(self.post(merchant_form(secret="s3cret"), code="late"), (200, "success"))

    def test_requests_recorded(self):
        params = merchant_form(event_id="ev_rec")
        self.post(params)
        self.post(dict(params, sign="00"))
        _, rec = control(self.base, "GET", "requests?path=/merchant/")
        self.assertEqual(rec["count"], 2)
        first, second = rec["requests"]
        self.assertEqual((first["method"], first["path"], first["status"], first["verdict"]),
                         ("POST", "/merchant/acme/notify", 200, "ok"))
        self.assertEqual(dict(urllib.parse.parse_qsl(first["body"])), params)
        self.assertEqual(first["headers"]["Content-Type"], "application/x-www-form-urlencoded")
        self.assertEqual((second["status"], second["verdict"]), (401, "bad_signature"))
        _, rec = control(self.base, "GET", f"requests?since={first['seq']}")
        self.assertEqual([r["seq"] for r in rec["requests"]], [second["seq"]])


class FaultTest(ServerCase):

    def notify(self, timeout=10):
        return self.call("POST", "/merchant/acme/notify", urllib.parse.urlencode(merchant_form()),
                         {"Content-Type": "application/x-www-form-urlencoded"}, timeout=timeout)

    def test_status_with_count(self):
        status, out = control(self.base, "POST", "faults", {"path": "/merchant/", "mode": "status", "status": 500, "count": 2})
        self.assertEqual(status, 200)
        self.assertEqual([self.notify()[0] for _ in range(3)], [500, 500, 200])
        rules = control(self.base, "GET", "faults")[1]["rules"]
        self.assertEqual((rules[0]["hits"], rules[0]["remaining"]), (2, 0))
        control(self.base, "POST", "faults", {"path": "/merchant/", "mode": "status", "status": 429,
                                              "retry_after": 7, "count": 1})
        status, h, _ = self.notify()
        self.assertEqual((status, h["retry-after"]), (429, "7"))
        control(self.base, "POST", "faults", {"path": "/merchant/", "mode": "status", "status": 400, "body": "nope",
                                              "content_type": "text/plain"})
        status, _, body = self.notify()
        self.assertEqual((status, body), (400, b"nope"))
        control(self.base, "DELETE", "faults")
        self.assertEqual(self.notify()[0], 200)
        self.assertEqual(self.effects()["totals"]["effects"], 2)

    def test_path_and_method_filters(self):
        control(self.base, "POST", "faults", {"rules": [{"path": "/v1/", "mode": "status", "status": 503},
                                                        {"path": "/merchant/", "method": "GET", "mode": "status", "status": 503}]})
        self.assertEqual(self.notify()[0], 200)
        status, _, _ = stripe_post(self, "/v1/payment_intents", {"amount": 1, "currency": "usd"})
        self.assertEqual(status, 503)
        self.assertEqual(control(self.base, "GET", "health")[0], 200)
        bad = [{"mode": "explode"}, {"mode": "status"}, {"mode": "slow"}, {"path": "/control/", "mode": "reset"},
               {"mode": "reset", "count": 0}, {"mode": "reset", "colour": "red"}]
        for rule in bad:
            self.assertEqual(control(self.base, "POST", "faults", rule)[0], 400, rule)

    def test_slow(self):
        control(self.base, "POST", "faults", {"path": "/merchant/", "mode": "slow", "delay_ms": 400, "count": 1})
        t0 = time.monotonic()
        self.assertEqual(self.notify()[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        t0 = time.monotonic()
        self.notify()
        self.assertLess(time.monotonic() - t0, 0.3)

    def test_reset(self):
        control(self.base, "POST", "faults", {"path": "/merchant/", "mode": "reset", "count": 1})
        with self.assertRaises(ConnectionResetError) as cm:
            self.notify()
        self.assertIs(type(cm.exception), ConnectionResetError)  # an RST, not RemoteDisconnected (FIN)
        self.assertEqual(self.notify()[0], 200)
        # the server records a request's status after answering it: give its thread a moment
        for _ in range(50):
            _, rec = control(self.base, "GET", "requests")
            if all(r["status"] is not None for r in rec["requests"]):
                break
            time.sleep(0.05)
        self.assertEqual([(r["status"], r["fault"] is not None) for r in rec["requests"]], [(0, True), (200, False)])

    def test_hang_does_not_block_others(self):
        control(self.base, "POST", "faults", {"path": "/merchant/", "mode": "hang", "count": 1})
        errors = []

        def hung():
            try:
                self.notify(timeout=1.5)
            except (socket.timeout, TimeoutError) as e:
                errors.append(e)
        t = threading.Thread(target=hung)
        t0 = time.monotonic()
        t.start()
        time.sleep(0.2)
        self.assertEqual(self.notify()[0], 200)
        self.assertLess(time.monotonic() - t0, 1.4)
        t.join()
        self.assertEqual(len(errors), 1)
        self.assertGreaterEqual(time.monotonic() - t0, 1.5)

    def test_malformed(self):
        control(self.base, "POST", "faults", {"rules": [
            {"path": "/merchant/", "mode": "malformed", "kind": "garbage", "count": 1},
            {"path": "/merchant/", "mode": "malformed", "kind": "truncated", "count": 1},
            {"path": "/merchant/", "mode": "malformed", "kind": "bad_json", "count": 1}]})
        with self.assertRaises(http.client.BadStatusLine):
            self.notify()
        with self.assertRaises(http.client.IncompleteRead):
            self.notify()
        status, _, body = self.notify()
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(body)
        self.assertEqual(self.notify()[0], 200)

    def test_after_applies_then_misbehaves(self):
        control(self.base, "POST", "faults", {"path": "/v1/refunds", "mode": "status", "status": 500, "after": True, "count": 1})
        control(self.base, "POST", "faults", {"path": "/v1/payment_intents", "mode": "reset", "after": True, "count": 1})
        form = {"amount": 100, "currency": "usd", "confirm": "true", "payment_method": "pm_card_visa",
                "metadata[order_id]": "99"}
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected)):
            stripe_post(self, "/v1/payment_intents", form, idem="pi-99")
        status, h, pi = stripe_post(self, "/v1/payment_intents", form, idem="pi-99")
        self.assertEqual((status, h.get("idempotent-replayed")), (200, "true"))
        status, _, _ = stripe_post(self, "/v1/refunds", {"payment_intent": pi["id"]}, idem="rf-99")
        self.assertEqual(status, 500)
        status, h, _ = stripe_post(self, "/v1/refunds", {"payment_intent": pi["id"]}, idem="rf-99")
        self.assertEqual((status, h.get("idempotent-replayed")), (200, "true"))
        eff = self.effects()
        self.assertEqual((eff["keys"]["stripe:pi-99"]["effects"], eff["keys"]["stripe:rf-99"]["effects"]), (1, 1))
        self.assertEqual(eff["orders"]["stripe:99"], {"payment_intents": 1, "refunds": 1, "refunded_amount": 100})
        self.assertEqual(eff["totals"]["keys_with_more_than_one_effect"], [])


    def test_latency_delays_every_answer(self):
        status, out = control(self.base, "POST", "faults", {"latency_ms": 300})
        self.assertEqual((status, out["latency_ms"]), (200, 300))
        # a faulted answer waits too; the control API does not
        control(self.base, "POST", "faults", {"path": "/merchant/", "mode": "status", "status": 503, "count": 1})
        for expected in (503, 200):
            t0 = time.monotonic()
            self.assertEqual(self.notify()[0], expected)
            self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        t0 = time.monotonic()
        self.assertEqual(control(self.base, "GET", "faults")[1]["latency_ms"], 300)
        self.assertLess(time.monotonic() - t0, 0.25)
        # beside rules; bad values refused; a reset goes back to the configured latency
        status, out = control(self.base, "POST", "faults", {"latency_ms": 0, "rules": [
            {"path": "/v1/", "mode": "status", "status": 500}]})
        self.assertEqual((status, out["latency_ms"], len(out["added"])), (200, 0, 1))
        for bad in (-1, 60001, "5", True, None):
            self.assertEqual(control(self.base, "POST", "faults", {"latency_ms": bad})[0], 400, bad)
        self.assertEqual(control(self.base, "POST", "faults", {"latency_ms": 5, "mode": "reset"})[0], 400)
        control(self.base, "POST", "faults", {"latency_ms": 200})
        control(self.base, "POST", "reset", {})
        t0 = time.monotonic()
        self.notify()
        self.assertLess(time.monotonic() - t0, 0.15)
        self.assertEqual(control(self.base, "GET", "faults")[1], {"rules": [], "latency_ms": 0})

    def test_latency_from_config(self):
        cfg = fp_config.load()
        self.assertEqual(cfg.latency_ms, 0)
        data = dict(cfg.raw, latency_ms=250)
        cfg2 = fp_config.Config(data, cfg.base_dir)
        srv, _ = fp_server.start(cfg2, "127.0.0.1", 0)
        try:
            t0 = time.monotonic()
            status, _, _ = request(srv.app.base_url, "POST", "/merchant/acme/notify",
                                   urllib.parse.urlencode(merchant_form()),
                                   {"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(status, 200)
            self.assertGreaterEqual(time.monotonic() - t0, 0.25)
            # DELETE /control/faults goes back to the configured latency, not 0
            control(srv.app.base_url, "POST", "faults", {"latency_ms": 0})
            self.assertEqual(control(srv.app.base_url, "DELETE", "faults")[1]["latency_ms"], 250)
        finally:
            fp_server.stop(srv)
        for bad in (-1, 60001, "10", 1.5):
            with self.assertRaises(fp_config.ConfigError):
                fp_config.Config(dict(cfg.raw, latency_ms=bad), cfg.base_dir)


class Sink:
    """A small local HTTP server standing in for pay-proxy: records requests."""

    def __init__(self, status=200, body=b"success"):
        self.requests, self.status, self.body = [], status, body
        sink = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, data))
                self.send_response(sink.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(sink.body)))
                self.end_headers()
                self.wfile.write(sink.body)

        class Srv(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self.httpd = Srv(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def stripe_ok(headers, body, secret=WHSEC):
    parts = [p.split("=", 1) for p in headers["stripe-signature"].split(",")]
    t = next(v for k, v in parts if k == "t")
    return any(hmac.compare_digest(hmac_hex(secret, t.encode() + b"." + body), v) for k, v in parts if k == "v1"), int(t)


def alipay_ok(body):
    params = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    return rsa_ok(pub("alipay_platform_public.pem"), canon(params), params.get("sign", "")), params


def wechat_ok(headers, body):
    msg = headers["wechatpay-timestamp"].encode() + b"\n" + headers["wechatpay-nonce"].encode() + b"\n" + body + b"\n"
    return (headers.get("wechatpay-serial") == PLATFORM_SERIAL
            and rsa_ok(pub("wechat_platform_cert.pem"), msg, headers.get("wechatpay-signature", "")))


def wechat_decrypt(envelope, key=APIV3):
    res = envelope["resource"]
    raw = base64.b64decode(res["ciphertext"])
    dec = Cipher(algorithms.AES(key.encode()), modes.GCM(res["nonce"].encode(), raw[-16:])).decryptor()
    dec.authenticate_additional_data(res["associated_data"].encode())
    return json.loads(dec.update(raw[:-16]) + dec.finalize())


class CallbackTest(ServerCase):

    def setUp(self):
        super().setUp()
        self.sink = Sink()

    def tearDown(self):
        self.sink.close()

    def send(self, **p):
        p.setdefault("target", self.sink.url)
        status, out = control(self.base, "POST", "send", p)
        self.assertEqual(status, 200, out)
        return out

    def test_stripe_events(self):
        for event, obj_type in (("payment_intent.succeeded", "payment_intent"),
                                ("payment_intent.payment_failed", "payment_intent"),
                                ("charge.refunded", "charge")):
            out = self.send(provider="stripe", gateway="stripe_main", order_id=42, amount=1234,
                            currency="USD", event=event, refund_amount=234)
            self.assertEqual((out["results"][0]["status"], out["results"][0]["body"]), (200, "success"))
            path, headers, body = self.sink.requests[-1]
            self.assertEqual(path, "/callbacks/stripe_main")
            ok, t = stripe_ok(headers, body)
            self.assertTrue(ok, event)
            self.assertLess(abs(time.time() - t), 5)
            self.assertFalse(stripe_ok(headers, body, secret="whsec_other")[0])
            evt = json.loads(body)
            self.assertEqual((evt["type"], evt["data"]["object"]["object"]), (event, obj_type))
            obj = evt["data"]["object"]
            self.assertEqual((obj["metadata"]["order_id"], obj["amount"], obj["currency"]), ("42", 1234, "usd"))
            if event == "charge.refunded":
                self.assertEqual(obj["amount_refunded"], 234)
                self.assertEqual(obj["refunds"]["data"][0]["amount"], 234)
        pis = {json.loads(b)["data"]["object"].get("payment_intent") or json.loads(b)["data"]["object"]["id"]
               for _, _, b in self.sink.requests}
        self.assertEqual(len(pis), 1)

    def test_dropped_callbacks(self):
        # paid at the PSP, the callback lost: the trade is paid when queried, pay heard nothing
        status, out = control(self.base, "POST", "faults", {"target": "callback", "path": "/callbacks/alipay_main",
                                                            "mode": "drop", "count": 1})
        self.assertEqual(status, 200, out)
        self.assertEqual(out["added"][0]["target"], "callback")
        out = self.send(provider="alipay", gateway="alipay_main", order_id=61, amount=1234, event="paid")
        self.assertEqual(out["results"][0]["dropped"], True)
        self.assertEqual(out["results"][0]["status"], None)
        self.assertTrue(out["results"][0]["fault"].startswith("drop#"))
        self.assertEqual(self.sink.requests, [])
        member = alipay_member(alipay_call(self, "alipay.trade.query", {"out_trade_no": "61"}))[1]
        self.assertEqual((member["code"], member["trade_status"]), ("10000", "TRADE_SUCCESS"))
        counters = control(self.base, "GET", "requests")[1]["counters"]
        self.assertEqual(counters["callbacks dropped"], 1)
        # the rule is used up; another gateway's callbacks and requests were never matched
        self.send(provider="alipay", gateway="alipay_main", order_id=62, amount=100, event="paid")
        self.send(provider="stripe", gateway="stripe_main", order_id=63, amount=100)
        self.assertEqual([r[0] for r in self.sink.requests], ["/callbacks/alipay_main", "/callbacks/stripe_main"])
        # a request rule never touches callbacks, a callback rule never requests
        control(self.base, "POST", "faults", {"rules": [
            {"path": "/callbacks/", "mode": "status", "status": 500},
            {"target": "callback", "path": "/merchant/", "mode": "drop"}]})
        self.send(provider="stripe", gateway="stripe_main", order_id=64, amount=100)
        self.assertEqual(len(self.sink.requests), 3)
        status, _, _ = self.call("POST", "/merchant/acme/notify", urllib.parse.urlencode(merchant_form()),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200)
        # every copy of a duplicated callback is dropped while the rule lasts; slow delays
        control(self.base, "POST", "faults", {"rules": [
            {"target": "callback", "path": "/callbacks/wechatpay", "mode": "drop", "count": 2},
            {"target": "callback", "path": "/callbacks/wx_slow", "mode": "slow", "delay_ms": 300}], "replace": True})
        out = self.send(provider="wechatpay", order_id="000065", amount=100, variant="duplicate")
        self.assertEqual([r.get("dropped") for r in out["results"]], [True, True])
        t0 = time.monotonic()
        out = self.send(provider="wechatpay", gateway="wx_slow", order_id="000066", amount=100)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertEqual(out["results"][0]["status"], 200)
        # what a callback rule may be
        for bad in ({"target": "callback", "mode": "status", "status": 500}, {"target": "callback", "mode": "hang"},
                    {"target": "callback", "mode": "drop", "after": True}, {"target": "psp", "mode": "reset"},
                    {"mode": "drop"}):
            self.assertEqual(control(self.base, "POST", "faults", bad)[0], 400, bad)

    def test_alipay_notifies(self):
        for event, status in (("paid", "TRADE_SUCCESS"), ("TRADE_FINISHED", "TRADE_FINISHED"), ("closed", "TRADE_CLOSED")):
            self.send(provider="alipay", order_id=43 if event != "closed" else 44, amount=1234, event=event)
            _, headers, body = self.sink.requests[-1]
            self.assertTrue(headers["content-type"].startswith("application/x-www-form-urlencoded"))
            ok, params = alipay_ok(body)
            self.assertTrue(ok, event)
            self.assertEqual((params["trade_status"], params["total_amount"], params["sign_type"]),
                             (status, "12.34", "RSA2"))
            self.assertEqual(params["out_trade_no"], "43" if event != "closed" else "44")
            notify_ts = datetime.datetime.strptime(params["notify_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
            self.assertLess(abs(notify_ts.timestamp() - time.time()), 5)
        self.send(provider="alipay", order_id=45, amount=100, currency="JPY", event="paid")
        self.assertEqual(alipay_ok(self.sink.requests[-1][2])[1]["total_amount"], "100")
        self.send(provider="alipay", order_id=46, amount=5, currency="KWD", event="paid")
        self.assertEqual(alipay_ok(self.sink.requests[-1][2])[1]["total_amount"], "0.005")
        # a partial refund keeps TRADE_SUCCESS, the rest closes the trade
        self.send(provider="alipay", order_id=47, amount=1000, event="paid")
        self.send(provider="alipay", order_id=47, amount=1000, event="refunded", refund_amount=300)
        p1 = alipay_ok(self.sink.requests[-1][2])[1]
        self.send(provider="alipay", order_id=47, amount=1000, event="refunded", refund_amount=700)
        p2 = alipay_ok(self.sink.requests[-1][2])[1]
        self.assertEqual((p1["trade_status"], p1["refund_fee"], p2["trade_status"], p2["refund_fee"]),
                         ("TRADE_SUCCESS", "3.00", "TRADE_CLOSED", "10.00"))

    def test_wechat_notifications(self):
        self.send(provider="wechatpay", order_id="W0000048", amount=1234, event="paid")
        _, headers, body = self.sink.requests[-1]
        self.assertTrue(wechat_ok(headers, body))
        env = json.loads(body)
        self.assertEqual((env["event_type"], env["resource"]["algorithm"], env["resource"]["associated_data"]),
                         ("TRANSACTION.SUCCESS", "AEAD_AES_256_GCM", "transaction"))
        txn = wechat_decrypt(env)
        self.assertEqual((txn["out_trade_no"], txn["trade_state"], txn["amount"]["total"], txn["mchid"]),
                         ("W0000048", "SUCCESS", 1234, MCHID))
        self.send(provider="wechatpay", order_id="W0000048", amount=1234, event="refunded", refund_amount=34)
        _, headers, body = self.sink.requests[-1]
        self.assertTrue(wechat_ok(headers, body))
        rf = wechat_decrypt(json.loads(body))
        self.assertEqual((rf["refund_status"], rf["amount"]["refund"], rf["transaction_id"]),
                         ("SUCCESS", 34, txn["transaction_id"]))
        with self.assertRaises(Exception):
            wechat_decrypt(json.loads(body), key="0" * 32)

    def test_generic(self):
        self.send(provider="generic", order_id=49, amount=1234, event="paid")
        _, _, body = self.sink.requests[-1]
        params = dict(urllib.parse.parse_qsl(body.decode()))
        self.assertEqual(params["sign"], hmac_hex(CONF["generic"]["webhook_secret"], canon(params)))
        self.assertEqual((params["amount"], params["status"], params["out_trade_no"]), ("1234", "paid", "49"))

    def test_duplicate_and_redeliver(self):
        out = self.send(provider="wechatpay", order_id="W0000050", amount=1, variant="duplicate", count=5, concurrency=5)
        self.assertEqual([r["status"] for r in out["results"]], [200] * 5)
        reqs = self.sink.requests[-5:]
        self.assertEqual(len({(json.dumps(h, sort_keys=True), b) for _, h, b in
                              [(p, {k: v for k, v in h.items() if k.startswith("wechatpay")}, b) for p, h, b in reqs]}), 1)
        self.sink.requests.clear()
        self.send(provider="wechatpay", order_id="W0000051", amount=1, variant="redeliver", count=3)
        bodies = {b for _, _, b in self.sink.requests}
        nonces = {h["wechatpay-nonce"] for _, h, _ in self.sink.requests}
        self.assertEqual((len(bodies), len(nonces)), (1, 3))
        self.assertTrue(all(wechat_ok(h, b) for _, h, b in self.sink.requests))
        self.sink.requests.clear()
        self.send(provider="stripe", order_id=52, amount=1, variant="redeliver", count=3)
        self.assertEqual(len({b for _, _, b in self.sink.requests}), 1)
        self.assertTrue(all(stripe_ok(h, b)[0] for _, h, b in self.sink.requests))
        self.assertEqual(len({json.loads(b)["id"] for _, _, b in self.sink.requests}), 1)

    def test_concurrent_copies(self):
        out = self.send(provider="stripe", order_id=53, amount=1, variant="duplicate", count=20, concurrency=10)
        self.assertEqual(out["sent"], 20)
        self.assertEqual(len(self.sink.requests), 20)
        self.assertEqual(len({b for _, _, b in self.sink.requests}), 1)

    def test_attack_variants_fail_verification(self):
        checks = {
            "stripe": lambda h, b: stripe_ok(h, b)[0] if "stripe-signature" in h else False,
            "alipay": lambda h, b: alipay_ok(b)[0],
            "wechatpay": lambda h, b: wechat_ok(h, b) if "wechatpay-signature" in h else False,
        }
        for provider, ok in checks.items():
            for variant in ("tampered", "wrong_key", "unsigned") + (("wrong_serial",) if provider == "wechatpay" else ()):
                self.sink.requests.clear()
                self.send(provider=provider, order_id="W0000054", amount=1234, variant=variant)
                _, h, b = self.sink.requests[0]
                self.assertFalse(ok(h, b), f"{provider} {variant}")
            self.sink.requests.clear()
            self.send(provider=provider, order_id="W0000055", amount=1234, variant="stale", age_s=3600)
            _, h, b = self.sink.requests[0]
            self.assertTrue(ok(h, b), f"{provider} stale is correctly signed")
        self.sink.requests.clear()
        self.send(provider="stripe", order_id=56, amount=1, variant="stale", age_s=3600)
        self.assertGreater(time.time() - stripe_ok(*self.sink.requests[0][1:])[1], 3590)
        self.sink.requests.clear()
        self.send(provider="wechatpay", order_id="W0000056", amount=1, variant="stale", age_s=900)
        self.assertGreater(time.time() - int(self.sink.requests[0][1]["wechatpay-timestamp"]), 890)
        self.sink.requests.clear()
        self.send(provider="alipay", order_id=56, amount=1, variant="stale", age_s=3600)
        notify_time = alipay_ok(self.sink.requests[0][2])[1]["notify_time"]
        self.assertGreater(time.time() - datetime.datetime.strptime(notify_time, "%Y-%m-%d %H:%M:%S")
                           .replace(tzinfo=BEIJING).timestamp(), 3590)
        self.sink.requests.clear()
        self.send(provider="wechatpay", order_id="W0000057", amount=1, variant="wrong_apiv3_key")
        _, h, b = self.sink.requests[0]
        self.assertTrue(wechat_ok(h, b))
        with self.assertRaises(Exception):
            wechat_decrypt(json.loads(b))
        status, out = control(self.base, "POST", "send", {"provider": "stripe", "target": self.sink.url,
                                                           "order_id": 1, "amount": 1, "variant": "wrong_serial"})
        self.assertEqual(status, 400)

    def test_replayed_nonce_and_out_of_order(self):
        self.send(provider="wechatpay", order_id="W0000058", amount=1, variant="replayed_nonce")
        (_, h1, b1), (_, h2, b2) = self.sink.requests
        self.assertEqual(h1["wechatpay-nonce"], h2["wechatpay-nonce"])
        self.assertNotEqual(b1, b2)
        self.assertTrue(wechat_ok(h1, b1) and wechat_ok(h2, b2))
        self.sink.requests.clear()
        self.send(provider="stripe", order_id=58, amount=1, variant="replayed_nonce")
        (_, h1, b1), (_, h2, b2) = self.sink.requests
        e1, e2 = json.loads(b1), json.loads(b2)
        self.assertEqual(e1["id"], e2["id"])
        self.assertNotEqual(e1["type"], e2["type"])
        self.sink.requests.clear()
        self.send(provider="alipay", order_id=59, amount=100, event="refunded", variant="out_of_order")
        statuses = [(alipay_ok(b)[1]["trade_status"], "refund_fee" in alipay_ok(b)[1]) for _, _, b in self.sink.requests]
        self.assertEqual(statuses, [("TRADE_CLOSED", True), ("TRADE_SUCCESS", False)])
        self.sink.requests.clear()
        self.send(provider="stripe", order_id=60, amount=100, event="paid", variant="out_of_order")
        self.assertEqual([json.loads(b)["type"] for _, _, b in self.sink.requests],
                         ["charge.refunded", "payment_intent.succeeded"])

    def test_answers_reported_and_cli(self):
        self.sink.status, self.sink.body = 401, b'{"code":"FAIL","message":"bad signature"}'
        out = self.send(provider="wechatpay", order_id="W0000061", amount=1)
        self.assertEqual((out["results"][0]["status"], out["results"][0]["body"]),
                         (401, '{"code":"FAIL","message":"bad signature"}'))
        self.sink.status, self.sink.body = 200, b"success"
        cli = [sys.executable, os.path.join(HERE, "fake_psp.py"), "send", "--provider", "alipay", "--gateway", "ali",
               "--target", self.sink.url, "--order-id", "62", "--amount", "1234", "--variant", "duplicate"]
        run = subprocess.run(cli, capture_output=True, text=True, timeout=60)
        self.assertEqual((run.returncode, run.stdout), (0, "HTTP 200 success\nHTTP 200 success\n"), run.stderr)
        self.assertEqual(self.sink.requests[-1][0], "/callbacks/ali")
        self.assertTrue(alipay_ok(self.sink.requests[-1][2])[0])
        run = subprocess.run(cli[:-2] + ["--via", self.base], capture_output=True, text=True, timeout=60)
        self.assertEqual((run.returncode, run.stdout), (0, "HTTP 200 success\n"), run.stderr)
        run = subprocess.run(cli[:-2] + ["--target", "http://127.0.0.1:1"], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 1)
        self.assertTrue(run.stdout.startswith("ERROR "))
        self.assertEqual(control(self.base, "POST", "send", {"provider": "nope"})[0], 400)


class KnownAnswerTest(unittest.TestCase):
    """The fake PSP's signatures equal the openssl command's."""

    def vec(self, name):
        return read(os.path.join(HERE, "vectors", name + ".msg")), read(os.path.join(HERE, "vectors", name + ".sig")).decode()

    def test_committed_vectors(self):
        cfg = fp_config.load()
        msg, sig = self.vec("stripe_v1")
        t, _, payload = msg.partition(b".")
        secret = read(os.path.join(HERE, "vectors", "stripe_v1.key")).decode()
        self.assertEqual(fp_signing.stripe_signature(payload, secret, t.decode()), sig)
        header = fp_signing.stripe_signature_header(payload, secret, t.decode())
        self.assertTrue(fp_signing.stripe_signature_valid(payload, header, secret, tolerance_s=0))
        msg, sig = self.vec("alipay_notify")
        params = dict(p.split("=", 1) for p in msg.decode().split("&"))
        params.update(sign="x", sign_type="RSA2", empty="")
        self.assertEqual(fp_signing.canonical_query(params).encode(), msg)
        self.assertEqual(fp_signing.rsa_sign_b64(cfg.alipay_platform_private_key, msg), sig)
        msg, sig = self.vec("alipay_request")
        self.assertTrue(fp_signing.rsa_valid_b64(cfg.alipay_app_public_key, msg, sig))
        self.assertFalse(fp_signing.rsa_valid_b64(cfg.alipay_app_public_key, msg + b"x", sig))
        msg, sig = self.vec("wechat_response")
        self.assertEqual(fp_signing.rsa_sign_b64(cfg.wechat_platform_private_key, msg), sig)
        msg, sig = self.vec("wechat_request")
        self.assertTrue(fp_signing.rsa_valid_b64(cfg.wechat_merchant_public_key, msg, sig))
        msg, sig = self.vec("merchant_notify")
        self.assertEqual(fp_signing.hmac_sha256_hex(read(os.path.join(HERE, "vectors", "merchant_notify.key")), msg), sig)

    def test_live_callbacks_match_openssl(self):
        srv, _ = fp_server.start(fp_config.load(), "127.0.0.1", 0)
        try:
            _, out = control(srv.app.base_url, "POST", "send",
                             {"provider": "stripe", "order_id": 7, "amount": 700, "dry_run": True})
            req = out["requests"][0]
            t, v1 = (dict(p.split("=", 1) for p in req["headers"]["Stripe-Signature"].split(","))[k] for k in ("t", "v1"))
            mac = openssl("dgst", "-sha256", "-hmac", WHSEC, "-r", stdin=t.encode() + b"." + req["body"].encode())
            self.assertEqual(mac.split()[0].decode(), v1)
            _, out = control(srv.app.base_url, "POST", "send",
                             {"provider": "alipay", "order_id": 8, "amount": 800, "dry_run": True})
            params = dict(urllib.parse.parse_qsl(out["requests"][0]["body"]))
            sig = openssl("dgst", "-sha256", "-sign", os.path.join(KEYS, "alipay_platform_private.pem"),
                          stdin=canon(params).encode())
            self.assertEqual(base64.b64encode(sig).decode(), params["sign"])
        finally:
            fp_server.stop(srv)


class FastModeTest(ServerCase):
    fast = True

    def test_counters_only(self):
        for _ in range(3):
            status, _, _ = self.call("POST", "/merchant/acme/notify", urllib.parse.urlencode(merchant_form(event_id="ev_f")),
                                     {"Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(status, 200)
        # the server counts a request after answering it: give its thread a moment
        for _ in range(50):
            _, rec = control(self.base, "GET", "requests")
            if rec["counters"].get("status 200", 0) >= 3:
                break
            time.sleep(0.05)
        self.assertEqual((rec["fast"], rec["requests"], rec["counters"]["requests"], rec["counters"]["status 200"]),
                         (True, [], 3, 3))
        self.assertEqual(self.effects()["keys"]["merchant:acme:ev_f"]["effects"], 1)


class TlsTest(unittest.TestCase):

    def test_tls_with_self_signed_certificate(self):
        tmp = tempfile.mkdtemp()
        try:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
            srv, _ = fp_server.start(fp_config.load(), "127.0.0.1", 0, tls_cert=cert, tls_key=key)
            try:
                base = srv.app.base_url
                self.assertTrue(base.startswith("https://"))
                good = ssl.create_default_context(cafile=cert)
                status, _, body = request(base, "GET", "/control/health", context=good)
                self.assertEqual((status, json.loads(body)["status"]), (200, "ok"))
                body = urllib.parse.urlencode(merchant_form())
                status, _, answer = request(base, "POST", "/merchant/acme/notify", body,
                                            {"Content-Type": "application/x-www-form-urlencoded"}, context=good)
                self.assertEqual((status, answer), (200, b"success"))
                with self.assertRaises(ssl.SSLCertVerificationError):
                    request(base, "GET", "/control/health", context=ssl.create_default_context(
                        cafile=os.path.join(KEYS, "tls_other_ca.pem")))
                old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                old.load_verify_locations(cert)
                with warnings.catch_warnings():  # a client that would speak TLS 1.1 if the server let it
                    warnings.simplefilter("ignore", DeprecationWarning)
                    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
                    old.maximum_version = ssl.TLSVersion.TLSv1_1
                old.set_ciphers("DEFAULT:@SECLEVEL=0")
                with self.assertRaises((ssl.SSLError, ConnectionResetError)):
                    request(base, "GET", "/control/health", context=old)
                status, _, _ = request(base, "GET", "/control/health", context=good)
                self.assertEqual(status, 200)
            finally:
                fp_server.stop(srv)
        finally:
            shutil.rmtree(tmp)

    def test_committed_tls_keys(self):
        srv, _ = fp_server.start(fp_config.load(), "127.0.0.1", 0, tls_cert=os.path.join(KEYS, "tls_server.pem"),
                                 tls_key=os.path.join(KEYS, "tls_server.key"))
        try:
            ctx = ssl.create_default_context(cafile=os.path.join(KEYS, "tls_ca.pem"))
            self.assertEqual(request(srv.app.base_url, "GET", "/control/health", context=ctx)[0], 200)
        finally:
            fp_server.stop(srv)


class ProcessTest(unittest.TestCase):

    def test_cli_server_prints_port_and_stops_on_sigterm(self):
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_psp.py"), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            self.assertRegex(line, r"^listening \d+\n$")
            base = f"http://127.0.0.1:{int(line.split()[1])}"
            self.assertEqual(control(base, "GET", "health")[1]["status"], "ok")
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=10), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    def test_bad_config_exits_2(self):
        run = subprocess.run([sys.executable, os.path.join(HERE, "fake_psp.py"), "--config", "/nonexistent.json"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(run.returncode, 2)
        self.assertIn("cannot read config", run.stderr)



# --- PayPal and Adyen ----------------------------------------------------------------

PAYPAL = CONF["paypal"]
ADYEN = CONF["adyen"]


def paypal_token(case, client_id=PAYPAL["client_id"], secret=PAYPAL["client_secret"], form="grant_type=client_credentials"):
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    status, _, body = case.call("POST", "/v1/oauth2/token", form,
                                {"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"})
    return status, json.loads(body)


def pp(case, method, path, obj=None, token=None, rid=None, prefer=None):
    """A PayPal REST call: (status, headers, JSON or None)."""
    if token is None:
        token = case.token
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    if rid:
        headers["PayPal-Request-Id"] = rid
    if prefer:
        headers["Prefer"] = prefer
    status, h, body = case.call(method, path, json.dumps(obj) if obj is not None else "", headers)
    return status, h, json.loads(body) if body else None


def pp_order(case, ref="42", value="12.34", currency="USD", intent="CAPTURE", **kw):
    return pp(case, "POST", "/v2/checkout/orders",
              {"intent": intent, "purchase_units": [{"custom_id": ref, "amount": {"currency_code": currency, "value": value}}]},
              **kw)


@functools.lru_cache(maxsize=None)
def paypal_leaf():
    return x509.load_pem_x509_certificate(read(os.path.join(KEYS, "paypal_signing_cert.pem")))


def paypal_ok(headers, body, webhook_id=PAYPAL["webhook_id"]):
    """PayPal's rule, with this test's own crc32 (binascii) and RSA check."""
    import binascii
    h = {k.lower(): v for k, v in headers.items()}
    if "paypal-transmission-sig" not in h or h.get("paypal-auth-algo") != "SHA256withRSA":
        return False
    msg = f"{h['paypal-transmission-id']}|{h['paypal-transmission-time']}|{webhook_id}|{binascii.crc32(body) & 0xffffffff}"
    return rsa_ok(paypal_leaf().public_key(), msg, h["paypal-transmission-sig"])


def adyen_sig(item, key=ADYEN["hmac_key"]):
    """This test's own Adyen item signature."""
    fields = [item.get("pspReference", ""), item.get("originalReference", ""), item.get("merchantAccountCode", ""),
              item.get("merchantReference", ""), str(item["amount"]["value"]), item["amount"]["currency"],
              item.get("eventCode", ""), item.get("success", "")]
    return base64.b64encode(hmac.new(bytes.fromhex(key), ":".join(fields).encode(), hashlib.sha256).digest()).decode()


def adyen_items(body):
    note = json.loads(body)
    assert note["live"] == "false"
    return [i["NotificationRequestItem"] for i in note["notificationItems"]]


def adyen_item_ok(item):
    sig = (item.get("additionalData") or {}).get("hmacSignature")
    return bool(sig) and hmac.compare_digest(sig, adyen_sig(item))


def ad(case, path, obj, key=ADYEN["api_key"], idem=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-API-Key"] = key
    if idem:
        headers["Idempotency-Key"] = idem
    status, h, body = case.call("POST", path, json.dumps(obj) if not isinstance(obj, (bytes, str)) else obj, headers)
    return status, h, json.loads(body)


def ad_payment(ref="42", value=1234, currency="EUR", manual=False, holder=None):
    pm = {"type": "scheme", "encryptedCardNumber": "test_4111111111111111", "encryptedExpiryMonth": "test_03",
          "encryptedExpiryYear": "test_2030", "encryptedSecurityCode": "test_737"}
    if holder:
        pm["holderName"] = holder
    body = {"amount": {"value": value, "currency": currency}, "reference": ref,
            "merchantAccount": ADYEN["merchant_account"], "paymentMethod": pm,
            "returnUrl": "https://pay.example/return"}
    if manual:
        body["additionalData"] = {"manualCapture": "true"}
    return body


class OutboxCase(ServerCase):
    """A sink standing in for pay-proxy, registered as the outbox target."""

    sink_body = b"[accepted]"

    def setUp(self):
        super().setUp()
        self.sink = Sink(body=self.sink_body)
        for provider in ("paypal", "adyen"):
            status, out = control(self.base, "POST", "outbox", {"provider": provider, "target": self.sink.url,
                                                                "gateway": provider + "_main", "delay_ms": 0,
                                                                "retry_ms": [50, 50], "paused": False})
            self.assertEqual(status, 200, out)

    def tearDown(self):
        self.sink.close()

    def wait(self):
        status, _, _ = request(self.base, "GET", "/control/outbox/wait?timeout_s=10")
        self.assertEqual(status, 200)
        return control(self.base, "GET", "outbox")[1]

    def hooks(self, gateway):
        return [(h, b) for p, h, b in self.sink.requests if p == f"/callbacks/{gateway}"]


class PaypalApiTest(OutboxCase):

    def setUp(self):
        super().setUp()
        status, tok = paypal_token(self)
        self.assertEqual(status, 200, tok)
        self.token = tok["access_token"]

    def test_oauth_token(self):
        status, tok = paypal_token(self)
        self.assertEqual((tok["token_type"], tok["expires_in"]), ("Bearer", PAYPAL["token_ttl_s"]))
        self.assertEqual(paypal_token(self, secret="nope"), (401, {"error": "invalid_client",
                                                                   "error_description": "Client Authentication failed"}))
        self.assertEqual(paypal_token(self, form="")[0], 400)
        self.assertEqual(pp(self, "GET", "/v2/checkout/orders/NOSUCHORDER", token=tok["access_token"])[0], 404)
        status, _, body = pp(self, "GET", "/v2/checkout/orders/NOSUCHORDER", token="")
        self.assertEqual((status, body["name"]), (401, "AUTHENTICATION_FAILURE"))
        status, _, body = pp(self, "GET", "/v2/checkout/orders/NOSUCHORDER", token="A21AAwrong")
        self.assertEqual((status, body["error"]), (401, "invalid_token"))
        self.assertEqual(control(self.base, "POST", "paypal/expire_tokens", {})[0], 200)
        status, _, body = pp(self, "GET", "/v2/checkout/orders/NOSUCHORDER", token=tok["access_token"])
        self.assertEqual((status, body["error"]), (401, "invalid_token"))
        # a token lives token_ttl_s
        cfg = self.srv.app.cfg
        cfg.paypal_token_ttl_s = 1
        try:
            tok = paypal_token(self)[1]
        finally:
            cfg.paypal_token_ttl_s = PAYPAL["token_ttl_s"]
        self.assertEqual(tok["expires_in"], 1)
        self.assertEqual(pp(self, "GET", "/v2/checkout/orders/X", token=tok["access_token"])[0], 404)
        time.sleep(1.1)
        self.assertEqual(pp(self, "GET", "/v2/checkout/orders/X", token=tok["access_token"])[0], 401)

    def test_create_order_amounts_and_request_id(self):
        status, _, order = pp_order(self, rid="ord-42")
        self.assertEqual((status, order["status"], set(order)), (201, "CREATED", {"id", "status", "links"}))
        approve = [l["href"] for l in order["links"] if l["rel"] == "approve"]
        self.assertEqual(approve, ["https://www.sandbox.paypal.com/checkoutnow?token=" + order["id"]])
        self.assertEqual(pp_order(self, rid="ord-42")[2]["id"], order["id"])
        self.assertNotEqual(pp_order(self, rid="ord-43")[2]["id"], order["id"])
        self.assertEqual(self.effects()["keys"]["paypal:ord-42"], dict(self.effects()["keys"]["paypal:ord-42"],
                                                                      requests=2, effects=1))
        status, _, full = pp(self, "GET", f"/v2/checkout/orders/{order['id']}")
        pu = full["purchase_units"][0]
        self.assertEqual((status, full["intent"], pu["custom_id"], pu["amount"]),
                         (200, "CAPTURE", "42", {"currency_code": "USD", "value": "12.34"}))
        status, _, rep = pp_order(self, ref="43", value="100", currency="JPY", prefer="return=representation")
        self.assertEqual((status, rep["purchase_units"][0]["amount"]["value"]), (201, "100"))
        for value, currency in (("12.345", "USD"), ("12.3", "USD"), ("100.00", "JPY"), ("1.23", "KWD")):
            status, _, err = pp_order(self, value=value, currency=currency, rid="bad-" + value + currency)
            self.assertEqual((status, err["name"], err["details"][0]["issue"]),
                             (422, "UNPROCESSABLE_ENTITY", "DECIMAL_PRECISION"), value)
        self.assertEqual(pp_order(self, value="1.234", currency="KWD")[0], 201)
        self.assertEqual(pp_order(self, value="abc")[2]["name"], "INVALID_REQUEST")
        self.assertEqual(pp_order(self, intent="SALE")[0], 400)
        self.assertEqual(pp_order(self, ref=42)[0], 400)  # custom_id is a string
        status, _, err = pp(self, "GET", "/v2/checkout/orders/NOSUCHORDER")
        self.assertEqual((status, err["name"], err["details"][0]["issue"]), (404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID"))
        self.assertEqual([k for k in self.effects()["totals"]["keys_with_more_than_one_effect"]
                          if k != "paypal:(no request id)"], [])

    def test_capture_refund_and_webhooks(self):
        oid = pp_order(self, ref="44", value="20.00")[2]["id"]
        status, _, err = pp(self, "POST", f"/v2/checkout/orders/{oid}/capture", {})
        self.assertEqual((status, err["details"][0]["issue"]), (422, "ORDER_NOT_APPROVED"))
        self.assertEqual(control(self.base, "POST", "paypal/approve", {"id": oid})[0], 200)
        self.assertEqual(control(self.base, "POST", "paypal/approve", {"id": oid})[0], 409)
        self.assertEqual(control(self.base, "POST", "paypal/approve", {"id": "NOSUCHORDER"})[0], 404)
        self.assertEqual(pp(self, "GET", f"/v2/checkout/orders/{oid}")[2]["status"], "APPROVED")
        status, _, err = pp(self, "POST", f"/v2/checkout/orders/{oid}/authorize", {})
        self.assertEqual((status, err["details"][0]["issue"]), (422, "ACTION_DOES_NOT_MATCH_INTENT"))
        status, _, order = pp(self, "POST", f"/v2/checkout/orders/{oid}/capture", {}, rid="cap-44",
                              prefer="return=representation")
        cap = order["purchase_units"][0]["payments"]["captures"][0]
        self.assertEqual((status, order["status"], cap["status"], cap["amount"]["value"], cap["custom_id"]),
                         (201, "COMPLETED", "COMPLETED", "20.00", "44"))
        self.assertEqual(pp(self, "POST", f"/v2/checkout/orders/{oid}/capture", {}, rid="cap-44")[0], 201)
        status, _, err = pp(self, "POST", f"/v2/checkout/orders/{oid}/capture", {}, rid="cap-44b")
        self.assertEqual((status, err["details"][0]["issue"]), (422, "ORDER_ALREADY_CAPTURED"))
        body = {"amount": {"currency_code": "USD", "value": "5.00"}}
        status, _, r1 = pp(self, "POST", f"/v2/payments/captures/{cap['id']}/refund", body, rid="rf-44-1")
        self.assertEqual((status, r1["status"]), (201, "COMPLETED"))
        self.assertEqual(pp(self, "POST", f"/v2/payments/captures/{cap['id']}/refund", body, rid="rf-44-1")[2]["id"], r1["id"])
        self.assertEqual(pp(self, "GET", f"/v2/payments/captures/{cap['id']}")[2]["status"], "PARTIALLY_REFUNDED")
        status, _, err = pp(self, "POST", f"/v2/payments/captures/{cap['id']}/refund",
                            {"amount": {"currency_code": "USD", "value": "15.01"}})
        self.assertEqual((status, err["details"][0]["issue"]), (422, "REFUND_AMOUNT_EXCEEDED"))
        status, _, r2 = pp(self, "POST", f"/v2/payments/captures/{cap['id']}/refund", {}, rid="rf-44-2",
                           prefer="return=representation")
        self.assertEqual((status, r2["amount"]["value"]), (201, "15.00"))
        self.assertEqual(pp(self, "GET", f"/v2/payments/refunds/{r2['id']}")[2]["amount"]["value"], "15.00")
        self.assertEqual(pp(self, "GET", f"/v2/payments/captures/{cap['id']}")[2]["status"], "REFUNDED")
        status, _, err = pp(self, "POST", f"/v2/payments/captures/{cap['id']}/refund", {})
        self.assertEqual((status, err["details"][0]["issue"]), (422, "CAPTURE_FULLY_REFUNDED"))
        self.assertEqual(self.effects()["orders"]["paypal:44"], {"orders": 1, "captures": 1, "refunds": 2,
                                                                  "refunded_amount": 2000})
        state = control(self.base, "GET", "state")[1]
        self.assertEqual(state["paypal"]["captures"][cap["id"]]["status"], "REFUNDED")
        box = self.wait()
        hooks = self.hooks("paypal_main")
        events = [json.loads(b) for _, b in hooks]
        self.assertEqual([e["event_type"] for e in events],
                         ["CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.REFUNDED",
                          "PAYMENT.CAPTURE.REFUNDED"])
        self.assertTrue(all(paypal_ok(h, b) for h, b in hooks))
        self.assertFalse(paypal_ok(hooks[0][0], hooks[0][1], webhook_id="OTHERWEBHOOKID"))
        self.assertEqual(events[0]["resource"]["id"], oid)
        self.assertEqual((events[1]["resource"]["id"], events[1]["resource"]["custom_id"]), (cap["id"], "44"))
        self.assertEqual([e["resource"]["amount"]["value"] for e in events[2:]], ["5.00", "15.00"])
        self.assertEqual(events[3]["resource"]["id"], r2["id"])
        for h, _ in hooks:
            self.assertEqual(h["paypal-cert-url"], self.base + "/v1/notifications/certs/" + fp_signing.paypal_cert_id(
                read(os.path.join(KEYS, "paypal_signing_cert.pem"))))
            age = time.time() - datetime.datetime.strptime(h["paypal-transmission-time"], "%Y-%m-%dT%H:%M:%SZ") \
                .replace(tzinfo=datetime.timezone.utc).timestamp()
            self.assertLess(abs(age), 10)
        self.assertEqual(len({h["paypal-transmission-id"] for h, _ in hooks}), 4)
        self.assertTrue(all(d["accepted"] and len(d["attempts"]) == 1 for d in box["deliveries"]))

    def test_authorize_capture_void(self):
        oid = pp_order(self, ref="45", value="12.34", intent="AUTHORIZE")[2]["id"]
        control(self.base, "POST", "paypal/approve", {"id": oid})
        status, _, order = pp(self, "POST", f"/v2/checkout/orders/{oid}/authorize", {}, prefer="return=representation")
        auth = order["purchase_units"][0]["payments"]["authorizations"][0]
        self.assertEqual((status, auth["status"], auth["custom_id"]), (201, "CREATED", "45"))
        part = {"amount": {"currency_code": "USD", "value": "4.00"}, "final_capture": False}
        status, _, cap = pp(self, "POST", f"/v2/payments/authorizations/{auth['id']}/capture", part,
                            prefer="return=representation")
        self.assertEqual((status, cap["status"], cap["amount"]["value"], cap["final_capture"]), (201, "COMPLETED", "4.00", False))
        self.assertEqual(pp(self, "GET", f"/v2/payments/authorizations/{auth['id']}")[2]["status"], "PARTIALLY_CAPTURED")
        status, _, err = pp(self, "POST", f"/v2/payments/authorizations/{auth['id']}/capture",
                            {"amount": {"currency_code": "USD", "value": "8.35"}})
        self.assertEqual((status, err["details"][0]["issue"]), (422, "MAX_CAPTURE_AMOUNT_EXCEEDED"))
        status, _, err = pp(self, "POST", f"/v2/payments/authorizations/{auth['id']}/capture",
                            {"amount": {"currency_code": "EUR", "value": "1.00"}})
        self.assertEqual((status, err["details"][0]["issue"]), (422, "CURRENCY_MISMATCH"))
        status, _, body = pp(self, "POST", f"/v2/payments/authorizations/{auth['id']}/void", {})
        self.assertEqual((status, body), (204, None))
        self.assertEqual(pp(self, "GET", f"/v2/payments/authorizations/{auth['id']}")[2]["status"], "VOIDED")
        self.assertEqual(pp(self, "POST", f"/v2/payments/authorizations/{auth['id']}/capture", {})[2]["details"][0]["issue"],
                         "AUTHORIZATION_VOIDED")
        self.assertEqual(pp(self, "POST", f"/v2/payments/authorizations/{auth['id']}/void", {})[2]["details"][0]["issue"],
                         "PREVIOUSLY_VOIDED")
        # a final partial capture ends the authorization
        oid2 = pp_order(self, ref="46", value="10.00", intent="AUTHORIZE")[2]["id"]
        control(self.base, "POST", "paypal/approve", {"id": oid2})
        auth2 = pp(self, "POST", f"/v2/checkout/orders/{oid2}/authorize", {}, prefer="return=representation")[2][
            "purchase_units"][0]["payments"]["authorizations"][0]
        pp(self, "POST", f"/v2/payments/authorizations/{auth2['id']}/capture",
           {"amount": {"currency_code": "USD", "value": "3.00"}, "final_capture": True})
        self.assertEqual(pp(self, "GET", f"/v2/payments/authorizations/{auth2['id']}")[2]["status"], "CAPTURED")
        self.wait()
        hooks = self.hooks("paypal_main")
        self.assertEqual([json.loads(b)["event_type"] for _, b in hooks],
                         ["CHECKOUT.ORDER.APPROVED", "PAYMENT.AUTHORIZATION.CREATED", "PAYMENT.CAPTURE.COMPLETED",
                          "PAYMENT.AUTHORIZATION.VOIDED", "CHECKOUT.ORDER.APPROVED", "PAYMENT.AUTHORIZATION.CREATED",
                          "PAYMENT.CAPTURE.COMPLETED"])
        self.assertTrue(all(paypal_ok(h, b) for h, b in hooks))
        voided = json.loads(hooks[3][1])["resource"]
        self.assertEqual((voided["id"], voided["status"]), (auth["id"], "VOIDED"))

    def test_pending_then_denied_capture(self):
        oid = pp_order(self, ref="47", value="9.99")[2]["id"]
        control(self.base, "POST", "paypal/approve", {"id": oid, "capture": "denied"})
        self.assertEqual(control(self.base, "POST", "paypal/approve", {"id": oid, "capture": "maybe"})[0], 400)
        order = pp(self, "POST", f"/v2/checkout/orders/{oid}/capture", {}, prefer="return=representation")[2]
        cap = order["purchase_units"][0]["payments"]["captures"][0]
        self.assertEqual((cap["status"], cap["status_details"]["reason"]), ("PENDING", "PENDING_REVIEW"))
        self.wait()
        denied = json.loads(self.hooks("paypal_main")[-1][1])
        self.assertEqual((denied["event_type"], denied["resource"]["id"], denied["resource"]["status"]),
                         ("PAYMENT.CAPTURE.DENIED", cap["id"], "DECLINED"))
        self.assertEqual(pp(self, "GET", f"/v2/payments/captures/{cap['id']}")[2]["status"], "DECLINED")
        self.assertEqual(pp(self, "POST", f"/v2/payments/captures/{cap['id']}/refund", {})[0], 422)

    def test_cert_chain_served(self):
        cert_id = fp_signing.paypal_cert_id(read(os.path.join(KEYS, "paypal_signing_cert.pem")))
        self.assertRegex(cert_id, r"^CERT-[0-9a-f]{8}(-[0-9a-f]{8})+$")
        status, h, pem = self.call("GET", "/v1/notifications/certs/" + cert_id)
        self.assertEqual(status, 200)
        end = b"-----END CERTIFICATE-----"
        certs = [x509.load_pem_x509_certificate(part + end) for part in pem.split(end) if part.strip()]
        self.assertEqual(len(certs), 2)
        leaf, ca = certs
        self.assertEqual(leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value,
                         "messageverificationcerts.paypal.com")
        self.assertEqual(leaf.public_key().public_numbers(), paypal_leaf().public_key().public_numbers())
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "leaf.pem"), "wb") as f:
                f.write(leaf.public_bytes(serialization.Encoding.PEM))
            with open(os.path.join(tmp, "other.pem"), "wb") as f:
                f.write(read(os.path.join(KEYS, "tls_ca.pem")))
            out = openssl("verify", "-CAfile", os.path.join(KEYS, "paypal_ca.pem"), os.path.join(tmp, "leaf.pem"))
            self.assertTrue(out.strip().endswith(b"OK"))
            with self.assertRaises(subprocess.CalledProcessError):
                openssl("verify", "-CAfile", os.path.join(tmp, "other.pem"), os.path.join(tmp, "leaf.pem"))
        self.assertEqual(ca.public_bytes(serialization.Encoding.PEM), read(os.path.join(KEYS, "paypal_ca.pem")))
        self.assertEqual(self.call("GET", "/v1/notifications/certs/CERT-00000000")[0], 404)

    def test_webhook_retried_until_2xx(self):
        self.sink.status, self.sink.body = 500, b"down"
        oid = pp_order(self, ref="48")[2]["id"]
        control(self.base, "POST", "paypal/approve", {"id": oid})
        box = self.wait()
        (d,) = box["deliveries"]
        self.assertEqual((d["state"], [a["status"] for a in d["attempts"]]), ("failed", [500, 500, 500]))
        ids_ = {a["request"]["headers"]["PAYPAL-TRANSMISSION-ID"] for a in d["attempts"]}
        self.assertEqual(len(ids_), 3)  # each attempt a fresh transmission, the same event
        self.assertEqual(len({a["request"]["body"] for a in d["attempts"]}), 1)
        self.sink.status, self.sink.body = 200, b""
        control(self.base, "POST", "outbox", {"provider": "paypal", "paused": True})
        oid = pp_order(self, ref="49")[2]["id"]
        control(self.base, "POST", "paypal/approve", {"id": oid})
        time.sleep(0.2)
        box = control(self.base, "GET", "outbox")[1]
        self.assertEqual(len(box["pending"]), 1)
        out = control(self.base, "POST", "outbox/flush", {"provider": "paypal"})[1]
        self.assertEqual([(x["state"], x["refs"]) for x in out["deliveries"]], [("accepted", ["49"])])


class AdyenApiTest(OutboxCase):

    def test_auth_and_validation(self):
        status, _, err = ad(self, "/v71/payments", ad_payment(), key=None)
        self.assertEqual((status, err["errorType"]), (401, "security"))
        self.assertEqual(ad(self, "/v71/payments", ad_payment(), key="AQEwrong")[0], 401)
        self.assertEqual(ad(self, "/v71/payments", dict(ad_payment(), merchantAccount="Other"))[2]["errorCode"], "901")
        status, _, err = ad(self, "/v71/payments", {k: v for k, v in ad_payment().items() if k != "reference"})
        self.assertEqual((status, err["errorCode"]), (422, "130"))
        self.assertEqual(ad(self, "/v71/payments", dict(ad_payment(), amount={"value": "12.34", "currency": "EUR"}))[0], 422)
        self.assertEqual(ad(self, "/v71/payments", b"{not json")[0], 400)
        status, h, pay = ad(self, "/v71/payments", ad_payment(ref="50"))
        self.assertEqual((status, pay["resultCode"], pay["merchantReference"], pay["amount"]),
                         (200, "Authorised", "50", {"currency": "EUR", "value": 1234}))
        self.assertRegex(pay["pspReference"], r"^[A-Z0-9]{16}$")
        status, _, ref = ad(self, "/v71/payments", ad_payment(ref="51", holder="NOT_ENOUGH_BALANCE"))
        self.assertEqual((ref["resultCode"], ref["refusalReasonCode"]), ("Refused", "12"))
        self.assertEqual(ad(self, "/v71/payments", ad_payment(ref="51", holder="REFUSED"))[2]["refusalReason"], "Refused")

    def test_idempotency_key(self):
        status, h, first = ad(self, "/v71/payments", ad_payment(ref="52"), idem="pay-52")
        status2, _, again = ad(self, "/v71/payments", ad_payment(ref="52"), idem="pay-52")
        self.assertEqual((status2, again["pspReference"]), (200, first["pspReference"]))
        status, _, err = ad(self, "/v71/payments", ad_payment(ref="52", value=999), idem="pay-52")
        self.assertEqual((status, err["errorCode"], err["errorType"]), (422, "704", "validation"))
        # a validation error is not saved: the key still works
        self.assertEqual(ad(self, "/v71/payments", dict(ad_payment(ref="53"), reference=""), idem="pay-53")[0], 422)
        self.assertEqual(ad(self, "/v71/payments", ad_payment(ref="53"), idem="pay-53")[0], 200)
        eff = self.effects()
        self.assertEqual((eff["keys"]["adyen:pay-52"]["effects"], eff["keys"]["adyen:pay-52"]["conflicts"]), (1, 1))
        self.assertEqual(eff["orders"]["adyen:52"], {"payments": 1})

    def test_modifications_and_batched_notifications(self):
        control(self.base, "POST", "outbox", {"provider": "adyen", "paused": True})
        psp = ad(self, "/v71/payments", ad_payment(ref="54", value=1000, manual=True))[2]["pspReference"]
        status, _, cap = ad(self, f"/v71/payments/{psp}/captures",
                            {"merchantAccount": ADYEN["merchant_account"], "amount": {"value": 600, "currency": "EUR"},
                             "reference": "cap-54"})
        self.assertEqual((status, cap["status"], cap["paymentPspReference"], cap["reference"]),
                         (201, "received", psp, "cap-54"))
        self.assertNotEqual(cap["pspReference"], psp)
        status, _, rf = ad(self, f"/v71/payments/{psp}/refunds",
                           {"merchantAccount": ADYEN["merchant_account"], "amount": {"value": 200, "currency": "EUR"}})
        too_much = ad(self, f"/v71/payments/{psp}/refunds",
                      {"merchantAccount": ADYEN["merchant_account"], "amount": {"value": 500, "currency": "EUR"}})[2]
        cancel = ad(self, f"/v71/payments/{psp}/cancels", {"merchantAccount": ADYEN["merchant_account"]})[2]
        self.assertEqual((status, rf["status"], cancel["status"]), (201, "received", "received"))
        self.assertEqual(ad(self, "/v71/payments/ABCDEFGHIJKLMNOP/captures",
                            {"merchantAccount": ADYEN["merchant_account"], "amount": {"value": 1, "currency": "EUR"}})[0], 422)
        psp2 = ad(self, "/v71/payments", ad_payment(ref="55", value=300, manual=True))[2]["pspReference"]
        cancel2 = ad(self, f"/v71/payments/{psp2}/cancels", {"merchantAccount": ADYEN["merchant_account"]})[2]
        self.assertEqual(self.hooks("adyen_main"), [])
        out = control(self.base, "POST", "outbox/flush", {"provider": "adyen"})[1]
        self.assertEqual([d["state"] for d in out["deliveries"]], ["accepted"])
        (h, body), = self.hooks("adyen_main")
        items = adyen_items(body)
        got = [(i["eventCode"], i["success"], i["pspReference"], i.get("originalReference"), i["amount"]["value"])
               for i in items]
        self.assertEqual(got, [("AUTHORISATION", "true", psp, None, 1000),
                               ("CAPTURE", "true", cap["pspReference"], psp, 600),
                               ("REFUND", "true", rf["pspReference"], psp, 200),
                               ("REFUND", "false", too_much["pspReference"], psp, 500),
                               ("CANCELLATION", "false", cancel["pspReference"], psp, 1000),
                               ("AUTHORISATION", "true", psp2, None, 300),
                               ("CANCELLATION", "true", cancel2["pspReference"], psp2, 300)])
        self.assertTrue(all(adyen_item_ok(i) for i in items))
        self.assertEqual({i["merchantAccountCode"] for i in items}, {ADYEN["merchant_account"]})
        self.assertEqual([i["merchantReference"] for i in items], ["54"] * 5 + ["55"] * 2)
        self.assertIn("Insufficient", items[3]["reason"])
        # batch_max splits a queue into several requests
        control(self.base, "POST", "outbox", {"provider": "adyen", "batch_max": 2})
        for ref in ("56", "57", "58"):
            ad(self, "/v71/payments", ad_payment(ref=ref))
        out = control(self.base, "POST", "outbox/flush", {})[1]
        self.assertEqual([len(d["refs"]) for d in out["deliveries"]], [2, 1])

    def test_automatic_capture_and_refused(self):
        psp = ad(self, "/v71/payments", ad_payment(ref="59", value=700))[2]["pspReference"]
        # captured at once: a capture fails, a refund works
        ad(self, f"/v71/payments/{psp}/captures", {"merchantAccount": ADYEN["merchant_account"],
                                                   "amount": {"value": 700, "currency": "EUR"}})
        self.assertEqual(ad(self, f"/v71/payments/{psp}/refunds", {"merchantAccount": ADYEN["merchant_account"]})[0],
                         422)  # the amount is required
        ad(self, f"/v71/payments/{psp}/refunds", {"merchantAccount": ADYEN["merchant_account"],
                                                  "amount": {"value": 700, "currency": "EUR"}})
        ad(self, "/v71/payments", ad_payment(ref="60", holder="REFUSED"))
        # a delayed automatic capture (captureDelayHours > 0) waits for /captures like a manual one
        psp = ad(self, "/v71/payments", dict(ad_payment(ref="63", value=900), captureDelayHours=24))[2]["pspReference"]
        ad(self, f"/v71/payments/{psp}/captures", {"merchantAccount": ADYEN["merchant_account"],
                                                   "amount": {"value": 900, "currency": "EUR"}})
        self.wait()
        items = [i for _, b in self.hooks("adyen_main") for i in adyen_items(b)]
        self.assertEqual([(i["merchantReference"], i["eventCode"], i["success"]) for i in items],
                         [("59", "AUTHORISATION", "true"), ("59", "CAPTURE", "false"), ("59", "REFUND", "true"),
                          ("60", "AUTHORISATION", "false"), ("63", "AUTHORISATION", "true"),
                          ("63", "CAPTURE", "true")])
        self.assertEqual(items[0]["operations"], ["REFUND"])
        self.assertTrue(all(adyen_item_ok(i) for i in items))

    def test_retried_until_accepted(self):
        self.sink.body = b"ok"  # 200 without [accepted]: Adyen retries
        ad(self, "/v71/payments", ad_payment(ref="61"))
        box = self.wait()
        (d,) = box["deliveries"]
        self.assertEqual((d["state"], len(d["attempts"]), d["accepted"]), ("failed", 3, False))
        self.assertEqual(len({a["request"]["body"] for a in d["attempts"]}), 1)  # the same notification again
        self.assertEqual([(a["status"], a["body"]) for a in d["attempts"]], [(200, "ok")] * 3)
        self.sink.body = b"[accepted]"
        ad(self, "/v71/payments", ad_payment(ref="62"))
        box = self.wait()
        self.assertEqual([(x["state"], len(x["attempts"])) for x in box["deliveries"]], [("failed", 3), ("accepted", 1)])


class PaypalAdyenCallbackTest(ServerCase):
    """Webhooks built on demand by /control/send, with the attack variants."""

    def setUp(self):
        super().setUp()
        self.sink = Sink()

    def tearDown(self):
        self.sink.close()

    def send(self, **p):
        p.setdefault("target", self.sink.url)
        status, out = control(self.base, "POST", "send", p)
        self.assertEqual(status, 200, out)
        return out

    def test_paypal_events(self):
        for event in ("CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.REFUNDED",
                      "PAYMENT.AUTHORIZATION.CREATED", "PAYMENT.AUTHORIZATION.VOIDED", "PAYMENT.CAPTURE.DENIED"):
            out = self.send(provider="paypal", gateway="paypal_main", order_id=70 if "AUTH" not in event else 71,
                            amount=1234, currency="USD", event=event, refund_amount=234)
            self.assertEqual(out["results"][0]["status"], 200)
            path, h, body = self.sink.requests[-1]
            self.assertEqual(path, "/callbacks/paypal_main")
            self.assertTrue(paypal_ok(h, body), event)
            evt = json.loads(body)
            self.assertEqual(evt["event_type"], event)
            res = evt["resource"]
            if event == "PAYMENT.CAPTURE.REFUNDED":
                self.assertEqual((res["amount"]["value"], res["custom_id"]), ("2.34", "70"))
            elif event != "CHECKOUT.ORDER.APPROVED":
                self.assertEqual((res["custom_id"], res["amount"]), ("70" if "AUTH" not in event else "71",
                                                                     {"currency_code": "USD", "value": "12.34"}))
        self.assertEqual(json.loads(self.sink.requests[-1][2])["resource"]["status"], "DECLINED")

    def test_paypal_variants(self):
        checks = {}
        for variant in ("tampered", "wrong_key", "unsigned", "wrong_cert_url", "stale", "redeliver", "replayed_nonce"):
            self.sink.requests.clear()
            self.send(provider="paypal", order_id=72, amount=500, variant=variant)
            checks[variant] = [(h, b) for _, h, b in self.sink.requests]
        for variant in ("tampered", "wrong_key", "unsigned"):
            (h, b), = checks[variant]
            self.assertFalse(paypal_ok(h, b), variant)
        (h, b), = checks["wrong_cert_url"]
        self.assertTrue(paypal_ok(h, b))  # correctly signed: only the certificate's URL gives it away
        self.assertNotEqual(urllib.parse.urlsplit(h["paypal-cert-url"]).hostname, "127.0.0.1")
        (h, b), = checks["stale"]
        self.assertTrue(paypal_ok(h, b))
        sent = datetime.datetime.strptime(h["paypal-transmission-time"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        self.assertGreater(time.time() - sent, 3590)
        (h1, b1), (h2, b2) = checks["redeliver"]
        self.assertEqual(b1, b2)
        self.assertNotEqual(h1["paypal-transmission-id"], h2["paypal-transmission-id"])
        self.assertTrue(paypal_ok(h1, b1) and paypal_ok(h2, b2))
        (h1, b1), (h2, b2) = checks["replayed_nonce"]
        self.assertEqual(h1["paypal-transmission-id"], h2["paypal-transmission-id"])
        self.assertNotEqual(b1, b2)
        self.assertEqual(control(self.base, "POST", "send", {"provider": "stripe", "target": self.sink.url,
                                                             "order_id": 1, "amount": 1, "variant": "wrong_cert_url"})[0], 400)

    def test_adyen_events_batches_and_variants(self):
        self.sink.body = b"[accepted]"
        for event, code, success in (("paid", "AUTHORISATION", "true"), ("failed", "AUTHORISATION", "false"),
                                     ("CAPTURE", "CAPTURE", "true"), ("refunded", "REFUND", "true"),
                                     ("CANCELLATION", "CANCELLATION", "true")):
            out = self.send(provider="adyen", gateway="adyen_main", order_id=80, amount=1234, currency="EUR",
                            event=event, refund_amount=234)
            self.assertEqual((out["results"][0]["status"], out["results"][0]["body"]), (200, "[accepted]"))
            (item,) = adyen_items(self.sink.requests[-1][2])
            self.assertEqual((item["eventCode"], item["success"], item["merchantReference"]), (code, success, "80"))
            self.assertTrue(adyen_item_ok(item), event)
        self.assertEqual(item["amount"]["value"], 1234)
        self.sink.requests.clear()
        self.send(provider="adyen", order_id=81, amount=100, event="paid",
                  batch=[{"order_id": 82, "amount": 200}, {"order_id": 81, "amount": 40, "event": "refunded"}])
        items = adyen_items(self.sink.requests[0][2])
        self.assertEqual([(i["merchantReference"], i["eventCode"], i["amount"]["value"]) for i in items],
                         [("81", "AUTHORISATION", 100), ("82", "AUTHORISATION", 200), ("81", "REFUND", 40)])
        self.assertTrue(all(adyen_item_ok(i) for i in items))
        self.assertEqual(items[2]["originalReference"], items[0]["pspReference"])
        results = {}
        for variant in ("bad_item", "duplicate_item", "tampered", "wrong_key", "unsigned", "stale"):
            self.sink.requests.clear()
            self.send(provider="adyen", order_id=83, amount=100, variant=variant)
            results[variant] = adyen_items(self.sink.requests[0][2])
        good, forged = results["bad_item"]
        self.assertTrue(adyen_item_ok(good))
        self.assertFalse(adyen_item_ok(forged))
        self.assertEqual((forged["eventCode"], forged["originalReference"]), ("REFUND", good["pspReference"]))
        a, b = results["duplicate_item"]
        self.assertEqual(a, b)
        self.assertTrue(adyen_item_ok(a))
        for variant in ("tampered", "wrong_key", "unsigned"):
            (item,) = results[variant]
            self.assertFalse(adyen_item_ok(item), variant)
        self.assertNotIn("hmacSignature", results["unsigned"][0]["additionalData"])
        (item,) = results["stale"]
        self.assertTrue(adyen_item_ok(item))
        when = datetime.datetime.fromisoformat(item["eventDate"]).timestamp()
        self.assertGreater(time.time() - when, 3590)
        self.assertEqual(control(self.base, "POST", "send", {"provider": "paypal", "target": self.sink.url,
                                                             "order_id": 1, "amount": 1, "variant": "bad_item"})[0], 400)


class PaypalAdyenFaultTest(ServerCase):
    """The fault rules match PayPal's and Adyen's paths like any other."""

    def test_faults_on_new_routes(self):
        self.token = paypal_token(self)[1]["access_token"]
        control(self.base, "POST", "faults", {"rules": [
            {"path": "/v2/checkout/orders", "mode": "status", "status": 503, "count": 1},
            {"path": "/v71/payments", "mode": "reset", "count": 1},
            {"path": "/v1/oauth2/", "mode": "malformed", "kind": "truncated", "count": 1},
            {"path": "/v2/payments/", "mode": "slow", "delay_ms": 300, "count": 1}]})
        self.assertEqual(pp_order(self, ref="90")[0], 503)
        with self.assertRaises(ConnectionResetError):
            ad(self, "/v71/payments", ad_payment(ref="90"))
        with self.assertRaises(http.client.IncompleteRead):
            paypal_token(self)
        t0 = time.monotonic()
        self.assertEqual(pp(self, "GET", "/v2/payments/captures/NOSUCH")[0], 404)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        # applied, then the answer lost: the retry under the same request id gets the same order
        control(self.base, "POST", "faults", {"path": "/v2/checkout/orders", "mode": "status", "status": 500,
                                              "after": True, "count": 1})
        self.assertEqual(pp_order(self, ref="91", rid="ord-91")[0], 500)
        status, h, order = pp_order(self, ref="91", rid="ord-91")
        self.assertEqual(status, 201)
        self.assertEqual(self.effects()["orders"]["paypal:91"], {"orders": 1})
        control(self.base, "POST", "faults", {"path": "/v71/", "mode": "hang", "max_ms": 300, "count": 1})
        with self.assertRaises((socket.timeout, TimeoutError, http.client.RemoteDisconnected)):
            request(self.base, "POST", "/v71/payments", json.dumps(ad_payment()), {"X-API-Key": ADYEN["api_key"]},
                    timeout=0.2)
        self.assertEqual(ad(self, "/v71/payments", ad_payment(ref="92"))[0], 200)


class PaypalAdyenKnownAnswerTest(unittest.TestCase):
    """PayPal's and Adyen's signatures equal the openssl command's."""

    def vec(self, name):
        return read(os.path.join(HERE, "vectors", name + ".msg")), read(os.path.join(HERE, "vectors", name + ".sig")).decode()

    def test_committed_vectors(self):
        cfg = fp_config.load()
        msg, sig = self.vec("paypal_webhook")
        body = read(os.path.join(HERE, "vectors", "paypal_webhook.body"))
        tid, when, webhook_id, _ = msg.decode().split("|")
        self.assertEqual(fp_signing.paypal_signed_message(tid, when, webhook_id, body), msg)
        self.assertEqual(fp_signing.rsa_sign_b64(cfg.paypal_signing_private_key, msg), sig)
        msg, sig = self.vec("adyen_published")
        self.assertEqual(sig, "Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I=")  # Adyen's own example
        item = {"pspReference": "7914073381342284", "merchantAccountCode": "TestMerchant",
                "merchantReference": "TestPayment-1407325143704", "amount": {"value": 1130, "currency": "EUR"},
                "eventCode": "AUTHORISATION", "success": "true"}
        self.assertEqual(fp_signing.adyen_hmac_data(item).encode(), msg)
        key = read(os.path.join(HERE, "vectors", "adyen_published.key")).decode()
        self.assertEqual(fp_signing.adyen_hmac_b64(key, item), sig)
        msg, sig = self.vec("adyen_notification")
        item = {"pspReference": "8816178952380553", "originalReference": "7914073381342284",
                "merchantAccountCode": "PayTestMerchantECOM", "merchantReference": "order:42\\x",
                "amount": {"value": 250, "currency": "EUR"}, "eventCode": "REFUND", "success": "false"}
        self.assertEqual(fp_signing.adyen_hmac_data(item).encode(), msg)
        key = read(os.path.join(HERE, "vectors", "adyen_notification.key")).decode()
        self.assertEqual(fp_signing.adyen_hmac_b64(key, item), sig)

    def test_live_webhooks_match_openssl(self):
        srv, _ = fp_server.start(fp_config.load(), "127.0.0.1", 0)
        try:
            _, out = control(srv.app.base_url, "POST", "send",
                             {"provider": "paypal", "order_id": 7, "amount": 700, "dry_run": True})
            req = out["requests"][0]
            h, body = req["headers"], req["body"].encode()
            crc = subprocess.run("gzip -c | tail -c8 | od -An -tu4 -N4", shell=True, input=body,
                                 capture_output=True, check=True).stdout.decode().strip()
            msg = f"{h['PAYPAL-TRANSMISSION-ID']}|{h['PAYPAL-TRANSMISSION-TIME']}|{PAYPAL['webhook_id']}|{crc}"
            sig = openssl("dgst", "-sha256", "-sign", os.path.join(KEYS, "paypal_signing_private.pem"), stdin=msg.encode())
            self.assertEqual(base64.b64encode(sig).decode(), h["PAYPAL-TRANSMISSION-SIG"])
            _, out = control(srv.app.base_url, "POST", "send",
                             {"provider": "adyen", "order_id": 8, "amount": 800, "currency": "EUR", "dry_run": True})
            (item,) = adyen_items(out["requests"][0]["body"])
            data = ":".join([item["pspReference"], "", item["merchantAccountCode"], "8", "800", "EUR",
                             "AUTHORISATION", "true"])
            mac = openssl("dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:" + ADYEN["hmac_key"], "-binary",
                          stdin=data.encode())
            self.assertEqual(base64.b64encode(mac).decode(), item["additionalData"]["hmacSignature"])
        finally:
            fp_server.stop(srv)


if __name__ == "__main__":
    unittest.main()


# --- pay's generic scheme: its API and the callbacks sent after a payment ------------

GENERIC = CONF["generic"]


def gen(case, op, body, key=GENERIC["api_key"], idem="unset"):
    """POST /generic/<op> as pay's dispatcher sends it: (status, headers, answer)."""
    idem = body.get("idempotency_key") if idem == "unset" else idem
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if idem:
        headers["Idempotency-Key"] = idem
    status, h, raw = case.call("POST", f"/generic/{op}", json.dumps(body), headers)
    return status, h, json.loads(raw)


def gen_body(order, op, amount=1000, **kw):
    """A request body: the order, the key pay derives from it, params (kw) last."""
    body = {"order_id": str(order), "amount": amount, "currency": "USD",
            "idempotency_key": f"psp_{order}_{op}"}
    body.update(kw)
    return body


def generic_fields(body):
    """A generic callback's fields, its sign checked with this test's own HMAC."""
    fields = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    signed = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "sign" and v != "")
    want = hmac.new(GENERIC["webhook_secret"].encode(), signed.encode(), hashlib.sha256).hexdigest()
    return fields, hmac.compare_digest(want, fields.get("sign", ""))


class GenericApiTest(OutboxCase):
    """POST /generic/<operation>: pay's generic scheme played by a PSP."""

    sink_body = b"success"

    def setUp(self):
        super().setUp()
        status, out = control(self.base, "POST", "outbox", {"provider": "generic", "target": self.sink.url,
                                                            "gateway": "gen_main", "delay_ms": 0,
                                                            "retry_ms": [50, 50]})
        self.assertEqual(status, 200, out)

    def test_auth_and_validation(self):
        self.assertEqual(gen(self, "create_payment", gen_body(1, "create_payment"), key=None)[0], 401)
        self.assertEqual(gen(self, "create_payment", gen_body(1, "create_payment"), key="gk_wrong")[0], 401)
        self.assertEqual(gen(self, "create_payment", gen_body(1, "create_payment"), idem=None)[2]["code"],
                         "idempotency_key_missing")
        self.assertEqual(gen(self, "create_payment", gen_body(1, "create_payment"), idem="other")[2]["code"],
                         "idempotency_key_mismatch")
        status, _, err = gen(self, "create_payment", gen_body(1, "create_payment", amount="1000"))
        self.assertEqual((status, err["code"]), (400, "invalid_field"))
        self.assertIn("amount", err["message"])
        self.assertEqual(gen(self, "nothing", gen_body(1, "nothing"))[0], 404)
        # a validation error is not kept under the key: the corrected request goes through
        status, _, p = gen(self, "create_payment", gen_body(1, "create_payment"))
        self.assertEqual((status, p["status"]), (200, "pending"))
        self.assertEqual(self.effects()["orders"]["generic:1"], {"payments": 1})

    def test_payment_lifecycle_and_notification(self):
        status, h, p = gen(self, "create_payment", gen_body(7, "create_payment", amount=2500))
        self.assertEqual((status, p["order_id"], p["status"], p["amount"], p["currency"]),
                         (200, "7", "pending", 2500, "USD"))
        self.assertRegex(p["psp_txn_id"], r"^GT\d{20}$")
        self.assertEqual(p["next_action"], {"type": "redirect",
                                            "url": f"{self.base}/generic/checkout/{p['psp_txn_id']}"})
        # the same key and body again: the first answer, no second payment
        status, h2, again = gen(self, "create_payment", gen_body(7, "create_payment", amount=2500))
        self.assertEqual((status, again, h2.get("idempotent-replayed")), (200, p, "true"))
        status, _, err = gen(self, "create_payment", gen_body(7, "create_payment", amount=2600))
        self.assertEqual((status, err["code"]), (409, "idempotency_conflict"))
        self.assertEqual(gen(self, "create_payment", gen_body(7, "create_payment", idempotency_key="k2"))[2]["code"],
                         "order_exists")
        q = gen(self, "query", gen_body(7, "query", idempotency_key="q1", psp_txn_id=p["psp_txn_id"]))[2]
        self.assertEqual((q["status"], q["psp_txn_id"]), ("pending", p["psp_txn_id"]))
        self.assertEqual(self.hooks("gen_main"), [])
        # the buyer pays: the PSP notifies the merchant, signed
        status, paid = control(self.base, "POST", "generic/pay", {"order_id": "7"})
        self.assertEqual((status, paid["status"], paid["notified"]), (200, "paid", True))
        box = self.wait()
        self.assertEqual([(d["provider"], d["state"]) for d in box["deliveries"]], [("generic", "accepted")])
        (h, body), = self.hooks("gen_main")
        self.assertEqual(h["content-type"], "application/x-www-form-urlencoded")
        fields, ok = generic_fields(body)
        self.assertTrue(ok)
        self.assertEqual({k: fields[k] for k in ("out_trade_no", "trade_no", "status", "amount", "currency")},
                         {"out_trade_no": "7", "trade_no": p["psp_txn_id"], "status": "paid", "amount": "2500",
                          "currency": "USD"})
        self.assertLessEqual(abs(int(fields["timestamp"]) - time.time()), 60)
        self.assertEqual(control(self.base, "POST", "generic/pay", {"order_id": "7"})[0], 409)
        self.assertEqual(gen(self, "query", gen_body(7, "query", idempotency_key="q2"))[2]["status"], "paid")
        # a paid payment is not closed
        status, _, err = gen(self, "close", gen_body(7, "close"))
        self.assertEqual((status, err["code"]), (409, "already_paid"))

    def test_refunds(self):
        gen(self, "create_payment", gen_body(8, "create_payment"))
        self.assertEqual(gen(self, "refund", gen_body(8, "refund_5", refund_id=5, refund_amount=300))[2]["code"],
                         "not_paid")
        control(self.base, "POST", "generic/pay", {"order_id": "8", "notify": False})
        self.assertEqual(gen(self, "refund", gen_body(8, "refund_5", refund_id=5))[2]["code"], "invalid_field")
        status, _, r = gen(self, "refund", gen_body(8, "refund_5", refund_id=5, refund_amount=300))
        self.assertEqual((status, r["order_id"], r["refund_id"], r["status"], r["amount"]), (200, "8", 5, "succeeded", 300))
        self.assertRegex(r["psp_refund_id"], r"^GR\d{18}$")
        # retried: the same refund, once
        self.assertEqual(gen(self, "refund", gen_body(8, "refund_5", refund_id=5, refund_amount=300))[2], r)
        status, _, err = gen(self, "refund", gen_body(8, "refund_6", refund_id=6, refund_amount=701))
        self.assertEqual((status, err["code"]), (400, "amount_too_large"))
        # a pending refund, settled later: query_refund says so
        control(self.base, "POST", "generic/settings", {"refund_status": "pending"})
        r7 = gen(self, "refund", gen_body(8, "refund_7", refund_id=7, refund_amount=700))[2]
        self.assertEqual(r7["status"], "pending")
        q = gen(self, "query_refund", gen_body(8, "qr", refund_id=7, idempotency_key="qr1"))[2]
        self.assertEqual((q["refund_id"], q["status"]), (7, "pending"))
        control(self.base, "POST", "generic/settle_refund", {"psp_refund_id": r7["psp_refund_id"], "status": "succeeded"})
        q = gen(self, "query_refund", gen_body(8, "qr", refund_id=7, idempotency_key="qr2"))[2]
        self.assertEqual((q["status"], q["psp_refund_id"]), ("succeeded", r7["psp_refund_id"]))
        self.assertEqual(gen(self, "query_refund", gen_body(8, "qr", refund_id=9, idempotency_key="qr3"))[0], 404)
        eff = self.effects()
        self.assertEqual(eff["orders"]["generic:8"], {"payments": 1, "refunds": 2, "refunded": 1000})
        self.assertEqual(eff["keys"]["generic:psp_8_refund_5"]["effects"], 1)
        self.assertEqual(self.hooks("gen_main"), [])  # none notified: notify false, refunds are answered

    def test_close_and_failed_payment(self):
        gen(self, "create_payment", gen_body(9, "create_payment"))
        status, _, c = gen(self, "close", gen_body(9, "close"))
        self.assertEqual((status, c["status"]), (200, "closed"))
        self.assertEqual(gen(self, "close", gen_body(9, "close"))[2], c)
        self.assertEqual(self.effects()["orders"]["generic:9"], {"payments": 1, "closes": 1})
        self.assertEqual(control(self.base, "POST", "generic/pay", {"order_id": "9"})[0], 409)
        self.assertEqual(gen(self, "close", gen_body(404, "close"))[0], 404)
        gen(self, "create_payment", gen_body(10, "create_payment"))
        control(self.base, "POST", "generic/pay", {"order_id": "10", "status": "failed"})
        self.wait()
        (_, body), = self.hooks("gen_main")
        self.assertEqual(generic_fields(body)[0]["status"], "failed")
        self.assertEqual(gen(self, "query", gen_body(10, "query", idempotency_key="q"))[2]["status"], "failed")

    def test_send_follows_the_payment(self):
        p = gen(self, "create_payment", gen_body(11, "create_payment", amount=400))[2]
        out = control(self.base, "POST", "send", {"provider": "generic", "order_id": "11", "amount": 400,
                                                  "currency": "USD", "url": self.sink.url + "/callbacks/x"})[1]
        fields, ok = generic_fields(out["requests"][0]["body"].encode())
        self.assertEqual((ok, fields["trade_no"]), (True, p["psp_txn_id"]))
        self.assertEqual(gen(self, "query", gen_body(11, "query", idempotency_key="q"))[2]["status"], "paid")

    def test_faults_and_retry_after_a_lost_answer(self):
        control(self.base, "POST", "faults", {"rules": [
            {"path": "/generic/create_payment", "mode": "status", "status": 503, "count": 1},
            {"path": "/generic/refund", "mode": "status", "status": 500, "after": True, "count": 1}]})
        self.assertEqual(gen(self, "create_payment", gen_body(12, "create_payment"))[0], 503)
        self.assertEqual(gen(self, "create_payment", gen_body(12, "create_payment"))[0], 200)
        control(self.base, "POST", "generic/pay", {"order_id": "12", "notify": False})
        # applied, its answer lost: the retry under the same key refunds nothing more
        self.assertEqual(gen(self, "refund", gen_body(12, "refund_3", refund_id=3, refund_amount=1000))[0], 500)
        status, h, r = gen(self, "refund", gen_body(12, "refund_3", refund_id=3, refund_amount=1000))
        self.assertEqual((status, r["status"], h.get("idempotent-replayed")), (200, "succeeded", "true"))
        self.assertEqual(self.effects()["orders"]["generic:12"], {"payments": 1, "refunds": 1, "refunded": 1000})
