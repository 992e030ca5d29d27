"""The control API under /control/ (never recorded, never faulted).

  GET    /control/health            {"status":"ok", "base_url", "fast"}
  GET    /control/requests          recorded requests (?since=<seq>&path=<prefix>&limit=<n>) and counters
  GET    /control/effects           effects per idempotency key / event id, per-order tallies, totals (?prefix=)
  GET    /control/faults            the fault rules (with hits and remaining counts) and latency_ms
  POST   /control/faults            add rule(s): a rule, a list, or {"rules": [...], "replace": true};
                                    {"latency_ms": n} (alone or beside "rules") delays every answer
  DELETE /control/faults            remove every rule, latency back to the configured one
  POST   /control/reset             forget requests, effects, PSP objects, nonces; clear faults
                                    (body {"faults": false} keeps the rules)
  POST   /control/send              send signed callbacks to pay (see sender.py); answers what came back
  POST   /control/pay               mark an order paid at the PSP without sending anything:
                                    {"provider", "order_id", "amount", "currency", "txn_id"}
  POST   /control/merchants         add or replace a merchant of the notify sink: {"code", "api_secret"}
  GET    /control/state             the fake PSP's objects (payment intents, trades, refunds)
  GET    /control/outbox            notifications queued and delivered (PayPal, Adyen: see outbox.py)
  POST   /control/outbox            delivery settings of a provider: {"provider", "target", "gateway", ...}
  POST   /control/outbox/flush      attempt every queued notification now: {"provider"} optional
  GET    /control/outbox/wait       wait until nothing is queued or in flight (?timeout_s=)
  POST   /control/paypal/approve    the buyer approves an order: {"id", "capture": completed|pending|denied}
  POST   /control/paypal/expire_tokens   every issued OAuth token expires
  POST   /control/generic/pay       the buyer pays (or fails) a generic payment: {"order_id", "status", "notify"}
  POST   /control/generic/settle_refund  a pending generic refund ends: {"psp_refund_id", "status"}
  POST   /control/generic/settings  {"refund_status": "succeeded" | "pending" | "failed"}: how refunds answer"""

import json

import faults as faults_mod
import generic_api
import outbox as outbox_mod
import paypal
import sender
import server


def _body(req):
    """The request's JSON body (None when empty); raises ValueError."""
    if not req.body.strip():
        return None
    return json.loads(req.body.decode("utf-8"))


def _bad(message):
    """A 400 answer."""
    return server.json_response(400, {"error": message})


def _jsonable(o):
    """json.dumps fallback for bytes and sets."""
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    if isinstance(o, set):
        return sorted(o)
    raise TypeError(type(o).__name__)


def handle(app, req):
    """Answer one control request."""
    path, method = req.path.rstrip("/"), req.method
    q = req.query_params()
    try:
        body = _body(req) if method in ("POST", "PUT") else None
    except (ValueError, UnicodeDecodeError):
        return _bad("body must be JSON")
    if path == "/control/health" and method == "GET":
        return server.json_response(200, {"status": "ok", "base_url": app.base_url, "fast": app.store.fast})
    if path == "/control/requests" and method == "GET":
        try:
            since = int(q.get("since", "0"))
            limit = int(q["limit"]) if "limit" in q else None
        except ValueError:
            return _bad("since and limit must be integers")
        return server.json_response(200, app.store.snapshot_requests(since, q.get("path"), limit))
    if path == "/control/effects" and method == "GET":
        return server.json_response(200, app.store.snapshot_effects(q.get("prefix")))
    if path == "/control/faults":
        if method == "GET":
            return server.json_response(200, {"rules": app.faults.to_json(), "latency_ms": app.faults.latency_ms})
        if method == "DELETE":
            app.faults.clear()
            return server.json_response(200, {"rules": [], "latency_ms": app.faults.latency_ms})
        if method == "POST":
            if body is None:
                return _bad("a rule is required")
            try:
                added = app.faults.add(body)
            except faults_mod.FaultError as e:
                return _bad(str(e))
            return server.json_response(200, {"added": added, "rules": app.faults.to_json(),
                                              "latency_ms": app.faults.latency_ms})
    if path == "/control/reset" and method == "POST":
        app.store.reset()
        if not (isinstance(body, dict) and body.get("faults") is False):
            app.faults.clear()
        return server.json_response(200, {"reset": True})
    if path == "/control/send" and method == "POST":
        try:
            return server.json_response(200, sender.send(app, body))
        except sender.SendError as e:
            return _bad(str(e))
        except ValueError as e:  # e.g. a provider that is not configured
            return _bad(str(e))
    if path == "/control/pay" and method == "POST":
        try:
            p = sender.normalize(dict(body or {}, dry_run=True, event="paid"))
            cb = sender.PROVIDERS[p["provider"]]
            payload = cb.build(app, p, p["event"], None, True, None)
        except (sender.SendError, ValueError) as e:
            return _bad(str(e))
        return server.json_response(200, {"paid": True, "provider": p["provider"], "order_id": p["ref"],
                                          "event": payload})
    if path == "/control/merchants" and method == "POST":
        if not isinstance(body, dict) or not isinstance(body.get("code"), str) or not body.get("code") \
                or not isinstance(body.get("api_secret"), str) or not body.get("api_secret"):
            return _bad("code and api_secret (strings) are required")
        app.merchants[body["code"]] = {"api_secret": body["api_secret"]}
        return server.json_response(200, {"merchants": sorted(app.merchants)})
    if path.startswith("/control/outbox"):
        return _outbox(app, path, method, body, q)
    if path.startswith("/control/generic/") and method == "POST":
        status, out = generic_api.control(app, path.rsplit("/", 1)[1], body)
        return server.json_response(status, out)
    if path.startswith("/control/paypal/") and method == "POST":
        status, out = paypal.control(app, path.rsplit("/", 1)[1], body)
        return server.json_response(status, out)
    if path == "/control/state" and method == "GET":
        with app.store.lock:
            text = json.dumps(app.store.state, default=_jsonable, ensure_ascii=False)
        return server.Response(200, text, "application/json")
    return server.json_response(404, {"error": f"no control route {method} {req.path}"})


def _outbox(app, path, method, body, q):
    """/control/outbox: GET the queue and deliveries, POST settings for a provider;
    POST /control/outbox/flush {"provider"?} attempts everything queued now;
    GET /control/outbox/wait?timeout_s= waits until nothing is queued or in flight."""
    try:
        if path == "/control/outbox" and method == "GET":
            return server.json_response(200, app.outbox.snapshot())
        if path == "/control/outbox" and method == "POST":
            return server.json_response(200, {"settings": app.outbox.configure(body)})
        if path == "/control/outbox/flush" and method == "POST":
            return server.json_response(200, {"deliveries": app.outbox.flush((body or {}).get("provider"))})
        if path == "/control/outbox/wait" and method == "GET":
            idle = app.outbox.wait_idle(float(q.get("timeout_s", "10")))
            return server.json_response(200 if idle else 504, {"idle": idle})
    except (outbox_mod.OutboxError, ValueError) as e:
        return _bad(str(e))
    return server.json_response(404, {"error": f"no control route {method} {path}"})
