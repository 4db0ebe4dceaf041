#!/usr/bin/env python3
"""bench_report.py RESULTS_DIR REPORTS_DIR -- turns what scripts/bench.sh
measured into reports/bench.md and its SVG plots (drawn here, no plotting
library): per benchmark the median, p99, ratio to the floor and to the best
peer, the target and whether it is met; the machine and the date."""
import datetime
import glob
import json
import os
import platform
import statistics
import subprocess
import sys

res, reports = sys.argv[1], sys.argv[2]


def load(name, default):
    path = os.path.join(res, name)
    if not os.path.exists(path):
        return default
    with open(path) as f:
        if name.endswith(".jsonl"):
            return [json.loads(l) for l in f if l.strip()]
        return json.load(f)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def us(ns):
    return f"{ns / 1000:.2f} µs" if ns < 1e6 else f"{ns / 1e6:.2f} ms"


def verdict(ok):
    return "met" if ok else "**missed**"


# --- SVG -----------------------------------------------------------------

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def svg_bars(path, title, rows, unit):
    """Horizontal bars: rows of (label, value)."""
    w, bar, left = 760, 22, 330
    h = 50 + bar * len(rows) + 20
    top = max(v for _, v in rows) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{title}</text>']
    for i, (label, v) in enumerate(rows):
        y = 40 + i * bar
        bw = (w - left - 90) * v / top
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{label}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{bw:.1f}" height="{bar - 6}" fill="{COLOURS[i % len(COLOURS)]}"/>')
        out.append(f'<text x="{left + bw + 4:.1f}" y="{y + 15}">{v:.2f} {unit}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def svg_lines(path, title, series, xlabel, ylabel, logy=False):
    """series: {name: [(x, y)]}, x categorical in order of first appearance."""
    import math
    w, h, l, r, t, b = 760, 360, 70, 170, 40, 50
    xs = []
    for pts in series.values():
        for x, _ in pts:
            if x not in xs:
                xs.append(x)
    ys = [y for pts in series.values() for _, y in pts if y is not None and math.isfinite(y) and y > 0]
    if not ys:
        return
    lo, hi = (min(ys), max(ys))
    f = (lambda v: math.log10(v)) if logy else (lambda v: v)
    lo_f, hi_f = (f(lo) - 0.1, f(hi) + 0.1) if logy else (0, hi * 1.1)

    def px(i):
        return l + (w - l - r) * (i / max(1, len(xs) - 1))

    def py(v):
        return h - b - (h - t - b) * (f(v) - lo_f) / ((hi_f - lo_f) or 1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{title}</text>',
           f'<line x1="{l}" y1="{h - b}" x2="{w - r}" y2="{h - b}" stroke="black"/>',
           f'<line x1="{l}" y1="{t}" x2="{l}" y2="{h - b}" stroke="black"/>',
           f'<text x="{(w - r + l) / 2}" y="{h - 12}" text-anchor="middle">{xlabel}</text>',
           f'<text x="14" y="{(h - b + t) / 2}" transform="rotate(-90 14 {(h - b + t) / 2})" text-anchor="middle">{ylabel}</text>']
    for i, x in enumerate(xs):
        out.append(f'<text x="{px(i):.1f}" y="{h - b + 16}" text-anchor="middle">{x}</text>')
    for k in range(5):
        v = (10 ** (lo_f + (hi_f - lo_f) * k / 4)) if logy else (lo_f + (hi_f - lo_f) * k / 4)
        out.append(f'<text x="{l - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:,.0f}</text>')
    for j, (name, pts) in enumerate(series.items()):
        c = COLOURS[j % len(COLOURS)]
        coords = [(px(xs.index(x)), py(y)) for x, y in pts if y is not None and math.isfinite(y) and y > 0]
        if len(coords) > 1:
            out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(f"{a:.1f},{b_:.1f}" for a, b_ in coords)}"/>')
        for a, b_ in coords:
            out.append(f'<circle cx="{a:.1f}" cy="{b_:.1f}" r="3" fill="{c}"/>')
        out.append(f'<text x="{w - r + 10}" y="{t + 16 * j + 10}" fill="{c}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def svg_distribution(path, title, samples):
    """Empirical CDFs of per-iteration times: {name: [ns...]}, log x."""
    import math
    w, h, l, r, t, b = 760, 360, 60, 230, 40, 50
    allv = [v for s in samples.values() for v in s if v > 0]
    lo, hi = math.log10(min(allv)) - 0.05, math.log10(max(allv)) + 0.05

    def px(v):
        return l + (w - l - r) * (math.log10(v) - lo) / (hi - lo)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{title}</text>',
           f'<line x1="{l}" y1="{h - b}" x2="{w - r}" y2="{h - b}" stroke="black"/>',
           f'<text x="{(w - r + l) / 2}" y="{h - 12}" text-anchor="middle">time per acquire+release (log scale)</text>']
    for e in range(int(math.floor(lo)), int(math.ceil(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= math.log10(v) <= hi:
                out.append(f'<text x="{px(v):.1f}" y="{h - b + 16}" text-anchor="middle">{us(v)}</text>')
    for j, (name, s) in enumerate(samples.items()):
        c = COLOURS[j % len(COLOURS)]
        s = sorted(x for x in s if x > 0)
        pts = [(px(v), h - b - (h - t - b) * (i + 1) / len(s)) for i, v in enumerate(s)]
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(f"{a:.1f},{y:.1f}" for a, y in pts)}"/>')
        out.append(f'<text x="{w - r + 10}" y="{t + 16 * j + 10}" fill="{c}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


# --- figures -------------------------------------------------------------

unc = {r["name"]: r for r in load("uncontended.json", []) if r["group"] == "uncontended acquire+release"}
con = load("contended.jsonl", [])
py_peers = load("peers/python.json", {})
node_peers = load("peers/node.json", {})
sim = [r for r in load("sim.jsonl", []) if "calls_per_s" in r]
model = [r for r in load("model.jsonl", []) if "states_per_second" in r]
election = {r["kind"]: r for r in load("election.jsonl", [])}


def strace_calls(path):
    """Total calls in a `strace -c` summary."""
    try:
        for line in open(path):
            if line.strip().endswith("total"):
                # % time, seconds, usecs/call, calls, [errors,] total
                return int(line.split()[3])
    except OSError:
        pass
    return None


def cli_median(name):
    try:
        return statistics.median(int(x) for x in open(os.path.join(res, "cli", name + ".ns")))
    except OSError:
        return None


lines = []
w = lines.append
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
fs = sh("stat -f -c %T .")
w("# Lock benchmarks")
w("")
w(f"Generated by `scripts/bench.sh` on {now}: {os.cpu_count()} cores, "
  f"Linux {platform.release()}, {fs} filesystem (bench directories under {sh('df --output=target /tmp | tail -1')}). "
  "Absolute times are this machine's; the targets judge ratios measured in the same run.")
w("")
w("## Uncontended acquire + release (criterion, medians)")
w("")
floor_open = unc.get("floor: open + flock + close", {}).get("median_ns")
floor_kept = unc.get("floor: flock on an open fd", {}).get("median_ns")
peers_open = [unc[k]["median_ns"] for k in unc if k.startswith("peer:") and "open per" in k]
best_peer_open = min(peers_open) if peers_open else None
w("| benchmark | median | p99 | × floor (open+flock+close) | × best Rust peer (open per acquisition) |")
w("|---|---:|---:|---:|---:|")
for name, r in sorted(unc.items(), key=lambda kv: kv[1]["median_ns"]):
    m = r["median_ns"]
    ratio_floor = f"{m / floor_open:.2f}" if floor_open else "-"
    ratio_peer = f"{m / best_peer_open:.2f}" if best_peer_open else "-"
    w(f"| {name} | {us(m)} | {us(r['p99_ns'])} | {ratio_floor} | {ratio_peer} |")
for lang, peers in [("Python", py_peers), ("Node", node_peers)]:
    if "skipped" in peers:
        w(f"| {lang} peers | skipped: {peers['skipped']} | | | |")
    for name, r in peers.items():
        if name == "skipped":
            continue
        ratio = f"{r['median_ns'] / floor_open:.2f}" if floor_open else "-"
        w(f"| peer ({lang}): {name} | {us(r['median_ns'])} | {us(r['p99_ns'])} | {ratio} | |")
w("")
kernel = unc.get("baton kernel mode", {}).get("median_ns")
filemode = unc.get("baton file mode", {}).get("median_ns")
w("| target | measured | verdict |")
w("|---|---|---|")
if kernel and floor_open:
    w(f"| kernel mode ≤ 1.5× open+flock+close | {kernel / floor_open:.2f}× | {verdict(kernel / floor_open <= 1.5)} |")
floor_link = unc.get("floor: link-published record + unlink", {}).get("median_ns")
if filemode and floor_link:
    w(f"| exclusive-file mode ≤ 1.2× its floor (a link-published record, unlinked) | {filemode / floor_link:.2f}× | {verdict(filemode / floor_link <= 1.2)} |")
handle = unc.get("baton kernel mode, handle kept open", {}).get("median_ns")
fs2_kept = unc.get("peer: fs2, fd kept open", {}).get("median_ns")
if handle and fs2_kept:
    w(f"| reusable handle (`lock::Handle`) ≤ 1.5× fs2 on a kept-open fd | {handle / fs2_kept:.2f}× | {verdict(handle / fs2_kept <= 1.5)} |")
w("")
samples = {n: r["samples_ns"] for n, r in unc.items() if r.get("samples_ns")}
if samples:
    svg_distribution(os.path.join(reports, "bench-uncontended.svg"), "Uncontended acquire+release: distribution of criterion samples", samples)
    w("![uncontended distributions](bench-uncontended.svg)")
    w("")

w("## Contended: real processes, lock + read-modify-write + unlock")
w("")
w("Each worker runs its cycles as fast as it can; throughput is over the span from the first acquire to the last release; "
  "handoff is one worker's release to another's acquire on CLOCK_MONOTONIC; fairness is max/min cycles per worker in the "
  "first half of that span (∞: a worker starved). The counter is checked exact and sections checked disjoint in every run. Medians over rounds.")
w("")
w("| kind | procs | cycles/s | × raw flock | handoff p50 | handoff p99 | fairness |")
w("|---|---:|---:|---:|---:|---:|---:|")
raw = {r["procs"]: r["cycles_per_s"] for r in con if r["kind"] == "raw-flock"}
for r in con:
    fair = "∞" if r["fairness"] is None else f"{r['fairness']:.2f}"
    x = r["cycles_per_s"] / raw[r["procs"]] if r["procs"] in raw else float("nan")
    w(f"| {r['kind']} | {r['procs']} | {r['cycles_per_s']:,.0f} | {x:.2f} | {r['handoff_p50_us']:.1f} µs | {r['handoff_p99_us']:.1f} µs | {fair} |")
w("")
k16 = next((r for r in con if r["kind"] == "baton-kernel" and r["procs"] == 16), None)
f16 = next((r for r in con if r["kind"] == "baton-file" and r["procs"] == 16), None)
if k16 and 16 in raw:
    w("| target | measured | verdict |")
    w("|---|---|---|")
    w(f"| 16 processes, kernel mode ≥ 0.8× raw flock | {k16['cycles_per_s'] / raw[16]:.2f}× | {verdict(k16['cycles_per_s'] / raw[16] >= 0.8)} |")
    fair = k16["fairness"]
    w(f"| fairness ≤ 2 | {'∞' if fair is None else f'{fair:.2f}'} | {verdict(fair is not None and fair <= 2)} |")
    if f16:
        w(f"| exclusive-file mode handoff p50 ≤ 100 µs | {f16['handoff_p50_us']:.1f} µs | {verdict(f16['handoff_p50_us'] <= 100)} |")
        w(f"| exclusive-file mode ≥ 0.5× kernel mode | {f16['cycles_per_s'] / k16['cycles_per_s']:.2f}× | {verdict(f16['cycles_per_s'] / k16['cycles_per_s'] >= 0.5)} |")
    w("")
series = {}
fairness = {}
for r in con:
    series.setdefault(r["kind"], []).append((r["procs"], r["cycles_per_s"]))
    fairness.setdefault(r["kind"], []).append((r["procs"], r["fairness"] if r["fairness"] is not None else float("inf")))
if series:
    svg_lines(os.path.join(reports, "bench-throughput.svg"), "Contended throughput", series, "processes", "cycles / s", logy=True)
    svg_lines(os.path.join(reports, "bench-fairness.svg"), "Fairness (max/min per worker; a missing point is ∞)", fairness, "processes", "max / min")
    w("![throughput](bench-throughput.svg)")
    w("")
    w("![fairness](bench-fairness.svg)")
    w("")

if election:
    w("## Election: 4 processes")
    w("")
    w("First primary: from starting the 4 members to the first `elected`; failover: from SIGKILL of the primary to the next "
      "`elected`. The peer is the shell idiom, a `flock -o` leader. Medians over rounds.")
    w("")
    w("| kind | first primary | failover |")
    w("|---|---:|---:|")
    for k, r in election.items():
        w(f"| {k} | {r['first_primary_us'] / 1000:.1f} ms | {r['failover_us'] / 1000:.1f} ms |")
    w("")
    bt, fo = election.get("baton"), election.get("flock-o")
    if bt and fo:
        w("| target | measured | verdict |")
        w("|---|---|---|")
        a = bt["first_primary_us"] / fo["first_primary_us"]
        b_ = bt["failover_us"] / fo["failover_us"]
        w(f"| first primary ≤ 1.1× a `flock -o` leader | {a:.2f}× | {verdict(a <= 1.1)} |")
        w(f"| failover no slower than it | {b_:.2f}× | {verdict(b_ <= 1.0)} |")
        w("")

w("## The whole CLI, per call")
w("")
b, fl, tr = cli_median("baton"), cli_median("flock"), cli_median("true")
if b and fl:
    w("| command | median | syscalls (strace -f -c) |")
    w("|---|---:|---:|")
    w(f"| `baton lock f -- true` | {us(b)} | {strace_calls(os.path.join(res, 'cli', 'baton.strace')) or '-'} |")
    w(f"| `flock f true` | {us(fl)} | {strace_calls(os.path.join(res, 'cli', 'flock.strace')) or '-'} |")
    if tr:
        w(f"| `/bin/true` alone (spawn floor) | {us(tr)} | |")
    w("")
    w(f"Target `baton lock -- true` ≤ 1.1× `flock(1)`: {b / fl:.2f}× — {verdict(b / fl <= 1.1)}.")
    w("")
svg_bars(os.path.join(reports, "bench-cli.svg"), "Per call, whole process", [(k, v / 1e6) for k, v in [("baton lock f -- true", b), ("flock f true", fl), ("/bin/true", tr)] if v], "ms") if b and fl else None
if b and fl:
    w("![cli](bench-cli.svg)")
    w("")

w("## System calls per acquire + release (library, `strace -c` over 1,000)")
w("")
for mode in ["kernel", "file"]:
    n = strace_calls(os.path.join(res, f"loop-{mode}.strace"))
    if n:
        w(f"- {mode} mode: {n / 1000:.1f} (the floor, open + flock + close: 3; flock on a kept fd: 2)")
w("")
w("## Simulator and models")
w("")
for r in sim:
    w(f"- simulator, `{r['scenario']}` ({r['strategy']}, {r['seeds']} seeds): {r['calls_per_s']:,} calls/s, {r['schedules_per_s']:,} schedules/s")
for r in model:
    w(f"- model `{r['model']}` at {r['instances']}: {r['states']:,} states, {r['states_per_second']:,} states/s")
w("")
with open(os.path.join(reports, "bench.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
