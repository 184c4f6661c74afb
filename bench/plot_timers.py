#!/usr/bin/python3
"""Plots bench/results/timers.json (written by prosody-bench-timers) as
bench/results/timers.png: schedule rates per store and firing lateness
percentiles for the timer service and through the engine."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path="bench/results/timers.json", out="bench/results/timers.png"):
    doc = json.load(open(path))
    fig, (rates, late) = plt.subplots(1, 2, figsize=(11, 4))
    names, values = [], []
    for key, label in (("memory_store", "memory store"), ("sqlite_store", "SQLite store"), ("service", "in-memory window")):
        if doc.get(key):
            names.append(label)
            values.append(doc[key]["schedule_per_s"])
    rates.bar(names, values, color=["#4c72b0", "#dd8452", "#55a868"][: len(names)])
    rates.set_yscale("log")
    rates.set_ylabel("timers scheduled per second (log)")
    rates.set_title("schedule rate")
    for i, v in enumerate(values):
        rates.text(i, v, f"{v:,.0f}", ha="center", va="bottom")
    qs = ["p50_ms", "p99_ms", "p999_ms", "max_ms"]
    width = 0.38
    for offset, (key, label) in zip((-width / 2, width / 2), (("service", "timer service"), ("engine", "through on_timer"))):
        part = doc.get(key)
        if not part or not part.get("lateness"):
            continue
        vals = [part["lateness"][q] for q in qs]
        xs = [i + offset for i in range(len(qs))]
        late.bar(xs, vals, width, label=f"{label} ({part['lateness']['count']:,} timers)")
    late.set_xticks(range(len(qs)))
    late.set_xticklabels([q.replace("_ms", "") for q in qs])
    late.set_ylabel("ms after due time")
    late.axhline(50, color="red", linestyle="--", linewidth=1, label="p99 target 50 ms")
    late.set_title("firing lateness")
    late.legend(loc="upper left", fontsize=8)
    mem = doc.get("memory_store", {}).get("heap_bytes_per_timer")
    fig.suptitle(f"prosody-cpp timers — memory store {mem:.0f} B per pending timer" if mem else "prosody-cpp timers")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
