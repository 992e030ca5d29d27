"""The merchant notify sink: POST /merchant/{code}/notify receives the
notifications pay sends to merchants (doc/api.md "Callbacks", last paragraph).

Form-encoded; `sign` = hex HMAC-SHA256 over the canonical string of the other
fields (sign and sign_type excluded) with that merchant's api_secret;
`timestamp` (unix seconds) within merchant_tolerance_s; `nonce` never reused
within the window.  The event id is the `event_id` field (else `notify_id`,
else `id`).  Answers 200 `success`; a repeated event id is acknowledged again
and counted as a request without effect (a conflict if its content differs).
Rejections: 4xx with a text body `fail: <reason>`."""

import re
import time
import urllib.parse

import server
import signing

ROUTE = re.compile(r"^/merchant/([^/]+)/notify$")
EVENT_ID_FIELDS = ("event_id", "notify_id", "id")
ORDER_FIELDS = ("order_id", "id", "out_trade_no")


def _fail(status, reason):
    """A rejection: text `fail: reason`."""
    return server.Response(status, f"fail: {reason}", "text/plain; charset=utf-8")


def handle(app, req):
    """Route /merchant/...; None if the path is not the sink's."""
    if not req.path.startswith("/merchant/"):
        return None
    route = "merchant.notify"
    m = ROUTE.match(req.path)
    if not m:
        return route, _fail(404, "no such path"), "no_route"
    code = m.group(1)
    if req.method != "POST":
        return route, _fail(405, "POST only"), "bad_method"
    merchant = app.merchants.get(code)
    if merchant is None:
        return route, _fail(404, f"unknown merchant {code}"), "unknown_merchant"
    if req.content_type() != "application/x-www-form-urlencoded":
        return route, _fail(415, "expected application/x-www-form-urlencoded"), "bad_content_type"
    try:
        pairs = urllib.parse.parse_qsl(req.body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return route, _fail(400, "body is not a form"), "bad_body"
    params = dict(pairs)
    if len(params) != len(pairs):
        return route, _fail(400, "repeated field"), "bad_body"
    if not params.get("sign"):
        return route, _fail(401, "missing sign"), "no_signature"
    expected = signing.hmac_sha256_hex(merchant["api_secret"], signing.canonical_query(params))
    if not signing.hex_equal(expected, params["sign"]):
        return route, _fail(401, "bad signature"), "bad_signature"
    ts = params.get("timestamp", "")
    if not ts.isdigit():
        return route, _fail(400, "missing or bad timestamp"), "bad_timestamp"
    tol = app.cfg.merchant_tolerance_s
    if tol and abs(time.time() - int(ts)) > tol:
        return route, _fail(401, "stale timestamp"), "stale_timestamp"
    nonce = params.get("nonce")
    if not nonce:
        return route, _fail(400, "missing nonce"), "no_nonce"
    if not app.store.nonce_fresh(f"merchant:{code}", nonce, max(2 * tol, 600)):
        return route, _fail(401, "nonce reused"), "replayed_nonce"
    event_id = next((params[f] for f in EVENT_ID_FIELDS if params.get(f)), None)
    if event_id is None:
        return route, _fail(400, "missing event_id"), "no_event_id"
    fingerprint = signing.canonical_query(params, ("sign", "sign_type", "timestamp", "nonce"))
    key = f"merchant:{code}:{event_id}"
    seen = app.store.state["merchant_events"]
    with app.store.key_lock(key):
        first = seen.get(key)
        if first is None:
            seen[key] = fingerprint
            app.store.effect(key, True)
            order = next((params[f] for f in ORDER_FIELDS if params.get(f)), "?")
            app.store.order_bump("merchant", f"{code}:{order}", "notified_" + params.get("status", "unknown"))
            verdict = "ok"
        else:
            app.store.effect(key, False, conflict=first != fingerprint)
            verdict = "duplicate" if first == fingerprint else "duplicate_conflict"
    return route, server.Response(200, "success", "text/plain; charset=utf-8"), verdict
