#!/usr/bin/env bash
# The soak (issue 17): UPDATES updates cycling v1 -> v2 -> v3 -> v1 (a field added with a
# transformer and a migrate, a field renamed and retyped, then back) on a live heap of RECORDS
# records, under each --jit mode. The program checks every record at the end (exit 1 if one
# is wrong); this script samples the resident memory every 2 s and reports it after the first
# cycle, at its highest and at the end. Not run in CI (it takes minutes); results in
# docs/benchmarks.md ("Soak").
#
# With TASKS set, the same with that many tasks (benches/soak_tasks/): each holds RECORDS/TASKS
# of the records (and one in a local), waits on a channel, and between two update points ten
# of them check their records; at the end every task's count of rounds is checked too.
#
#   benches/soak.sh [UPDATES [RECORDS [MODES...]]]     default: 10000 100000 off on always
#   TASKS=1000 benches/soak.sh [UPDATES [RECORDS [MODES...]]]
set -euo pipefail
cd "$(dirname "$0")/.."
UPDATES=${1:-10000}
RECORDS=${2:-100000}
shift $(( $# > 2 ? 2 : $# )) || true
MODES=("${@:-off on always}")
read -r -a MODES <<< "${MODES[*]}"
MOLT=${MOLT:-target/release/molt}
DIR=benches/soak
EXTRA=()
if [ -n "${TASKS:-}" ]; then
    DIR=benches/soak_tasks
    EXTRA=("$TASKS")
fi
[ -x "$MOLT" ] || cargo build --release --bin molt
out=$(mktemp -d)
updates=()
for ((i = 0; i < UPDATES; i++)); do
    case $((i % 3)) in
        0) updates+=(--update $DIR/v2.molt) ;;
        1) updates+=(--update $DIR/v3.molt) ;;
        2) updates+=(--update $DIR/v1.molt) ;;
    esac
done
status=0
for mode in "${MODES[@]}"; do
    start=$(date +%s)
    "$MOLT" run "$DIR/v1.molt" "${updates[@]}" --jit "$mode" -- "$UPDATES" "$RECORDS" "${EXTRA[@]}" \
        > "$out/$mode.out" 2> "$out/$mode.err" &
    pid=$!
    : > "$out/$mode.rss"
    while kill -0 "$pid" 2> /dev/null; do
        rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2> /dev/null || true)
        progress=$(grep -c '^progress' "$out/$mode.out" 2> /dev/null || true)
        progress=${progress:-0}   # no output file yet: an empty column would shift the others
        [ -n "$rss" ] && echo "$(($(date +%s) - start)) $progress $rss" >> "$out/$mode.rss"
        sleep 2
    done
    code=0
    wait "$pid" || code=$?
    secs=$(($(date +%s) - start))
    # The sample 2 s in (the heap built, the first cycles done), the first after 999 updates,
    # the highest, the last.
    first=$(awk 'NR == 2 { print $3 }' "$out/$mode.rss")
    cycled=$(awk '$2 >= 1 { print $3; exit }' "$out/$mode.rss")
    max=$(awk '$3 > m { m = $3 } END { print m }' "$out/$mode.rss")
    last=$(awk 'END { print $3 }' "$out/$mode.rss")
    events=$(grep -c -E 'rejected|rolled back' "$out/$mode.err" || true)
    echo "--jit $mode: exit $code in ${secs}s; $(tail -1 "$out/$mode.out"); rejected or rolled back: $events;" \
        "RSS 2 s in ${first:-?} kB, after 999 updates ${cycled:-?} kB, highest ${max:-?} kB, last ${last:-?} kB (samples: $out/$mode.rss)"
    [ "$code" = 0 ] && [ "$events" = 0 ] || status=1
done
exit $status
