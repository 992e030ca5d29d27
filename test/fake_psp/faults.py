"""Fault injection rules, matched by path prefix (and optionally method).

A rule: {"path": "/v1/", "method": "POST", "mode": "status", "status": 500,
"count": 2, "after": false, ...}.  Modes:
  slow       wait delay_ms, then answer normally
  status     answer `status` (optional body, content_type, retry_after)
  reset      close the socket without answering (TCP RST)
  hang       never answer; hold the connection until the client closes it
             (or max_ms, default 600000, or server shutdown)
  malformed  kind "garbage" (bytes that are not HTTP), "truncated" (a valid
             head, Content-Length larger than the bytes sent, then close) or
             "bad_json" (200 with a JSON body cut in the middle)
`count` (optional) makes the rule expire after that many hits.  `after`: true
handles the request first (its effect happens) and then misbehaves instead of
sending the answer — the "applied, but the answer was lost" case.

`target` says what a rule applies to: "request" (default) the requests the
fake receives, "callback" the callbacks it sends to pay (POST /control/send),
matched by the path of the callback's URL (e.g. "/callbacks/alipay_main").
Callback modes:
  drop       the callback is not sent: the PSP's state changed (the trade is
             paid there) but pay never hears of it
  slow       wait delay_ms, then send

Besides the rules, `latency_ms` (0 to 60000; the configuration's
`latency_ms`, default 0) delays every answer to a request the fake receives
(the control API excepted), faulted or not."""

import threading

MODES = ("slow", "status", "reset", "hang", "malformed")
CALLBACK_MODES = ("drop", "slow")
TARGETS = ("request", "callback")
MAX_LATENCY_MS = 60000
MALFORMED_KINDS = ("garbage", "truncated", "bad_json")


class FaultError(ValueError):
    """An invalid rule."""


class Rule:
    """One fault rule."""

    def __init__(self, rid, spec):
        if not isinstance(spec, dict):
            raise FaultError("a rule must be a JSON object")
        unknown = set(spec) - {"path", "method", "mode", "status", "delay_ms", "count", "after",
                               "body", "content_type", "retry_after", "max_ms", "kind", "target"}
        if unknown:
            raise FaultError(f"unknown rule field(s): {', '.join(sorted(unknown))}")
        self.id = rid
        self.target = spec.get("target", "request")
        if self.target not in TARGETS:
            raise FaultError(f"target must be one of {', '.join(TARGETS)}")
        self.path = spec.get("path", "/")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise FaultError("path must be a path prefix starting with /")
        if self.path.startswith("/control") and self.target == "request":
            raise FaultError("the control API cannot be faulted")
        self.method = spec.get("method")
        if self.method is not None and not isinstance(self.method, str):
            raise FaultError("method must be a string")
        self.mode = spec.get("mode")
        modes = CALLBACK_MODES if self.target == "callback" else MODES
        if self.mode not in modes:
            raise FaultError(f"mode of a {self.target} rule must be one of {', '.join(modes)}")
        self.status = spec.get("status")
        if self.mode == "status" and not (isinstance(self.status, int) and 100 <= self.status <= 599):
            raise FaultError("mode status needs an integer status 100..599")
        self.delay_ms = spec.get("delay_ms", 0)
        if not isinstance(self.delay_ms, int) or self.delay_ms < 0 or self.delay_ms > 600000:
            raise FaultError("delay_ms must be an integer 0..600000")
        if self.mode == "slow" and "delay_ms" not in spec:
            raise FaultError("mode slow needs delay_ms")
        self.count = spec.get("count")
        if self.count is not None and (not isinstance(self.count, int) or self.count < 1):
            raise FaultError("count must be a positive integer")
        self.remaining = self.count
        self.after = bool(spec.get("after", False))
        if self.after and self.target == "callback":
            raise FaultError("after is for request rules")
        self.body = spec.get("body")
        if self.body is not None and not isinstance(self.body, str):
            raise FaultError("body must be a string")
        self.content_type = spec.get("content_type", "application/json")
        self.retry_after = spec.get("retry_after")
        self.max_ms = spec.get("max_ms", 600000)
        if not isinstance(self.max_ms, int) or self.max_ms < 1:
            raise FaultError("max_ms must be a positive integer")
        self.kind = spec.get("kind", "garbage")
        if self.mode == "malformed" and self.kind not in MALFORMED_KINDS:
            raise FaultError(f"kind must be one of {', '.join(MALFORMED_KINDS)}")
        self.hits = 0

    def matches(self, method, path, target="request"):
        """Whether this rule applies to a request (or, target "callback", a callback sent)."""
        return (target == self.target and path.startswith(self.path)
                and (self.method is None or self.method.upper() == method)
                and (self.remaining is None or self.remaining > 0))

    def to_json(self):
        """The rule as the control API shows it."""
        d = {"id": self.id, "target": self.target, "path": self.path, "method": self.method, "mode": self.mode,
             "count": self.count, "remaining": self.remaining, "hits": self.hits, "after": self.after}
        if self.mode == "status":
            d.update(status=self.status, body=self.body, retry_after=self.retry_after)
        if self.mode == "slow":
            d["delay_ms"] = self.delay_ms
        if self.mode == "hang":
            d["max_ms"] = self.max_ms
        if self.mode == "malformed":
            d["kind"] = self.kind
        return d


class Faults:
    """The active rules, first match wins."""

    def __init__(self, latency_ms=0):
        self.lock = threading.Lock()
        self.rules = []
        self.next_id = 1
        self.default_latency_ms = check_latency(latency_ms)
        self.latency_ms = self.default_latency_ms

    def add(self, payload):
        """Add rules from a control request: a rule, a list of rules or {"rules": [...], "replace": bool};
        {"latency_ms": n} (alone or beside "rules") sets the latency of every answer."""
        replace = False
        if isinstance(payload, dict) and "latency_ms" in payload:
            latency = check_latency(payload["latency_ms"])
            unknown = set(payload) - {"latency_ms", "rules", "replace"}
            if unknown:
                raise FaultError(f"unknown field(s) beside latency_ms: {', '.join(sorted(unknown))}")
            if "rules" not in payload:
                self.latency_ms = latency
                return []
            added = self.add({"rules": payload["rules"], "replace": payload.get("replace", False)})
            self.latency_ms = latency
            return added
        if isinstance(payload, dict) and "rules" in payload:
            replace = bool(payload.get("replace", False))
            specs = payload["rules"]
        elif isinstance(payload, list):
            specs = payload
        else:
            specs = [payload]
        if not isinstance(specs, list):
            raise FaultError("rules must be a list")
        with self.lock:
            rules = [Rule(self.next_id + i, s) for i, s in enumerate(specs)]
            self.next_id += len(rules)
            if replace:
                self.rules = []
            self.rules.extend(rules)
            return [r.to_json() for r in rules]

    def clear(self):
        """Remove every rule; the latency goes back to the configured one."""
        with self.lock:
            self.rules = []
            self.latency_ms = self.default_latency_ms

    def take(self, method, path, target="request"):
        """The first rule that applies to this request (or callback), with one use consumed, or None."""
        if not self.rules:
            return None
        with self.lock:
            for r in self.rules:
                if r.matches(method, path, target):
                    r.hits += 1
                    if r.remaining is not None:
                        r.remaining -= 1
                    return r
        return None

    def to_json(self):
        """All rules, expired ones included (remaining 0)."""
        with self.lock:
            return [r.to_json() for r in self.rules]


def check_latency(value):
    """A latency in milliseconds, 0 to MAX_LATENCY_MS; raises FaultError."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > MAX_LATENCY_MS:
        raise FaultError(f"latency_ms must be an integer 0..{MAX_LATENCY_MS}")
    return value
