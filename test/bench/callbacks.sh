#!/usr/bin/env bash
# test/bench/callbacks.sh — callbacks per second, in one run (about 4 minutes
# on two cores with the defaults):
#
#   1. Valid Stripe and valid Alipay (RSA2) "paid" callbacks, each for a
#      distinct pending order, through pay.handle_callback with BENCH_CLIENTS
#      (8) pgbench clients for BENCH_SECONDS (10) each, beside a bare-SQL
#      baseline doing the same writes on plain copies of pay's tables with no
#      checks (test/bench/callbacks_baseline.sql); target pay/baseline >= 0.5.
#   2. pay-proxy's overhead: the same kind of Stripe callbacks POSTed to
#      /callbacks/{gateway} by wrk (Debian's wrk, C, keep-alive, BENCH_CLIENTS
#      connections, test/bench/callbacks.lua) beside pgbench calling
#      handle_callback directly (the pay Stripe figure of part 1).
#
# Method: the fake PSP (test/fake_psp, its own crypto) signs one callback per
# pre-created order (test/bench/callbacks_gen.py); they are loaded into a
# table, and each pgbench transaction takes the next one through a sequence
# (the baseline walks the same rows with its own sequence and its own
# orders).  Each pgbench transaction is ONE statement, `-M prepared`: pay's
# is `SELECT ... FROM pay.handle_callback(gateway, headers, body)`, the
# baseline's calls a PL/pgSQL function of ten plain INSERT/UPDATE
# statements.  A warm-up of a fixed number of transactions of each kind
# measures the rates; before each round, enough callbacks for 1.6 times the
# fastest rate seen so far are signed (outside the measured time).  The measurements run in BENCH_ROUNDS (3) rounds, in turn within
# each round (baseline Stripe, pay Stripe, proxy Stripe, baseline Alipay,
# pay Alipay), so that other load on the machine hits them alike; medians
# are reported.  Also the CPU time per callback: of all PostgreSQL server
# processes, and of pay-proxy.  PostgreSQL's default durability settings:
# fsync, synchronous_commit and full_page_writes on, WAL on the local disk.
# The gateways get tolerance_s = 3600 so that callbacks signed at the start
# are still fresh in the last round.  Every figure is checked afterwards:
# all callbacks accepted, one paid order, posting and notification each.
#
# BENCH_PROFILE=1 then runs pay Stripe and pay Alipay once more with
# pg_stat_statements (track = all) and track_functions = all, and prints
# where the time goes inside handle_callback (per function: self time;
# per statement: time including what it calls).  BENCH_CONF='setting = value'
# adds settings to the server's (BENCH_CONF="shared_preload_libraries = 'pay'
# pay.metrics_enabled = off" measures the metrics).  BENCH_KEEP=1 leaves the
# cluster, pay-proxy and the work folder in place and says how to connect.
#
# It builds pay and pay-proxy, installs pay into a throwaway copy of
# PostgreSQL (test/lib/tmp-install), runs its own cluster on a private socket
# and removes everything at the end.  As root it installs wrk if missing
# (apt), copies the tree to a temporary folder and runs as the postgres user.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" = 0 ]; then
  if ! command -v wrk >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
  fi
  work=$(mktemp -d /tmp/pay-bench.XXXXXX)
  [ "${BENCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
  rsync -a --exclude .git --exclude '*.o' --exclude '*.so' --exclude 'test/fuzz/bin' \
    --exclude 'proxy/pay-proxy' "$top/" "$work/tree/"
  chown -R postgres: "$work"
  runuser -u postgres -- env BENCH_WORK="$work" BENCH_SECONDS="${BENCH_SECONDS:-10}" \
    BENCH_ROUNDS="${BENCH_ROUNDS:-3}" BENCH_CLIENTS="${BENCH_CLIENTS:-8}" \
    BENCH_PROFILE="${BENCH_PROFILE:-0}" BENCH_KEEP="${BENCH_KEEP:-0}" BENCH_CONF="${BENCH_CONF:-}" \
    BENCH_WRK_THREADS="${BENCH_WRK_THREADS:-1}" "$work/tree/test/bench/callbacks.sh"
  exit $?
fi

command -v wrk >/dev/null || { echo "callbacks.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
work=${BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/pay-bench.XXXXXX")}
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
clients=${BENCH_CLIENTS:-8}
profile=${BENCH_PROFILE:-0}
wrk_threads=${BENCH_WRK_THREADS:-1}
data=$work/data
port=$((20000 + RANDOM % 20000))
proxy_port=$((port + 1))
bench=$top/test/bench
py=/usr/bin/python3
ticks=$(getconf CLK_TCK)
t_start=$(date +%s)

log() { echo "[$(( $(date +%s) - t_start ))s] $*" >&2; }

cd "$top"
log "building pay and pay-proxy"
make -s clean >/dev/null 2>&1 || true
make -s >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
make -s -C proxy >>"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
bindir=$(test/lib/tmp-install "$work/install")
export PATH="$bindir:$PATH"

initdb -D "$data" -A trust -U postgres >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; exit 1; }
cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
port = $port
unix_socket_directories = '$work'
max_connections = 50
jit = off
pay.master_key_file = '$top/test/keys/master-a.hex'
# the fake PSP listens on loopback
pay.allow_private_destinations = on
CONF
if [ "$profile" = 1 ]; then
  echo "shared_preload_libraries = 'pg_stat_statements'" >>"$data/postgresql.conf"
fi
[ -z "${BENCH_CONF:-}" ] || printf '%s\n' "$BENCH_CONF" >>"$data/postgresql.conf"
pg_ctl -D "$data" -l "$work/server.log" -w start >/dev/null
proxy_pid=
stop() {
  [ -z "$proxy_pid" ] || kill "$proxy_pid" 2>/dev/null || true
  pg_ctl -D "$data" -m fast stop >/dev/null 2>&1 || true
}
if [ "${BENCH_KEEP:-0}" = 1 ]; then
  trap 'echo "kept: psql -h $work -p $port -U postgres postgres; pay-proxy on 127.0.0.1:$proxy_port (pid ${proxy_pid:-none})" >&2' EXIT
else
  trap 'stop; [ -n "${BENCH_WORK:-}" ] || rm -rf "$work"' EXIT
fi

psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres -d postgres "$@"; }
q() { psql -At -c "$1"; }

# CPU clock ticks used so far by the cluster's server processes, living and
# exited (the postmaster's children's times count once they are reaped).
server_ticks() {
  local pm t pid
  pm=$(head -1 "$data/postmaster.pid")
  t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
  for pid in $(pgrep -P "$pm"); do
    t=$(( t + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
  done
  echo "$t"
}
proxy_ticks() { awk '{ print $14 + $15 }' "/proc/$proxy_pid/stat"; }
per_call_us() { awk -v t="$1" -v n="$2" -v hz="$ticks" 'BEGIN { printf "%.0f", (n > 0 ? t * 1e6 / hz / n : 0) }'; }

# --- pay: gateways, secrets, a merchant; the baseline's tables -------------------
log "setting up"
fake=$top/test/fake_psp
stripe_secret=$($py -c "import json,sys; print(json.load(open(sys.argv[1]))['stripe']['webhook_secret'])" "$fake/config.json")
psql >/dev/null <<SQL
CREATE EXTENSION pay;
CREATE SCHEMA bench;
CREATE ROLE proxy LOGIN IN ROLE pay_callback, pay_app;
SELECT pay.create_gateway('stripe_b', 'stripe', 'http://127.0.0.1:9', '{"tolerance_s": 3600}');
SELECT pay.create_gateway('alipay_b', 'alipay', 'http://127.0.0.1:9', '{"tolerance_s": 3600}');
SELECT pay.set_secret('gateway:stripe_b', 'webhook_secret', '$stripe_secret');
SELECT pay.set_secret('gateway:alipay_b', 'public_key', pg_read_file('$fake/keys/alipay_platform_public.pem'));
SELECT pay.create_merchant('acme', 'ACME', 'http://127.0.0.1:9/notify');
-- the ledger accounts the payments use, opened now rather than by the first callback
SELECT pay._account('psp:stripe_b:USD', 'USD'), pay._account('merchant:acme:USD', 'USD'),
       pay._account('psp:alipay_b:CNY', 'CNY'), pay._account('merchant:acme:CNY', 'CNY');
CREATE TABLE bench.cb (
    provider    text NOT NULL,
    id          integer NOT NULL,
    order_id    bigint NOT NULL,
    event_id    text NOT NULL,
    psp_txn_id  text NOT NULL,
    amount      bigint NOT NULL,
    headers     jsonb NOT NULL,
    body        text NOT NULL,
    PRIMARY KEY (provider, id)
);
CREATE SEQUENCE bench.pay_stripe;
CREATE SEQUENCE bench.pay_alipay;
CREATE SEQUENCE bench.base_stripe;
CREATE SEQUENCE bench.base_alipay START 100000001;
SQL
psql -f "$bench/callbacks_baseline.sql" >/dev/null
read -r src_usd dst_usd src_cny dst_cny < <(psql -At -F' ' -c "
  SELECT (SELECT id FROM pay.accounts WHERE code = 'psp:stripe_b:USD'), (SELECT id FROM pay.accounts WHERE code = 'merchant:acme:USD'),
         (SELECT id FROM pay.accounts WHERE code = 'psp:alipay_b:CNY'), (SELECT id FROM pay.accounts WHERE code = 'merchant:acme:CNY')")

# have[stripe|alipay|proxy]: signed callbacks made so far; have[base_*]: baseline orders
declare -A have=([stripe]=0 [alipay]=0 [proxy]=0 [base_stripe]=0 [base_alipay]=0)

# add_callbacks KIND N — N more pending orders and one signed callback each:
# stripe and alipay into bench.cb (for pgbench), proxy into $work/proxy.req (for wrk)
add_callbacks() {
  local kind=$1 n=$2 provider=stripe gateway=stripe_b currency=USD from wrk_file=()
  [ "$kind" != alipay ] || { provider=alipay gateway=alipay_b currency=CNY; }
  [ "$kind" != proxy ] || wrk_file=(--wrk "$work/proxy.req")
  from=$(( have[$kind] + 1 ))
  psql -At -F' ' -c "SELECT o.id, o.amount FROM generate_series($from, $(( from + n - 1 ))) i,
                       pay.create_order('acme', '$kind-' || i, 1000 + i % 9000, '$currency', gateway => '$gateway') o
                      ORDER BY i" |
    $py "$bench/callbacks_gen.py" --provider "$provider" --gateway "$gateway" --currency "$currency" \
      --csv "$work/$kind.csv" --first "$from" "${wrk_file[@]}" 2>/dev/null
  if [ "$kind" != proxy ]; then
    psql -c "ALTER TABLE bench.cb ALTER provider SET DEFAULT '$provider'" \
         -c "\\copy bench.cb (id, order_id, event_id, psp_txn_id, amount, headers, body) FROM '$work/$kind.csv' WITH (FORMAT csv)"
  fi
  have[$kind]=$(( from + n - 1 ))
}

# add_base_orders PROVIDER N — N more pending orders for the baseline
add_base_orders() {
  local off=0 cur=USD from
  [ "$1" = stripe ] || { off=100000000 cur=CNY; }
  from=$(( have[base_$1] + 1 ))
  q "INSERT INTO bench.orders (id, merchant_id, merchant_order_no, amount, currency, gateway, expires_at)
       SELECT $off + i, 1, 'BASE-' || ($off + i), 1000 + i % 9000, '$cur', '$1_b', now() + interval '1 day'
         FROM generate_series($from, $(( from + $2 - 1 ))) i" >/dev/null
  have[base_$1]=$(( from + $2 - 1 ))
}

# --- pgbench scripts: one statement per transaction (no ':' in them: pgbench variables) ---
for p in stripe alipay; do
  cat >"$work/pay_$p.sql" <<SQL
WITH s AS MATERIALIZED (SELECT nextval('bench.pay_$p') AS k)
SELECT r.http_status
  FROM s JOIN bench.cb c ON c.provider = '$p' AND c.id = s.k,
       LATERAL pay.handle_callback('${p}_b', c.headers, c.body) r;
SQL
done
# the baseline reuses the first 1000 callback rows of each provider
cat >"$work/base_stripe.sql" <<SQL
WITH s AS MATERIALIZED (SELECT nextval('bench.base_stripe') AS k)
SELECT bench.baseline(s.k, 'stripe_b', c.headers, c.body, c.event_id, c.psp_txn_id, c.amount, 'USD', $src_usd, $dst_usd)
  FROM s JOIN bench.cb c ON c.provider = 'stripe' AND c.id = (s.k - 1) % 1000 + 1;
SQL
cat >"$work/base_alipay.sql" <<SQL
WITH s AS MATERIALIZED (SELECT nextval('bench.base_alipay') AS k)
SELECT bench.baseline(s.k, 'alipay_b', c.headers, c.body, c.event_id, c.psp_txn_id, c.amount, 'CNY', $src_cny, $dst_cny)
  FROM s JOIN bench.cb c ON c.provider = 'alipay' AND c.id = (s.k - 1) % 1000 + 1;
SQL

# run_pgbench NAME [-T SECONDS | -t PER_CLIENT] — sets res_rate (per second),
# res_n (transactions) and res_ticks (server CPU); not in a subshell
run_pgbench() {
  local name=$1 out=$work/pgbench_$1.log c0 c1
  shift
  c0=$(server_ticks)
  if ! command pgbench -n -M prepared -c "$clients" -j "$(nproc)" "$@" -f "$work/$name.sql" \
       -h "$work" -p "$port" -U postgres postgres >"$out" 2>&1 || grep -q 'aborted' "$out"; then
    echo "pgbench $name failed:" >&2; tail -20 "$out" >&2; exit 1
  fi
  # the backends of pgbench's sessions exit after it: wait until they are reaped
  for _ in $(seq 30); do
    pgrep -P "$(head -1 "$data/postmaster.pid")" -f '^postgres: postgres postgres' >/dev/null || break
    sleep 0.1
  done
  c1=$(server_ticks)
  res_n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
  res_rate=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$out")
  res_ticks=$(( c1 - c0 ))
}

# check_left — refuse figures made after the signed callbacks ran out (a
# transaction that finds no callback row does nothing, fast)
check_left() {
  local out
  out=$(q "SELECT (SELECT last_value FROM bench.pay_stripe) > ${have[stripe]} OR (SELECT last_value FROM bench.pay_alipay) > ${have[alipay]}
             OR (SELECT last_value FROM bench.base_stripe) > ${have[base_stripe]}
             OR (SELECT last_value FROM bench.base_alipay) > 100000000 + ${have[base_alipay]}")
  if [ "$out" = t ]; then
    echo "the signed callbacks (or baseline orders) ran out: a round was more than 1.6 times faster than any before" >&2; exit 1
  fi
}

# --- warm-up: a fixed number of transactions, which also gives the rates ---------
log "warm-up"
add_callbacks stripe $(( clients * 150 ))
add_callbacks alipay $(( clients * 150 ))
add_base_orders stripe $(( clients * 400 ))
add_base_orders alipay $(( clients * 400 ))
q "VACUUM ANALYZE" >/dev/null
declare -A warm_rate
for s in base_stripe pay_stripe base_alipay pay_alipay; do
  per=150; [ "${s#base}" = "$s" ] || per=400
  run_pgbench "$s" -t "$per"
  warm_rate[$s]=$res_rate
done
check_left

# --- enough for the next round: before each, whatever the fastest measurement of
# each kind so far (1.5 times the warm-up's at first) would use in 1.6 times the time
declare -A peak
# (the short warm-up underestimates: it starts cold and includes connecting)
for s in base_stripe pay_stripe base_alipay pay_alipay; do peak[$s]=$(awk -v r="${warm_rate[$s]}" 'BEGIN { print 1.5 * r }'); done
peak[proxy_stripe]=${peak[pay_stripe]}
log "warm-up rates: $(for s in base_stripe pay_stripe base_alipay pay_alipay; do printf '%s %.0f/s  ' $s "${warm_rate[$s]}"; done)"

# top_up SECONDS — sign (or create) what the next SECONDS of each kind may use
top_up() {
  local want left made=""
  wanted() { awk -v r="${peak[$1]}" -v s="$2" 'BEGIN { printf "%d", r * s * 1.6 + 300 }'; }
  for p in stripe alipay; do
    left=$(( have[$p] - $(q "SELECT last_value FROM bench.pay_$p") ))
    want=$(wanted "pay_$p" "$1")
    [ "$left" -ge "$want" ] || { add_callbacks "$p" $(( want - left )); made+=" $(( want - left )) $p"; }
    left=$(( have[base_$p] - $(q "SELECT last_value - CASE '$p' WHEN 'stripe' THEN 0 ELSE 100000000 END FROM bench.base_$p") ))
    want=$(wanted "base_$p" "$1")
    [ "$left" -ge "$want" ] || add_base_orders "$p" $(( want - left ))
  done
  left=$(( have[proxy] - ${proxy_next:-1} + 1 ))
  want=$(wanted proxy_stripe "$1")
  [ "$left" -ge "$want" ] || { add_callbacks proxy $(( want - left )); made+=" $(( want - left )) proxy"; }
  [ -z "$made" ] || log "signed with the fake PSP (Python, $(nproc) processes):$made"
}
top_up "$(( seconds + 2 ))"
q "VACUUM ANALYZE" >/dev/null
q "CHECKPOINT" >/dev/null

# --- pay-proxy -------------------------------------------------------------------------
PAY_PROXY_DSN="host=$work port=$port dbname=postgres user=proxy" \
  proxy/pay-proxy --listen "127.0.0.1:$proxy_port" --pool-size "$clients" 2>"$work/proxy.log" &
proxy_pid=$!
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$proxy_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$proxy_port/healthz" >/dev/null ||
  { echo "pay-proxy did not start:" >&2; cat "$work/proxy.log" >&2; exit 1; }
proxy_next=1

# run_wrk SECONDS — through pay-proxy, starting with the first proxy callback
# not used yet: sets res_rate, res_n, res_ticks and res_proxy_ticks (pay-proxy's
# CPU) and proxy_next; not in a subshell
run_wrk() {
  local out=$work/wrk.log c0 c1 p0 p1
  c0=$(server_ticks) p0=$(proxy_ticks)
  wrk -t "$wrk_threads" -c "$clients" -d "${1}s" -s "$bench/callbacks.lua" "http://127.0.0.1:$proxy_port" \
    -- "$work/proxy.req" "$wrk_threads" "$proxy_next" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
  sleep 0.5                         # requests still in the proxy when wrk stopped
  c1=$(server_ticks) p1=$(proxy_ticks)
  if grep -qE 'Non-2xx|Socket errors' "$out"; then
    echo "wrk: some requests failed (or the signed callbacks ran out):" >&2; cat "$out" >&2; exit 1
  fi
  # the next unused record: the proxy orders are numbered P-1, P-2... in file order
  proxy_next=$(q "SELECT coalesce(max(substr(merchant_order_no, 7)::int), 0) + 1 FROM pay.orders
                   WHERE merchant_order_no LIKE 'proxy-%' AND status <> 'pending'")
  res_n=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$out")
  res_rate=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)$/\1/p' "$out")
  res_ticks=$(( c1 - c0 )) res_proxy_ticks=$(( p1 - p0 ))
}
run_wrk 2                             # warm-up

# --- the rounds --------------------------------------------------------------------------
declare -A rate cpu pcpu
for r in $(seq "$rounds"); do
  [ "$r" = 1 ] || top_up "$seconds"
  log "round $r of $rounds: ${seconds} s each"
  for s in base_stripe pay_stripe proxy_stripe base_alipay pay_alipay; do
    if [ "$s" = proxy_stripe ]; then
      run_wrk "$seconds"
      pcpu[$r]=$(per_call_us "$res_proxy_ticks" "$res_n")
    else
      run_pgbench "$s" -T "$seconds"
    fi
    rate[$s,$r]=$res_rate
    peak[$s]=$(awk -v a="${peak[$s]}" -v b="$res_rate" 'BEGIN { print (b > a ? b : a) }')
    cpu[$s,$r]=$(per_call_us "$res_ticks" "$res_n")
  done
  check_left
done

if [ "$profile" = 1 ]; then
  q "CREATE EXTENSION pg_stat_statements" >/dev/null
  q "ALTER SYSTEM SET track_functions = 'all'" >/dev/null
  q "ALTER SYSTEM SET pg_stat_statements.track = 'all'" >/dev/null
  q "SELECT pg_reload_conf()" >/dev/null
  top_up "$(( seconds / 2 > 2 ? seconds / 2 : 2 ))"
  for p in stripe alipay; do
    log "profile: pay $p"
    q "SELECT pg_stat_statements_reset(), pg_stat_reset()" >/dev/null
    run_pgbench "pay_$p" -T "$(( seconds / 2 > 2 ? seconds / 2 : 2 ))"
    prof_rate=$res_rate
    check_left
    sleep 0.6                         # function statistics reach the cumulative store
    {
      printf '\nprofile, pay %s (%.0f callbacks/s, %s clients, with the statistics on); per callback:\n' "$p" "$prof_rate" "$clients"
      psql -P pager=off -c "
        WITH n AS (SELECT calls FROM pg_stat_user_functions WHERE funcname = 'handle_callback')
        SELECT funcname AS function, f.calls / n.calls AS calls,
               round((f.total_time / n.calls * 1000)::numeric) AS total_us,
               round((f.self_time / n.calls * 1000)::numeric) AS self_us
          FROM pg_stat_user_functions f, n
         WHERE f.schemaname = 'pay' ORDER BY f.self_time DESC LIMIT 30"
      psql -P pager=off -c "
        WITH n AS (SELECT calls FROM pg_stat_user_functions WHERE funcname = 'handle_callback')
        SELECT round(s.calls::numeric / n.calls, 1) AS calls,
               round((s.total_exec_time / n.calls * 1000)::numeric) AS total_us,
               left(regexp_replace(s.query, '\s+', ' ', 'g'), 100) AS statement
          FROM pg_stat_statements s, n
         WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = 'postgres') AND NOT s.toplevel
         ORDER BY s.total_exec_time DESC LIMIT 30"
    } >>"$work/profile.txt"
  done
fi

# --- what happened, checked ---------------------------------------------------------------
read -r verdicts paid postings outbox < <(psql -At -F' ' -c "
  SELECT (SELECT string_agg(verdict || '=' || n, ',' ORDER BY verdict) FROM (SELECT verdict, count(*) n FROM pay.callbacks GROUP BY verdict) v),
         (SELECT count(*) FROM pay.orders WHERE status = 'paid'),
         (SELECT count(*) FROM pay.postings),
         (SELECT count(*) FROM pay.outbox WHERE kind = 'merchant_notification')")
read -r base_cb base_paid < <(psql -At -F' ' -c "
  SELECT (SELECT count(*) FROM bench.callbacks), (SELECT count(*) FROM bench.orders WHERE status = 'paid')")
if [ "$verdicts" != "accepted=$paid" ] || [ "$postings" != "$paid" ] || [ "$outbox" != "$paid" ] || [ "$base_cb" != "$base_paid" ]; then
  echo "check failed: callbacks $verdicts, paid orders $paid, postings $postings, notifications $outbox;" \
       "baseline callbacks $base_cb, paid $base_paid" >&2
  exit 1
fi
log "done"

# --- the report ------------------------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.0f", m }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
vals() { local r; for r in $(seq "$rounds"); do echo "${rate[$1,$r]}"; done; }
med() { median $(vals "$1"); }
cmed() { local r v=(); for r in $(seq "$rounds"); do v+=("${cpu[$1,$r]}"); done; median "${v[@]}"; }
row() {
  printf '  %-36s' "$2"
  printf ' %9.0f' $(vals "$1")
  printf ' %9s %9s\n' "$(med "$1")" "$(cmed "$1")"
}
ratio_row() {
  local r
  printf '  %-36s' "$1"
  for r in $(seq "$rounds"); do printf ' %9s' "$(ratio "${rate[$2,$r]}" "${rate[$3,$r]}")"; done
  printf ' %9s %9s   %s\n' "$(ratio "$(med "$2")" "$(med "$3")")" "$(ratio "$(cmed "$3")" "$(cmed "$2")")" "$4"
}
header() {
  local r
  printf '%-38s' "$1"
  for r in $(seq "$rounds"); do printf ' %9s' "round $r"; done
  printf ' %9s %9s\n' median "cpu us"
}

pgv=$(postgres --version | awk '{print $3}')
wrkv=$(wrk --version 2>&1 | awk 'NR == 1 {print $2}' || true)
{
cat <<REPORT
pay callback benchmark: $(nproc) cores, PostgreSQL $pgv, $(date -u '+%Y-%m-%d %H:%M UTC'), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)
durability: PostgreSQL defaults (fsync = on, synchronous_commit = on, full_page_writes = on), WAL on the local disk
method: $clients clients, ${seconds} s per measurement, $rounds rounds run in turn, medians; each transaction is one
        valid "paid" callback signed by test/fake_psp for a distinct pending order, one statement
        (pgbench -M prepared -c $clients -j $(nproc)); baseline = the same writes on plain copies of pay's
        tables (same indexes; no checks, triggers or constraints), ten statements in one PL/pgSQL function
proxy:  wrk $wrkv (-t $wrk_threads -c $clients, keep-alive, test/bench/callbacks.lua) POSTing the same kind of
        Stripe callbacks to pay-proxy (--pool-size $clients) on 127.0.0.1; direct = pgbench, pay Stripe above
cpu us: CPU time of all PostgreSQL server processes per callback (median); in a ratio row, the CPU
        ratio the other way round (what the rate ratio would be if CPU were the only limit); the
        proxy row without pay-proxy's own CPU, which was ${pcpu[*]} us per request in the rounds

$(header "callbacks per second")
$(row base_stripe "baseline, bare SQL (Stripe rows)")
$(row pay_stripe "pay.handle_callback, Stripe")
$(ratio_row "ratio pay / baseline" pay_stripe base_stripe "(target >= 0.5)")
$(row base_alipay "baseline, bare SQL (Alipay rows)")
$(row pay_alipay "pay.handle_callback, Alipay RSA2")
$(ratio_row "ratio pay / baseline" pay_alipay base_alipay "(target >= 0.5)")

$(header "requests per second")
$(row proxy_stripe "pay-proxy, Stripe (wrk)")
$(row pay_stripe "direct SQL, Stripe (pgbench)")
$(ratio_row "ratio proxy / direct" proxy_stripe pay_stripe "")

checked: pay callbacks $verdicts, paid orders $paid, postings $postings, merchant notifications $outbox;
         baseline callbacks $base_cb, paid orders $base_paid
REPORT
[ "$profile" != 1 ] || cat "$work/profile.txt"
} | tee "$work/report.txt"
