#!/usr/bin/env bash
# What a NOTIFY inside a write costs PostgreSQL's commits (sql/012), with
# pgbench alone on a bare table in a throw-away database: the same insert as
#   plain   BEGIN; INSERT; SELECT 1; COMMIT
#   notify  BEGIN; INSERT; SELECT pg_notify(...); COMMIT   (the lock per database)
#   after   INSERT; then a NOTIFY transaction of its own with synchronous_commit
#           off (what the server does at worst: one wake per write, uncoalesced)
# and, with one client, the round trip of the wake function against SELECT 1.
# Prints tx/s and the ratios notify/plain and after/plain. Not a test.
#   scripts/bench-notify-lock.sh [seconds=6] [clients=32]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${1:-6}; clients=${2:-32}
make -s build/ordertrack
scripts/services.sh
. "$root/scripts/lib/benchdb.sh"
bench_db ot_bench_notify_$$
"${pg[@]}" -d "$db" -c "CREATE TABLE t (id bigserial PRIMARY KEY, v text)"
printf "BEGIN;\nINSERT INTO t(v) VALUES ('x');\nSELECT 1;\nCOMMIT;\n" >"$tmp/plain.sql"
printf "BEGIN;\nINSERT INTO t(v) VALUES ('x');\nSELECT pg_notify('ot_bench', '{\"seq\":1}');\nCOMMIT;\n" >"$tmp/notify.sql"
printf "INSERT INTO t(v) VALUES ('x');\nBEGIN;\nSELECT set_config('synchronous_commit', 'off', true);\nSELECT pg_notify('ot_bench', '{\"seq\":1}');\nCOMMIT;\n" >"$tmp/after.sql"
echo "SELECT 1;" >"$tmp/one.sql"
echo "SELECT ot_wake_listeners(1);" >"$tmp/wake.sql"
echo "synchronous_commit: $("${pg[@]}" -d "$db" -tAc 'SHOW synchronous_commit')"
tps() { pgbench -h 127.0.0.1 -U postgres -n -M prepared -c "$2" -j 2 -T "$secs" -f "$tmp/$1.sql" "$db" 2>&1 |
          awk '/^tps/ {print $3; exit}'; }
lat() { pgbench -h 127.0.0.1 -U postgres -n -M prepared -c 1 -T "$secs" -f "$tmp/$1.sql" "$db" 2>&1 |
          awk '/latency average/ {print $4 * 1000; exit}'; }
plain=$(tps plain "$clients"); notify=$(tps notify "$clients"); after=$(tps after "$clients")
one=$(lat one); wake=$(lat wake)
printf '%-40s %10s\n' "$clients clients, ${secs}s each" "tx/s"
printf '%-40s %10.0f\n' "plain (insert, SELECT 1)" "$plain" "notify (insert, pg_notify, one commit)" "$notify" \
  "after (insert; async NOTIFY transaction)" "$after"
awk -v a="$notify" -v b="$after" -v p="$plain" 'BEGIN {printf "ratio notify/plain: %.2f   after/plain: %.2f\n", a/p, b/p}'
printf 'one client, latency average: SELECT 1 %s us, SELECT ot_wake_listeners(1) %s us\n' "$one" "$wake"
