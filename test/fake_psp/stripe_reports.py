"""Stripe's reporting API, for the fake's own records: a report run of
balance_change_from_activity.itemized.3 (the itemized balance-change report)
and the file it produces, as CSV.

  POST /v1/reporting/report_runs      report_type, parameters[interval_start],
                                      parameters[interval_end], parameters[columns][]
  GET  /v1/reporting/report_runs/{id}
  GET  /v1/files/{id}/contents        the CSV (Bearer key, like every API call)

Real Stripe runs a report asynchronously (status pending, then succeeded);
the fake finishes it at once.  Every succeeded PaymentIntent is a charge line
with Stripe's standard US card fee (2.9% + 0.30, half-up), every refund a
refund line (negative gross); amounts in major units, lower-case currency."""

import csv
import io
import re
import time
from decimal import Decimal, ROUND_HALF_UP

import ids
import money
import server

DEFAULT_COLUMNS = ["balance_transaction_id", "created_utc", "available_on_utc", "currency", "gross", "fee",
                   "net", "reporting_category", "source_id", "description", "automatic_payout_id",
                   "payment_intent_id"]
ROUTE_RUN = re.compile(r"^/v1/reporting/report_runs/([A-Za-z0-9_]+)$")
ROUTE_FILE = re.compile(r"^/v1/files/([A-Za-z0-9_]+)/contents$")


def fee(amount):
    """Stripe's standard fee on a card payment, minor units: 2.9% + 30, half-up."""
    return int((Decimal(amount) * Decimal("0.029")).quantize(Decimal(1), ROUND_HALF_UP)) + 30


def _utc(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _lines(st, start, end):
    """(created, row dict) for every balance change in [start, end)."""
    out = []
    for pi in st["pis"].values():
        created = pi.get("succeeded_at") or pi["created"]
        if pi["status"] not in ("succeeded",) and not pi.get("amount_refunded"):
            continue
        if pi["amount_received"] and start <= created < end:
            f = fee(pi["amount_received"])
            out.append((created, {
                "reporting_category": "charge", "source_id": pi["latest_charge"], "payment_intent_id": pi["id"],
                "gross": pi["amount_received"], "fee": f, "currency": pi["currency"],
                "description": pi.get("description") or "",
                "payment_metadata[order_id]": (pi.get("metadata") or {}).get("order_id", "")}))
    for ref in st["refunds"].values():
        if start <= ref["created"] < end:
            pi = st["pis"].get(ref["payment_intent"]) or {}
            out.append((ref["created"], {
                "reporting_category": "refund", "source_id": ref["id"], "payment_intent_id": ref["payment_intent"],
                "gross": -ref["amount"], "fee": 0, "currency": ref["currency"], "description": "REFUND FOR CHARGE",
                "payment_metadata[order_id]": (pi.get("metadata") or {}).get("order_id", "")}))
    out.sort(key=lambda x: x[0])
    return out


def render(st, start, end, columns):
    """The report's CSV."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for created, row in _lines(st, start, end):
        row = dict(row, balance_transaction_id="txn_" + ids.alnum(24), created_utc=_utc(created),
                   available_on_utc=_utc(created + 2 * 86400), net=row["gross"] - row["fee"],
                   automatic_payout_id="")
        cur = row["currency"]
        for k in ("gross", "fee", "net"):
            row[k] = money.to_major(row[k], cur)
        w.writerow([row.get(c, "") for c in columns])
    return buf.getvalue()


def create_run(app, st, params):
    """POST /v1/reporting/report_runs: finished at once."""
    if params.get("report_type") != "balance_change_from_activity.itemized.3":
        return None, "report_type must be balance_change_from_activity.itemized.3"
    p = params.get("parameters") or {}
    try:
        start, end = int(p.get("interval_start")), int(p.get("interval_end"))
    except (TypeError, ValueError):
        return None, "parameters[interval_start] and parameters[interval_end] are required"
    columns = [c for c in (p.get("columns") or DEFAULT_COLUMNS) if c]
    file_id = "file_" + ids.alnum(24)
    body = render(st, start, end, columns)
    reports = st.setdefault("reports", {})
    files = st.setdefault("files", {})
    files[file_id] = body
    run = {"id": "frr_" + ids.alnum(24), "object": "reporting.report_run", "created": int(time.time()),
           "livemode": False, "parameters": {"interval_start": start, "interval_end": end, "columns": columns},
           "report_type": "balance_change_from_activity.itemized.3", "status": "succeeded",
           "succeeded_at": int(time.time()),
           "result": {"id": file_id, "object": "file", "purpose": "finance_report_run", "type": "csv",
                      "size": len(body.encode()), "filename": file_id + ".csv",
                      "url": f"{app.base_url}/v1/files/{file_id}/contents"}}
    reports[run["id"]] = run
    return run, None


def get_run(st, run_id):
    return st.get("reports", {}).get(run_id)


def file_contents(st, file_id):
    body = st.get("files", {}).get(file_id)
    if body is None:
        return None
    return server.Response(200, body, "text/csv")
