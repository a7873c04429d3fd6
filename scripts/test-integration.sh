#!/usr/bin/env bash
# Integration tests: the real binary against the real PostgreSQL and Redis.
# Creates a throw-away database ot_it_<random>, migrates it with $OT_BIN,
# runs pytest on tests/integration (extra arguments are passed to pytest; test
# files among them replace the directory) and
# always drops the database. Exits with pytest's status.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export OT_BIN=${OT_BIN:-$root/build/ordertrack}
[ -x "$OT_BIN" ] || { echo "test-integration: $OT_BIN is missing; run make first" >&2; exit 1; }

scripts/services.sh

pg=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres -d postgres)
db=ot_it_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
"${pg[@]}" -c "CREATE DATABASE $db"
# WITH (FORCE): a server a test left running must not keep the database alive.
trap '"${pg[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true' EXIT

export OT_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/$db
export OT_REDIS_URL=${OT_REDIS_URL:-redis://127.0.0.1:6379}
# The WebSocket interop test drives Node's `ws` package (pinned in package.json).
if [ ! -d tests/integration/node/node_modules/ws ]; then
  npm install --prefix tests/integration/node --no-audit --no-fund --no-package-lock --silent >/dev/null
fi
# test_static serves the chart library from web/vendor/ (npm ci, package-lock.json).
scripts/web-vendor.sh
out=$("$OT_BIN" migrate --database-url "$OT_DATABASE_URL" 2>&1) || { echo "$out" >&2; exit 1; }

set +e
# Test files or directories named on the command line run alone (pytest
# would otherwise collect them on top of the whole directory).
paths=(tests/integration)
for a in "$@"; do [[ $a == tests/* && -e ${a%%::*} ]] && paths=(); done
/usr/bin/python3 -m pytest -q -x -p no:cacheprovider "${paths[@]}" "$@"
rc=$?
set -e
exit "$rc"
