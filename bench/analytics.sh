#!/usr/bin/env bash
# Redirect throughput with click analytics on and off, measured in one run on this machine.
# Codes are uniformly random, or Zipf-distributed (s = 1) with ZIPF=1 in the environment.
# Two release servers (analytics on / off) on CPU 0, wrk on CPU 1, 127.0.0.1 only; every run
# is bounded in time. Prints a Markdown table and the ratio of the medians.
#
#   bash bench/analytics.sh [seconds per run, default 10] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
LINKS=10000
KEY=snip_BENCHBENCHBENCHBENCHBENCHBENCHBE

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
# SNIP_BIN measures a binary built before (then nothing is built).
BIN=${SNIP_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet
    BIN=target/release/snip
fi

WORK=$(mktemp -d)
# Servers are started in command substitutions (subshells), so their pids go to a file.
cleanup() {
    if [ -f "$WORK/pids" ]; then
        while read -r p; do kill "$p" 2>/dev/null || true; done < "$WORK/pids"
    fi
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME ANALYTICS -> prints the port
start() {
    local name=$1 analytics=$2 port
    port=$(free_port)
    cat > "$WORK/$name.toml" <<TOML
analytics = $analytics
[rate_limits]
enabled = false
TOML
    SNIP_BOOTSTRAP_ADMIN_KEY=$KEY RUST_LOG=warn taskset -c 0 "$BIN" serve \
        --listen "127.0.0.1:$port" --database "sqlite://$WORK/$name.db" \
        --config "$WORK/$name.toml" > "$WORK/$name.log" 2>&1 &
    echo $! >> "$WORK/pids"
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
        sleep 0.1
    done
    echo "$port"
}

# load PORT FILE: creates $LINKS links in bulk, writes their codes to FILE
load() {
    local port=$1 file=$2
    : > "$file"
    for batch in $(seq 1 $((LINKS / 1000))); do
        python3 - "$batch" > "$WORK/bulk.json" <<'PY'
import json, sys
b = int(sys.argv[1])
print(json.dumps({"links": [{"url": f"https://example.com/{b}/{i}"} for i in range(1000)]}))
PY
        curl -sf -X POST "http://127.0.0.1:$port/api/v1/links/bulk" \
            -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
            --data-binary "@$WORK/bulk.json" \
            | python3 -c 'import json,sys; [print(r["link"]["code"]) for r in json.load(sys.stdin)["results"]]' >> "$file"
    done
}

# run PORT FILE -> "rps p50_ms p99_ms"
run() {
    local port=$1 file=$2
    CODES=$file taskset -c 1 wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" --latency \
        -s bench/random-code.lua "http://127.0.0.1:$port" > "$WORK/wrk.out"
    python3 - "$WORK/wrk.out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
def ms(label):
    m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
errors = re.search(r"Socket errors: (.*)", text)
if errors:
    print(f"wrk reported socket errors: {errors.group(1)}", file=sys.stderr)
print(f"{rps:.0f} {ms(50):.3f} {ms(99):.3f}")
PY
}

OFF=$(start off false)
ON=$(start on true)
load "$OFF" "$WORK/off.codes"
load "$ON" "$WORK/on.codes"
# Warm both caches and JITs of the page cache alike.
run "$OFF" "$WORK/off.codes" > /dev/null
run "$ON" "$WORK/on.codes" > /dev/null

declare -a OFF_RPS ON_RPS
echo "| round | analytics | requests/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    for mode in off on; do
        if [ "$mode" = off ]; then port=$OFF; else port=$ON; fi
        read -r rps p50 p99 < <(run "$port" "$WORK/$mode.codes")
        echo "| $round | $mode | $rps | $p50 | $p99 |"
        if [ "$mode" = off ]; then OFF_RPS+=("$rps"); else ON_RPS+=("$rps"); fi
    done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
M_OFF=$(median "${OFF_RPS[@]}")
M_ON=$(median "${ON_RPS[@]}")
echo
echo "median requests/s: analytics off $M_OFF, on $M_ON; ratio on/off $(python3 -c "print(f'{$M_ON/$M_OFF:.3f}')")"
# The clicks were really counted while the server was being measured.
curl -s "http://127.0.0.1:$ON/metrics" | grep 'snip_click_events_total{state="written"}' || true
