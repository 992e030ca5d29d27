"""WeChat Pay's trade bill, for the fake's own records.

  GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL
      -> {"hash_type": "SHA1", "hash_value": <SHA-1 of the file>, "download_url": ...}
  GET /v3/billdownload/file?token=...   the bill (signed request, like every call)

The bill as WeChat Pay writes it: a header row, every value prefixed with a
backquote, a SUCCESS row per paid transaction and a REFUND row per refund of
that Beijing day, then the summary block (总交易单数, ...).  The fee is the
standard 0.6% (费率 0.60%), half-up to the fen."""

import csv
import hashlib
import io
import time
from decimal import Decimal, ROUND_HALF_UP

import ids
import money

HEADER = ["交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
          "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号",
          "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包",
          "手续费", "费率", "订单金额", "申请退款金额", "费率备注"]


def fee(amount):
    """0.6% of an amount in fen, half-up."""
    return int((Decimal(amount) * Decimal("0.006")).quantize(Decimal(1), ROUND_HALF_UP))


def _beijing(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts + 8 * 3600))


def render(st, cfg, bill_date):
    """The bill of a Beijing-time day, as bytes (UTF-8)."""
    rows = []
    for t in st["trades"].values():
        if t["success_time"] is not None and _beijing(t["success_time"])[:10] == bill_date:
            y = money.to_major
            rows.append((t["success_time"], [
                _beijing(t["success_time"]), cfg.wechat_appid or "", cfg.wechat_mchid, "0", "", t["transaction_id"],
                t["out_trade_no"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "NATIVE", "SUCCESS", "OTHERS", "CNY",
                y(t["total"], "CNY"), "0.00", "0", "0", "0.00", "0.00", "", "", t.get("description") or "", "",
                y(fee(t["total"]), "CNY"), "0.60%", y(t["total"], "CNY"), "0.00", ""]))
    for r in st["refunds"].values():
        t = st["trades"][r["out_trade_no"]]
        if _beijing(r["created"])[:10] == bill_date:
            y = money.to_major
            rows.append((r["created"], [
                _beijing(r["created"]), cfg.wechat_appid or "", cfg.wechat_mchid, "0", "", t["transaction_id"],
                t["out_trade_no"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "NATIVE", "REFUND", "OTHERS", "CNY", "0.00",
                "0.00", r["refund_id"], r["out_refund_no"], y(r["amount"], "CNY"), "0.00", "ORIGINAL", "SUCCESS",
                t.get("description") or "", "", "0.00", "0.60%", y(t["total"], "CNY"), y(r["amount"], "CNY"), ""]))
    rows.sort(key=lambda x: x[0])
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(HEADER)
    for _, row in rows:
        w.writerow(["`" + v for v in row])
    paid = [r for _, r in rows if r[9] == "SUCCESS"]
    total = sum(money.to_minor(r[12], "CNY") for r in paid)
    refunded = sum(money.to_minor(r[16], "CNY") for _, r in rows if r[9] == "REFUND")
    fees = sum(money.to_minor(r[22], "CNY") for r in paid)
    w.writerow(["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额",
                "申请退款总金额"])
    y = money.to_major
    w.writerow(["`" + v for v in (str(len(rows)), y(total, "CNY"), y(refunded, "CNY"), "0.00", y(fees, "CNY"),
                                  y(total, "CNY"), y(refunded, "CNY"))])
    return out.getvalue().encode("utf-8")


def tradebill(app, st, params):
    """The answer to GET /v3/bill/tradebill: where the bill is and its SHA-1 (None: bad date)."""
    day = params.get("bill_date") or ""
    try:
        time.strptime(day, "%Y-%m-%d")
    except ValueError:
        return None
    body = render(st, app.cfg, day)
    token = ids.alnum(32)
    st.setdefault("bills", {})[token] = body
    return {"hash_type": "SHA1", "hash_value": hashlib.sha1(body).hexdigest(),
            "download_url": f"{app.base_url}/v3/billdownload/file?token={token}"}


def download(st, token):
    """The bill's bytes, or None."""
    return st.get("bills", {}).get(token)
