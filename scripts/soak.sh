#!/usr/bin/env bash
# `make soak`: SOAK_SECONDS (default 1800) of mixed load against a 2-worker
# server on a throw-away database: REST writes and reads, SOAK_WS (default
# 10000) WebSockets with churn and resumes. RSS, fds, p99 and outbox backlog
# are sampled every 10 s into $SOAK_OUT/soak.csv and plotted to soak.png
# (gnuplot). Fails on RSS slope, fd growth or failed requests (tests/soak/load.py).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${SOAK_OUT:-$root/docs/soak}
workers=${SOAK_WORKERS:-2}
mkdir -p "$out"
make -s build/ordertrack
scripts/services.sh
command -v gnuplot >/dev/null || scripts/setup-deps.sh
# 10,000 client sockets in one process: well past the default 1024. Raise the
# soft limit as far as the hard one allows (containers often cap it at 20000).
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

db=ot_soak_$$
pg=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
secret=$(openssl rand -hex 32)
server=
log=$(mktemp /tmp/ot-soak-server.XXXXXX.log) # warnings only; kept for a failed run
cleanup() {
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  "${pg[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"${pg[@]}" -d postgres -c "CREATE DATABASE $db"
url=postgresql://postgres@127.0.0.1:5432/$db
build/ordertrack migrate --database-url "$url" 2>/dev/null

# 100 customers and one admin, inserted directly; tokens signed here.
users=$("${pg[@]}" -d "$db" -At -c "
  INSERT INTO users (name, email, role, password_hash)
  SELECT 'soak ' || g, 'soak-' || g || '@example.test', 'CUSTOMER', 'x' FROM generate_series(1, 100) g;
  INSERT INTO users (name, email, role, password_hash) VALUES ('soak admin', 'soak-admin@example.test', 'ADMIN', 'x');
  SELECT id, role FROM users ORDER BY created_at;")
eval "$(python3 - "$secret" "$users" <<'PY'
import base64, hashlib, hmac, json, shlex, sys, time
secret, rows = sys.argv[1].encode(), [r.split("|") for r in sys.argv[2].split()]
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
def tok(uid, role):
    si = b(b'{"alg":"HS256","typ":"JWT"}') + "." + b(json.dumps(
        {"sub": uid, "role": role, "iat": int(time.time()), "exp": int(time.time()) + 86400}).encode())
    return si + "." + b(hmac.new(secret, si.encode(), hashlib.sha256).digest())
cust = [[u, tok(u, r)] for u, r in rows if r == "CUSTOMER"]
admin = [tok(u, r) for u, r in rows if r == "ADMIN"][0]
print("export SOAK_ADMIN_TOKEN=%s SOAK_CUSTOMERS=%s" % (shlex.quote(admin), shlex.quote(json.dumps(cust))))
PY
)"

# Every client comes from 127.0.0.1, as behind a load balancer: the per-address
# and per-user abuse limits (on by default) would answer most of the load 429
# and cap the sockets at 256 per worker, so they are off here, as the README
# says for a proxied deployment.
JWT_SECRET=$secret DATABASE_URL=$url build/ordertrack serve --listen 127.0.0.1:"$port" --workers "$workers" \
  --log-level warn --rate-ip 0 --rate-user 0 --max-conns-per-ip 0 --ws-max-per-ip 0 --ws-max-per-user 0 \
  2>"$log" &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

rc=0
SOAK_PORT=$port SOAK_MASTER_PID=$server SOAK_CSV=$out/soak.csv /usr/bin/python3 tests/soak/load.py | tee "$out/summary.txt" ||
  rc=$?

gnuplot <<GP
set terminal pngcairo size 1200,800 noenhanced
set output "$out/soak.png"
set datafile separator ","
set key autotitle columnhead
set multiplot layout 2,2 title "ordertrack soak: $(date -u +%Y-%m-%dT%H:%MZ), ${SOAK_SECONDS:-1800} s, ${SOAK_WS:-10000} WebSockets, $workers workers"
set xlabel "seconds"
set title "server RSS (KiB, master + workers)"; plot "$out/soak.csv" using 1:2 with linespoints notitle
set title "open file descriptors"; plot "$out/soak.csv" using 1:3 with linespoints notitle
set title "REST p99 per 10 s window (ms)"; plot "$out/soak.csv" using 1:4 with linespoints notitle
set title "outbox backlog (events) and WebSockets open / 100"; plot "$out/soak.csv" using 1:5 with linespoints title "backlog", "" using 1:(\$6/100) with linespoints title "ws/100"
unset multiplot
GP
echo "soak: wrote $out/soak.csv, $out/soak.png, $out/summary.txt (server log: $log)"
exit "$rc"
