#!/usr/bin/env bash
# test/bench/capacity.sh — the dispatcher's capacity with its DEFAULT settings
# against one destination that answers slowly, as a PSP does.
#
#  1. throughput: 30,000 merchant notifications for one merchant whose
#     endpoint answers in 50 ms, 200 ms and 1 s (test/bench/sink.py); the
#     deliveries in DURATION seconds (twice that at 1 s) from the COMMIT that
#     queued them, and
#     in the second half of that window (after the concurrency limit has
#     grown).
#  2. max_rate: a generic gateway with {"max_rate": RATE} and 2,000 requests
#     queued; its requests per second at the sink (the busiest whole second
#     and the mean over the window).
#  3. CPU per delivery: 10^4 and 10^6 due notifications for one merchant
#     (50 ms) inserted with one INSERT ... SELECT generate_series while the
#     dispatcher serves another database, then the server restarted with
#     the dispatcher on: utime + stime of the worker (/proc/<pid>/stat) over
#     the deliveries of a window (from the 500th delivery until CPU_DELIVERIES
#     more are delivered or CPU_WINDOW seconds pass).  pay.outbox is ANALYZEd while it holds no
#     pending row first, so the statistics say there is none.
#
# BASELINE=<git ref> builds that version too and runs the same against it,
# printing both side by side with the ratio (this tree / baseline).
# Settings: DURATION (8 s), RATE (50), CPU_DELIVERIES (8000), CPU_WINDOW (15 s),
# BIG (1000000: the large backlog), PARTS ("1 2 3": which measurements),
# KEEP=1 keeps the folder.
# Only the settings a benchmark needs differ from the defaults: no TCP for
# PostgreSQL, pay preloaded, private destinations allowed (the sink is on
# 127.0.0.1), and pay.outbox_pending_max raised above the large backlog.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
if [ "$(id -u)" = 0 ] && [ -n "${BASELINE:-}" ] && [ -z "${PAY_BASELINE_TREE:-}" ]; then
  PAY_BASELINE_TREE=$(mktemp -d /tmp/pay-capacity-baseline.XXXXXX)
  git -C "$top" archive "$BASELINE" | tar -x -C "$PAY_BASELINE_TREE"
  chown -R postgres: "$PAY_BASELINE_TREE"
  export PAY_BASELINE_TREE BASELINE
fi
. "$top/test/lib/drop-root"
DURATION=${DURATION:-8}; RATE=${RATE:-50}; CPU_DELIVERIES=${CPU_DELIVERIES:-8000}
CPU_WINDOW=${CPU_WINDOW:-15}; BIG=${BIG:-1000000}; PARTS=${PARTS:-1 2 3}
part() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }
work=${PAY_WORK:-$(mktemp -d)}/bench-capacity
rm -rf "$work"; mkdir -p "$work"
pgport=$((56000 + RANDOM % 1000))
build_path=$PATH   # builds use the system's pg_config, not a private install's
export PGHOST=$work PGPORT=$pgport PGDATABASE=postgres
unset PGUSER

/usr/bin/python3 "$top/test/bench/sink.py" --port-file "$work/sink.port" & sink_pid=$!
for _ in $(seq 100); do [ -e "$work/sink.port" ] && break; sleep 0.05; done
sink=$(cat "$work/sink.port")
data=
cleanup() {
  [ -n "$data" ] && pg_ctl -D "$data" -m immediate stop >/dev/null 2>&1 || true
  kill "$sink_pid" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

# start_server TREE LABEL DATABASE: build TREE, install it privately, start a server whose dispatcher serves DATABASE.
start_server() {
  local tree=$1 label=$2 db=$3 bindir
  if [ ! -d "$work/$label" ]; then
    mkdir -p "$work/$label"
    (cd "$tree" && PATH=$build_path make -s) >"$work/$label/build.log" 2>&1 || { cat "$work/$label/build.log"; exit 1; }
    bindir=$(cd "$tree" && PATH=$build_path test/lib/tmp-install "$work/$label/install")
    echo "$bindir" > "$work/$label/bindir"
    "$bindir/initdb" -D "$work/$label/data" -A trust -N >/dev/null
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/$label/master.key"; chmod 600 "$work/$label/master.key"
    cat >> "$work/$label/data/postgresql.conf" <<CONF
port = $pgport
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'pay'
pay.master_key_file = '$work/$label/master.key'
pay.allow_private_destinations = on
pay.outbox_pending_max = $((BIG * 2 + 100000))
CONF
  fi
  export PATH="$(cat "$work/$label/bindir"):$PATH"
  data=$work/$label/data
  pg_ctl -D "$data" -l "$work/$label/log" -o "-c pay.database=$db" start -w >/dev/null
}

stop_server() { pg_ctl -D "$data" -m fast stop -w >/dev/null; data=; }

# notifications MERCHANT COUNT DUE: COUNT notification rows for one order of the merchant, in one INSERT,
# due one microsecond apart from DUE on (as rows queued one after another are).
notifications() {
  q <<SQL
INSERT INTO pay.outbox (kind, destination, operation, order_id, params, idempotency_key, attempts_max, next_attempt_at)
SELECT 'merchant_notification', 'merchant:' || m.code, 'paid', o.id,
       jsonb_build_object('id', o.id::text, 'merchant_order_no', o.merchant_order_no, 'amount', o.amount::text,
                          'currency', o.currency, 'status', o.status, 'event_id', 'evt_' || m.code || '_$2_' || i),
       'evt_' || m.code || '_$2_' || i, pay._outbox_attempts_max('merchant_notification'),
       $3 + i * interval '1 microsecond'
  FROM pay.merchants m JOIN pay.orders o ON o.merchant_id = m.id, generate_series(1, $2) i
 WHERE m.code = '$1';
SQL
}

# merchant CODE PATH: a merchant notified at the sink's PATH, with one order.
merchant() {
  q <<SQL >/dev/null
SELECT pay.create_merchant('$1', 'Merchant $1', 'http://127.0.0.1:$sink$2');
SELECT pay.set_secret('merchant:$1', 'api_secret', 'secret-$1');
INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency)
  SELECT id, 'O-$1', 100, 'USD' FROM pay.merchants WHERE code = '$1';
SQL
}

done_count() { q -c "SELECT count(*) FROM pay.outbox WHERE destination = 'merchant:$1' AND state = 'done'"; }

# Drop what a phase left pending, so that the next one has the dispatcher to itself.
drain() {
  q -c "DELETE FROM pay.outbox WHERE destination = '$1' AND state = 'pending'" >/dev/null
  for _ in $(seq 200); do
    [ "$(q -c "SELECT count(*) FROM pay.outbox WHERE state = 'in_flight'")" = 0 ] && break; sleep 0.1
  done
}

worker_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
worker_pid() { q -c "SELECT coalesce(max(pid)::text, '') FROM pg_stat_activity WHERE backend_type = 'pay dispatcher'"; }
delivered() { q -c "SELECT delivered FROM pay.dispatcher"; }

# run TREE LABEL: every measurement against one build; "LABEL key value" lines to results.
run() {
  local tree=$1 label=$2 lat c1 c2 t0 pid cpu0 cpu1 d0 d1 b start window
  start_server "$tree" "$label" postgres
  q -c "CREATE EXTENSION pay" >/dev/null
  part 1 && for lat in 50 200 1000; do
    # a 1 s destination needs 5 round trips to grow from 16 to 512: twice the window
    window=$DURATION; [ "$lat" = 1000 ] && window=$((DURATION * 2))
    merchant "lat$lat" "/$lat/lat$lat"
    t0=$(date +%s.%N)
    notifications "lat$lat" 30000 "now() - interval '1 second'" >/dev/null
    sleep "$(echo "$window / 2 - ($(date +%s.%N) - $t0)" | bc -l | sed 's/^-.*/0/')"
    c1=$(done_count "lat$lat")
    sleep "$(echo "$window - ($(date +%s.%N) - $t0)" | bc -l | sed 's/^-.*/0/')"
    c2=$(done_count "lat$lat")
    echo "$label rate_$lat $(echo "$c2 / $window" | bc -l)" >> "$work/results"
    echo "$label steady_$lat $(echo "($c2 - $c1) / ($window / 2)" | bc -l)" >> "$work/results"
    drain "merchant:lat$lat"
  done

  # max_rate: 2,000 create requests to one generic gateway
  if part 2; then
  merchant rate_m "/0/rate_m"
  q <<SQL >/dev/null
SELECT pay.create_gateway('rated', 'generic', 'http://127.0.0.1:$sink/json/0/rated', '{"max_rate": $RATE}');
SELECT pay.enqueue_psp_request((pay.create_order('rate_m', 'R-' || i, 1000, 'USD', gateway => 'rated')).id, 'create_payment')
  FROM generate_series(1, 2000) i;
SQL
  sleep 5
  curl -s "http://127.0.0.1:$sink/_stats" | python3 -c "
import json, sys
s = json.load(sys.stdin)['per_second'].get('rated', {})
secs = sorted(s)
full = [s[k] for k in secs[1:-1]] or [0]
print('$label rate_max_second', max(full))
print('$label rate_mean', sum(full) / len(full))" >> "$work/results"
  drain "gateway:rated"
  fi

  # CPU per delivery with a backlog for one destination
  part 3 || { stop_server; return; }
  merchant cpu "/50/cpu"
  q -c "ANALYZE pay.outbox" >/dev/null
  for b in 10000 "$BIG"; do
    stop_server
    start_server "$tree" "$label" template1
    notifications cpu "$b" "now() - interval '1 minute'" >/dev/null
    stop_server
    start_server "$tree" "$label" postgres
    for _ in $(seq 100); do pid=$(worker_pid); [ -n "$pid" ] && break; sleep 0.05; done
    # from the 500th delivery on: the worker's start and first claims are not the steady cost
    for _ in $(seq 300); do [ "$(delivered)" -ge 500 ] && break; sleep 0.05; done
    cpu0=$(worker_cpu_ticks "$pid"); d0=$(delivered); start=$SECONDS
    while [ $((SECONDS - start)) -lt "$CPU_WINDOW" ] && [ "$(delivered)" -lt $((d0 + CPU_DELIVERIES)) ]; do sleep 0.2; done
    cpu1=$(worker_cpu_ticks "$pid"); d1=$(delivered)
    echo "$label cpu_us_$b $(echo "($cpu1 - $cpu0) * 1000000 / $(getconf CLK_TCK) / ($d1 - $d0)" | bc -l)" >> "$work/results"
    echo "$label cpu_deliveries_$b $((d1 - d0))" >> "$work/results"
    drain "merchant:cpu"
  done
  stop_server
}

echo "sink: test/bench/sink.py (python3 asyncio); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); default dispatcher settings"
run "$top" now
[ -n "${PAY_BASELINE_TREE:-}" ] && run "$PAY_BASELINE_TREE" baseline

value() { awk -v l="$1" -v k="$2" '$1 == l && $2 == k {print $3}' "$work/results"; }
row() {
  local key=$1 what=$2 now base
  now=$(value now "$key"); base=$(value baseline "$key")
  [ -n "$now" ] || return 0   # a part not run
  if [ -n "$base" ]; then
    printf '%-58s %12.1f %12.1f %8.3fx\n' "$what" "$now" "$base" "$(echo "$now / ($base + 0.000001)" | bc -l)"
  else
    printf '%-58s %12.1f\n' "$what" "$now"
  fi
}
printf '%-58s %12s %12s %9s\n' "" "this tree" "${BASELINE:+baseline}" "${BASELINE:+ratio}"
for lat in 50 200 1000; do
  row "rate_$lat" "one destination at ${lat} ms: deliveries/s, whole window"
  row "steady_$lat" "  in the second half"
done
row rate_max_second "max_rate $RATE: busiest whole second at the sink"
row rate_mean "max_rate $RATE: mean requests/s"
for b in 10000 "$BIG"; do
  row "cpu_us_$b" "worker CPU per delivery, backlog $b (us)"
  row "cpu_deliveries_$b" "  deliveries measured"
done
now_small=$(value now cpu_us_10000); now_big=$(value now "cpu_us_$BIG")
if [ -n "$now_small" ]; then
  printf 'CPU per delivery, backlog %s / 10000: %.2f\n' "$BIG" "$(echo "$now_big / $now_small" | bc -l)"
fi
