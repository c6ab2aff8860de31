#!/usr/bin/env bash
# The dashboard's pages at 10,000 links: one signed-in person, one connection at a time
# (so latency is the server's time plus loopback), each page for a bounded time. Prints a
# Markdown table of requests per second and p50/p99 latency per page.
#
#   bash bench/pages.sh
#   LINKS=10000 SECONDS_PER_RUN=5 bash bench/pages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LINKS=${LINKS:-10000}
SECS=${SECONDS_PER_RUN:-5}
cargo build --release --quiet --bin snip
. bench/lib.sh
SNIP=target/release/snip

PORT=$(start_snip "$SNIP" pages "[rate_limits]
enabled = false")
load "$PORT" "$LINKS" "$WORK/codes"
CODE=$(head -n 1 "$WORK/codes")

# The first start printed a one-time sign-in link: set a password with it, keep the cookie.
LINK=$(grep -o 'http://[^ ]*/app/welcome/[0-9a-f]*' "$WORK/pages.log" | head -n 1)
COOKIE=$(curl -s -o /dev/null -D - -X POST "$LINK" \
    --data 'password=benchmark+password&confirm=benchmark+password' \
    | awk -F'[:;] *' 'tolower($1) == "set-cookie" {print $2}')
[ -n "$COOKIE" ] || { echo "signing in failed" >&2; exit 1; }

# The second page of the table: follow the first page's "Next page" link.
NEXT=$(curl -s -H "Cookie: $COOKIE" "http://127.0.0.1:$PORT/app/links" \
    | grep -o 'href="/app/links?q=[^"]*cursor=[^"]*"' | head -n 1 | sed 's/href="//; s/"$//; s/&amp;/\&/g; s/&#38;/\&/g')

page() {
    local path=$1
    taskset -c 1 wrk -t1 -c1 -d"${SECS}s" --latency -H "Cookie: $COOKIE" \
        "http://127.0.0.1:$PORT$path" > "$WORK/wrk.out"
    local out rps p50 p99
    out=$(STRICT=1 wrk_summary "$WORK/wrk.out")
    read -r rps p50 p99 <<< "$out"
    printf '| `%s` | %s | %.2f | %.2f |\n' "$path" "$rps" "$p50" "$p99"
}

echo "Dashboard pages, $LINKS links, one connection, ${SECS} s each:"
echo
echo "| page | requests/s | p50 ms | p99 ms |"
echo "|---|---|---|---|"
page /app/links
page "$NEXT"
page "/app/links?q=example.com%2F5%2F&tag="
page "/app/links?sort=clicks"
page "/app/links?sort=clicks&page=40"
page "/app/links/$CODE"
page "/app/links/$CODE/edit"
page "/app/links/$CODE/qr?format=png&size=512"
page /app/keys
page /app/users
