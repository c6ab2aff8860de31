"""Turns the suite's raw results (bench/run.sh) into the results section of
docs/benchmarks.md and the scale plot (SVG, drawn here: no plotting library needed).

    python3 bench/report.py RESULTS.tsv docs/benchmarks.md docs/benchmarks/scale.svg
"""

import statistics
import sys
from collections import defaultdict

BEGIN, END = "<!-- bench:results -->", "<!-- /bench:results -->"

# Targets of the PostgreSQL and shard scenarios, set from their first measurements
# (2026-12-08), a little below them for this machine's drift. Cold redirects on
# PostgreSQL are held against PostgreSQL alone reading one row by primary key a
# transaction (`pgbench -S`, the line under the table): a redirect service cannot beat
# that with one read a request. Three shards on one server are held against one database
# (each shard's lookups batch apart, so its batches are a third the size).
PG_TARGETS = {
    "pg_cold": "≥ 0.60 of PostgreSQL alone",
    "pg_create": "≥ 3,000/s",
    "shards_cold": "≥ 0.50 of one database",
    "shards_create": "≥ 1,300/s",
}

# (scenario, what it is, target: a ratio to the limit's requests/s, a string, or None)
SCENARIOS = [
    ("limit", "limit server (fixed 301)", None),
    ("hot", "snip, hot redirect, analytics on, uniform codes", 0.85),
    ("hot_zipf", "snip, hot redirect, analytics on, Zipf codes", 0.85),
    ("analytics_off", "snip, hot redirect, analytics off", None),
    ("router_only", "snip, hot redirect, every request through the router (`hot_path = false`)", None),
    ("cold", "snip, cold redirect: 100k links, L1 of 10k, SQLite, analytics off", 0.40),
    ("create", "snip, POST /api/v1/links, SQLite (links/s)", "≥ 5,000/s"),
    ("pg_cold", "snip, cold redirect: 100k links, L1 of 10k, PostgreSQL, analytics off",
     PG_TARGETS["pg_cold"]),
    ("pg_create", "snip, POST /api/v1/links, PostgreSQL (links/s)", PG_TARGETS["pg_create"]),
    ("shards_cold", "snip, cold redirect: 100k links, L1 of 10k, 3 PostgreSQL shards, "
     "analytics off", PG_TARGETS["shards_cold"]),
    ("shards_create", "snip, POST /api/v1/links, 3 PostgreSQL shards (links/s)",
     PG_TARGETS["shards_create"]),
]

# The fact that counts the click batches written inside each round's run of a scenario.
BATCH_FACTS = {"hot": "hot_batches_{}", "hot_zipf": "hot_zipf_batches_{}"}


def load(path):
    runs = defaultdict(dict)  # scenario -> round -> (rps, p50, p99)
    facts = {}
    for line in open(path):
        parts = line.rstrip("\n").split("\t")
        if parts[0] == "fact":
            facts[parts[1]] = parts[2]
        elif parts[0] == "turn":
            # analytics on and off in turns: requests and CPU ticks of each
            facts.setdefault("turns", []).append([int(x) for x in parts[2:6]])
        else:
            scenario, rnd, rps, p50, p99 = parts
            runs[scenario][int(rnd)] = (float(rps), float(p50), float(p99))
    return runs, facts


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def summary(runs, scenario):
    """Medians of rps, p50, p99, and of the per-round ratios to the limit."""
    rounds = runs.get(scenario, {})
    limit = runs.get("limit", {})
    ratios = [rounds[r][0] / limit[r][0] for r in rounds if r in limit]
    p99_ratios = [rounds[r][2] / limit[r][2] for r in rounds if r in limit and limit[r][2] > 0]
    return {
        "rps": med([v[0] for v in rounds.values()]),
        "p50": med([v[1] for v in rounds.values()]),
        "p99": med([v[2] for v in rounds.values()]),
        "ratio": med(ratios),
        "p99_ratio": med(p99_ratios),
        "rounds": len(rounds),
    }


def batches_per_round(runs, facts, scenario):
    """The click batches written inside each round's run of `scenario`, as "1, 2, 1"."""
    fact = BATCH_FACTS.get(scenario)
    if not fact:
        return ""
    return ", ".join(facts.get(fact.format(r), "?") for r in sorted(runs.get(scenario, {})))


def hot_tails(runs, facts):
    """A line per hot scenario: each round's batches and p99 against the limit's p99."""
    limit = runs.get("limit", {})
    parts = []
    for name, what in (("hot", "uniform"), ("hot_zipf", "Zipf")):
        rounds = runs.get(name, {})
        fact = BATCH_FACTS[name]
        if not rounds or not any(fact.format(r) in facts for r in rounds):
            continue
        each = []
        for r in sorted(rounds):
            n = facts.get(fact.format(r), "?")
            p99 = rounds[r][2]
            if r in limit and limit[r][2] > 0:
                vs = f"p99 {p99:.3f} ms = {p99 / limit[r][2]:.1f}× the limit's {limit[r][2]:.3f} ms"
            else:
                vs = f"p99 {p99:.3f} ms"
            each.append(f"round {r}: {n} batch{'' if n == '1' else 'es'}, {vs}")
        parts.append(f"{what}: " + "; ".join(each))
    if not parts:
        return ""
    return ("Hot tails, analytics on, per round (click batches written inside the run, and its "
            "p99 against the limit's in the same round): " + ". ".join(parts) + ".")


def scale_counts(runs):
    return sorted(int(s[len("scale_"):]) for s in runs if s.startswith("scale_"))


def markdown(runs, facts):
    out = []
    say = out.append
    say(BEGIN)
    say("")
    hot_secs = facts.get("hot_seconds")
    longer = (f" (the uniform hot run: {hot_secs} s, so that click batches fall inside it)"
              if hot_secs and hot_secs != facts.get("seconds_per_run") else "")
    pg = any(name.startswith(("pg_", "shards_")) for name in runs)
    say(
        f"Measured {facts.get('date', '?')} on {facts.get('cpu', 'this machine')} (2 cores): "
        f"{facts.get('rounds', '?')} interleaved rounds of {facts.get('seconds_per_run', '?')} s "
        f"runs{longer}, wrk with 32 keep-alive connections on CPU 1, the server on CPU 0"
        + (f" (PostgreSQL {facts['pg_version'] + ' ' if 'pg_version' in facts else ''}"
           "unpinned: its processes share both CPUs with wrk)" if pg else "")
        + ". Medians; the ratio is the median of each round's ratio to the limit server of the "
        "same round; so is p99 / limit's. Click batches: those written inside each round's "
        "run. Made by `bash bench/run.sh`."
    )
    say("")
    say("| scenario | requests/s | ratio to limit | target | p50 ms | p99 ms | p99 / limit's "
        "| click batches in the run, per round |")
    say("|---|---|---|---|---|---|---|---|")
    for name, label, target in SCENARIOS:
        if name not in runs:
            continue
        s = summary(runs, name)
        tgt = target if isinstance(target, str) else f"≥ {target:.2f}" if target else ""
        say(
            f"| {label} | {s['rps']:,.0f} | {s['ratio']:.2f} | {tgt} | {s['p50']:.3f} | "
            f"{s['p99']:.3f} | {s['p99_ratio']:.1f} | {batches_per_round(runs, facts, name)} |"
        )
    if runs.get("pg_point_read") and runs.get("pg_cold"):
        bar = runs["pg_point_read"]
        of_bar = [runs["pg_cold"][r][0] / bar[r][0] for r in runs["pg_cold"]
                  if r in bar and bar[r][0] > 0]
        say("")
        say(f"The bar on PostgreSQL: PostgreSQL alone, reading one row by primary key a "
            f"transaction (`pgbench -S`, prepared, 32 clients), answered "
            f"{med([v[0] for v in bar.values()]):,.0f} transactions/s; snip's cold redirects "
            f"on PostgreSQL (nine in ten read it, over HTTP) reached **{med(of_bar):.2f}** of "
            f"that in the same rounds ({', '.join(f'{x:.2f}' for x in of_bar)}; target: "
            f"{PG_TARGETS['pg_cold']}).")
        if runs.get("shards_cold"):
            one = runs["pg_cold"]
            of_one = [runs["shards_cold"][r][0] / one[r][0] for r in runs["shards_cold"]
                      if r in one and one[r][0] > 0]
            say(f"Three shards on the same server against one database, cold redirects: "
                f"**{med(of_one):.2f}** ({', '.join(f'{x:.2f}' for x in of_one)}; target: "
                f"{PG_TARGETS['shards_cold']}).")
    hot_rounds = hot_tails(runs, facts)
    if hot_rounds:
        say("")
        say(hot_rounds)
    counts = scale_counts(runs)
    if counts:
        say("")
        say("Scale: redirects over bulk-loaded links (Zipf, s = 1), analytics off, default L1 "
            "(1M entries); RSS after the runs.")
        say("")
        say("| links | requests/s | ratio to limit | p50 ms | p99 ms | RSS MiB |")
        say("|---|---|---|---|---|---|")
        for n in counts:
            s = summary(runs, f"scale_{n}")
            rss = int(facts.get(f"scale_rss_kib_{n}", "0")) / 1024
            say(f"| {n:,} | {s['rps']:,.0f} | {s['ratio']:.2f} | {s['p50']:.3f} | "
                f"{s['p99']:.3f} | {rss:.0f} |")
        lo, hi = summary(runs, f"scale_{counts[0]}"), summary(runs, f"scale_{counts[-1]}")
        paced = [n for n in counts if f"paced_{n}" in runs]
        if paced:
            say("")
            say("The same, at a fixed offered load every size keeps up with (each of the 32 "
                "connections pauses 1 ms between requests): latency without queueing.")
            say("")
            say("| links | requests/s | p50 ms | p99 ms |")
            say("|---|---|---|---|")
            for n in paced:
                s = summary(runs, f"paced_{n}")
                say(f"| {n:,} | {s['rps']:,.0f} | {s['p50']:.3f} | {s['p99']:.3f} |")
        say("")
        say(f"p50 at {counts[-1]:,} links / p50 at {counts[0]:,}, at full load: "
            f"{hi['p50'] / lo['p50']:.2f}.")
        if paced and paced[0] == counts[0] and paced[-1] == counts[-1]:
            plo, phi = summary(runs, f"paced_{counts[0]}"), summary(runs, f"paced_{counts[-1]}")
            say(f"At the fixed load: **{phi['p50'] / plo['p50']:.2f}** (target ≤ 1.2). At full "
                "load every server is saturated and p50 is mostly time spent queued, which "
                "follows throughput; the fixed load compares the work of a redirect.")
        say("")
        say("![Throughput and latency against the number of links](benchmarks/scale.svg)")
    say("")
    lines = []
    if "idle_rss_kib" in facts:
        lines.append(f"- Idle RSS of a fresh server: **{int(facts['idle_rss_kib']) / 1024:.1f} MiB** "
                     "(target ≤ 30 MiB).")
    if "l1_entries" in facts and int(facts["l1_entries"] or 0) > 0:
        entries = int(facts["l1_entries"])
        growth = int(facts["l1_rss_growth_kib"]) * 1024
        url = len("https://example.com/articles/") + len(str(int(facts["l1_swept_links"]) // 2))
        per = growth / entries
        lines.append(
            f"- L1 memory: {entries:,} links cached grew RSS by {growth / 2**20:.0f} MiB: "
            f"{per:.0f} bytes a link, **{per - url:.0f} bytes** beyond its ~{url}-byte URL "
            "(target ≤ 150)."
        )
    hot, off = summary(runs, "hot"), summary(runs, "analytics_off")
    if runs.get("hot") and runs.get("analytics_off"):
        pairs = [runs["hot"][r][0] / runs["analytics_off"][r][0]
                 for r in runs["hot"] if r in runs["analytics_off"]]
        batches = batches_per_round(runs, facts, "hot")
        lines.append(f"- Analytics on / off, in the rounds (hot, uniform): {med(pairs):.2f} "
                     f"(rounds: {', '.join(f'{p:.2f}' for p in pairs)}; click batches written "
                     f"in the uniform hot runs: {batches}). Each run feels this machine's "
                     "drift on its own; the figure below does not.")
    turns = facts.get("turns")
    if turns:
        def cost_ratio(ts):
            on_req, on_cpu, off_req, off_cpu = (sum(t[i] for t in ts) for i in range(4))
            return (off_cpu / off_req) / (on_cpu / on_req)
        q = max(1, len(turns) // 4)
        quarters = [cost_ratio(turns[i:i + q]) for i in range(0, len(turns), q)]
        on_req, off_req = sum(t[0] for t in turns), sum(t[2] for t in turns)
        lines.append(
            f"- Analytics on / off, in {len(turns)} turns ({facts.get('turns_seconds', '?')} s of "
            f"load on each; CPU time per redirect of the server with analytics off / with it on): "
            f"**{cost_ratio(turns):.2f}** (target ≥ 0.90; each quarter of the turns: "
            f"{', '.join(f'{r:.2f}' for r in quarters)}). Requests served, on / off: "
            f"{on_req / off_req:.2f}. Click batches written meanwhile: "
            f"{facts.get('turns_batches', '?')}."
        )
    cpu_lines = []
    for name, label in (("hot", "hot, uniform"), ("hot_zipf", "hot, Zipf"),
                        ("analytics_off", "analytics off"), ("cold", "cold")):
        ratios = []
        for r in sorted(runs.get(name, {})):
            mine, limit = facts.get(f"cpu_us_{name}_{r}"), facts.get(f"cpu_us_limit_{r}")
            if mine and limit and float(limit) > 0:
                ratios.append(float(mine) / float(limit))
        if ratios:
            target = " (target ≤ 1.3)" if name == "hot" else ""
            cpu_lines.append(f"{label} **{med(ratios):.2f}**{target} (rounds: "
                             f"{', '.join(f'{x:.2f}' for x in ratios)})")
    if cpu_lines:
        limit_us = med([float(v) for k, v in facts.items() if k.startswith("cpu_us_limit_")])
        lines.append(f"- CPU time per request (all the server's threads, from /proc), as a "
                     f"multiple of the limit server's ({limit_us:.1f} µs): "
                     + "; ".join(cpu_lines) + ".")
    router = summary(runs, "router_only")
    if runs.get("router_only"):
        lines.append(f"- The hot path against the router alone: {hot['rps'] / router['rps']:.2f}× "
                     "the requests/s.")
    if "hot_clicks_written" in facts:
        lines.append(f"- Clicks the hot server wrote to its aggregates while measured: "
                     f"{int(float(facts['hot_clicks_written'] or 0)):,}.")
    out.extend(lines)
    say("")
    say(END)
    return "\n".join(out)


def svg(runs, path):
    counts = scale_counts(runs)
    if not counts:
        return
    rps = [summary(runs, f"scale_{n}")["rps"] for n in counts]
    p50 = [summary(runs, f"scale_{n}")["p50"] for n in counts]
    p99 = [summary(runs, f"scale_{n}")["p99"] for n in counts]
    limit = summary(runs, "limit")["rps"]
    import math

    w, h, pad = 360, 240, 50

    def nice(v):
        """The smallest round number (1, 1.2, 1.5, 2, ... × 10^k) at least v, for the axis."""
        k = 10 ** math.floor(math.log10(v))
        return next(m * k for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * k >= v)

    def panel(x0, title, series, ymax, unit):
        parts = [f'<g transform="translate({x0},0)">',
                 f'<text x="{pad + (w - pad) / 2}" y="20" text-anchor="middle" font-weight="bold">{title}</text>',
                 f'<line x1="{pad}" y1="{h - 30}" x2="{w - 10}" y2="{h - 30}" stroke="#333"/>',
                 f'<line x1="{pad}" y1="35" x2="{pad}" y2="{h - 30}" stroke="#333"/>']
        lo, hi = math.log10(counts[0]), math.log10(counts[-1]) if counts[-1] > counts[0] else math.log10(counts[0]) + 1

        def x(n):
            return pad + 15 + (math.log10(n) - lo) / (hi - lo or 1) * (w - pad - 40)

        def y(v):
            return h - 30 - v / ymax * (h - 70)

        for n in counts:
            label = f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"
            parts.append(f'<text x="{x(n):.1f}" y="{h - 12}" text-anchor="middle">{label}</text>')
        for i in range(5):
            v = ymax * i / 4
            parts.append(f'<text x="{pad - 5}" y="{y(v) + 4:.1f}" text-anchor="end">{v:,.0f}{unit}</text>'
                         if ymax >= 20 else
                         f'<text x="{pad - 5}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}{unit}</text>')
            parts.append(f'<line x1="{pad}" y1="{y(v):.1f}" x2="{w - 10}" y2="{y(v):.1f}" stroke="#ddd"/>')
        for name, values, colour, dash in series:
            if values is None:
                continue
            if isinstance(values, float):
                parts.append(f'<line x1="{pad}" y1="{y(values):.1f}" x2="{w - 10}" y2="{y(values):.1f}" '
                             f'stroke="{colour}" stroke-dasharray="4 3"/>')
            else:
                pts = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in zip(counts, values))
                parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"'
                             f'{" stroke-dasharray=" + chr(34) + dash + chr(34) if dash else ""}/>')
                for n, v in zip(counts, values):
                    parts.append(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>')
        ly = 40
        for name, values, colour, dash in series:
            parts.append(f'<rect x="{w - 120}" y="{ly - 8}" width="10" height="3" fill="{colour}"/>'
                         f'<text x="{w - 105}" y="{ly - 3}">{name}</text>')
            ly += 14
        parts.append("</g>")
        return "\n".join(parts)

    body = [panel(0, "requests/s", [("snip", rps, "#1f77b4", None), ("limit", limit, "#999", None)],
                  nice(max(rps + [limit]) * 1.05), ""),
            panel(w + 20, "latency (ms)", [("p99", p99, "#d62728", None), ("p50", p50, "#2ca02c", None)],
                  nice(max(p99) * 1.05), "")]
    total_w = 2 * w + 20
    doc = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{h}" '
           f'viewBox="0 0 {total_w} {h}" font-family="sans-serif" font-size="11">\n'
           f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) +
           '\n<text x="10" y="{0}" font-size="10" fill="#555">links in the store (log scale)</text>\n'.format(h - 1) +
           "</svg>\n")
    open(path, "w").write(doc)


def main():
    results, doc, plot = sys.argv[1:4]
    runs, facts = load(results)
    section = markdown(runs, facts)
    text = open(doc).read()
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + section + "\n"
    open(doc, "w").write(text)
    import os
    os.makedirs(os.path.dirname(plot), exist_ok=True)
    svg(runs, plot)
    print(section)


if __name__ == "__main__":
    main()
