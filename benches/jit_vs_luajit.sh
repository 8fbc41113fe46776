#!/usr/bin/env bash
# Molt's compiled tier against LuaJIT, on the eight non-task programs, each in two styles: the
# tuned benchmark (benches/programs/P.molt) and the ordinary-style variant
# (benches/programs/ordinary/P.molt: long-lived state in top-level globals, int literals where
# a person writes them, the way a program meant to be updated while it runs is written).
#
#   ./benches/jit_vs_luajit.sh                    # every program, standard sizes, RUNS=3
#   ./benches/jit_vs_luajit.sh nbody loop         # selected programs
#   SIZES=small ./benches/jit_vs_luajit.sh        # quick smoke run (small sizes, seconds)
#   JIT=off ./benches/jit_vs_luajit.sh            # the interpreters: molt --jit off, luajit -joff
#   MOLT=/path/to/molt ./benches/jit_vs_luajit.sh # another build of molt
#
# Environment: RUNS (timed runs per implementation, default 3), SIZES (standard|small: the
# sizes of benches/peers/run.sh), JIT (on|off, default on), MOLT (the binary, default
# target/release/molt; this script never builds it: run `cargo build --release` first),
# PEERS_DIR (the peer programs, default ../shared/peers beside the repository; LuaJIT runs
# P.luajit.lua when there is one, else P.lua), NO_INSTALL=1 (do not apt-get luajit),
# RESULTS_DIR (default benches/results; benches/results/small with SIZES=small).
#
# Each run is the whole process (start-up included), timed by wall clock; the runs alternate
# between programs and implementations (run 1 of everything, then run 2, ...) so that load
# from other work on the machine spreads over all of them. The molt binary is copied once at
# the start, so a rebuild during the run cannot mix two builds. Every run's output is checked:
# all three must print the same thing (whitespace normalised), or the script says so loudly
# and exits 1. Reported: the median wall time of each, the ratios tuned/luajit,
# ordinary/luajit and ordinary/tuned, the geometric mean and the maximum of the X/luajit
# ratios, and the maximum ordinary/tuned. Output: a Markdown table on stdout and in
# RESULTS_DIR/jit_vs_luajit.md (jit_vs_luajit.jit-off.md with JIT=off), the runs in the .csv
# beside it.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
RUNS=${RUNS:-3}
SIZES=${SIZES:-standard}
JIT=${JIT:-on}
MOLT=${MOLT:-$ROOT/target/release/molt}
RESULTS=${RESULTS_DIR:-$ROOT/benches/results}
[ "$SIZES" = small ] && RESULTS=${RESULTS_DIR:-$ROOT/benches/results/small}   # keep the real results
ALL="fib loop method_call binary_trees nbody map_int map_str strings"
PROGRAMS=${*:-$ALL}

declare -A SIZE
if [ "$SIZES" = small ]; then
  SIZE=([fib]=20 [loop]=1000000 [method_call]=100000 [binary_trees]=8 [nbody]=1000
        [map_int]=10000 [map_str]=10000 [strings]=10000)
else
  SIZE=([fib]=32 [loop]=100000000 [method_call]=10000000 [binary_trees]=16 [nbody]=1000000
        [map_int]=1000000 [map_str]=1000000 [strings]=5000000)
fi

say() { echo "jit_vs_luajit.sh: $*" >&2; }

case $JIT in
  on)  LJFLAGS=""; LJNAME=luajit; OUTNAME=jit_vs_luajit ;;
  off) LJFLAGS="-joff"; LJNAME="luajit -joff"; OUTNAME=jit_vs_luajit.jit-off ;;
  *)   say "JIT must be on or off, not '$JIT'"; exit 2 ;;
esac
for b in $PROGRAMS; do
  [ -n "${SIZE[$b]:-}" ] || { say "unknown program '$b' (known: $ALL)"; exit 2; }
done

# --- tools ---------------------------------------------------------------------------------
. "$HERE/install.sh"
HAVE_LUAJIT=""
install luajit luajit && HAVE_LUAJIT=1
[ -x "$MOLT" ] || { say "no $MOLT (build it with cargo build --release, or set MOLT)"; exit 2; }
[ -d "$PEERS_DIR" ] || say "no peer programs at $PEERS_DIR (set PEERS_DIR): running Molt only"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp "$MOLT" "$TMP/molt" || { say "cannot copy $MOLT"; exit 2; }
MOLT_RUN=$TMP/molt
MOLT_ID="$MOLT ($(stat -c '%y' "$MOLT" | cut -d. -f1), sha256 $(sha256sum "$MOLT" | cut -c1-12))"

IMPLS="tuned ordinary luajit"
cmd_for() { # program impl size -> command line, or nothing when there is none
  local b=$1 i=$2 n=$3 d=$PEERS_DIR/$1 jf
  jf=$d/$b.lua; [ -f "$d/$b.luajit.lua" ] && jf=$d/$b.luajit.lua
  case $i in
    tuned)    echo "$MOLT_RUN run $ROOT/benches/programs/$b.molt --jit $JIT -- $n" ;;
    ordinary) echo "$MOLT_RUN run $ROOT/benches/programs/ordinary/$b.molt --jit $JIT -- $n" ;;
    luajit)   [ -n "$HAVE_LUAJIT" ] && [ -f "$jf" ] && echo "luajit $LJFLAGS $jf $n" ;;
  esac
  return 0
}

median() { sort -g | awk '{a[NR]=$1} END{ if (NR) print a[int((NR+1)/2)] }'; }
norm() { tr -s ' \t\r\n' ' ' <"$1" | sed 's/^ //; s/ $//'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a != "" && b != "" && b > 0) printf "%.2f", a/b }'; }

declare -A CMD=() WALLS=() REF=() REF_BY=() BAD=()
for b in $PROGRAMS; do
  for i in $IMPLS; do
    c=$(cmd_for "$b" "$i" "${SIZE[$b]}")
    [ -n "$c" ] && CMD[$b.$i]=$c
  done
  [ -n "${CMD[$b.luajit]:-}" ] || say "$b: no LuaJIT run (luajit or $PEERS_DIR/$b/$b.lua missing)"
done

MISMATCHES=()
for r in $(seq "$RUNS"); do
  say "round $r of $RUNS"
  for b in $PROGRAMS; do
    line="  $b:"
    for i in $IMPLS; do
      [ -n "${CMD[$b.$i]:-}" ] || continue
      out=$TMP/$b.$i.out
      t0=$(date +%s%N)
      # shellcheck disable=SC2086
      if ${CMD[$b.$i]} >"$out" 2>"$TMP/err"; then st=ok; else st=FAIL; fi
      t1=$(date +%s%N)
      w=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
      WALLS[$b.$i]="${WALLS[$b.$i]:-} $w"
      line="$line $i $w s"
      got=$(norm "$out")
      if [ $st != ok ]; then
        BAD[$b.$i]=FAIL
        MISMATCHES+=("$b: $i FAILED (run $r): $(head -c 300 "$TMP/err" | tr '\n' ' ')")
      elif [ -z "${REF[$b]+x}" ]; then
        REF[$b]=$got; REF_BY[$b]=$i
      elif [ "$got" != "${REF[$b]}" ]; then
        BAD[$b.$i]=MISMATCH
        MISMATCHES+=("$b: $i printed '${got:0:120}' but ${REF_BY[$b]} printed '${REF[$b]:0:120}' (run $r)")
      fi
    done
    say "$line"
  done
done

# --- the results ---------------------------------------------------------------------------
mkdir -p "$RESULTS"
CSV=$RESULTS/$OUTNAME.csv
echo "program,size,impl,median_s,min_s,max_s,output,runs" >"$CSV"
declare -A MED=()
for b in $PROGRAMS; do
  for i in $IMPLS; do
    [ -n "${WALLS[$b.$i]:-}" ] || continue
    # shellcheck disable=SC2086
    MED[$b.$i]=$(printf '%s\n' ${WALLS[$b.$i]} | median)
    # shellcheck disable=SC2086
    lo=$(printf '%s\n' ${WALLS[$b.$i]} | sort -g | head -1)
    # shellcheck disable=SC2086
    hi=$(printf '%s\n' ${WALLS[$b.$i]} | sort -g | tail -1)
    echo "$b,${SIZE[$b]},$i,${MED[$b.$i]},$lo,$hi,${BAD[$b.$i]:-same},$RUNS" >>"$CSV"
  done
done

cell() { # seconds, marked when that implementation failed or printed something else
  local v=${MED[$1]:-—}
  [ -n "${BAD[$1]:-}" ] && v="$v **${BAD[$1]}**"
  echo "$v"
}

{
  mode="molt --jit $JIT"
  echo "Molt ($mode) against $LJNAME: median wall seconds of $RUNS runs (whole process) of the"
  echo "tuned program (benches/programs/P.molt), its ordinary-style variant"
  echo "(benches/programs/ordinary/P.molt) and the Lua peer; ratios > 1: slower than the"
  echo "denominator. $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average at the end:"
  echo "$(cut -d' ' -f1-3 /proc/loadavg). Sizes: $SIZES. Binary: $MOLT_ID."
  echo
  echo "| program | size | tuned s | ordinary s | $LJNAME s | tuned/luajit | ordinary/luajit | ordinary/tuned |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  RATIOS=()      # "value label" of every X/luajit ratio
  OT=()          # "value label" of every ordinary/tuned ratio
  for b in $PROGRAMS; do
    t=${MED[$b.tuned]:-}; o=${MED[$b.ordinary]:-}; l=${MED[$b.luajit]:-}
    tl=$(ratio "$t" "$l"); ol=$(ratio "$o" "$l"); ot=$(ratio "$o" "$t")
    [ -n "$tl" ] && RATIOS+=("$(awk -v a="$t" -v b="$l" 'BEGIN{print a/b}') $b tuned")
    [ -n "$ol" ] && RATIOS+=("$(awk -v a="$o" -v b="$l" 'BEGIN{print a/b}') $b ordinary")
    [ -n "$ot" ] && OT+=("$(awk -v a="$o" -v b="$t" 'BEGIN{print a/b}') $b")
    echo "| $b | ${SIZE[$b]} | $(cell "$b.tuned") | $(cell "$b.ordinary") | $(cell "$b.luajit") |" \
         "${tl:-—} | ${ol:-—} | ${ot:-—} |"
  done
  echo
  if [ ${#RATIOS[@]} -gt 0 ]; then
    printf '%s\n' "${RATIOS[@]}" | awk '
      { s += log($1); n++; if (n == 1 || $1 > m) { m = $1; w = $2 " " $3 } }
      END { printf "Geometric mean of the %d X/luajit ratios: %.2f. Maximum: %.2f (%s).\n", n, exp(s / n), m, w }'
  else
    echo "No X/luajit ratios (no LuaJIT runs)."
  fi
  if [ ${#OT[@]} -gt 0 ]; then
    printf '%s\n' "${OT[@]}" | awk '
      { if (NR == 1 || $1 > m) { m = $1; w = $2 } }
      END { printf "Maximum ordinary/tuned: %.2f (%s).\n", m, w }'
  fi
  echo
  if [ ${#MISMATCHES[@]} -gt 0 ]; then
    echo "**OUTPUT MISMATCHES OR FAILURES:**"
    for m in "${MISMATCHES[@]}"; do echo "- $m"; done
  else
    echo "All three printed the same answer in every run."
  fi
} | tee "$RESULTS/$OUTNAME.md"

if [ ${#MISMATCHES[@]} -gt 0 ]; then
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  say "!!! ${#MISMATCHES[@]} OUTPUT MISMATCH(ES) OR FAILURE(S): see above and $RESULTS/$OUTNAME.md"
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  exit 1
fi
