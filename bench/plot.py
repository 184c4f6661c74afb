#!/usr/bin/env python3
"""Plots benchmark results: one PNG per JSON file, written beside it.

    python3 bench/plot.py bench/results/noop.json [more.json ...] [-o out.png]

Understands both formats:
- bench/run's per-scenario files ({"scenario", "brokers": {broker: {"cases":
  {case: {"summary": {system: {...}}, "runs": [...]}}}}}): throughput bars
  (median, whiskers = min/max over the repetitions) grouped by broker and
  case, labelled with the ratio to raw librdkafka or to the ideal; latency
  percentiles for `latency`; RSS over time for `backlog`.
- prosody-bench-throughput's single-run file ({"scenarios": [...]}).

Needs matplotlib (Debian: python3-matplotlib, installed by scripts/setup);
without it this prints a message and exits 0.
"""
import argparse
import json
import os
import sys

COLORS = {"raw": "#9e9e9e", "cpp": "#1f77b4", "rust": "#d95f02"}


def color(system):
    return COLORS.get(system.split(":")[0], "#7570b3")


def plot_bars(plt, data, out):
    groups = []  # (label, [(system, summary)], ideal)
    for broker, res in data["brokers"].items():
        for case, c in res["cases"].items():
            groups.append((f"{broker}\n{case}", list(c["summary"].items()), c.get("ideal_records_per_s")))
    width = 0.8 / max(len(g[1]) for g in groups)
    fig, ax = plt.subplots(figsize=(max(8, 2.6 * len(groups)), 5.5))
    seen_labels = set()
    top = 1
    for gi, (label, systems, ideal) in enumerate(groups):
        for si, (system, s) in enumerate(systems):
            v = s.get("records_per_s") or 0
            r = s.get("records_per_s_range") or [v, v]
            x = gi + (si - (len(systems) - 1) / 2) * width
            ax.bar(x, v, width * 0.95, color=color(system), alpha=1.0 if ":" not in system or "pipeline" in system else 0.6,
                   hatch="//" if "+" in system else None, label=system if system not in seen_labels else None,
                   yerr=[[max(0, v - r[0])], [max(0, r[1] - v)]], capsize=3)
            seen_labels.add(system)
            note = f"{v:,.0f}"
            if s.get("vs_raw") is not None:
                # produce: vs_raw is against raw writing the same records (header included)
                note += f"\n{s['vs_raw']:.2f}x raw" + (" same recs" if "vs_raw_no_header" in s else "")
            if s.get("vs_raw_same_headers") is not None:  # results from before raw:source-system was the baseline
                note += f"\n{s['vs_raw_same_headers']:.2f}x raw+hdr"
            if s.get("vs_raw_no_header") is not None:
                note += f"\n{s['vs_raw_no_header']:.2f}x raw w/o hdr"
            if s.get("vs_ideal") is not None:
                note += f"\n{s['vs_ideal'] * 100:.0f}% ideal"
            if s.get("vs_rust") is not None:
                note += f"\n{s['vs_rust']:.2f}x Rust"
            ax.annotate(note, (x, max(v, r[1])), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                        textcoords="offset points")
            top = max(top, r[1], v)
        if ideal:
            ax.hlines(ideal, gi - 0.45, gi + 0.45, colors="k", linestyles="dashed", linewidth=1)
            ax.annotate("ideal", (gi + 0.45, ideal), fontsize=7, ha="right", va="bottom")
            top = max(top, ideal)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[0] for g in groups], fontsize=8)
    ax.set_ylabel("records/s (median; whiskers: min-max)")
    ax.set_ylim(0, top * 1.35)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    title(ax, data)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def plot_latency(plt, data, out):
    rows = []
    for broker, res in data["brokers"].items():
        for case, c in res["cases"].items():
            for system, s in c["summary"].items():
                rows.append((f"{broker}\n{system}", system, s))
    brokers = list(data["brokers"].items())
    # Runs that recorded their worst latency per second get a second row:
    # one panel per broker, one line per run (a tail from a startup stall
    # looks different from one spread over the run).
    series = any(r.get("latency_max_ms_per_second") for _, res in brokers for c in res["cases"].values()
                 for r in c.get("runs", []))
    fig = plt.figure(figsize=(max(8, 1.4 * len(rows)), 9.5 if series else 5.5))
    grid = fig.add_gridspec(2 if series else 1, len(brokers), height_ratios=[1.2, 1] if series else [1])
    ax = fig.add_subplot(grid[0, :])
    pcts = [("p50_ms", 0.25), ("p99_ms", 0.6), ("p999_ms", 1.0)]
    w = 0.27
    for i, (label, system, s) in enumerate(rows):
        for j, (key, alpha) in enumerate(pcts):
            v = s.get(key) or 0
            ax.bar(i + (j - 1) * w, v, w * 0.95, color=color(system), alpha=alpha,
                   hatch="//" if "+" in system else None, label=key.replace("_ms", "") if i == 0 else None)
            ax.annotate(f"{v:.1f}", (i + (j - 1) * w, v), ha="center", va="bottom", fontsize=6)
    ax.axhline(10, color="k", linestyle="dashed", linewidth=1)
    ax.annotate("10 ms target (p99, mock)", (len(rows) - 0.5, 10), fontsize=7, ha="right", va="bottom")
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r[0] for r in rows], fontsize=7)
    ax.set_ylabel("produce timestamp -> handler start, ms (median of runs)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    title(ax, data)
    if series:
        for bi, (broker, res) in enumerate(brokers):
            sub = fig.add_subplot(grid[1, bi])
            seen = set()
            for c in res["cases"].values():
                for r in c.get("runs", []):
                    ys = r.get("latency_max_ms_per_second")
                    if not ys:
                        continue
                    system = r.get("system_label", r.get("system", "?"))
                    sub.plot(range(len(ys)), [max(y, 0.1) for y in ys], color=color(system), linewidth=0.8,
                             alpha=1.0 if "low_latency" not in system else 0.5,
                             linestyle="--" if "low_latency" in system else ":" if "+" in system else "-",
                             label=system if system not in seen else None)
                    seen.add(system)
            sub.axhline(10, color="k", linestyle="dashed", linewidth=1)
            sub.set_yscale("log")
            sub.set_xlabel("second of the run")
            sub.set_ylabel("worst latency in that second, ms")
            sub.set_title(f"{broker}: every run", fontsize=9)
            sub.grid(alpha=0.3)
            sub.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def plot_rss(plt, data, out):
    fig, ax = plt.subplots(figsize=(9, 5))
    for broker, res in data["brokers"].items():
        for case, c in res["cases"].items():
            labelled = set()
            for r in c["runs"]:
                ser = r.get("rss_mb_series") or []
                if not ser:
                    continue
                system = r.get("system_label", r.get("system", "?"))
                ax.plot([p[0] for p in ser], [p[1] for p in ser], color=color(system), alpha=0.8,
                        label=f"{broker} {system}" if system not in labelled else None)
                labelled.add(system)
    ax.axhline(256, color="k", linestyle="dashed", linewidth=1)
    ax.annotate("256 MiB target", (0, 256), fontsize=8, va="bottom")
    ax.set_xlabel("seconds since process start")
    ax.set_ylabel("VmRSS MiB")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    title(ax, data)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def title(ax, data):
    meta = data.get("meta", {})
    m = meta.get("machine", {})
    first = next(iter(data["brokers"].values()))
    ax.set_title(f"{data['scenario']}: {first.get('target', '')}\n{m.get('cpus', '?')} CPUs, "
                 f"{meta.get('reps', '?')} reps, prosody-cpp/raw on librdkafka 2.0.2, Prosody Rust 0.7.1 on 2.12.1",
                 fontsize=9)


def plot_legacy(plt, data, out):
    scenarios = data.get("scenarios", [])
    names = [s["name"].replace("_", "\n", 1) for s in scenarios]
    values = [s.get("records_per_s", 0.0) for s in scenarios]
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(names)), 5.5))
    bars = ax.bar(range(len(names)), values,
                  color=["#9e9e9e" if "raw" in s["name"] else "#1f77b4" for s in scenarios])
    for bar, s in zip(bars, scenarios):
        ratio = s.get("vs_raw_librdkafka", {}).get("throughput")
        label = f"{s.get('records_per_s', 0):,.0f}/s" + (f"\n{ratio:.2f}x raw" if ratio is not None else "")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("records/s")
    ax.set_ylim(0, max(values + [1]) * 1.25)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="result files")
    ap.add_argument("-o", "--out", help="PNG path (only with one input; default: the JSON path with .png)")
    args = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot.py: matplotlib is not installed (Debian: python3-matplotlib); no charts written")
        return 0
    for path in args.json:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        out = args.out if args.out and len(args.json) == 1 else os.path.splitext(path)[0] + ".png"
        if "brokers" not in data:
            plot_legacy(plt, data, out)
        elif data.get("scenario") == "latency":
            plot_latency(plt, data, out)
        elif data.get("scenario") == "backlog":
            plot_rss(plt, data, out)
        else:
            plot_bars(plt, data, out)
        plt.close("all")
        print(f"plot.py: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
