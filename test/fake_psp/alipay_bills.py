"""Alipay's trade bill, for the fake's own records.

  POST /gateway.do  method=alipay.data.dataservice.bill.downloadurl.query,
      biz_content {"bill_type": "trade", "bill_date": "YYYY-MM-DD"}
      -> signed {"code": "10000", "bill_download_url": ...} like every answer
  GET /downloadBillFile.resource?fileId=...   the zip (no signature: the
      fileId is the token, as at dwbillcenter.alipay.com)

The zip as Alipay serves it: two CSV members whose names are GBK,
<seller_id>_<YYYYMMDD>_业务明细.csv (the detail) and
<seller_id>_<YYYYMMDD>_业务明细(汇总).csv (the summary).  The detail as
Alipay writes it: GBK, '#' comment lines before (account, 起始日期/终止日期 of
the Beijing day) and after (totals, export time), every value followed by a
tab; a 交易 row per trade paid that Beijing day and a 退款 row (negative) per
refund.  The fee is the 当面付 0.6% (服务费), half-up to the fen; a refund
gives back the fee of its amount."""

import csv
import datetime
import io
import time
import zipfile
from decimal import Decimal, ROUND_HALF_UP

import ids
import money

METHOD = "alipay.data.dataservice.bill.downloadurl.query"
DOWNLOAD = "/downloadBillFile.resource"
HEADER = ["支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称",
          "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）",
          "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）",
          "卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）", "备注"]
RULE = "-" * 41


class GbkName(zipfile.ZipInfo):
    """A member name stored in GBK without the UTF-8 flag, as Alipay's archives have them."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("gbk"), self.flag_bits


def fee(amount):
    """0.6% of an amount in fen, half-up."""
    return int((Decimal(amount) * Decimal("0.006")).quantize(Decimal(1), ROUND_HALF_UP))


def _cn_date(day, plus=0):
    d = datetime.date.fromisoformat(day) + datetime.timedelta(days=plus)
    return f"{d.year:04d}年{d.month:02d}月{d.day:02d}日 00:00:00"


def _row(trade, kind, created, done, amount, fee_fen, refund_no=""):
    y = money.to_major
    vals = [trade["trade_no"], trade["out_trade_no"], kind, trade["subject"], ids.beijing_time(created),
            ids.beijing_time(done), "", "", "", "", "buyer@example.com", y(amount, "CNY"), y(amount, "CNY"),
            "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00", refund_no, y(fee_fen, "CNY"), "0.00", ""]
    return [v + "\t" for v in vals]


def detail(st, seller_id, day):
    """The 业务明细 CSV of a Beijing day, as bytes (GBK), and its totals."""
    rows = []
    for t in st["trades"].values():
        if t["paid_at"] is not None and t["currency"] == "CNY" and ids.beijing_time(t["paid_at"])[:10] == day:
            rows.append((t["paid_at"], "交易", _row(t, "交易", t["created"], t["paid_at"], t["amount"], fee(t["amount"]))))
        for no, r in t["refunds"].items():
            if t["currency"] == "CNY" and ids.beijing_time(r["at"])[:10] == day:
                rows.append((r["at"], "退款", _row(t, "退款", r["at"], r["at"], -r["amount"], -fee(r["amount"]), no)))
    rows.sort(key=lambda x: x[0])
    out = io.StringIO()
    out.write("#支付宝业务明细查询\n")
    out.write(f"#账号：[{seller_id}0156]\n")
    out.write(f"#起始日期：[{_cn_date(day)}]   终止日期：[{_cn_date(day, 1)}]\n")
    out.write(f"#{RULE}业务明细列表{RULE}\n")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    for _, _, row in rows:
        w.writerow(row)
    paid = [r for _, k, r in rows if k == "交易"]
    refunds = [r for _, k, r in rows if k == "退款"]
    total = sum(money.to_minor(r[11].strip(), "CNY") for r in paid)
    fees = sum(money.to_minor(r[22].strip(), "CNY") for r in paid)
    refunded = sum(money.to_minor(r[11].strip().lstrip("-"), "CNY") for r in refunds)
    y = money.to_major
    out.write(f"#{RULE}业务明细列表结束{RULE}\n")
    out.write(f"#交易合计：{len(paid)}笔，商家实收共{y(total, 'CNY')}元，商家服务费共{y(fees, 'CNY')}元\n")
    out.write(f"#退款合计：{len(refunds)}笔，商家实收退款共-{y(refunded, 'CNY')}元\n")
    out.write(f"#导出时间：[{ids.beijing_time()}]\n")
    return out.getvalue().encode("gbk"), (len(paid), len(refunds), total, refunded, fees)


def summary(seller_id, day, totals):
    """The 业务明细(汇总) CSV: one line of totals (GBK)."""
    paid, refunds, total, refunded, fees = totals
    y = money.to_major
    out = io.StringIO()
    out.write("#支付宝业务汇总查询\n")
    out.write(f"#账号：[{seller_id}0156]\n")
    out.write(f"#起始日期：[{_cn_date(day)}]   终止日期：[{_cn_date(day, 1)}]\n")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）",
                "退款金额（元）", "服务费（元）"])
    w.writerow([v + "\t" for v in ("", "合计", str(paid), str(refunds), y(total, "CNY"), y(total - refunded, "CNY"),
                                   y(refunded, "CNY"), y(fees, "CNY"))])
    out.write(f"#导出时间：[{ids.beijing_time()}]\n")
    return out.getvalue().encode("gbk")


def archive(st, seller_id, day):
    """The zip Alipay serves for a day: the detail and the summary, deflated, GBK names."""
    body, totals = detail(st, seller_id, day)
    stem = f"{seller_id}0156_{day.replace('-', '')}_业务明细"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in ((stem + ".csv", body), (stem + "(汇总).csv", summary(seller_id, day, totals))):
            zi = GbkName(name, time.localtime()[:6])
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    return buf.getvalue()


def downloadurl_query(app, st, biz):
    """The answer member to alipay.data.dataservice.bill.downloadurl.query."""
    day = str(biz.get("bill_date") or "")
    if biz.get("bill_type") != "trade":
        return {"code": "40004", "msg": "Business Failed", "sub_code": "isp.bill_type_not_support",
                "sub_msg": "账单类型不支持 (bill_type)"}
    try:
        datetime.date.fromisoformat(day)
        if len(day) != 10:
            raise ValueError
    except ValueError:
        return {"code": "40004", "msg": "Business Failed", "sub_code": "isv.invalid-parameter",
                "sub_msg": "参数无效 (bill_date)"}
    file_id = ids.alnum(32)
    with app.store.lock:
        st.setdefault("bills", {})[file_id] = archive(st, app.cfg.alipay_seller_id, day)
    return {"code": "10000", "msg": "Success",
            "bill_download_url": f"{app.base_url}{DOWNLOAD}?bizType=trade&fileId={file_id}"}


def download(st, file_id):
    """The zip's bytes, or None."""
    return st.get("bills", {}).get(file_id)
