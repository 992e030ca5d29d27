#!/usr/bin/env bash
# test/bench/signer_rsa.sh — RSA-2048 verification rates of the SQL signers
# beside OpenSSL's own single-core rate, in one run (under a minute).
#
#   pay.alipay_signature_valid  a typical 12-parameter Alipay notify
#   pay.rsa_sha256_valid        its canonical string, signature and key as text
#   openssl speed -seconds 2 rsa2048   raw RSA-2048 verify, one core
#
# Starts its own throwaway cluster (test/lib/tmp-install, initdb, pg_ctl in a
# temporary directory; as root the server runs as the postgres user) with
# parallel query off, so that each rate is one backend on one core.  The
# public key is the bare base64 body that the Alipay console hands out.
# Three rounds of (openssl speed, the SQL rates with BENCH_ROWS (default
# 50000) verifications each); the best figure of each is reported.  Rates are
# per CPU second, as openssl speed's are (see below).  Target: ratio >= 0.8.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rows=${BENCH_ROWS:-50000}

if [ "$(id -u)" = 0 ]; then
  work=$(mktemp -d /tmp/signer-rsa-bench.XXXXXX)
  rsync -a --exclude .git --exclude '*.o' --exclude '*.so' --exclude '*.bc' "$top/" "$work/tree/"
  chown -R postgres: "$work"
  status=0
  runuser -u postgres -- env BENCH_WORK="$work" BENCH_ROWS="$rows" "$work/tree/test/bench/signer_rsa.sh" || status=$?
  rm -rf "$work"
  exit $status
fi

work=${BENCH_WORK:-}
own_work=0
[ -n "$work" ] || { work=$(mktemp -d "${TMPDIR:-/tmp}/signer-rsa-bench.XXXXXX"); own_work=1; }
cd "$top"
make -s >/dev/null
bindir=$(test/lib/tmp-install "$work/install")
port=$((20000 + RANDOM % 20000))
"$bindir/initdb" -D "$work/data" -A trust -U postgres >/dev/null
"$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
  -o "-p $port -k $work -c listen_addresses= -c fsync=off -c max_parallel_workers_per_gather=0" start >/dev/null
trap '"$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
      [ "$own_work" = 0 ] || rm -rf "$work"' EXIT

export PGOPTIONS="-c bench.clk_tck=$(getconf CLK_TCK)"
psql() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres -d postgres "$@"; }

psql -v rows="$rows" -v priv="$(cat test/vectors/keys/a_pkcs8.pem)" <<'SQL'
CREATE EXTENSION pay;
-- a notify like Alipay's (sign and sign_type are not signed), signed once
CREATE TABLE notify AS
  SELECT p || jsonb_build_object('sign', pay.alipay_sign(p, :'priv', '{sign,sign_type}')) AS p
  FROM (SELECT '{"gmt_create":"2024-05-01 12:00:01","charset":"utf-8","subject":"测试订单","buyer_id":"2088102177846875",
                 "notify_id":"2024050100222120001045871449048","notify_type":"trade_status_sync",
                 "trade_status":"TRADE_SUCCESS","app_id":"2021000117650139","out_trade_no":"20240501000001",
                 "total_amount":"88.88","trade_no":"2024050122001446870501234567","notify_time":"2024-05-01 12:00:06",
                 "sign_type":"RSA2"}'::jsonb AS p) s, generate_series(1, :rows);
CREATE TABLE message AS
  SELECT pay.canonical_query(p) AS m, p->>'sign' AS s FROM notify;
VACUUM ANALYZE notify, message;
-- CPU seconds (user + system) this backend has used so far, from /proc/self/stat
CREATE FUNCTION cpu_s() RETURNS numeric LANGUAGE sql AS $$
  SELECT (f[12]::numeric + f[13]::numeric) / current_setting('bench.clk_tck')::numeric
  FROM (SELECT regexp_split_to_array(substring(pg_read_file('/proc/self/stat') FROM '^.*\) (.*)$'), ' ') AS f) x $$;
-- verifications per CPU second and per wall-clock second of one query, both
-- timed inside the server (the one key parse of the first call included)
CREATE FUNCTION rate(q text, OUT cpu numeric, OUT wall numeric) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; c0 numeric; n bigint;
BEGIN
  c0 := cpu_s(); t0 := clock_timestamp();
  EXECUTE q INTO n;
  wall := round(n / extract(epoch FROM clock_timestamp() - t0));
  cpu := round(n / (cpu_s() - c0));
  IF n <> (SELECT count(*) FROM notify) THEN RAISE EXCEPTION 'only % of the signatures verified', n; END IF;
END $$;
SQL
pub=$(cat test/vectors/keys/a_spki.b64)
params=$(psql -At -c "SELECT count(*) FROM jsonb_object_keys((SELECT p FROM notify LIMIT 1)) k WHERE k NOT IN ('sign', 'sign_type')")
bytes=$(psql -At -c "SELECT octet_length(m) FROM message LIMIT 1")

# Three rounds, each: openssl, then the two SQL rates; the best of each counts.
# openssl speed divides by user CPU time (not wall time, unless -elapsed), so
# the SQL rates that the ratios use are per CPU second (user + system) of the
# backend too: a busy shared machine slows both alike.  Wall-clock rates are
# shown beside them.
raw=0 alipay=0 alipay_wall=0 rsa=0 rsa_wall=0
max() { [ "$1" -gt "$2" ] && echo "$1" || echo "$2"; }
for round in 1 2 3; do
  r=$(openssl speed -seconds 2 -mr rsa2048 2>/dev/null | awk -F: '/^\+F2:/ && $3 == 2048 {printf "%d", $5}')
  read -r a aw < <(psql -At -F' ' -v pub="$pub" <<'SQL'
SELECT * FROM rate(format('SELECT count(*) FROM notify WHERE pay.alipay_signature_valid(p, %L)', :'pub'));
SQL
)
  read -r v vw < <(psql -At -F' ' -v pub="$pub" <<'SQL'
SELECT * FROM rate(format('SELECT count(*) FROM message WHERE pay.rsa_sha256_valid(m, s, %L)', :'pub'));
SQL
)
  raw=$(max "$r" "$raw")
  alipay=$(max "$a" "$alipay"); alipay_wall=$(max "$aw" "$alipay_wall")
  rsa=$(max "$v" "$rsa"); rsa_wall=$(max "$vw" "$rsa_wall")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "RSA-2048 verifications per CPU second, one backend / one core (best of 3 rounds; SQL: $rows a round)"
printf '  %-54s %7d /s\n' "openssl speed -seconds 2 rsa2048 (verify)" "$raw"
printf '  %-54s %7d /s  ratio %s (target >= 0.8)  [wall clock: %d /s]\n' \
  "pay.alipay_signature_valid ($params-parameter notify)" "$alipay" "$(ratio "$alipay" "$raw")" "$alipay_wall"
printf '  %-54s %7d /s  ratio %s (target >= 0.8)  [wall clock: %d /s]\n' \
  "pay.rsa_sha256_valid ($bytes-byte canonical string)" "$rsa" "$(ratio "$rsa" "$raw")" "$rsa_wall"
