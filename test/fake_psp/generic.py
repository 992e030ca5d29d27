"""pay's generic callback scheme (pay's `generic` gateway kind):
form-encoded fields event_id, out_trade_no, trade_no, amount (minor units),
currency, status (paid / failed / refunded / closed), refund_amount for
refunds, timestamp (unix seconds), nonce, and `sign` = hex HMAC-SHA256 over
the canonical string of the other fields with the gateway's webhook_secret,
as pay's provider_generic.c reads them.  The API side of the scheme (what pay's dispatcher sends) is generic_api.py."""

import re
import urllib.parse

import ids
import signing


class Callbacks:
    """Generic HMAC-signed callbacks."""

    provider = "generic"
    ALIASES = {"succeeded": "paid", "success": "paid", "refund": "refunded"}
    EVENTS = ("paid", "failed", "refunded", "closed")
    success_event = "paid"
    refund_event = "refunded"
    nonce_is_event_id = False

    def event_name(self, name):
        """The event for an alias or native name."""
        name = self.ALIASES.get(name, name)
        if name not in self.EVENTS:
            raise ValueError("generic events: paid, failed, refunded, closed")
        return name

    def build(self, app, p, event, event_id=None, update=True, mode=None):
        """The callback's fields without timestamp, nonce and sign.  The payment the
        API created for the order (generic_api.py) gives trade_no; when `update`, the
        event happens to it (created if the API never saw the order)."""
        import generic_api  # here: generic_api imports this module
        st = generic_api.state(app)
        with app.store.lock:
            pay = st["payments"].get(p["ref"])
            if pay is None and update:
                pay = st["payments"][p["ref"]] = generic_api.new_payment(
                    p["ref"], p["amount"], p["currency"].upper(), p.get("txn_id"))
            if pay is not None and update:
                if event == "refunded":
                    pay["refunded"] += p.get("refund_amount") or p["amount"]
                else:
                    pay["status"] = event
            txn_id = p.get("txn_id") or (pay["psp_txn_id"] if pay else None)
        params = {"event_id": event_id or "ev_" + ids.alnum(24), "out_trade_no": p["ref"],
                  "trade_no": txn_id or "T" + ids.digits(20), "amount": str(p["amount"]),
                  "currency": p["currency"].upper(), "status": event}
        if event == "refunded":
            params["refund_amount"] = str(p.get("refund_amount") or p["amount"])
            params["refund_id"] = p.get("refund_id") or "R" + ids.digits(14)
        return params

    def event_id(self, payload):
        """The event id."""
        return payload["event_id"]

    def render(self, app, payload, ts, nonce, mode=None):
        """(headers, body) with timestamp, nonce and sign."""
        params = dict(payload, timestamp=str(ts), nonce=nonce)
        if mode != "unsigned":
            secret = app.cfg.generic_webhook_secret
            if not secret:
                raise ValueError("generic.webhook_secret is not configured")
            key = "wrong-" + ids.alnum(24) if mode == "wrong_key" else secret
            params["sign"] = signing.hmac_sha256_hex(key, signing.canonical_query(params))
        return {"Content-Type": "application/x-www-form-urlencoded"}, urllib.parse.urlencode(params).encode("ascii")

    def tamper(self, body):
        """Raise the amount by one after signing."""
        return re.sub(rb"(^|&)amount=(\d+)", lambda m: m.group(1) + b"amount=" + str(int(m.group(2)) + 1).encode(), body, 1)
