#!/usr/bin/env bash
# Compares two builds of snip in one run: hot redirects (analytics on), cold redirects and
# link creation, each as a ratio to the limit server of the same round. Rounds interleave
# the two builds, so both feel the machine's drift alike.
#
#   bash bench/compare.sh BEFORE AFTER        two snip binaries (release builds)
#   ROUNDS=5 SECONDS_PER_RUN=8                 the defaults
#
# The limit server is built from this checkout. Servers run on CPU 0, wrk on CPU 1,
# 127.0.0.1 only. Prints a Markdown table; writes nothing in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bash bench/compare.sh BEFORE AFTER" >&2; exit 2; }
BEFORE=$(realpath "$1")
AFTER=$(realpath "$2")
ROUNDS=${ROUNDS:-5}
SECS=${SECONDS_PER_RUN:-8}
cargo build --release --quiet --example limit
. bench/lib.sh
note() { printf '%s\n' "$*" >&2; }

NO_LIMITS="[rate_limits]
enabled = false"
LIMIT=$(start_limit target/release/examples/limit)
declare -A PORT
for build in before after; do
    bin=$BEFORE
    [ "$build" = after ] && bin=$AFTER
    PORT[hot_$build]=$(start_snip "$bin" "hot_$build" "$NO_LIMITS")
    # Each cold server makes its own 100,000 links through its own API: a database that a
    # newer build migrated cannot be opened by an older one.
    PORT[cold_$build]=$(start_snip "$bin" "cold_$build" "analytics = false
[cache]
capacity = 10000
$NO_LIMITS")
    load "${PORT[cold_$build]}" 100000 "$WORK/cold_$build.codes"
    PORT[create_$build]=$(start_snip "$bin" "create_$build" "$NO_LIMITS")
    load "${PORT[hot_$build]}" 10000 "$WORK/hot_$build.codes"
done

# measure NAME PORT SCRIPT [VAR=value...] -> requests/s of one run, NAME alone on CPU 0.
measure() {
    local name=$1 port=$2 rps p50 p99
    shift 2
    only "$name"
    read -r rps p50 p99 < <(run "$port" "$SECS" "$@")
    echo "$rps"
}

note "warming up"
for build in before after; do
    only "hot_$build"
    run "${PORT[hot_$build]}" 3 bench/redirects.lua CODES="$WORK/hot_$build.codes" > /dev/null
done

OUT=$WORK/compare.tsv
: > "$OUT"
declare -A FIG
for round in $(seq 1 "$ROUNDS"); do
    # Each scenario runs on both builds back to back, so a pair feels the same moment of
    # the machine; the order alternates by round, so neither build always goes first.
    order="before after"
    [ $((round % 2)) -eq 0 ] && order="after before"
    limit=$(measure limit "$LIMIT" bench/redirects.lua CODES="$WORK/hot_before.codes")
    for build in $order; do
        FIG[hot_$build]=$(measure "hot_$build" "${PORT[hot_$build]}" bench/redirects.lua CODES="$WORK/hot_$build.codes")
    done
    for build in $order; do
        FIG[cold_$build]=$(measure "cold_$build" "${PORT[cold_$build]}" bench/redirects.lua CODES="$WORK/cold_$build.codes")
    done
    for build in $order; do
        FIG[create_$build]=$(measure "create_$build" "${PORT[create_$build]}" bench/create.lua KEY="$KEY")
    done
    for build in before after; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$build" "$limit" "${FIG[hot_$build]}" \
            "${FIG[cold_$build]}" "${FIG[create_$build]}" >> "$OUT"
        note "round $round $build: limit $limit, hot ${FIG[hot_$build]}, cold ${FIG[cold_$build]}, create ${FIG[create_$build]}"
    done
done

python3 - "$OUT" "$ROUNDS" "$SECS" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
rounds, secs = sys.argv[2], sys.argv[3]
by = {}
for r, build, limit, hot, cold, create in rows:
    by[(int(r), build)] = dict(limit=float(limit), hot=float(hot), cold=float(cold), create=float(create))
rs = sorted({k[0] for k in by})
med = statistics.median
print(f"{rounds} interleaved rounds of {secs} s runs; medians. Ratios are to the limit server "
      "of the same round; create is in links/s.\n")
print("| scenario | before | after | after / before, paired (range) |")
print("|---|---|---|---|")
for s, label in [("hot", "hot redirect, analytics on (ratio to limit)"),
                 ("cold", "cold redirect (ratio to limit)"),
                 ("create", "create (links/s)")]:
    def fig(build, r):
        v = by[(r, build)][s]
        return v if s == "create" else v / by[(r, build)]["limit"]
    b = [fig("before", r) for r in rs]
    a = [fig("after", r) for r in rs]
    paired = [x / y for x, y in zip(a, b)]
    fmt = (lambda v: f"{v:,.0f}") if s == "create" else (lambda v: f"{v:.2f}")
    print(f"| {label} | {fmt(med(b))} | {fmt(med(a))} | {med(paired):.2f} ({min(paired):.2f}–{max(paired):.2f}) |")
print(f"\nlimit server: {med([v['limit'] for v in by.values()]):,.0f} requests/s (median)")
PY
