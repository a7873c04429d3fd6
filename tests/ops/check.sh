#!/usr/bin/env bash
# Static operations checks (issue 16), run by `make test` (target ops-check):
# Prometheus rules (syntax and unit tests with synthetic series), the scrape
# config, the systemd units (verify + exposure threshold), and `make install`
# into a DESTDIR (the env file and secrets must be 0600).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bin=${OT_BIN:-$root/build/ordertrack}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "ops-check: FAIL: $*" >&2; exit 1; }

echo "== promtool check rules / test rules / check config"
promtool check rules conf/prometheus/alerts.yml >/dev/null || fail "promtool check rules"
promtool test rules conf/prometheus/alerts_test.yml >"$t/rules.out" 2>&1 || { cat "$t/rules.out"; fail "promtool test rules"; }
promtool check config conf/prometheus/prometheus.yml >/dev/null || fail "promtool check config"
# Every alert must be unit-tested and carry summary + runbook annotations.
python3 - conf/prometheus/alerts.yml conf/prometheus/alerts_test.yml <<'PY' || fail "alert coverage"
import re, sys
rules = open(sys.argv[1]).read()
tests = open(sys.argv[2]).read()
alerts = re.findall(r"^\s*- alert: (\S+)", rules, re.M)
assert alerts, "no alerts"
blocks = re.split(r"^\s*- alert: ", rules, flags=re.M)[1:]
for a, b in zip(alerts, blocks):
    assert "summary:" in b and "runbook:" in b, "%s lacks summary/runbook" % a
    assert re.search(r"alertname: %s\s*\n\s*exp_alerts:\s*\n\s*- exp_labels" % re.escape(a), tests), \
        "%s has no firing test case" % a
print("  %d alerts, each with summary, runbook and a firing test" % len(alerts))
PY

echo "== systemd-analyze verify / security"
for u in ordertrack.service ordertrack@.service; do
  sed "s|/usr/local/bin/ordertrack|$bin|" "conf/systemd/$u" >"$t/$u"
done
cp "$t/ordertrack@.service" "$t/ordertrack@0.service"
# verify needs the ExecStart binary to exist: the build's stands in for the installed one.
(cd "$t" && systemd-analyze verify ./ordertrack.service ./ordertrack@0.service) || fail "systemd-analyze verify"
for u in ordertrack.service ordertrack@0.service; do
  score=$(cd "$t" && systemd-analyze security --offline=yes "./$u" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  echo "  $u exposure $score"
  # --threshold is on systemd's 0..100 scale: 20 = "2.0". Above it fails.
  (cd "$t" && systemd-analyze security --offline=yes --threshold=20 "./$u" >/dev/null 2>&1) ||
    fail "$u exposure $score above 2.0"
done
grep -q '^LimitNOFILE=1048576' conf/systemd/ordertrack.service || fail "LimitNOFILE"
grep -q '^CPUAffinity=%i' conf/systemd/ordertrack@.service || fail "CPUAffinity"

echo "== make install DESTDIR (modes)"
make -s install DESTDIR="$t/root" PREFIX=/usr/local >/dev/null
etc=$t/root/usr/local/etc/ordertrack
for f in ordertrack.env jwt_secret database_url; do
  [ -f "$etc/$f" ] || fail "$f not installed"
  m=$(stat -c %a "$etc/$f")
  [ "$m" = 600 ] || fail "$f installed with mode $m, want 600"
done
[ "$(wc -c <"$etc/jwt_secret")" -ge 33 ] || fail "generated jwt_secret shorter than 32 bytes"
before=$(cat "$etc/jwt_secret")
make -s install DESTDIR="$t/root" PREFIX=/usr/local >/dev/null
[ "$(cat "$etc/jwt_secret")" = "$before" ] || fail "a second make install replaced the existing jwt_secret"
for u in ordertrack.service ordertrack@.service; do
  [ -f "$t/root/usr/local/lib/systemd/system/$u" ] || fail "$u not installed"
done
[ -f "$t/root/usr/local/share/ordertrack/grafana/ordertrack.json" ] || fail "dashboard not installed"
[ -f "$t/root/usr/local/share/ordertrack/prometheus/alerts.yml" ] || fail "alerts not installed"
echo "ops-check: all passed"
