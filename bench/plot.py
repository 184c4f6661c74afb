#!/usr/bin/env python3
"""Bar chart of a prosody-bench-throughput JSON result.

    python3 bench/plot.py bench/results/throughput.json [-o bench/results/throughput.png]

One bar per scenario (records/s), produce and consume scenarios grouped, the
raw librdkafka bars in grey and each prosody bar labelled with its ratio to
the raw librdkafka baseline. Needs matplotlib; without it this prints a
message and exits 0 (nothing is installed on your behalf).
"""
import argparse
import json
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="?", default="bench/results/throughput.json", help="result file")
    ap.add_argument("-o", "--out", help="PNG path (default: the JSON path with .png)")
    args = ap.parse_args()

    with open(args.json, encoding="utf-8") as f:
        data = json.load(f)
    out = args.out or os.path.splitext(args.json)[0] + ".png"

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"plot.py: matplotlib is not installed; no chart written ({out}). "
              "Install it with `pip install matplotlib` to get one.")
        return 0

    scenarios = data.get("scenarios", [])
    names, values, colors, labels = [], [], [], []
    for s in scenarios:
        names.append(s["name"].replace("_", "\n", 1))
        values.append(s.get("records_per_s", 0.0))
        raw = "raw_librdkafka" in s["name"]
        colors.append("#9e9e9e" if raw else ("#1f77b4" if s.get("kind") == "produce" else "#ff7f0e"))
        ratio = s.get("vs_raw_librdkafka", {}).get("throughput")
        label = f"{values[-1]:,.0f}/s"
        if ratio is not None:
            label += f"\n{ratio:.2f}x raw"
        if not s.get("complete", False):
            label += "\nINCOMPLETE"
        labels.append(label)

    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(names)), 5.5))
    bars = ax.bar(range(len(names)), values, color=colors)
    for bar, label in zip(bars, labels):
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("records/s")
    p = data.get("parameters", {})
    m = data.get("machine", {})
    ax.set_title(f"prosody-cpp vs raw librdkafka (mock cluster): {p.get('records', '?'):,} records, "
                 f"{p.get('keys', '?'):,} keys, {m.get('nproc', '?')} CPUs, librdkafka {m.get('librdkafka_version', '?')}",
                 fontsize=9)
    ax.set_ylim(0, max(values + [1]) * 1.25)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"plot.py: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
