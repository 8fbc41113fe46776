#!/usr/bin/env python3
"""Export the criterion results to CSV and draw the benchmark plots.

    python3 benches/plot.py            # from the repository root (or anywhere)

1. Reads target/criterion/<group>/<function>/<parameter>/new/{benchmark,estimates}.json (written
   by `cargo bench --bench update_latency` / `--bench interpreter`) and writes
   benches/results/update_latency.csv and benches/results/interpreter.csv.
2. Reads those CSVs and benches/results/peers.csv (from benches/peers/run.sh) and writes
   docs/plots/pause_vs_functions.svg, pause_vs_records.svg and peers_ratio.svg.

Uses matplotlib when it can be imported or installed with pip; otherwise (or with
PLOT_NO_MPL=1) a small built-in SVG writer draws the same charts, plainer.
"""

import csv
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "criterion")
RESULTS = os.path.join(ROOT, "benches", "results")
PLOTS = os.path.join(ROOT, "docs", "plots")
GROUPS = {
    "update_latency": ["pause_by_functions", "transform_by_records", "update_points"],
    "interpreter": ["interpreter", "jit"],
}


def export_criterion():
    """criterion JSON -> one CSV per bench target; returns {target: rows}."""
    fields = ["group", "function", "parameter", "mean_ns", "mean_lo_ns", "mean_hi_ns", "median_ns", "elements"]
    out = {}
    for target, groups in GROUPS.items():
        rows = []
        for group in groups:
            base = os.path.join(CRITERION, group)
            for dirpath, _dirs, files in os.walk(base):
                if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
                    continue
                with open(os.path.join(dirpath, "benchmark.json")) as f:
                    bench = json.load(f)
                with open(os.path.join(dirpath, "estimates.json")) as f:
                    est = json.load(f)
                tp = bench.get("throughput") or {}
                rows.append({
                    "group": bench["group_id"],
                    "function": bench.get("function_id") or "",
                    "parameter": bench.get("value_str") or "",
                    "mean_ns": round(est["mean"]["point_estimate"], 1),
                    "mean_lo_ns": round(est["mean"]["confidence_interval"]["lower_bound"], 1),
                    "mean_hi_ns": round(est["mean"]["confidence_interval"]["upper_bound"], 1),
                    "median_ns": round(est["median"]["point_estimate"], 1),
                    "elements": tp.get("Elements", ""),
                })
        if not rows:
            print(f"plot.py: no criterion results for {target} under {CRITERION} (run cargo bench first)")
            continue

        def key(r):
            p = r["parameter"]
            return (r["group"], r["function"], int(p) if p.isdigit() else 0, p)

        rows.sort(key=key)
        path = os.path.join(RESULTS, f"{target}.csv")
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        print(f"plot.py: wrote {os.path.relpath(path, ROOT)} ({len(rows)} rows)")
        out[target] = rows
    return out


def read_csv(name):
    path = os.path.join(RESULTS, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


# --- a minimal SVG chart writer (used when matplotlib is not available) -----------------------
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_chart(path, title, xlabel, ylabel, series, categories=None, logx=False, logy=False, hline=None):
    """series: [(label, [(x, y), ...])] for a line chart, or [(label, [y per category])] with
    `categories` for grouped bars. Log axes take positive values only."""
    W, H, L, R, T, B = 760, 440, 80, 170, 40, 60
    pw, ph = W - L - R, H - T - B
    ys = [y for _, pts in series for y in ([p[1] for p in pts] if categories is None else pts) if y is not None]
    if hline is not None:
        ys.append(hline)
    fy = math.log10 if logy else (lambda v: v)
    y0, y1 = (math.floor(fy(min(ys))), math.ceil(fy(max(ys)))) if logy else (0, max(ys) * 1.1)
    if y0 == y1:
        y1 = y0 + 1
    sy = lambda v: T + ph - (fy(v) - y0) / (y1 - y0) * ph
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{esc(title)}</text>',
         f'<text x="{L + pw / 2}" y="{H - 12}" text-anchor="middle">{esc(xlabel)}</text>',
         f'<text x="18" y="{T + ph / 2}" text-anchor="middle" transform="rotate(-90 18 {T + ph / 2})">{esc(ylabel)}</text>',
         f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="black"/>']
    ticks = [10 ** e for e in range(y0, y1 + 1)] if logy else [y1 * i / 5 for i in range(6)]
    for t in ticks:
        o.append(f'<line x1="{L}" x2="{L + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{L - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    if categories is None:
        xs = [p[0] for _, pts in series for p in pts]
        fx = math.log10 if logx else (lambda v: v)
        x0, x1 = fx(min(xs)), fx(max(xs))
        x1 = x1 if x1 > x0 else x0 + 1
        sx = lambda v: L + (fx(v) - x0) / (x1 - x0) * pw
        for x in sorted(set(xs)):
            o.append(f'<text x="{sx(x):.1f}" y="{T + ph + 18}" text-anchor="middle">{x:g}</text>')
        for k, (label, pts) in enumerate(series):
            c = COLORS[k % len(COLORS)]
            d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            o.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
            o += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{c}"/>' for x, y in pts]
    else:
        gw = pw / len(categories)
        bw = gw * 0.8 / max(1, len(series))
        base = sy(10 ** y0) if logy else sy(0)
        for j, cat in enumerate(categories):
            o.append(f'<text x="{L + gw * (j + 0.5):.1f}" y="{T + ph + 18}" text-anchor="middle">{esc(cat)}</text>')
            for k, (_label, vals) in enumerate(series):
                v = vals[j]
                if v is None:
                    continue
                x, y = L + gw * j + gw * 0.1 + bw * k, sy(v)
                o.append(f'<rect x="{x:.1f}" y="{min(y, base):.1f}" width="{bw:.1f}" height="{abs(base - y):.1f}" '
                         f'fill="{COLORS[k % len(COLORS)]}"/>')
    if hline is not None:
        o.append(f'<line x1="{L}" x2="{L + pw}" y1="{sy(hline):.1f}" y2="{sy(hline):.1f}" stroke="black" '
                 'stroke-dasharray="5,4"/>')
    for k, (label, _) in enumerate(series):
        y = T + 10 + 20 * k
        o.append(f'<rect x="{L + pw + 15}" y="{y}" width="12" height="12" fill="{COLORS[k % len(COLORS)]}"/>')
        o.append(f'<text x="{L + pw + 33}" y="{y + 10}">{esc(label)}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


# --- matplotlib -----------------------------------------------------------------------------
def get_matplotlib():
    if os.environ.get("PLOT_NO_MPL"):
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plot.py: matplotlib missing, trying pip install matplotlib")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"])
        if r.returncode != 0:
            print("plot.py: pip install failed: using the built-in SVG writer")
            return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        plt.rcParams["svg.hashsalt"] = "molt"  # stable SVG ids between runs
        plt.rcParams["svg.fonttype"] = "none"
        return plt
    except ImportError:
        return None


def mpl_chart(plt, path, title, xlabel, ylabel, series, categories=None, logx=False, logy=False, hline=None):
    fig, ax = plt.subplots(figsize=(8, 4.6))
    if categories is None:
        for label, pts in series:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    else:
        n = max(1, len(series))
        width = 0.8 / n
        for k, (label, vals) in enumerate(series):
            xs = [j - 0.4 + width * (k + 0.5) for j in range(len(categories))]
            ax.bar([x for x, v in zip(xs, vals) if v is not None], [v for v in vals if v is not None],
                   width=width, label=label)
        ax.set_xticks(range(len(categories)), categories, rotation=20)
    if hline is not None:
        ax.axhline(hline, color="black", linestyle="--", linewidth=1)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def main():
    os.makedirs(RESULTS, exist_ok=True)
    os.makedirs(PLOTS, exist_ok=True)
    export_criterion()
    plt = get_matplotlib()

    def chart(name, *args, **kw):
        path = os.path.join(PLOTS, name)
        (mpl_chart(plt, path, *args, **kw) if plt else svg_chart(path, *args, **kw))
        print(f"plot.py: wrote {os.path.relpath(path, ROOT)}")

    lat = read_csv("update_latency.csv")
    pause = [(int(r["parameter"]), float(r["mean_ns"]) / 1e6) for r in lat if r["group"] == "pause_by_functions"]
    if pause:
        chart("pause_vs_functions.svg", "Code-only update (10% of functions changed): request_update time",
              "functions in the program", "ms (log)", [("request_update", sorted(pause))], logx=True, logy=True)
    labels = {"default": "eager, default transformer", "explicit": "eager, explicit transform",
              "lazy_commit": "lazy (commit only)"}
    series = []
    for fn, label in labels.items():
        pts = sorted((int(r["parameter"]), float(r["mean_ns"]) / 1e6) for r in lat
                     if r["group"] == "transform_by_records" and r["function"] == fn)
        if pts:
            series.append((label, pts))
    if series:
        chart("pause_vs_records.svg", "Update pause vs live records transformed", "live records",
              "ms (log)", series, logx=True, logy=True)

    peers = read_csv("peers.csv")
    if peers:
        programs = list(dict.fromkeys(r["program"] for r in peers))
        impls = [i for i in dict.fromkeys(r["impl"] for r in peers) if i != "molt"]
        ratio = {(r["program"], r["impl"]): r["ratio_to_molt"] for r in peers}
        series = [(i, [float(ratio[(p, i)]) if ratio.get((p, i)) else None for p in programs]) for i in impls]
        chart("peers_ratio.svg", "Peer wall time relative to Molt (above 1: slower than Molt)", "program",
              "peer time / Molt time (log)", series, categories=programs, logy=True, hline=1.0)


if __name__ == "__main__":
    main()
