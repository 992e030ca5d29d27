# test/bench/lib.sh — sourced by the benchmark scripts: a throwaway server.
#
# bench_as_postgres SCRIPT ARGS — as root, copy the tree to a temporary folder
#   owned by the postgres user and re-run SCRIPT there as that user
#   (PostgreSQL refuses to run as root); as anyone else, return.
# bench_server — build, install into a private copy of PostgreSQL
#   (test/lib/tmp-install), initdb with default settings and start a server
#   on a socket in the work folder, with pay preloaded; load setup.sql.
#   Sets bench, work, data; PATH and PGHOST point at the server.  The server
#   is stopped and the folder removed on exit (KEEP=1 keeps it).

# The settings every script passes on when it re-runs itself as postgres.
bench_env_names="CLIENTS THREADS DURATION ROUNDS MERCHANTS WARMUP ITEMS VARIANT KEEP"

bench_as_postgres() {
  local script=$1 top env=() v work
  shift
  [ "$(id -u)" = 0 ] || return 0
  top=$(cd "$(dirname "$script")/../.." && pwd)
  work=$(mktemp -d /tmp/pay-core-bench.XXXXXX)
  rsync -a --exclude .git --exclude '*.o' --exclude '*.so' "$top/" "$work/tree/"
  if [ -n "${VARIANT:-}" ]; then cp "$VARIANT" "$work/variant.sql"; VARIANT=$work/variant.sql; fi
  chown -R postgres: "$work"
  for v in $bench_env_names; do env+=("$v=${!v:-}"); done
  exec runuser -u postgres -- env PAY_BENCH_WORK="$work" "${env[@]}" \
    "$work/tree/test/bench/$(basename "$script")" "$@"
}

# Stop the server and remove the folder, however we leave.
bench_cleanup() {
  if [ -f "$data/postmaster.pid" ]; then pg_ctl -D "$data" -m fast stop >/dev/null 2>&1; fi
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}

bench_server() {
  local top bindir
  top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  bench=$top/test/bench
  work=${PAY_BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/pay-core-bench.XXXXXX")}
  data=$work/data
  trap bench_cleanup EXIT
  (cd "$top" && make -s) >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
  bindir=$("$top/test/lib/tmp-install" "$work/install")
  export PATH="$bindir:$PATH" PGHOST=$work PGDATABASE=postgres
  unset PGPORT PGUSER
  initdb -D "$data" -A trust -N >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; exit 1; }
  # Only what a benchmark needs to differ from the defaults: no TCP, the
  # socket in our folder, pay preloaded as in production.  Durability stays
  # at the defaults (fsync, synchronous_commit on).
  pg_ctl -D "$data" -l "$work/server.log" -w \
    -o "-c listen_addresses='' -k $work -c shared_preload_libraries=pay -c pay.allow_private_destinations=on" start >/dev/null
  psql -X -q -v merchants="${MERCHANTS:-100}" -f "$bench/setup.sql" >"$work/setup.log" 2>&1 \
    || { cat "$work/setup.log"; exit 1; }
  if [ -n "${VARIANT:-}" ]; then
    psql -X -q -v ON_ERROR_STOP=1 -f "$VARIANT" >"$work/variant.log" 2>&1 || { cat "$work/variant.log"; exit 1; }
    echo "variant applied: ${VARIANT}"
  fi
}
