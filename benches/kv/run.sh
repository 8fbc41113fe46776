#!/usr/bin/env bash
# A TCP server under load, side by side: the same load (benches/loadgen, `molt-loadgen`) against
# the key-value server in Molt (examples/kv_server/v1.molt), in Python asyncio
# (benches/kv/peers/kv_server.py) and in Erlang/OTP gen_tcp (benches/kv/peers/kv_server.erl),
# one server after another, every reply checked.
#
#   ./benches/kv/run.sh                          # 4 clients, 5 s each, 1 run (about 30 s once built)
#   CLIENTS=8 SECS=10 RUNS=3 ./benches/kv/run.sh
#   RELOADS=10 ./benches/kv/run.sh               # and hot-load 10 new versions during each load
#
# Environment: CLIENTS (default 4), SECS (seconds of load per server, default 5), REQUESTS
# (per client at most, default 10000000: the time ends the load), WRITE_RATIO (default 0.5),
# KEYS (per client, default 100), RUNS (runs per server, alternating servers; medians
# reported; default 1), IMPLS (default "molt python3 erlang"), RELOADS (default 0: new versions
# loaded during each load, spread evenly: Erlang reloads its module with code:load_binary;
# Molt is sent `molt push` through `--control` alternately v2 and v1 when this molt has
# `--control`, else it runs without pushes and says so; Python does not reload), NO_INSTALL=1
# (do not call apt-get), NO_BUILD=1 (use the existing target/release binaries), RESULTS_DIR
# (default benches/results), SAMPLES=1 (also write every request's latency, for a plot: about
# 10 MB per run). Only 127.0.0.1 is used; every wait is bounded.
#
# Output: a Markdown table on stdout and in benches/results/kv_load.md, and
# benches/results/kv_load.csv; each run's loadgen report (JSON), the server's output and, with
# SAMPLES=1, the samples (CSV) are kept in benches/results/kv/.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLIENTS=${CLIENTS:-4}
SECS=${SECS:-5}
REQUESTS=${REQUESTS:-10000000}
WRITE_RATIO=${WRITE_RATIO:-0.5}
KEYS=${KEYS:-100}
RUNS=${RUNS:-1}
IMPLS=${IMPLS:-"molt python3 erlang"}
RELOADS=${RELOADS:-0}
RESULTS=${RESULTS_DIR:-$ROOT/benches/results}
MOLT=$ROOT/target/release/molt
LOADGEN=$ROOT/target/release/molt-loadgen

say() { echo "kv/run.sh: $*" >&2; }

# --- tools ---------------------------------------------------------------------------------
. "$HERE/../install.sh"
declare -A HAVE
for pair in python3:python3 erl:erlang-base erlc:erlang-base; do
  install "${pair%%:*}" "${pair#*:}" && HAVE[${pair%%:*}]=1
done
# the real interpreter behind a pyenv shim
PY=${PY:-$( (command -v pyenv >/dev/null && pyenv which python3 2>/dev/null) || command -v python3)}

if [ -z "${NO_BUILD:-}" ]; then
  say "cargo build --release (molt, molt-loadgen)"
  (cd "$ROOT" && cargo build --release --quiet && cargo build --release --quiet -p molt-loadgen) \
    || { say "cargo build --release failed"; exit 2; }
fi
[ -x "$MOLT" ] || { say "no $MOLT"; exit 2; }
[ -x "$LOADGEN" ] || { say "no $LOADGEN"; exit 2; }

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
cp "$MOLT" "$TMP/molt"   # a rebuild during the run does not change what is measured

if [ -n "${HAVE[erlc]:-}" ] && [ -n "${HAVE[erl]:-}" ]; then
  mkdir -p "$TMP/beam"
  erlc -o "$TMP/beam" "$HERE/peers/kv_server.erl" || { say "erlc kv_server.erl failed"; HAVE[erl]=""; }
fi
MOLT_PUSH=""
if [ "$RELOADS" -gt 0 ]; then
  if "$TMP/molt" run 2>&1 | grep -q -- '--control'; then MOLT_PUSH=1
  else say "this molt has no --control yet: Molt runs without pushes"; fi
fi

# start_server IMPL OUT: starts the server on port 0 in the background (SERVER_PID), waits
# (10 s at most) for its `listening on 127.0.0.1:PORT` line and sets PORT.
start_server() {
  local impl=$1 out=$2 i
  case $impl in
    molt)
      if [ -n "$MOLT_PUSH" ]; then
        "$TMP/molt" run "$ROOT/examples/kv_server/v1.molt" --control "$TMP/kv.sock" -- 127.0.0.1:0 >"$out" 2>&1 &
      else
        "$TMP/molt" run "$ROOT/examples/kv_server/v1.molt" -- 127.0.0.1:0 >"$out" 2>&1 &
      fi ;;
    python3) "$PY" "$HERE/peers/kv_server.py" 127.0.0.1:0 >"$out" 2>&1 & ;;
    erlang)
      local interval=$(( SECS * 1000 / (RELOADS + 1) ))
      erl -noshell -pa "$TMP/beam" -run kv_server main 127.0.0.1:0 "$RELOADS" "$interval" >"$out" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for i in $(seq 100); do
    if grep -q '^listening on 127.0.0.1:' "$out" 2>/dev/null; then
      PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out" | head -1)
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  say "$impl did not start: $(head -c 500 "$out")"
  return 1
}

stop_server() {
  [ -n "$SERVER_PID" ] && { kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; }
  SERVER_PID=""
}

# a number from the loadgen's JSON: the first occurrence of "KEY":N (the overall figures come
# before the pushes' windows)
jnum() { grep -o "\"$2\":[0-9.]*" "$1" | head -1 | cut -d: -f2; }
median() { sort -g | awk '{a[NR]=$1} END{ if (NR) print a[int((NR+1)/2)] }'; }

available() {
  case $1 in
    molt) return 0 ;;
    python3) [ -n "$PY" ] ;;
    erlang) [ -n "${HAVE[erl]:-}" ] && [ -f "$TMP/beam/kv_server.beam" ] ;;
    *) say "unknown implementation '$1' (known: molt python3 erlang)"; return 1 ;;
  esac
}

mkdir -p "$RESULTS/kv"
declare -A RPS P50 P99 MAX ERR STATUS LOADS FAIR
impls=()
for i in $IMPLS; do available "$i" && impls+=("$i") || say "$i not available: skipped"; done
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
for r in $(seq "$RUNS"); do
  for impl in "${impls[@]}"; do
    out=$TMP/$impl.out
    start_server "$impl" "$out" || { STATUS[$impl]=FAIL; stop_server; continue; }
    port=$PORT
    json=$RESULTS/kv/$impl.run$r.json
    pushes=()
    if [ "$impl" = molt ] && [ -n "$MOLT_PUSH" ]; then
      for k in $(seq "$RELOADS"); do
        f=v2; [ $((k % 2)) = 0 ] && f=v1
        pushes+=(--push "$(( SECS * 1000 * k / (RELOADS + 1) )):$TMP/kv.sock:$ROOT/examples/kv_server/$f.molt")
      done
    fi
    samples=(); [ -n "${SAMPLES:-}" ] && samples=(--samples "$RESULTS/kv/$impl.run$r.samples.csv")
    say "run $r: $impl on 127.0.0.1:$port, $CLIENTS clients, $SECS s"
    "$LOADGEN" --addr "127.0.0.1:$port" --clients "$CLIENTS" --requests "$REQUESTS" --seconds "$SECS" \
      --write-ratio "$WRITE_RATIO" --keys "$KEYS" --molt "$TMP/molt" "${pushes[@]}" \
      "${samples[@]}" --json >"$json" 2>"$TMP/loadgen.err"
    st=$?
    stop_server
    cp "$out" "$RESULTS/kv/$impl.run$r.server.out"
    if [ $st -ne 0 ]; then
      say "$impl run $r: loadgen exit $st: $(head -c 800 "$json" "$TMP/loadgen.err")"
      STATUS[$impl]=FAIL
    fi
    # new versions loaded during the run: Molt's pushes that exited 0, Erlang's reload lines
    case $impl in
      molt) n=$(grep -o '"exit_status":0' "$json" 2>/dev/null | wc -l) ;;
      erlang) n=$(grep -c '^reload [0-9]* compile_us' "$out") ;;
      *) n=0 ;;
    esac
    LOADS[$impl]="${LOADS[$impl]:-} $n"
    [ -s "$json" ] || continue
    RPS[$impl]="${RPS[$impl]:-} $(jnum "$json" throughput_rps)"
    # fairness: the busiest client's requests over the least busy one's
    FAIR[$impl]="${FAIR[$impl]:-} $(sed -n 's/.*"per_client_requests":\[\([0-9,]*\)\].*/\1/p' "$json" | tr ',' '\n' \
      | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {if (lo > 0) printf "%.2f", hi / lo}')"
    P50[$impl]="${P50[$impl]:-} $(jnum "$json" p50_us)"
    P99[$impl]="${P99[$impl]:-} $(jnum "$json" p99_us)"
    MAX[$impl]="${MAX[$impl]:-} $(jnum "$json" max_us)"
    ERR[$impl]=$(( ${ERR[$impl]:-0} + $(jnum "$json" wrong_replies) + $(jnum "$json" connection_errors) + $(jnum "$json" missing) + $(jnum "$json" wrong) ))
  done
done

# --- the table -----------------------------------------------------------------------------
med() { printf '%s\n' $1 | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a != "" && b != "" && b > 0) printf "%.2f", a / b }'; }
CSV=$RESULTS/kv_load.csv
echo "impl,clients,seconds,runs,req_per_s,p50_us,p99_us,max_us,errors_or_lost,reloads,busiest_over_least_client,status" >"$CSV"
molt_rps=""; [ -n "${RPS[molt]:-}" ] && molt_rps=$(med "${RPS[molt]}")
{
  echo "The same load against three servers of the kv protocol: $CLIENTS clients on 127.0.0.1, $SECS s"
  echo "each, $(awk -v w="$WRITE_RATIO" 'BEGIN{printf "%d", w * 100}')% SET / rest GET over $KEYS keys per client, every reply checked, medians of $RUNS"
  echo "run(s). $DATE, $(nproc) cores, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  [ "$RELOADS" -gt 0 ] && echo "Reloads during each load: $RELOADS (Erlang: code:load_binary; Molt: $([ -n "$MOLT_PUSH" ] && echo "molt push, v2/v1 alternately" || echo "none, no --control yet"); Python: none)."
  echo
  echo "| server | req/s | p50 | p99 | max | busiest / least busy client | errors + lost keys | new versions loaded | Molt's req/s relative to it |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for impl in "${impls[@]}"; do
    [ -n "${RPS[$impl]:-}" ] || { echo "| $impl | — | — | — | — | — | ${STATUS[$impl]:-FAIL} | — | — |"; continue; }
    rps=$(med "${RPS[$impl]}"); p50=$(med "${P50[$impl]}"); p99=$(med "${P99[$impl]}"); mx=$(med "${MAX[$impl]}")
    rel=""; [ "$impl" != molt ] && [ -n "$molt_rps" ] && rel="$(ratio "$molt_rps" "$rps")×"
    loads=$(med "${LOADS[$impl]:-0}")
    fair=$(med "${FAIR[$impl]:-}")
    echo "| $impl | $(printf '%.0f' "$rps") | ${p50} µs | ${p99} µs | ${mx} µs | ${fair}× | ${ERR[$impl]:-0}${STATUS[$impl]:+ ${STATUS[$impl]}} | $loads | $rel |"
    echo "$impl,$CLIENTS,$SECS,$RUNS,$rps,$p50,$p99,$mx,${ERR[$impl]:-0},$loads,$fair,${STATUS[$impl]:-ok}" >>"$CSV"
  done
  echo
  echo "(> 1 in the last column: Molt served more requests per second than that server.)"
} | tee "$RESULTS/kv_load.md"

for impl in "${impls[@]}"; do
  [ "${STATUS[$impl]:-ok}" = ok ] && [ "${ERR[$impl]:-0}" = 0 ] || exit 1
done
