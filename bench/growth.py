#!/usr/bin/env python3
"""Helpers of bench/growth.sh (standard library only).

  growth.py wrk FILE                  -> "p50_ms p99_ms requests rps" of a wrk --latency
                                         report; fails on no answer or a non-2xx/3xx one
  growth.py time SECS COUNT KEY URL [KEY URL…]
                                      -> one line per URL: "median_ms p90_ms samples"; the
                                         URLs (each with its API key) are asked in turns
                                         (A, B, A, B, …), one request at a time over a
                                         keep-alive connection each, COUNT times each or
                                         for SECS seconds, whichever ends first; fails on
                                         any answer other than 200
  growth.py load PORT N KEY           -> links 1..N over the bulk API (1,000 a call), with
                                         the codes examples/bulk_load.rs gives them
  growth.py table TSV                 -> the Markdown table of the rows in TSV
  growth.py first-page CURSOR         -> fails unless the page on stdin has 20 links, more
                                         after them, and CURSOR as its next_cursor
  growth.py page-from CODE            -> fails unless the page on stdin has 20 links, CODE
                                         the first
  growth.py covers HOURS TOTAL        -> fails unless the statistics on stdin have HOURS
                                         buckets, TOTAL clicks and top referrers
"""
import http.client
import json
import re
import statistics
import sys
import time
import urllib.parse


def fail(msg):
    print(f"growth.py: {msg}", file=sys.stderr)
    sys.exit(1)


def wrk(path):
    text = open(path).read()
    done = re.search(r"(\d+) requests in", text)
    if not done or int(done.group(1)) == 0:
        fail(f"wrk got no answer at all:\n{text}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if bad:
        fail(f"wrk saw {bad.group(1)} answers that were not 2xx or 3xx:\n{text}")
    errors = re.search(r"Socket errors: (.*)", text)
    if errors:
        print(f"wrk reported socket errors: {errors.group(1)}", file=sys.stderr)

    def ms(label):
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)\b", text)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    print(f"{ms(50):.3f} {ms(99):.3f} {done.group(1)} {rps:.0f}")


def timed(secs, count, pairs):
    keys, urls = pairs[0::2], pairs[1::2]
    if not urls or len(keys) != len(urls):
        fail("time: give KEY URL pairs")
    parsed = [urllib.parse.urlsplit(u) for u in urls]
    conns = [http.client.HTTPConnection(p.hostname, p.port, timeout=120) for p in parsed]
    samples = [[] for _ in urls]

    def ask(i):
        p = parsed[i]
        target = p.path + ("?" + p.query if p.query else "")
        t0 = time.perf_counter()
        conns[i].request("GET", target, headers={"Authorization": f"Bearer {keys[i]}"})
        r = conns[i].getresponse()
        body = r.read()
        t1 = time.perf_counter()
        if r.status != 200:
            fail(f"GET {urls[i]} answered {r.status}: {body[:300]!r}")
        return (t1 - t0) * 1000

    for i in range(len(urls)):  # one unmeasured request each: connection made, caches warm
        ask(i)
    deadline = time.monotonic() + secs
    while len(samples[-1]) < count and time.monotonic() < deadline:
        for i in range(len(urls)):
            samples[i].append(ask(i))
    for s in samples:
        s.sort()
        p90 = s[min(len(s) - 1, int(len(s) * 0.9))]
        print(f"{statistics.median(s):.3f} {p90:.3f} {len(s)}")


DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def numbered_code(i):
    x, out = i * 48271 % 2147483647, ""
    while x > 0:
        out = DIGITS[x % 62] + out
        x //= 62
    return "b" + out


def load(port, n, key):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=300)
    for first in range(1, n + 1, 1000):
        items = [{"url": f"https://example.com/articles/{i}", "alias": numbered_code(i)}
                 for i in range(first, min(first + 999, n) + 1)]
        conn.request("POST", "/api/v1/links/bulk", body=json.dumps({"links": items}),
                     headers={"Authorization": f"Bearer {key}",
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            fail(f"bulk create answered {r.status}: {body[:300]!r}")
        results = json.loads(body)["results"]
        failed = [(item["alias"], res) for item, res in zip(items, results) if "link" not in res]
        if failed or len(results) != len(items):
            fail(f"bulk create failed for {len(failed)} links, e.g. {failed[:3]}")


def fmt_size(v):
    try:
        n = int(v)
    except ValueError:
        return v
    return f"{n:,}"


def table(path):
    print("| operation | claimed growth | size A | cost A | size B | cost B | ratio B/A |")
    print("|---|---|---|---|---|---|---|")
    for line in open(path):
        op, claim, size_a, cost_a, size_b, cost_b, unit = line.rstrip("\n").split("\t")
        ratio = float(cost_b) / float(cost_a) if float(cost_a) > 0 else float("nan")
        print(f"| {op} | {claim} | {fmt_size(size_a)} | {float(cost_a):.3f} {unit} "
              f"| {fmt_size(size_b)} | {float(cost_b):.3f} {unit} | {ratio:.2f} |")


def first_page(cursor):
    page = json.load(sys.stdin)
    if len(page["data"]) != 20 or not page["has_more"] or page["next_cursor"] != cursor:
        fail(f"first page: {len(page['data'])} links, has_more {page['has_more']}, "
             f"next_cursor {page['next_cursor']} (made here: {cursor})")


def page_from(code):
    data = json.load(sys.stdin)["data"]
    if len(data) != 20 or data[0]["code"] != code:
        fail(f"the page has {len(data)} links, from {data[0]['code'] if data else None}, "
             f"not 20 from {code}")


def covers(hours, total):
    s = json.load(sys.stdin)
    bad = []
    if len(s["series"]) != hours:
        bad.append(f"{len(s['series'])} buckets, not {hours}")
    if s["total"] != total:
        bad.append(f"total {s['total']}, not {total}")
    if not s["referrers"]:
        bad.append("no referrers")
    if bad:
        fail("statistics: " + "; ".join(bad))


def main():
    if len(sys.argv) < 3:
        fail(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "wrk":
        wrk(args[0])
    elif cmd == "time":
        timed(float(args[0]), int(args[1]), args[2:])
    elif cmd == "load":
        load(args[0], int(args[1]), args[2])
    elif cmd == "table":
        table(args[0])
    elif cmd == "first-page":
        first_page(args[0])
    elif cmd == "page-from":
        page_from(args[0])
    elif cmd == "covers":
        covers(int(args[0]), int(args[1]))
    else:
        fail(f"unknown command {cmd}\n{__doc__}")


if __name__ == "__main__":
    main()
