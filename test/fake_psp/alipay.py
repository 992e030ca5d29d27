"""Alipay: the open-platform gateway pay's dispatcher calls (POST /gateway.do)
and the asynchronous notifies the fake PSP sends to pay.

Gateway: parameters from the query string and the form body (merged), RSA2
`sign` over the canonical string (keys sorted, k=v&..., `sign` excluded,
`sign_type` included, empty values excluded), verified with our app public
key.  Answers `{"<method with . -> _>_response":{...},"sign":"..."}`, the
signature (Alipay platform key) covering the raw text of the *_response
member.  Gateway-level errors (40001 missing / 40002 invalid arguments, bad
signature, unknown method) are not signed; business answers (10000, 40004)
are.  Methods: alipay.trade.precreate / query / refund / close;
out_trade_no (precreate, close) and out_trade_no+out_request_no (refund) are
idempotent: a repeat changes nothing and answers as the first time.
alipay.data.dataservice.bill.downloadurl.query and the bill's download:
alipay_bills.py."""

import json
import time
import urllib.parse

import alipay_bills
import ids
import money
import server
import signing

GATEWAY = "/gateway.do"
PAID = ("TRADE_SUCCESS", "TRADE_FINISHED")


def _state(app):
    """The fake Alipay's trades by out_trade_no."""
    st = app.store.state["alipay"]
    if not st:
        st.update(trades={}, by_trade_no={})
    return st


def _response(app, method, member, signed=True):
    """The gateway's JSON answer; the signature covers the exact member text."""
    name = (method or "error").replace(".", "_") + "_response" if method else "error_response"
    text = json.dumps(member, ensure_ascii=False, separators=(",", ":"))
    body = '{"' + name + '":' + text
    if signed:
        body += ',"sign":"' + signing.rsa_sign_b64(app.cfg.alipay_platform_private_key, text) + '"'
    body += "}"
    return server.Response(200, body, "text/html;charset=utf-8")


def _gateway_error(app, method, code, sub_code, sub_msg):
    """An unsigned gateway-level error (missing or invalid arguments)."""
    msg = {"40001": "Missing Required Arguments", "40002": "Invalid Arguments",
           "20000": "Service Currently Unavailable"}.get(code, "Invalid Arguments")
    return _response(app, method, {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}, signed=False)


def _biz_error(sub_code, sub_msg):
    """A signed business failure member."""
    return {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}


def _trade_no():
    """A 28-digit Alipay trade number."""
    return time.strftime("%Y%m%d") + "2200" + ids.digits(16)


def handle(app, req):
    """Route POST /gateway.do and the bill download; None if the path is not Alipay's."""
    if req.path == alipay_bills.DOWNLOAD and req.method == "GET":
        with app.store.lock:
            bill = alipay_bills.download(_state(app), req.query_params().get("fileId", ""))
        if bill is None:
            return "alipay.bill_download", server.Response(404, "文件不存在", "text/plain;charset=utf-8"), "ok"
        return "alipay.bill_download", server.Response(200, bill, "application/octet-stream"), "ok"
    if req.path != GATEWAY:
        return None
    cfg = app.cfg
    if not (cfg.alipay_app_id and cfg.alipay_app_public_key and cfg.alipay_platform_private_key):
        return "alipay", server.json_response(501, {"error": "alipay is not configured in the fake PSP"}), "not_configured"
    try:
        params = req.query_params()
        if req.body:
            params.update(urllib.parse.parse_qsl(req.body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return "alipay.gateway", _gateway_error(app, None, "40002", "isv.invalid-charset", "字符集错误"), "bad_body"
    method = params.get("method") or None
    route = f"alipay.{method}" if method else "alipay.gateway"
    for name, sub in (("app_id", "isv.missing-app-id"), ("method", "isv.missing-method"),
                      ("sign", "isv.missing-signature"), ("sign_type", "isv.missing-signature-type"),
                      ("timestamp", "isv.missing-timestamp"), ("version", "isv.missing-version")):
        if not params.get(name):
            return route, _gateway_error(app, method, "40001", sub, f"缺少{name}参数"), "missing_" + name
    if params["app_id"] != cfg.alipay_app_id:
        return route, _gateway_error(app, method, "40002", "isv.invalid-app-id", "无效的AppID参数"), "bad_app_id"
    if params["sign_type"] != "RSA2":
        return route, _gateway_error(app, method, "40002", "isv.invalid-signature-type", "无效的签名类型"), "bad_sign_type"
    if params.get("charset", "utf-8").lower() != "utf-8":
        return route, _gateway_error(app, method, "40002", "isv.invalid-charset", "字符集错误"), "bad_charset"
    if params["version"] != "1.0":
        return route, _gateway_error(app, method, "40002", "isv.invalid-version", "版本号错误"), "bad_version"
    try:
        ts = ids.parse_beijing_time(params["timestamp"])
    except ValueError:
        return route, _gateway_error(app, method, "40002", "isv.invalid-timestamp", "非法的时间戳参数"), "bad_timestamp"
    tol = cfg.alipay_timestamp_tolerance_s
    if tol and abs(time.time() - ts) > tol:
        return route, _gateway_error(app, method, "40002", "isv.invalid-timestamp",
                                     "非法的时间戳参数 (timestamp is Beijing time, UTC+8)"), "stale_timestamp"
    signed_text = signing.canonical_query(params, exclude=("sign",))
    if not signing.rsa_valid_b64(cfg.alipay_app_public_key, signed_text, params["sign"]):
        return route, _gateway_error(app, method, "40002", "isv.invalid-signature",
                                     "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为："
                                     + signed_text), "bad_signature"
    op = METHODS.get(method)
    if op is None:
        return route, _gateway_error(app, None, "40002", "isv.invalid-method", "不存在的方法名"), "bad_method"
    try:
        biz = json.loads(params.get("biz_content") or "")
        if not isinstance(biz, dict):
            raise ValueError
    except ValueError:
        return route, _gateway_error(app, method, "40002", "isv.invalid-parameter", "biz_content 不是JSON对象"), "bad_biz_content"
    member = op(app, biz, params)
    return route, _response(app, method, member), "ok" if member.get("code") == "10000" else "business_error"


def _find(app, biz):
    """The trade named by out_trade_no or trade_no, or None."""
    st = _state(app)
    if biz.get("out_trade_no"):
        return st["trades"].get(str(biz["out_trade_no"]))
    if biz.get("trade_no"):
        return st["trades"].get(st["by_trade_no"].get(str(biz["trade_no"]), ""))
    return None


def _major(trade, minor):
    """A minor amount as the trade currency's major decimal string."""
    return money.to_major(minor, trade["currency"])


def _new_trade(ref, amount, currency, subject, trade_no=None):
    """A trade record."""
    return {"out_trade_no": ref, "trade_no": trade_no or _trade_no(), "amount": amount,
            "currency": currency, "subject": subject, "status": "WAIT_BUYER_PAY",
            "refunded": 0, "refunds": {}, "created": time.time(), "paid_at": None,
            "qr_code": "https://qr.alipay.com/bax0" + ids.alnum(20)}


def _precreate(app, biz, params):
    """alipay.trade.precreate: a QR code for an order; idempotent on out_trade_no."""
    ref = str(biz.get("out_trade_no") or "")
    if not ref or len(ref) > 64:
        return _biz_error("ACQ.INVALID_PARAMETER", "参数无效 (out_trade_no)")
    if not biz.get("subject"):
        return _biz_error("ACQ.INVALID_PARAMETER", "参数无效 (subject)")
    currency = str(biz.get("trans_currency") or "CNY")
    try:
        amount = money.to_minor(str(biz.get("total_amount") or ""), currency)
    except ValueError:
        return _biz_error("ACQ.INVALID_PARAMETER", "参数无效 (total_amount)")
    if amount <= 0 or amount > money.to_minor("100000000", currency):
        return _biz_error("ACQ.TOTAL_FEE_EXCEED", "订单金额超过限额")
    key = f"alipay:precreate:{ref}"
    st = _state(app)
    with app.store.lock:
        trade = st["trades"].get(ref)
        if trade is not None:
            if trade["status"] in PAID:
                app.store.effect(key, False)
                return _biz_error("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            if trade["status"] == "TRADE_CLOSED":
                app.store.effect(key, False)
                return _biz_error("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
            if trade["amount"] != amount or trade["currency"] != currency or trade["subject"] != biz["subject"]:
                app.store.effect(key, False, conflict=True)
                return _biz_error("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            app.store.effect(key, False)
        else:
            trade = _new_trade(ref, amount, currency, biz["subject"])
            st["trades"][ref] = trade
            st["by_trade_no"][trade["trade_no"]] = ref
            app.store.effect(key, True)
            app.store.order_bump("alipay", ref, "precreates")
    return {"code": "10000", "msg": "Success", "out_trade_no": ref, "qr_code": trade["qr_code"]}


def _query(app, biz, params):
    """alipay.trade.query."""
    with app.store.lock:
        trade = _find(app, biz)
        if trade is None:
            return _biz_error("ACQ.TRADE_NOT_EXIST", "交易不存在")
        paid = trade["status"] in PAID or trade["paid_at"] is not None
        total = _major(trade, trade["amount"])
        member = {"code": "10000", "msg": "Success", "buyer_logon_id": "tes***@example.com",
                  "buyer_pay_amount": total if paid else "0.00", "buyer_user_id": "2088102177846880",
                  "invoice_amount": total if paid else "0.00", "out_trade_no": trade["out_trade_no"],
                  "point_amount": "0.00", "receipt_amount": total if paid else "0.00",
                  "total_amount": total, "trade_no": trade["trade_no"], "trade_status": trade["status"]}
        if paid:
            member["send_pay_date"] = ids.beijing_time(trade["paid_at"] or time.time())
        if trade["currency"] != "CNY":
            member["trans_currency"] = trade["currency"]
    return member


def _refund(app, biz, params):
    """alipay.trade.refund; idempotent on (out_trade_no, out_request_no)."""
    with app.store.lock:
        trade = _find(app, biz)
        if trade is None:
            return _biz_error("ACQ.TRADE_NOT_EXIST", "交易不存在")
        req_no = str(biz.get("out_request_no") or trade["out_trade_no"])
        key = f"alipay:refund:{trade['out_trade_no']}:{req_no}"
        try:
            amount = money.to_minor(str(biz.get("refund_amount") or ""), trade["currency"])
        except ValueError:
            return _biz_error("ACQ.INVALID_PARAMETER", "参数无效 (refund_amount)")
        if amount <= 0:
            return _biz_error("ACQ.INVALID_PARAMETER", "参数无效 (refund_amount)")
        done = trade["refunds"].get(req_no)
        fund_change = "Y"
        if done is not None:
            if done["amount"] != amount:
                app.store.effect(key, False, conflict=True)
                return _biz_error("ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求")
            app.store.effect(key, False)
            fund_change, at = "N", done["at"]
        else:
            if trade["paid_at"] is None:
                app.store.effect(key, False)
                return _biz_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            if amount > trade["amount"] - trade["refunded"]:
                app.store.effect(key, False)
                return _biz_error("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
            at = time.time()
            trade["refunds"][req_no] = {"amount": amount, "at": at}
            trade["refunded"] += amount
            if trade["refunded"] == trade["amount"]:
                trade["status"] = "TRADE_CLOSED"
            app.store.effect(key, True)
            app.store.order_bump("alipay", trade["out_trade_no"], "refunds")
            app.store.order_bump("alipay", trade["out_trade_no"], "refunded_amount", amount)
        return {"code": "10000", "msg": "Success", "buyer_logon_id": "tes***@example.com",
                "buyer_user_id": "2088102177846880", "fund_change": fund_change,
                "gmt_refund_pay": ids.beijing_time(at), "out_trade_no": trade["out_trade_no"],
                "refund_fee": _major(trade, trade["refunded"]), "send_back_fee": _major(trade, amount),
                "trade_no": trade["trade_no"]}


def _close(app, biz, params):
    """alipay.trade.close: closes an unpaid trade; idempotent."""
    with app.store.lock:
        trade = _find(app, biz)
        if trade is None:
            return _biz_error("ACQ.TRADE_NOT_EXIST", "交易不存在")
        key = f"alipay:close:{trade['out_trade_no']}"
        if trade["paid_at"] is not None:
            app.store.effect(key, False)
            return _biz_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        applied = trade["status"] != "TRADE_CLOSED"
        trade["status"] = "TRADE_CLOSED"
        app.store.effect(key, applied)
        if applied:
            app.store.order_bump("alipay", trade["out_trade_no"], "closes")
        return {"code": "10000", "msg": "Success", "out_trade_no": trade["out_trade_no"],
                "trade_no": trade["trade_no"]}


def _bill_downloadurl(app, biz, params):
    """alipay.data.dataservice.bill.downloadurl.query: where the day's zipped bill is."""
    return alipay_bills.downloadurl_query(app, _state(app), biz)


def _refund_query(app, biz, params):
    """alipay.trade.fastpay.refund.query: refund_status REFUND_SUCCESS when the refund
    (out_trade_no, out_request_no) was made; without it when it was not (as at Alipay)."""
    with app.store.lock:
        trade = _find(app, biz)
        if trade is None:
            return _biz_error("ACQ.TRADE_NOT_EXIST", "交易不存在")
        req_no = str(biz.get("out_request_no") or trade["out_trade_no"])
        member = {"code": "10000", "msg": "Success", "out_trade_no": trade["out_trade_no"],
                  "trade_no": trade["trade_no"], "out_request_no": req_no}
        done = trade["refunds"].get(req_no)
        if done is not None:
            member.update(refund_amount=_major(trade, done["amount"]), total_amount=_major(trade, trade["amount"]),
                          refund_status="REFUND_SUCCESS", gmt_refund_pay=ids.beijing_time(done["at"]))
    return member


METHODS = {"alipay.trade.precreate": _precreate, "alipay.trade.query": _query,
           "alipay.trade.refund": _refund, "alipay.trade.close": _close,
           "alipay.trade.fastpay.refund.query": _refund_query,
           alipay_bills.METHOD: _bill_downloadurl}


# --- asynchronous notifies sent to pay ---------------------------------------

class Callbacks:
    """Alipay async notifies: form-encoded, RSA2 `sign` over the canonical string
    without sign and sign_type, total_amount as a major-unit decimal string."""

    provider = "alipay"
    ALIASES = {"paid": "TRADE_SUCCESS", "succeeded": "TRADE_SUCCESS", "success": "TRADE_SUCCESS",
               "finished": "TRADE_FINISHED", "closed": "TRADE_CLOSED", "failed": "TRADE_CLOSED",
               "refunded": "REFUND", "refund": "REFUND"}
    EVENTS = ("TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED", "REFUND")
    success_event = "TRADE_SUCCESS"
    refund_event = "REFUND"
    nonce_is_event_id = True

    def event_name(self, name):
        """The native trade_status (or REFUND) for an alias or native name."""
        name = self.ALIASES.get(name, name)
        if name not in self.EVENTS:
            raise ValueError("alipay events: TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED, REFUND "
                             "(or paid, closed, failed, refunded)")
        return name

    def build(self, app, p, event, event_id=None, update=True, mode=None):
        """The notify's parameters (without notify_time, sign_type, sign)."""
        cfg = app.cfg
        st = _state(app)
        currency = p["currency"].upper()
        now = time.time()
        with app.store.lock:
            trade = st["trades"].get(p["ref"])
            if trade is None:
                trade = _new_trade(p["ref"], p["amount"], currency, f"order {p['ref']}", p.get("txn_id"))
                if update:
                    st["trades"][p["ref"]] = trade
                    st["by_trade_no"][trade["trade_no"]] = p["ref"]
            if not update:
                trade = json.loads(json.dumps(trade))
            trade["amount"], trade["currency"] = p["amount"], currency
            total = _major(trade, p["amount"])
            params = {"gmt_create": ids.beijing_time(trade["created"]), "charset": "utf-8",
                      "subject": trade["subject"], "buyer_id": "2088102177846880",
                      "notify_id": event_id or (ids.alnum(32).lower() + ids.digits(3)),
                      "notify_type": "trade_status_sync", "app_id": cfg.alipay_app_id,
                      "auth_app_id": cfg.alipay_app_id, "seller_id": cfg.alipay_seller_id,
                      "version": "1.0", "out_trade_no": p["ref"], "trade_no": trade["trade_no"],
                      "total_amount": total, "buyer_logon_id": "tes***@example.com"}
            if currency != "CNY":
                params["trans_currency"] = currency
            paid_fields = {"receipt_amount": total, "invoice_amount": total, "buyer_pay_amount": total,
                           "point_amount": "0.00",
                           "fund_bill_list": json.dumps([{"amount": total, "fundChannel": "ALIPAYACCOUNT"}],
                                                        separators=(",", ":"))}
            if event in PAID:
                trade["status"] = event
                trade["paid_at"] = trade["paid_at"] or now
                params.update(paid_fields, trade_status=event, gmt_payment=ids.beijing_time(trade["paid_at"]))
            elif event == "TRADE_CLOSED":
                trade["status"] = "TRADE_CLOSED"
                params.update(trade_status="TRADE_CLOSED", gmt_close=ids.beijing_time(now))
            else:
                trade["paid_at"] = trade["paid_at"] or now
                refund = p.get("refund_amount") or (p["amount"] - trade["refunded"]) or p["amount"]
                trade["refunded"] += refund
                full = trade["refunded"] >= p["amount"]
                trade["status"] = "TRADE_CLOSED" if full else "TRADE_SUCCESS"
                params.update(paid_fields, trade_status=trade["status"],
                              gmt_payment=ids.beijing_time(trade["paid_at"]),
                              refund_fee=_major(trade, trade["refunded"]), gmt_refund=ids.beijing_time(now),
                              out_biz_no=p.get("refund_id") or "RF" + ids.digits(14))
                if full:
                    params["gmt_close"] = ids.beijing_time(now)
        return params

    def event_id(self, payload):
        """The notify_id."""
        return payload["notify_id"]

    def render(self, app, payload, ts, nonce, mode=None):
        """(headers, body): notify_time from ts, sign_type=RSA2, sign (unless unsigned)."""
        params = dict(payload, notify_time=ids.beijing_time(ts), sign_type="RSA2")
        if mode != "unsigned":
            key = app.cfg.wrong_key() if mode == "wrong_key" else app.cfg.alipay_platform_private_key
            if key is None:
                raise ValueError("alipay.platform_private_key is not configured")
            params["sign"] = signing.rsa_sign_b64(key, signing.canonical_query(params, ("sign", "sign_type")))
        body = urllib.parse.urlencode(params).encode("ascii")
        return {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "User-Agent": "Mozilla/4.0"}, body

    def tamper(self, body):
        """Raise total_amount by one minor unit after signing."""
        pairs = urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True)
        params = dict(pairs)
        cur = params.get("trans_currency", "CNY")
        out = []
        for k, v in pairs:
            if k == "total_amount":
                v = money.to_major(money.to_minor(v, cur) + 1, cur)
            out.append((k, v))
        return urllib.parse.urlencode(out).encode("ascii")
