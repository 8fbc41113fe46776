#!/usr/bin/env bash
# Side-by-side: Molt against the peer interpreters on the programs in benches/programs.
#
#   ./benches/peers/run.sh                 # every program, standard sizes, RUNS=3
#   ./benches/peers/run.sh fib loop        # selected programs
#   SIZES=small ./benches/peers/run.sh     # quick smoke run (small sizes, seconds; CI)
#   RUNS=5 IMPLS="molt lua5.4 python3" ./benches/peers/run.sh nbody
#
# Environment: RUNS (timed runs per pair, default 3), SIZES (standard|small), IMPLS (default:
# molt molt-jit lua5.4 luajit luajit-joff python3 ruby erlang go), PEERS_DIR (the peer programs,
# default ../shared/peers beside the repository), NO_INSTALL=1 (do not call apt-get),
# NO_BUILD=1 (use the existing target/release/molt), RESULTS_DIR (default benches/results;
# benches/results/small with SIZES=small).
#
# Each run is the whole process (start-up included), timed by wall clock; the runs alternate
# between implementations (run 1 of every implementation, then run 2, ...) so that load from
# other work on the machine spreads over all of them. Reported: the median wall time, the
# ratio to Molt (> 1: slower than Molt) and whether every implementation printed the same
# answer as Molt (whitespace normalised). Output: a Markdown table on stdout,
# benches/results/peers.md and benches/results/peers.csv.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
RUNS=${RUNS:-3}
SIZES=${SIZES:-standard}
IMPLS=${IMPLS:-"molt molt-jit lua5.4 luajit luajit-joff python3 ruby erlang go"}
RESULTS=${RESULTS_DIR:-$ROOT/benches/results}
[ "$SIZES" = small ] && RESULTS=${RESULTS_DIR:-$ROOT/benches/results/small}   # keep the real results
MOLT=$ROOT/target/release/molt
ALL="fib loop method_call binary_trees nbody map_int map_str strings ping_pong ring spawn"
PROGRAMS=${*:-$ALL}

declare -A SIZE
if [ "$SIZES" = small ]; then
  SIZE=([fib]=20 [loop]=1000000 [method_call]=100000 [binary_trees]=8 [nbody]=1000
        [map_int]=10000 [map_str]=10000 [strings]=10000 [ping_pong]=10000 [ring]="100 100" [spawn]=10000)
else
  SIZE=([fib]=32 [loop]=100000000 [method_call]=10000000 [binary_trees]=16 [nbody]=1000000
        [map_int]=1000000 [map_str]=1000000 [strings]=5000000 [ping_pong]=1000000 [ring]="1000 1000"
        [spawn]=1000000)
fi

say() { echo "run.sh: $*" >&2; }

# --- tools ---------------------------------------------------------------------------------
. "$(dirname "${BASH_SOURCE[0]}")/../install.sh"

declare -A HAVE
for pair in lua5.4:lua5.4 luajit:luajit python3:python3 ruby:ruby erl:erlang-base erlc:erlang-base go:golang-go hyperfine:hyperfine; do
  install "${pair%%:*}" "${pair#*:}" && HAVE[${pair%%:*}]=1
done
# the real interpreter behind a pyenv shim (the shim adds ~0.25 s of start-up)
PY=${PY:-$( (command -v pyenv >/dev/null && pyenv which python3 2>/dev/null) || command -v python3)}

if [ -z "${NO_BUILD:-}" ]; then
  say "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet) || { say "cargo build --release failed"; exit 2; }
fi
[ -x "$MOLT" ] || { say "no $MOLT"; exit 2; }
[ -d "$PEERS_DIR" ] || say "no peer programs at $PEERS_DIR (set PEERS_DIR): running Molt only"

BEAM=$(mktemp -d)
TMP=$(mktemp -d)
trap 'rm -rf "$BEAM" "$TMP"' EXIT
if [ -n "${HAVE[erlc]:-}" ] && [ -n "${HAVE[erl]:-}" ]; then
  for b in $PROGRAMS; do
    [ -f "$PEERS_DIR/$b/$b.erl" ] && { erlc -o "$BEAM" "$PEERS_DIR/$b/$b.erl" || say "erlc $b.erl failed"; }
  done
fi

# Go programs (the task benchmarks) are compiled once, outside the timed runs.
if [ -n "${HAVE[go]:-}" ]; then
  for b in $PROGRAMS; do
    [ -f "$PEERS_DIR/$b/$b.go" ] && { (cd "$TMP" && GOCACHE=$TMP/gocache go build -o "$TMP/$b.go.bin" "$PEERS_DIR/$b/$b.go") || say "go build $b.go failed"; }
  done
fi

cmd_for() { # program impl size -> command line, or nothing when there is none
  local b=$1 i=$2 n=$3 d=$PEERS_DIR/$1 jf
  jf=$d/$b.lua; [ -f "$d/$b.luajit.lua" ] && jf=$d/$b.luajit.lua
  case $i in
    molt)        echo "$MOLT run $ROOT/benches/programs/$b.molt --jit off -- $n" ;;
    molt-jit)    echo "$MOLT run $ROOT/benches/programs/$b.molt --jit on -- $n" ;;
    lua5.4)      [ -n "${HAVE[lua5.4]:-}" ] && [ -f "$d/$b.lua" ] && echo "lua5.4 $d/$b.lua $n" ;;
    luajit)      [ -n "${HAVE[luajit]:-}" ] && [ -f "$jf" ] && echo "luajit $jf $n" ;;
    luajit-joff) [ -n "${HAVE[luajit]:-}" ] && [ -f "$jf" ] && echo "luajit -joff $jf $n" ;;
    python3)     [ -n "$PY" ] && [ -f "$d/$b.py" ] && echo "$PY $d/$b.py $n" ;;
    ruby)        [ -n "${HAVE[ruby]:-}" ] && [ -f "$d/$b.rb" ] && echo "ruby $d/$b.rb $n" ;;
    erlang)      [ -f "$BEAM/$b.beam" ] && echo "erl -noshell -pa $BEAM -run $b main $n -s erlang halt" ;;
    go)          [ -x "$TMP/$b.go.bin" ] && echo "$TMP/$b.go.bin $n" ;;
  esac
  return 0
}

median() { sort -g | awk '{a[NR]=$1} END{ if (NR) print a[int((NR+1)/2)] }'; }
norm() { tr -s ' \t\r\n' ' ' <"$1" | sed 's/^ //; s/ $//'; }

mkdir -p "$RESULTS"
CSV=$RESULTS/peers.csv
echo "program,size,impl,median_s,min_s,max_s,ratio_to_molt,output,runs" >"$CSV"
MISMATCHES=()
ROWS=()

for b in $PROGRAMS; do
  n=${SIZE[$b]:-}
  [ -n "$n" ] || { say "unknown program '$b' (known: $ALL)"; continue; }
  impls=(); declare -A CMD=() WALLS=() OUT=() STATUS=()
  for i in $IMPLS; do
    c=$(cmd_for "$b" "$i" "$n")
    [ -n "$c" ] && { impls+=("$i"); CMD[$i]=$c; }
  done
  say "$b($n): ${impls[*]}"
  for r in $(seq "$RUNS"); do
    for i in "${impls[@]}"; do
      out=$TMP/$b.$i.out
      t0=$(date +%s%N)
      # shellcheck disable=SC2086
      if ${CMD[$i]} >"$out" 2>"$TMP/err"; then st=ok; else st=FAIL; fi
      t1=$(date +%s%N)
      WALLS[$i]="${WALLS[$i]:-} $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')"
      if [ "$r" = 1 ]; then
        OUT[$i]=$(norm "$out"); STATUS[$i]=$st
        [ $st = ok ] || say "$i $b FAILED: $(head -c 300 "$TMP/err")"
      fi
    done
  done
  ref_impl=molt; [ -n "${OUT[molt]+x}" ] || ref_impl=${impls[0]:-}
  ref=${OUT[$ref_impl]:-}
  molt_med=""
  [ -n "${WALLS[molt]:-}" ] && molt_med=$(printf '%s\n' ${WALLS[molt]} | median)
  for i in "${impls[@]}"; do
    w=$(printf '%s\n' ${WALLS[$i]} | median)
    lo=$(printf '%s\n' ${WALLS[$i]} | sort -g | head -1)
    hi=$(printf '%s\n' ${WALLS[$i]} | sort -g | tail -1)
    ratio=""
    [ -n "$molt_med" ] && ratio=$(awk -v a="$w" -v m="$molt_med" 'BEGIN{ if (m > 0) printf "%.2f", a/m }')
    if [ "${STATUS[$i]}" != ok ]; then check=FAIL
    elif [ "${OUT[$i]}" = "$ref" ]; then check=same
    else check=MISMATCH; MISMATCHES+=("$b: $i printed '${OUT[$i]:0:120}' but $ref_impl printed '${ref:0:120}'")
    fi
    echo "$b,$n,$i,$w,$lo,$hi,$ratio,$check,$RUNS" >>"$CSV"
    ROWS+=("$b|$n|$i|$w|$ratio|$check")
  done
  unset CMD WALLS OUT STATUS
done

# --- the Markdown table: one row per program, one column per implementation ----------------
{
  echo "Molt vs peers: median wall seconds of $RUNS runs (whole process), and in parentheses the"
  echo "time relative to Molt (> 1: slower than Molt). $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores,"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Sizes: $SIZES."
  echo
  cols=()
  for i in $IMPLS; do
    for row in "${ROWS[@]}"; do [ "$(cut -d'|' -f3 <<<"$row")" = "$i" ] && { cols+=("$i"); break; }; done
  done
  printf '| program | size |'; printf ' %s |' "${cols[@]}"; echo
  printf '|---|---:|'; printf -- '---:|%.0s' "${cols[@]}"; echo
  for b in $PROGRAMS; do
    [ -n "${SIZE[$b]:-}" ] || continue
    printf '| %s | %s |' "$b" "${SIZE[$b]}"
    for i in "${cols[@]}"; do
      cell="—"
      for row in "${ROWS[@]}"; do
        IFS='|' read -r rb _ ri w ratio check <<<"$row"
        [ "$rb" = "$b" ] && [ "$ri" = "$i" ] || continue
        cell="$w"; [ -n "$ratio" ] && [ "$i" != molt ] && cell="$w ($ratio×)"
        [ "$check" = same ] || cell="$cell **$check**"
      done
      printf ' %s |' "$cell"
    done
    echo
  done
  if [ ${#MISMATCHES[@]} -gt 0 ]; then
    echo
    echo "**OUTPUT MISMATCHES:**"
    for m in "${MISMATCHES[@]}"; do echo "- $m"; done
  else
    echo
    echo "Every implementation printed the same answer as Molt."
  fi
} | tee "$RESULTS/peers.md"

if [ ${#MISMATCHES[@]} -gt 0 ]; then
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  say "!!! ${#MISMATCHES[@]} OUTPUT MISMATCH(ES): see above and $RESULTS/peers.md"
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  exit 1
fi
