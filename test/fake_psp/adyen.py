"""Adyen Checkout API v71: the endpoints pay's dispatcher calls and the standard
notifications (webhooks) the fake PSP sends to pay.

API: JSON, `X-API-Key` (401 otherwise), merchantAccount must be the configured
one (403).  `POST /v71/payments` {amount {value minor units, currency},
reference (the merchant's order id), merchantAccount, paymentMethod} answers
resultCode Authorised (or Refused when paymentMethod.holderName names a
refusal reason, e.g. "REFUSED", "DECLINED", "NOT_ENOUGH_BALANCE", as in
Adyen's test environment) with a pspReference.  Capture: immediate unless the
request asks for manual capture the way Adyen documents it,
additionalData.manualCapture "true", or a delayed capture captureDelayHours > 0
(the fake never captures on its own: both stay authorised until
/captures).  `POST /v71/payments/{pspReference}/captures` (partial allowed),
`/cancels`, `/refunds` answer 201 status "received" with their own
pspReference; the outcome comes later in the notification (success false and
a reason when it cannot be done, as at Adyen).

`Idempotency-Key`: the same key with the same body replays the first answer;
with another body: 422 errorCode 704.  Validation errors are not saved.

Notifications (queued in the outbox, several items batched in one request, or
sent by /control/send): `{"live":"false","notificationItems":[{"NotificationRequestItem":{...}}]}`,
eventCode AUTHORISATION, CAPTURE, CANCELLATION, REFUND, success "true"/"false";
each item's additionalData.hmacSignature is base64 HMAC-SHA256 (the hex key)
over pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success
(signing.adyen_hmac_data).  A delivery counts only when the answer is 2xx with
the body `[accepted]`; otherwise it is retried."""

import copy
import datetime
import hmac
import json
import re
import secrets
import time

import server
import signing

PROVIDER = "adyen"
OUTBOX_BATCH = True
API = "/v71"
REFUSALS = {"REFUSED": "2", "REFERRAL": "3", "ACQUIRER_ERROR": "4", "BLOCKED_CARD": "5", "EXPIRED_CARD": "6",
            "INVALID_AMOUNT": "7", "INVALID_CARD": "8", "NOT_ENOUGH_BALANCE": "12", "DECLINED": "2",
            "CVC_DECLINED": "24", "FRAUD": "20"}
ROUTE_MOD = re.compile(rf"^{API}/payments/([A-Za-z0-9]{{16}})/(captures|cancels|refunds)$")
EVENTS_OF = {"captures": "CAPTURE", "cancels": "CANCELLATION", "refunds": "REFUND"}


class Invalid(Exception):
    """An Adyen error answer (not saved under the idempotency key)."""

    def __init__(self, status, code, message, error_type="validation"):
        super().__init__(message)
        self.status = status
        self.body = {"status": status, "errorCode": code, "message": message, "errorType": error_type,
                     "pspReference": psp_reference()}


def psp_reference():
    """A 16-character Adyen pspReference."""
    return "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(16))


def _iso(ts=None):
    """"2024-01-02T03:04:05+01:00", as Adyen writes eventDate (CET)."""
    tz = datetime.timezone(datetime.timedelta(hours=1))
    return datetime.datetime.fromtimestamp(ts if ts is not None else time.time(), tz).isoformat(timespec="seconds")


def _json(status, obj, extra=None):
    """A JSON answer with Adyen's pspReference header."""
    headers = [("pspReference", obj.get("pspReference", psp_reference()) if isinstance(obj, dict) else psp_reference())]
    return server.json_response(status, obj, headers + list(extra or []))


def _state(app):
    """The fake Adyen's payments and modifications."""
    st = app.store.state[PROVIDER]
    if not st:
        st.update(payments={}, modifications={}, idem={}, by_ref={})
    return st


def handle(app, req):
    """Route /v71/...; None for other paths."""
    if not req.path.startswith(API + "/"):
        return None
    cfg = app.cfg
    if not cfg.adyen_api_key:
        return "adyen", _json(501, {"status": 501, "errorCode": "000", "message": "adyen is not configured in "
                                    "the fake PSP", "errorType": "configuration"}), "not_configured"
    key = req.header("X-API-Key") or ""
    if not key or not hmac.compare_digest(key.encode(), cfg.adyen_api_key.encode()):
        return "adyen.auth", _json(401, {"status": 401, "errorCode": "000", "message": "HTTP Status Response - "
                                         "Unauthorized", "errorType": "security"}), "bad_api_key"
    if req.method == "POST" and req.path == API + "/payments":
        return _post(app, req, "adyen.payments", lambda body: _payment(app, body))
    m = ROUTE_MOD.match(req.path)
    if m and req.method == "POST":
        return _post(app, req, "adyen.payments." + m.group(2),
                     lambda body: _modification(app, m.group(1), m.group(2), body))
    return "adyen.unknown", _json(404, {"status": 404, "errorCode": "000", "message": "Not found",
                                        "errorType": "validation"}), "no_route"


def _post(app, req, route, fn):
    """A POST with Adyen's Idempotency-Key rules: (route, response, verdict)."""
    try:
        body = json.loads(req.body.decode("utf-8"))
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError):
        e = Invalid(400, "702", "Unexpected input: the request body is not a JSON object")
        return route, _json(e.status, e.body), "bad_body"
    key = req.header("Idempotency-Key")
    if not key:
        resp, applied = _run(fn, body)
        app.store.effect("adyen:(no idempotency key)", applied)
        return route, resp, "ok"
    ekey = f"adyen:{key}"
    fingerprint = json.dumps([req.path, body], sort_keys=True)
    st = _state(app)
    with app.store.key_lock(ekey):
        saved = st["idem"].get(key)
        if saved is not None:
            if saved["fingerprint"] != fingerprint:
                app.store.effect(ekey, False, conflict=True)
                e = Invalid(422, "704", "request already processed or in progress")
                return route, _json(e.status, e.body), "idempotency_conflict"
            app.store.effect(ekey, False)
            return route, server.Response(saved["status"], saved["body"], "application/json",
                                          [("Idempotency-Key", key)]), "replayed"
        resp, applied = _run(fn, body)
        if applied is not None:
            st["idem"][key] = {"fingerprint": fingerprint, "status": resp.status, "body": resp.body}
        app.store.effect(ekey, bool(applied))
        resp.headers.append(("Idempotency-Key", key))
        return route, resp, "ok"


def _run(fn, body):
    """(response, applied): applied None for a validation error (not saved)."""
    try:
        status, obj = fn(body)
    except Invalid as e:
        return _json(e.status, e.body), None
    return _json(status, obj), True


def _check_merchant(app, body):
    """merchantAccount must be the configured one."""
    ma = body.get("merchantAccount")
    if not ma:
        raise Invalid(422, "0_10", "Required field 'merchantAccount' is not provided.")
    if ma != app.cfg.adyen_merchant_account:
        raise Invalid(403, "901", "Invalid Merchant Account", "security")


def _amount(body):
    """(value, currency) of the (required) amount object."""
    amount = body.get("amount")
    if not isinstance(amount, dict):
        raise Invalid(422, "100", "Required field 'amount' is not provided.")
    value, currency = amount.get("value"), amount.get("currency")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise Invalid(422, "137", "Invalid amount specified")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise Invalid(422, "128", "Invalid currency specified")
    return value, currency


def _payment(app, body):
    """POST /v71/payments."""
    _check_merchant(app, body)
    value, currency = _amount(body)
    reference = body.get("reference")
    if not isinstance(reference, str) or not reference:
        raise Invalid(422, "130", "Required field 'reference' is not provided.")
    pm = body.get("paymentMethod")
    if not isinstance(pm, dict) or not pm.get("type"):
        raise Invalid(422, "0_12", "Required field 'paymentMethod' is not provided.")
    extra = body.get("additionalData") or {}
    delay = body.get("captureDelayHours")
    manual = str(extra.get("manualCapture", "")).lower() == "true" or (isinstance(delay, int) and delay > 0)
    refusal = str(pm.get("holderName", "")).upper().replace(" ", "_")
    refused = refusal in REFUSALS
    psp = psp_reference()
    pay = {"pspReference": psp, "merchantReference": reference, "amount": {"value": value, "currency": currency},
           "merchantAccount": body["merchantAccount"], "paymentMethod": pm.get("brand") or
           ("visa" if pm.get("type") == "scheme" else pm["type"]),
           "resultCode": "Refused" if refused else "Authorised", "manualCapture": manual,
           "captured": 0 if manual or refused else value, "refunded": 0, "cancelled": False,
           "created": int(time.time())}
    st = _state(app)
    with app.store.lock:
        st["payments"][psp] = pay
        st["by_ref"].setdefault(reference, []).append(psp)
        item = _item(app, pay, "AUTHORISATION", psp, not refused, value,
                     "Refused" if refused else "123456:1111:03/2030")
    app.store.order_bump(PROVIDER, reference, "payments")
    app.outbox.enqueue(PROVIDER, item, reference)
    out = {"additionalData": {"authCode": "123456"} if not refused else {},
           "pspReference": psp, "resultCode": pay["resultCode"], "amount": {"currency": currency, "value": value},
           "merchantReference": reference,
           "paymentMethod": {"brand": pay["paymentMethod"], "type": pm["type"]}}
    if refused:
        out["refusalReason"] = "Refused" if refusal == "REFUSED" else refusal.replace("_", " ").title()
        out["refusalReasonCode"] = REFUSALS[refusal]
    return 200, out


def _modification(app, psp, kind, body):
    """POST /v71/payments/{pspReference}/captures | cancels | refunds: 201 received; the
    outcome goes out in a notification."""
    _check_merchant(app, body)
    amount = None if kind == "cancels" else _amount(body)
    st = _state(app)
    with app.store.lock:
        pay = st["payments"].get(psp)
        if pay is None:
            raise Invalid(422, "167", "Original pspReference required for this operation")
        if amount is not None and amount[1] != pay["amount"]["currency"]:
            raise Invalid(422, "138", "Currency mismatch: the currency is not the currency of the payment")
        mod_psp = psp_reference()
        ok, reason = _apply(pay, kind, amount[0] if amount else pay["amount"]["value"])
        value = amount[0] if amount else pay["amount"]["value"]
        st["modifications"][mod_psp] = {"pspReference": mod_psp, "paymentPspReference": psp, "kind": kind,
                                        "value": value, "success": ok, "reason": reason,
                                        "reference": body.get("reference")}
        item = _item(app, pay, EVENTS_OF[kind], mod_psp, ok, value, reason, original=psp)
    app.store.order_bump(PROVIDER, pay["merchantReference"], kind)
    app.outbox.enqueue(PROVIDER, item, pay["merchantReference"])
    out = {"merchantAccount": body["merchantAccount"], "paymentPspReference": psp, "pspReference": mod_psp,
           "status": "received"}
    if body.get("reference") is not None:
        out["reference"] = body["reference"]
    if amount is not None:
        out["amount"] = {"currency": amount[1], "value": amount[0]}
    return 201, out


def _apply(pay, kind, value):
    """Change the payment for a modification; (success, reason) as the notification will say."""
    if pay["resultCode"] != "Authorised":
        return False, "Transaction not authorised"
    if pay["cancelled"]:
        return False, "Transaction is cancelled"
    total = pay["amount"]["value"]
    if kind == "captures":
        if not pay["manualCapture"] or pay["captured"] >= total:
            return False, "Transaction already captured"
        if value > total - pay["captured"]:
            return False, "Insufficient balance on payment"
        pay["captured"] += value
        return True, ""
    if kind == "cancels":
        if pay["captured"]:
            return False, "Transaction already captured"
        pay["cancelled"] = True
        return True, ""
    if value > pay["captured"] - pay["refunded"]:
        return False, "Insufficient in process funds on paymentId"
    pay["refunded"] += value
    return True, ""


def _item(app, pay, event_code, psp, success, value, reason="", original=None, event_date=None):
    """A NotificationRequestItem (unsigned; render signs it)."""
    item = {"additionalData": {}, "amount": {"currency": pay["amount"]["currency"], "value": value},
            "eventCode": event_code, "eventDate": event_date or _iso(),
            "merchantAccountCode": pay["merchantAccount"], "merchantReference": pay["merchantReference"],
            "paymentMethod": pay["paymentMethod"], "pspReference": psp, "reason": reason,
            "success": "true" if success else "false"}
    if original:
        item["originalReference"] = original
    if event_code == "AUTHORISATION" and success:
        item["operations"] = ["CANCEL", "CAPTURE", "REFUND"] if pay["manualCapture"] else ["REFUND"]
    return item


def sign_item(app, item, mode=None):
    """The item with additionalData.hmacSignature (by an unrelated key for mode wrong_key)."""
    key = app.cfg.adyen_hmac_key
    if not key:
        raise ValueError("adyen.hmac_key is not configured")
    out = copy.deepcopy(item)
    if mode == "unsigned":
        return out
    if mode == "wrong_key":
        key = secrets.token_hex(32).upper()
    out["additionalData"]["hmacSignature"] = signing.adyen_hmac_b64(key, out)
    return out


def render_notification(items):
    """(headers, body) of one notification request carrying these (signed) items."""
    body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": i} for i in items]},
                      separators=(",", ":")).encode("utf-8")
    return {"Content-Type": "application/json", "User-Agent": "Adyen HttpClient 1.0"}, body


def outbox_render(app, payloads):
    """A batch of queued items, each signed."""
    items = [sign_item(app, i) for i in payloads]
    headers, body = render_notification(items)
    return headers, body, [f"{i['pspReference']}:{i['eventCode']}" for i in items]


def outbox_accepted(status, body):
    """Adyen wants a 2xx answer whose body is [accepted]."""
    return status is not None and 200 <= status < 300 and (body or "").strip() == "[accepted]"


class Callbacks:
    """Adyen standard notifications sent by /control/send and `fake_psp.py send`.

    Extra parameters: `success` (false: the event failed; default true) and
    `batch`, a list of more items for the same notification, each
    {order_id, amount, currency, event, success}.  Own variants: `bad_item` (the
    batch carries a second, forged item -- a refund, or a cancellation when the
    event is a refund -- signed with another key) and `duplicate_item` (the
    event's item twice in one batch).  Adyen signs no time: `stale` sets
    eventDate age_s in the past."""

    provider = PROVIDER
    ALIASES = {"paid": "AUTHORISATION", "succeeded": "AUTHORISATION", "success": "AUTHORISATION",
               "authorised": "AUTHORISATION", "failed": "AUTHORISATION", "refunded": "REFUND", "refund": "REFUND",
               "closed": "CANCELLATION", "cancelled": "CANCELLATION", "captured": "CAPTURE"}
    EVENTS = ("AUTHORISATION", "CAPTURE", "CANCELLATION", "REFUND")
    OWN_VARIANTS = ("bad_item", "duplicate_item")
    success_event = "AUTHORISATION"
    refund_event = "REFUND"
    nonce_is_event_id = False

    def event_name(self, name):
        """The eventCode for an alias or native name ("failed" is AUTHORISATION with success false)."""
        code = self.ALIASES.get(name, name)
        if code not in self.EVENTS:
            raise ValueError(f"adyen events: {', '.join(self.EVENTS)} (or paid, failed, refunded, closed, captured)")
        return "AUTHORISATION:false" if name == "failed" else code

    def build(self, app, p, event, event_id=None, update=True, mode=None):
        """The notification's items (unsigned) for order p["ref"]."""
        live = _state(app)
        with app.store.lock:
            st = live if update else copy.deepcopy(live)
            specs = [dict(p, event=event)]
            for extra in p.get("batch") or []:
                if not isinstance(extra, dict) or extra.get("order_id") in (None, "") \
                        or not isinstance(extra.get("amount"), int):
                    raise ValueError("batch items need order_id and amount (minor units)")
                specs.append({"ref": str(extra["order_id"]), "amount": extra["amount"],
                              "currency": extra.get("currency", p["currency"]),
                              "event": self.event_name(extra.get("event") or "paid"),
                              "success": extra.get("success", True)})
            items = [self._one(app, st, s, event_id if i == 0 else None) for i, s in enumerate(specs)]
            if mode == "duplicate_item":
                items.insert(1, copy.deepcopy(items[0]))
            if mode == "bad_item":
                forged_code = "CANCELLATION" if items[0]["eventCode"] == "REFUND" else "REFUND"
                forged = dict(copy.deepcopy(items[0]), eventCode=forged_code, pspReference=psp_reference(),
                              originalReference=items[0].get("originalReference") or items[0]["pspReference"])
                forged["_forged"] = True
                items.insert(1, forged)
            return {"items": items, "built_at": time.time()}

    def _one(self, app, st, s, event_id):
        """One item: find or make the payment, then the event about it."""
        code, _, failed = s["event"].partition(":")
        success = s.get("success", True) not in (False, "false") and failed != "false"
        found = st["by_ref"].get(s["ref"])
        pay = st["payments"][found[-1]] if found else None
        currency = s["currency"].upper()
        if pay is None:
            psp = s.get("txn_id") or psp_reference()
            pay = {"pspReference": psp, "merchantReference": s["ref"],
                   "amount": {"value": s["amount"], "currency": currency},
                   "merchantAccount": app.cfg.adyen_merchant_account or "PayTestMerchantECOM",
                   "paymentMethod": "visa", "resultCode": "Authorised", "manualCapture": code == "CAPTURE",
                   "captured": 0 if code == "CAPTURE" else s["amount"], "refunded": 0, "cancelled": False,
                   "created": int(time.time())}
            st["payments"][psp] = pay
            st["by_ref"].setdefault(s["ref"], []).append(psp)
        if code == "AUTHORISATION":
            if not success:
                pay["resultCode"], pay["captured"] = "Refused", 0
            return _item(app, pay, code, pay["pspReference"], success, s["amount"],
                         "" if success else "Refused")
        value = s.get("refund_amount") if code == "REFUND" and s.get("refund_amount") else s["amount"]
        mod_psp = event_id or s.get("refund_id") or psp_reference()
        if success:
            if code == "CAPTURE":
                pay["captured"] = min(pay["amount"]["value"], pay["captured"] + value)
            elif code == "REFUND":
                pay["refunded"] += value
            else:
                pay["cancelled"] = True
        return _item(app, pay, code, mod_psp, success, value, "" if success else "Insufficient balance on payment",
                     original=pay["pspReference"])

    def event_id(self, payload):
        """The first item's pspReference:eventCode (Adyen's deduplication key)."""
        first = payload["items"][0]
        return f"{first['pspReference']}:{first['eventCode']}"

    def render(self, app, payload, ts, nonce, mode=None):
        """(headers, body): the items signed and batched."""
        items = []
        for item in payload["items"]:
            item = dict(item)
            forged = item.pop("_forged", False)
            if ts < payload["built_at"] - 300:  # the stale variant: Adyen signs no time, eventDate shows it
                item["eventDate"] = _iso(ts)
            items.append(sign_item(app, item, "wrong_key" if forged else mode))
        return render_notification(items)

    def tamper(self, body):
        """Raise the first item's amount value by one after signing."""
        out, n = re.subn(rb'"value":(\d+)', lambda m: b'"value":' + str(int(m.group(1)) + 1).encode(), body, 1)
        return out if n else body[:-1] + b" }"
