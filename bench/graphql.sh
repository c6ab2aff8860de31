#!/usr/bin/env bash
# GraphQL against REST for one dashboard: a page of 100 links with their owner and click
# totals. GraphQL asks once; a REST client lists the links, reads the owner (`/me`), then
# each link's statistics, one after another or six at a time (as a browser over its six
# connections). One client at a time, each for a bounded time; the server runs on CPU 0,
# the client (examples/dashboard_client.rs) on CPU 1. Prints a Markdown table: requests
# and store calls per dashboard (store calls from the server's own metrics), dashboards
# per second, and the latency of a whole dashboard.
#
#   bash bench/graphql.sh
#   SECONDS_PER_RUN=5 ROUNDS=3 bash bench/graphql.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECONDS_PER_RUN:-5}
ROUNDS=${ROUNDS:-3}
cargo build --release --quiet --bin snip --example dashboard_client
. bench/lib.sh
SNIP=target/release/snip
CLIENT=target/release/examples/dashboard_client

PORT=$(start_snip "$SNIP" graphql "[rate_limits]
enabled = false")
BASE="http://127.0.0.1:$PORT"
python3 -c 'import json; print(json.dumps({"links": [{"url": f"https://example.com/d/{i}", "tags": [f"t{i % 5}"]} for i in range(100)]}))' > "$WORK/bulk.json"
curl -sf -X POST "$BASE/api/v1/links/bulk" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data-binary "@$WORK/bulk.json" \
    | python3 -c 'import json,sys; [print(r["link"]["code"]) for r in json.load(sys.stdin)["results"]]' > "$WORK/codes"
# A few clicks on every link, so the totals have something to add up.
while read -r code; do
    for _ in 1 2 3; do curl -s -o /dev/null "$BASE/$code"; done
done < "$WORK/codes"
sleep 2

calls() { curl -s "$BASE/metrics" | awk '/^snip_store_call_duration_seconds_count/ {n += $2} END {print n + 0}'; }

# One row per mode: medians over the rounds.
for round in $(seq 1 "$ROUNDS"); do
    for mode in graphql rest rest6; do
        before=$(calls)
        out=$(taskset -c 1 "$CLIENT" "$BASE" "$KEY" "$mode" "$SECS")
        after=$(calls)
        printf '%s %s %s\n' "$mode" "$out" "$((after - before))" >> "$WORK/rows"
    done
done

python3 - "$WORK/rows" "$SECS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    mode, dashboards, requests, p50, p99, calls = line.split()
    rows.setdefault(mode, []).append((int(dashboards), int(requests), float(p50), float(p99), int(calls)))
secs = float(sys.argv[2])
names = {"graphql": "GraphQL, one query", "rest": "REST, one call after another",
         "rest6": "REST, six calls at a time"}
print("| client | requests per dashboard | store calls per dashboard | dashboards/s | p50 ms | p99 ms |")
print("|---|---|---|---|---|---|")
for mode in ("graphql", "rest", "rest6"):
    r = rows[mode]
    med = lambda i: statistics.median(x[i] for x in r)
    # The warm-up dashboard is not in the counts; its store calls are.
    per = statistics.median(x[4] / (x[0] + 1) for x in r)
    print(f"| {names[mode]} | {med(1) / med(0):.0f} | {per:.0f} | {med(0) / secs:.1f} | {med(2):.2f} | {med(3):.2f} |")
PY
