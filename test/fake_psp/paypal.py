"""PayPal REST: the OAuth2 token, Orders v2 and Payments v2 endpoints pay's
dispatcher calls, and the signed webhooks the fake PSP sends to pay.

API: `POST /v1/oauth2/token` with HTTP Basic client_id:secret and
grant_type=client_credentials gives a Bearer token valid `token_ttl_s`; every
/v2/ request needs a live one (401 otherwise).  JSON bodies; amounts are
{currency_code, value} with value a decimal string with exactly the currency's
number of decimals (PayPal rejects more with 422 DECIMAL_PRECISION; the fake
rejects fewer too, so a sloppy formatter shows).  `PayPal-Request-Id` on a
POST: the same id on the same path replays the first answer with no second
effect (validation errors are not saved).  `Prefer: return=representation`
gives whole objects, else the minimal id/status/links, as PayPal does.

The buyer's approval happens at PayPal: POST /control/paypal/approve
{"id": order id, "capture": "completed" | "pending" | "denied"} (how later
captures of the order turn out: "pending" answers PENDING and completes later,
"denied" answers PENDING and is denied later).  POST /control/paypal/expire_tokens
ends every issued token.

Webhooks (queued in the outbox after the API call, or sent by /control/send):
CHECKOUT.ORDER.APPROVED, PAYMENT.AUTHORIZATION.CREATED / .VOIDED,
PAYMENT.CAPTURE.COMPLETED / .DENIED / .REFUNDED, with PAYPAL-TRANSMISSION-ID,
-TIME, -SIG (base64 RSA-SHA256 over "<id>|<time>|<webhook_id>|<crc32 of the
body>"), PAYPAL-CERT-URL (the fake's /v1/notifications/certs/CERT-..., serving
the signing certificate and its CA) and PAYPAL-AUTH-ALGO SHA256withRSA."""

import base64
import copy
import datetime
import hmac
import json
import re
import secrets
import string
import time
import urllib.parse
import uuid

import ids
import money
import server
import signing

PROVIDER = "paypal"
OUTBOX_BATCH = False
APPROVE_URL = "https://www.sandbox.paypal.com/checkoutnow?token="
CERT_URL_DEFAULT_BASE = "https://api.sandbox.paypal.com"
SCOPE = ("https://uri.paypal.com/services/payments/payment https://uri.paypal.com/services/payments/refund "
         "https://uri.paypal.com/services/payments/orders/client_sdk_orders_api")
CAPTURE_OUTCOMES = ("completed", "pending", "denied")

ID = r"([A-Z0-9]{1,36})"
ROUTES = [
    ("GET", re.compile(rf"^/v2/checkout/orders/{ID}$"), "orders.get"),
    ("POST", re.compile(rf"^/v2/checkout/orders/{ID}/capture$"), "orders.capture"),
    ("POST", re.compile(rf"^/v2/checkout/orders/{ID}/authorize$"), "orders.authorize"),
    ("POST", re.compile(rf"^/v2/payments/authorizations/{ID}/capture$"), "authorizations.capture"),
    ("POST", re.compile(rf"^/v2/payments/authorizations/{ID}/void$"), "authorizations.void"),
    ("POST", re.compile(rf"^/v2/payments/captures/{ID}/refund$"), "captures.refund"),
    ("GET", re.compile(rf"^/v2/payments/captures/{ID}$"), "captures.get"),
    ("GET", re.compile(rf"^/v2/payments/authorizations/{ID}$"), "authorizations.get"),
    ("GET", re.compile(rf"^/v2/payments/refunds/{ID}$"), "refunds.get"),
]


class Problem(Exception):
    """A PayPal error answer (4xx: not saved under the PayPal-Request-Id)."""

    def __init__(self, status, name, message, issue=None, description=None, field=None, value=None,
                 location="body"):
        super().__init__(message)
        self.status, self.name, self.issue = status, name, issue
        self.body = {"name": name, "message": message, "debug_id": _hex(13)}
        if issue:
            detail = {"issue": issue, "description": description or message}
            if field is not None:
                detail.update(field=field, location=location)
            if value is not None:
                detail["value"] = value
            self.body["details"] = [detail]
        self.body["links"] = [{"href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{issue or name}",
                               "rel": "information_link", "method": "GET"}]


def _unprocessable(issue, description, field=None, value=None):
    """PayPal's 422 UNPROCESSABLE_ENTITY with one issue."""
    return Problem(422, "UNPROCESSABLE_ENTITY", "The requested action could not be performed, semantically "
                   "incorrect, or failed business validation.", issue, description, field, value)


def _invalid(issue, description, field, value=None):
    """PayPal's 400 INVALID_REQUEST with one issue."""
    return Problem(400, "INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates "
                   "schema.", issue, description, field, value)


def _not_found(field, value):
    """PayPal's 404 RESOURCE_NOT_FOUND for an id in the path."""
    return Problem(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.", "INVALID_RESOURCE_ID",
                   "Specified resource ID does not exist. Please check the resource ID and try again.",
                   field, value, "path")


def _hex(n):
    """n random lower-case hex digits (PayPal's debug ids)."""
    return secrets.token_hex((n + 1) // 2)[:n]


def _pid(n=17):
    """A PayPal object id: n upper-case letters and digits."""
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(n))


def _iso(ts=None):
    """"2024-01-02T03:04:05Z", as PayPal writes times."""
    return datetime.datetime.fromtimestamp(ts if ts is not None else time.time(),
                                           datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _headers():
    """Headers PayPal puts on every answer."""
    return [("Paypal-Debug-Id", _hex(13))]


def _json(status, obj, extra=None):
    """A JSON answer."""
    return server.json_response(status, obj, _headers() + list(extra or []))


def _oauth_error(status, error, description):
    """The OAuth error shape (token endpoint, bad Bearer tokens)."""
    return _json(status, {"error": error, "error_description": description})


def _state(app):
    """The fake PayPal's objects."""
    st = app.store.state[PROVIDER]
    if not st:
        st.update(tokens={}, orders={}, authorizations={}, captures={}, refunds={}, idem={}, by_ref={})
    return st


def _base(app):
    """The URL the fake is reached at (links and PAYPAL-CERT-URL point at it)."""
    return app.base_url or CERT_URL_DEFAULT_BASE


# --- routing ----------------------------------------------------------------------

def handle(app, req):
    """Route PayPal's paths (/v1/oauth2/, /v1/notifications/, /v2/); None for others."""
    path = req.path
    if not (path.startswith("/v2/") or path.startswith("/v1/oauth2/") or path.startswith("/v1/notifications/")):
        return None
    cfg = app.cfg
    if not cfg.paypal_client_id:
        return "paypal", _json(501, {"name": "INTERNAL_SERVER_ERROR",
                                     "message": "paypal is not configured in the fake PSP"}), "not_configured"
    if path == "/v1/oauth2/token" and req.method == "POST":
        return ("paypal.oauth2.token",) + _token(app, req)
    if path.startswith("/v1/notifications/certs/") and req.method == "GET":
        return "paypal.notifications.certs", _cert(app, path.rsplit("/", 1)[1]), "ok"
    if not path.startswith("/v2/"):
        return "paypal.unknown", _json(404, {"name": "RESOURCE_NOT_FOUND", "message": "Not found"}), "no_route"
    bad = _check_bearer(app, req)
    if bad is not None:
        return "paypal.auth", bad[0], bad[1]
    if req.method == "POST" and path == "/v2/checkout/orders":
        return _post(app, req, "paypal.orders.create", lambda body: _create_order(app, req, body))
    for method, rx, name in ROUTES:
        m = rx.match(path)
        if m and req.method == method:
            oid = m.group(1)
            if method == "GET":
                return "paypal." + name, _get(app, name, oid), "ok"
            fn = {"orders.capture": _order_capture, "orders.authorize": _order_authorize,
                  "authorizations.capture": _auth_capture, "authorizations.void": _auth_void,
                  "captures.refund": _refund}[name]
            return _post(app, req, "paypal." + name, lambda body, fn=fn, oid=oid: fn(app, req, oid, body))
    return "paypal.unknown", _json(404, {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does "
                                         "not exist.", "debug_id": _hex(13)}), "no_route"


def _token(app, req):
    """POST /v1/oauth2/token: (response, verdict)."""
    cfg = app.cfg
    scheme, _, value = (req.header("Authorization") or "").partition(" ")
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        user = password = None
    if scheme.lower() != "basic" or user is None or not (
            hmac.compare_digest(user.encode(), cfg.paypal_client_id.encode())
            and hmac.compare_digest(password.encode(), (cfg.paypal_client_secret or "").encode())):
        return _oauth_error(401, "invalid_client", "Client Authentication failed"), "bad_client"
    form = dict(urllib.parse.parse_qsl(req.body.decode("utf-8", "replace")))
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type",
                            "Grant Type is NULL" if "grant_type" not in form else "unsupported grant_type"), "invalid"
    token = "A21AA" + ids.alnum(92)
    ttl = cfg.paypal_token_ttl_s
    with app.store.lock:
        _state(app)["tokens"][token] = time.time() + ttl
    return _json(200, {"scope": SCOPE, "access_token": token, "token_type": "Bearer",
                       "app_id": "APP-80W284485P519543T", "expires_in": ttl,
                       "nonce": _iso() + ids.alnum(43)}), "ok"


def _check_bearer(app, req):
    """None when the Bearer token is live, else (401 answer, verdict)."""
    scheme, _, token = (req.header("Authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _json(401, {"name": "AUTHENTICATION_FAILURE",
                           "message": "Authentication failed due to invalid authentication credentials or a "
                                      "missing Authorization header.",
                           "links": [{"href": "https://developer.paypal.com/docs/api/overview/#error",
                                      "rel": "information_link"}]}), "no_token"
    expires = _state(app)["tokens"].get(token)
    if expires is None:
        return _oauth_error(401, "invalid_token", "Token signature verification failed"), "bad_token"
    if expires <= time.time():
        return _oauth_error(401, "invalid_token", "Access Token not found in cache"), "expired_token"
    return None


def _cert(app, cert_id):
    """GET /v1/notifications/certs/{id}: the signing certificate, then its CA (PEM)."""
    cfg = app.cfg
    if cert_id != cfg.paypal_cert_id or not cfg.paypal_signing_cert_pem:
        return _json(404, {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist."})
    chain = cfg.paypal_signing_cert_pem.strip() + "\n" + (cfg.paypal_ca_cert_pem or "").strip() + "\n"
    return server.Response(200, chain, "application/x-pem-file")


def _post(app, req, route, fn):
    """A POST with PayPal-Request-Id replay; returns (route, response, verdict)."""
    try:
        body = json.loads(req.body.decode("utf-8")) if req.body.strip() else {}
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError):
        p = Problem(400, "INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates "
                    "schema.", "MALFORMED_REQUEST_JSON", "The request JSON is not well formed.", "/")
        return route, _json(p.status, p.body), "bad_body"
    rid = req.header("PayPal-Request-Id")
    representation = "return=representation" in (req.header("Prefer") or "")
    if not rid:
        resp, applied = _run(fn, body, representation)
        app.store.effect("paypal:(no request id)", applied)
        return route, resp, "ok"
    ekey = f"paypal:{rid}"
    st = _state(app)
    with app.store.key_lock(ekey):
        saved = st["idem"].get(f"{req.path} {rid}")
        if saved is not None:
            app.store.effect(ekey, False)
            return route, server.Response(saved["status"], saved["body"], "application/json",
                                          _headers() + saved["headers"]), "replayed"
        resp, applied = _run(fn, body, representation)
        if applied is not None:
            st["idem"][f"{req.path} {rid}"] = {"status": resp.status, "body": resp.body,
                                           "headers": [h for h in resp.headers if h[0] == "Location"]}
        app.store.effect(ekey, bool(applied))
        return route, resp, "ok"


def _run(fn, body, representation):
    """(response, applied): applied None for an answer that is not saved (validation)."""
    try:
        status, obj, minimal = fn(body)
    except Problem as p:  # errors are not saved: a retry after the cause is gone may succeed
        return _json(p.status, p.body), None
    if status == 204:
        return server.Response(204, b"", None, _headers()), True
    shown = obj if representation or minimal is None else minimal
    return _json(status, shown), True


# --- amounts ----------------------------------------------------------------------

def _amount(obj, field, currency=None):
    """Minor units of a PayPal amount object; raises Problem (PayPal's issues)."""
    if not isinstance(obj, dict):
        raise _invalid("MISSING_REQUIRED_PARAMETER", "A required field / parameter is missing.", field)
    cur = obj.get("currency_code")
    if not isinstance(cur, str) or not re.fullmatch(r"[A-Z]{3}", cur):
        raise _invalid("INVALID_PARAMETER_VALUE" if cur else "MISSING_REQUIRED_PARAMETER",
                       "The value of a field is invalid.", field + "/currency_code", cur)
    if currency is not None and cur != currency:
        raise _unprocessable("CURRENCY_MISMATCH", "Currency code should be the same as the currency of the "
                             "original transaction.", field + "/currency_code", cur)
    value = obj.get("value")
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,15}(\.\d+)?", value):
        raise _invalid("INVALID_PARAMETER_SYNTAX" if value is not None else "MISSING_REQUIRED_PARAMETER",
                       "The value of a field does not conform to the expected format.", field + "/value", value)
    exp = money.exponent(cur)
    decimals = len(value.partition(".")[2]) if "." in value else 0
    if decimals != exp:
        raise _unprocessable("DECIMAL_PRECISION", "If the currency supports decimals, only two decimal place "
                             "precision is supported." if exp else "Currency does not support decimals.",
                             field + "/value", value)
    minor = money.to_minor(value, cur)
    if minor <= 0:
        raise _unprocessable("AMOUNT_NOT_POSITIVE", "Amount must be greater than zero.", field + "/value", value)
    return cur, minor


def _money(minor, currency):
    """A PayPal amount object."""
    return {"currency_code": currency, "value": money.to_major(minor, currency)}


def _link(app, path, rel, method="GET"):
    """A HATEOAS link on the fake itself."""
    return {"href": _base(app) + path, "rel": rel, "method": method}


# --- orders -----------------------------------------------------------------------

def _create_order(app, req, body):
    """POST /v2/checkout/orders."""
    intent = body.get("intent")
    if intent not in ("CAPTURE", "AUTHORIZE"):
        raise _invalid("INVALID_PARAMETER_VALUE" if intent else "MISSING_REQUIRED_PARAMETER",
                       "The value of a field is invalid.", "/intent", intent)
    units = body.get("purchase_units")
    if not isinstance(units, list) or not units or not isinstance(units[0], dict):
        raise _invalid("MISSING_REQUIRED_PARAMETER", "A required field / parameter is missing.", "/purchase_units")
    pu = units[0]
    ref_id = pu.get("reference_id") or "default"
    cur, minor = _amount(pu.get("amount"), f"/purchase_units/@reference_id=='{ref_id}'/amount")
    custom = pu.get("custom_id")
    if custom is not None and not (isinstance(custom, str) and 1 <= len(custom) <= 127):
        raise _invalid("INVALID_STRING_LENGTH" if isinstance(custom, str) else "INVALID_PARAMETER_SYNTAX",
                       "The value of a field is either too short or too long.",
                       f"/purchase_units/@reference_id=='{ref_id}'/custom_id", custom)
    order = _new_order(app, intent, cur, minor, pu.get("custom_id"), ref_id, pu.get("invoice_id"),
                       pu.get("description"))
    st = _state(app)
    with app.store.lock:
        st["orders"][order["id"]] = order
        st["by_ref"].setdefault(_ref(order), []).append(order["id"])
    app.store.order_bump(PROVIDER, _ref(order), "orders")
    return 201, _show_order(st, order), _minimal(order)


def _new_order(app, intent, currency, minor, custom_id, ref_id="default", invoice_id=None, description=None):
    """A fresh order in status CREATED."""
    oid = _pid()
    pu = {"reference_id": ref_id, "amount": _money(minor, currency),
          "payee": {"email_address": "merchant@pay.example", "merchant_id": "PAYFAKEMERCHANT"}}
    for k, v in (("custom_id", custom_id), ("invoice_id", invoice_id), ("description", description)):
        if v is not None:
            pu[k] = v
    now = _iso()
    return {"id": oid, "intent": intent, "status": "CREATED", "purchase_units": [pu], "create_time": now,
            "update_time": now, "_capture": "completed", "_payments": {},
            "links": [_link(app, f"/v2/checkout/orders/{oid}", "self"),
                      {"href": APPROVE_URL + oid, "rel": "approve", "method": "GET"},
                      _link(app, f"/v2/checkout/orders/{oid}", "update", "PATCH"),
                      _link(app, f"/v2/checkout/orders/{oid}/{'capture' if intent == 'CAPTURE' else 'authorize'}",
                            "capture" if intent == "CAPTURE" else "authorize", "POST")]}


def _public(obj):
    """An object as the API shows it (without the fake's bookkeeping, keys starting with _)."""
    return {k: v for k, v in copy.deepcopy(obj).items() if not k.startswith("_")}


def _show_order(st, order, override=None):
    """An order as the API shows it: purchase_units[0].payments lists its captures or
    authorizations as they are now (override: id -> the view an answer must show)."""
    shown = _public(order)
    payments = {}
    for kind, ids_ in order["_payments"].items():
        payments[kind] = [(override or {}).get(i) or _public(st[kind][i]) for i in ids_]
    if payments:
        shown["purchase_units"][0]["payments"] = payments
    return shown


def _minimal(obj):
    """PayPal's return=minimal shape."""
    return {"id": obj["id"], "status": obj["status"], "links": copy.deepcopy(obj.get("links", []))}


def _ref(order):
    """The merchant reference of an order: purchase_units[0].custom_id, else its id."""
    return order["purchase_units"][0].get("custom_id") or order["id"]


def _order(st, oid):
    """An order by id; raises 404."""
    order = st["orders"].get(oid)
    if order is None:
        raise _not_found("order_id", oid)
    return order


def approve(app, oid, outcome="completed"):
    """The buyer approves order oid at PayPal; queues CHECKOUT.ORDER.APPROVED.
    (status, error text or None) for the control API."""
    if outcome not in CAPTURE_OUTCOMES:
        return 400, f"capture must be one of {', '.join(CAPTURE_OUTCOMES)}"
    st = _state(app)
    with app.store.lock:
        order = st["orders"].get(oid)
        if order is None:
            return 404, f"no such order {oid}"
        if order["status"] not in ("CREATED", "PAYER_ACTION_REQUIRED"):
            return 409, f"order {oid} is {order['status']}, not CREATED"
        _approve(order, outcome)
        event = _event(app, "CHECKOUT.ORDER.APPROVED", "checkout-order", order)
    app.outbox.enqueue(PROVIDER, event, _ref(order))
    return 200, None


def _approve(order, outcome="completed"):
    """Mark an order approved by a buyer."""
    order["status"] = "APPROVED"
    order["_capture"] = outcome
    order["update_time"] = _iso()
    order["payer"] = {"name": {"given_name": "John", "surname": "Doe"}, "email_address": "buyer@pay.example",
                      "payer_id": "QYR5Z8XDVJNXQ", "address": {"country_code": "US"}}
    order["payment_source"] = {"paypal": {"email_address": "buyer@pay.example", "account_id": "QYR5Z8XDVJNXQ",
                                          "account_status": "VERIFIED"}}


def _check_approved(order, intent):
    """Raise PayPal's 422 unless the order is approved for this intent."""
    if order["intent"] != intent:
        other = "capture" if intent == "AUTHORIZE" else "authorize"
        raise _unprocessable("ACTION_DOES_NOT_MATCH_INTENT",
                             f"Order was created with an intent to '{order['intent']}'. Please use "
                             f"v2/checkout/orders/order_id/{other} to complete the transaction or alternately "
                             f"create an order with an intent of '{intent}'.")
    if order["status"] == "COMPLETED":
        raise _unprocessable("ORDER_ALREADY_CAPTURED" if intent == "CAPTURE" else "ORDER_ALREADY_AUTHORIZED",
                             "Order already captured. If 'intent=CAPTURE' only one capture per order is allowed."
                             if intent == "CAPTURE" else "Order already authorized. If 'intent=AUTHORIZE' only "
                             "one authorization per order is allowed.")
    if order["status"] != "APPROVED":
        raise _unprocessable("ORDER_NOT_APPROVED", "Payer has not yet approved the Order for payment. Please "
                             "redirect the payer to the 'rel':'approve' url returned as part of the HATEOAS links "
                             "within the Create Order call or provide a valid payment_source in the request.")


def _order_capture(app, req, oid, body):
    """POST /v2/checkout/orders/{id}/capture."""
    st = _state(app)
    with app.store.lock:
        order = _order(st, oid)
        _check_approved(order, "CAPTURE")
        amount = order["purchase_units"][0]["amount"]
        cur = amount["currency_code"]
        cap, view, events = _new_capture(app, st, order, None, money.to_minor(amount["value"], cur), cur, True)
        order["status"] = "COMPLETED"
        order["update_time"] = _iso()
        shown = _show_order(st, order, {cap["id"]: view})
    _queue(app, events, _ref(order))
    app.store.order_bump(PROVIDER, _ref(order), "captures")
    return 201, shown, _minimal(order)


def _new_capture(app, st, order, auth, minor, currency, final):
    """A capture of minor units (of the order, or of an authorization), filed in st:
    (the capture, its view for the API answer, the events to queue).  How it turns
    out is the order's approval outcome (control approve)."""
    cid = _pid()
    now = _iso()
    outcome = order.get("_capture", "completed")
    cap = {"id": cid, "status": "COMPLETED" if outcome == "completed" else "PENDING",
           "amount": _money(minor, currency), "final_capture": final,
           "seller_protection": {"status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED",
                                                                             "UNAUTHORIZED_TRANSACTION"]},
           "create_time": now, "update_time": now, "_refunded": 0, "_order": order["id"],
           "supplementary_data": {"related_ids": {"order_id": order["id"]}},
           "links": [_link(app, f"/v2/payments/captures/{cid}", "self"),
                     _link(app, f"/v2/payments/captures/{cid}/refund", "refund", "POST"),
                     _link(app, f"/v2/checkout/orders/{order['id']}", "up")]}
    custom = order["purchase_units"][0].get("custom_id")
    if custom is not None:
        cap["custom_id"] = custom
    if auth is not None:
        cap["supplementary_data"]["related_ids"]["authorization_id"] = auth["id"]
        cap["links"][2] = _link(app, f"/v2/payments/authorizations/{auth['id']}", "up")
    if cap["status"] == "PENDING":
        cap["status_details"] = {"reason": "PENDING_REVIEW"}
    st["captures"][cid] = cap
    order["_payments"].setdefault("captures", []).append(cid)
    view = _public(cap)
    events = []
    if outcome == "completed":
        events.append(_event(app, "PAYMENT.CAPTURE.COMPLETED", "capture", cap))
    else:
        # the review ends later: the event carries the capture's final state, which
        # the fake's objects take now (a GET after the answer shows it)
        cap["status"] = "COMPLETED" if outcome == "pending" else "DECLINED"
        cap.pop("status_details", None)
        events.append(_event(app, "PAYMENT.CAPTURE.COMPLETED" if outcome == "pending" else "PAYMENT.CAPTURE.DENIED",
                             "capture", cap))
    return cap, view, events


def _order_authorize(app, req, oid, body):
    """POST /v2/checkout/orders/{id}/authorize."""
    st = _state(app)
    with app.store.lock:
        order = _order(st, oid)
        _check_approved(order, "AUTHORIZE")
        amount = order["purchase_units"][0]["amount"]
        cur = amount["currency_code"]
        auth = _new_authorization(app, st, order, money.to_minor(amount["value"], cur), cur)
        order["status"] = "COMPLETED"
        order["update_time"] = _iso()
        shown = _show_order(st, order)
        event = _event(app, "PAYMENT.AUTHORIZATION.CREATED", "authorization", auth)
    _queue(app, [event], _ref(order))
    app.store.order_bump(PROVIDER, _ref(order), "authorizations")
    return 201, shown, _minimal(order)


def _new_authorization(app, st, order, minor, currency):
    """An authorization in status CREATED, valid 29 days, filed in st."""
    aid = _pid()
    now = time.time()
    auth = {"id": aid, "status": "CREATED", "amount": _money(minor, currency),
            "seller_protection": {"status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED",
                                                                              "UNAUTHORIZED_TRANSACTION"]},
            "expiration_time": _iso(now + 29 * 86400), "create_time": _iso(now), "update_time": _iso(now),
            "_captured": 0, "_order": order["id"],
            "supplementary_data": {"related_ids": {"order_id": order["id"]}},
            "links": [_link(app, f"/v2/payments/authorizations/{aid}", "self"),
                      _link(app, f"/v2/payments/authorizations/{aid}/capture", "capture", "POST"),
                      _link(app, f"/v2/payments/authorizations/{aid}/void", "void", "POST"),
                      _link(app, f"/v2/payments/authorizations/{aid}/reauthorize", "reauthorize", "POST"),
                      _link(app, f"/v2/checkout/orders/{order['id']}", "up")]}
    custom = order["purchase_units"][0].get("custom_id")
    if custom is not None:
        auth["custom_id"] = custom
    st["authorizations"][aid] = auth
    order["_payments"].setdefault("authorizations", []).append(aid)
    return auth


def _authorization(st, aid):
    """An authorization by id; raises 404."""
    auth = st["authorizations"].get(aid)
    if auth is None:
        raise _not_found("authorization_id", aid)
    return auth


def _auth_capture(app, req, aid, body):
    """POST /v2/payments/authorizations/{id}/capture (partial amounts, final_capture)."""
    st = _state(app)
    with app.store.lock:
        auth = _authorization(st, aid)
        if auth["status"] == "VOIDED":
            raise _unprocessable("AUTHORIZATION_VOIDED", "A voided authorization cannot be captured or "
                                 "reauthorized.")
        if auth["status"] == "CAPTURED":
            raise _unprocessable("AUTHORIZATION_ALREADY_CAPTURED", "Authorization has been previously captured "
                                 "and hence cannot be voided or captured again.")
        cur = auth["amount"]["currency_code"]
        total = money.to_minor(auth["amount"]["value"], cur)
        remaining = total - auth["_captured"]
        minor = remaining
        if body.get("amount") is not None:
            cur, minor = _amount(body["amount"], "/amount", cur)
        if minor > remaining:
            raise _unprocessable("MAX_CAPTURE_AMOUNT_EXCEEDED", "Capture amount exceeds allowable limit. Please "
                                 "contact customer service or your account manager to change the maximum "
                                 "allowable capture amount.", "/amount/value", body["amount"]["value"])
        final = body.get("final_capture") is True
        order = st["orders"][auth["_order"]]
        cap, view, events = _new_capture(app, st, order, auth, minor, cur, final)
        auth["_captured"] += minor
        # final_capture ends the authorization even when some of it is left
        auth["status"] = "CAPTURED" if final or auth["_captured"] >= total else "PARTIALLY_CAPTURED"
        auth["update_time"] = _iso()
    _queue(app, events, _ref(order))
    app.store.order_bump(PROVIDER, _ref(order), "captures")
    app.store.order_bump(PROVIDER, _ref(order), "captured_amount", minor)
    return 201, view, _minimal(view)


def _auth_void(app, req, aid, body):
    """POST /v2/payments/authorizations/{id}/void: 204 (200 with the authorization on return=representation)."""
    st = _state(app)
    with app.store.lock:
        auth = _authorization(st, aid)
        if auth["status"] == "VOIDED":
            raise _unprocessable("PREVIOUSLY_VOIDED", "Authorization has been previously voided and hence "
                                 "cannot be voided again.")
        if auth["status"] == "CAPTURED":
            raise _unprocessable("AUTHORIZATION_ALREADY_CAPTURED", "Authorization has been previously captured "
                                 "and hence cannot be voided or captured again.")
        auth["status"] = "VOIDED"
        auth["update_time"] = _iso()
        order = st["orders"][auth["_order"]]
        event = _event(app, "PAYMENT.AUTHORIZATION.VOIDED", "authorization", auth)
    _queue(app, [event], _ref(order))
    app.store.order_bump(PROVIDER, _ref(order), "voids")
    if "return=representation" in (req.header("Prefer") or ""):
        return 200, _public(auth), None
    return 204, None, None


def _refund(app, req, cid, body):
    """POST /v2/payments/captures/{id}/refund (whole or partial)."""
    st = _state(app)
    with app.store.lock:
        cap = st["captures"].get(cid)
        if cap is None:
            raise _not_found("capture_id", cid)
        if cap["status"] == "REFUNDED":
            raise _unprocessable("CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded.")
        if cap["status"] == "PENDING":
            raise _unprocessable("PENDING_CAPTURE", "Cannot initiate a refund as the capture is pending. "
                                 "Capture is typically pending when the payer has funded the transaction using "
                                 "an e-check or bank account.")
        if cap["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            raise _unprocessable("TRANSACTION_REFUSED", "The request was refused.")
        cur = cap["amount"]["currency_code"]
        remaining = money.to_minor(cap["amount"]["value"], cur) - cap["_refunded"]
        minor = remaining
        if body.get("amount") is not None:
            cur, minor = _amount(body["amount"], "/amount", cur)
        if minor > remaining:
            raise _unprocessable("REFUND_AMOUNT_EXCEEDED", "The refund amount must be less than or equal to the "
                                 "capture amount that has not yet been refunded.", "/amount/value",
                                 body["amount"]["value"])
        rid = _pid()
        now = _iso()
        refund = {"id": rid, "status": "COMPLETED", "amount": _money(minor, cur),
                  "seller_payable_breakdown": {"gross_amount": _money(minor, cur),
                                               "net_amount": _money(minor, cur),
                                               "total_refunded_amount": _money(cap["_refunded"] + minor, cur)},
                  "create_time": now, "update_time": now, "_capture": cid,
                  "links": [_link(app, f"/v2/payments/refunds/{rid}", "self"),
                            _link(app, f"/v2/payments/captures/{cid}", "up")]}
        custom = body.get("custom_id", cap.get("custom_id"))
        if custom is not None:
            refund["custom_id"] = custom
        for k in ("invoice_id", "note_to_payer"):
            if body.get(k) is not None:
                refund[k] = body[k]
        st["refunds"][rid] = refund
        cap["_refunded"] += minor
        cap["status"] = "REFUNDED" if cap["_refunded"] >= money.to_minor(cap["amount"]["value"], cur) \
            else "PARTIALLY_REFUNDED"
        cap["update_time"] = now
        order = st["orders"][cap["_order"]]
        event = _event(app, "PAYMENT.CAPTURE.REFUNDED", "refund", refund)
    _queue(app, [event], _ref(order))
    app.store.order_bump(PROVIDER, _ref(order), "refunds")
    app.store.order_bump(PROVIDER, _ref(order), "refunded_amount", minor)
    return 201, _public(refund), _minimal(refund)


def _get(app, name, oid):
    """GET an order, capture, authorization or refund."""
    kind, field = {"orders.get": ("orders", "order_id"), "captures.get": ("captures", "capture_id"),
                   "authorizations.get": ("authorizations", "authorization_id"),
                   "refunds.get": ("refunds", "refund_id")}[name]
    with app.store.lock:
        st = _state(app)
        obj = st[kind].get(oid)
        if obj is None:
            p = _not_found(field, oid)
            return _json(p.status, p.body)
        return _json(200, _show_order(st, obj) if kind == "orders" else _public(obj))


def _queue(app, events, ref):
    """Queue webhook events in the outbox."""
    for event in events:
        app.outbox.enqueue(PROVIDER, event, ref)


# --- webhooks -----------------------------------------------------------------------

SUMMARIES = {
    "CHECKOUT.ORDER.APPROVED": "An order has been approved by buyer",
    "PAYMENT.AUTHORIZATION.CREATED": "Payment authorization is created for {amount}",
    "PAYMENT.AUTHORIZATION.VOIDED": "A payment authorization was voided",
    "PAYMENT.CAPTURE.COMPLETED": "Payment completed for {amount}",
    "PAYMENT.CAPTURE.DENIED": "Payment denied for {amount}",
    "PAYMENT.CAPTURE.REFUNDED": "A {amount} capture payment was refunded",
}


def _event(app, event_type, resource_type, obj, event_id=None):
    """A webhook event with a snapshot of the resource."""
    eid = event_id or f"WH-{_pid(17)}-{_pid(17)}"
    resource = _public(obj)
    amount = resource.get("amount") or (resource.get("purchase_units") or [{}])[0].get("amount") or {}
    text = SUMMARIES[event_type].format(amount=f"{amount.get('value', '')} {amount.get('currency_code', '')}".strip())
    return {"id": eid, "event_version": "1.0", "create_time": _iso(), "resource_type": resource_type,
            "resource_version": "2.0", "event_type": event_type, "summary": text, "resource": resource,
            "links": [_link(app, f"/v1/notifications/webhooks-events/{eid}", "self"),
                      _link(app, f"/v1/notifications/webhooks-events/{eid}/resend", "resend", "POST")]}


def transmission_id(nonce):
    """A transmission id (a UUID, as PayPal's) that is a function of the nonce: the
    same nonce gives the same id (the replayed_nonce variant)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "paypal-transmission:" + nonce))


def render_webhook(app, event, ts, nonce, mode=None):
    """(headers, body) of one webhook request, signed unless mode says otherwise."""
    cfg = app.cfg
    if not cfg.paypal_webhook_id or cfg.paypal_signing_private_key is None or not cfg.paypal_cert_id:
        raise ValueError("paypal.webhook_id, signing_private_key and signing_cert must be configured")
    body = json.dumps(event, separators=(",", ":")).encode("utf-8")
    tid = transmission_id(nonce)
    when = _iso(ts)
    base = _base(app)
    if mode == "wrong_cert_url":
        # looks like PayPal's API host to a careless suffix or prefix check
        base = "https://api.sandbox.paypal.com.attacker.example"
    headers = {"Content-Type": "application/json", "User-Agent": "PayPal/AUHD-214.0-58243937",
               "PAYPAL-TRANSMISSION-ID": tid, "PAYPAL-TRANSMISSION-TIME": when,
               "PAYPAL-CERT-URL": f"{base}/v1/notifications/certs/{cfg.paypal_cert_id}",
               "PAYPAL-AUTH-ALGO": "SHA256withRSA", "PAYPAL-AUTH-VERSION": "v2",
               "Correlation-Id": _hex(13)}
    if mode != "unsigned":
        key = cfg.wrong_key() if mode == "wrong_key" else cfg.paypal_signing_private_key
        message = signing.paypal_signed_message(tid, when, cfg.paypal_webhook_id, body)
        headers["PAYPAL-TRANSMISSION-SIG"] = signing.rsa_sign_b64(key, message)
    return headers, body


def outbox_render(app, payloads):
    """One queued event per request, signed at send time (fresh transmission id and time)."""
    (event,) = payloads
    headers, body = render_webhook(app, event, int(time.time()), ids.alnum(32))
    return headers, body, [event["id"]]


def outbox_accepted(status, body):
    """PayPal counts any 2xx as delivered."""
    return status is not None and 200 <= status < 300


def control(app, action, body):
    """POST /control/paypal/<action>: (status, JSON)."""
    body = body or {}
    if action == "approve":
        status, problem = approve(app, str(body.get("id", "")), body.get("capture", "completed"))
        if problem:
            return status, {"error": problem}
        return 200, {"approved": body["id"]}
    if action == "expire_tokens":
        with app.store.lock:
            tokens = _state(app)["tokens"]
            for t in tokens:
                tokens[t] = 0
        return 200, {"expired": len(tokens)}
    return 404, {"error": f"no paypal control action {action}"}


class Callbacks:
    """PayPal webhooks sent by /control/send and `fake_psp.py send`."""

    provider = PROVIDER
    ALIASES = {"paid": "PAYMENT.CAPTURE.COMPLETED", "succeeded": "PAYMENT.CAPTURE.COMPLETED",
               "success": "PAYMENT.CAPTURE.COMPLETED", "failed": "PAYMENT.CAPTURE.DENIED",
               "denied": "PAYMENT.CAPTURE.DENIED", "refunded": "PAYMENT.CAPTURE.REFUNDED",
               "refund": "PAYMENT.CAPTURE.REFUNDED", "approved": "CHECKOUT.ORDER.APPROVED",
               "authorized": "PAYMENT.AUTHORIZATION.CREATED", "voided": "PAYMENT.AUTHORIZATION.VOIDED",
               "closed": "PAYMENT.AUTHORIZATION.VOIDED"}
    EVENTS = ("CHECKOUT.ORDER.APPROVED", "PAYMENT.AUTHORIZATION.CREATED", "PAYMENT.AUTHORIZATION.VOIDED",
              "PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.DENIED", "PAYMENT.CAPTURE.REFUNDED")
    OWN_VARIANTS = ("wrong_cert_url",)
    success_event = "PAYMENT.CAPTURE.COMPLETED"
    refund_event = "PAYMENT.CAPTURE.REFUNDED"
    nonce_is_event_id = False

    def event_name(self, name):
        """The native event type for an alias or native name."""
        name = self.ALIASES.get(name, name)
        if name not in self.EVENTS:
            raise ValueError(f"paypal events: {', '.join(self.EVENTS)} (or paid, failed, refunded, approved, "
                             "authorized, voided)")
        return name

    def build(self, app, p, event, event_id=None, update=True, mode=None):
        """The event for order p["ref"]; the fake's objects change only when `update`."""
        live = _state(app)
        with app.store.lock:
            st = live if update else copy.deepcopy(live)
            return self._build(app, st, p, event, event_id)

    def _build(self, app, st, p, event, event_id):
        """Find or make the order (and its authorization, capture, refund) the event is about."""
        cur = p["currency"].upper()
        found = st["by_ref"].get(p["ref"])
        order = st["orders"][found[-1]] if found else None
        intent = "AUTHORIZE" if event.startswith("PAYMENT.AUTHORIZATION") else "CAPTURE"
        if order is None:
            order = _new_order(app, intent, cur, p["amount"], p["ref"])
            if p.get("txn_id"):
                order["id"] = p["txn_id"]
            st["orders"][order["id"]] = order
            st["by_ref"].setdefault(p["ref"], []).append(order["id"])
        if order["status"] == "CREATED":
            _approve(order)
        if event == "CHECKOUT.ORDER.APPROVED":
            return _event(app, event, "checkout-order", order, event_id)
        return self._payment_event(app, st, order, p, event, event_id, cur)

    def _payment_event(self, app, st, order, p, event, event_id, cur):
        """Authorization, capture and refund events."""
        if event.startswith("PAYMENT.AUTHORIZATION"):
            auths = order["_payments"].get("authorizations")
            auth = st["authorizations"][auths[-1]] if auths else None
            if auth is None:
                auth = _new_authorization(app, st, order, p["amount"], cur)
                order["status"] = "COMPLETED"
            if event == "PAYMENT.AUTHORIZATION.VOIDED":
                auth["status"] = "VOIDED"
            return _event(app, event, "authorization", auth, event_id)
        caps = order["_payments"].get("captures")
        cap = st["captures"][caps[-1]] if caps else None
        if cap is None:
            order["_capture"] = "completed"
            cap = _new_capture(app, st, order, None, p["amount"], cur, True)[0]
            order["status"] = "COMPLETED"
        if event == "PAYMENT.CAPTURE.COMPLETED":
            cap["status"] = "COMPLETED"
            return _event(app, event, "capture", cap, event_id)
        if event == "PAYMENT.CAPTURE.DENIED":
            cap["status"] = "DECLINED"
            return _event(app, event, "capture", cap, event_id)
        minor = p.get("refund_amount") or p["amount"]
        rid = p.get("refund_id") or _pid()
        cap["_refunded"] += minor
        cap["status"] = "REFUNDED" if cap["_refunded"] >= money.to_minor(cap["amount"]["value"], cur) \
            else "PARTIALLY_REFUNDED"
        refund = {"id": rid, "status": "COMPLETED", "amount": _money(minor, cur), "create_time": _iso(),
                  "update_time": _iso(), "_capture": cap["id"],
                  "links": [_link(app, f"/v2/payments/refunds/{rid}", "self"),
                            _link(app, f"/v2/payments/captures/{cap['id']}", "up")]}
        if cap.get("custom_id") is not None:
            refund["custom_id"] = cap["custom_id"]
        st["refunds"][rid] = refund
        return _event(app, event, "refund", refund, event_id)

    def event_id(self, payload):
        """The event id (WH-...)."""
        return payload["id"]

    def render(self, app, payload, ts, nonce, mode=None):
        """(headers, body) of the webhook request."""
        return render_webhook(app, payload, ts, nonce, mode)

    def tamper(self, body):
        """Raise the first amount value by one minor unit after signing."""
        def bump(m):
            whole, _, frac = m.group(1).decode().partition(".")
            digits = str(int(whole + frac) + 1).rjust(len(whole + frac), "0")
            text = digits[:len(digits) - len(frac)] + ("." + digits[len(digits) - len(frac):] if frac else "")
            return b'"value":"' + text.encode() + b'"'
        out, n = re.subn(rb'"value":"([0-9.]+)"', bump, body, 1)
        return out if n else body[:-1] + b' }'
