#!/usr/bin/env python3
"""Latency over time of a server under load, with each push marked.

    python3 benches/kv/plot_latency.py SAMPLES.csv REPORT.json OUT.svg [TITLE]

SAMPLES.csv is what `molt-loadgen --samples` writes (t_ms,latency_us,client,op,ok) and
REPORT.json its `--json` report (the pushes with their start and end). The requests are
grouped in 20 ms buckets; the plot shows each bucket's median and maximum latency (log scale)
and a vertical band from each push's start to its end. Plain SVG, no plotting library.
"""
import csv, json, math, sys

def main():
    samples, report, out = sys.argv[1:4]
    title = sys.argv[4] if len(sys.argv) > 4 else "latency under load, pushes marked"
    bucket_ms = 20.0
    buckets = {}
    with open(samples) as f:
        for row in csv.DictReader(f):
            b = int(float(row["t_ms"]) // bucket_ms)
            buckets.setdefault(b, []).append(int(row["latency_us"]))
    pushes = json.load(open(report)).get("pushes", [])
    keys = sorted(buckets)
    t_end = (keys[-1] + 1) * bucket_ms / 1000
    W, H, L, R, T, B = 1000, 420, 70, 20, 40, 50
    ymin, ymax = 1.0, 1e6
    def x(t): return L + (W - L - R) * t / t_end
    def y(us): return T + (H - T - B) * (1 - (math.log10(max(us, ymin)) - 0) / math.log10(ymax))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{W/2}" y="22" text-anchor="middle" font-size="15">{title}</text>']
    for p in pushes:
        x0, x1 = x(p["start_ms"] / 1000), x(p["end_ms"] / 1000)
        color = "#f4c7c3" if p.get("exit_status") == 0 else "#ff0000"
        parts.append(f'<rect x="{x0:.1f}" y="{T}" width="{max(x1 - x0, 1):.1f}" height="{H - T - B}" fill="{color}" opacity="0.6"><title>{p["file"].split("/")[-1]} {p["end_ms"] - p["start_ms"]:.1f} ms</title></rect>')
    for e in range(0, 7):
        yy = y(10 ** e)
        parts.append(f'<line x1="{L}" x2="{W - R}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
        label = ["1 us", "10 us", "100 us", "1 ms", "10 ms", "100 ms", "1 s"][e]
        parts.append(f'<text x="{L - 6}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>')
    for s in range(0, int(t_end) + 1, max(1, int(t_end) // 10)):
        parts.append(f'<text x="{x(s):.1f}" y="{H - B + 18}" text-anchor="middle">{s} s</text>')
    for name, pick, color in [("max", lambda v: v[-1], "#d62728"), ("median", lambda v: v[len(v) // 2], "#1f77b4")]:
        pts = []
        for b in keys:
            v = sorted(buckets[b])
            pts.append(f"{x((b + 0.5) * bucket_ms / 1000):.1f},{y(pick(v)):.1f}")
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1" points="{" ".join(pts)}"/>')
    parts.append(f'<text x="{W - R}" y="{T - 6}" text-anchor="end"><tspan fill="#1f77b4">median</tspan> and <tspan fill="#d62728">max</tspan> per {bucket_ms:.0f} ms; shaded: a push, from `molt push` starting to its exit ({len(pushes)} pushes)</text>')
    parts.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">time since the load started</text>')
    parts.append("</svg>")
    open(out, "w").write("\n".join(parts) + "\n")

if __name__ == "__main__":
    main()
