#!/usr/bin/env bash
# Puts the dashboards' chart library (uPlot, pinned by package-lock.json) into
# web/vendor/ under a versioned name, so the static route may cache it for a
# year as immutable (api/static.c): a new version is a new name. Installs the
# npm packages first when they are missing (npm ci: the lock file decides).
# Quiet and quick when everything is in place.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if [ ! -f node_modules/uplot/package.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --silent >/dev/null
fi
ver=$(node -p 'require("./node_modules/uplot/package.json").version')
mkdir -p web/vendor
for f in uPlot.esm.js:uplot-$ver.esm.js uPlot.min.css:uplot-$ver.min.css; do
  src=node_modules/uplot/dist/${f%%:*} dst=web/vendor/${f##*:}
  cmp -s "$src" "$dst" 2>/dev/null || cp "$src" "$dst"
done
# Older versions' copies would otherwise be installed too.
find web/vendor -name 'uplot-*' ! -name "uplot-$ver.*" -delete
