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
  maven unzip openjdk-17-jre-headless # scripts/kafka.sh, scripts/elasticsearch.sh
)

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
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
