"""pay's generic scheme, the API side: what a PSP speaking it answers to
POST <base_url>/<operation>, with the fake's base_url <fake>/generic.

Requests: a JSON object naming order_id (a string), amount (the order's,
minor units, a JSON number), currency, psp_txn_id (once known),
idempotency_key and, for refund and query_refund, refund_id (the merchant's
id of the refund) and refund_amount; the same key in the Idempotency-Key
header.  With generic.api_key configured, `Authorization: Bearer <api_key>`
is required (401 otherwise).

  create_payment  a pending payment: {order_id, psp_txn_id, status "pending",
                  amount, currency, next_action {type "redirect", url}}
  query           the payment: status pending | paid | failed | closed
  refund          a refund of a paid payment: {order_id, refund_id (echoed),
                  psp_refund_id, status "succeeded" (or "pending" while
                  POST /control/generic {"refund_status": "pending"} says
                  so), amount, currency}; more than is left: 400 amount_too_large
  query_refund    the refund named by refund_id
  close           a pending payment closed; a paid one: 409 already_paid

Errors: {"message", "code"} with a 4xx.  Idempotency: the same key with the
same body replays the first answer (header Idempotent-Replayed: true) with
no second effect; the same key with another body is 409
idempotency_conflict; a refused request (4xx) is not kept under the key, so
the key can go through once what refused it changed (the buyer paid).

Notifications: when the buyer pays (POST /control/generic/pay) the PSP
notifies the merchant with the generic "paid" (or "failed") callback
through the outbox (outbox.py), as it would to the notify URL of its
account — only while POST /control/outbox gives generic a target.  Refunds
the API made are not notified: the scheme's "refunded" callback reports a
refund made at the PSP, and the refund's answer is its outcome."""

import hmac
import json
import re
import time

import generic
import ids
import server

PREFIX = "/generic/"
PROVIDER = "generic"
OUTBOX_BATCH = False
OPERATIONS = ("create_payment", "query", "refund", "query_refund", "close")
REFUND_STATUSES = ("succeeded", "pending", "failed")


class Invalid(Exception):
    """A request the PSP refuses (status, code, message)."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code = status, code


def _error(status, code, message):
    """The scheme's error answer."""
    return server.json_response(status, {"message": message, "code": code})


def state(app):
    """The fake generic PSP's objects: payments by order id, refunds by psp_refund_id, saved answers."""
    st = app.store.state["generic"]
    if not st:
        st.update(payments={}, refunds={}, idem={}, refund_status="succeeded")
    return st


def handle(app, req):
    """Route a /generic/ request; None if it is not one."""
    if not req.path.startswith(PREFIX):
        return None
    op = req.path[len(PREFIX):]
    route = f"generic.{op}" if op in OPERATIONS else "generic.unknown"
    if op not in OPERATIONS or req.method != "POST":
        return route, _error(404, "not_found", f"no operation {req.method} {req.path}"), "no_route"
    key = app.cfg.generic_api_key
    if key:
        auth = req.header("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), key.encode()):
            return route, _error(401, "unauthorized", "a valid Bearer api_key is required"), "bad_api_key"
    try:
        body = _body(req)
    except Invalid as e:
        return route, _error(e.status, e.code, str(e)), "invalid"
    idem = req.header("Idempotency-Key")
    if not idem or len(idem) > 255:
        return route, _error(400, "idempotency_key_missing", "Idempotency-Key (1 to 255 characters) is required"), "invalid"
    if body.get("idempotency_key") not in (None, idem):
        return route, _error(400, "idempotency_key_mismatch",
                             "idempotency_key in the body differs from the Idempotency-Key header"), "invalid"
    return _idempotent(app, route, op, idem, body)


def _body(req):
    """The request's JSON object."""
    if req.content_type() != "application/json":
        raise Invalid(400, "bad_content_type", "Content-Type must be application/json")
    try:
        body = json.loads(req.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Invalid(400, "bad_body", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Invalid(400, "bad_body", "the body must be a JSON object")
    return body


def _idempotent(app, route, op, idem, body):
    """Run an operation once per key: a retry replays the first answer."""
    ekey = f"generic:{idem}"
    fingerprint = json.dumps([op, body], sort_keys=True)
    st = state(app)
    with app.store.key_lock(ekey):
        saved = st["idem"].get(idem)
        if saved is not None:
            if saved["fingerprint"] != fingerprint:
                app.store.effect(ekey, False, conflict=True)
                return route, _error(409, "idempotency_conflict",
                                     f"Idempotency-Key {idem} was used with another request"), "idempotency_conflict"
            app.store.effect(ekey, False)
            return route, server.Response(saved["status"], saved["body"], "application/json",
                                          [("Idempotent-Replayed", "true")]), "replayed"
        try:
            with app.store.lock:
                status, answer, applied = OPERATION_FNS[op](app, st, body)
        except Invalid as e:
            app.store.effect(ekey, False)
            return route, _error(e.status, e.code, str(e)), "invalid"
        resp = server.json_response(status, answer)
        st["idem"][idem] = {"fingerprint": fingerprint, "status": resp.status, "body": resp.body}
        app.store.effect(ekey, applied)
        return route, resp, "ok"


# --- fields ---------------------------------------------------------------------

def _text(body, name):
    """A required string field (a JSON number is taken as its digits)."""
    v = body.get(name)
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not v or len(v) > 64:
        raise Invalid(400, "invalid_field", f"{name} is required (a string of 1 to 64 characters)")
    return v


def _amount(body, name):
    """A required positive integer number of minor units (a JSON number)."""
    v = body.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1 or v > 10 ** 15:
        raise Invalid(400, "invalid_field", f"{name} must be a positive integer (minor units)")
    return v


def _payment(st, body):
    """The payment the request names (order_id)."""
    p = st["payments"].get(_text(body, "order_id"))
    if p is None:
        raise Invalid(404, "not_found", f"no payment for order_id {body['order_id']}")
    return p


def _shown(p):
    """A payment as the API answers it."""
    return {"order_id": p["order_id"], "psp_txn_id": p["psp_txn_id"], "status": p["status"],
            "amount": p["amount"], "currency": p["currency"]}


def _refund_shown(p, r):
    """A refund as the API answers it."""
    return {"order_id": p["order_id"], "refund_id": r["refund_id"], "psp_refund_id": r["psp_refund_id"],
            "status": r["status"], "amount": r["amount"], "currency": p["currency"]}


# --- operations: (status, answer, whether it had an effect); the store's lock is held ---

def new_payment(order_id, amount, currency, txn_id=None):
    """A fresh pending payment."""
    return {"order_id": order_id, "psp_txn_id": txn_id or "GT" + ids.digits(20), "status": "pending",
            "amount": amount, "currency": currency, "refunded": 0, "created": int(time.time())}


def _create(app, st, body):
    order_id = _text(body, "order_id")
    amount = _amount(body, "amount")
    currency = _text(body, "currency")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise Invalid(400, "invalid_field", "currency must be 3 capital letters")
    if order_id in st["payments"]:
        raise Invalid(409, "order_exists", f"order_id {order_id} already has a payment")
    p = st["payments"][order_id] = new_payment(order_id, amount, currency)
    app.store.order_bump(PROVIDER, order_id, "payments")
    answer = dict(_shown(p), next_action={"type": "redirect",
                                           "url": f"{app.base_url}/generic/checkout/{p['psp_txn_id']}"})
    return 200, answer, True


def _query(app, st, body):
    return 200, _shown(_payment(st, body)), False


def _refund(app, st, body):
    p = _payment(st, body)
    refund_id = body.get("refund_id")
    _text(body, "refund_id")
    amount = _amount(body, "refund_amount")
    if p["status"] != "paid":
        raise Invalid(409, "not_paid", f"the payment of order_id {p['order_id']} is {p['status']}")
    if amount > p["amount"] - p["refunded"]:
        raise Invalid(400, "amount_too_large",
                      f"refund_amount {amount} exceeds the refundable {p['amount'] - p['refunded']}")
    r = {"refund_id": refund_id, "psp_refund_id": "GR" + ids.digits(18), "order_id": p["order_id"],
         "amount": amount, "status": st["refund_status"]}
    st["refunds"][r["psp_refund_id"]] = r
    if r["status"] != "failed":
        p["refunded"] += amount
    app.store.order_bump(PROVIDER, p["order_id"], "refunds")
    app.store.order_bump(PROVIDER, p["order_id"], "refunded", amount if r["status"] != "failed" else 0)
    return 200, _refund_shown(p, r), True


def _query_refund(app, st, body):
    p = _payment(st, body)
    wanted = str(_text(body, "refund_id"))
    for r in st["refunds"].values():
        if r["order_id"] == p["order_id"] and str(r["refund_id"]) == wanted:
            return 200, _refund_shown(p, r), False
    raise Invalid(404, "not_found", f"no refund {wanted} of order_id {p['order_id']}")


def _close(app, st, body):
    p = _payment(st, body)
    if p["status"] == "paid":
        raise Invalid(409, "already_paid", f"the payment of order_id {p['order_id']} is paid")
    applied = p["status"] == "pending"
    if applied:
        p["status"] = "closed"
        app.store.order_bump(PROVIDER, p["order_id"], "closes")
    return 200, _shown(p), applied


OPERATION_FNS = {"create_payment": _create, "query": _query, "refund": _refund,
                 "query_refund": _query_refund, "close": _close}


# --- the control API: the buyer pays, refunds settle ------------------------------

def control(app, action, body):
    """POST /control/generic/<action>: (status, answer)."""
    body = body or {}
    if not isinstance(body, dict):
        return 400, {"error": "body must be a JSON object"}
    st = state(app)
    if action == "settings":
        status = body.get("refund_status")
        if status not in REFUND_STATUSES:
            return 400, {"error": f"refund_status must be one of {', '.join(REFUND_STATUSES)}"}
        with app.store.lock:
            st["refund_status"] = status
        return 200, {"refund_status": status}
    if action == "pay":
        return _buyer_pays(app, st, body)
    if action == "settle_refund":
        status = body.get("status")
        if status not in ("succeeded", "failed"):
            return 400, {"error": "status must be succeeded or failed"}
        with app.store.lock:
            r = st["refunds"].get(body.get("psp_refund_id") or "")
            if r is None:
                return 404, {"error": "no such psp_refund_id"}
            if r["status"] == "pending":
                r["status"] = status
                if status == "failed":
                    st["payments"][r["order_id"]]["refunded"] -= r["amount"]
        return 200, dict(r)
    return 404, {"error": f"no control route /control/generic/{action}"}


def _buyer_pays(app, st, body):
    """The buyer pays (or the payment fails) at the PSP; the PSP notifies through the outbox
    unless notify is false."""
    outcome = body.get("status", "paid")
    if outcome not in ("paid", "failed"):
        return 400, {"error": "status must be paid or failed"}
    with app.store.lock:
        p = st["payments"].get(str(body.get("order_id", "")))
        if p is None:
            return 404, {"error": "no payment for order_id (create_payment first)"}
        if p["status"] != "pending":
            return 409, {"error": f"the payment is {p['status']}"}
        p["status"] = outcome
        shown = _shown(p)
    queued = False
    if body.get("notify", True) and app.outbox.settings.get(PROVIDER, {}).get("url"):
        payload = generic.Callbacks().build(app, {"ref": p["order_id"], "txn_id": p["psp_txn_id"],
                                                  "amount": p["amount"], "currency": p["currency"]},
                                            outcome, update=False)
        app.outbox.enqueue(PROVIDER, payload, p["order_id"])
        queued = True
    return 200, dict(shown, notified=queued)


def outbox_render(app, payloads):
    """One signed callback per request, timestamp and nonce fresh at each attempt."""
    (payload,) = payloads
    headers, body = generic.Callbacks().render(app, payload, int(time.time()), ids.alnum(32))
    return headers, body, [payload["event_id"]]


def outbox_accepted(status, body):
    """The scheme's acknowledgement: 200 with the body "success"."""
    return status == 200 and (body or "").strip() == "success"
