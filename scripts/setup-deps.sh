#!/usr/bin/env bash
# Installs the Debian 12 packages ordertrack builds, tests and runs with.
# Idempotent and quiet when everything is present: apt is only touched when
# `dpkg -s` reports a package missing.
set -euo pipefail

pkgs=(
  build-essential pkg-config
  libpq-dev librdkafka-dev libcurl4-openssl-dev libhiredis-dev libssl-dev libjsmn-dev
  libcriterion-dev clang libclang-rt-14-dev
  postgresql postgresql-client redis-server
  python3 python3-pytest python3-psycopg2
  wrk nginx-light kcat hyperfine curl nodejs npm
  prometheus gnuplot-nox systemd openssl
  maven unzip openjdk-17-jre-headless # scripts/kafka.sh, scripts/elasticsearch.sh
  zlib1g-dev chromium # api/static.c gzips; tests/web drive Debian's Chromium (never a downloaded one)
)
# Debian has no promtool-only package: `prometheus` ships promtool beside the
# server. Its postinst would start the server; policy-rc.d (below) stops that.

missing=()
for p in "${pkgs[@]}"; do
  # NodeSource's nodejs bundles npm and conflicts with Debian's npm package:
  # a working command is what we need, whoever provides it.
  case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  # "install ok installed": dpkg -s also succeeds for removed-but-configured packages.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup-deps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup-deps: need root (or sudo) to install packages" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# invoke-rc.d asks policy-rc.d before starting a packaged service; exit 101 =
# "not allowed". Only ours is removed again, an existing one is left alone.
own_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo[@]}" chmod 0755 /usr/sbin/policy-rc.d
  own_policy=1
fi
trap '[ "$own_policy" = 1 ] && "${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Belt and braces on machines where systemd does run: promtool is all we use.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
