# Shared by the benchmark scripts: servers on CPU 0, wrk on CPU 1, 127.0.0.1 only, every
# run bounded in time. Source it after `set -euo pipefail` and `cd` to the repository.

KEY=snip_BENCHBENCHBENCHBENCHBENCHBENCHBE
WORK=$(mktemp -d)

# Commands run at exit after the servers have stopped (e.g. dropping databases they used).
AT_EXIT=()

# Servers are started in command substitutions (subshells), so their pids go to a file; they
# are not this shell's children, so `wait` cannot wait for them: each is polled until gone
# (10 s at most).
cleanup() {
    local p c
    if [ -f "$WORK/pids" ]; then
        while read -r p; do
            kill -CONT "$p" 2>/dev/null || true
            kill "$p" 2>/dev/null || true
        done < "$WORK/pids"
        while read -r p; do
            for _ in $(seq 1 100); do
                kill -0 "$p" 2>/dev/null || break
                sleep 0.1
            done
        done < "$WORK/pids"
    fi
    wait 2>/dev/null || true
    for c in ${AT_EXIT[@]+"${AT_EXIT[@]}"}; do
        eval "$c" || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
        sleep 0.1
    done
    echo "nothing answers on port $1" >&2
    return 1
}

# start_snip BIN NAME TOML [DB] -> prints the port. TOML is the server's configuration file
# text (with [[shards]] in it, DB is not used); DB the SQLite file (a new one in $WORK by
# default) or a database URL (postgres://…). The pid goes to $WORK/NAME.pid.
start_snip() {
    local bin=$1 name=$2 toml=$3 db=${4:-$WORK/$2.db} port
    port=$(free_port)
    case $db in *://*) ;; *) db=sqlite://$db ;; esac
    printf '%s\n' "$toml" > "$WORK/$name.toml"
    SNIP_BOOTSTRAP_ADMIN_KEY=$KEY RUST_LOG=warn taskset -c 0 "$bin" serve \
        --listen "127.0.0.1:$port" --database "$db" \
        --config "$WORK/$name.toml" > "$WORK/$name.log" 2>&1 &
    echo $! >> "$WORK/pids"
    echo $! > "$WORK/$name.pid"
    wait_for "$port"
    echo "$port"
}

# rss NAME -> the server's resident memory in KiB.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$(cat "$WORK/$1.pid")/status"; }

# only NAME: every other server stopped (SIGSTOP), so that nothing else runs on its core
# while NAME is measured (a paused server's click flush cannot land in another's run).
only() {
    local f
    for f in "$WORK"/*.pid; do
        if [ "$f" = "$WORK/$1.pid" ]; then kill -CONT "$(cat "$f")"; else kill -STOP "$(cat "$f")"; fi
    done
}

# start_limit BIN -> prints the port of the limit server.
start_limit() {
    local port
    port=$(free_port)
    taskset -c 0 "$1" "127.0.0.1:$port" > "$WORK/limit.log" 2>&1 &
    echo $! >> "$WORK/pids"
    echo $! > "$WORK/limit.pid"
    wait_for "$port"
    echo "$port"
}

# load PORT N FILE: creates N links (in bulks of 1,000), writes their codes to FILE.
load() {
    local port=$1 n=$2 file=$3
    : > "$file"
    for batch in $(seq 1 $(((n + 999) / 1000))); do
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

# wrk_summary FILE -> "rps p50_ms p99_ms" of a wrk --latency report; warns of socket errors
# and of answers that were neither 2xx nor 3xx (with STRICT=1 in the environment: fails on
# them, and on a run that got no answer at all).
wrk_summary() {
    python3 - "$1" <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
strict = os.environ.get("STRICT") == "1"
done = re.search(r"(\d+) requests in", text)
if strict and (not done or int(done.group(1)) == 0):
    print("wrk got no answer at all" + (f":\n{text}" if text.strip() else ""), file=sys.stderr)
    sys.exit(1)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
def ms(label):
    m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
errors = re.search(r"Socket errors: (.*)", text)
if errors:
    print(f"wrk reported socket errors: {errors.group(1)}", file=sys.stderr)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if non2xx:
    print(f"wrk saw {non2xx.group(1)} answers that were not 2xx or 3xx", file=sys.stderr)
    if strict:
        sys.exit(1)
print(f"{rps:.0f} {ms(50):.3f} {ms(99):.3f}")
PY
}

# run PORT SECONDS SCRIPT [VAR=value...] -> "rps p50_ms p99_ms": wrk on CPU 1, one thread,
# 32 keep-alive connections, the Lua SCRIPT given the variables (see bench/redirects.lua).
run() {
    local port=$1 seconds=$2 script=$3
    shift 3
    env "$@" taskset -c 1 wrk -t1 -c32 -d"${seconds}s" --latency \
        -s "$script" "http://127.0.0.1:$port" > "$WORK/wrk.out"
    wrk_summary "$WORK/wrk.out"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { python3 -c "print(f'{$1/$2:.3f}')"; }
