#!/usr/bin/env bash
# A single Elasticsearch node for tests and development, on 127.0.0.1 only,
# security off.
#   scripts/elasticsearch.sh start|stop|status|fetch
# Elasticsearch is not packaged in Debian: the official integ-test-zip (the
# server with a minimal module set, no bundled JDK) comes from Maven Central
# on the first run into a cache outside the checkout (docs/SERVICES.md).
#   ES_PORT (9200)             HTTP
#   ES_TRANSPORT_PORT (9300)   transport (unused by clients, but bound)
#   ES_JAVA_HOME               a JDK >= 21; default Temurin 25, else the newest
#                              >= 21 under /usr/lib/jvm
#   OT_CACHE_DIR               cache root (~/.cache/ordertrack)
#   OT_ES_DIR                  state: config, data, logs, pid (throw-away in tests)
#   OT_ES_USER (ordertrack-es) the system user the node runs as when this
#                              script runs as root (Elasticsearch refuses root)
#   ES_START_TIMEOUT (120)     seconds start waits for yellow or green
# status exits 0 when the cluster is yellow or green, 1 when the process lives
# but is not healthy, 3 when it is not running.
set -euo pipefail

SVC_NAME=elasticsearch
# shellcheck source=lib/svc.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/svc.sh"

version=9.2.0
artifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$version:zip
cache=$(svc_cache_root)/elasticsearch-$version
zip=$cache/elasticsearch-$version.zip
port=${ES_PORT:-9200}
tport=${ES_TRANSPORT_PORT:-9300}
start_timeout=${ES_START_TIMEOUT:-120}
stop_timeout=60

for p in "$port" "$tport" "$start_timeout"; do
  [[ $p =~ ^[0-9]+$ ]] || die "ports and timeouts must be numbers (got '$p')"
done
[ "$port" != "$tport" ] || die "ES_PORT and ES_TRANSPORT_PORT must differ"

# As root the node runs as a system user, which cannot enter root's home
# (mode 700) where the cache lives: the unpacked tree and the default state go
# to that user's own home instead, so no permission of / or ~root changes.
# The zip itself stays in the cache.
if [ "$(id -u)" -eq 0 ]; then
  user=${OT_ES_USER:-ordertrack-es}
  as_user=(runuser -u "$user" --)
  base=/var/lib/$user # useradd's home below; re-read from passwd once it exists
else
  user=$(id -un)
  as_user=()
  base=$cache
fi

resolve_base() {
  local h
  if [ ${#as_user[@]} -gt 0 ] && h=$(getent passwd "$user" | cut -d: -f6) && [ -n "$h" ]; then base=$h; fi
  install=$base/elasticsearch-$version
  state=${OT_ES_DIR:-$base/state-$version}
  pidfile=$state/run/es.pid
}
resolve_base

es_java_home() {
  local j cand best="" bestv=0 v
  if [ -n "${ES_JAVA_HOME:-}" ]; then
    [ "$(java_major "$ES_JAVA_HOME/bin/java")" -ge 21 ] || die "ES_JAVA_HOME=$ES_JAVA_HOME is not a JDK >= 21"
    echo "$ES_JAVA_HOME"
    return
  fi
  j=/usr/lib/jvm/temurin-25-jdk-amd64
  if [ -x "$j/bin/java" ] && [ "$(java_major "$j/bin/java")" -ge 21 ]; then
    echo "$j"
    return
  fi
  for cand in /usr/lib/jvm/*/; do
    cand=${cand%/}
    [ -x "$cand/bin/java" ] && [ ! -L "$cand" ] || continue
    v=$(java_major "$cand/bin/java")
    if [ "$v" -ge 21 ] && [ "$v" -gt "$bestv" ]; then best=$cand bestv=$v; fi
  done
  [ -n "$best" ] || die "Elasticsearch $version needs a JDK >= 21 (none under /usr/lib/jvm; set ES_JAVA_HOME)"
  echo "$best"
}

fetch() {
  [ -s "$zip" ] && [ -e "$cache/.complete" ] && return 0
  svc_lock "$cache/.fetch.lock"
  [ -s "$zip" ] && [ -e "$cache/.complete" ] && return 0
  say "downloading $artifact from Maven Central into $cache (first run only, ~100 MB)"
  local t0=$SECONDS work=$cache/.fetch
  rm -rf "$work"
  mkdir -p "$work"
  # An empty project of type pom: the plugin wants one to run in.
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ordertrack</groupId>
  <artifactId>elasticsearch-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
</project>
EOF
  svc_mvn "$work" "$SVC_DEP_PLUGIN:copy" -Dartifact="$artifact" -DoutputDirectory="$work/out"
  # A zip cut short by a dropped connection must not become the cache.
  unzip -tqq "$work/out/elasticsearch-$version.zip" >/dev/null || die "the downloaded zip is damaged; run again"
  mv -f "$work/out/elasticsearch-$version.zip" "$zip"
  rm -rf "$work"
  touch "$cache/.complete"
  say "fetched $(du -h "$zip" | cut -f1) in $((SECONDS - t0))s"
}

ensure_user() {
  [ ${#as_user[@]} -gt 0 ] || return 0
  id "$user" >/dev/null 2>&1 && return 0
  need_cmd useradd passwd
  say "creating system user $user (home $base): Elasticsearch refuses to run as root"
  useradd -r -m -d "$base" -s /usr/sbin/nologin -U -c "ordertrack test Elasticsearch" "$user" ||
    id "$user" >/dev/null 2>&1 || die "useradd $user failed"
}

unpack() {
  [ -e "$install/.complete" ] && return 0
  need_cmd unzip unzip
  say "unpacking into $install"
  local tmp=$base/.unpack-$$
  rm -rf "$tmp" "$install"
  mkdir -p "$tmp"
  unzip -qq "$zip" -d "$tmp"
  mv "$tmp/elasticsearch-$version" "$install"
  rm -rf "$tmp"
  # The node writes its gc log and keystore next to the tree: it must own it.
  [ ${#as_user[@]} -eq 0 ] || chown -R "$user:" "$install"
  touch "$install/.complete"
}

install_all() {
  need_cmd flock util-linux
  fetch
  svc_lock "$cache/.install.lock"
  ensure_user
  resolve_base
  [ -d "$base" ] || die "the home $base of user $user does not exist"
  unpack
}

# A private config dir per state dir (ES_PATH_CONF): the keystore the node
# creates there and the jvm options stay with that state, so a test's
# throw-away node and a developer's long-lived one can share one tree.
prepare_state() {
  mkdir -p "$state"
  local d
  for d in config data logs run tmp; do mkdir -p "$state/$d"; done
  if [ ! -e "$state/config/elasticsearch.yml" ]; then
    cp -r "$install/config/." "$state/config/"
    # The stock gc log may grow to 32 x 64 MB: a test node needs far less.
    sed -i 's/filecount=32,filesize=64m/filecount=2,filesize=16m/' "$state/config/jvm.options"
  fi
  if [ ${#as_user[@]} -gt 0 ]; then
    chown "$user:" "$state"
    chown -R "$user:" "$state/config" "$state/data" "$state/logs" "$state/run" "$state/tmp"
    "${as_user[@]}" test -w "$state/data" -a -x "$install/bin" ||
      die "user $user cannot reach $state (choose OT_ES_DIR under a directory others may enter, e.g. /tmp)"
  fi
}

health() { # prints green|yellow|red, or nothing
  curl -s -m 3 "http://127.0.0.1:$port/_cluster/health" 2>/dev/null |
    sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'
}
healthy() { case "$(health)" in green | yellow) return 0 ;; esac; return 1; }

# The server JVM (not the launcher) carries ES_TMPDIR, which is per state.
running_pid() { svc_pid "$pidfile" "-Djava.io.tmpdir=$state/tmp "; }

start() {
  need_cmd curl curl
  install_all
  mkdir -p "$state"
  svc_lock "$state/.lock"
  prepare_state
  local pid
  if pid=$(running_pid); then
    healthy && return 0
    die "pid $pid runs but is not healthy on 127.0.0.1:$port (see $state/logs, or stop it)"
  fi
  for p in "$port" "$tport"; do
    port_busy "$p" && die "127.0.0.1:$p is already in use by another process (set ES_PORT / ES_TRANSPORT_PORT)"
  done
  local jh t0=$SECONDS rc=0 out=$state/logs/start.out
  jh=$(es_java_home)
  rm -f "$pidfile"
  # -d: the launcher returns once the node has started (or failed) and leaves
  # the server running with its own pid in the pid file. Its env is spelled
  # out: runuser passes root's environment, and a stray JAVA_HOME or
  # ES_PATH_CONF from the caller must not leak in.
  (cd "$install" && timeout "$start_timeout" "${as_user[@]}" env -u JAVA_HOME \
    ES_JAVA_HOME="$jh" ES_JAVA_OPTS="-Xms512m -Xmx512m" ES_PATH_CONF="$state/config" ES_TMPDIR="$state/tmp" \
    bin/elasticsearch -d -p "$pidfile" \
    -E cluster.name=ordertrack-test -E node.name=ot-es-1 \
    -E path.data="$state/data" -E path.logs="$state/logs" \
    -E discovery.type=single-node -E network.host=127.0.0.1 \
    -E http.port="$port" -E transport.port="$tport" \
    -E xpack.security.enabled=false \
    -E cluster.routing.allocation.disk.threshold_enabled=false \
    >"$out" 2>&1 </dev/null 9>&-) || rc=$?
  if [ "$rc" -ne 0 ]; then
    svc_log_tail "$out" "$state/logs/ordertrack-test.log"
    pid=$(running_pid) && svc_stop_pid "$pid" "$stop_timeout"
    die "the launcher failed (exit $rc)"
  fi
  pid=$(running_pid) || { svc_log_tail "$out" "$state/logs/ordertrack-test.log"; die "no server process after the launcher returned"; }
  while ! healthy; do
    if ! pid_alive "$pid"; then
      svc_log_tail "$out" "$state/logs/ordertrack-test.log"
      die "the node exited during start"
    fi
    if ((SECONDS - t0 >= start_timeout)); then
      svc_log_tail "$state/logs/ordertrack-test.log"
      svc_stop_pid "$pid" "$stop_timeout"
      die "not yellow or green on 127.0.0.1:$port within ${start_timeout}s (last: $(health))"
    fi
    sleep 0.5
  done
  say "up on 127.0.0.1:$port, $(health) (pid $pid, java $(basename "$jh"), $((SECONDS - t0))s, state $state)"
}

stop() {
  [ -d "$state" ] || return 0
  svc_lock "$state/.lock"
  local pid
  if pid=$(running_pid); then
    svc_stop_pid "$pid" "$stop_timeout"
    say "stopped (pid $pid)"
  fi
  rm -f "$pidfile"
}

status() {
  local pid
  if ! pid=$(running_pid); then
    echo "elasticsearch: not running (state $state)"
    return 3
  fi
  if healthy; then
    echo "elasticsearch: up on 127.0.0.1:$port, $(health) (pid $pid)"
    return 0
  fi
  echo "elasticsearch: pid $pid runs but is not healthy on 127.0.0.1:$port (health: $(health))"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  fetch) fetch ;;
  *) echo "usage: $0 start|stop|status|fetch" >&2; exit 2 ;;
esac
