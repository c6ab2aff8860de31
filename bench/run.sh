#!/usr/bin/env bash
# The benchmark suite, one command: builds the release binaries, then measures on this
# machine, 127.0.0.1 only, every run bounded in time:
#   limit        examples/limit.rs, hyper answering every GET with a fixed 301: the ceiling;
#   hot          snip, 10k links all in L1, analytics on (and: analytics off; the router
#                alone, without the hot path);
#   turns        analytics on and off in short turns: CPU time per redirect of each;
#   cold         snip, 100k links and an L1 of 10k: nine lookups in ten read SQLite
#                (analytics off: the store's read path alone);
#   create       POST /api/v1/links;
#   scale        redirects over 10k, 1M and 10M bulk-loaded links (Zipf), with RSS: as
#                fast as each server can, and at a fixed offered load (for latency).
# Servers run on CPU 0, wrk on CPU 1; while one server is measured the others are paused.
# Rounds interleave every scenario; medians are quoted, each as a ratio to the limit server
# of the same round. Results replace the marked section of docs/benchmarks.md; the plot goes
# to docs/benchmarks/scale.svg.
#
#   bash bench/run.sh
#   ROUNDS=3 SECONDS_PER_RUN=10 SCALE="10000 1000000 10000000" bash bench/run.sh
#   ANALYTICS_TURNS=40 ANALYTICS_SECONDS=2   analytics on against off, in turns (below)
#   BENCH_DATA=dir   where the bulk-loaded databases are kept (default target/bench-data;
#                    the 10M one takes minutes to load, so it is kept for the next run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-10}
SCALE=${SCALE:-"10000 1000000 10000000"}
SETTLE_SECS=3
ASECS=${ANALYTICS_SECONDS:-2}
ATURNS=${ANALYTICS_TURNS:-40}
DATA=${BENCH_DATA:-target/bench-data}
cargo build --release --quiet --bin snip --example limit --example bulk_load
. bench/lib.sh
SNIP=target/release/snip
RESULTS=$WORK/results.tsv
: > "$RESULTS"
note() { printf '%s\n' "$*" >&2; }
batches() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^snip_click_batches_total / {print $2}'; }
fact() { printf 'fact\t%s\t%s\n' "$1" "$2" >> "$RESULTS"; }

# Databases of numbered links (bench/redirects.lua computes their codes), loaded through the
# store layer by examples/bulk_load.rs.
bulk() {
    local n=$1 db=$DATA/links-$1.db
    mkdir -p "$DATA"
    if [ ! -f "$db.done" ]; then
        rm -f "$db" "$db-wal" "$db-shm"
        note "loading $n links into $db"
        target/release/examples/bulk_load "sqlite://$db" "$n" 2>&1 | tee -a "$WORK/bulk.log" >&2
        touch "$db.done"
    fi
    echo "$db"
}

NO_LIMITS="[rate_limits]
enabled = false"

# Idle memory: a fresh server, nothing asked of it yet.
start_snip "$SNIP" idle "$NO_LIMITS" > /dev/null
sleep 2
fact idle_rss_kib "$(rss idle)"
kill "$(cat "$WORK/idle.pid")"
rm "$WORK/idle.pid"

LIMIT=$(start_limit target/release/examples/limit)
HOT=$(start_snip "$SNIP" hot "$NO_LIMITS")
OFF=$(start_snip "$SNIP" off "analytics = false
$NO_LIMITS")
ROUTER=$(start_snip "$SNIP" router "hot_path = false
$NO_LIMITS")
COLD=$(start_snip "$SNIP" cold "analytics = false
[cache]
capacity = 10000
$NO_LIMITS" "$(bulk 100000)")
CREATE=$(start_snip "$SNIP" create "$NO_LIMITS")
declare -A SCALE_PORT
for n in $SCALE; do
    SCALE_PORT[$n]=$(start_snip "$SNIP" "scale$n" "analytics = false
$NO_LIMITS" "$(bulk "$n")")
done
for name in hot off router; do
    load "$(eval echo "\$${name^^}")" 10000 "$WORK/$name.codes"
done

# measure SCENARIO ROUND NAME PORT SCRIPT [VAR=value...]
measure() {
    local scenario=$1 round=$2 name=$3 port=$4 rps p50 p99
    shift 4
    only "$name"
    read -r rps p50 p99 < <(run "$port" "$SECS" "$@")
    printf '%s\t%s\t%s\t%s\t%s\n' "$scenario" "$round" "$rps" "$p50" "$p99" >> "$RESULTS"
    note "round $round  $scenario: $rps req/s, p50 $p50 ms, p99 $p99 ms"
}

# L1 cost per link: the largest scale server below 10M is swept once (every code read, so
# every link enters L1), and its growth in memory divided by the links cached.
for n in $SCALE; do
    if [ "$n" -ge 100000 ] && [ "$n" -le 1000000 ]; then SWEPT=$n; fi
done
if [ -n "${SWEPT:-}" ]; then
    only "scale$SWEPT"
    before=$(rss "scale$SWEPT")
    note "sweeping $SWEPT links into L1"
    run "${SCALE_PORT[$SWEPT]}" $((SWEPT / 15000 + 5)) bench/redirects.lua N="$SWEPT" SWEEP=1 > /dev/null
    sleep 2
    after=$(rss "scale$SWEPT")
    entries=$(curl -s "http://127.0.0.1:${SCALE_PORT[$SWEPT]}/metrics" | awk '/^snip_cache_entries / {print $2}')
    fact l1_swept_links "$SWEPT"
    fact l1_entries "$entries"
    fact l1_rss_growth_kib $((after - before))
fi

# Warm-up: every server past its first connections, hot caches filled.
note "warming up"
only limit
run "$LIMIT" 3 bench/redirects.lua CODES="$WORK/hot.codes" > /dev/null
for name in hot off router; do
    only "$name"
    run "$(eval echo "\$${name^^}")" 5 bench/redirects.lua CODES="$WORK/$name.codes" > /dev/null
done

for round in $(seq 1 "$ROUNDS"); do
    measure limit "$round" limit "$LIMIT" bench/redirects.lua CODES="$WORK/hot.codes"
    measure analytics_off "$round" off "$OFF" bench/redirects.lua CODES="$WORK/off.codes"
    # A paused server cannot write the batch of clicks that came due while it was paused,
    # as an idle one would; it is left idle a moment first, so that its runs hold the
    # batches steady load brings within them, not one per round whatever their length.
    only hot
    sleep "$SETTLE_SECS"
    before=$(batches "$HOT")
    measure hot "$round" hot "$HOT" bench/redirects.lua CODES="$WORK/hot.codes"
    measure hot_zipf "$round" hot "$HOT" bench/redirects.lua CODES="$WORK/hot.codes" ZIPF=1
    fact "hot_batches_$round" $(($(batches "$HOT") - before))
    measure router_only "$round" router "$ROUTER" bench/redirects.lua CODES="$WORK/router.codes"
    measure cold "$round" cold "$COLD" bench/redirects.lua N=100000
    measure create "$round" create "$CREATE" bench/create.lua KEY="$KEY"
    for n in $SCALE; do
        # A short run first, so that L1 holds what this traffic keeps in it (entries that
        # expired since the last round reload here, not in the measured run).
        only "scale$n"
        run "${SCALE_PORT[$n]}" 3 bench/redirects.lua N="$n" ZIPF=1 SEED=$round > /dev/null
        measure "scale_$n" "$round" "scale$n" "${SCALE_PORT[$n]}" bench/redirects.lua N="$n" ZIPF=1
        # The same at a fixed offered load that every size keeps up with (32 connections,
        # each pausing 1 ms: about 20,000 requests/s), for latency without queueing.
        measure "paced_$n" "$round" "scale$n" "${SCALE_PORT[$n]}" bench/redirects.lua N="$n" ZIPF=1 DELAY_MS=1
        fact "scale_rss_kib_$n" "$(rss "scale$n")"
    done
done
# Analytics on against off, in turns: ANALYTICS_TURNS turns, each a run of
# ANALYTICS_SECONDS on the server with analytics on, then one on the server without; both
# stay running (the others are paused), and each one's CPU time (all its threads: the click
# worker and SQLite's included) is read from /proc at every turn's start and end, so that
# a batch written while the other server is loaded is still charged to its own. This
# machine's speed drifts by 20-40 % within seconds; turns this short feel it alike, and the
# CPU time per redirect compares the work of each.
only hot
kill -CONT "$(cat "$WORK/off.pid")"
cpu() { awk '{print $14 + $15}' "/proc/$(cat "$WORK/$1.pid")/stat"; }
requests() { awk '/requests in/ {print $1}' "$WORK/wrk.out"; }
note "analytics on and off in turns"
run "$HOT" 5 bench/redirects.lua CODES="$WORK/hot.codes" > /dev/null
run "$OFF" 5 bench/redirects.lua CODES="$WORK/off.codes" > /dev/null
before=$(batches "$HOT")
for t in $(seq 1 "$ATURNS"); do
    on0=$(cpu hot) off0=$(cpu off)
    run "$HOT" "$ASECS" bench/redirects.lua CODES="$WORK/hot.codes" > /dev/null
    won=$(requests)
    run "$OFF" "$ASECS" bench/redirects.lua CODES="$WORK/off.codes" > /dev/null
    woff=$(requests)
    on1=$(cpu hot) off1=$(cpu off)
    printf 'turn\t%s\t%s\t%s\t%s\t%s\n' "$t" "$won" $((on1 - on0)) "$woff" $((off1 - off0)) >> "$RESULTS"
done
fact turns_batches $(($(batches "$HOT") - before))
fact turns_seconds $((ATURNS * ASECS))

only hot
fact hot_clicks_written "$(curl -s "http://127.0.0.1:$HOT/metrics" | awk -F' ' '/^snip_click_events_total\{state="written"\}/ {print $2}')"
fact cpu "$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}')"
fact date "$(date -u +%Y-%m-%d)"
fact seconds_per_run "$SECS"
fact rounds "$ROUNDS"

cp "$RESULTS" "${BENCH_RESULTS:-target/bench-results.tsv}"
python3 bench/report.py "$RESULTS" docs/benchmarks.md docs/benchmarks/scale.svg
note "results: docs/benchmarks.md, docs/benchmarks/scale.svg (raw: ${BENCH_RESULTS:-target/bench-results.tsv})"
