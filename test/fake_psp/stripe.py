"""Stripe: the API pay's dispatcher calls (payment intents, refunds) and the
webhook events the fake PSP sends to pay (Stripe-Signature: t=...,v1=...).

API: form-encoded bodies, `Authorization: Bearer sk_...` (or HTTP Basic with
the key as user name), `Idempotency-Key` honoured like Stripe: the same key
with the same parameters replays the first answer (header
`Idempotent-Replayed: true`) with no second effect; other parameters give a
400 idempotency_error.  Requests on one key are serialised (Stripe would
answer 409 to a concurrent one).  Validation errors are not saved under the
key, as at Stripe.

Manual capture: a PaymentIntent created with capture_method=manual stops at
requires_capture when the buyer pays (amount_capturable = amount);
POST /v1/payment_intents/{id}/capture takes all of it or amount_to_capture
(more than capturable: 400 amount_too_large) and releases the rest;
POST /v1/payment_intents/{id}/cancel voids it.

Webhooks: sent by /control/send (sender.py), and, as Stripe sends them to an
account's webhook endpoints, queued in the outbox after the API call that
caused them (payment_intent.amount_capturable_updated or .succeeded for a
create confirmed at once, .succeeded for a capture, .canceled for a cancel,
charge.refunded for a refund) — only while POST /control/outbox gives stripe
a target (or url): an account without an endpoint gets no events."""

import base64
import hmac
import json
import re
import time
import urllib.parse

import ids
import server
import signing
import stripe_reports

API_VERSION = "2023-10-16"
DECLINING_METHODS = ("pm_card_chargeDeclined", "pm_card_visa_chargeDeclined",
                     "pm_card_chargeDeclinedInsufficientFunds")
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
              "requires_action", "processing")

ROUTE_PI = re.compile(r"^/v1/payment_intents/([A-Za-z0-9_]+)$")
ROUTE_PI_CANCEL = re.compile(r"^/v1/payment_intents/([A-Za-z0-9_]+)/cancel$")
ROUTE_PI_CAPTURE = re.compile(r"^/v1/payment_intents/([A-Za-z0-9_]+)/capture$")
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
PROVIDER = "stripe"
OUTBOX_BATCH = False
ROUTE_REFUND = re.compile(r"^/v1/refunds/([A-Za-z0-9_]+)$")


class Invalid(Exception):
    """A Stripe invalid_request_error (validation: not saved under the idempotency key)."""

    def __init__(self, message, param=None, code=None, status=400):
        super().__init__(message)
        self.param, self.code, self.status = param, code, status


def error(status, message, type_="invalid_request_error", code=None, param=None, extra=None):
    """A Stripe error answer."""
    err = {"message": message, "type": type_}
    if code:
        err["code"] = code
        err["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        err["param"] = param
    err.update(extra or {})
    return server.json_response(status, {"error": err}, _headers())


def _headers():
    """Headers Stripe puts on every answer."""
    return [("Request-Id", "req_" + ids.alnum(14)), ("Stripe-Version", API_VERSION)]


def ok(obj, status=200):
    """A pretty-printed JSON answer, as Stripe sends them."""
    return server.Response(status, json.dumps(obj, indent=2), "application/json", _headers())


def _api_key(req):
    """The secret key from a Bearer or Basic Authorization header, or None."""
    auth = req.header("Authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode("utf-8").partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def nest(pairs):
    """Stripe's form encoding to nested values: a[b]=1 -> {"a": {"b": "1"}}, a[]=x / a[0]=x -> lists."""
    out = {}
    for key, value in pairs:
        m = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        if not m:
            raise Invalid(f"Invalid parameter name: {key}", param=key)
        parts = [m.group(1)] + re.findall(r"\[([^\[\]]*)\]", m.group(2))
        cur = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt_list = not last and (parts[i + 1] == "" or parts[i + 1].isdigit())
            if isinstance(cur, list):
                # a[]=x appends; a[3]=x is element 3, whatever order the fields came in
                # (a form encoder may send a[10] before a[2])
                if part == "":
                    cur.append(None)
                    idx = len(cur) - 1
                else:
                    idx = int(part)
                    while len(cur) <= idx:
                        cur.append(None)
                if last:
                    cur[idx] = value
                else:
                    if not isinstance(cur[idx], (dict, list)):
                        cur[idx] = [] if nxt_list else {}
                    cur = cur[idx]
            else:
                if last:
                    cur[part] = value
                else:
                    if part not in cur or not isinstance(cur[part], (dict, list)):
                        cur[part] = [] if nxt_list else {}
                    cur = cur[part]
    return out


def _state(app):
    """The fake Stripe's objects."""
    st = app.store.state["stripe"]
    if not st:
        st.update(pis={}, by_order={}, refunds={}, idem={})
    return st


def handle(app, req):
    """Route a /v1/ request; None if it is not Stripe's."""
    if not req.path.startswith("/v1/"):
        return None
    cfg = app.cfg
    if not cfg.stripe_api_key:
        return "stripe", error(501, "stripe is not configured in the fake PSP", "api_error"), "not_configured"
    key = _api_key(req)
    if not key:
        return "stripe.auth", error(401, "You did not provide an API key. You need to provide your API key "
                                         "in the Authorization header, using Bearer auth "
                                         "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."), "no_api_key"
    if not hmac.compare_digest(key.encode(), cfg.stripe_api_key.encode()):
        shown = key[:8] + "*" * 4 + key[-4:] if len(key) > 12 else "****"
        return "stripe.auth", error(401, f"Invalid API Key provided: {shown}"), "bad_api_key"

    if req.method == "GET":
        m = ROUTE_PI.match(req.path)
        if m:
            return "stripe.payment_intents.retrieve", _retrieve(app, m.group(1)), "ok"
        m = ROUTE_REFUND.match(req.path)
        if m:
            ref = _state(app)["refunds"].get(m.group(1))
            if ref is None:
                return "stripe.refunds.retrieve", error(404, f"No such refund: '{m.group(1)}'",
                                                        code="resource_missing", param="id"), "ok"
            return "stripe.refunds.retrieve", ok(ref), "ok"
        m = stripe_reports.ROUTE_RUN.match(req.path)
        if m:
            run = stripe_reports.get_run(_state(app), m.group(1))
            if run is None:
                return "stripe.reporting.report_runs.retrieve", error(
                    404, f"No such reporting.report_run: '{m.group(1)}'", code="resource_missing"), "ok"
            return "stripe.reporting.report_runs.retrieve", ok(run), "ok"
        m = stripe_reports.ROUTE_FILE.match(req.path)
        if m:
            with app.store.lock:
                resp = stripe_reports.file_contents(_state(app), m.group(1))
            if resp is None:
                return "stripe.files.contents", error(404, f"No such file: '{m.group(1)}'",
                                                      code="resource_missing"), "ok"
            return "stripe.files.contents", resp, "ok"
    if req.method == "POST":
        if req.path == "/v1/reporting/report_runs":
            return _post(app, req, "stripe.reporting.report_runs.create", _report_run)
        if req.path == "/v1/payment_intents":
            return _post(app, req, "stripe.payment_intents.create", _create)
        if req.path == "/v1/refunds":
            return _post(app, req, "stripe.refunds.create", _refund)
        m = ROUTE_PI_CANCEL.match(req.path)
        if m:
            return _post(app, req, "stripe.payment_intents.cancel", lambda a, p: _cancel(a, m.group(1), p))
        m = ROUTE_PI_CAPTURE.match(req.path)
        if m:
            return _post(app, req, "stripe.payment_intents.capture", lambda a, p: _capture(a, m.group(1), p))
    return "stripe.unknown", error(404, f"Unrecognized request URL ({req.method}: {req.path}).",
                                   "invalid_request_error"), "no_route"


def _post(app, req, route, fn):
    """Run a POST with Stripe's idempotency rules; returns (route, response, verdict)."""
    if req.body and req.content_type() != "application/x-www-form-urlencoded":
        return route, error(400, "Invalid request (check that your POST content type is "
                                 "application/x-www-form-urlencoded)."), "bad_content_type"
    try:
        text = req.body.decode("utf-8")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
        params = nest(pairs)
    except UnicodeDecodeError:
        return route, error(400, "Invalid request: the body is not UTF-8."), "bad_body"
    except ValueError:
        return route, error(400, "Invalid request: the form body cannot be parsed."), "bad_body"
    except Invalid as e:
        return route, error(e.status, str(e), code=e.code, param=e.param), "invalid"
    idem = req.header("Idempotency-Key")
    fingerprint = json.dumps([req.path, sorted(pairs)])
    if idem is None:
        resp, applied = _run(app, fn, params)
        app.store.effect("stripe:(no idempotency key)", applied)
        return route, resp, "ok"
    if len(idem) > 255 or not idem:
        return route, error(400, "Idempotency-Key must be 1..255 characters.", code="idempotency_key_in_use"), "invalid"
    ekey = f"stripe:{idem}"
    st = _state(app)
    with app.store.key_lock(ekey):
        saved = st["idem"].get(idem)
        if saved is not None:
            if saved["fingerprint"] != fingerprint:
                app.store.effect(ekey, False, conflict=True)
                return route, error(400, "Keys for idempotent requests can only be used with the same "
                                         "parameters they were first used with. Try using a key other than "
                                         f"'{idem}' if you meant to execute a different request.",
                                    "idempotency_error"), "idempotency_conflict"
            app.store.effect(ekey, False)
            resp = server.Response(saved["status"], saved["body"], "application/json",
                                   _headers() + [("Idempotency-Key", idem), ("Idempotent-Replayed", "true")])
            return route, resp, "replayed"
        resp, applied = _run(app, fn, params)
        if applied is not None:
            st["idem"][idem] = {"fingerprint": fingerprint, "status": resp.status, "body": resp.body}
        app.store.effect(ekey, bool(applied))
        resp.headers.append(("Idempotency-Key", idem))
        return route, resp, "ok"


def _run(app, fn, params):
    """Run an endpoint: (response, applied) — applied None for a validation error (not saved)."""
    try:
        return fn(app, params)
    except Invalid as e:
        return error(e.status, str(e), code=e.code, param=e.param), None


def _int_param(params, name, required=True):
    """A positive integer parameter."""
    v = params.get(name)
    if v is None or v == "":
        if required:
            raise Invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    if not isinstance(v, str) or not re.fullmatch(r"\d{1,12}", v):
        raise Invalid(f"Invalid integer: {v}", param=name, code="parameter_invalid_integer")
    n = int(v)
    if n < 1 or n > 99999999:
        raise Invalid("Amount must be between 1 and 99999999.", param=name, code="amount_too_large" if n else "amount_too_small")
    return n


def _new_pi(amount, currency, metadata, description=None):
    """A fresh PaymentIntent object."""
    pi_id = ids.stripe_id("pi")
    return {"id": pi_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": 0, "capture_method": "automatic",
            "client_secret": f"{pi_id}_secret_{ids.alnum(25)}", "confirmation_method": "automatic",
            "created": int(time.time()), "currency": currency, "description": description,
            "last_payment_error": None, "latest_charge": None, "livemode": False,
            "metadata": metadata, "payment_method": None, "payment_method_types": ["card"],
            "status": "requires_payment_method", "canceled_at": None, "cancellation_reason": None,
            "amount_refunded": 0}


def _public(pi):
    """A PaymentIntent as the API shows it (without the fake's bookkeeping)."""
    return {k: v for k, v in pi.items() if k not in ("amount_refunded", "succeeded_at")}


def _order_ref(pi):
    """The merchant reference of a PaymentIntent: metadata.order_id, else its id."""
    md = pi.get("metadata") or {}
    return md.get("order_id") or pi["id"]


def _create(app, params):
    """POST /v1/payment_intents."""
    amount = _int_param(params, "amount")
    currency = params.get("currency")
    if not currency:
        raise Invalid("Missing required param: currency.", param="currency", code="parameter_missing")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise Invalid(f"Invalid currency: {currency}.", param="currency")
    metadata = params.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise Invalid("Invalid object", param="metadata")
    capture_method = params.get("capture_method") or "automatic"
    if capture_method not in CAPTURE_METHODS:
        raise Invalid(f"Invalid capture_method: must be one of {', '.join(CAPTURE_METHODS)}",
                      param="capture_method")
    pi = _new_pi(amount, currency.lower(), metadata, params.get("description"))
    pi["capture_method"] = capture_method
    status, body = 200, None
    if params.get("confirm") == "true":
        pm = params.get("payment_method")
        if not pm:
            raise Invalid("You cannot confirm this PaymentIntent because it's missing a payment method.",
                          param="payment_method", code="payment_intent_unexpected_state")
        pi["payment_method"] = pm
        if pm in DECLINING_METHODS:
            pi["last_payment_error"] = {"code": "card_declined", "decline_code": "generic_decline",
                                        "message": "Your card was declined.", "type": "card_error"}
            status = 402
            body = {"error": dict(pi["last_payment_error"], payment_intent=_public(pi),
                                  doc_url="https://stripe.com/docs/error-codes/card-declined")}
        else:
            _pay(pi)
    st = _state(app)
    with app.store.lock:
        st["pis"][pi["id"]] = pi
        st["by_order"].setdefault(_order_ref(pi), []).append(pi["id"])
    app.store.order_bump("stripe", _order_ref(pi), "payment_intents")
    if body is not None:
        return server.json_response(status, body, _headers()), True
    if pi["status"] in ("succeeded", "requires_capture"):
        _webhook(app, pi, "payment_intent.succeeded" if pi["status"] == "succeeded"
                 else "payment_intent.amount_capturable_updated", _public(pi))
    return ok(_public(pi)), True


def _report_run(app, params):
    """POST /v1/reporting/report_runs."""
    with app.store.lock:
        run, problem = stripe_reports.create_run(app, _state(app), params)
    if problem:
        raise Invalid(problem, param="parameters")
    return ok(run), True


def _succeed(pi, amount=None):
    """Mark a PaymentIntent paid: all of it, or `amount` captured of a manual one."""
    pi["succeeded_at"] = pi.get("succeeded_at") or int(time.time())
    pi["status"] = "succeeded"
    pi["amount_received"] = pi["amount"] if amount is None else amount
    pi["amount_capturable"] = 0
    pi["latest_charge"] = pi["latest_charge"] or ids.stripe_id("ch")
    pi["last_payment_error"] = None


def _authorize(pi):
    """The buyer paid a manual-capture PaymentIntent: the amount waits for its capture."""
    pi["status"] = "requires_capture"
    pi["amount_capturable"] = pi["amount"]
    pi["latest_charge"] = pi["latest_charge"] or ids.stripe_id("ch")
    pi["last_payment_error"] = None


def _pay(pi):
    """The buyer paid: captured at once, or authorized for a manual capture."""
    if pi.get("capture_method") == "manual":
        _authorize(pi)
    else:
        _succeed(pi)


def _charge(pi, refund=None):
    """The Charge of a paid PaymentIntent, as charge.* events carry it."""
    captured = pi["amount_received"]
    obj = {"id": pi["latest_charge"], "object": "charge", "amount": pi["amount"],
           "amount_captured": captured, "amount_refunded": pi["amount_refunded"],
           "captured": pi["status"] == "succeeded", "created": pi["created"], "currency": pi["currency"],
           "livemode": False, "metadata": dict(pi.get("metadata") or {}), "paid": True,
           "payment_intent": pi["id"], "refunded": captured > 0 and pi["amount_refunded"] >= captured,
           "status": "succeeded"}
    if refund is not None:
        obj["refunds"] = {"object": "list", "data": [refund], "has_more": False, "total_count": 1,
                          "url": f"/v1/charges/{pi['latest_charge']}/refunds"}
    return obj


def _event(event_type, obj, event_id=None, previous=None):
    """A webhook event around a snapshot of its object."""
    evt = {"id": event_id or "evt_" + ids.alnum(24), "object": "event", "api_version": API_VERSION,
           "created": int(time.time()), "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
           "request": {"id": None, "idempotency_key": None}, "type": event_type}
    if previous:
        evt["data"]["previous_attributes"] = previous
    return evt


def _webhook(app, pi, event_type, obj, previous=None):
    """Queue the event an API call caused, when the account has a webhook endpoint (an outbox url)."""
    if app.outbox.settings.get(PROVIDER, {}).get("url"):
        app.outbox.enqueue(PROVIDER, _event(event_type, json.loads(json.dumps(obj)), previous=previous),
                           _order_ref(pi))


def outbox_render(app, payloads):
    """One event per request, signed when it is sent."""
    (event,) = payloads
    headers, body = Callbacks().render(app, event, int(time.time()), ids.alnum(32))
    return headers, body, [event["id"]]


def outbox_accepted(status, body):
    """Stripe counts any 2xx as delivered."""
    return status is not None and 200 <= status < 300


def _retrieve(app, pi_id):
    """GET /v1/payment_intents/{id}."""
    pi = _state(app)["pis"].get(pi_id)
    if pi is None:
        return error(404, f"No such payment_intent: '{pi_id}'", code="resource_missing", param="intent")
    return ok(_public(pi))


def _cancel(app, pi_id, params):
    """POST /v1/payment_intents/{id}/cancel."""
    st = _state(app)
    with app.store.lock:
        pi = st["pis"].get(pi_id)
        if pi is None:
            return error(404, f"No such payment_intent: '{pi_id}'", code="resource_missing", param="intent"), False
        if pi["status"] not in CANCELABLE:
            return error(400, f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}. "
                              "Only a PaymentIntent with one of the following statuses may be canceled: "
                              + ", ".join(CANCELABLE) + ".",
                         code="payment_intent_unexpected_state"), False
        pi["status"] = "canceled"
        pi["canceled_at"] = int(time.time())
        pi["cancellation_reason"] = params.get("cancellation_reason")
        pi["amount_capturable"] = 0
        obj = _public(pi)
    app.store.order_bump("stripe", _order_ref(pi), "cancels")
    _webhook(app, pi, "payment_intent.canceled", obj)
    return ok(obj), True


def _capture(app, pi_id, params):
    """POST /v1/payment_intents/{id}/capture: all that is capturable, or amount_to_capture; the rest is released."""
    amount = _int_param(params, "amount_to_capture", required=False)
    st = _state(app)
    with app.store.lock:
        pi = st["pis"].get(pi_id)
        if pi is None:
            return error(404, f"No such payment_intent: '{pi_id}'", code="resource_missing", param="intent"), False
        if pi["status"] != "requires_capture":
            return error(400, f"This PaymentIntent could not be captured because it has a status of {pi['status']}. "
                              "Only a PaymentIntent with one of the following statuses may be captured: "
                              "requires_capture.", code="payment_intent_unexpected_state"), False
        capturable = pi["amount_capturable"]
        amount = capturable if amount is None else amount
        if amount > capturable:
            return error(400, f"The amount to capture ({amount}) must be less than or equal to the "
                              f"PaymentIntent's amount_capturable ({capturable}).",
                         code="amount_too_large", param="amount_to_capture"), False
        _succeed(pi, amount)
        obj = _public(pi)
    app.store.order_bump("stripe", _order_ref(pi), "captures")
    app.store.order_bump("stripe", _order_ref(pi), "captured_amount", amount)
    _webhook(app, pi, "payment_intent.succeeded", obj, {"amount_capturable": capturable, "amount_received": 0,
                                                         "status": "requires_capture"})
    return ok(obj), True


def _refund(app, params):
    """POST /v1/refunds."""
    st = _state(app)
    pi_id = params.get("payment_intent")
    charge = params.get("charge")
    if not pi_id and not charge:
        raise Invalid("Must provide one of `charge` or `payment_intent`.", code="parameter_missing")
    amount = _int_param(params, "amount", required=False)
    with app.store.lock:
        if pi_id:
            pi = st["pis"].get(pi_id)
            if pi is None:
                raise Invalid(f"No such payment_intent: '{pi_id}'", param="payment_intent", code="resource_missing")
        else:
            pi = next((p for p in st["pis"].values() if p["latest_charge"] == charge), None)
            if pi is None:
                raise Invalid(f"No such charge: '{charge}'", param="charge", code="resource_missing")
        if pi["status"] != "succeeded":
            return error(400, f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                         param="payment_intent"), False
        remaining = pi["amount_received"] - pi["amount_refunded"]
        if remaining <= 0:
            return error(400, f"Charge {pi['latest_charge']} has already been refunded.",
                         code="charge_already_refunded"), False
        amount = remaining if amount is None else amount
        if amount > remaining:
            return error(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                              f"({remaining}).", param="amount"), False
        pi["amount_refunded"] += amount
        refund = {"id": ids.stripe_id("re"), "object": "refund", "amount": amount,
                  "charge": pi["latest_charge"], "created": int(time.time()), "currency": pi["currency"],
                  "metadata": params.get("metadata") or {}, "payment_intent": pi["id"],
                  "reason": params.get("reason"), "status": "succeeded"}
        st["refunds"][refund["id"]] = refund
        charge_obj = _charge(pi, refund)
    app.store.order_bump("stripe", _order_ref(pi), "refunds")
    app.store.order_bump("stripe", _order_ref(pi), "refunded_amount", amount)
    _webhook(app, pi, "charge.refunded", charge_obj,
             {"amount_refunded": pi["amount_refunded"] - amount, "refunded": False})
    return ok(refund), True


# --- webhooks sent to pay -----------------------------------------------------

class Callbacks:
    """Stripe webhook events: JSON, Stripe-Signature: t=<ts>,v1=<hex HMAC of "t.body">."""

    provider = "stripe"
    ALIASES = {"paid": "payment_intent.succeeded", "succeeded": "payment_intent.succeeded",
               "success": "payment_intent.succeeded", "failed": "payment_intent.payment_failed",
               "refunded": "charge.refunded", "refund": "charge.refunded",
               "authorized": "payment_intent.amount_capturable_updated",
               "captured": "payment_intent.succeeded", "closed": "payment_intent.canceled"}
    EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded",
              "payment_intent.canceled", "payment_intent.amount_capturable_updated")
    success_event = "payment_intent.succeeded"
    refund_event = "charge.refunded"
    nonce_is_event_id = True

    def event_name(self, name):
        """The native event type for an alias or native name."""
        name = self.ALIASES.get(name, name)
        if name not in self.EVENTS:
            raise ValueError(f"stripe events: {', '.join(self.EVENTS)} (or paid, failed, refunded, "
                             "authorized, captured, closed)")
        return name

    def build(self, app, p, event, event_id=None, update=True, mode=None):
        """The event object for order p["ref"]; updates the fake's payment state when `update`.

        On a manual-capture PaymentIntent, payment_intent.succeeded is what
        the buyer's payment means there: before the authorization it
        authorizes (the event sent is payment_intent.amount_capturable_updated,
        as Stripe's), after it captures p["amount"] (a capture made on
        Stripe's side)."""
        st = _state(app)
        currency = p["currency"].lower()
        with app.store.lock:
            pi = st["pis"].get(p.get("txn_id") or "")
            if pi is None:
                found = st["by_order"].get(p["ref"])
                pi = st["pis"][found[-1]] if found and not p.get("txn_id") else None
            if pi is None:
                pi = _new_pi(p["amount"], currency, {"order_id": p["ref"]})
                if p.get("txn_id"):
                    pi["id"] = p["txn_id"]
                if update:
                    st["pis"][pi["id"]] = pi
                    st["by_order"].setdefault(p["ref"], []).append(pi["id"])
            pi = pi if update else json.loads(json.dumps(pi))
            now = int(time.time())
            prev = {}
            manual = pi.get("capture_method") == "manual"
            if event == "payment_intent.succeeded" and manual and pi["status"] not in ("requires_capture", "succeeded"):
                event = "payment_intent.amount_capturable_updated"
            if event == "payment_intent.amount_capturable_updated":
                pi["capture_method"] = "manual"
                pi["amount"], pi["currency"] = p["amount"], currency
                _authorize(pi)
                prev = {"amount_capturable": 0, "status": "requires_payment_method"}
                obj = _public(pi)
            elif event == "payment_intent.succeeded" and manual:
                if pi["status"] == "requires_capture":
                    prev = {"amount_capturable": pi["amount_capturable"], "amount_received": 0,
                            "status": "requires_capture"}
                    _succeed(pi, p["amount"])
                pi["currency"] = currency
                obj = _public(pi)
            elif event == "payment_intent.succeeded":
                _succeed(pi)
                pi["amount"] = pi["amount_received"] = p["amount"]
                pi["currency"] = currency
                obj = _public(pi)
            elif event == "payment_intent.payment_failed":
                pi["status"] = "requires_payment_method"
                pi["last_payment_error"] = {"code": "card_declined", "decline_code": "generic_decline",
                                            "message": "Your card was declined.", "type": "card_error"}
                obj = _public(pi)
            elif event == "payment_intent.canceled":
                pi["status"], pi["canceled_at"] = "canceled", now
                pi["cancellation_reason"] = "abandoned"
                pi["amount_capturable"] = 0
                obj = _public(pi)
            else:
                pi["latest_charge"] = pi["latest_charge"] or ids.stripe_id("ch")
                refund_amount = p.get("refund_amount") or p["amount"]
                before = pi["amount_refunded"]
                pi["amount_refunded"] = before + refund_amount
                refund = {"id": p.get("refund_id") or ids.stripe_id("re"), "object": "refund",
                          "amount": refund_amount, "charge": pi["latest_charge"], "created": now,
                          "currency": currency, "metadata": {}, "payment_intent": pi["id"],
                          "reason": "requested_by_customer", "status": "succeeded"}
                # what was captured: a manual capture's amount_received, else the event's amount
                captured = pi["amount_received"] if manual and pi["status"] == "succeeded" else p["amount"]
                obj = {"id": pi["latest_charge"], "object": "charge", "amount": pi["amount"] if manual else p["amount"],
                       "amount_captured": captured, "amount_refunded": pi["amount_refunded"],
                       "captured": True, "created": pi["created"], "currency": currency,
                       "livemode": False, "metadata": {"order_id": p["ref"]}, "paid": True,
                       "payment_intent": pi["id"], "refunded": pi["amount_refunded"] >= captured,
                       "status": "succeeded",
                       "refunds": {"object": "list", "data": [refund], "has_more": False, "total_count": 1,
                                   "url": f"/v1/charges/{pi['latest_charge']}/refunds"}}
                prev = {"amount_refunded": before, "refunded": False}
            if "metadata" in obj and "order_id" not in (obj["metadata"] or {}):
                obj["metadata"] = dict(obj["metadata"] or {}, order_id=p["ref"])
        return _event(event, obj, event_id, prev)

    def event_id(self, payload):
        """The event's id."""
        return payload["id"]

    def render(self, app, payload, ts, nonce, mode=None):
        """(headers, body) of the webhook request."""
        body = json.dumps(payload, indent=2).encode("utf-8")
        secret = app.cfg.stripe_webhook_secret
        if not secret:
            raise ValueError("stripe.webhook_secret is not configured")
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                   "Cache-Control": "no-cache", "Accept": "*/*; q=0.5, application/xml"}
        if mode != "unsigned":
            key = "whsec_wrong" + ids.alnum(24) if mode == "wrong_key" else secret
            headers["Stripe-Signature"] = signing.stripe_signature_header(
                body, key, ts, extra_v0_secret="whsec_v0" + ids.alnum(20))
        return headers, body

    def tamper(self, body):
        """Change the amount after signing (or one character if there is none)."""
        out, n = re.subn(rb'"amount": (\d+)', lambda m: b'"amount": ' + str(int(m.group(1)) + 1).encode(), body, 1)
        return out if n else body[:-2] + b" }"
