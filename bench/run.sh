#!/usr/bin/env bash
# The benchmark suite, one command: builds the release binaries, then measures on this
# machine, 127.0.0.1 only, every run bounded in time:
#   limit        examples/limit.rs, hyper answering every GET with a fixed 301: the ceiling;
#   hot          snip, 10k links all in L1, analytics on (and: analytics off; the router
#                alone, without the hot path);
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
#   ANALYTICS_SECONDS=40 SETTLE_SECONDS=3   the analytics on/off runs (see below)
#   BENCH_DATA=dir   where the bulk-loaded databases are kept (default target/bench-data;
#                    the 10M one takes minutes to load, so it is kept for the next run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-10}
SCALE=${SCALE:-"10000 1000000 10000000"}
ASECS=${ANALYTICS_SECONDS:-40}
SETTLE_SECS=${SETTLE_SECONDS:-3}
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

# measure SCENARIO ROUND NAME PORT SCRIPT [VAR=value...]; RUN_SECONDS (default SECS) sets the
# run's length.
measure() {
    local scenario=$1 round=$2 name=$3 port=$4 rps p50 p99
    shift 4
    only "$name"
    read -r rps p50 p99 < <(run "$port" "${RUN_SECONDS:-$SECS}" "$@")
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
    # Analytics on against off, back to back. A busy node writes a batch of clicks about
    # every 40 times what the last one cost (35-40 s here), so these runs last a batch
    # period, ANALYTICS_SECONDS. A paused server cannot write the batch that comes due
    # while it is paused, as an idle one would; it is left SETTLE_SECONDS idle first, so
    # that a batch lands in a run at the pace steady load brings, not once per round.
    # The batches each run held are reported beside the ratio.
    only off
    sleep "$SETTLE_SECS"
    RUN_SECONDS=$ASECS measure analytics_off "$round" off "$OFF" bench/redirects.lua \
        CODES="$WORK/off.codes"
    only hot
    sleep "$SETTLE_SECS"
    before=$(batches "$HOT")
    RUN_SECONDS=$ASECS measure hot "$round" hot "$HOT" bench/redirects.lua CODES="$WORK/hot.codes"
    fact "hot_batches_$round" $(($(batches "$HOT") - before))
    measure hot_zipf "$round" hot "$HOT" bench/redirects.lua CODES="$WORK/hot.codes" ZIPF=1
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
only hot
fact hot_clicks_written "$(curl -s "http://127.0.0.1:$HOT/metrics" | awk -F' ' '/^snip_click_events_total\{state="written"\}/ {print $2}')"
fact cpu "$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}')"
fact date "$(date -u +%Y-%m-%d)"
fact seconds_per_run "$SECS"
fact analytics_seconds "$ASECS"
fact rounds "$ROUNDS"

cp "$RESULTS" "${BENCH_RESULTS:-target/bench-results.tsv}"
python3 bench/report.py "$RESULTS" docs/benchmarks.md docs/benchmarks/scale.svg
note "results: docs/benchmarks.md, docs/benchmarks/scale.svg (raw: ${BENCH_RESULTS:-target/bench-results.tsv})"
