#!/usr/bin/env bash
# test/bench/checkout.sh — checkout as a merchant sees it: POST
# /api/v1/payments through pay-proxy until the answer carries the buyer's
# next step (next_action), against the fake PSP playing Stripe; CLIENTS (8)
# clients with keep-alive connections, SECONDS (10) per run, ROUNDS (3).
#
# Side by side in each round: the fake PSP alone (the same clients POSTing
# PaymentIntents to it directly: what the PSP itself costs), then pay (the
# signed request, create_order and the queued create request committed, the
# dispatcher's call to the PSP, its answer verified and stored, the waiting
# request woken).  PSP_LATENCY_MS (0) makes the fake PSP answer that much
# later (a "slow" fault rule), as a real PSP's 100-500 ms would.
# SERVER_OPTS adds server settings for a diagnostic run (e.g.
# "-c synchronous_commit=off -c pay.dispatcher_synchronous_commit=off" to see
# what waiting for the WAL flush costs); the figures to report use none.
#
# Reports, per round and as medians: requests/s, p50 and p99 of
# create-to-next_action for pay and of the PSP call alone, and pay's p99
# minus the PSP's (the target: under 50 ms).  Run as root (it re-runs itself
# as postgres in a copy of the tree) or as a user that can run PostgreSQL.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
bench_env_names="$bench_env_names SECONDS_PER_RUN PSP_LATENCY_MS POOL_SIZE SERVER_OPTS"
bench_as_postgres "$0" "$@"

CLIENTS=${CLIENTS:-8} ROUNDS=${ROUNDS:-3} SECONDS_PER_RUN=${SECONDS_PER_RUN:-10} PSP_LATENCY_MS=${PSP_LATENCY_MS:-0}
# a checkout holds one of pay-proxy's connections while it waits for the
# PSP's answer: the pool covers the clients (README, "Checkout")
POOL_SIZE=${POOL_SIZE:-$((CLIENTS * 2))}
top=$(cd "$here/../.." && pwd)
work=${PAY_BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/pay-checkout-bench.XXXXXX")}
data=$work/data
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bench_cleanup
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cfg() { /usr/bin/python3 -c "import json,sys; c=json.load(open('$top/test/fake_psp/config.json')); print(eval(sys.argv[1]))" "$1"; }

(cd "$top" && make -s && make -s -C proxy) >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
bindir=$("$top/test/lib/tmp-install" "$work/install")
export PATH="$bindir:$PATH" PGHOST=$work PGDATABASE=postgres
unset PGPORT PGUSER
initdb -D "$data" -A trust -N >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; exit 1; }
pg_ctl -D "$data" -l "$work/server.log" -w -o "-c listen_addresses='' -k $work -c shared_preload_libraries=pay \
  -c pay.master_key_file=$top/test/keys/master-a.hex -c pay.allow_private_destinations=on ${SERVER_OPTS:-}" start >/dev/null

/usr/bin/python3 "$top/test/fake_psp/fake_psp.py" --port 0 --fast >"$work/fake.out" 2>"$work/fake.err" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/fake.out" 2>/dev/null && break; sleep 0.1; done
fake="http://127.0.0.1:$(awk '/listening/ {print $2; exit}' "$work/fake.out")"
if [ "$PSP_LATENCY_MS" -gt 0 ]; then
  curl -fs -X POST "$fake/control/faults" -H 'Content-Type: application/json' \
    -d "{\"path\":\"/v1/payment_intents\",\"method\":\"POST\",\"mode\":\"slow\",\"delay_ms\":$PSP_LATENCY_MS}" >/dev/null
fi

secret=$(cfg "c['merchants']['acme']['api_secret']")
psql -X -q -v ON_ERROR_STOP=1 >"$work/setup.log" <<SQL
CREATE EXTENSION pay;
CREATE ROLE proxy LOGIN IN ROLE pay_callback, pay_app;
SELECT pay.create_gateway('stripe_bench', 'stripe', '$fake');
SELECT pay.set_secret('gateway:stripe_bench', 'api_key', '$(cfg "c['stripe']['api_key']")');
SELECT pay.create_merchant('acme', 'ACME');
SELECT pay.set_secret('merchant:acme', 'api_secret', '$secret');
SELECT pay.add_routing_rule('stripe_bench', currency => 'USD');
SQL
proxy_port=$(free_port)
"$top/proxy/pay-proxy" --dsn "host=$work dbname=postgres user=proxy" --listen "127.0.0.1:$proxy_port" --pool-size "$POOL_SIZE" \
  2>"$work/proxy.log" &
pids+=($!)
proxy="http://127.0.0.1:$proxy_port"
for _ in $(seq 100); do curl -fs "$proxy/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "checkout bench: $CLIENTS clients, $SECONDS_PER_RUN s per run, $ROUNDS rounds, fake PSP latency ${PSP_LATENCY_MS} ms, pay-proxy pool $POOL_SIZE"
echo "machine: nproc=$(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)${SERVER_OPTS:+, server options: $SERVER_OPTS}"
client=$here/checkout_client.py
/usr/bin/python3 "$client" pay "$proxy" "$secret" acme 2 1 >/dev/null   # warm-up: connections, plans
for r in $(seq "$ROUNDS"); do
  /usr/bin/python3 "$client" psp "$fake" "$(cfg "c['stripe']['api_key']")" "$CLIENTS" "$SECONDS_PER_RUN" >"$work/psp.$r"
  /usr/bin/python3 "$client" pay "$proxy" "$secret" acme "$CLIENTS" "$SECONDS_PER_RUN" >"$work/pay.$r"
  echo "round $r  psp alone: $(cat "$work/psp.$r")"
  echo "round $r  pay:       $(cat "$work/pay.$r")"
done
/usr/bin/python3 - "$work" "$ROUNDS" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
psp = [json.load(open(f"{work}/psp.{r}")) for r in range(1, rounds + 1)]
pay = [json.load(open(f"{work}/pay.{r}")) for r in range(1, rounds + 1)]
med = lambda xs, k: statistics.median(x[k] for x in xs if x[k] is not None) if any(x[k] is not None for x in xs) else None
print(f"median  psp alone: {med(psp, 'per_s')} req/s  p50 {med(psp, 'p50_ms')} ms  p99 {med(psp, 'p99_ms')} ms")
print(f"median  pay:       {med(pay, 'per_s')} req/s  p50 {med(pay, 'p50_ms')} ms  p99 {med(pay, 'p99_ms')} ms"
      f"  (201 with next_action: {sum(x['statuses'].get('201', 0) for x in pay)} of {sum(x['calls'] for x in pay)})")
if med(pay, 'p99_ms') is not None and med(psp, 'p99_ms') is not None:
    over = med(pay, 'p99_ms') - med(psp, 'p99_ms')
    print(f"pay p99 - psp p99 = {over:.1f} ms (target < 50 ms)  ratio pay/psp req/s = {med(pay, 'per_s') / med(psp, 'per_s'):.2f}")
PY
