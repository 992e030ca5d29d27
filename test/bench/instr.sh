#!/usr/bin/env bash
# test/bench/instr.sh — CPU instructions per call of pay's core paths and of
# the bare-SQL baselines, counted by valgrind (callgrind) in a single-user
# backend: exact and repeatable, unlike throughput on a shared machine, so a
# change to pay can be judged by a few percent.  Not a timed test.
#
# Items (statements prepared beforehand, like pgbench -M prepared):
#   create_bare   the plain INSERT of the order row
#   create_pay    pay.create_order
#   paid_bare     BEGIN; INSERT order; one statement with the other writes; COMMIT
#   paid_pay      BEGIN; pay.create_order; pay.mark_paid; COMMIT
# Each figure is (instructions of warm-up + N items - instructions of the
# warm-up alone) / N, so start-up and first-call costs are left out.
# Settings: N=200 (items per run), ITEMS (default: all four),
# VARIANT=file.sql (SQL run after installing pay, to measure a change).
# Needs valgrind.  As root it re-runs itself as postgres, like core.sh.
set -euo pipefail
N=${N:-200}
ITEMS=${ITEMS:-create_bare create_pay paid_bare paid_pay}
. "$(dirname "$0")/lib.sh"
bench_env_names="$bench_env_names N"
command -v valgrind >/dev/null || { echo "instr.sh needs valgrind (apt-get install valgrind)"; exit 1; }
bench_as_postgres "$0" "$@"
bench_server
# Single-user mode runs no autovacuum: the tables would keep the statistics
# of the empty tables setup.sql analyzed, and the planner would scan the
# growing orders tables sequentially.  10,000 orders on each side first, as
# in a server that has been running a while.
psql -X -q -c "SELECT count(pay.create_order('bm' || (i % 100 + 1), 'seed' || i, 1000, 'USD')) FROM generate_series(1, 10000) i" \
  -c "INSERT INTO bare.orders (merchant_id, merchant_order_no, amount, currency, metadata, expires_at)
      SELECT i % 100 + 1, 'seed' || i, 1000, 'USD', '{}', now() FROM generate_series(1, 10000) i" \
  -c "ANALYZE" >/dev/null
pg_ctl -D "$data" -m fast stop >/dev/null

prepare="PREPARE cb(bigint, text) AS INSERT INTO bare.orders (merchant_id, merchant_order_no, amount, currency, gateway, metadata, expires_at) VALUES (\$1, \$2, 1000, 'USD', NULL, '{}', now() + interval '15 minutes') RETURNING id;
PREPARE cp(text, text) AS SELECT id FROM pay.create_order(\$1, \$2, 1000, 'USD');
PREPARE mp(bigint) AS SELECT status FROM pay.mark_paid(\$1, 'tx' || \$1, 1000, 'USD');
PREPARE mb(bigint, bigint) AS WITH u AS (UPDATE bare.orders SET status = 'paid', psp_txn_id = 'tx' || \$1, paid_at = now(), paid_account_id = 1, updated_at = now() WHERE id = \$1 RETURNING id, amount, merchant_id), ev AS (INSERT INTO bare.order_events (order_id, from_status, to_status, cause) SELECT id, 'pending', 'paid', 'mark_paid' FROM u), p AS (INSERT INTO bare.postings (ref, order_id) SELECT concat_ws(':', 'order', id, 'paid'), id FROM u RETURNING id), e AS (INSERT INTO bare.entries (posting_id, account_id, amount, currency) SELECT p.id, x.account_id, x.amount, 'USD' FROM p, u, LATERAL (VALUES (1::bigint, -u.amount), (u.merchant_id + 1, u.amount)) x(account_id, amount)) UPDATE bare.account_balances b SET balance = b.balance + x.delta FROM (VALUES (1::bigint, -1000::bigint), (\$2 + 1, 1000::bigint)) x(account_id, delta) WHERE b.account_id = x.account_id AND b.slot = pg_backend_pid() % 8;"

# item NAME I [PREFIX] — the statements of one item (single-user mode: one per line)
item() {
  local m=$(($2 % ${MERCHANTS:-100} + 1)) k=${3:-}$2
  case $1 in
    create_bare) echo "EXECUTE cb($m, 'c$k');" ;;
    create_pay)  echo "EXECUTE cp('bm$m', 'c$k');" ;;
    paid_bare)   printf '%s\n' "BEGIN;" "EXECUTE cb($m, 'p$k');" "EXECUTE mb(currval('bare.orders_id_seq'), $m);" "COMMIT;" ;;
    paid_pay)    printf '%s\n' "BEGIN;" "EXECUTE cp('bm$m', 'p$k');" "EXECUTE mp(currval('pay.orders_id_seq'));" "COMMIT;" ;;
  esac
}

# The warm-up touches every merchant once, so that the measured items run
# as in a long-lived backend (pay caches merchants and accounts per backend).
{ echo "$prepare"
  for ((i = 0; i < ${MERCHANTS:-100}; i++)); do
    for it in create_bare create_pay paid_bare paid_pay; do item "$it" "$i" w; done
  done; } >"$work/warm.sql"
for it in $ITEMS; do
  for ((i = 0; i < N; i++)); do item "$it" "$i"; done >"$work/$it.sql"
done

# instructions FILE... — instructions executed by a single-user backend fed the files
instructions() {
  rm -rf "$work/run" && cp -a "$data" "$work/run"
  cat "$@" | valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    postgres --single -D "$work/run" -c shared_preload_libraries=pay -c synchronous_commit=off postgres \
    >"$work/single.log" 2>&1
  if grep -q 'ERROR' "$work/single.log"; then grep 'ERROR' "$work/single.log" | head -3 >&2; fi
  sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$work/callgrind.out" | head -1
}

echo "pay instruction counts, $(date -u '+%Y-%m-%d %H:%M UTC'), valgrind callgrind, single-user backend, $N items per run"
warm=$(instructions "$work/warm.sql")
declare -A per
for it in $ITEMS; do
  total=$(instructions "$work/warm.sql" "$work/$it.sql")
  per[$it]=$(( (total - warm) / N / 1000 ))
  printf '  %-12s %6dk instructions per item\n' "$it" "${per[$it]}"
done
if [ -n "${per[create_bare]:-}" ] && [ -n "${per[create_pay]:-}" ]; then
  echo "  create: pay/bare = $(awk -v a="${per[create_pay]}" -v b="${per[create_bare]}" 'BEGIN {printf "%.2f", a / b}') x"
fi
if [ -n "${per[paid_bare]:-}" ] && [ -n "${per[paid_pay]:-}" ]; then
  echo "  paid:   pay/bare = $(awk -v a="${per[paid_pay]}" -v b="${per[paid_bare]}" 'BEGIN {printf "%.2f", a / b}') x"
fi
