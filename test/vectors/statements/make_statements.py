#!/usr/bin/env python3
"""Statement files in the PSPs' own formats, for the reconciliation tests.

Written independently of pay's parser: Python's csv module and its GBK
codec.  Run from anywhere; writes next to this file:

  generic.csv          generic_csv with every break kind planted
  generic_overlap.csv  a later generic_csv repeating one line (a duplicate)
  stripe.csv           Stripe's itemized balance-change report
  alipay.csv           Alipay's 业务明细 bill, GBK, comment lines, tab padding
  wechatpay.csv        WeChat Pay's trade bill, backquoted values, summary block

The orders they refer to are made by sql/reconciliation.sql.
"""
import csv
import io
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def csv_bytes(rows, encoding="utf-8"):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for r in rows:
        w.writerow(r)
    return out.getvalue().encode(encoding)


GENERIC_HEADER = ["psp_txn_id", "order_id", "kind", "amount", "fee", "currency", "occurred_at"]


def generic():
    rows = [
        GENERIC_HEADER,
        # matched: 10.00 USD, fee 2.9% + 0.30 = 0.59
        ["g_1", "920001", "payment", "10.00", "0.59", "USD", "2026-11-30T09:00:00Z"],
        # fee_mismatch: expected 0.88 on 20.00
        ["g_2", "920002", "payment", "20.00", "0.50", "USD", "2026-11-30T09:10:00Z"],
        # amount_mismatch: the order is 15.00
        ["g_3", "920003", "payment", "14.00", "0.71", "USD", "2026-11-30T09:20:00Z"],
        # currency_mismatch: the order is in USD
        ["g_4", "920004", "payment", "12.00", "0.65", "EUR", "2026-11-30T09:30:00Z"],
        # missing_in_books: our order 920005 is still pending (repairable)
        ["g_5", "920005", "payment", "8.00", "0.53", "USD", "2026-11-30T09:40:00Z"],
        # missing_in_books: no order of ours at all
        ["g_unknown", "", "payment", "3.00", "0.39", "USD", "2026-11-30T09:45:00Z"],
        # status_mismatch: order 920006 was cancelled
        ["g_6", "920006", "payment", "7.00", "0.50", "USD", "2026-11-30T09:50:00Z"],
        # duplicate of the first line
        ["g_1", "920001", "payment", "10.00", "0.59", "USD", "2026-11-30T09:55:00Z"],
        # refund of 3.00 of order 920001: matched to our refund
        ["g_r1", "920001", "refund", "3.00", "0", "USD", "2026-11-30T10:00:00Z"],
        # refund of 1.50 of order 920001: ours is 2.00 (amount_mismatch)
        ["g_r2", "920001", "refund", "1.50", "0", "USD", "2026-11-30T10:05:00+00:00"],
        # a fee of its own and a payout (quoted fields, as CSV writers do)
        ["g_fee \"monthly\", Nov", "", "fee", "5.00", "", "usd", "2026-11-30T11:00:00Z"],
        ["po_1", "", "payout", "20.00", "0", "USD", "2026-11-30T12:00:00Z"],
    ]
    write("generic.csv", csv_bytes(rows))
    overlap = [
        GENERIC_HEADER,
        ["g_1", "920001", "payment", "10.00", "0.59", "USD", "2026-11-30T09:00:00Z"],
        ["po_2", "", "payout", "1.00", "0", "USD", "2026-12-01T12:00:00Z"],
    ]
    write("generic_overlap.csv", csv_bytes(overlap))


STRIPE_HEADER = ["balance_transaction_id", "created_utc", "available_on_utc", "currency", "gross", "fee",
                 "net", "reporting_category", "source_id", "description", "customer_facing_amount",
                 "customer_facing_currency", "automatic_payout_id", "payment_intent_id",
                 "payment_metadata[order_id]"]


def stripe():
    rows = [
        STRIPE_HEADER,
        # matched: 20.00 USD, 2.9% + 0.30 = 0.88
        ["txn_1", "2026-11-30 08:00:00", "2026-12-02 00:00:00", "usd", "20.00", "0.88", "19.12", "charge",
         "ch_1", "Order, \"920101\"", "20.00", "usd", "po_s1", "pi_1", "920101"],
        # refund of 5.00 (gross negative, as Stripe writes it)
        ["txn_2", "2026-11-30 09:00:00", "2026-12-02 00:00:00", "usd", "-5.00", "0.00", "-5.00", "refund",
         "re_1", "", "-5.00", "usd", "po_s1", "pi_1", "920101"],
        # a charge for no order of ours
        ["txn_3", "2026-11-30 10:00:00", "2026-12-02 00:00:00", "usd", "7.00", "0.50", "6.50", "charge",
         "ch_2", "", "7.00", "usd", "", "pi_stranger", ""],
        # an adjustment: money moved that nothing of ours explains
        ["txn_4", "2026-11-30 11:00:00", "2026-12-02 00:00:00", "usd", "-1.00", "0.00", "-1.00", "adjustment",
         "adj_1", "dispute fee", "", "", "", "", ""],
        ["txn_5", "2026-11-30 12:00:00", "2026-11-30 12:00:00", "usd", "-14.12", "0.00", "-14.12", "payout",
         "po_s1", "STRIPE PAYOUT", "", "", "", "", ""],
    ]
    write("stripe.csv", csv_bytes(rows))


ALIPAY_HEADER = ["支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号",
                 "门店名称", "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）",
                 "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）",
                 "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号", "服务费（元）",
                 "分润（元）", "备注"]


def alipay_row(trade_no, order, kind, created, done, amount, fee, refund_no=""):
    vals = [trade_no, order, kind, "图书", created, done, "", "", "", "", "buyer@example.com", amount, amount,
            "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00", refund_no, fee, "0.00", ""]
    # Alipay pads every value with a tab (so spreadsheets keep long numbers as text)
    return [v + "\t" for v in vals]


def alipay():
    lines = [
        "#支付宝业务明细查询",
        "#账号：[20889999999999990156]",
        "#起始日期：[2026年11月30日 00:00:00]   终止日期：[2026年12月01日 00:00:00]",
        "#-----------------------------------------业务明细列表----------------------------------------",
    ]
    body = io.StringIO()
    w = csv.writer(body, lineterminator="\n")
    w.writerow(ALIPAY_HEADER)
    # matched: 12.50 CNY, 0.6% = 0.075, half-up 0.08
    w.writerow(alipay_row("2026113022001400000001", "920201", "交易", "2026-11-30 10:00:00",
                          "2026-11-30 10:00:05", "12.50", "0.08"))
    # refund of 2.00 (Alipay writes it negative)
    w.writerow(alipay_row("2026113022001400000001", "920201", "退款", "2026-11-30 11:00:00",
                          "2026-11-30 11:00:03", "-2.00", "-0.01", "920201R1"))
    # fee_mismatch: 0.6% of 100.00 is 0.60
    w.writerow(alipay_row("2026113022001400000003", "920203", "交易", "2026-11-30 12:00:00",
                          "2026-11-30 12:00:02", "100.00", "0.70"))
    tail = [
        "#-----------------------------------------业务明细列表结束------------------------------------",
        "#交易合计：2笔，商家实收共112.50元，商家服务费共0.78元",
        "#退款合计：1笔，商家实收退款共-2.00元",
        "#导出时间：[2026年12月01日 09:00:00]",
    ]
    text = "\n".join(lines) + "\n" + body.getvalue() + "\n".join(tail) + "\n"
    write("alipay.csv", text.encode("gbk"))


WECHAT_HEADER = ["交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
                 "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
                 "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态",
                 "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注"]


def wechat_row(at, txn, order, state, amount, refund_id="", refund_no="", refund="0.00", fee="0.00"):
    vals = [at, "wx2421b1c4370ec43b", "1900000109", "0", "", txn, order, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            "NATIVE", state, "OTHERS", "CNY", amount, "0.00", refund_id, refund_no, refund, "0.00",
            "ORIGINAL" if refund_id else "", "SUCCESS" if refund_id else "", "图书", "", fee, "0.60%",
            amount, refund, ""]
    return ["`" + v for v in vals]


def wechat():
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(WECHAT_HEADER)
    # matched: 8.88 CNY, 0.6% = 0.05328 -> 0.05; out_trade_no zero-padded as pay sends it
    w.writerow(wechat_row("2026-11-30 10:00:00", "4200000001202611300000000001", "920301", "SUCCESS",
                          "8.88", fee="0.05"))
    # a refund of 1.00 of it
    w.writerow(wechat_row("2026-11-30 11:00:00", "4200000001202611300000000001", "920301", "REFUND",
                          "0.00", "50300000012026113000000000001", "1", "1.00", "-0.01"))
    # missing_in_books: a payment for order 920302, which we think is pending
    w.writerow(wechat_row("2026-11-30 12:00:00", "4200000001202611300000000002", "920302", "SUCCESS",
                          "3.00", fee="0.02"))
    w.writerow(["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额",
                "申请退款总金额"])
    w.writerow(["`3", "`11.88", "`1.00", "`0.00", "`0.06", "`11.88", "`1.00"])
    write("wechatpay.csv", out.getvalue().encode("utf-8"))


if __name__ == "__main__":
    generic()
    stripe()
    alipay()
    wechat()
