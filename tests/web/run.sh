#!/usr/bin/env bash
# Browser tests (issue 15): Playwright (playwright-core from npm, pinned by
# package-lock.json) drives Debian's /usr/bin/chromium headless against the
# real binary and a throw-away PostgreSQL database, as the integration tests
# do. Screenshots land in build/web-artifacts/. Arguments pass to node --test;
# `run.sh --bench` runs tests/web/bench.mjs instead (scripts/bench-web.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
export OT_BIN=${OT_BIN:-$root/build/ordertrack}
[ -x "$OT_BIN" ] || { echo "test-web: $OT_BIN is missing; run make first" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "test-web: /usr/bin/chromium is missing (scripts/setup-deps.sh installs it)" >&2; exit 1; }
scripts/services.sh
scripts/web-vendor.sh

pg=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres -d postgres)
db=ot_web_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
"${pg[@]}" -c "CREATE DATABASE $db"
trap '"${pg[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true' EXIT
export OT_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/$db
out=$("$OT_BIN" migrate --database-url "$OT_DATABASE_URL" 2>&1) || { echo "$out" >&2; exit 1; }
export OT_ADMIN_EMAIL=admin-web@example.com OT_ADMIN_PASSWORD=admin-web-pass-123
out=$("$OT_BIN" user add --email "$OT_ADMIN_EMAIL" --name "Web Admin" --password-stdin --admin \
  --database-url "$OT_DATABASE_URL" <<<"$OT_ADMIN_PASSWORD" 2>&1) || { echo "$out" >&2; exit 1; }
mkdir -p build/web-artifacts
rm -f build/web-artifacts/server-*.log
if [ "${1:-}" = --bench ]; then
  node tests/web/bench.mjs
else
  # Test files named on the command line run alone; otherwise all of them.
  files=(tests/web/)
  for a in "$@"; do [[ $a == *.test.mjs ]] && files=(); done
  node --test --test-concurrency=1 "$@" "${files[@]}"
fi
# As conftest does for the integration tests: a sanitizer report in a
# server's log (OT_BIN=build/asan/ordertrack) fails the run.
if grep -l -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' -e ': runtime error:' build/web-artifacts/server-*.log 2>/dev/null; then
  echo "test-web: a server logged a sanitizer report (above)" >&2
  exit 1
fi
