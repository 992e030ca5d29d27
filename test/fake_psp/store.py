"""What the fake PSP remembers: the requests it received (bounded), counters,
effects per idempotency key or event id, per-order tallies and each
provider's objects (payments, refunds).  One lock; everything is bounded."""

import collections
import threading
import time
import zlib

LOCK_STRIPES = 256


class Store:
    """Thread-safe memory of the fake PSP."""

    def __init__(self, fast=False, max_records=100000):
        self.lock = threading.RLock()
        self.fast = fast
        self.max_records = max_records
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self.reset()

    def reset(self):
        """Forget everything (faults live elsewhere)."""
        with self.lock:
            self.seq = 0
            self.records = collections.deque(maxlen=self.max_records)
            self.counters = collections.Counter()
            self.effects = {}
            self.orders = {}
            self.state = collections.defaultdict(dict)
            self.nonces = collections.defaultdict(dict)

    def key_lock(self, key):
        """A lock serialising work on one idempotency key (striped: bounded memory)."""
        return self._stripes[zlib.crc32(key.encode("utf-8")) % LOCK_STRIPES]

    # --- requests -----------------------------------------------------------

    def begin(self, method, raw_path, headers, body):
        """Count a request and, unless in fast mode, record it; returns the record or None."""
        with self.lock:
            self.seq += 1
            self.counters["requests"] += 1
            if self.fast:
                return None
            try:
                text, encoding = body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                import base64
                text, encoding = base64.b64encode(body).decode("ascii"), "base64"
            path, _, query = raw_path.partition("?")
            rec = {"seq": self.seq, "at": round(time.time(), 6), "method": method,
                   "path": path, "query": query, "headers": headers,
                   "body": text, "body_encoding": encoding,
                   "route": None, "verdict": None, "status": None, "fault": None,
                   "response": None}
            self.records.append(rec)
            return rec

    def finish(self, rec, route, status, verdict=None, response=None, fault=None):
        """Complete a request's record and counters."""
        with self.lock:
            self.counters[f"route {route}"] += 1
            self.counters[f"status {status}"] += 1
            if rec is not None:
                rec.update(route=route, status=status, verdict=verdict, fault=fault)
                if response is not None:
                    try:
                        rec["response"] = response.decode("utf-8")
                    except UnicodeDecodeError:
                        rec["response"] = None

    def snapshot_requests(self, since=0, path_prefix=None, limit=None):
        """Recorded requests after seq `since`, optionally under a path prefix."""
        with self.lock:
            out = [dict(r) for r in self.records
                   if r["seq"] > since and (not path_prefix or r["path"].startswith(path_prefix))]
            counters = dict(self.counters)
            seq = self.seq
        if limit is not None:
            out = out[-limit:] if limit > 0 else []
        return {"fast": self.fast, "seq": seq, "count": len(out), "counters": counters,
                "requests": out}

    # --- effects ------------------------------------------------------------

    def effect(self, key, applied, conflict=False):
        """Note one request under an idempotency key or event id: whether it had an effect
        (moved money, created an object, was delivered) and whether it conflicted with the
        key's first request (same key, different parameters)."""
        now = round(time.time(), 6)
        with self.lock:
            e = self.effects.get(key)
            if e is None:
                e = self.effects[key] = {"requests": 0, "effects": 0, "conflicts": 0,
                                         "first_at": now, "last_at": now}
            e["requests"] += 1
            e["last_at"] = now
            if applied:
                e["effects"] += 1
            if conflict:
                e["conflicts"] += 1

    def order_bump(self, provider, ref, field, n=1):
        """Add n to a per-order tally (payments created, refunds, closes, notifications...)."""
        with self.lock:
            o = self.orders.setdefault(f"{provider}:{ref}", {})
            o[field] = o.get(field, 0) + n

    def snapshot_effects(self, prefix=None):
        """Effects per key, per-order tallies and totals."""
        with self.lock:
            keys = {k: dict(v) for k, v in self.effects.items() if not prefix or k.startswith(prefix)}
            orders = {k: dict(v) for k, v in self.orders.items() if not prefix or k.startswith(prefix)}
        totals = {"keys": len(keys),
                  "requests": sum(v["requests"] for v in keys.values()),
                  "effects": sum(v["effects"] for v in keys.values()),
                  "conflicts": sum(v["conflicts"] for v in keys.values()),
                  "keys_with_more_than_one_effect": sorted(k for k, v in keys.items() if v["effects"] > 1)}
        return {"totals": totals, "keys": keys, "orders": orders}

    # --- nonces ---------------------------------------------------------------

    def nonce_fresh(self, scope, nonce, window_s, max_nonces=1000000):
        """True (and remembers it) if nonce was not seen in scope within window_s."""
        now = time.time()
        with self.lock:
            seen = self.nonces[scope]
            exp = seen.get(nonce)
            if exp is not None and exp > now:
                return False
            if len(seen) >= max_nonces:
                for k in [k for k, v in seen.items() if v <= now]:
                    del seen[k]
                if len(seen) >= max_nonces:
                    return False
            seen[nonce] = now + window_s
            return True
