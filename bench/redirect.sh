#!/usr/bin/env bash
# Hot redirects against the physical limit, measured in one run on this machine: the limit
# server (examples/limit.rs: hyper answering every request with a fixed 301) and snip with
# analytics on, every code in its L1 cache. Rounds interleave; medians are quoted.
#
#   bash bench/redirect.sh [seconds per run, default 10] [rounds, default 3]
#   ZIPF=1 bash bench/redirect.sh ...   # Zipf-distributed codes (s = 1) instead of uniform
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
LINKS=10000
cargo build --release --quiet --bin snip --example limit
. bench/lib.sh

LIMIT=$(start_limit target/release/examples/limit)
SNIP=$(start_snip target/release/snip hot "[rate_limits]
enabled = false")
load "$SNIP" "$LINKS" "$WORK/codes"
# Warm-up: every code into L1, and both servers past their first connections.
run "$LIMIT" "$WORK/codes" "$SECONDS_PER_RUN" > /dev/null
run "$SNIP" "$WORK/codes" "$SECONDS_PER_RUN" > /dev/null

declare -a L_RPS L_P99 S_RPS S_P99
echo "| round | server | requests/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    read -r rps p50 p99 < <(run "$LIMIT" "$WORK/codes" "$SECONDS_PER_RUN")
    echo "| $round | limit | $rps | $p50 | $p99 |"
    L_RPS+=("$rps"); L_P99+=("$p99")
    read -r rps p50 p99 < <(run "$SNIP" "$WORK/codes" "$SECONDS_PER_RUN")
    echo "| $round | snip | $rps | $p50 | $p99 |"
    S_RPS+=("$rps"); S_P99+=("$p99")
done
ML=$(median "${L_RPS[@]}"); MS=$(median "${S_RPS[@]}")
PL=$(median "${L_P99[@]}"); PS=$(median "${S_P99[@]}")
echo
echo "median requests/s: limit $ML, snip $MS; snip/limit $(ratio "$MS" "$ML")"
echo "median p99 ms: limit $PL, snip $PS; snip/limit $(ratio "$PS" "$PL")"
curl -s "http://127.0.0.1:$SNIP/metrics" | grep -E '^snip_cache_requests_total\{level="l1",result="(hit|miss)"\}' || true
