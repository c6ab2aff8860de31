#!/usr/bin/env bash
# How each operation's cost grows with size: every operation measured at two sizes, and the
# ratio of its costs set beside the growth the design claims for it.
#
#   cold     redirect past L1 (one indexed read): SQLite, L1 of 1,000, analytics and rate
#            limits off, bulk-loaded links (100k / 1M), uniform codes; p50 at a fixed load
#            (wrk -t1 -c8, each connection pausing 1 ms)                      claim O(log n)
#   l1       redirect in L1: the same with the default L1 (10k / 1M links), after a sweep
#            that reads every code once; p50 at the same fixed load            claim O(1)
#   list     GET /api/v1/users/{id}/links?limit=20 (one owner holds every link), the first
#            page and the page at half the walk by keyset cursor (100k / 1M)   claim O(page)
#   stats    GET /api/v1/links/{code}/stats over 1 / 30 days of hours, the aggregates
#            written with sqlite3 (every hour, 5 dimensions × 4 values and 5 visitors a
#            day)                                              claim O(hours × dimensions)
#   rebalance  N links on 2 PostgreSQL shards (made over the bulk API, as a client would),
#            a third made (`snip migrate`), then `snip shards rebalance` timed, and timed
#            again when nothing is left to move (3,000 / 30,000 links)   claim O(moved)
#
# Prints a Markdown table (and notes: cache hit ratios, rows, links moved) to stdout and
# writes it to target/growth.md. Servers run on CPU 0, load generators on CPU 1, 127.0.0.1
# only; every run is bounded in time; servers, temporary files and databases are removed
# at exit, whatever happens.
#
#   bash bench/growth.sh                  release binaries (build them first:
#                                         cargo build --release --bin snip --example bulk_load)
#   PROFILE=debug GROWTH_SMALL=1 bash bench/growth.sh    a quick try of the script itself
#
# Settings, all optional:
#   PROFILE=release|debug      where the binaries are taken from (target/PROFILE)
#   GROWTH_SMALL=1             every link count 10× smaller, shorter runs
#   GROWTH_ONLY="cold l1 list stats rebalance"   which operations
#   COLD_SIZES, L1_SIZES, LIST_SIZES, REBALANCE_SIZES   "A B" link counts; STATS_DAYS "1 30"
#   SECONDS_PER_RUN (5), ROUNDS (3)   wrk runs: each size measured ROUNDS times, in turns
#   REQUESTS (300), LIST_SECONDS (30), STATS_SECONDS (20)   API timings: each URL asked up
#                              to REQUESTS times, all of one operation's URLs in turns, for at
#                              most that many seconds
#   BENCH_DATA (target/bench-data)   bulk-loaded SQLite files, shared with bench/run.sh:
#                              links-N.db is reused when links-N.db.done exists, else loaded
#                              (1M links take about a minute and a half on the release build)
#                              and marked; they are only read here
#   PG_URL (postgres://root@127.0.0.1:5432)   PostgreSQL with trust authentication; the
#                              databases snip_growth_a, _b and _c are made and dropped
#   GROWTH_TIMEOUT (3600)      seconds after which the whole run is stopped
#   GROWTH_OUT (target/growth.md)
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
SNIP=target/$PROFILE/snip
BULK=target/$PROFILE/examples/bulk_load
if [ "${GROWTH_SMALL:-0}" = 1 ]; then D=10 SECS=${SECONDS_PER_RUN:-2} ROUNDS=${ROUNDS:-2}
else D=1 SECS=${SECONDS_PER_RUN:-5} ROUNDS=${ROUNDS:-3}; fi
COLD_SIZES=${COLD_SIZES:-"$((100000 / D)) $((1000000 / D))"}
L1_SIZES=${L1_SIZES:-"$((10000 / D)) $((1000000 / D))"}
LIST_SIZES=${LIST_SIZES:-"$((100000 / D)) $((1000000 / D))"}
REBALANCE_SIZES=${REBALANCE_SIZES:-"$((3000 / D)) $((30000 / D))"}
STATS_DAYS=${STATS_DAYS:-"1 30"}
ONLY=${GROWTH_ONLY:-"cold l1 list stats rebalance"}
REQS=${REQUESTS:-300}
LIST_SECS=${LIST_SECONDS:-30}
STATS_SECS=${STATS_SECONDS:-20}
DATA=${BENCH_DATA:-target/bench-data}
PG_URL=${PG_URL:-postgres://root@127.0.0.1:5432}
OUT=${GROWTH_OUT:-target/growth.md}
DEADLINE=${GROWTH_TIMEOUT:-3600}
# The first admin's key in the stores this script makes (snip_ + 32 letters or digits).
KEY=snip_GROWTHGROWTHGROWTHGROWTHGROWTHGR
PG_DBS="snip_growth_a snip_growth_b snip_growth_c"
NO_LIMITS="[rate_limits]
enabled = false"

say() { printf 'growth: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
wants() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

for b in "$SNIP" "$BULK"; do
    if [ ! -x "$b" ]; then
        if [ "$PROFILE" = release ]; then flag=--release; else flag=; fi
        die "$b is missing: cargo build $flag --bin snip --example bulk_load (or PROFILE=debug)"
    fi
done
if [ -n "$(find src examples migrations Cargo.toml -newer "$SNIP" -print -quit)" ]; then
    say "warning: $SNIP is older than the sources; measuring it as it is"
fi
for tool in wrk curl python3 sqlite3 taskset; do
    command -v "$tool" > /dev/null || die "$tool is missing"
done
if wants rebalance; then command -v psql > /dev/null || die "psql is missing (GROWTH_ONLY leaves rebalance out)"; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/snip-growth.XXXXXX")
PG_MADE=0
WATCHDOG=

# Servers are children of this shell, their pids in $WORK/NAME.pid. At exit: every server
# resumed (it may be paused) and stopped, the databases dropped, $WORK removed.
cleanup() {
    local rc=$? f p
    set +e
    trap - EXIT INT TERM
    if [ -n "$WATCHDOG" ]; then pkill -P "$WATCHDOG" 2> /dev/null; kill "$WATCHDOG" 2> /dev/null; fi
    for f in "$WORK"/*.pid; do
        [ -f "$f" ] || continue
        p=$(cat "$f")
        kill -CONT "$p" 2> /dev/null
        kill "$p" 2> /dev/null
    done
    for f in "$WORK"/*.pid; do
        [ -f "$f" ] || continue
        p=$(cat "$f")
        for _ in $(seq 1 100); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2> /dev/null
        if [ "$rc" != 0 ] && [ -f "${f%.pid}.log" ]; then
            say "last lines of ${f##*/}: $(tail -n 5 "${f%.pid}.log")"
        fi
    done
    wait 2> /dev/null
    [ "$PG_MADE" = 1 ] && pg_drop
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'say "stopped (GROWTH_TIMEOUT or SIGTERM)"; exit 124' TERM
(sleep "$DEADLINE" && kill -TERM $$) > /dev/null 2>&1 &
WATCHDOG=$!

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_snip NAME TOML [DATABASE_URL]: a server on CPU 0 with that configuration; sets PORT.
start_snip() {
    local name=$1 toml=$2 db=${3:-} port pid
    port=$(free_port)
    printf '%s\n' "$toml" > "$WORK/$name.toml"
    SNIP_BOOTSTRAP_ADMIN_KEY=$KEY RUST_LOG=warn taskset -c 0 "$SNIP" serve \
        --listen "127.0.0.1:$port" ${db:+--database "$db"} \
        --config "$WORK/$name.toml" > "$WORK/$name.log" 2>&1 &
    pid=$!
    echo "$pid" > "$WORK/$name.pid"
    for _ in $(seq 1 600); do
        curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz" && { PORT=$port; return 0; }
        kill -0 "$pid" 2> /dev/null || die "$name exited: $(tail -n 5 "$WORK/$name.log")"
        sleep 0.1
    done
    die "$name does not answer on port $port"
}

stop_snip() {
    local f=$WORK/$1.pid p
    p=$(cat "$f")
    kill -CONT "$p" 2> /dev/null || true
    kill "$p" 2> /dev/null || true
    for _ in $(seq 1 150); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
    rm -f "$f"
}

# only NAME: every other server paused (SIGSTOP), NAME running.
only() {
    local f
    for f in "$WORK"/*.pid; do
        if [ "$f" = "$WORK/$1.pid" ]; then kill -CONT "$(cat "$f")"; else kill -STOP "$(cat "$f")"; fi
    done
}

# metric PORT NAME [LABELS] -> the value of one sample of the server's /metrics (0 if absent).
metric() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" -v l="${3:-}" '
        { split($1, a, "{"); lab = (index($1, "{") ? "{" a[2] : "") }
        (a[1] == n || a[1] == n "_total") && lab == l { v = $2 }
        END { print v == "" ? 0 : v }'
}

# wrk_run PORT SECONDS CONNECTIONS [VAR=value...]: bench/redirects.lua on CPU 1, one thread;
# the report goes to $WORK/wrk.out, "p50_ms p99_ms requests rps" to stdout.
wrk_run() {
    local port=$1 secs=$2 conns=$3
    shift 3
    env "$@" taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s --latency \
        -s bench/redirects.lua "http://127.0.0.1:$port" > "$WORK/wrk.out"
    python3 bench/growth.py wrk "$WORK/wrk.out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
calc() { python3 -c "print($1)"; }

# row OPERATION CLAIM SIZE_A COST_A SIZE_B COST_B UNIT; note TEXT (printed under the table).
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$WORK/rows.tsv"; }
note() { printf -- '- %s\n' "$*" >> "$WORK/notes.md"; say "$*"; }
: > "$WORK/rows.tsv"
: > "$WORK/notes.md"

# bulk N -> a SQLite file of links 1..N (examples/bulk_load.rs), as bench/run.sh keeps them:
# reused when its .done marker exists. Used in place, never copied by file (the -wal beside
# it holds rows too); the servers here only read it.
bulk() {
    local n=$1 db=$DATA/links-$1.db
    mkdir -p "$DATA"
    if [ ! -f "$db.done" ]; then
        rm -f "$db" "$db-wal" "$db-shm"
        say "loading $n links into $db"
        timeout 3000 "$BULK" "sqlite://$db" "$n" >&2 || die "bulk_load of $n links failed"
        touch "$db.done"
    fi
    echo "$db"
}

REDIRECT_BASE="analytics = false
$NO_LIMITS"

# redirect_pair A_NAME A_PORT A_N B_NAME B_PORT B_N: p50 at a fixed load (8 connections,
# each pausing 1 ms) over uniform codes, ROUNDS runs of each server in turns, the other one
# paused. Sets P50_A, P50_B (medians over rounds) and HIT_A, HIT_B (share of the measured
# lookups L1 answered).
redirect_pair() {
    local side name port n out p50 before_h before_m h m r
    declare -A P50S HITS MISSES
    for r in $(seq 1 "$ROUNDS"); do
        for side in A B; do
            if [ "$side" = A ]; then name=$1 port=$2 n=$3; else name=$4 port=$5 n=$6; fi
            only "$name"
            before_h=$(metric "$port" snip_cache_requests '{level="l1",result="hit"}')
            before_m=$(metric "$port" snip_cache_requests '{level="l1",result="miss"}')
            out=$(wrk_run "$port" "$SECS" 8 N="$n" DELAY_MS=1 SEED="$r")
            p50=${out%% *}
            h=$(metric "$port" snip_cache_requests '{level="l1",result="hit"}')
            m=$(metric "$port" snip_cache_requests '{level="l1",result="miss"}')
            P50S[$side]="${P50S[$side]:-} $p50"
            HITS[$side]=$(calc "${HITS[$side]:-0} + $h - $before_h")
            MISSES[$side]=$(calc "${MISSES[$side]:-0} + $m - $before_m")
            say "round $r, $name ($n links): p50 $p50 ms ($out)"
        done
    done
    # shellcheck disable=SC2086
    P50_A=$(median ${P50S[A]}) P50_B=$(median ${P50S[B]})
    HIT_A=$(calc "round(100 * ${HITS[A]} / max(1, ${HITS[A]} + ${MISSES[A]}), 1)")
    HIT_B=$(calc "round(100 * ${HITS[B]} / max(1, ${HITS[B]} + ${MISSES[B]}), 1)")
}

# 1. Redirects past L1: nearly every lookup reads SQLite.
cold() {
    local a b db_a db_b pa pb
    read -r a b <<< "$COLD_SIZES"
    db_a=$(bulk "$a")
    db_b=$(bulk "$b")
    local config="$REDIRECT_BASE
[cache]
capacity = 1000"
    start_snip cold_a "$config" "sqlite://$db_a"; pa=$PORT
    start_snip cold_b "$config" "sqlite://$db_b"; pb=$PORT
    for name in cold_a cold_b; do  # warm-up: connections made, L1 and page cache filled
        only "$name"
        if [ "$name" = cold_a ]; then wrk_run "$pa" 2 8 N="$a" DELAY_MS=1 > /dev/null
        else wrk_run "$pb" 2 8 N="$b" DELAY_MS=1 > /dev/null; fi
    done
    redirect_pair cold_a "$pa" "$a" cold_b "$pb" "$b"
    row "redirect past L1 (SQLite, L1 of 1,000; p50 at a fixed load)" "O(log n): ≈ 1×" \
        "$a" "$P50_A" "$b" "$P50_B" ms
    note "redirect past L1: L1 answered $HIT_A % of the measured lookups at $a links, $HIT_B % at $b (the rest read SQLite)."
    stop_snip cold_a
    stop_snip cold_b
}

# 2. Redirects in L1: every code read once first, so that every lookup is a hit.
l1() {
    local a b db_a db_b pa pb name port n dur i entries
    read -r a b <<< "$L1_SIZES"
    db_a=$(bulk "$a")
    db_b=$(bulk "$b")
    # An L1 with room for every link of the larger size (its shards each hold a share, so
    # one the size of the links would evict some); entries live an hour instead of 5
    # minutes, so that none expires between the sweep and the end of the measured runs.
    local config="$REDIRECT_BASE
[cache]
capacity = $((2 * b))
ttl_secs = 3600"
    start_snip l1_a "$config" "sqlite://$db_a"; pa=$PORT
    start_snip l1_b "$config" "sqlite://$db_b"; pb=$PORT
    for name in l1_a l1_b; do
        if [ "$name" = l1_a ]; then port=$pa n=$a; else port=$pb n=$b; fi
        only "$name"
        dur=$((2 + n / 20000))
        for i in 1 2 3; do
            say "sweeping $n links into L1 of $name (${dur} s)"
            wrk_run "$port" "$dur" 32 N="$n" SWEEP=1 > /dev/null
            entries=$(metric "$port" snip_cache_entries)
            [ "${entries%.*}" -ge "$n" ] && break
            dur=$((dur * 2))
        done
        [ "${entries%.*}" -ge "$n" ] || note "WARNING: L1 of $name holds $entries entries after the sweep, of $n links."
    done
    redirect_pair l1_a "$pa" "$a" l1_b "$pb" "$b"
    row "redirect in L1 (default L1, swept; p50 at a fixed load)" "O(1): 1×" \
        "$a" "$P50_A" "$b" "$P50_B" ms
    note "redirect in L1: L1 answered $HIT_A % of the measured lookups at $a links, $HIT_B % at $b."
    stop_snip l1_a
    stop_snip l1_b
}

# 3. A page of one owner's links by keyset cursor: the first page, and the page after half
# of the walk. bulk_load makes every link belong to one member (bulk-load@example.com) and
# no admin, so the first start makes none either (it does only in a store without users):
# each size gets a copy of its file (SQLite's backup, the WAL's rows included) with an
# admin key made by `snip keys create --admin`, which lists the owner's links through
# GET /api/v1/users/{id}/links.
list() {
    local a b side n src copy owner counts admin_key port pos deep_cursor want first url_first url_deep
    local -a pairs_first=() pairs_deep=()
    read -r a b <<< "$LIST_SIZES"
    for side in a b; do
        if [ "$side" = a ]; then n=$a; else n=$b; fi
        src=$(bulk "$n")
        copy=$WORK/list-$n.db
        say "copying $src"
        timeout 600 sqlite3 -readonly "$src" ".backup '$copy'"
        owner=$(sqlite3 "$copy" "SELECT id FROM users WHERE email = 'bulk-load@example.com'")
        counts=$(sqlite3 "$copy" "SELECT COUNT(*), COUNT(DISTINCT owner_id), COUNT(DISTINCT created_at) FROM links WHERE deleted_at IS NULL")
        [ "${counts%%|*}" = "$n" ] || die "$src holds ${counts%%|*} live links, not $n"
        [ "$(echo "$counts" | cut -d'|' -f2)" = 1 ] || die "the links of $src have more than one owner ($counts)"
        [ "$n" = "$a" ] && note "list: bulk_load gives all links one owner (a member, user $owner) and $(echo "$counts" | cut -d'|' -f3) creation time(s); the bootstrap admin does not exist in its files, so an admin key made with \`snip keys create --admin\` on a copy lists them through GET /api/v1/users/$owner/links."
        admin_key=$(timeout 120 "$SNIP" keys create --email admin@localhost --admin \
            --database "sqlite://$copy" 2> "$WORK/keys.log") || die "snip keys create failed: $(cat "$WORK/keys.log")"
        start_snip "list_$side" "$REDIRECT_BASE" "sqlite://$copy"; port=$PORT
        url_first="http://127.0.0.1:$port/api/v1/users/$owner/links?limit=20"
        # The cursor is opaque to clients; here it is made for the link at position pos
        # (newest first: created_at descending, then code), checked against the one the
        # first page hands out, and the deep page's first link checked too.
        first=$(curl -sf --max-time 60 -H "Authorization: Bearer $admin_key" "$url_first") \
            || die "GET $url_first failed"
        cursor_at() {
            sqlite3 "$copy" "SELECT created_at || '.' || code FROM links WHERE owner_id = $owner AND deleted_at IS NULL ORDER BY created_at DESC, code LIMIT 1 OFFSET $(($1 - 1))" \
                | python3 -c 'import sys; print(sys.stdin.read().strip().encode().hex())'
        }
        want=$(cursor_at 20)
        printf '%s' "$first" | python3 bench/growth.py first-page "$want" \
            || die "the first page is not as expected (has the cursor's format changed?)"
        pos=$((n / 2))
        deep_cursor=$(cursor_at "$pos")
        url_deep="http://127.0.0.1:$port/api/v1/users/$owner/links?limit=20&cursor=$deep_cursor"
        want=$(sqlite3 "$copy" "SELECT code FROM links WHERE owner_id = $owner AND deleted_at IS NULL ORDER BY created_at DESC, code LIMIT 1 OFFSET $pos")
        curl -sf --max-time 600 -H "Authorization: Bearer $admin_key" "$url_deep" \
            | python3 bench/growth.py page-from "$want" \
            || die "the page after link $pos of $n is not as expected"
        pairs_first+=("$admin_key" "$url_first")
        pairs_deep+=("$admin_key" "$url_deep")
    done
    # Both servers run; one request at a time, so only one works at a time.
    kill -CONT "$(cat "$WORK/list_a.pid")" "$(cat "$WORK/list_b.pid")"
    say "timing the list pages (up to $REQS requests each, $LIST_SECS s at most)"
    local -a res
    mapfile -t res < <(taskset -c 1 python3 bench/growth.py time "$LIST_SECS" "$REQS" \
        "${pairs_first[@]}" "${pairs_deep[@]}")
    [ "${#res[@]}" = 4 ] || die "timing the list pages failed"
    row "list, first page (limit 20; median)" "O(page): 1×" \
        "$a" "${res[0]%% *}" "$b" "${res[1]%% *}" ms
    row "list, page after half the links, by cursor (limit 20; median)" "O(page): 1×" \
        "$a" "${res[2]%% *}" "$b" "${res[3]%% *}" ms
    local -a what=("first page, $a links" "first page, $b links" "deep page, $a links" "deep page, $b links")
    local i m p90 k summary=
    for i in 0 1 2 3; do
        read -r m p90 k <<< "${res[$i]}"
        summary+="${summary:+; }${what[$i]}: $m / $p90 ms ($k requests)"
    done
    note "list, median / p90: $summary."
    stop_snip list_a
    stop_snip list_b
    rm -f "$WORK"/list-*.db*
}

# 4. One link's statistics: the aggregates of D days written straight into SQLite, then the
# whole range asked for by hour.
stats() {
    local a b port to now code days from rows_a rows_b
    read -r a b <<< "$STATS_DAYS"
    start_snip stats "$REDIRECT_BASE" "sqlite://$WORK/stats.db"; port=$PORT
    now=$(date -u +%s)
    to=$((now / 86400 * 86400))  # the start of today (UTC): ranges of whole days before it
    local -a pairs=()
    for days in "$a" "$b"; do
        code=growth-$days-days
        curl -sf --max-time 30 -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/links" \
            -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
            -d "{\"url\": \"https://example.com/stats/$days\", \"alias\": \"$code\"}" \
            || die "creating the link $code failed"
        from=$((to - days * 86400))
        # Every hour of the range; per day 5 dimensions × 4 values and 5 visitors.
        timeout 120 sqlite3 "$WORK/stats.db" <<SQL || die "writing the aggregates of $code failed"
.timeout 10000
BEGIN;
WITH RECURSIVE h(t) AS (SELECT $from * 1000 UNION ALL SELECT t + 3600000 FROM h WHERE t + 3600000 < $to * 1000)
INSERT INTO clicks_by_hour (code, hour, clicks, bots) SELECT '$code', t, 10 + (t / 3600000) % 7, 1 FROM h;
WITH RECURSIVE d(t) AS (SELECT $from * 1000 UNION ALL SELECT t + 86400000 FROM d WHERE t + 86400000 < $to * 1000),
    dims(dim) AS (VALUES ('referrer'), ('browser'), ('os'), ('device'), ('country')),
    v(i) AS (VALUES (1), (2), (3), (4))
INSERT INTO clicks_by_dim (code, day, dim, value, clicks) SELECT '$code', t, dim, dim || '-' || i, 2 * i FROM d, dims, v;
WITH RECURSIVE d(t) AS (SELECT $from * 1000 UNION ALL SELECT t + 86400000 FROM d WHERE t + 86400000 < $to * 1000),
    v(i) AS (VALUES (1), (2), (3), (4), (5))
INSERT INTO visitors (code, day, visitor) SELECT '$code', t, lower(hex(randomblob(16))) FROM d, v;
COMMIT;
SQL
        local rows total
        rows=$(sqlite3 "$WORK/stats.db" "SELECT (SELECT COUNT(*) FROM clicks_by_hour WHERE code = '$code') + (SELECT COUNT(*) FROM clicks_by_dim WHERE code = '$code') + (SELECT COUNT(*) FROM visitors WHERE code = '$code')")
        total=$(sqlite3 "$WORK/stats.db" "SELECT SUM(clicks) FROM clicks_by_hour WHERE code = '$code'")
        if [ "$days" = "$a" ]; then rows_a=$rows; else rows_b=$rows; fi
        local url="http://127.0.0.1:$port/api/v1/links/$code/stats?from=$(date -u -d "@$from" +%FT%TZ)&to=$(date -u -d "@$to" +%FT%TZ)&interval=hour"
        # The answer covers what was written: every hour in the series, every click counted.
        curl -sf --max-time 60 -H "Authorization: Bearer $KEY" "$url" \
            | python3 bench/growth.py covers "$((days * 24))" "$total" \
            || die "the statistics of $code do not cover what was written"
        pairs+=("$KEY" "$url")
    done
    say "timing the statistics (up to $REQS requests each, $STATS_SECS s at most)"
    local -a res
    mapfile -t res < <(taskset -c 1 python3 bench/growth.py time "$STATS_SECS" "$REQS" "${pairs[@]}")
    [ "${#res[@]}" = 2 ] || die "timing the statistics failed"
    row "stats of one link, whole range by hour (median)" "O(hours × dimensions): ≈ $(calc "round($rows_b / $rows_a, 1)")× (rows)" \
        "$a d, $rows_a rows" "${res[0]%% *}" "$b d, $rows_b rows" "${res[1]%% *}" ms
    local per_row
    per_row=$(calc "(${res[1]%% *} - ${res[0]%% *}) / ($rows_b - $rows_a) * 1000")
    note "stats: median ms, p90 ms, samples: ${res[0]} (A); ${res[1]} (B). Both carry a request's fixed cost (HTTP, key, link, a series of every hour): read as fixed + per row × rows, a row costs $(calc "round($per_row, 2)") µs and the fixed part is $(calc "round(${res[0]%% *} - $rows_a * $per_row / 1000, 3)") ms."
    stop_snip stats
}

# 5. Rebalance: N links on shards a and b, then c added and `snip shards rebalance` timed.
export PGOPTIONS=--client-min-messages=warning
pg_admin() { psql "$PG_URL/postgres" -qAtX -v ON_ERROR_STOP=1 -c "$1" > /dev/null; }
pg_count() { psql "$PG_URL/$1" -qAtX -v ON_ERROR_STOP=1 -c "SELECT COUNT(*) FROM links"; }
pg_drop() {
    local db
    for db in $PG_DBS; do pg_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; done
}
shard() { printf '[[shards]]\nurl = "%s/snip_growth_%s"\nname = "%s"\n' "$PG_URL" "$1" "$1"; }

rebalance() {
    local n port t0 t1 t2 out moved ca cb c2a c2b c2c db
    local -a secs=() moved_n=() idle=()
    pg_admin "SELECT 1" || die "PostgreSQL does not answer at $PG_URL (GROWTH_ONLY can leave rebalance out)"
    for n in $REBALANCE_SIZES; do
        PG_MADE=1
        pg_drop
        for db in $PG_DBS; do pg_admin "CREATE DATABASE $db"; done
        start_snip "shards_$n" "$REDIRECT_BASE
$(shard a)
$(shard b)" "$PG_URL/snip_growth_a"
        port=$PORT
        say "loading $n links into 2 shards over the bulk API"
        timeout 1200 taskset -c 1 python3 bench/growth.py load "$port" "$n" "$KEY" || die "loading $n links failed"
        stop_snip "shards_$n"
        for db in $PG_DBS; do psql "$PG_URL/$db" -qAtX -c "VACUUM ANALYZE" > /dev/null; done
        pg_admin CHECKPOINT
        ca=$(pg_count snip_growth_a) cb=$(pg_count snip_growth_b)
        [ $((ca + cb)) = "$n" ] || die "the 2 shards hold $ca + $cb links, not $n"
        # Step 1 of adding a shard (docs/sharding.md): the nodes restart with it, which makes
        # its tables; here `snip migrate` does that, so the timed rebalance is step 2 alone.
        timeout 300 "$SNIP" migrate --database "$PG_URL/snip_growth_c" 2> "$WORK/migrate.log" \
            || die "snip migrate failed: $(tail -n 5 "$WORK/migrate.log")"
        printf '%s\n%s\n%s\n%s\n' "$REDIRECT_BASE" "$(shard a)" "$(shard b)" "$(shard c)" > "$WORK/three.toml"
        say "rebalancing $n links onto 3 shards"
        t0=$(date +%s.%N)
        out=$(timeout 1200 taskset -c 0 "$SNIP" shards rebalance \
            --config "$WORK/three.toml" --database "$PG_URL/snip_growth_a" 2> "$WORK/rebalance.log") \
            || die "snip shards rebalance failed: $(tail -n 5 "$WORK/rebalance.log")"
        t1=$(date +%s.%N)
        moved=$(echo "$out" | awk '/^moved/ {print $2}')
        [ -n "$moved" ] && [ "$moved" -gt 0 ] || die "snip shards rebalance said: $out"
        # Once more, with nothing left to move: the cost of starting, connecting and scanning.
        out=$(timeout 1200 taskset -c 0 "$SNIP" shards rebalance \
            --config "$WORK/three.toml" --database "$PG_URL/snip_growth_a" 2> "$WORK/rebalance.log") \
            || die "snip shards rebalance (again) failed: $(tail -n 5 "$WORK/rebalance.log")"
        t2=$(date +%s.%N)
        [ "$(echo "$out" | awk '/^moved/ {print $2}')" = 0 ] || note "WARNING: a second rebalance said: $out"
        idle+=("$(calc "$t2 - $t1")")
        c2a=$(pg_count snip_growth_a) c2b=$(pg_count snip_growth_b) c2c=$(pg_count snip_growth_c)
        [ $((c2a + c2b + c2c)) = "$n" ] || note "WARNING: after the rebalance the shards hold $c2a + $c2b + $c2c links, not $n."
        [ "$c2c" = "$moved" ] || note "WARNING: $moved links moved, but the new shard holds $c2c."
        secs+=("$(calc "$t1 - $t0")")
        moved_n+=("$moved")
        note "rebalance, $n links: $ca + $cb on 2 shards, then $c2a + $c2b + $c2c; $moved moved in $(calc "round($t1 - $t0, 2)") s; a second run, moving nothing, $(calc "round($t2 - $t1, 2)") s."
    done
    row "rebalance onto a 3rd shard (PostgreSQL; wall time)" \
        "O(moved): ≈ $(calc "round(${moved_n[1]} / ${moved_n[0]}, 1)")× (moved)" \
        "$(echo "$REBALANCE_SIZES" | cut -d' ' -f1) links, ${moved_n[0]} moved" "${secs[0]}" \
        "$(echo "$REBALANCE_SIZES" | cut -d' ' -f2) links, ${moved_n[1]} moved" "${secs[1]}" s
    row "rebalance, per moved link (wall time / moved)" "O(1): 1×" \
        "${moved_n[0]} moved" "$(calc "1000 * ${secs[0]} / ${moved_n[0]}")" \
        "${moved_n[1]} moved" "$(calc "1000 * ${secs[1]} / ${moved_n[1]}")" ms
    row "rebalance, per moved link, less a run that moves nothing" "O(1): 1×" \
        "${moved_n[0]} moved" "$(calc "1000 * (${secs[0]} - ${idle[0]}) / ${moved_n[0]}")" \
        "${moved_n[1]} moved" "$(calc "1000 * (${secs[1]} - ${idle[1]}) / ${moved_n[1]}")" ms
    pg_drop
    PG_MADE=0
}

STARTED=$(date +%s)
for op in cold l1 list stats rebalance; do
    if wants "$op"; then
        say "== $op"
        "$op"
    fi
done

{
    echo "# How costs grow with size"
    echo
    echo "Made by \`bash bench/growth.sh\` on $(date -u +%Y-%m-%d) ($PROFILE build$([ "$D" = 10 ] && echo ', GROWTH_SMALL=1'), $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), $(nproc) CPUs): servers on CPU 0, load on CPU 1, 127.0.0.1 only. Redirects: wrk -t1 -c8, each connection pausing 1 ms, uniform codes over the links, ${SECS} s runs, $ROUNDS rounds in turns (the other server paused), median of the rounds' p50. API calls: one at a time over keep-alive, up to $REQS each, the URLs of one operation in turns, median. The claim says what ratio B / A it predicts."
    echo
    python3 bench/growth.py table "$WORK/rows.tsv"
    echo
    cat "$WORK/notes.md"
    echo "- Took $(($(date +%s) - STARTED)) s."
} > "$WORK/growth.md"
mkdir -p "$(dirname "$OUT")"
cp "$WORK/growth.md" "$OUT"
cat "$WORK/growth.md"
