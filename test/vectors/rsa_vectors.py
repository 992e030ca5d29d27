#!/usr/bin/python3
"""Known-answer vectors for pay's RSA signers, from python3-cryptography and zlib.

Usage: /usr/bin/python3 rsa_vectors.py KEYDIR > rsa_vectors.json
(called by rsa_vectors.sh, which makes the keys with the openssl command and
re-checks every signature here with `openssl dgst`).  Everything is signed
with key a (keys/a_pkcs8.pem); PKCS#1 v1.5 signatures are deterministic, so
pay.rsa_sha256_sign must reproduce them byte for byte.
"""
import base64
import json
import os
import sys
import zlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

keydir = sys.argv[1]
with open(os.path.join(keydir, "a_pkcs8.pem"), "rb") as f:
    key = serialization.load_pem_private_key(f.read(), password=None)


def sign(text):
    """base64 SHA256withRSA (PKCS#1 v1.5) of the UTF-8 bytes of text."""
    return base64.b64encode(key.sign(text.encode("utf-8"), padding.PKCS1v15(),
                                     hashes.SHA256())).decode()


def canonical(params, exclude):
    """Alipay's string to sign: keys in byte order, k=v joined by &, empty values
    and excluded keys left out, values unescaped."""
    keys = sorted((k for k in params if k not in exclude and params[k] != ""),
                  key=lambda k: k.encode("utf-8"))
    return "&".join(f"{k}={params[k]}" for k in keys)


out = {}

# --- plain RSA-SHA256 -------------------------------------------------------
messages = {
    "ascii": "hello, pay",
    "empty": "",
    "chinese": "订单支付成功：¥88.88（测试）",
    "newlines": "line one\nline two\r\n\ttabbed\n",
    "long": "".join(chr(ord("a") + i % 26) for i in range(1000)),
}
out["rsa"] = [{"name": n, "message": m, "signature": sign(m)} for n, m in messages.items()]

# --- Alipay RSA2: an asynchronous notify (verified without sign, sign_type) -
notify = {
    "gmt_create": "2024-05-01 12:00:01",
    "charset": "utf-8",
    "seller_email": "shop@example.com",
    "subject": "测试订单-手机壳 x2",
    "body": "",
    "buyer_id": "2088102177846875",
    "invoice_amount": "88.88",
    "notify_id": "2024050100222120001045871449048",
    "fund_bill_list": '[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]',
    "notify_type": "trade_status_sync",
    "trade_status": "TRADE_SUCCESS",
    "receipt_amount": "88.88",
    "app_id": "2021000117650139",
    "buyer_pay_amount": "88.88",
    "seller_id": "2088102176028592",
    "gmt_payment": "2024-05-01 12:00:05",
    "notify_time": "2024-05-01 12:00:06",
    "version": "1.0",
    "out_trade_no": "20240501000001",
    "total_amount": "88.88",
    "trade_no": "2024050122001446870501234567",
    "auth_app_id": "2021000117650139",
    "buyer_logon_id": "158****1562",
    "point_amount": "0.00",
    "sign_type": "RSA2",
}
c = canonical(notify, {"sign", "sign_type"})
notify["sign"] = sign(c)
out["alipay_notify"] = {"params": notify, "canonical": c}

# --- Alipay RSA2: a request we sign (sign_type is signed, only sign left out)
request = {
    "app_id": "2021000117650139",
    "method": "alipay.trade.page.pay",
    "format": "JSON",
    "charset": "utf-8",
    "sign_type": "RSA2",
    "timestamp": "2024-05-01 12:00:00",
    "version": "1.0",
    "notify_url": "https://pay.example.com/callback/alipay",
    "return_url": "",
    "biz_content": '{"out_trade_no":"20240501000001","total_amount":"88.88",'
                   '"subject":"测试订单","product_code":"FAST_INSTANT_TRADE_PAY"}',
}
c = canonical(request, {"sign"})
out["alipay_request"] = {"params": request, "canonical": c, "sign": sign(c)}

# --- Alipay synchronous answers: the signature covers the raw *_response text
responses = []


def response(name, template, member, escape_slash=False):
    """template has {M} for the raw member text and {S} for the signature."""
    s = sign(member)
    if escape_slash:
        s_json = s.replace("/", "\\/")
        assert s_json != s, "signature has no '/' to escape"
    else:
        s_json = s
    responses.append({"name": name, "body": template.replace("{M}", member).replace("{S}", s_json),
                      "signed_text": member, "signature": s})


response("compact",
         '{"alipay_trade_query_response":{M},"sign":"{S}"}',
         '{"code":"10000","msg":"Success","buyer_logon_id":"158****1562",'
         '"buyer_pay_amount":"88.88","out_trade_no":"20240501000001","subject":"测试订单",'
         '"total_amount":"88.88","trade_no":"2024050122001446870501234567",'
         '"trade_status":"TRADE_SUCCESS"}')
response("spaced_escaped",
         '{\n  "alipay_trade_refund_response" : {M} ,\n  "alipay_cert_sn": "abc",\n'
         '  "sign" : "{S}"\n}\n',
         '{ "code" : "10000", "msg":"Success",\n    "subject":"\\u6d4b\\u8bd5 \\"quoted\\" a\\/b\\\\",'
         ' "refund_fee" : 88.88, "list":[1, -2.5e3, 0, {"x":null,"y":[true,false]}], "empty":{} }',
         escape_slash=True)
response("sign_first_error",
         '{"sign":"{S}","error_response":{M}}',
         '{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature",'
         '"sub_msg":"验签出错"}')
out["alipay_response"] = responses

# --- WeChat Pay API v3 ------------------------------------------------------
mchid, serial = "1230000109", "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
auth = []
for method, url, body, ts, nonce in [
        ("POST", "/v3/pay/transactions/jsapi",
         '{"appid":"wxd678efh567hg6787","mchid":"1230000109","description":"Image形象店-深圳腾大-QQ公仔",'
         '"out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php",'
         '"amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}',
         1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242"),
        ("GET", "/v3/certificates?offset=0&limit=10", "", 1554208461, "a1b2c3d4e5f6")]:
    msg = f"{method}\n{url}\n{ts}\n{nonce}\n{body}\n"
    sig = sign(msg)
    auth.append({"method": method, "url": url, "body": body, "mchid": mchid, "serial_no": serial,
                 "ts": ts, "nonce": nonce, "message": msg, "signature": sig,
                 "header": f'WECHATPAY2-SHA256-RSA2048 mchid="{mchid}",nonce_str="{nonce}",'
                           f'signature="{sig}",timestamp="{ts}",serial_no="{serial}"'})
out["wechatpay_auth"] = auth[0]
out["wechatpay_auth_get"] = auth[1]

apiv3_key = "Wz4tQm8pLr2sVx6yBn0cKd5fHj7gTe9a"   # 32 ASCII bytes
assert len(apiv3_key.encode()) == 32
decrypts = []
for name, nonce, aad, plaintext in [
        ("transaction", "fdasflkja484", "transaction",
         '{"mchid":"1230000109","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018",'
         '"transaction_id":"4200000001202405010000000001","trade_state":"SUCCESS",'
         '"trade_state_desc":"支付成功","amount":{"total":100,"payer_total":100,"currency":"CNY"}}'),
        ("empty_aad", "0123456789ab", "", "纯文本，无附加数据"),
        ("empty_plaintext", "nonce-000001", "certificate", "")]:
    ct = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext.encode(), aad.encode())
    decrypts.append({"name": name, "key": apiv3_key, "nonce": nonce, "associated_data": aad,
                     "plaintext": plaintext, "ciphertext": base64.b64encode(ct).decode()})
# bytes that are not UTF-8: decryption must refuse them rather than return them as text
ct = AESGCM(apiv3_key.encode()).encrypt(b"nonce-000002", b"\xff\xfe\x00bin", b"transaction")
decrypts.append({"name": "not_utf8", "key": apiv3_key, "nonce": "nonce-000002",
                 "associated_data": "transaction", "plaintext": None,
                 "plaintext_hex": "fffe0062696e", "ciphertext": base64.b64encode(ct).decode()})
out["wechatpay_decrypt"] = decrypts

d = decrypts[0]
cb_body = json.dumps({
    "id": "EV-2018022511223320873", "create_time": "2024-05-01T12:00:06+08:00",
    "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
    "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                 "ciphertext": d["ciphertext"], "associated_data": d["associated_data"],
                 "nonce": d["nonce"]}}, ensure_ascii=False, separators=(",", ":"))
ts, nonce = "1714536006", "c5ac7061fccab6bf3e254dcf98995b8c"
msg = f"{ts}\n{nonce}\n{cb_body}\n"
out["wechatpay_callback"] = {"ts": ts, "nonce": nonce, "body": cb_body, "message": msg,
                             "signature": sign(msg)}

# --- PayPal webhook ---------------------------------------------------------
pp_body = json.dumps({
    "id": "WH-2WR32451HC0233532-67976317FL4543714", "event_version": "1.0",
    "create_time": "2024-05-01T12:00:06.000Z", "resource_type": "capture",
    "event_type": "PAYMENT.CAPTURE.COMPLETED", "summary": "Payment completed for € 88.88 EUR",
    "resource": {"id": "42311647XV020574X", "amount": {"currency_code": "EUR", "value": "88.88"},
                 "note": "测试"}}, ensure_ascii=False, separators=(", ", ": "))
tid, ttime, webhook_id = "69cd13f0-d67a-11e5-baa3-778b53f4ae55", "2024-05-01T12:00:07Z", "1JE4291016473214C"
crc = zlib.crc32(pp_body.encode("utf-8"))
msg = f"{tid}|{ttime}|{webhook_id}|{crc}"
sig = sign(msg)
out["paypal"] = {
    "headers": {"PAYPAL-TRANSMISSION-ID": tid, "PAYPAL-TRANSMISSION-TIME": ttime,
                "PAYPAL-TRANSMISSION-SIG": sig, "PAYPAL-AUTH-ALGO": "SHA256withRSA",
                "PAYPAL-CERT-URL": "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
                "Content-Type": "application/json"},
    "body": pp_body, "webhook_id": webhook_id, "crc32": crc, "message": msg, "signature": sig}
# CRC-32 check values (zlib): the standard "123456789" -> 0xCBF43926, and the empty string
out["crc32"] = [{"text": t, "crc32": zlib.crc32(t.encode())} for t in ["", "123456789", "测试", pp_body]]

json.dump(out, sys.stdout, ensure_ascii=False, indent=1, sort_keys=True)
sys.stdout.write("\n")
