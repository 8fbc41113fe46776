#!/usr/bin/env bash
# Update latency side by side: Erlang/OTP hot code loading against Molt's update pause.
#
#   ./benches/erlang/run.sh                 # default sizes (about 40 s on 2 cores)
#   SIZES=small ./benches/erlang/run.sh     # quick run (N = 10, 100; S = 10,000; 2 reps; seconds)
#   MOLT=/tmp/molt ./benches/erlang/run.sh  # use this molt binary (no build)
#
# Environment: SIZES (standard|small), MOLT (the molt binary; default target/release/molt,
# built first with `cargo build --release` unless NO_BUILD=1 or MOLT is set), RUNS (Molt runs
# per hot-load case, default 7), STATE_RUNS (Molt runs per state case, default 5), NS (the
# list of N, default "10 100 1000 10000"), STATE_SIZE (S, default 1000000), ERL_REPS (Erlang
# loads per N, default 30; N > 1000 gets max(3, ERL_REPS/6)), ERL_STATE_REPS (default 5),
# NO_INSTALL=1 (do not call apt-get), RESULTS_DIR (default benches/results;
# benches/results/small with SIZES=small, so a quick run leaves the real results alone).
#
# Part 1, hot load of N functions. Erlang (benches/erlang/reload_bench.erl): a process loops
# in a module of N functions fI(X) -> X * I + V; each new version (all bodies changed) is
# loaded with code:load_binary/3 while it loops: `load` = the load_binary call, `switch` =
# start of load_binary until the looping process runs the new code. Molt: v1.molt has N
# functions `fn f_i(x) { return x * i + 1; }` and a main loop that calls ten of them and, after
# 10,000 warm-up iterations, reaches `update;`; v2 changes every body (`+ 2`), compiled to
# bytecode (v2.mbc) beforehand, as Erlang's versions are compiled beforehand. `molt run v1.molt
# --update v2.mbc --trace-updates=json`: `pause` = pause_us of the applied event (update point
# reached, plan done, -> execution resumes: swap, frame checks), `stall` = the program's own
# clock() around the `update;` statement (everything the program waited for: reading and
# verifying v2.mbc, planning, validating, the pause). Also measured: v2 with 10% of the bodies
# changed, and v2 given as source (compile included in the stall).
#
# Part 2, state transformation over S records. Erlang: a gen_server holding #{K => {K}} with
# S items; version 2's code_change/3 maps {V} -> {V, 0}; `change_code` = sys:change_code,
# `total` = sys:suspend .. first call answered by the new version. Molt: S records
# `type P { a, b }` in a global list; v2 adds `c`, with an explicit `transform P(old)` giving
# c: 0 (as Erlang's {V} -> {V, 0}) or with the default transformer (`c = 0`); eager (default)
# and lazy (`--transform lazy`). pause_us, transform_us and the in-program stall, plus the
# time of the first pass over all records after the update (where lazy pays its conversions)
# against the same pass before it.
#
# Medians everywhere (the lower middle value for an even count). Output: two Markdown tables
# on stdout, benches/results/erlang_reload.md and benches/results/erlang_reload.csv.
set -eu
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIZES=${SIZES:-standard}
RESULTS=${RESULTS_DIR:-$ROOT/benches/results}
if [ "$SIZES" = small ]; then
  RESULTS=${RESULTS_DIR:-$ROOT/benches/results/small}
  NS=${NS:-"10 100"}; STATE_SIZE=${STATE_SIZE:-10000}
  RUNS=${RUNS:-2}; STATE_RUNS=${STATE_RUNS:-2}; ERL_REPS=${ERL_REPS:-2}; ERL_STATE_REPS=${ERL_STATE_REPS:-1}
else
  NS=${NS:-"10 100 1000 10000"}; STATE_SIZE=${STATE_SIZE:-1000000}
  RUNS=${RUNS:-7}; STATE_RUNS=${STATE_RUNS:-5}; ERL_REPS=${ERL_REPS:-30}; ERL_STATE_REPS=${ERL_STATE_REPS:-5}
fi
WARM=10000   # Molt loop iterations before the update point is reached

say() { echo "erlang/run.sh: $*" >&2; }

# --- tools ---------------------------------------------------------------------------------
. "$(dirname "${BASH_SOURCE[0]}")/../install.sh"
HAVE_ERL=""
install erlc erlang-base && install erl erlang-base && HAVE_ERL=1

if [ -z "${MOLT:-}" ]; then
  MOLT=$ROOT/target/release/molt
  if [ -z "${NO_BUILD:-}" ]; then
    say "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet) || { say "cargo build --release failed"; exit 2; }
  fi
fi
[ -x "$MOLT" ] || { say "no molt binary at $MOLT"; exit 2; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp "$MOLT" "$TMP/molt"   # a rebuild of the tree during the run does not change what is timed
M=$TMP/molt

status=0
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
DATE_START=$(date -u '+%Y-%m-%d %H:%M UTC')

median() { sort -g | awk '{a[NR]=$1} END{ if (NR) print a[int((NR+1)/2)] }'; }
ratio() { awk -v m="$1" -v e="$2" 'BEGIN{ if (m == "" || e == "" || e <= 0) exit; r = m / e
  printf (r >= 10 ? "%.1f" : (r >= 0.1 || r <= -0.1) ? "%.2f" : "%.3f"), r }'; }
# key=value from a line of reload_bench output
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
# a numeric field of the applied event (JSON lines on stderr)
jfield() { grep '"event":"applied"' "$1" | head -1 | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }
# a value after a word on the program's output line
ofield() { awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' "$1"; }
us() { if [ -n "$1" ]; then echo "$1"; else echo "—"; fi; }
med() { printf '%s\n' $1 | median; }

# --- Erlang --------------------------------------------------------------------------------
declare -A E_LOAD=() E_SWITCH=() E_COMPILE=() E_REPS=()
E_STATE=""; ERL_INFO="Erlang not available"
if [ -n "$HAVE_ERL" ]; then
  mkdir -p "$TMP/beam"
  if erlc -o "$TMP/beam" "$HERE/reload_bench.erl"; then
    ns_csv=$(tr ' ' ',' <<<"$NS")
    say "erlang: N = $ns_csv, $ERL_REPS loads each; state S = $STATE_SIZE, $ERL_STATE_REPS reps"
    if erl -noshell -pa "$TMP/beam" -run reload_bench main "$ns_csv" "$ERL_REPS" "$STATE_SIZE" "$ERL_STATE_REPS" \
         -s erlang halt >"$TMP/erl.out" 2>"$TMP/erl.err"; then
      cat "$TMP/erl.out" >&2
      ERL_INFO=$(sed -n 's/^# //p' "$TMP/erl.out" | head -1)
      while read -r line; do
        n=$(kv "$line" N)
        E_LOAD[$n]=$(kv "$line" load_us_median); E_SWITCH[$n]=$(kv "$line" switch_us_median)
        E_COMPILE[$n]=$(kv "$line" compile_us_median); E_REPS[$n]=$(kv "$line" reps)
      done < <(grep '^hot_load ' "$TMP/erl.out")
      E_STATE=$(grep '^state_transform ' "$TMP/erl.out" || true)
    else
      say "reload_bench failed: $(head -c 500 "$TMP/erl.err")"; status=1
    fi
  else
    say "erlc reload_bench.erl failed"; status=1
  fi
else
  say "no Erlang: running the Molt side only"; status=1
fi

# --- Molt, part 1: hot load ----------------------------------------------------------------
# v1/v2 generator: n functions; k = the constant of changed bodies; changed = all | tenth
gen_fns() { # n k changed
  awk -v n="$1" -v k="$2" -v changed="$3" -v warm="$WARM" 'BEGIN {
    for (i = 0; i < n; i++) {
      kk = 1
      if (k > 1 && (changed == "all" || i % 10 == 0)) kk = k
      printf "fn f_%d(x) { return x * %d + %d; }\n", i, i, kk
    }
    print "fn main() {"
    print "    let s = 0;"
    print "    let t = 0.0;"
    print "    let stall = 0.0;"
    printf "    for i in 0..%d {\n", warm + 1000
    m = n < 10 ? n : 10
    for (j = 0; j < m; j++) printf "        s += f_%d(i);\n", j
    printf "        if i >= %d and version() == 1 {\n", warm
    print "            t = clock();"
    print "            update;"
    print "            stall = clock() - t;"
    print "        }"
    print "    }"
    print "    print(\"stall_us\", int(stall * 1000000), \"version\", version(), \"f_0(0)\", f_0(0), \"s\", s);"
    print "}"
  }'
}

declare -A P_ALL=() S_ALL=() W_ALL=() P_TEN=() S_TEN=() S_SRC=() P_SRC=()
for n in $NS; do
  d=$TMP/fns_$n; mkdir -p "$d"
  gen_fns "$n" 1 all >"$d/v1.molt"
  gen_fns "$n" 2 all >"$d/v2.molt"
  gen_fns "$n" 2 tenth >"$d/v2_tenth.molt"
  "$M" compile "$d/v2.molt" -o "$d/v2.mbc" && "$M" compile "$d/v2_tenth.molt" -o "$d/v2_tenth.mbc" \
    || { say "molt compile failed for N=$n"; status=1; continue; }
  say "molt: hot load N=$n, $RUNS runs per case"
  declare -A PAUSES=() STALLS=() WAITS=()
  for r in $(seq "$RUNS"); do
    for c in all tenth src; do
      case $c in
        all) upd=$d/v2.mbc; want=$n ;;
        tenth) upd=$d/v2_tenth.mbc; want=$(( (n + 9) / 10 )) ;;
        src) upd=$d/v2.molt; want=$n ;;
      esac
      if ! "$M" run "$d/v1.molt" --update "$upd" --trace-updates=json >"$TMP/out" 2>"$TMP/err"; then
        say "molt run failed (N=$n, $c): $(head -c 300 "$TMP/err")"; status=1; continue
      fi
      changed=$(jfield "$TMP/err" functions_changed)
      if [ "$(ofield "$TMP/out" version)" != 2 ] || [ "$(ofield "$TMP/out" "f_0(0)")" != 2 ] || [ "$changed" != "$want" ]; then
        say "N=$n $c: the update did not apply as expected: $(cat "$TMP/out") $(head -c 300 "$TMP/err")"; status=1; continue
      fi
      PAUSES[$c]="${PAUSES[$c]:-} $(jfield "$TMP/err" pause_us)"
      WAITS[$c]="${WAITS[$c]:-} $(jfield "$TMP/err" wait_us)"
      STALLS[$c]="${STALLS[$c]:-} $(ofield "$TMP/out" stall_us)"
    done
  done
  P_ALL[$n]=$(med "${PAUSES[all]:-}"); S_ALL[$n]=$(med "${STALLS[all]:-}"); W_ALL[$n]=$(med "${WAITS[all]:-}")
  P_TEN[$n]=$(med "${PAUSES[tenth]:-}"); S_TEN[$n]=$(med "${STALLS[tenth]:-}")
  S_SRC[$n]=$(med "${STALLS[src]:-}"); P_SRC[$n]=$(med "${PAUSES[src]:-}")
  unset PAUSES STALLS WAITS
done

# --- Molt, part 2: state transformation ----------------------------------------------------
gen_state() { # v1 | explicit | default
  awk -v variant="$1" 'BEGIN {
    if (variant == "v1") print "type P { a, b }"
    else if (variant == "explicit") print "type P { a, b, c }"
    else print "type P { a, b, c = 0 }"
    print "let items = [];"
    if (variant == "explicit") {
      print "transform P(old) {"
      print "    return P { a: old.a, b: old.b, c: 0 };"
      print "}"
    }
    print "fn make(i) {"
    if (variant == "explicit") print "    return P { a: i, b: i, c: 0 };"
    else print "    return P { a: i, b: i };"
    print "}"
    print "fn touch() {"
    print "    let s = 0;"
    if (variant == "v1") print "    for p in items { s += p.a + p.b; }"
    else print "    for p in items { s += p.a + p.b + p.c; }"
    print "    return s;"
    print "}"
    print "fn main() {"
    print "    let n = int(args()[0]);"
    print "    for i in 0..n { items.push(make(i)); }"
    print "    let times = [];"
    print "    let t = 0.0;"
    print "    let stall = 0.0;"
    print "    let s = 0;"
    print "    for round in 0..4 {"
    print "        t = clock();"
    print "        s = touch();"
    print "        times.push(int((clock() - t) * 1000000));"
    print "        if round == 1 {"
    print "            t = clock();"
    print "            update;"
    print "            stall = clock() - t;"
    print "        }"
    print "    }"
    print "    print(\"stall_us\", int(stall * 1000000), \"before_us\", times[1], \"first_after_us\", times[2], \"steady_us\", times[3], \"version\", version(), \"sum\", s);"
    print "}"
  }'
}
d=$TMP/state; mkdir -p "$d"
gen_state v1 >"$d/v1.molt"
for v in explicit default; do
  gen_state $v >"$d/$v.molt"
  "$M" compile "$d/$v.molt" -o "$d/$v.mbc" || { say "molt compile failed ($v)"; status=1; }
done
SUM=$(awk -v s="$STATE_SIZE" 'BEGIN{ printf "%.0f", s * (s - 1) }')
CASES="explicit:eager explicit:lazy default:eager default:lazy"
declare -A SP=() ST=() SS=() SB=() SF=() SW=() SD=()
say "molt: state S=$STATE_SIZE, $STATE_RUNS runs per case"
for r in $(seq "$STATE_RUNS"); do
  for cm in $CASES; do
    v=${cm%%:*}; mode=${cm#*:}
    if ! "$M" run "$d/v1.molt" --update "$d/$v.mbc" --transform "$mode" --trace-updates=json -- "$STATE_SIZE" \
         >"$TMP/out" 2>"$TMP/err"; then
      say "molt run failed ($cm): $(head -c 300 "$TMP/err")"; status=1; continue
    fi
    want=$STATE_SIZE; [ "$mode" = lazy ] && want=0
    if [ "$(ofield "$TMP/out" version)" != 2 ] || [ "$(ofield "$TMP/out" sum)" != "$SUM" ] \
       || [ "$(jfield "$TMP/err" objects_transformed)" != "$want" ]; then
      say "$cm: the update did not apply as expected: $(cat "$TMP/out") $(head -c 300 "$TMP/err")"; status=1; continue
    fi
    SP[$cm]="${SP[$cm]:-} $(jfield "$TMP/err" pause_us)"
    ST[$cm]="${ST[$cm]:-} $(jfield "$TMP/err" transform_us)"
    SW[$cm]="${SW[$cm]:-} $(jfield "$TMP/err" wait_us)"
    SS[$cm]="${SS[$cm]:-} $(ofield "$TMP/out" stall_us)"
    SB[$cm]="${SB[$cm]:-} $(ofield "$TMP/out" before_us)"
    SF[$cm]="${SF[$cm]:-} $(ofield "$TMP/out" first_after_us)"
    SD[$cm]="${SD[$cm]:-} $(( $(ofield "$TMP/out" first_after_us) - $(ofield "$TMP/out" steady_us) ))"
  done
done

# --- results -------------------------------------------------------------------------------
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$RESULTS"
CSV=$RESULTS/erlang_reload.csv
MD=$RESULTS/erlang_reload.md
echo "part,n_or_s,erlang_us,molt_us,ratio_molt_erlang,notes" >"$CSV"
row() { echo "$1,$2,$3,$4,$(ratio "$4" "$3"),\"$5\"" >>"$CSV"; }

E_CHANGE=""; E_TOTAL=""
if [ -n "$E_STATE" ]; then
  E_CHANGE=$(kv "$E_STATE" change_code_us); E_TOTAL=$(kv "$E_STATE" total_update_us)
fi

{
  echo "Update latency, Erlang/OTP hot code loading vs Molt. $DATE_START, $(nproc) cores, load average"
  echo "$LOAD_START at the start, $LOAD_END at the end. Sizes: $SIZES. $ERL_INFO."
  echo
  echo "Part 1: a new version of N functions, every body changed, loaded while the program loops."
  echo "Microseconds, medians (Erlang: $ERL_REPS loads per N, fewer for N > 1000 as shown; Molt: $RUNS runs"
  echo "per case). Erlang load = code:load_binary; switch = start of load_binary until the looping"
  echo "process runs the new code. Molt pause = pause_us; stall = update point reached until the new"
  echo "code runs (reading + verifying v2.mbc, planning, validating, pause). Molt's v2 is compiled"
  echo "bytecode (v2.mbc) except in the source columns: v2.molt, compiled in the stall, against"
  echo "Erlang's compile:forms + switch. 10%: Molt with only every tenth body changed (Erlang always"
  echo "reloads the whole module; the stall with 10% changed is in the CSV)."
  echo
  echo "| N | Erlang load | Molt pause | pause / load | Erlang switch | Molt stall | stall / switch | Molt pause, 10% | Molt pause, source | Erlang compile + switch | Molt stall, source |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for n in $NS; do
    el=${E_LOAD[$n]:-}; es=${E_SWITCH[$n]:-}; ec=${E_COMPILE[$n]:-}
    ecs=""; [ -n "$ec" ] && [ -n "$es" ] && ecs=$((ec + es))
    reps=""; [ -n "${E_REPS[$n]:-}" ] && [ "${E_REPS[$n]}" != "$ERL_REPS" ] && reps=" (${E_REPS[$n]} loads)"
    echo "| $n | $(us "$el")$reps | $(us "${P_ALL[$n]:-}") | $(ratio "${P_ALL[$n]:-}" "$el") | $(us "$es") | $(us "${S_ALL[$n]:-}") | $(ratio "${S_ALL[$n]:-}" "$es") | $(us "${P_TEN[$n]:-}") | $(us "${P_SRC[$n]:-}") | $(us "$ecs") | $(us "${S_SRC[$n]:-}") |"
    row hot_load_pause "$n" "$el" "${P_ALL[$n]:-}" "erlang: code:load_binary; molt: pause_us (wait_us ${W_ALL[$n]:-?}); all N bodies changed"
    row hot_load_switch "$n" "$es" "${S_ALL[$n]:-}" "erlang: start of load_binary to new code running; molt: in-program stall at the update point (read+verify .mbc + plan + validate + pause)"
    row hot_load_pause_10pct "$n" "$el" "${P_TEN[$n]:-}" "molt: pause_us with 10% of bodies changed; erlang reloads the whole module"
    row hot_load_switch_10pct "$n" "$es" "${S_TEN[$n]:-}" "molt: stall with 10% of bodies changed"
    row hot_load_source "$n" "$ecs" "${S_SRC[$n]:-}" "erlang: compile:forms + switch; molt: stall with v2 as source (compile included)"
    row hot_load_pause_source "$n" "$el" "${P_SRC[$n]:-}" "molt: pause_us with v2 given as source instead of .mbc"
  done
  echo
  echo "Part 2: state transformation over S = $STATE_SIZE records. Erlang: gen_server state"
  echo "#{K => {K}}, code_change/3 maps {V} -> {V, 0} ($ERL_STATE_REPS reps); change_code = sys:change_code,"
  echo "total = sys:suspend .. first call answered by version 2. Molt: \`type P { a, b }\` records in a global"
  echo "list, v2 adds \`c\` (explicit \`transform P(old)\` returning c: 0, or the default transformer with"
  echo "\`c = 0\`), eager or \`--transform lazy\` ($STATE_RUNS runs each); pause = pause_us, transform = transform_us,"
  echo "stall = the program's clock around \`update;\`; first pass = a loop over all records right after the"
  echo "update, against the same loop before the update; deferred = that first pass minus a later one"
  echo "(the conversions lazy does at first use; about 0 when eager). conversion = transform (eager) or"
  echo "deferred (lazy)."
  echo
  echo "| S | Molt case | Erlang change_code | Molt transform | Molt deferred | conversion / change_code | Erlang total | Molt pause | pause / total | Molt stall | Molt first pass after (before) |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for cm in $CASES; do
    p=$(med "${SP[$cm]:-}"); t=$(med "${ST[$cm]:-}"); s=$(med "${SS[$cm]:-}"); b=$(med "${SB[$cm]:-}")
    f=$(med "${SF[$cm]:-}"); w=$(med "${SW[$cm]:-}"); df=$(med "${SD[$cm]:-}")
    conv=$t; [ "${cm#*:}" = lazy ] && conv=$df
    label="${cm%%:*} transform, ${cm#*:}"
    echo "| $STATE_SIZE | $label | $(us "$E_CHANGE") | $(us "$t") | $(us "$df") | $(ratio "$conv" "$E_CHANGE") | $(us "$E_TOTAL") | $(us "$p") | $(ratio "$p" "$E_TOTAL") | $(us "$s") | $(us "$f") ($(us "$b")) |"
    row "state_${cm%%:*}_${cm#*:}_pause" "$STATE_SIZE" "$E_TOTAL" "$p" "erlang: suspend..first call of v2 (total_update_us); molt: pause_us (wait_us ${w:-?}; in-program stall $s us)"
    if [ "${cm#*:}" = lazy ]; then
      row "state_${cm%%:*}_${cm#*:}_conversion" "$STATE_SIZE" "$E_CHANGE" "$df" "erlang: sys:change_code; molt lazy: conversions at first use = first pass after the update ($f us) minus a later pass; transform_us $t"
    else
      row "state_${cm%%:*}_${cm#*:}_conversion" "$STATE_SIZE" "$E_CHANGE" "$t" "erlang: sys:change_code; molt: transform_us; first pass after $f us vs $b us before"
    fi
  done
  if [ -n "$E_STATE" ]; then
    echo
    echo "Erlang state details: $(cut -d' ' -f2- <<<"$E_STATE")."
  fi
  [ $status = 0 ] || { echo; echo "**Some measurements failed or were skipped: see stderr.**"; }
} | tee "$MD"
say "wrote $MD and $CSV"
exit $status
