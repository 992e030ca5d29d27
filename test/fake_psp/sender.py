"""Sending signed callbacks to pay (through pay-proxy's POST /callbacks/{gateway}),
with the variants a PSP or an attacker can produce.

Parameters (the JSON of POST /control/send and the flags of `fake_psp.py send`):
  provider      stripe | alipay | wechatpay | generic                 (required)
  gateway       gateway name in the URL (default: the provider)
  target        base URL of pay-proxy, e.g. http://127.0.0.1:8080      (or url)
  url           full URL, overrides target + /callbacks/{gateway}
  order_id      pay.orders.id (the merchant reference the PSP knows)  (required)
  amount        minor units                                           (required)
  currency      ISO 4217 (default CNY for alipay/wechatpay, USD otherwise)
  event         native name or alias paid | failed | refunded | closed (default paid)
  variant       none | duplicate | redeliver | out_of_order | tampered | wrong_key |
                stale | replayed_nonce | unsigned | wrong_serial (wechatpay) |
                wrong_apiv3_key (wechatpay)
  count         copies to send (none/duplicate/redeliver; default 1, duplicate/redeliver 2)
  concurrency   copies in flight at once, released together (default 1)
  txn_id, event_id, refund_amount, refund_id   override generated values
  age_s         how old a `stale` callback is (default 3600)
  timeout_s     per request (default 30); cafile / insecure for an https target
  dry_run       build the requests, send nothing

A callback fault rule (faults.py, target "callback") matching the callback's
URL path drops it (the PSP's state changes, nothing is sent: the result says
"dropped": true) or delays it.

Variants:
  duplicate       byte-identical copies (same headers, same body)
  redeliver       the same event (same id, same body) re-signed with a fresh
                  timestamp and nonce for every copy, as a PSP retries
  out_of_order    the given event first, then the payment success (for the
                  success event itself: a refund first, then the success)
  tampered        the body changed after signing (amount or summary)
  wrong_key       signed with an unrelated key / secret
  stale           signed correctly with a timestamp age_s in the past
  replayed_nonce  a valid callback, then a second, different one (another event)
                  reusing its nonce; Stripe and Alipay have no nonce besides the
                  event id (evt_... / notify_id), so there the second callback
                  reuses the first one's event id
  unsigned        no signature at all
  wrong_cert_url  (paypal) correctly signed, PAYPAL-CERT-URL on another host
  bad_item        (adyen) a second, forged item in the batch signed with another key
  duplicate_item  (adyen) the event's item twice in one batch

PayPal and Adyen (provider paypal | adyen) also send on their own after an API
call: see outbox.py.  Adyen takes `success` and `batch` (more items), see adyen.py."""

import http.client
import ssl
import threading
import time
import urllib.parse

import adyen
import alipay
import generic
import ids
import paypal
import stripe
import wechatpay

PROVIDERS = {"stripe": stripe.Callbacks(), "alipay": alipay.Callbacks(),
             "wechatpay": wechatpay.Callbacks(), "generic": generic.Callbacks()}
PROVIDERS.update(paypal=paypal.Callbacks(), adyen=adyen.Callbacks())
VARIANTS = ("none", "duplicate", "redeliver", "out_of_order", "tampered", "wrong_key", "stale",
            "replayed_nonce", "unsigned", "wrong_serial", "wrong_apiv3_key")
OWN_VARIANTS = ("wrong_cert_url", "bad_item", "duplicate_item")  # a provider's Callbacks.OWN_VARIANTS
VARIANTS += OWN_VARIANTS
MAX_COUNT = 10000
MAX_CONCURRENCY = 256
MAX_RESPONSE_BYTES = 1 << 20


class SendError(ValueError):
    """Unusable send parameters."""


def _int(p, name, default=None, lo=0, hi=None):
    """An integer parameter within [lo, hi]."""
    v = p.get(name, default)
    if v is None:
        return None
    if isinstance(v, str) and v.lstrip("-").isdigit():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        raise SendError(f"{name} must be an integer in [{lo}, {hi if hi is not None else 'inf'}]")
    return v


def normalize(params):
    """Checked and completed send parameters."""
    if not isinstance(params, dict):
        raise SendError("send parameters must be a JSON object")
    p = dict(params)
    if p.get("provider") not in PROVIDERS:
        raise SendError(f"provider must be one of {', '.join(PROVIDERS)}")
    if p.get("order_id") in (None, ""):
        raise SendError("order_id is required")
    p["ref"] = str(p.get("ref") or p["order_id"])
    p["amount"] = _int(p, "amount", lo=0, hi=10 ** 15)
    if p["amount"] is None:
        raise SendError("amount (minor units) is required")
    p.setdefault("currency", "CNY" if p["provider"] in ("alipay", "wechatpay") else "USD")
    if not isinstance(p["currency"], str) or len(p["currency"]) != 3 or not p["currency"].isalpha():
        raise SendError("currency must be a 3-letter code")
    p["variant"] = p.get("variant") or "none"
    if p["variant"] not in VARIANTS:
        raise SendError(f"variant must be one of {', '.join(VARIANTS)}")
    if p["variant"] in ("wrong_serial", "wrong_apiv3_key") and p["provider"] != "wechatpay":
        raise SendError(f"variant {p['variant']} is for wechatpay only")
    cb = PROVIDERS[p["provider"]]
    if p["variant"] in OWN_VARIANTS and p["variant"] not in getattr(cb, "OWN_VARIANTS", ()):
        raise SendError(f"variant {p['variant']} is not one of {p['provider']}'s")
    try:
        p["event"] = cb.event_name(p.get("event") or "paid")
    except ValueError as e:
        raise SendError(str(e)) from None
    p["count"] = _int(p, "count", 2 if p["variant"] in ("duplicate", "redeliver") else 1, 1, MAX_COUNT)
    p["concurrency"] = _int(p, "concurrency", 1, 1, MAX_CONCURRENCY)
    p["refund_amount"] = _int(p, "refund_amount", None, 1, 10 ** 15)
    p["age_s"] = _int(p, "age_s", 3600, 0, 10 ** 9)
    p["timeout_s"] = _int(p, "timeout_s", 30, 1, 3600)
    p["gateway"] = p.get("gateway") or p["provider"]
    if not p.get("dry_run"):
        if not p.get("url"):
            if not p.get("target"):
                raise SendError("target (pay-proxy base URL) or url is required")
            p["url"] = p["target"].rstrip("/") + "/callbacks/" + urllib.parse.quote(p["gateway"], safe="")
        if urllib.parse.urlsplit(p["url"]).scheme not in ("http", "https"):
            raise SendError("url must be http:// or https://")
    return p


def plan(app, p):
    """The requests to send: a list of steps run one after another, each a list of
    requests sent concurrently.  A request: {event, event_id, headers, body}."""
    cb = PROVIDERS[p["provider"]]
    variant, event = p["variant"], p["event"]
    now = int(time.time())
    state_changes = variant in ("none", "duplicate", "redeliver", "out_of_order", "replayed_nonce")

    def build(ev, event_id=None, mode=None, update=state_changes):
        eid = event_id or (p.get("event_id") if ev == event else None)
        return ev, cb.build(app, p, ev, eid, update, mode)

    def render(built, ts=now, nonce=None, mode=None):
        ev, payload = built
        headers, body = cb.render(app, payload, ts, nonce or ids.alnum(32), mode)
        return {"event": ev, "event_id": cb.event_id(payload), "headers": headers, "body": body}

    other = cb.refund_event if event == cb.success_event else cb.success_event
    if variant in ("none", "duplicate"):
        r = render(build(event))
        return [[r] * p["count"]]
    if variant == "redeliver":
        built = build(event)  # each copy re-signed: a fresh nonce and an earlier-or-equal time
        n = p["count"]
        return [[render(built, ts=now - (n - 1 - i) % 60) for i in range(n)]]
    if variant == "out_of_order":
        return [[render(build(other if event == cb.success_event else event))],
                [render(build(cb.success_event))]]
    if variant == "tampered":
        r = render(build(event, update=False))
        r["body"] = cb.tamper(r["body"])
        return [[r]]
    if variant in OWN_VARIANTS:
        return [[render(build(event, mode=variant, update=False), mode=variant)]]
    if variant in ("wrong_key", "unsigned", "wrong_serial"):
        return [[render(build(event, update=False), mode=variant)]]
    if variant == "wrong_apiv3_key":
        return [[render(build(event, mode=variant, update=False))]]
    if variant == "stale":
        return [[render(build(event, update=False), ts=now - p["age_s"])]]
    # replayed_nonce
    nonce = ids.alnum(32)
    first = build(event)
    second = build(other, event_id=cb.event_id(first[1]) if cb.nonce_is_event_id else None, update=False)
    return [[render(first, nonce=nonce)], [render(second, nonce=nonce)]]


def _context(p):
    """The TLS client context for an https target."""
    ctx = ssl.create_default_context(cafile=p.get("cafile"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if p.get("insecure"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _post(app, p, req):
    """POST one request, unless a callback fault rule drops it; its result."""
    u = urllib.parse.urlsplit(p["url"])
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    t0 = time.monotonic()
    res = {"event": req["event"], "event_id": req["event_id"], "status": None, "body": None, "error": None}
    rule = app.faults.take("POST", u.path or "/", target="callback")
    if rule is not None:
        res["fault"] = f"{rule.mode}#{rule.id}"
        if rule.mode == "drop":
            # the PSP's state has changed (plan() built the event); pay never hears of it
            with app.store.lock:
                app.store.counters["callbacks dropped"] += 1
            res.update(dropped=True, elapsed_ms=0.0)
            return res
        app.stopping.wait(rule.delay_ms / 1000.0)
    try:
        if u.scheme == "https":
            conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=p["timeout_s"], context=_context(p))
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=p["timeout_s"])
        try:
            conn.request("POST", path, body=req["body"], headers=req["headers"])
            resp = conn.getresponse()
            data = resp.read(MAX_RESPONSE_BYTES)
            res.update(status=resp.status, body=data.decode("utf-8", "replace"),
                       content_type=resp.getheader("Content-Type"))
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
    res["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 2)
    return res


def _run_step(app, p, step):
    """Send a step's requests with up to `concurrency` in flight, released together."""
    n = min(p["concurrency"], len(step))
    results = [None] * len(step)
    if n <= 1:
        return [_post(app, p, r) for r in step]
    barrier = threading.Barrier(n)
    lock = threading.Lock()
    cursor = [0]

    def worker():
        try:
            barrier.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        while True:
            with lock:
                i = cursor[0]
                cursor[0] += 1
            if i >= len(step):
                return
            results[i] = _post(app, p, step[i])

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _shown(req):
    """A request as the send answer shows it."""
    return {"event": req["event"], "event_id": req["event_id"], "headers": req["headers"],
            "body": req["body"].decode("utf-8", "replace")}


def send(app, params):
    """Build and send callbacks; the JSON-able result."""
    p = normalize(params)
    steps = plan(app, p)
    unique, seen = [], set()
    for step in steps:
        for r in step:
            if id(r) not in seen:
                seen.add(id(r))
                unique.append(_shown(r))
    out = {"provider": p["provider"], "gateway": p["gateway"], "url": p.get("url"), "event": p["event"],
           "variant": p["variant"], "requests": unique}
    if p.get("dry_run"):
        out["results"] = []
        return out
    results = []
    for step in steps:
        results.extend(_run_step(app, p, step))
    out["results"] = results
    out["sent"] = len(results)
    return out
