#!/usr/bin/env bash
# Reproduces every number in docs/benchmarks.md (about 11 minutes on 2 cores):
#   1. the criterion suites (update latency, interpreter), results in target/criterion;
#   2. the side-by-side peer runner (installs the peers through apt when missing);
#   3. the update-latency comparison with Erlang/OTP hot code loading (benches/erlang/run.sh;
#      installs erlang-base through apt when missing);
#   4. benches/plot.py: exports the criterion results to benches/results/*.csv and draws
#      docs/plots/*.svg.
#
#   ./benches/run-all.sh              # everything
#   SIZES=small ./benches/run-all.sh  # quick: criterion smoke runs (--test) + small peer and Erlang sizes
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${SIZES:-standard}" = small ]; then
  cargo bench --bench update_latency --bench interpreter -- --test
else
  echo "== cargo bench --bench update_latency"
  cargo bench --bench update_latency
  echo "== cargo bench --bench interpreter"
  cargo bench --bench interpreter
fi
echo "== benches/peers/run.sh"
status=0
./benches/peers/run.sh || status=$?
echo "== benches/erlang/run.sh"
NO_BUILD=1 ./benches/erlang/run.sh || status=$?
echo "== benches/plot.py"
python3 benches/plot.py
echo "== load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
