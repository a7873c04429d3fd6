# Shared by the benchmarks (sourced, not run): a throw-away database, migrated,
# with one customer. Sets tmp (a scratch directory), db, pg (psql argv), url
# and uid; the EXIT trap stops $ot_pid (if the caller started a server) and
# drops the database and $tmp. Usage: bench_db NAME
bench_db() {
  tmp=$(mktemp -d)
  db=$1
  pg=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
  trap bench_db_cleanup EXIT
  "${pg[@]}" -d postgres -c "CREATE DATABASE $db"
  url=postgresql://postgres@127.0.0.1:5432/$db
  build/ordertrack migrate --database-url "$url" 2>/dev/null
  uid=$(build/ordertrack user add --database-url "$url" --email bench@example.com --name Bench \
          --password bench-password-1 2>/dev/null | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
}

bench_db_cleanup() {
  [ -n "${ot_pid:-}" ] && kill "$ot_pid" 2>/dev/null && wait "$ot_pid" 2>/dev/null || true
  "${pg[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
