#!/usr/bin/env bash
# test/bench/dispatcher.sh — the dispatcher's throughput and latency.
#
#  1. throughput: N merchant notifications queued in one transaction, one
#     worker, a local HTTP sink (nginx from Debian if installed, else
#     test/lib/http_peer.py); deliveries per second from COMMIT to the last
#     outcome recorded.
#  2. latency: pgbench queues notifications at a steady RATE per second for
#     DURATION seconds; commit-to-send latency = when the worker handed the request to
#     libcurl (pay.outbox_attempts.started_at) minus the row's created_at
#     (the transaction's start; a one-statement transaction commits within a
#     fraction of a millisecond of it).  Median and p99.
#
# Settings: N (default 20000), RATE (1000), DURATION (10 s), CONCURRENCY (128), SYNC
# (pay.dispatcher_synchronous_commit, default on).
# Durability as a production server has it (fsync and synchronous_commit on).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/test/lib/drop-root"
cd "$top"
N=${N:-20000}; RATE=${RATE:-1000}; DURATION=${DURATION:-10}; CONCURRENCY=${CONCURRENCY:-128}
work=${PAY_WORK:-$(mktemp -d)}/bench-dispatcher
rm -rf "$work"; mkdir -p "$work"
make -s >/dev/null
bindir=$(test/lib/tmp-install "$work/install")
export PATH="$bindir:$PATH"
pgport=55432
sinkport=58080

# The sink: 200 "success" to everything, keep-alive.
sink_pid=
if [ -x /usr/sbin/nginx ]; then
  mkdir -p "$work/nginx"
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$sinkport;
    location / { return 200 "success"; }
  }
}
NGINX
  /usr/sbin/nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" & sink_pid=$!
  sink="nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*\///')"
else
  /usr/bin/python3 test/lib/http_peer.py --port "$sinkport" --port-file "$work/sink.port" & sink_pid=$!
  sink="test/lib/http_peer.py"
fi
cleanup() { pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true; }
trap cleanup EXIT

initdb -D "$work/data" -A trust >/dev/null
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/master.key"; chmod 600 "$work/master.key"
cat >> "$work/data/postgresql.conf" <<CONF
port = $pgport
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'pay'
pay.database = 'postgres'
pay.master_key_file = '$work/master.key'
pay.dispatcher_concurrency = $CONCURRENCY
pay.dispatcher_destination_concurrency = $CONCURRENCY
shared_buffers = '256MB'
pay.dispatcher_synchronous_commit = ${SYNC:-on}
# the sink is on this machine
pay.allow_private_destinations = on
max_wal_size = '4GB'
CONF
pg_ctl -D "$work/data" -l "$work/log" start -w >/dev/null
export PGHOST=$work PGPORT=$pgport PGDATABASE=postgres
sleep 0.5
psql -qAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION pay;
SELECT pay.create_merchant('bench' || i, 'Bench ' || i, 'http://127.0.0.1:$sinkport/notify/' || i) FROM generate_series(1, 4) i;
SELECT pay.set_secret('merchant:bench' || i, 'api_secret', 'bench-secret-' || i) FROM generate_series(1, 4) i;
INSERT INTO pay.orders (merchant_id, merchant_order_no, amount, currency)
SELECT 1 + i % 4, 'B-' || i, 100, 'USD' FROM generate_series(1, $N + 1000) i;
SQL

echo "sink: $sink; one worker, pay.dispatcher_concurrency = $CONCURRENCY, pay.dispatcher_synchronous_commit = ${SYNC:-on}; $(nproc) cores"
echo "== throughput: $N notifications queued in one transaction"
psql -qAt -v ON_ERROR_STOP=1 > "$work/t0" <<SQL
BEGIN;
SELECT count(pay.enqueue_merchant_notification(id, 'bench')) FROM pay.orders WHERE id <= $N;
COMMIT;
SELECT extract(epoch FROM clock_timestamp());
SQL
t0=$(tail -1 "$work/t0")
deadline=$((SECONDS + 300))
until [ "$(psql -qAt -c "SELECT count(*) FROM pay.outbox WHERE state IN ('done', 'dead')")" -ge "$N" ]; do
  [ $SECONDS -lt $deadline ] || { echo "not delivered after 300 s:"; psql -c "SELECT * FROM pay.dispatcher"; \
    psql -c "SELECT state, count(*), max(last_error) FROM pay.outbox GROUP BY 1"; exit 1; }
  sleep 0.2
done
psql -qAt -c "SELECT format('delivered %s in %s s: %s per second (%s attempts, %s failed)', count(*),
      round((extract(epoch FROM max(finished_at)) - $t0)::numeric, 2),
      round(count(*) / (extract(epoch FROM max(finished_at)) - $t0)::numeric),
      (SELECT count(*) FROM pay.outbox_attempts), (SELECT count(*) FROM pay.outbox_attempts WHERE outcome <> 'done'))
  FROM pay.outbox WHERE state = 'done'"

echo "== latency: $RATE notifications per second for $DURATION s (pgbench -R)"
cat > "$work/enqueue.sql" <<SQL
\set id random($N + 1, $N + 1000)
\set e random(1, 2000000000)
SELECT pay.enqueue_merchant_notification(:id, 'l' || :e);
SQL
pgbench -n -c 4 -j 2 -R "$RATE" -T "$DURATION" -f "$work/enqueue.sql" postgres 2>&1 | grep -E 'tps|latency average' | sed 's/^/pgbench: /'
sleep 1
psql -qAt -c "SELECT format('sent %s: commit-to-send median %s ms, p99 %s ms, max %s ms; send-to-answer median %s ms',
      count(*),
      round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
      round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
      round(max(ms)::numeric, 2),
      round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::numeric, 2))
  FROM (SELECT extract(epoch FROM a.started_at - o.created_at) * 1000 AS ms, a.latency_ms
          FROM pay.outbox o JOIN pay.outbox_attempts a ON a.outbox_id = o.id AND a.attempt = 1
         WHERE o.operation LIKE 'l%') s"
psql -qAt -c "SELECT format('worker: %s wake-ups, %s delivered, %s retried, %s dead', wakeups, delivered, retried, dead) FROM pay.dispatcher"
