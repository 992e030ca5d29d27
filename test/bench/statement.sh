#!/usr/bin/env bash
# test/bench/statement.sh — a large statement imported and reconciled.
#
# LINES (default 1,000,000) paid orders of gateway bench_gen are loaded as
# a restore would (COPY by a superuser, so they arrive paid without a
# million mark_paid calls), and a generic_csv statement of LINES lines
# (every payment, with the PSP's fee; every 1000th fee off by a cent, one
# payout per 10,000 lines) made by test/bench/statement_gen.py is imported:
# parsed, classified, stored and booked by pay.import_statement.  Then the
# breaks are read (pay.reconciliation_breaks, missing_at_psp included).
# Prints the wall-clock time of each step.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_as_postgres "$0" "$@"
bench_server
lines=${ITEMS:-1000000}

python3 "$bench/statement_gen.py" "$lines" "$work/orders.copy" "$work/statement.csv"
ls -l "$work/statement.csv" | awk '{printf "statement: %d lines, %.1f MB\n", '"$lines"', $5 / 1048576}'
psql -X -q -v ON_ERROR_STOP=1 <<SQL
SELECT pay.create_gateway('bench_gen', 'generic') > 0 AS gateway \gset
INSERT INTO pay.fee_rules (gateway, currency, percent, fixed, settlement_days, valid_from)
  VALUES ('bench_gen', NULL, 2.9, 30, 2, '2026-01-01Z');
SELECT pay._account('psp:bench_gen:USD', 'USD') AS psp \gset
\timing on
\echo load orders (COPY, as a restore)
COPY pay.orders (id, merchant_id, merchant_order_no, amount, currency, status, gateway, psp_txn_id,
                 paid_account_id, paid_at, created_at) FROM '$work/orders.copy';
\timing off
UPDATE pay.orders SET paid_account_id = :psp WHERE gateway = 'bench_gen';
VACUUM ANALYZE pay.orders;
SELECT setval(pg_get_serial_sequence('pay.orders', 'id'), (SELECT max(id) FROM pay.orders));
CHECKPOINT;
\timing on
\echo import and reconcile
SELECT pay.import_statement('bench_gen', pg_read_binary_file('$work/statement.csv')) AS statement_id \gset
\echo read the breaks
SELECT result, count(*) FROM pay.reconciliation_breaks WHERE statement_id = :statement_id GROUP BY 1 ORDER BY 1;
\echo import the same file again
SELECT pay.import_statement('bench_gen', pg_read_binary_file('$work/statement.csv')) = :statement_id AS same_id;
\timing off
SELECT result, count(*) FROM pay.statement_lines GROUP BY 1 ORDER BY 1;
SELECT pay.balance('fees:bench_gen:USD') AS fees, pay.balance('bank:bench_gen:USD') AS bank;
SQL
