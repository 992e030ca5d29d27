#!/usr/bin/env bash
# test/bench/core.sh — throughput of pay's core paths against bare SQL doing
# the same writes, from one run on one throwaway server (not a timed test).
#
#   (a) pay.create_order                      vs  one plain INSERT        target >= 0.7
#   (b) create_order + mark_paid + posting    vs  the same writes as SQL  target >= 0.6
#       in two forms: in as many round trips as pay (BEGIN, 2 statements,
#       END: paid_bare_cte.sql, the strict one) and one statement per write
#       (paid_bare_steps.sql, as an application would send them)
#   (c) (b) with every order of ONE merchant  vs  spread over MERCHANTS
#
# The server is a fresh cluster with the default durability settings (fsync
# and synchronous_commit on), in a temporary folder, from test/lib/tmp-install.
# Baseline and pay runs alternate (ROUNDS times) and the medians are compared,
# so drift shows in the per-round figures.  Settings (environment):
#   CLIENTS=8 THREADS=2 DURATION=8 (seconds per run) ROUNDS=3 MERCHANTS=100
#   WARMUP=3 (seconds per script before measuring)  KEEP=1 (keep the folder)
#   VARIANT=file.sql (SQL run after installing pay: to measure a change)
# Run as root it copies the tree to a temporary folder and runs there as the
# postgres user (PostgreSQL refuses to run as root); as anyone else in place.
set -euo pipefail
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
MERCHANTS=${MERCHANTS:-100}
WARMUP=${WARMUP:-3}
. "$(dirname "$0")/lib.sh"
bench_as_postgres "$0" "$@"
bench_server

# tps SCRIPT MERCHANTS SECONDS — one pgbench run; prints its tps, and also
# writes to $work/waits the mean number of client backends that were waiting
# for a lock (row locks: the hot-row test), sampled every 0.25 s.
tps() {
  local out sampler
  { for ((k = 0; k < $3 * 4; k++)); do
      echo "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND wait_event_type = 'Lock';"
      echo "SELECT pg_sleep(0.25) \\g /dev/null"
    done; } | psql -X -At >"$work/waits.samples" 2>/dev/null &
  sampler=$!
  out=$(pgbench -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$3" -D merchants="$2" \
          -f "$bench/$1" 2>&1) || { echo "pgbench $1 failed:" >&2; echo "$out" >&2; exit 1; }
  wait "$sampler" || true
  awk '{s += $1; n++} END {printf "%.2f", n ? s / n : 0}' "$work/waits.samples" >"$work/waits"
  if echo "$out" | grep -qE 'aborted|number of failed transactions: [1-9]'; then
    echo "pgbench $1: some transactions failed:" >&2; echo "$out" | grep -E 'aborted|failed|ERROR' | head -5 >&2
  fi
  echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

# median X... — the median of the numbers given
median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# ratio A B — A / B to two decimals
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'
}

settings=$(psql -X -At -F' ' -c "SELECT current_setting('fsync'), current_setting('synchronous_commit'),
  current_setting('wal_sync_method'), current_setting('shared_buffers'), current_setting('server_version')")
read -r fsync synccommit walsync shbuf version <<<"$settings"
echo "pay core benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: nproc=$(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), PostgreSQL $version"
echo "server: fsync=$fsync synchronous_commit=$synccommit wal_sync_method=$walsync shared_buffers=$shbuf (defaults)"
echo "pgbench: -M prepared, $CLIENTS clients, $THREADS threads, ${DURATION}s per run, $ROUNDS rounds, $MERCHANTS merchants"

for s in create_bare.sql create_pay.sql paid_bare_cte.sql paid_bare_steps.sql paid_pay.sql; do
  tps "$s" "$MERCHANTS" "$WARMUP" >/dev/null
done

echo
echo "(a) create an order: pay.create_order vs a plain INSERT"
printf '  %-7s %12s %12s\n' round bare_tps pay_tps
a_bare=() a_pay=()
for ((i = 1; i <= ROUNDS; i++)); do
  b=$(tps create_bare.sql "$MERCHANTS" "$DURATION"); p=$(tps create_pay.sql "$MERCHANTS" "$DURATION")
  a_bare+=("$b"); a_pay+=("$p")
  printf '  %-7s %12.1f %12.1f\n' "$i" "$b" "$p"
done
mb=$(median "${a_bare[@]}"); mp=$(median "${a_pay[@]}")
printf '  %-7s %12.1f %12.1f   ratio %s (target >= 0.70)\n' median "$mb" "$mp" "$(ratio "$mp" "$mb")"
ra=$(ratio "$mp" "$mb")

echo
echo "(b) create + mark_paid + ledger posting in one transaction vs the same writes as plain SQL:"
echo "    bare_cte: as many round trips as pay; bare_steps: one statement per write"
echo "(c) the same pay transaction with every order of ONE merchant"
printf '  %-7s %12s %12s %14s %14s\n' round bare_cte bare_steps "pay(${MERCHANTS}m)" "pay(1m)"
b_cte=() b_steps=() b_pay=() c_one=() w_pay=() w_one=()
for ((i = 1; i <= ROUNDS; i++)); do
  b=$(tps paid_bare_cte.sql "$MERCHANTS" "$DURATION")
  p=$(tps paid_pay.sql "$MERCHANTS" "$DURATION"); w_pay+=("$(cat "$work/waits")")
  s=$(tps paid_bare_steps.sql "$MERCHANTS" "$DURATION")
  o=$(tps paid_pay.sql 1 "$DURATION"); w_one+=("$(cat "$work/waits")")
  b_cte+=("$b"); b_steps+=("$s"); b_pay+=("$p"); c_one+=("$o")
  printf '  %-7s %12.1f %12.1f %14.1f %14.1f\n' "$i" "$b" "$s" "$p" "$o"
done
mb=$(median "${b_cte[@]}"); ms=$(median "${b_steps[@]}"); mp=$(median "${b_pay[@]}"); mo=$(median "${c_one[@]}")
printf '  %-7s %12.1f %12.1f %14.1f %14.1f\n' median "$mb" "$ms" "$mp" "$mo"
rb=$(ratio "$mp" "$mb"); rs=$(ratio "$mp" "$ms"); rc=$(ratio "$mo" "$mp")
echo "  (b) ratio pay/bare_cte $rb, pay/bare_steps $rs (target >= 0.60)"
echo "  (c) one merchant / $MERCHANTS merchants $rc (near 1: the merchant's account is not a hot row)"
echo "      client backends waiting for a lock, mean of 0.25 s samples per round:" \
     "${MERCHANTS} merchants ${w_pay[*]}; one merchant ${w_one[*]} (of $CLIENTS clients)"
echo
echo "summary: a=$ra b_cte=$rb b_steps=$rs c=$rc"
problems=$(psql -X -At -c "SELECT count(*) FROM pay.ledger_problems")
mismatches=$(psql -X -At -c "SELECT count(*) FROM pay.order_ledger_mismatches")
echo "after the runs: $(psql -X -At -c "SELECT count(*) FROM pay.orders") pay orders, ledger_problems=$problems, order_ledger_mismatches=$mismatches"
echo "merchant:bm1:USD slots (slot:balance): $(psql -X -At -c "SELECT string_agg(b.slot || ':' || b.balance, ' ' ORDER BY b.slot)
  FROM pay.account_balances b JOIN pay.accounts a ON a.id = b.account_id WHERE a.code = 'merchant:bm1:USD'")"
