"""WeChat Pay API v3: the endpoints pay's dispatcher calls and the encrypted
notifications the fake PSP sends to pay.

Requests carry `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",
nonce_str="..",signature="..",timestamp="..",serial_no=".."`, an RSA
SHA-256 signature (our merchant key) over "METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n"
where URL is the path with its query string as sent.  Every answer carries
Wechatpay-Timestamp / -Nonce / -Signature / -Serial, signed with the platform
key over "TIMESTAMP\\nNONCE\\nBODY\\n".  out_trade_no (native order, close) and
out_refund_no (refund) are idempotent."""

import json
import re
import time
import uuid

import ids
import server
import signing
import wechatpay_bills

PREFIX = "/v3/"
ROUTE_QUERY = re.compile(r"^/v3/pay/transactions/out-trade-no/([^/]+)$")
ROUTE_QUERY_ID = re.compile(r"^/v3/pay/transactions/id/([^/]+)$")
ROUTE_CLOSE = re.compile(r"^/v3/pay/transactions/out-trade-no/([^/]+)/close$")
ROUTE_REFUND_QUERY = re.compile(r"^/v3/refund/domestic/refunds/([^/]+)$")
OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-*|]+")
STATE_DESC = {"NOTPAY": "未支付", "SUCCESS": "支付成功", "CLOSED": "已关闭", "REFUND": "转入退款",
              "PAYERROR": "支付失败"}


def _state(app):
    """The fake WeChat Pay's transactions by out_trade_no and refunds by out_refund_no."""
    st = app.store.state["wechatpay"]
    if not st:
        st.update(trades={}, by_txn={}, refunds={})
    return st


def signed(app, status, obj=None):
    """An answer with the platform signature headers (body empty for obj None)."""
    body = b"" if obj is None else json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    ts, nonce = str(int(time.time())), ids.alnum(32)
    sig = signing.rsa_sign_b64(app.cfg.wechat_platform_private_key, signing.wechat_response_message(ts, nonce, body))
    headers = [("Request-ID", ids.alnum(8) + "-" + ids.alnum(4)), ("Wechatpay-Nonce", nonce),
               ("Wechatpay-Signature", sig), ("Wechatpay-Timestamp", ts),
               ("Wechatpay-Serial", app.cfg.wechat_platform_serial),
               ("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")]
    return server.Response(status, body, "application/json; charset=utf-8" if obj is not None else None, headers)


def err(app, status, code, message, detail=None):
    """A signed error answer {"code":..,"message":..}."""
    obj = {"code": code, "message": message}
    if detail:
        obj["detail"] = detail
    return signed(app, status, obj)


def _verify(app, req):
    """None when the Authorization header verifies, else (verdict, message)."""
    cfg = app.cfg
    auth = signing.parse_wechat_authorization(req.header("Authorization"))
    if auth is None:
        return "no_authorization", "Authorization 头缺失或格式错误 (WECHATPAY2-SHA256-RSA2048 expected)"
    for f in ("mchid", "nonce_str", "signature", "timestamp", "serial_no"):
        if not auth.get(f):
            return "bad_authorization", f"Authorization 头缺少 {f}"
    if auth["mchid"] != cfg.wechat_mchid:
        return "bad_mchid", "商户号不存在 (mchid)"
    if auth["serial_no"].upper() != (cfg.wechat_merchant_serial or "").upper():
        return "bad_serial", "商户证书序列号有误 (serial_no)"
    if not auth["timestamp"].isdigit():
        return "bad_timestamp", "timestamp 格式错误"
    tol = cfg.wechat_timestamp_tolerance_s
    if tol and abs(time.time() - int(auth["timestamp"])) > tol:
        return "stale_timestamp", "请求时间戳已过期 (timestamp)"
    msg = signing.wechat_request_message(req.method, req.raw_path, auth["timestamp"], auth["nonce_str"], req.body)
    if not signing.rsa_valid_b64(cfg.wechat_merchant_public_key, msg, auth["signature"]):
        return "bad_signature", "签名错误"
    return None


def handle(app, req):
    """Route a /v3/ request; None if it is not WeChat Pay's."""
    if not req.path.startswith(PREFIX):
        return None
    cfg = app.cfg
    if not (cfg.wechat_mchid and cfg.wechat_merchant_public_key and cfg.wechat_platform_private_key):
        return "wechatpay", server.json_response(501, {"code": "SYSTEM_ERROR",
                                                       "message": "wechatpay is not configured in the fake PSP"}), "not_configured"
    route = "wechatpay." + _route_name(req)
    bad = _verify(app, req)
    if bad is not None:
        return route, err(app, 401, "SIGN_ERROR", bad[1]), bad[0]
    body = None
    if req.method == "POST":
        if req.content_type() != "application/json":
            return route, err(app, 400, "PARAM_ERROR", "Content-Type 必须是 application/json"), "bad_content_type"
        try:
            body = json.loads(req.body.decode("utf-8") or "null")
            if not isinstance(body, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return route, err(app, 400, "PARAM_ERROR", "请求体不是 JSON 对象"), "bad_body"
    if req.method == "POST" and req.path == "/v3/pay/transactions/native":
        return route, _native(app, body), "ok"
    if req.method == "POST" and req.path == "/v3/refund/domestic/refunds":
        return route, _refund(app, body), "ok"
    m = ROUTE_CLOSE.match(req.path)
    if m and req.method == "POST":
        return route, _close(app, m.group(1), body), "ok"
    m = ROUTE_QUERY.match(req.path) or ROUTE_QUERY_ID.match(req.path)
    if m and req.method == "GET":
        return route, _query(app, req, m.group(1), by_id=req.path.startswith("/v3/pay/transactions/id/")), "ok"
    m = ROUTE_REFUND_QUERY.match(req.path)
    if m and req.method == "GET":
        return route, _refund_query(app, m.group(1)), "ok"
    if req.method == "GET" and req.path == "/v3/bill/tradebill":
        with app.store.lock:
            answer = wechatpay_bills.tradebill(app, _state(app), req.query_params())
        if answer is None:
            return route, err(app, 400, "PARAM_ERROR", "bill_date 格式不正确"), "invalid"
        return route, signed(app, 200, answer), "ok"
    if req.method == "GET" and req.path == "/v3/billdownload/file":
        with app.store.lock:
            bill = wechatpay_bills.download(_state(app), req.query_params().get("token", ""))
        if bill is None:
            return route, err(app, 404, "NOT_FOUND", "账单不存在"), "ok"
        return route, server.Response(200, bill, "application/octet-stream"), "ok"
    return route, err(app, 404, "NOT_FOUND", f"no such API: {req.method} {req.path}"), "no_route"


def _route_name(req):
    """A short name for counters."""
    p = req.path
    if p == "/v3/pay/transactions/native":
        return "native"
    if ROUTE_CLOSE.match(p):
        return "close"
    if ROUTE_QUERY.match(p) or ROUTE_QUERY_ID.match(p):
        return "query"
    if p.startswith("/v3/refund/domestic/refunds"):
        return "refund" if req.method == "POST" else "refund_query"
    if p in ("/v3/bill/tradebill", "/v3/billdownload/file"):
        return "tradebill" if p == "/v3/bill/tradebill" else "billdownload"
    return "unknown"


def _missing(app, name):
    """WeChat's answer to a missing required field."""
    return err(app, 400, "PARAM_ERROR", f"输入源“/body/{name}”映射到字段“{name}”必填性规则校验失败，此字段为必填项",
               {"field": name, "location": "body"})


def _txn_id():
    """A 28-digit WeChat Pay transaction id."""
    return "4200" + time.strftime("%Y%m%d") + ids.digits(16)


def _new_trade(app, ref, total, description, txn_id=None):
    """A transaction record."""
    return {"out_trade_no": ref, "transaction_id": txn_id or _txn_id(), "total": total, "currency": "CNY",
            "description": description, "state": "NOTPAY", "refunded": 0, "success_time": None,
            "code_url": "weixin://wxpay/bizpayurl?pr=" + ids.alnum(7), "created": time.time()}


def _native(app, body):
    """POST /v3/pay/transactions/native: a code_url; idempotent on out_trade_no."""
    cfg = app.cfg
    for f in ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount"):
        if body.get(f) in (None, ""):
            return _missing(app, f)
    if body["appid"] != cfg.wechat_appid:
        return err(app, 400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
    if body["mchid"] != cfg.wechat_mchid:
        return err(app, 400, "MCH_NOT_EXISTS", "商户号不存在")
    ref = body["out_trade_no"]
    min_len = int(cfg.raw.get("wechatpay", {}).get("out_trade_no_min_length", 6))
    if not isinstance(ref, str) or not (min_len <= len(ref) <= 32) or not OUT_TRADE_NO.fullmatch(ref):
        return err(app, 400, "PARAM_ERROR", f"out_trade_no 须为 {min_len}-32 位数字、大小写字母或_-|*",
                   {"field": "out_trade_no", "location": "body"})
    amount = body["amount"]
    total = amount.get("total") if isinstance(amount, dict) else None
    if not isinstance(total, int) or isinstance(total, bool) or total < 1:
        return err(app, 400, "PARAM_ERROR", "amount.total 必须为正整数（分）", {"field": "amount.total", "location": "body"})
    if amount.get("currency", "CNY") != "CNY":
        return err(app, 400, "PARAM_ERROR", "amount.currency 只支持 CNY", {"field": "amount.currency", "location": "body"})
    if not isinstance(body["description"], str) or len(body["description"]) > 127:
        return err(app, 400, "PARAM_ERROR", "description 长度不能超过127")
    key = f"wechatpay:native:{ref}"
    st = _state(app)
    with app.store.lock:
        trade = st["trades"].get(ref)
        if trade is not None:
            if trade["state"] in ("SUCCESS", "REFUND"):
                app.store.effect(key, False)
                return err(app, 400, "ORDERPAID", "该订单已支付")
            if trade["state"] == "CLOSED":
                app.store.effect(key, False)
                return err(app, 400, "ORDERCLOSED", "订单已关闭")
            if trade["total"] != total or trade["description"] != body["description"]:
                app.store.effect(key, False, conflict=True)
                return err(app, 403, "OUT_TRADE_NO_USED", "商户订单号重复")
            app.store.effect(key, False)
        else:
            trade = _new_trade(app, ref, total, body["description"])
            st["trades"][ref] = trade
            st["by_txn"][trade["transaction_id"]] = ref
            app.store.effect(key, True)
            app.store.order_bump("wechatpay", ref, "native_orders")
    return signed(app, 200, {"code_url": trade["code_url"]})


def _transaction(app, trade):
    """A transaction as the query API and notifications show it."""
    cfg = app.cfg
    obj = {"appid": cfg.wechat_appid, "mchid": cfg.wechat_mchid, "out_trade_no": trade["out_trade_no"],
           "trade_type": "NATIVE", "trade_state": trade["state"], "trade_state_desc": STATE_DESC[trade["state"]],
           "attach": "", "amount": {"total": trade["total"], "currency": "CNY", "payer_currency": "CNY"}}
    if trade["success_time"] is not None:
        obj.update(transaction_id=trade["transaction_id"], bank_type="OTHERS",
                   success_time=ids.rfc3339_beijing(trade["success_time"]),
                   payer={"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"})
        obj["amount"]["payer_total"] = trade["total"]
    return obj


def _query(app, req, ref, by_id=False):
    """GET /v3/pay/transactions/out-trade-no/{no}?mchid=... (or /id/{transaction_id})."""
    if req.query_params().get("mchid") != app.cfg.wechat_mchid:
        return err(app, 400, "PARAM_ERROR", "mchid 参数缺失或错误", {"field": "mchid", "location": "query"})
    st = _state(app)
    with app.store.lock:
        trade = st["trades"].get(st["by_txn"].get(ref, "") if by_id else ref)
        if trade is None:
            return err(app, 404, "ORDER_NOT_EXIST", "订单不存在")
        obj = _transaction(app, trade)
    return signed(app, 200, obj)


def _close(app, ref, body):
    """POST /v3/pay/transactions/out-trade-no/{no}/close: 204; idempotent."""
    if body.get("mchid") != app.cfg.wechat_mchid:
        return _missing(app, "mchid") if not body.get("mchid") else err(app, 400, "MCH_NOT_EXISTS", "商户号不存在")
    key = f"wechatpay:close:{ref}"
    with app.store.lock:
        trade = _state(app)["trades"].get(ref)
        if trade is None:
            return err(app, 404, "ORDER_NOT_EXIST", "订单不存在")
        if trade["success_time"] is not None:
            app.store.effect(key, False)
            return err(app, 400, "ORDERPAID", "订单已支付")
        applied = trade["state"] != "CLOSED"
        trade["state"] = "CLOSED"
        app.store.effect(key, applied)
        if applied:
            app.store.order_bump("wechatpay", ref, "closes")
    return signed(app, 204)


def _refund_obj(app, trade, rf):
    """A refund as the API shows it."""
    return {"refund_id": rf["refund_id"], "out_refund_no": rf["out_refund_no"],
            "transaction_id": trade["transaction_id"], "out_trade_no": trade["out_trade_no"],
            "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
            "create_time": ids.rfc3339_beijing(rf["created"]), "status": rf["status"], "funds_account": "AVAILABLE",
            "amount": {"total": trade["total"], "refund": rf["amount"], "payer_total": trade["total"],
                       "payer_refund": rf["amount"], "settlement_total": trade["total"],
                       "settlement_refund": rf["amount"], "discount_refund": 0, "currency": "CNY",
                       "from": [], "refund_fee": 0}}


def _refund(app, body):
    """POST /v3/refund/domestic/refunds; idempotent on out_refund_no."""
    st = _state(app)
    no = body.get("out_refund_no")
    if not no:
        return _missing(app, "out_refund_no")
    if not body.get("out_trade_no") and not body.get("transaction_id"):
        return _missing(app, "out_trade_no")
    amount = body.get("amount")
    if not isinstance(amount, dict):
        return _missing(app, "amount")
    refund, total = amount.get("refund"), amount.get("total")
    if not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in (refund, total)):
        return err(app, 400, "PARAM_ERROR", "amount.refund 和 amount.total 必须为正整数（分）")
    if amount.get("currency", "CNY") != "CNY":
        return err(app, 400, "PARAM_ERROR", "amount.currency 只支持 CNY")
    key = f"wechatpay:refund:{no}"
    with app.store.lock:
        ref = body.get("out_trade_no") or st["by_txn"].get(body.get("transaction_id"), "")
        trade = st["trades"].get(ref)
        if trade is None:
            return err(app, 404, "RESOURCE_NOT_EXISTS", "订单不存在")
        done = st["refunds"].get(no)
        if done is not None:
            if done["out_trade_no"] != trade["out_trade_no"] or done["amount"] != refund:
                app.store.effect(key, False, conflict=True)
                return err(app, 400, "INVALID_REQUEST", "退款请求参数与之前不一致")
            app.store.effect(key, False)
            return signed(app, 200, dict(_refund_obj(app, trade, done), status="PROCESSING"))
        if trade["success_time"] is None:
            app.store.effect(key, False)
            return err(app, 400, "INVALID_REQUEST", "订单未支付，不能退款")
        if total != trade["total"]:
            app.store.effect(key, False)
            return err(app, 400, "INVALID_REQUEST", "订单金额或退款金额与之前请求不一致，请核实后再试")
        if refund > trade["total"] - trade["refunded"]:
            app.store.effect(key, False)
            return err(app, 400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        rf = {"refund_id": "50" + ids.digits(27), "out_refund_no": no, "out_trade_no": trade["out_trade_no"],
              "amount": refund, "created": time.time(), "status": "SUCCESS"}
        st["refunds"][no] = rf
        trade["refunded"] += refund
        trade["state"] = "REFUND"
        app.store.effect(key, True)
        app.store.order_bump("wechatpay", trade["out_trade_no"], "refunds")
        app.store.order_bump("wechatpay", trade["out_trade_no"], "refunded_amount", refund)
        obj = dict(_refund_obj(app, trade, rf), status="PROCESSING")
    return signed(app, 200, obj)


def _refund_query(app, no):
    """GET /v3/refund/domestic/refunds/{out_refund_no}."""
    st = _state(app)
    with app.store.lock:
        rf = st["refunds"].get(no)
        if rf is None:
            return err(app, 404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        obj = _refund_obj(app, st["trades"][rf["out_trade_no"]], rf)
    return signed(app, 200, obj)


# --- notifications sent to pay ---------------------------------------------

class Callbacks:
    """WeChat Pay v3 notifications: JSON with an AEAD_AES_256_GCM resource (APIv3
    key), headers Wechatpay-Timestamp/Nonce/Signature/Serial by the platform key."""

    provider = "wechatpay"
    ALIASES = {"paid": "TRANSACTION.SUCCESS", "succeeded": "TRANSACTION.SUCCESS", "success": "TRANSACTION.SUCCESS",
               "refunded": "REFUND.SUCCESS", "refund": "REFUND.SUCCESS"}
    EVENTS = ("TRANSACTION.SUCCESS", "REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED")
    SUMMARY = {"TRANSACTION.SUCCESS": "支付成功", "REFUND.SUCCESS": "退款成功", "REFUND.ABNORMAL": "退款异常",
               "REFUND.CLOSED": "退款关闭"}
    success_event = "TRANSACTION.SUCCESS"
    refund_event = "REFUND.SUCCESS"
    nonce_is_event_id = False

    def event_name(self, name):
        """The native event_type for an alias or native name."""
        name = self.ALIASES.get(name, name)
        if name not in self.EVENTS:
            raise ValueError("wechatpay events: TRANSACTION.SUCCESS, REFUND.SUCCESS, REFUND.ABNORMAL, "
                             "REFUND.CLOSED (or paid, refunded); WeChat Pay notifies no failures or closes")
        return name

    def build(self, app, p, event, event_id=None, update=True, mode=None):
        """The notification envelope, its resource encrypted with the APIv3 key."""
        cfg = app.cfg
        if not cfg.wechat_apiv3_key:
            raise ValueError("wechatpay.apiv3_key is not configured")
        st = _state(app)
        now = time.time()
        with app.store.lock:
            trade = st["trades"].get(p["ref"])
            if trade is None:
                trade = _new_trade(app, p["ref"], p["amount"], f"order {p['ref']}", p.get("txn_id"))
                if update:
                    st["trades"][p["ref"]] = trade
                    st["by_txn"][trade["transaction_id"]] = p["ref"]
            if not update:
                trade = json.loads(json.dumps(trade))
            trade["total"] = p["amount"]
            if event == "TRANSACTION.SUCCESS":
                trade["success_time"] = trade["success_time"] or now
                if trade["state"] in ("NOTPAY", "CLOSED", "PAYERROR"):
                    trade["state"] = "SUCCESS"
                resource, aad, original = _transaction(app, trade), "transaction", "transaction"
                resource["amount"]["currency"] = p["currency"].upper()
            else:
                trade["success_time"] = trade["success_time"] or now
                refund = p.get("refund_amount") or p["amount"]
                rf = {"refund_id": "50" + ids.digits(27), "out_refund_no": p.get("refund_id") or "RF" + ids.digits(14),
                      "out_trade_no": trade["out_trade_no"], "amount": refund, "created": now,
                      "status": event.split(".")[1]}
                if update and event == "REFUND.SUCCESS":
                    trade["refunded"] += refund
                    trade["state"] = "REFUND"
                    st["refunds"].setdefault(rf["out_refund_no"], rf)
                resource = {"mchid": cfg.wechat_mchid, "out_trade_no": trade["out_trade_no"],
                            "transaction_id": trade["transaction_id"], "out_refund_no": rf["out_refund_no"],
                            "refund_id": rf["refund_id"], "refund_status": rf["status"],
                            "success_time": ids.rfc3339_beijing(now), "user_received_account": "支付用户零钱",
                            "amount": {"total": p["amount"], "refund": refund, "payer_total": p["amount"],
                                       "payer_refund": refund}}
                aad, original = "refund", "refund"
        key = ("wrong" + ids.alnum(27)) if mode == "wrong_apiv3_key" else cfg.wechat_apiv3_key
        res_nonce = ids.alnum(12)
        plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
        return {"id": event_id or str(uuid.uuid4()),
                "create_time": ids.rfc3339_beijing(now), "resource_type": "encrypt-resource",
                "event_type": event, "summary": self.SUMMARY[event],
                "resource": {"original_type": original, "algorithm": "AEAD_AES_256_GCM",
                             "ciphertext": signing.aes_gcm_encrypt(key, res_nonce, aad, plaintext),
                             "associated_data": aad, "nonce": res_nonce}}

    def event_id(self, payload):
        """The notification id."""
        return payload["id"]

    def render(self, app, payload, ts, nonce, mode=None):
        """(headers, body) with the platform signature headers."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        key = app.cfg.wrong_key() if mode == "wrong_key" else app.cfg.wechat_platform_private_key
        serial = ids.digits(10) + "ABCDEF0123456789ABCDEF0123456789" if mode == "wrong_serial" else app.cfg.wechat_platform_serial
        headers = {"Content-Type": "application/json", "User-Agent": "Mozilla/4.0",
                   "Wechatpay-Timestamp": str(ts), "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial[:40],
                   "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}
        if mode != "unsigned":
            headers["Wechatpay-Signature"] = signing.rsa_sign_b64(key, signing.wechat_response_message(ts, nonce, body))
        return headers, body

    def tamper(self, body):
        """Change the summary after signing."""
        out = body.replace('"summary":"'.encode(), '"summary":"X'.encode(), 1)
        return out if out != body else body[:-1] + b" }"
