# Shared by scripts/kafka.sh and scripts/elasticsearch.sh (sourced, not run).
# Each caller sets SVC_NAME (for messages) before sourcing.

: "${SVC_NAME:=svc}"

say() { echo "$SVC_NAME: $*" >&2; }
die() { say "$*"; exit 1; }

# Downloads live outside the checkout so every worktree and every clean clone
# shares one copy; OT_CACHE_DIR moves the whole cache (both services).
# HOME may be unset under a bare CI runner or cron: fall back to passwd.
svc_cache_root() {
  local h=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
  echo "${OT_CACHE_DIR:-${XDG_CACHE_HOME:-${h:-/tmp}/.cache}/ordertrack}"
}

need_cmd() { # cmd package
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing (Debian package: $2)"
}

# Holds an exclusive lock on FILE on fd 9 until the calling shell exits, so two
# concurrent runs (parallel test jobs, two worktrees) never download, unpack or
# start into the same directory at once. Bounded: a wedged holder is an error.
# Anything started in the background must close fd 9 (`9>&-`), or it holds
# the lock for its whole life.
svc_lock() { # file
  mkdir -p "$(dirname "$1")"
  exec 9>"$1"
  flock -w "${SVC_LOCK_WAIT:-180}" 9 || die "timed out waiting for the lock $1"
}

# Runs maven with a private local repository inside the cache: the result must
# not depend on (or pollute) whatever ~/.m2 this machine happens to hold. The
# private repository is removed afterwards; only the copied artifacts are kept.
# The dependency plugin is pinned: the super-POM default of an old maven lacks
# the goals' current options.
SVC_DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
svc_mvn() { # workdir goal-and-args...
  local dir=$1
  shift
  need_cmd mvn maven
  local repo=$dir/.m2-tmp out
  if ! out=$(cd "$dir" && mvn -B -q -ntp -Dmaven.repo.local="$repo" "$@" 2>&1); then
    echo "$out" | tail -n 30 >&2
    rm -rf "$repo"
    die "maven failed (network? Maven Central must be reachable on the first run)"
  fi
  rm -rf "$repo"
}

pid_alive() { # pid
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

# The pid in FILE, if that process is alive and its command line contains
# MARKER (a reused pid after a reboot or crash must not count as ours).
svc_pid() { # pidfile marker
  local pid
  [ -s "$1" ] || return 1
  pid=$(tr -dc 0-9 <"$1")
  pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
  echo "$pid"
}

# SIGTERM, then SIGKILL once the bound has passed: a clean shutdown flushes the
# store, but stop must never hang a test run.
svc_stop_pid() { # pid bound-seconds
  local pid=$1 bound=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < bound * 10; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  say "pid $pid still alive after ${bound}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  die "pid $pid survived SIGKILL"
}

# True when something already listens on 127.0.0.1:PORT (bash's /dev/tcp: no
# extra tool, and a refused connect fails at once).
port_busy() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints the tail of each existing log file, for a failed start.
svc_log_tail() { # files...
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "---- last lines of $f" >&2
    tail -n 40 "$f" >&2
  done
}

# Major version of the java binary given, 0 when it does not run.
java_major() { # java-binary
  local v
  v=$("$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n 1)
  echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}
