#!/usr/bin/env bash
# benches/load/run.sh -- one-command load benchmark of http-server, side by side
# with nginx, lighttpd and h2o when they are installed (they are never installed
# by this script). Run it from the project root:
#
#   benches/load/run.sh                                  full run (~2 min per server)
#   DUR=2 IDLE_CONNS=2000 benches/load/run.sh            quick run
#   SERVERS="ours nginx" CONNS="64 1000" benches/load/run.sh
#   TLS=1 OUT=/tmp/load-tls benches/load/run.sh          HTTPS: ours and nginx, one certificate
#
# Knobs (environment):
#   OUT=dir          where results.jsonl, results.md, chart.svg go   [SCRATCH]
#   SCRATCH=dir      fixture, server configs and logs    [${TMPDIR:-/tmp}/http-server-load]
#   DUR=s            seconds per wrk run                                        [10]
#   CONNS="..."      keep-alive connection counts                 ["1 64 1000 10000"]
#   IDLE_CONNS=n     idle keep-alive connections held in the idle test      [10000]
#   SERVERS="..."    servers to measure, if installed  ["ours nginx lighttpd h2o"]
#   WORKLOADS="..."  any of: keepalive close large idle              [all four]
#   THREADS=n        MAX_THREADS of ours                                         [4]
#   OURS_ARGS="..."  extra options for ours (word-split; not ones run.sh passes) []
#   WRK_THREADS=n    wrk -t                                                      [1]
#   WRK_TIMEOUT=2s   wrk -T below 5,000 connections; WRK_TIMEOUT_MANY above    [10s]
#   SERVER_CPU=0 LOAD_CPU=1   taskset pinning of the servers and of wrk/idle.py
#   PORT_BASE=n      first port tried on 127.0.0.1 (a free one is picked)   [18180]
#   SKIP_BUILD=1     do not run cargo build --release
#   TLS=1            every server speaks HTTPS with one ECDSA P-256 certificate
#                    (benches/tls/certs.sh); the defaults become SERVERS="ours nginx",
#                    CONNS=64 and WORKLOADS="keepalive close large" (close: a full
#                    TLS handshake per request)
#
# Workloads: keepalive = GET /index.html (2 KB) at each of CONNS; close = the same
# at c64 with `Connection: close` (a TCP connection per request); large = GET of a
# 10 MiB file at c8 (MB/s); idle = IDLE_CONNS served keep-alive connections held
# open by idle.py: server RSS growth per connection, then a fresh request.
# Each workload gets a freshly started server. Server CPU per request is the
# user+sys time of all its processes/threads from /proc, before/after each run.
#
# Exit status: 0 if ours answered every request of every workload with a 2xx,
# 1 if it had errors or non-2xx answers, 2 if the benchmark itself could not run.
# Everything binds and targets 127.0.0.1 only; every process started here is
# stopped on exit (trap).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCRATCH=${SCRATCH:-${TMPDIR:-/tmp}/http-server-load}
OUT=${OUT:-$SCRATCH}
DUR=${DUR:-10}
TLS=${TLS:-0}
export TLS   # report.py's readiness check speaks HTTPS too
if [ "$TLS" = 1 ]; then
  CONNS=${CONNS:-64}
  SERVERS=${SERVERS:-"ours nginx"}
  WORKLOADS=${WORKLOADS:-"keepalive close large"}
fi
CONNS=${CONNS:-"1 64 1000 10000"}
IDLE_CONNS=${IDLE_CONNS:-10000}
SERVERS=${SERVERS:-"ours nginx lighttpd h2o"}
WORKLOADS=${WORKLOADS:-"keepalive close large idle"}
THREADS=${THREADS:-4}
OURS_ARGS=${OURS_ARGS:-}
WRK_THREADS=${WRK_THREADS:-1}
WRK_TIMEOUT=${WRK_TIMEOUT:-2s}
WRK_TIMEOUT_MANY=${WRK_TIMEOUT_MANY:-10s}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18180}
SKIP_BUILD=${SKIP_BUILD:-0}
C_CLOSE=64
C_LARGE=8

FIX=$SCRATCH/www
CERTS=$SCRATCH/tls
SCHEME=http
RESULTS=$OUT/results.jsonl
BIN=$ROOT/target/release/http-server
HAVE_WRK=1
SPID=       # root PID of the server under test
CHILD=      # wrk or idle.py while one runs

log() { echo "[load] $*" >&2; }
die() { log "ERROR: $*"; exit 2; }
rp() { python3 "$HERE/report.py" "$@"; }

# ---------------------------------------------------------------- setup
build() {
  [ "$SKIP_BUILD" = 1 ] && return 0
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
}

# index.html of exactly 2048 bytes, and a 10 MiB incompressible file (.png is
# served by ours as an application/octet-stream download, by the others as image/png)
make_fixture() {
  mkdir -p "$FIX"
  local head='<!doctype html><html><head><meta charset="utf-8"><title>load fixture</title></head><body><p>'
  local tail='</p></body></html>'
  local fill=$((2048 - ${#head} - ${#tail} - 1))
  { printf '%s' "$head"; printf '%*s' "$fill" '' | tr ' ' 'x'; printf '%s\n' "$tail"; } >"$FIX/index.html"
  if [ "$(stat -c %s "$FIX/big.png" 2>/dev/null)" != 10485760 ]; then
    head -c 10485760 /dev/urandom >"$FIX/big.png" || die "could not write $FIX/big.png"
  fi
}

# wrk from Debian if missing; without it only the idle workload runs
ensure_wrk() {
  command -v wrk >/dev/null && return 0
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  log "wrk not found: ${sudo[*]} apt-get install -y wrk"
  if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y wrk >"$SCRATCH/apt.log" 2>&1; then
    # a fresh machine has no package lists yet
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update >>"$SCRATCH/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y wrk >>"$SCRATCH/apt.log" 2>&1
  fi
  command -v wrk >/dev/null && return 0
  log "could not install wrk (see $SCRATCH/apt.log): skipping the wrk workloads"
  HAVE_WRK=0
}

# 10,000 connections need more than 10,000 descriptors in wrk and in the server;
# children inherit this shell's limit
raise_fds() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null
  NOFILE=$(ulimit -n)
  local most=$IDLE_CONNS c
  for c in $CONNS; do [ "$c" -gt "$most" ] && most=$c; done
  [ "$NOFILE" = unlimited ] && NOFILE=1048576
  [ "$NOFILE" -lt $((most + 200)) ] &&
    log "WARNING: open-file limit $NOFILE is below $((most + 200)): the largest runs will fail"
  MAXCONN=$((most + 1000))                   # every server's connection cap
  [ "$MAXCONN" -gt $((NOFILE - 100)) ] && MAXCONN=$((NOFILE - 100))
  log "open files: $NOFILE, connection cap for every server: $MAXCONN"
}

# the servers on one core, the load generator on the other, so they do not
# steal each other's CPU (2-core machine)
set_pinning() {
  SERVER_PIN=() LOAD_PIN=()
  if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    SERVER_PIN=(taskset -c "$SERVER_CPU") LOAD_PIN=(taskset -c "$LOAD_CPU")
  else
    log "no taskset or only one CPU: running unpinned"
  fi
}

# ---------------------------------------------------------------- server configs
# All: one worker/thread/process, sendfile, no access log, keep-alive 120 s and
# (nearly) unlimited requests per connection, backlog 4096, 127.0.0.1 only.
nginx_conf() {  # DIR PORT
  local d=$1 port=$2
  {
    echo "daemon off; master_process on; worker_processes 1; worker_rlimit_nofile $NOFILE;"
    [ "$(id -u)" = 0 ] && echo "user root;"   # else workers drop to nobody, who may not read $FIX
    cat <<EOF
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $MAXCONN; use epoll; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 120s; keepalive_requests 1000000000;
  types { text/html html; image/png png; }
  default_type application/octet-stream;
  client_body_temp_path $d/body; proxy_temp_path $d/proxy; fastcgi_temp_path $d/fcgi;
  uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;
EOF
    if [ "$TLS" = 1 ]; then
      echo "  server { listen 127.0.0.1:$port ssl backlog=4096; root $FIX;"
      echo "    ssl_certificate $CERTS/cert.pem; ssl_certificate_key $CERTS/key.pem;"
      echo "    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:bench:1m; }"
    else
      echo "  server { listen 127.0.0.1:$port backlog=4096; root $FIX; }"
    fi
    echo "}"
  } >"$d/nginx.conf"
}

lighttpd_conf() {  # DIR PORT  (lighttpd is one process by default)
  cat >"$1/lighttpd.conf" <<EOF
server.document-root = "$FIX"
server.bind = "127.0.0.1"
server.port = $2
server.errorlog = "$1/error.log"
server.modules = ( )
server.event-handler = "linux-sysepoll"
server.network-backend = "sendfile"
server.listen-backlog = 4096
server.max-fds = $NOFILE
server.max-connections = $MAXCONN
# an unsigned short in lighttpd: larger values wrap around
server.max-keep-alive-requests = 65535
server.max-keep-alive-idle = 120
server.max-read-idle = 120
mimetype.assign = ( ".html" => "text/html", ".png" => "image/png" )
EOF
}

# h2o 2.2 has no listen-backlog setting (it asks for the kernel maximum,
# somaxconn) and no per-connection request limit; it has no sendfile either
h2o_conf() {  # DIR PORT
  {
    cat <<EOF
listen:
  host: 127.0.0.1
  port: $2
num-threads: 1
max-connections: $MAXCONN
http1-request-timeout: 120
pid-file: $1/h2o.pid
error-log: $1/error.log
file.send-compressed: OFF
EOF
    [ "$(id -u)" = 0 ] && echo "user: root"   # h2o will not start as root without it
    cat <<EOF
hosts:
  default:
    paths:
      /:
        file.dir: $FIX
EOF
  } >"$1/h2o.conf"
}

installed() {  # SERVER
  case $1 in
    ours) [ -x "$BIN" ] ;;
    nginx | lighttpd | h2o) command -v "$1" >/dev/null ;;
    *) false ;;
  esac
}

# ---------------------------------------------------------------- process control
next_port=$PORT_BASE
start_server() {  # SERVER -> SPID, PORT, SDIR; returns 1 if it did not come up
  local name=$1 cmd
  PORT=$(rp port "$next_port") || return 1
  next_port=$((PORT + 1))      # a new port per start: no TIME_WAIT of the last run in the way
  SDIR=$SCRATCH/run/$name-$PORT
  rm -rf "$SDIR" && mkdir -p "$SDIR"
  case $name in
    ours)
      # shellcheck disable=SC2206  # OURS_ARGS is word-split on purpose
      cmd=("$BIN" "$PORT" 127.0.0.1 "$THREADS" --root "$FIX" --log-level warn --access-log off
        --idle-timeout 120 --max-requests 1000000000 --backlog 4096 --max-connections "$MAXCONN" $OURS_ARGS)
      [ "$TLS" = 1 ] && cmd+=(--tls-cert "$CERTS/cert.pem" --tls-key "$CERTS/key.pem") ;;
    nginx) nginx_conf "$SDIR" "$PORT"; cmd=(nginx -p "$SDIR/" -c "$SDIR/nginx.conf" -e "$SDIR/error.log") ;;
    lighttpd) lighttpd_conf "$SDIR" "$PORT"; cmd=(lighttpd -D -f "$SDIR/lighttpd.conf") ;;
    h2o) h2o_conf "$SDIR" "$PORT"; cmd=(h2o -c "$SDIR/h2o.conf") ;;
  esac
  (cd "$SDIR" && exec "${SERVER_PIN[@]}" "${cmd[@]}") </dev/null >"$SDIR/server.log" 2>&1 &
  SPID=$!
  if ! rp wait "$PORT" 10 "$SPID"; then
    log "$name did not come up on port $PORT:"
    tail -n 5 "$SDIR/server.log" "$SDIR/error.log" >&2 2>/dev/null
    stop_server
    return 1
  fi
}

stop_server() {  # TERM the server, give it 5 s, then KILL what is left of its tree
  [ -n "$SPID" ] || return 0
  local pids i p
  pids=$(rp tree "$SPID" 2>/dev/null)
  kill -TERM "$SPID" 2>/dev/null
  for i in $(seq 50); do
    kill -0 "$SPID" 2>/dev/null || break
    [ "$i" = 50 ] || sleep 0.1
  done
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  wait "$SPID" 2>/dev/null
  SPID=
}

# run a load generator in the background and wait for it, so a TERM/INT to
# this script is handled at once instead of after the run
run_child() {  # OUTFILE cmd...
  local out=$1
  shift
  "$@" >"$out" 2>&1 &
  CHILD=$!
  wait "$CHILD"
  CHILD=
}

cleanup() {
  [ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null && wait "$CHILD" 2>/dev/null
  stop_server
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# ---------------------------------------------------------------- workloads
wrk_run() {  # SERVER WORKLOAD CONNS PATH [HEADER]
  local name=$1 wl=$2 conns=$3 path=$4 t=$WRK_TIMEOUT c0 c1 wlog extra=()
  [ $# -ge 5 ] && extra=(-H "$5")
  [ "$conns" -ge 5000 ] && t=$WRK_TIMEOUT_MANY   # connects beyond the backlog wait for SYN retries
  wlog=$SDIR/wrk-$wl-c$conns.log
  c0=$(rp cpu "$SPID")
  run_child "$wlog" timeout -k 5 $((DUR + 60)) "${LOAD_PIN[@]}" wrk -t"$WRK_THREADS" -c"$conns" \
    -d"${DUR}s" -T"$t" --latency -s "$HERE/wrk_report.lua" "${extra[@]}" "$SCHEME://127.0.0.1:$PORT$path"
  c1=$(rp cpu "$SPID")
  rp wrk "$name" "$wl" "$conns" "$wlog" "$c0" "$c1" >>"$RESULTS"
  say_last
}

idle_run() {  # SERVER
  local ilog=$SDIR/idle.log
  run_child "$ilog" timeout -k 5 180 "${LOAD_PIN[@]}" python3 "$HERE/idle.py" "$1" "$PORT" "$SPID" "$IDLE_CONNS"
  if grep -q '^{' "$ilog"; then
    grep '^{' "$ilog" | tail -n 1 >>"$RESULTS"
  else
    log "idle.py failed:"; tail -n 5 "$ilog" >&2
    printf '{"server":"%s","workload":"idle","connections":%d,"error":"idle.py failed","errors":1,"non2xx":0}\n' \
      "$1" "$IDLE_CONNS" >>"$RESULTS"
  fi
  say_last
}

say_last() {  # one progress line from the last results row
  tail -n 1 "$RESULTS" | rp say >&2
}

# one fresh server per workload: RSS and CPU then belong to that workload alone
measure() {  # SERVER WORKLOAD [CONNS]
  local name=$1 wl=$2 conns=${3:-}
  if ! start_server "$name"; then
    printf '{"server":"%s","workload":"%s","connections":%d,"error":"server did not start","errors":1,"non2xx":0}\n' \
      "$name" "$wl" "${conns:-0}" >>"$RESULTS"
    return
  fi
  case $wl in
    keepalive) wrk_run "$name" keepalive "$conns" /index.html ;;
    close) wrk_run "$name" close "$C_CLOSE" /index.html 'Connection: close' ;;
    large) wrk_run "$name" large "$C_LARGE" /big.png ;;
    idle) idle_run "$name" ;;
  esac
  stop_server
}

bench_server() {  # SERVER
  local name=$1 wl c
  log "== $name"
  for wl in $WORKLOADS; do
    if [ "$wl" != idle ] && [ "$HAVE_WRK" = 0 ]; then continue; fi
    case $wl in
      keepalive) for c in $CONNS; do measure "$name" keepalive "$c"; done ;;
      close) measure "$name" close "$C_CLOSE" ;;
      large) measure "$name" large "$C_LARGE" ;;
      idle) measure "$name" idle "$IDLE_CONNS" ;;
      *) log "unknown workload $wl" ;;
    esac
  done
}

versions() {
  local v
  v="ours $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
  installed nginx && v="$v; $(nginx -v 2>&1)"
  installed lighttpd && v="$v; $(lighttpd -v 2>&1 | head -n 1)"
  installed h2o && v="$v; $(h2o --version 2>&1 | head -n 1)"
  command -v wrk >/dev/null && v="$v; $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
  echo "$v"
}

# ---------------------------------------------------------------- main
main() {
  cd "$ROOT" || die "no project root at $ROOT"
  mkdir -p "$SCRATCH" "$OUT" || die "cannot create $SCRATCH or $OUT"
  build
  [ -x "$BIN" ] || die "$BIN missing"
  make_fixture
  if [ "$TLS" = 1 ]; then
    SCHEME=https
    "$HERE/../tls/certs.sh" "$CERTS" >/dev/null || die "could not make a certificate (openssl)"
    for name in $SERVERS; do
      case $name in ours | nginx) ;; *) die "TLS=1 measures ours and nginx only, not $name" ;; esac
    done
  fi
  ensure_wrk
  raise_fds
  set_pinning
  : >"$RESULTS"
  rm -rf "$SCRATCH/run"        # per-start configs and logs of the previous run
  rp meta "$OUT" "versions=$(versions)" \
    "setup=$SCHEME, wrk -t$WRK_THREADS -d${DUR}s, server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; ours: MAX_THREADS=$THREADS $OURS_ARGS"
  local name
  for name in $SERVERS; do
    if installed "$name"; then bench_server "$name"; else log "== $name: not installed, skipped"; fi
  done
  rp report "$OUT" || die "report failed"
  log "wrote $OUT/results.jsonl, $OUT/results.md, $OUT/chart.svg"
  rp verdict "$RESULTS" ours
}

main "$@"
