#!/usr/bin/env python3
"""sweep_table.py MODEL=CSV [MODEL=CSV ...]: the README's latency table from `gptoss bench sweep`
CSVs, one row per (model, expert path, ISL:OSL) with each figure beside its ratio to the floor
measured in the same run. Standard library only; prints Markdown on stdout.

  python3 bench/sweep_table.py 20b=docs/sweep/2026-12-05-h200-20b.csv 120b=docs/sweep/...-120b.csv
"""
import csv
import sys


def main(argv):
    if len(argv) < 2 or any("=" not in a for a in argv[1:]):
        sys.exit("usage: sweep_table.py MODEL=SWEEP.csv [MODEL=SWEEP.csv ...]")
    tables = []
    for arg in argv[1:]:
        model, path = arg.split("=", 1)
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError as e:
            sys.exit(f"error: {path}: {e.strerror}")
        need = {"experts", "isl", "osl", "ttft_ms", "ttft_floor_ms", "tpot_ms", "tpot_floor_ms",
                "tpot_p90_ms", "e2e_ms", "e2e_floor_ms", "out_tokens_per_s"}
        if not rows or not need <= set(rows[0]):
            sys.exit(f"error: {path}: not a bench sweep CSV (needs the columns {', '.join(sorted(need))})")
        tables.append((model, rows))
    print("| model | experts | ISL:OSL | TTFT ms (x floor) | TPOT ms (x floor) | p90 ms | end to end ms (x floor) | out tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    for model, rows in tables:
        for r in sorted(rows, key=lambda r: (r["experts"], int(r["isl"]), int(r["osl"]))):
            def cell(value, floor):
                v, fl = float(r[value]), float(r[floor])
                return f"{v:,.2f} ({v / fl:,.1f}x)" if fl > 0 else f"{v:,.2f}"
            print(f"| {model} | {r['experts']} | {r['isl']}:{r['osl']} | {cell('ttft_ms', 'ttft_floor_ms')} | "
                  f"{cell('tpot_ms', 'tpot_floor_ms')} | {float(r['tpot_p90_ms']):.2f} | "
                  f"{cell('e2e_ms', 'e2e_floor_ms')} | {float(r['out_tokens_per_s']):.1f} |")


if __name__ == "__main__":
    main(sys.argv)
