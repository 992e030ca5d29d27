"""Notifications a PSP sends on its own after the API call that caused them
(PayPal webhooks, Adyen standard notifications, Stripe webhooks) or after a
buyer's payment (the generic scheme's callbacks): queued, delivered in the
background to the target registered for the provider (pay-proxy's
POST /callbacks/{gateway}), retried until accepted, every attempt recorded.

A provider module that queues here provides `outbox_render(app, payloads)`
-> (headers, body, event ids), `outbox_accepted(status, body)` and
`OUTBOX_BATCH` (whether several queued payloads go out in one request).

Settings per provider (POST /control/outbox): target (base URL) and gateway,
or url; delay_ms before the first attempt (default 50); retry_ms, the waits
before the following attempts (default [500, 1000, 2000, 4000]); max_attempts
(default len(retry_ms) + 1); batch_max (default 10, batching providers only);
paused (queue but do not send); timeout_s, cafile, insecure.  Without a
target, notifications wait in the queue.  Settings survive /control/reset;
the queue and the deliveries do not (they live in the store's state)."""

import threading
import time
import urllib.parse

DEFAULTS = {"delay_ms": 50, "retry_ms": [500, 1000, 2000, 4000], "batch_max": 10, "paused": False,
            "timeout_s": 10}
SETTING_FIELDS = ("provider", "target", "gateway", "url", "delay_ms", "retry_ms", "max_attempts",
                  "batch_max", "paused", "timeout_s", "cafile", "insecure")
MAX_DELIVERIES = 10000


class OutboxError(ValueError):
    """Unusable outbox settings."""


class Outbox:
    """The queue of one fake PSP and its delivery thread."""

    def __init__(self, app, providers):
        self.app = app
        self.providers = providers  # name -> module with outbox_render / outbox_accepted / OUTBOX_BATCH
        self.settings = {}
        self.cond = threading.Condition(app.store.lock)
        self.thread = None

    # --- settings ---------------------------------------------------------------

    def configure(self, spec):
        """Set a provider's delivery settings; returns them."""
        if not isinstance(spec, dict):
            raise OutboxError("outbox settings must be a JSON object")
        unknown = set(spec) - set(SETTING_FIELDS)
        if unknown:
            raise OutboxError(f"unknown outbox field(s): {', '.join(sorted(unknown))}")
        provider = spec.get("provider")
        if provider not in self.providers:
            raise OutboxError(f"provider must be one of {', '.join(sorted(self.providers))}")
        s = dict(DEFAULTS, **self.settings.get(provider, {}))
        s.update({k: v for k, v in spec.items() if k != "provider"})
        if spec.get("target") or spec.get("gateway"):
            if not s.get("target"):
                raise OutboxError("gateway needs target")
            s["url"] = s["target"].rstrip("/") + "/callbacks/" + urllib.parse.quote(s.get("gateway") or provider, safe="")
        if s.get("url") and urllib.parse.urlsplit(s["url"]).scheme not in ("http", "https"):
            raise OutboxError("url must be http:// or https://")
        for name in ("delay_ms", "batch_max", "timeout_s"):
            if not isinstance(s[name], int) or isinstance(s[name], bool) or s[name] < (0 if name == "delay_ms" else 1):
                raise OutboxError(f"{name} must be a non-negative integer" if name == "delay_ms"
                                  else f"{name} must be a positive integer")
        if not isinstance(s["retry_ms"], list) or not all(isinstance(v, int) and v >= 0 for v in s["retry_ms"]):
            raise OutboxError("retry_ms must be a list of non-negative integers")
        s.setdefault("max_attempts", len(s["retry_ms"]) + 1)
        if "max_attempts" not in spec and "retry_ms" in spec:
            s["max_attempts"] = len(s["retry_ms"]) + 1
        if not isinstance(s["max_attempts"], int) or s["max_attempts"] < 1:
            raise OutboxError("max_attempts must be a positive integer")
        with self.cond:
            self.settings[provider] = s
            self._start()
            self.cond.notify_all()
        return dict(s, provider=provider)

    # --- queue --------------------------------------------------------------------

    def _box(self):
        """The queue and deliveries (in the store's state: forgotten by a reset)."""
        box = self.app.store.state["outbox"]
        if not box:
            box.update(pending=[], deliveries=[], seq=0)
        return box

    def enqueue(self, provider, payload, ref=None):
        """Queue one notification payload (a PayPal event, an Adyen item)."""
        delay = self.settings.get(provider, DEFAULTS)["delay_ms"]
        with self.cond:
            self._box()["pending"].append({"provider": provider, "payload": payload, "ref": ref,
                                           "queued_at": round(time.time(), 6),
                                           "due": time.monotonic() + delay / 1000.0})
            self._start()
            self.cond.notify_all()

    def _start(self):
        """Start the delivery thread once (called with the lock held)."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="fake-psp-outbox", daemon=True)
            self.thread.start()

    def _take(self, now, provider=None, force=False):
        """Deliveries to attempt now (marked in flight); called with the lock held."""
        box = self._box()
        out = []
        for d in box["deliveries"]:
            if d["state"] == "waiting" and (force and (provider is None or d["provider"] == provider)
                                            or (not force and d["next_at"] <= now)):
                if self._sendable(d["provider"], force):
                    d["state"] = "in_flight"
                    out.append(d)
        keep = []
        groups = {}
        for e in box["pending"]:
            p = e["provider"]
            ready = (force and (provider is None or p == provider)) or (not force and e["due"] <= now)
            if not ready or not self._sendable(p, force):
                keep.append(e)
                continue
            batch = groups.get(p)
            limit = self.settings[p]["batch_max"] if getattr(self.providers[p], "OUTBOX_BATCH", False) else 1
            if batch is None or len(batch["entries"]) >= limit:
                box["seq"] += 1
                batch = {"id": box["seq"], "provider": p, "entries": [], "attempts": [], "state": "in_flight",
                         "accepted": False, "next_at": None, "url": self.settings[p]["url"]}
                groups[p] = batch
                box["deliveries"].append(batch)
                out.append(batch)
            batch["entries"].append(e)
        box["pending"] = keep
        if len(box["deliveries"]) > MAX_DELIVERIES:
            del box["deliveries"][:len(box["deliveries"]) - MAX_DELIVERIES]
        return out

    def _sendable(self, provider, force):
        """Whether a provider has a target (and, unless forced, is not paused)."""
        s = self.settings.get(provider)
        return bool(s and s.get("url") and (force or not s.get("paused")))

    def _attempt(self, d):
        """One delivery attempt (without the lock), then its bookkeeping."""
        import sender  # here: sender imports the provider modules
        mod = self.providers[d["provider"]]
        s = self.settings[d["provider"]]
        headers, body, event_ids = mod.outbox_render(self.app, [e["payload"] for e in d["entries"]])
        # (through the callback fault rules too: a notification can be dropped or delayed)
        res = sender._post(self.app,
                           {"url": d["url"], "timeout_s": s["timeout_s"], "cafile": s.get("cafile"),
                            "insecure": s.get("insecure")},
                           {"event": d["provider"], "event_id": ",".join(event_ids), "headers": headers, "body": body})
        accepted = res["error"] is None and mod.outbox_accepted(res["status"], res["body"])
        with self.cond:
            d["event_ids"] = event_ids
            d["attempts"].append({"at": round(time.time(), 6), "status": res["status"], "body": res["body"],
                                  "error": res["error"], "accepted": accepted, "elapsed_ms": res["elapsed_ms"],
                                  "request": {"headers": headers, "body": body.decode("utf-8", "replace")}})
            d["accepted"] = accepted
            n = len(d["attempts"])
            if accepted:
                d["state"], d["next_at"] = "accepted", None
            elif n >= s["max_attempts"]:
                d["state"], d["next_at"] = "failed", None
            else:
                wait = s["retry_ms"][min(n - 1, len(s["retry_ms"]) - 1)] if s["retry_ms"] else 0
                d["state"], d["next_at"] = "waiting", time.monotonic() + wait / 1000.0
            self.cond.notify_all()
        return d

    def _run(self):
        """The delivery thread: attempt what is due, sleep until the next due time."""
        stopping = self.app.stopping
        while not stopping.is_set():
            with self.cond:
                now = time.monotonic()
                due = self._take(now)
                if not due:
                    self.cond.wait(timeout=min(0.5, max(0.005, self._next_due(now) - now)))
                    continue
            for d in due:
                self._attempt(d)

    def _next_due(self, now):
        """The monotonic time of the next thing to do (lock held)."""
        box = self._box()
        times = [e["due"] for e in box["pending"] if self._sendable(e["provider"], False)]
        times += [d["next_at"] for d in box["deliveries"] if d["state"] == "waiting"]
        return min(times) if times else now + 0.5

    # --- control ------------------------------------------------------------------

    def flush(self, provider=None):
        """Attempt every queued notification and waiting retry now (paused or not); the attempts."""
        with self.cond:
            due = self._take(time.monotonic(), provider, force=True)
        return [self._shown(self._attempt(d)) for d in due]

    def wait_idle(self, timeout_s):
        """Wait until nothing sendable is queued or in flight (or timeout); True when idle."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while True:
                box = self._box()
                busy = any(self._sendable(e["provider"], False) for e in box["pending"]) or \
                    any(d["state"] in ("in_flight", "waiting") for d in box["deliveries"])
                left = deadline - time.monotonic()
                if not busy or left <= 0:
                    return not busy
                self.cond.wait(timeout=min(left, 0.1))

    def _shown(self, d):
        """A delivery as the control API shows it."""
        return {"id": d["id"], "provider": d["provider"], "url": d["url"], "state": d["state"],
                "accepted": d["accepted"], "event_ids": d.get("event_ids", []),
                "refs": [e["ref"] for e in d["entries"]], "attempts": list(d["attempts"])}

    def snapshot(self):
        """Settings, the queue and the deliveries."""
        with self.cond:
            box = self._box()
            return {"settings": {p: dict(s) for p, s in self.settings.items()},
                    "pending": [{"provider": e["provider"], "ref": e["ref"], "queued_at": e["queued_at"],
                                 "payload": e["payload"]} for e in box["pending"]],
                    "deliveries": [self._shown(d) for d in box["deliveries"]]}
