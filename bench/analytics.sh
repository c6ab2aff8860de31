#!/usr/bin/env bash
# Redirect throughput with click analytics on and off, measured in one run on this machine.
# Two release servers (analytics on / off) on CPU 0, wrk on CPU 1, 127.0.0.1 only; every run
# is bounded in time. Prints a Markdown table and the ratio of the medians.
#
#   bash bench/analytics.sh [seconds per run, default 10] [rounds, default 3]
#   ZIPF=1 ...       Zipf-distributed codes (s = 1) instead of uniform
#   SNIP_BIN=path    measure a binary built before (then nothing is built)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
LINKS=10000
BIN=${SNIP_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet --bin snip
    BIN=target/release/snip
fi
. bench/lib.sh

OFF=$(start_snip "$BIN" off "analytics = false
[rate_limits]
enabled = false")
ON=$(start_snip "$BIN" on "analytics = true
[rate_limits]
enabled = false")
load "$OFF" "$LINKS" "$WORK/off.codes"
load "$ON" "$LINKS" "$WORK/on.codes"
# Warm both caches alike.
run "$OFF" "$WORK/off.codes" "$SECONDS_PER_RUN" > /dev/null
run "$ON" "$WORK/on.codes" "$SECONDS_PER_RUN" > /dev/null

declare -a OFF_RPS ON_RPS PAIR
echo "| round | analytics | requests/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    read -r off p50 p99 < <(run "$OFF" "$WORK/off.codes" "$SECONDS_PER_RUN")
    echo "| $round | off | $off | $p50 | $p99 |"
    read -r on p50 p99 < <(run "$ON" "$WORK/on.codes" "$SECONDS_PER_RUN")
    echo "| $round | on | $on | $p50 | $p99 |"
    OFF_RPS+=("$off"); ON_RPS+=("$on"); PAIR+=("$(ratio "$on" "$off")")
done
M_OFF=$(median "${OFF_RPS[@]}")
M_ON=$(median "${ON_RPS[@]}")
echo
echo "median requests/s: analytics off $M_OFF, on $M_ON; ratio on/off $(ratio "$M_ON" "$M_OFF")"
echo "ratio of each round: ${PAIR[*]}; median $(median "${PAIR[@]}")"
# The clicks were really counted while the server was being measured.
curl -s "http://127.0.0.1:$ON/metrics" | grep 'snip_click_events_total{state="written"}' || true
