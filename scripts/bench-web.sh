#!/usr/bin/env bash
# The dashboards' benchmark (docs/BENCHMARKS.md "Dashboards"): commit -> admin
# DOM latency and frame times, tests/web/bench.mjs against a throw-away
# database set up as for the browser tests.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "$root/tests/web/run.sh" --bench
