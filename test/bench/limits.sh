#!/usr/bin/env bash
# test/bench/limits.sh — what rate limits and routing rules cost create_order,
# from one run on one throwaway server (not a timed test).
#
#   (a) create_order with a rate limit configured for every merchant (never
#       reached: 10^6/s, burst 10^6)  vs  with no limit          target >= 0.97
#   (b) create_order routed by 100 rules (one per merchant, one tier)
#       vs  by 2 rules (one matching, one for another currency)  target >= 0.97
#
# Both sides run create_pay.sql (a random merchant of 100); only the
# configuration changes between runs, and runs alternate (ROUNDS times) so
# drift shows in the per-round figures.  Settings as core.sh:
#   CLIENTS=8 THREADS=2 DURATION=8 ROUNDS=3 MERCHANTS=100 WARMUP=3 KEEP=1
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

tps() {
  local out
  out=$(pgbench -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$1" -D merchants="$MERCHANTS" \
          -f "$bench/create_pay.sql" 2>&1) || { echo "pgbench failed:" >&2; echo "$out" >&2; exit 1; }
  if echo "$out" | grep -qE 'aborted|number of failed transactions: [1-9]'; then
    echo "pgbench: some transactions failed:" >&2; echo "$out" | grep -E 'aborted|failed|ERROR' | head -5 >&2
  fi
  echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'
}
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1" >/dev/null; }

limits_on() { sql "SELECT pay.set_rate_limit('bm' || i, 1000000, 1000000) FROM generate_series(1, $MERCHANTS) i"; }
limits_off() { sql "DELETE FROM pay.rate_limits"; }
# routing: a tier of one rule per merchant, or one USD rule and one EUR rule
rules_100() {
  sql "DELETE FROM pay.routing_rules;
       SELECT pay.add_routing_rule('bg1', 'bm' || i, 'USD', 10) FROM generate_series(1, 100) i"
}
rules_2() {
  sql "DELETE FROM pay.routing_rules;
       SELECT pay.add_routing_rule('bg1', NULL, 'EUR', 10), pay.add_routing_rule('bg1', NULL, 'USD', 10)"
}

sql "SELECT pay.create_gateway('bg1', 'generic', 'https://psp.example')"
echo "pay limits benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: nproc=$(nproc), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pgbench: -M prepared, $CLIENTS clients, $THREADS threads, ${DURATION}s per run, $ROUNDS rounds, $MERCHANTS merchants"
rules_2
tps "$WARMUP" >/dev/null

echo
echo "(a) create_order with a rate limit (never reached) vs without"
printf '  %-7s %12s %12s\n' round no_limit limit
a_off=() a_on=()
for ((i = 1; i <= ROUNDS; i++)); do
  limits_off; o=$(tps "$DURATION")
  limits_on; l=$(tps "$DURATION")
  a_off+=("$o"); a_on+=("$l")
  printf '  %-7s %12.1f %12.1f\n' "$i" "$o" "$l"
done
limits_off
mo=$(median "${a_off[@]}"); ml=$(median "${a_on[@]}"); ra=$(ratio "$ml" "$mo")
printf '  %-7s %12.1f %12.1f   ratio %s (target >= 0.97)\n' median "$mo" "$ml" "$ra"

echo
echo "(b) create_order routed by 100 rules vs 2 rules"
printf '  %-7s %12s %12s\n' round rules_2 rules_100
b_2=() b_100=()
for ((i = 1; i <= ROUNDS; i++)); do
  rules_2; t=$(tps "$DURATION")
  rules_100; h=$(tps "$DURATION")
  b_2+=("$t"); b_100+=("$h")
  printf '  %-7s %12.1f %12.1f\n' "$i" "$t" "$h"
done
m2=$(median "${b_2[@]}"); mh=$(median "${b_100[@]}"); rb=$(ratio "$mh" "$m2")
printf '  %-7s %12.1f %12.1f   ratio %s (target >= 0.97)\n' median "$m2" "$mh" "$rb"
echo
echo "summary: limit/no_limit=$ra rules100/rules2=$rb; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "orders routed to bg1: $(psql -X -At -c "SELECT count(*) FROM pay.orders WHERE gateway = 'bg1'") of $(psql -X -At -c "SELECT count(*) FROM pay.orders")"
