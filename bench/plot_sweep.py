#!/usr/bin/env python3
"""plot_sweep.py CSV PNG: the picture of a `gptoss bench sweep` CSV.

Left: time to first token against the prompt length (ISL), one line per (expert path, OSL),
with its floor (the weights and the prompt's KV cache moved once) dashed. Right: time per output
token against the context it was generated at (ISL + OSL/2), with the floor dashed. Log-log axes.
Needs python3-matplotlib (Debian); no network, no other packages.
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: plot_sweep.py SWEEP.csv OUT.png")
    with open(argv[1], newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{argv[1]}: no rows to plot")
    fig, (ax_ttft, ax_tpot) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, experts in enumerate(sorted({r["experts"] for r in rows})):
        mine = [r for r in rows if r["experts"] == experts]
        color = colors[i % len(colors)]
        # TTFT against ISL (pairs with the same ISL share the prompt; take the shortest OSL).
        by_isl = {}
        for r in sorted(mine, key=lambda r: int(r["osl"])):
            by_isl.setdefault(int(r["isl"]), r)
        isl = sorted(by_isl)
        ax_ttft.plot(isl, [float(by_isl[x]["ttft_ms"]) for x in isl], "o-", color=color,
                     label=f"{experts} experts")
        ax_ttft.plot(isl, [float(by_isl[x]["ttft_floor_ms"]) for x in isl], "--", color=color,
                     label=f"{experts} floor")
        # TPOT against the context at the middle of the output.
        pts = sorted(((int(r["isl"]) + int(r["osl"]) / 2, float(r["tpot_ms"]), float(r["tpot_floor_ms"]))
                      for r in mine if float(r["tpot_ms"]) > 0))
        if pts:
            ax_tpot.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color,
                         label=f"{experts} experts")
            ax_tpot.plot([p[0] for p in pts], [p[2] for p in pts], "--", color=color,
                         label=f"{experts} floor")
    for ax, title, ylabel, xlabel in (
            (ax_ttft, "time to first token", "TTFT (ms)", "prompt length ISL (tokens)"),
            (ax_tpot, "time per output token", "TPOT (ms)", "context ISL + OSL/2 (tokens)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"gptoss bench sweep: {os.path.basename(argv[1])} (dashed: the floor measured in the same run)")
    fig.tight_layout()
    fig.savefig(argv[2], dpi=110)


if __name__ == "__main__":
    main(sys.argv)
