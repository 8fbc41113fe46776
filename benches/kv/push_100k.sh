#!/usr/bin/env bash
# The pause a client sees when a push converts many records: the kv server (examples/kv_server)
# is filled with about 100,000 entries, then 4 clients keep talking to it while v2 (a record
# type change with a transformer) is pushed, eager and then lazy (a fresh server each). The
# loadgen reports the p99 and max latency in the window around the push.
#
#   ./benches/kv/push_100k.sh            (about 40 s once built; NO_BUILD=1 skips the build)
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MOLT=$ROOT/target/release/molt
LOADGEN=$ROOT/target/release/molt-loadgen
if [ -z "${NO_BUILD:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet && cargo build --release --quiet -p molt-loadgen)
fi
TMP=$(mktemp -d)
trap 'kill $PID 2>/dev/null; rm -rf "$TMP"' EXIT
for mode in eager lazy; do
  "$MOLT" run "$ROOT/examples/kv_server/v1.molt" --control "$TMP/kv.sock" -- 127.0.0.1:0 > "$TMP/out" 2>&1 &
  PID=$!
  for _ in $(seq 100); do grep -q listening "$TMP/out" 2>/dev/null && break; sleep 0.05; done
  ADDR=$(sed -n 's/^listening on //p' "$TMP/out" | head -1)
  # Fill: 4 clients x 25,000 keys, writes only, enough requests to touch (nearly) every key.
  "$LOADGEN" --addr "$ADDR" --clients 4 --keys 25000 --requests 150000 --write-ratio 1 --seconds 60 \
    --key-prefix fill- --json > "$TMP/fill.json"
  "$LOADGEN" --addr "$ADDR" --clients 4 --keys 100 --requests 10000000 --seconds 4 --key-prefix load- \
    --push "2000:$TMP/kv.sock:$ROOT/examples/kv_server/v2.molt" --push-arg --transform --push-arg "$mode" \
    --molt "$MOLT" --json > "$TMP/load.json" || true
  python3 - "$mode" "$TMP/fill.json" "$TMP/load.json" <<'PY'
import json, sys
mode, fill, load = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
p = load["pushes"][0]
w = p["window"]
line = p["output"].strip().splitlines()[-1]
print(f"{mode}: {fill['final_check']['keys']} keys filled; push {p['end_ms'] - p['start_ms']:.1f} ms end to end, "
      f"exit {p['exit_status']}; window: {w['requests']} requests, p99 {w['p99_us']} us, max {w['max_us']} us; "
      f"overall p99 {load['latency']['p99_us']} us; errors {load['wrong_replies'] + load['connection_errors']}, "
      f"final check {load['final_check']}")
print("   ", line)
PY
  kill $PID; wait $PID 2>/dev/null || true
done
