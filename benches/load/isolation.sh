#!/usr/bin/env bash
# benches/load/isolation.sh -- small-request latency beside slow downloads: wrk -c64 on the 2 KB page for
# DUR seconds alone, then beside 8 clients each reading the 10 MiB file at 2 MB/s (slow_readers.py), and
# the ratio of the two p99s. Uses run.sh's fixture and release binary (run that first, or SKIP_BUILD=0).
#
#   benches/load/isolation.sh            # DUR=10 SERVER_CPU=0 LOAD_CPU=1 PORT=18170
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FIX=${SCRATCH:-${TMPDIR:-/tmp}/http-server-load}/www
DUR=${DUR:-10}
PORT=${PORT:-18170}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BIN=$ROOT/target/release/http-server
[ -s "$FIX/big.png" ] && [ -x "$BIN" ] || { echo "run benches/load/run.sh once first (fixture, binary)" >&2; exit 2; }
taskset -c "$SERVER_CPU" "$BIN" "$PORT" 127.0.0.1 4 --root "$FIX" --log-level warn --access-log off \
  --idle-timeout 120 --max-requests 1000000000 >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
python3 "$HERE/report.py" wait "$PORT" 10 "$server" || exit 2
curl -s -o /dev/null "http://127.0.0.1:$PORT/big.png"     # into the page cache
p99() {
  taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"${DUR}s" --latency "http://127.0.0.1:$PORT/index.html" |
    awk '/ 99%/ { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else { sub(/s$/, "", v); v *= 1000 }; print v }'
}
alone=$(p99)
taskset -c "$LOAD_CPU" python3 "$HERE/slow_readers.py" "$PORT" 8 2000000 $((DUR + 4)) &
readers=$!
sleep 2
beside=$(p99)
wait "$readers"
python3 -c "print(f'small p99 alone {$alone:.2f} ms, beside 8 slow downloads {$beside:.2f} ms: {$beside / $alone:.2f}x')"
