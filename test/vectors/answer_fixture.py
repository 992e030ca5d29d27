#!/usr/bin/python3
"""Signed PSP answers for sql/psp_answers.sql, made at test time.

An independent implementation: python3-cryptography signs exactly as
Alipay (RSA2 over the raw text of the *_response member) and WeChat Pay
(RSA SHA-256 over "timestamp\\nnonce\\nbody\\n", Wechatpay-* headers) sign
their synchronous answers, so the test checks pay._outbox_apply against
them, never against our own C code.  Keys: test/vectors/callback_keys
(made by openssl, make_keys.sh there).  WeChat Pay's timestamps must be
"now" (or deliberately stale), hence made at test time.

usage: answer_fixture.py OUT.sql WECHAT_REFUND_ID
Writes a psql script that fills the temporary table ans(name, status,
headers, body).  Order ids 940001... are created by the test.
"""
import base64
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

KEYS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_keys")
WECHAT_SERIAL = "5157F09EFDC096DE15EBE81A47057A72"
NOW = int(time.time())


def private_key(name):
    with open(os.path.join(KEYS, name), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def rsa_sign_b64(key, message):
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def alipay(method, member, key="alipay_platform_key.pem", signed=True, tamper=None):
    """{"<method>_response":<member>,"sign":"..."} as Alipay's gateway writes it."""
    text = json.dumps(member, ensure_ascii=False, separators=(",", ":"))
    body = '{"' + method.replace(".", "_") + '_response":' + text
    if signed:
        body += ',"sign":"' + rsa_sign_b64(private_key(key), text) + '"'
    body += "}"
    if tamper:
        body = body.replace(*tamper)
    return 200, {"Content-Type": "text/html;charset=utf-8"}, body


def wechat(status, obj, ts=None, serial=WECHAT_SERIAL, signed=True, tamper=None):
    """A WeChat Pay v3 answer with its Wechatpay-* headers (header names as the wire has them)."""
    body = "" if obj is None else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    ts = str(NOW if ts is None else ts)
    nonce = ("N" + str(abs(hash(body)))).ljust(32, "x")[:32]
    headers = {"Content-Type": "application/json; charset=utf-8", "Request-ID": "08F1A2B3-0001"}
    if signed:
        headers.update({"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial,
                        "Wechatpay-Signature": rsa_sign_b64(private_key("wechat_platform_key.pem"),
                                                            f"{ts}\n{nonce}\n{body}\n"),
                        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"})
    if tamper:
        body = body.replace(*tamper)
    return status, headers, body


def stripe(status, obj):
    return status, {"Content-Type": "application/json", "Request-Id": "req_test"}, json.dumps(obj)


def pi(n, order, amount, status="requires_payment_method", currency="usd"):
    return {"id": f"pi_ans_{n}", "object": "payment_intent", "amount": amount,
            "amount_received": amount if status == "succeeded" else 0, "currency": currency,
            "client_secret": f"pi_ans_{n}_secret_abc", "status": status, "metadata": {"order_id": str(order)}}


def cases(wechat_refund_id):
    ok = {"code": "10000", "msg": "Success"}
    pre = "alipay.trade.precreate"
    yield "ali_precreate", alipay(pre, dict(ok, out_trade_no="940001", qr_code="https://qr.alipay.com/bax01"))
    yield "ali_precreate_tampered", alipay(pre, dict(ok, out_trade_no="940002", qr_code="https://qr.alipay.com/bax02"),
                                           tamper=("bax02", "evil2"))
    yield "ali_precreate_unsigned", alipay(pre, dict(ok, out_trade_no="940002", qr_code="https://qr.alipay.com/bax02"),
                                           signed=False)
    yield "ali_precreate_wrong_key", alipay(pre, dict(ok, out_trade_no="940002", qr_code="https://qr.alipay.com/bax02"),
                                            key="wechat_platform_key.pem")
    yield "ali_precreate_other_order", alipay(pre, dict(ok, out_trade_no="940099", qr_code="https://qr.alipay.com/bax99"))
    yield "ali_precreate_refused", alipay(pre, {"code": "40004", "msg": "Business Failed",
                                                "sub_code": "ACQ.TOTAL_FEE_EXCEED", "sub_msg": "订单金额超过限额"})
    q = "alipay.trade.query"
    trade = lambda order, amount, status: dict(ok, out_trade_no=order, trade_no="2026120222001" + order,
                                               total_amount=amount, trade_status=status,
                                               buyer_logon_id="tes***@example.com")
    yield "ali_query_paid", alipay(q, trade("940004", "12.34", "TRADE_SUCCESS"))
    yield "ali_query_wait", alipay(q, trade("940005", "5.00", "WAIT_BUYER_PAY"))
    yield "ali_query_wrong_amount", alipay(q, trade("940005", "50.00", "TRADE_SUCCESS"))
    yield "ali_close_paid", alipay("alipay.trade.close", {"code": "40004", "msg": "Business Failed",
                                                          "sub_code": "ACQ.TRADE_STATUS_ERROR", "sub_msg": "交易状态不合法"})

    native = {"code_url": "weixin://wxpay/bizpayurl?pr=abc1234"}
    yield "wx_native", wechat(200, native)
    yield "wx_native_tampered", wechat(200, native, tamper=("abc1234", "evil123"))
    yield "wx_native_unsigned", wechat(200, native, signed=False)
    yield "wx_native_wrong_serial", wechat(200, native, serial="ABCDEF0123")
    yield "wx_native_stale", wechat(200, native, ts=NOW - 3600)
    tx = lambda order, total, state: {
        "appid": "wx0000000000000001", "mchid": "1900000001", "out_trade_no": order,
        "transaction_id": "4200000000" + order, "trade_type": "NATIVE", "trade_state": state,
        "trade_state_desc": "支付成功", "amount": {"total": total, "currency": "CNY", "payer_total": total}}
    yield "wx_query_paid", wechat(200, tx("940013", 888, "SUCCESS"))
    yield "wx_query_other_order", wechat(200, tx("940099", 888, "SUCCESS"))
    yield "wx_refused", wechat(400, {"code": "PARAM_ERROR", "message": "description 长度不能超过127"})
    yield "wx_close_paid", wechat(400, {"code": "ORDERPAID", "message": "订单已支付"})
    yield "wx_refund", wechat(200, {"refund_id": "50300000000000000001", "out_refund_no": str(wechat_refund_id),
                                    "transaction_id": "4200000000920016", "out_trade_no": "940016",
                                    "status": "SUCCESS", "amount": {"total": 888, "refund": 100, "currency": "CNY"}})

    yield "st_create", stripe(200, pi(21, 940021, 2100))
    yield "st_create_other_order", stripe(200, pi(22, 940099, 2200))
    yield "st_create_wrong_amount", stripe(200, pi(22, 940022, 9999))
    yield "st_refused", stripe(402, {"error": {"type": "card_error", "code": "card_declined",
                                               "message": "Your card was declined."}})
    yield "st_query_paid", stripe(200, pi(24, 940024, 2400, status="succeeded"))
    yield "st_query_canceled", stripe(200, pi(25, 940025, 2500, status="canceled"))


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    out, refund_id = sys.argv[1], sys.argv[2]
    with open(out, "w", encoding="utf-8") as f:
        for name, (status, headers, body) in cases(refund_id):
            f.write("INSERT INTO ans VALUES (%s, %d, %s, %s);\n" % (
                sql_literal(name), status, sql_literal(json.dumps(headers, ensure_ascii=False)), sql_literal(body)))


if __name__ == "__main__":
    main()
