#!/usr/bin/env bash
# "No cost for programs without tasks": the peer programs without tasks, run by two molt
# binaries in one sitting (BASE, e.g. a build from before the tasks work, and NEW), interpreter
# and JIT, runs interleaved, the fastest of RUNS each; prints the ratios NEW/BASE and their
# geometric means.   BASE=/path/to/old/molt ./benches/nocost.sh   (a few minutes)
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${BASE:?BASE=/path/to/the/older/molt}
NEW=${NEW:-$ROOT/target/release/molt}
RUNS=${RUNS:-5}
declare -A SIZE=([fib]=32 [loop]=100000000 [method_call]=10000000 [binary_trees]=16 [nbody]=1000000
                 [map_int]=1000000 [map_str]=1000000 [strings]=5000000)
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
echo "| program | tier | base s | new s | new/base |"
echo "|---|---|---:|---:|---:|"
for jit in off on; do
  for b in fib loop method_call binary_trees nbody map_int map_str strings; do
    bb=999; nb=999
    for _ in $(seq "$RUNS"); do
      x=$(t "$BASE" run "$ROOT/benches/programs/$b.molt" --jit $jit -- "${SIZE[$b]}")
      y=$(t "$NEW" run "$ROOT/benches/programs/$b.molt" --jit $jit -- "${SIZE[$b]}")
      bb=$(echo "if ($x < $bb) $x else $bb" | bc); nb=$(echo "if ($y < $nb) $y else $nb" | bc)
    done
    printf '| %s | %s | %.3f | %.3f | %.3f |\n' "$b" "$jit" "$bb" "$nb" "$(echo "$nb / $bb" | bc -l)"
  done
done
