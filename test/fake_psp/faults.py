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
sending the answer — the "applied, but the answer was lost" case."""

import threading

MODES = ("slow", "status", "reset", "hang", "malformed")
MALFORMED_KINDS = ("garbage", "truncated", "bad_json")


class FaultError(ValueError):
    """An invalid rule."""


class Rule:
    """One fault rule."""

    def __init__(self, rid, spec):
        if not isinstance(spec, dict):
            raise FaultError("a rule must be a JSON object")
        unknown = set(spec) - {"path", "method", "mode", "status", "delay_ms", "count", "after",
                               "body", "content_type", "retry_after", "max_ms", "kind"}
        if unknown:
            raise FaultError(f"unknown rule field(s): {', '.join(sorted(unknown))}")
        self.id = rid
        self.path = spec.get("path", "/")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise FaultError("path must be a path prefix starting with /")
        if self.path.startswith("/control"):
            raise FaultError("the control API cannot be faulted")
        self.method = spec.get("method")
        if self.method is not None and not isinstance(self.method, str):
            raise FaultError("method must be a string")
        self.mode = spec.get("mode")
        if self.mode not in MODES:
            raise FaultError(f"mode must be one of {', '.join(MODES)}")
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

    def matches(self, method, path):
        """Whether this rule applies to a request."""
        return (path.startswith(self.path) and (self.method is None or self.method.upper() == method)
                and (self.remaining is None or self.remaining > 0))

    def to_json(self):
        """The rule as the control API shows it."""
        d = {"id": self.id, "path": self.path, "method": self.method, "mode": self.mode,
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

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.next_id = 1

    def add(self, payload):
        """Add rules from a control request: a rule, a list of rules or {"rules": [...], "replace": bool}."""
        replace = False
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
        """Remove every rule."""
        with self.lock:
            self.rules = []

    def take(self, method, path):
        """The first rule that applies to this request, with one use consumed, or None."""
        if not self.rules:
            return None
        with self.lock:
            for r in self.rules:
                if r.matches(method, path):
                    r.hits += 1
                    if r.remaining is not None:
                        r.remaining -= 1
                    return r
        return None

    def to_json(self):
        """All rules, expired ones included (remaining 0)."""
        with self.lock:
            return [r.to_json() for r in self.rules]
