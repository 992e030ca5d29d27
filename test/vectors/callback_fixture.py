#!/usr/bin/python3
"""Signed PSP callbacks for sql/callbacks.sql, made at test time.

An independent implementation: Python's hmac/hashlib and python3-cryptography
sign and encrypt exactly as Stripe, Alipay, WeChat Pay and pay's generic
scheme do, so the test checks pay.handle_callback against them, never against
our own C code.  Timestamps are "now" (or deliberately stale), hence made at
test time.

usage: callback_fixture.py OUT.sql
Writes a psql script that fills the temporary table cb(name, headers, body).
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEYS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_keys")
STRIPE_SECRET = "whsec_test_callbacks_0123456789"
GENERIC_SECRET = "generic-secret-42"
APIV3_KEY = "0123456789abcdef0123456789ABCDEF"   # 32 bytes
WECHAT_SERIAL = "5157F09EFDC096DE15EBE81A47057A72"
NOW = int(time.time())


def private_key(name):
    with open(os.path.join(KEYS, name), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def rsa_sign_b64(key, message):
    sig = key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sig).decode()


def canonical(params, exclude):
    """Keys in byte order, k=v joined by &, excluded keys and empty values left out."""
    keys = sorted((k for k in params if k not in exclude and params[k] != ""),
                  key=lambda k: k.encode())
    return "&".join(f"{k}={params[k]}" for k in keys)


def stripe(event_id, etype, obj, t=None, secret=STRIPE_SECRET, tamper=False):
    body = json.dumps({"id": event_id, "object": "event", "type": etype,
                       "data": {"object": obj}}, separators=(",", ":"))
    t = NOW if t is None else t
    v1 = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    if tamper:
        body = body.replace('"amount":', '"amount":1')
    return {"Stripe-Signature": f"t={t},v1={v1}", "Content-Type": "application/json"}, body


def payment_intent(pi, order_id, amount, currency="usd"):
    return {"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
            "currency": currency, "metadata": {"order_id": str(order_id)}}


def alipay(params, notify_time=None, key="alipay_platform_key.pem", tamper=False):
    params = dict(params)
    params.setdefault("notify_time", time.strftime(
        "%Y-%m-%d %H:%M:%S", time.gmtime((notify_time or NOW) + 8 * 3600)))
    params.update({"charset": "utf-8", "version": "1.0", "sign_type": "RSA2"})
    params["sign"] = rsa_sign_b64(private_key(key), canonical(params, {"sign", "sign_type"}))
    if tamper:
        params["total_amount"] = "0.01"
    return ({"Content-Type": "application/x-www-form-urlencoded"},
            urllib.parse.urlencode(params))


def wechat(event_id, resource, ts=None, nonce=None, apiv3=APIV3_KEY, tamper=False,
           event_type="TRANSACTION.SUCCESS", serial=WECHAT_SERIAL):
    gcm_nonce = "n" + event_id[-11:].rjust(11, "0")
    sealed = AESGCM(apiv3.encode()).encrypt(gcm_nonce.encode(),
                                             json.dumps(resource, ensure_ascii=False).encode(),
                                             b"transaction")
    body = json.dumps({"id": event_id, "create_time": "2026-11-26T12:00:00+08:00",
                       "event_type": event_type, "resource_type": "encrypt-resource",
                       "summary": "支付成功",
                       "resource": {"algorithm": "AEAD_AES_256_GCM", "associated_data": "transaction",
                                    "nonce": gcm_nonce,
                                    "ciphertext": base64.b64encode(sealed).decode()}},
                      ensure_ascii=False, separators=(",", ":"))
    ts = str(NOW if ts is None else ts)
    nonce = nonce or ("N" + event_id).ljust(32, "x")[:32]
    sig = rsa_sign_b64(private_key("wechat_platform_key.pem"), f"{ts}\n{nonce}\n{body}\n")
    if tamper:
        body = body.replace("支付成功", "支付失败")
    return ({"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Signature": sig,
             "Wechatpay-Serial": serial, "Content-Type": "application/json"}, body)


def generic(params, secret=GENERIC_SECRET, form=False):
    params = dict(params)
    params.setdefault("timestamp", str(NOW))
    params["sign"] = hmac.new(secret.encode(), canonical(params, {"sign"}).encode(),
                              hashlib.sha256).hexdigest()
    if form:
        return {"Content-Type": "application/x-www-form-urlencoded"}, urllib.parse.urlencode(params)
    return {"Content-Type": "application/json"}, json.dumps(params, ensure_ascii=False)


def cases():
    """name -> (headers, body).  Order ids 910001... are created by the test."""
    pi = lambda n: f"pi_test_{n}"
    yield "stripe_paid", stripe("evt_1", "payment_intent.succeeded", payment_intent(pi(1), 910001, 2000))
    yield "stripe_paid_again", stripe("evt_1", "payment_intent.succeeded", payment_intent(pi(1), 910001, 2000))
    yield "stripe_tampered", stripe("evt_2", "payment_intent.succeeded", payment_intent(pi(2), 910002, 1500), tamper=True)
    yield "stripe_wrong_secret", stripe("evt_3", "payment_intent.succeeded", payment_intent(pi(2), 910002, 1500), secret="whsec_wrong")
    yield "stripe_stale", stripe("evt_4", "payment_intent.succeeded", payment_intent(pi(2), 910002, 1500), t=NOW - 3600)
    yield "stripe_mismatch", stripe("evt_5", "payment_intent.succeeded", payment_intent(pi(2), 910002, 1499))
    yield "stripe_refund_first", stripe("evt_6", "charge.refunded",
                                        {"id": "ch_3", "object": "charge", "payment_intent": pi(3), "amount": 3000,
                                         "amount_refunded": 1000, "currency": "usd", "metadata": {"order_id": "910003"}})
    yield "stripe_paid_late", stripe("evt_7", "payment_intent.succeeded", payment_intent(pi(3), 910003, 3000))
    yield "stripe_failed", stripe("evt_8", "payment_intent.payment_failed", payment_intent(pi(4), 910004, 700))
    yield "stripe_other_gateway", stripe("evt_9", "payment_intent.succeeded", payment_intent(pi(9), 910009, 100))
    yield "stripe_ignored", stripe("evt_10", "customer.created", {"id": "cus_1", "object": "customer"})
    headers, _ = stripe("evt_11", "payment_intent.succeeded", payment_intent(pi(2), 910002, 1500))
    body = "{not json"
    v1 = hmac.new(STRIPE_SECRET.encode(), f"{NOW}.{body}".encode(), hashlib.sha256).hexdigest()
    yield "stripe_malformed", ({"Stripe-Signature": f"t={NOW},v1={v1}", "Content-Type": "application/json"}, body)
    headers, body = stripe("evt_14", "payment_intent.succeeded", payment_intent(pi(2), 910002, 1500))
    yield "stripe_wrong_content_type", (dict(headers, **{"Content-Type": "text/plain"}), body)
    yield "stripe_no_header", ({"Content-Type": "application/json"}, '{"id":"evt_12"}')
    yield "stripe_cancelled", stripe("evt_13", "payment_intent.succeeded", payment_intent(pi(13), 910013, 900))
    yield "stripe_paid_after_failure", stripe("evt_15", "payment_intent.succeeded", payment_intent(pi(4), 910004, 700))
    # an old signed callback with a fresh-looking " t=" element in front:
    # the verifier ignores that element, so must the window check
    headers, body = stripe("evt_16", "payment_intent.succeeded", payment_intent(pi(2), 910002, 1500), t=NOW - 3600)
    yield "stripe_stale_extra_t", (dict(headers, **{"Stripe-Signature": f" t={NOW}," + headers["Stripe-Signature"]}), body)
    yield "stripe_long_event_id", stripe("evt_" + "x" * 197, "payment_intent.succeeded",
                                         payment_intent(pi(2), 910002, 1500))

    ali = lambda n, **kw: {"notify_id": f"ali_notify_{n}", "notify_type": "trade_status_sync",
                           "app_id": "2021000000000000", "out_trade_no": kw.pop("order", "910005"),
                           "trade_no": f"2026112622001{n:05d}", "subject": "测试 商品 & more",
                           "total_amount": kw.pop("amount", "12.34"),
                           "trade_status": kw.pop("status", "TRADE_SUCCESS"), "buyer_id": "", **kw}
    yield "alipay_paid", alipay(ali(1))
    yield "alipay_finished", alipay(ali(2, status="TRADE_FINISHED", trade_no="2026112622001" + "00001"))
    yield "alipay_mismatch", alipay(ali(3, order="910006", amount="12.35"))
    yield "alipay_tampered", alipay(ali(4, order="910006", amount="12.36"), tamper=True)
    yield "alipay_wrong_key", alipay(ali(5, order="910006", amount="12.36"), key="wechat_platform_key.pem")
    yield "alipay_stale", alipay(ali(6, order="910006", amount="12.36"), notify_time=NOW - 7200)
    yield "alipay_close", alipay(ali(7, order="910007", amount="5.00", status="TRADE_CLOSED"))
    yield "alipay_bad_amount", alipay(ali(8, order="910006", amount="12.3x"))
    yield "alipay_lower_currency", alipay(ali(9, order="910006", amount="12.36", currency="cny"))

    tx = lambda order, total, state="SUCCESS": {
        "mchid": "1900000001", "appid": "wx0000000000000001", "out_trade_no": order,
        "transaction_id": "4200000000" + order, "trade_state": state, "trade_type": "NATIVE",
        "amount": {"total": total, "currency": "CNY", "payer_total": total}}
    yield "wechat_paid", wechat("wx-evt-000001", tx("910008", 888))
    yield "wechat_replay", wechat("wx-evt-000001", tx("910008", 888))
    yield "wechat_retry", wechat("wx-evt-000001", tx("910008", 888), nonce="R" * 32)
    yield "wechat_tampered", wechat("wx-evt-000002", tx("910010", 300), tamper=True)
    yield "wechat_wrong_apiv3", wechat("wx-evt-000003", tx("910010", 300), apiv3="ffffffffffffffffffffffffffffffff")
    yield "wechat_unknown_serial", wechat("wx-evt-000004", tx("910010", 300), serial="ABCDEF")
    yield "wechat_refund", wechat("wx-evt-000005", {"out_trade_no": "910008", "transaction_id": "4200000000910008",
                                                    "refund_id": "50300000001", "refund_status": "SUCCESS",
                                                    "amount": {"total": 888, "refund": 88, "currency": "CNY"}},
                                  event_type="REFUND.SUCCESS")

    gen = lambda n, **kw: {"event_id": f"gen-{n}", "nonce": f"nonce-gen-{n:04d}", "currency": "USD", **kw}
    yield "generic_paid", generic(gen(1, out_trade_no="910011", status="paid", amount="500", trade_no="g-1"))
    yield "generic_bad_sign", generic(gen(2, out_trade_no="910012", status="failed", amount="600"), secret="nope")
    yield "generic_failed_form", generic(gen(3, out_trade_no="910012", status="failed", amount="600"), form=True)
    yield "generic_replay", generic(gen(3, out_trade_no="910012", status="failed", amount="600"), form=True)

    # an empty parameter is left out of the signed string: pay must not read it
    yield "alipay_empty_refund_fee", alipay(ali(10, order="910018", amount="8.00", refund_fee=""))

    # two refunds whose refund_id is empty: each is its own refund (the
    # empty value is neither signed nor read; the event id names the refund)
    for n in (5, 6):
        yield f"generic_refund_empty_id_{n}", generic(gen(n, out_trade_no="910011", status="refunded", trade_no="g-1",
                                                         refund_id="", refund_amount="100"), form=True)

    # the currency of every callback must be the order's
    yield "alipay_trans_currency_eur", alipay(ali(11, order="910014", amount="10.00", trans_currency="EUR"))
    yield "alipay_no_currency_usd", alipay(ali(12, order="910015", amount="10.00"))
    yield "alipay_no_currency_jpy", alipay(ali(13, order="910016", amount="1000"))
    yield "alipay_trans_currency_usd", alipay(ali(14, order="910017", amount="25.00", trans_currency="USD"))
    no_currency = payment_intent(pi(19), 910019, 500)
    del no_currency["currency"]
    yield "stripe_no_currency", stripe("evt_19", "payment_intent.succeeded", no_currency)
    yield "stripe_long_s_currency", stripe("evt_20", "payment_intent.succeeded",
                                           payment_intent(pi(20), 910020, 500, currency="u\u017fd"))
    yield "stripe_paid_21", stripe("evt_21", "payment_intent.succeeded", payment_intent(pi(21), 910021, 400))
    yield "stripe_refund_eur", stripe("evt_22", "charge.refunded",
                                      {"id": "ch_21", "object": "charge", "payment_intent": pi(21), "amount": 400,
                                       "amount_refunded": 100, "currency": "eur", "metadata": {"order_id": "910021"}})
    gen_no_currency = gen(4, out_trade_no="910022", status="paid", amount="700", trade_no="g-4")
    del gen_no_currency["currency"]
    yield "generic_no_currency", generic(gen_no_currency)
    wx_usd = tx("910023", 500)
    wx_usd["amount"]["currency"] = "USD"
    yield "wechat_currency_usd", wechat("wx-evt-000006", wx_usd)

    # JSON nested 100,000 deep: refused with 400, not 500 (a PSP retries a 5xx)
    deep = "[" * 100000 + "]" * 100000
    t = str(NOW)
    v1 = hmac.new(STRIPE_SECRET.encode(), f"{t}.{deep}".encode(), hashlib.sha256).hexdigest()
    yield "stripe_deep", ({"Stripe-Signature": f"t={t},v1={v1}", "Content-Type": "application/json"}, deep)
    yield "stripe_deep_unsigned", ({"Stripe-Signature": f"t={t},v1={'0' * 64}", "Content-Type": "application/json"}, deep)
    nonce = "N" + "deep".ljust(31, "x")
    sig = rsa_sign_b64(private_key("wechat_platform_key.pem"), f"{t}\n{nonce}\n{deep}\n")
    yield "wechat_deep", ({"Wechatpay-Timestamp": t, "Wechatpay-Nonce": nonce, "Wechatpay-Signature": sig,
                           "Wechatpay-Serial": WECHAT_SERIAL, "Content-Type": "application/json"}, deep)
    yield "generic_deep", ({"Content-Type": "application/json"}, '{"a":' * 100000 + "1" + "}" * 100000)

    # a payment whose body is longer than the unverified-body bound
    yield "stripe_paid_24", stripe("evt_24", "payment_intent.succeeded", payment_intent(pi(24), 910024, 600))


def dollar(s, tag):
    assert f"${tag}$" not in s
    return f"${tag}${s}${tag}$"


def main():
    out = []
    for name, (headers, body) in cases():
        out.append("INSERT INTO cb VALUES (%s, %s, %s);" % (
            dollar(name, "n"), dollar(json.dumps(headers, ensure_ascii=False), "h"), dollar(body, "b")))
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(sys.argv[1])


if __name__ == "__main__":
    main()
