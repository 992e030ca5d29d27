#!/usr/bin/env python3
"""statement_gen.py LINES ORDERS_COPY STATEMENT_CSV — the large statement benchmark's data.

ORDERS_COPY: LINES paid USD orders of gateway bench_gen (COPY text format),
ids 1..LINES, merchant 1.  STATEMENT_CSV: a generic_csv statement with every
payment at its amount and the fee of 2.9% + 0.30 (half-up), every 1000th fee
a cent off, and a payout after every 10,000 payments.
"""
import sys
from decimal import Decimal, ROUND_HALF_UP

n = int(sys.argv[1])
with open(sys.argv[2], "w") as orders, open(sys.argv[3], "w") as st:
    st.write("psp_txn_id,order_id,kind,amount,fee,currency,occurred_at\n")
    payout = 0
    for i in range(1, n + 1):
        amount = 500 + (i * 7919) % 100000
        sec = i % 86400
        at = "2026-11-30T%02d:%02d:%02dZ" % (sec // 3600, sec // 60 % 60, sec % 60)
        orders.write("%d\t1\tB-%d\t%d\tUSD\tpaid\tbench_gen\tb_%d\t\\N\t%s\t%s\n" % (i, i, amount, i, at, at))
        fee = int((Decimal(amount) * Decimal("2.9") / 100).quantize(Decimal(1), ROUND_HALF_UP)) + 30
        if i % 1000 == 0:
            fee += 1
        payout += amount - fee
        st.write("b_%d,%d,payment,%d.%02d,%d.%02d,USD,%s\n" % (i, i, amount // 100, amount % 100, fee // 100, fee % 100, at))
        if i % 10000 == 0:
            st.write("po_%d,,payout,%d.%02d,0,USD,%s\n" % (i, payout // 100, payout % 100, at))
            payout = 0
