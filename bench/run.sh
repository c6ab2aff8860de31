#!/usr/bin/env bash
# The benchmark suite, one command: builds the release binaries, then measures on this
# machine, 127.0.0.1 only, every run bounded in time:
#   limit        examples/limit.rs, hyper answering every GET with a fixed 301: the ceiling;
#   hot          snip, 10k links all in L1, analytics on (and: analytics off; the router
#                alone, without the hot path); the uniform hot run is long enough to hold
#                click batches (HOT_SECONDS, below);
#   turns        analytics on and off in short turns: CPU time per redirect of each;
#   cold         snip, 100k links and an L1 of 10k: nine lookups in ten read SQLite
#                (analytics off: the store's read path alone);
#   create       POST /api/v1/links;
#   pg_*         cold and create on one PostgreSQL database (pg_cold, pg_create);
#   shards_*     the same on 3 PostgreSQL shards, three databases on the local server
#                (shards_cold, shards_create);
#   scale        redirects over 10k, 1M and 10M bulk-loaded links (Zipf), with RSS: as
#                fast as each server can, and at a fixed offered load (for latency).
# Servers run on CPU 0, wrk on CPU 1; while one server is measured the others are paused.
# PostgreSQL's own processes are not pinned: they share both CPUs with wrk.
# Rounds interleave every scenario; medians are quoted, each as a ratio to the limit server
# of the same round. Results replace the marked section of docs/benchmarks.md; the plot goes
# to docs/benchmarks/scale.svg.
#
#   bash bench/run.sh
#   ROUNDS=3 SECONDS_PER_RUN=10 SCALE="10000 1000000 10000000" bash bench/run.sh
#   ANALYTICS_TURNS=40 ANALYTICS_SECONDS=2   analytics on against off, in turns (below)
#   HOT_SECONDS=70   length of the uniform hot run (analytics on), see below
#   BENCH_DATA=dir   where the bulk-loaded databases are kept (default target/bench-data;
#                    the 10M one takes minutes to load, so it is kept for the next run)
#   PG=0             skips the PostgreSQL and shard scenarios (default PG=1: they need
#                    PostgreSQL at PG_URL, default postgres://postgres@127.0.0.1:5432, with
#                    trust authentication; the databases snip_bench_pg and snip_bench_s1..s3
#                    are dropped and made again at the start, and dropped at the end)
#   SMOKE=1          every scenario's code path once, about a second each, on the dev build:
#                    fails on a run that got no answer or an answer other than 2xx/3xx;
#                    keeps no figures (the report goes to a temporary file)
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=${SMOKE:-0}
PG=${PG:-1}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
if [ "$SMOKE" = 1 ]; then
    ROUNDS=${ROUNDS:-1}
    SECS=${SECONDS_PER_RUN:-1}
    SCALE=${SCALE:-"10000"}
    ASECS=${ANALYTICS_SECONDS:-1}
    ATURNS=${ANALYTICS_TURNS:-1}
    HOT_SECS=${HOT_SECONDS:-1}
    SETTLE_SECS=1
    HOT_LINKS=1000
    COLD_LINKS=2000
    SWEEP_MIN=10000
    export STRICT=1
    cargo build --quiet --bin snip --example limit --example bulk_load
    BIN=target/debug
else
    ROUNDS=${ROUNDS:-3}
    SECS=${SECONDS_PER_RUN:-10}
    SCALE=${SCALE:-"10000 1000000 10000000"}
    ASECS=${ANALYTICS_SECONDS:-2}
    ATURNS=${ANALYTICS_TURNS:-40}
    # The click worker cuts a batch every click_flush_ms (10 s by default), or, when writing
    # the last one cost more than a hundredth of that, every 100 times that cost, at most
    # every 6 × click_flush_ms (60 s): BatchWriter::due in src/clicks/worker.rs. A batch of
    # this load (10k links, every hour, dimension value and visitor of each) is big enough to
    # stretch the interval towards 60 s. The batch that came due while the server was paused
    # is written in its settle (below); the next one is cut at most 60 s later, 57 s into
    # the uniform hot run: 70 s holds at least one batch, cut and written (unless writing
    # it takes over 13 s; then it is counted in the Zipf run that follows).
    HOT_SECS=${HOT_SECONDS:-70}
    SETTLE_SECS=3
    HOT_LINKS=10000
    COLD_LINKS=100000
    SWEEP_MIN=100000
    cargo build --release --quiet --bin snip --example limit --example bulk_load
    BIN=target/release
fi
. bench/lib.sh
if [ "$SMOKE" = 1 ]; then
    DATA=$WORK/data  # loaded afresh, so bulk_load runs too, and nothing is kept
else
    DATA=${BENCH_DATA:-target/bench-data}
fi
SNIP=$BIN/snip
RESULTS=$WORK/results.tsv
: > "$RESULTS"
note() { printf '%s\n' "$*" >&2; }
batches() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^snip_click_batches_total / {print $2}'; }
fact() { printf 'fact\t%s\t%s\n' "$1" "$2" >> "$RESULTS"; }
# cpu NAME -> the server's CPU time so far (user and system, all threads), in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$(cat "$WORK/$1.pid")/stat"; }
CLK_TCK=$(getconf CLK_TCK)
# warm SECONDS -> the length of an unmeasured run: 1 s in smoke mode.
warm() { if [ "$SMOKE" = 1 ]; then echo 1; else echo "$1"; fi; }

# Databases of numbered links (bench/redirects.lua computes their codes), loaded through the
# store layer by examples/bulk_load.rs.
bulk() {
    local n=$1 db=$DATA/links-$1.db
    mkdir -p "$DATA"
    if [ ! -f "$db.done" ]; then
        rm -f "$db" "$db-wal" "$db-shm"
        note "loading $n links into $db"
        "$BIN/examples/bulk_load" "sqlite://$db" "$n" 2>&1 | tee -a "$WORK/bulk.log" >&2
        touch "$db.done"
    fi
    echo "$db"
}

# PostgreSQL: one database, and three for the shards, made afresh for every run and dropped
# at the end (in the exit trap, after the servers have stopped).
PG_DBS="snip_bench_pg snip_bench_s1 snip_bench_s2 snip_bench_s3 snip_bench_pgbench"
pg_admin() { psql "$PG_URL/postgres" -qAtX -v ON_ERROR_STOP=1 -c "$1" > /dev/null; }
pg_drop() {
    local db
    for db in $PG_DBS; do pg_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done
}
if [ "$PG" = 1 ]; then
    command -v psql >/dev/null 2>&1 \
        || { note "psql is missing: install PostgreSQL, or PG=0 skips its scenarios"; exit 1; }
    pg_admin "SELECT 1" \
        || { note "PostgreSQL does not answer at $PG_URL (PG=0 skips its scenarios)"; exit 1; }
    AT_EXIT+=(pg_drop)
    pg_drop
    for db in $PG_DBS; do pg_admin "CREATE DATABASE $db"; done
    # The bar for PostgreSQL: pgbench's own tables, 100,000 accounts (below, pg_bar).
    pgbench -i -s 1 -q "$PG_URL/snip_bench_pgbench" > "$WORK/pgbench.log" 2>&1 \
        || { cat "$WORK/pgbench.log" >&2; note "pgbench -i failed"; exit 1; }
fi

NO_LIMITS="[rate_limits]
enabled = false"
COLD_CONFIG="analytics = false
[cache]
capacity = 10000
$NO_LIMITS"

# Idle memory: a fresh server, nothing asked of it yet.
start_snip "$SNIP" idle "$NO_LIMITS" > /dev/null
sleep "$(warm 2)"
fact idle_rss_kib "$(rss idle)"
kill "$(cat "$WORK/idle.pid")"
rm "$WORK/idle.pid"

LIMIT=$(start_limit "$BIN/examples/limit")
HOT=$(start_snip "$SNIP" hot "$NO_LIMITS")
OFF=$(start_snip "$SNIP" off "analytics = false
$NO_LIMITS")
ROUTER=$(start_snip "$SNIP" router "hot_path = false
$NO_LIMITS")
COLD=$(start_snip "$SNIP" cold "$COLD_CONFIG" "$(bulk "$COLD_LINKS")")
CREATE=$(start_snip "$SNIP" create "$NO_LIMITS")
declare -A SCALE_PORT
for n in $SCALE; do
    SCALE_PORT[$n]=$(start_snip "$SNIP" "scale$n" "analytics = false
$NO_LIMITS" "$(bulk "$n")")
done
for name in hot off router; do
    load "$(eval echo "\$${name^^}")" "$HOT_LINKS" "$WORK/$name.codes"
done

# On PostgreSQL, one server per store answers both its cold redirects and its creates: the
# cold scenario's configuration (L1 of 10k, analytics off), which creation does not use.
# Each server starts before its links are loaded, so that it makes the admin (and its key)
# in a store that has no user yet.
if [ "$PG" = 1 ]; then
    PGS=$(start_snip "$SNIP" pg "$COLD_CONFIG" "$PG_URL/snip_bench_pg")
    note "loading $COLD_LINKS links into snip_bench_pg"
    "$BIN/examples/bulk_load" "$PG_URL/snip_bench_pg" "$COLD_LINKS" 2>&1 | tee -a "$WORK/bulk.log" >&2
    SHARDS=$(start_snip "$SNIP" shards "$COLD_CONFIG
[[shards]]
url = \"$PG_URL/snip_bench_s1\"
name = \"s1\"
[[shards]]
url = \"$PG_URL/snip_bench_s2\"
name = \"s2\"
[[shards]]
url = \"$PG_URL/snip_bench_s3\"
name = \"s3\"" "$PG_URL/snip_bench_s1")
    # bulk_load reads the server's configuration file, so each link goes to its shard.
    note "loading $COLD_LINKS links into 3 shards"
    "$BIN/examples/bulk_load" "$WORK/shards.toml" "$COLD_LINKS" 2>&1 | tee -a "$WORK/bulk.log" >&2
    # Statistics fresh and dirty pages written now, so that neither autovacuum nor a
    # checkpoint of the load runs during the measurements.
    for db in $PG_DBS; do psql "$PG_URL/$db" -qAtX -v ON_ERROR_STOP=1 -c "VACUUM ANALYZE" > /dev/null; done
    pg_admin "CHECKPOINT"
    fact pg_version "$(psql "$PG_URL/postgres" -qAtX -c 'SHOW server_version' | awk '{print $1}')"
fi

# measure SCENARIO ROUND NAME PORT SCRIPT [VAR=value...]: a run of SECONDS_PER_RUN (or
# MEASURE_SECS, when set), NAME alone on CPU 0.
# Also the server's CPU time (all its threads, from /proc) per request answered, in µs.
measure() {
    local scenario=$1 round=$2 name=$3 port=$4 out rps p50 p99 cpu0 requests
    shift 4
    only "$name"
    cpu0=$(cpu "$name")
    out=$(run "$port" "${MEASURE_SECS:-$SECS}" "$@")
    read -r rps p50 p99 <<< "$out"
    requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
    fact "cpu_us_${scenario}_$round" "$(python3 -c "print(f'{($(cpu "$name") - $cpu0) * 1e6 / $CLK_TCK / max($requests, 1):.2f}')")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$scenario" "$round" "$rps" "$p50" "$p99" >> "$RESULTS"
    note "round $round  $scenario: $rps req/s, p50 $p50 ms, p99 $p99 ms"
}

# pg_bar ROUND: PostgreSQL alone reading one row by primary key a transaction (pgbench's
# select-only script over 100,000 rows, prepared, 32 clients on CPU 1 as wrk), every snip
# server paused: the bar a redirect service on PostgreSQL, one read a request, cannot pass.
pg_bar() {
    local tps
    only pgbench
    tps=$(taskset -c 1 pgbench -n -S -M prepared -c 32 -j 1 -T "${MEASURE_SECS:-$SECS}" \
        "$PG_URL/snip_bench_pgbench" 2> /dev/null | awk '/^tps/ {print $3; exit}')
    printf 'pg_point_read\t%s\t%s\t0\t0\n' "$1" "${tps:-0}" >> "$RESULTS"
    note "round $1  pg_point_read (pgbench -S): ${tps:-0} transactions/s"
}

# L1 cost per link: the largest scale server below 10M is swept once (every code read, so
# every link enters L1), and its growth in memory divided by the links cached.
for n in $SCALE; do
    if [ "$n" -ge "$SWEEP_MIN" ] && [ "$n" -le 1000000 ]; then SWEPT=$n; fi
done
if [ -n "${SWEPT:-}" ]; then
    only "scale$SWEPT"
    before=$(rss "scale$SWEPT")
    note "sweeping $SWEPT links into L1"
    run "${SCALE_PORT[$SWEPT]}" $((SWEPT / 15000 + $(warm 5))) bench/redirects.lua N="$SWEPT" SWEEP=1 > /dev/null
    sleep "$(warm 2)"
    after=$(rss "scale$SWEPT")
    entries=$(curl -s "http://127.0.0.1:${SCALE_PORT[$SWEPT]}/metrics" | awk '/^snip_cache_entries / {print $2}')
    fact l1_swept_links "$SWEPT"
    fact l1_entries "$entries"
    fact l1_rss_growth_kib $((after - before))
fi

# Warm-up: every server past its first connections, hot caches filled.
note "warming up"
only limit
run "$LIMIT" "$(warm 3)" bench/redirects.lua CODES="$WORK/hot.codes" > /dev/null
for name in hot off router; do
    only "$name"
    run "$(eval echo "\$${name^^}")" "$(warm 5)" bench/redirects.lua CODES="$WORK/$name.codes" > /dev/null
done

for round in $(seq 1 "$ROUNDS"); do
    # The limit server's run is as long as the uniform hot run, so that the hot run's ratio
    # and p99 compare runs that met as much of the machine's drift and hiccups.
    MEASURE_SECS=$HOT_SECS measure limit "$round" limit "$LIMIT" bench/redirects.lua CODES="$WORK/hot.codes"
    measure analytics_off "$round" off "$OFF" bench/redirects.lua CODES="$WORK/off.codes"
    # A paused server cannot write the batch of clicks that came due while it was paused,
    # as an idle one would; it is left idle a moment first, so that its runs hold the
    # batches steady load brings within them, not one per round whatever their length. The
    # uniform run lasts HOT_SECONDS, long enough for the next batch to come due inside it
    # (see above); the batches written inside each run are counted.
    only hot
    sleep "$SETTLE_SECS"
    before=$(batches "$HOT")
    MEASURE_SECS=$HOT_SECS measure hot "$round" hot "$HOT" bench/redirects.lua CODES="$WORK/hot.codes"
    middle=$(batches "$HOT")
    measure hot_zipf "$round" hot "$HOT" bench/redirects.lua CODES="$WORK/hot.codes" ZIPF=1
    fact "hot_batches_$round" $((middle - before))
    fact "hot_zipf_batches_$round" $(($(batches "$HOT") - middle))
    measure router_only "$round" router "$ROUTER" bench/redirects.lua CODES="$WORK/router.codes"
    measure cold "$round" cold "$COLD" bench/redirects.lua N="$COLD_LINKS"
    measure create "$round" create "$CREATE" bench/create.lua KEY="$KEY"
    if [ "$PG" = 1 ]; then
        pg_bar "$round"
        measure pg_cold "$round" pg "$PGS" bench/redirects.lua N="$COLD_LINKS"
        measure pg_create "$round" pg "$PGS" bench/create.lua KEY="$KEY"
        measure shards_cold "$round" shards "$SHARDS" bench/redirects.lua N="$COLD_LINKS"
        measure shards_create "$round" shards "$SHARDS" bench/create.lua KEY="$KEY"
    fi
    for n in $SCALE; do
        # A short run first, so that L1 holds what this traffic keeps in it (entries that
        # expired since the last round reload here, not in the measured run).
        only "scale$n"
        run "${SCALE_PORT[$n]}" "$(warm 3)" bench/redirects.lua N="$n" ZIPF=1 SEED=$round > /dev/null
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
requests() { awk '/requests in/ {print $1}' "$WORK/wrk.out"; }
note "analytics on and off in turns"
run "$HOT" "$(warm 5)" bench/redirects.lua CODES="$WORK/hot.codes" > /dev/null
run "$OFF" "$(warm 5)" bench/redirects.lua CODES="$WORK/off.codes" > /dev/null
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
fact hot_seconds "$HOT_SECS"
fact rounds "$ROUNDS"

if [ "$SMOKE" = 1 ]; then
    # Every scenario ran and each run was answered (wrk_summary already failed the run on a
    # wrong answer); the report is made, into a temporary file, so that it is exercised too.
    python3 - "$RESULTS" "$PG" $SCALE <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.rstrip("\n").split("\t")
    if parts[0] not in ("fact", "turn"):
        rows[parts[0]] = float(parts[2])
want = ["limit", "analytics_off", "hot", "hot_zipf", "router_only", "cold", "create"]
if sys.argv[2] == "1":
    want += ["pg_point_read", "pg_cold", "pg_create", "shards_cold", "shards_create"]
want += [f"{k}_{n}" for n in sys.argv[3:] for k in ("scale", "paced")]
bad = [w for w in want if rows.get(w, 0) <= 0]
if bad:
    sys.exit(f"smoke: no requests/s recorded for {', '.join(bad)}")
print(f"smoke: {len(want)} scenarios answered", file=sys.stderr)
PY
    cp docs/benchmarks.md "$WORK/benchmarks.md"
    python3 bench/report.py "$RESULTS" "$WORK/benchmarks.md" "$WORK/scale.svg" > "$WORK/report.md"
    grep -q '^| limit server' "$WORK/report.md" || { note "smoke: the report has no results table"; exit 1; }
    note "smoke run passed: every scenario answered; no figures kept"
    exit 0
fi

cp "$RESULTS" "${BENCH_RESULTS:-target/bench-results.tsv}"
python3 bench/report.py "$RESULTS" docs/benchmarks.md docs/benchmarks/scale.svg
note "results: docs/benchmarks.md, docs/benchmarks/scale.svg (raw: ${BENCH_RESULTS:-target/bench-results.tsv})"
