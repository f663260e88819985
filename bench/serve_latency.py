#!/usr/bin/env python3
"""Time a running `gptoss serve` as a client sees it: streams /v1/completions requests and prints
TTFT, the median and p90 gap between streamed chunks (TPOT as a client sees it, HTTP and JSON
included) and the end-to-end time. Compare the gap with `gptoss bench tpot` on the same model to
get the server's per-token overhead (docs/PERF.md). Standard library only.

  gptoss serve --synthetic 20b --backend cuda --port 8177 --temp 0 &
  python3 bench/serve_latency.py --port 8177 -n 256 --repeats 3
"""
import argparse
import json
import statistics
import sys
import time
import urllib.request


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("-n", type=int, default=256, help="max_tokens per request")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompt", default="The quick brown fox")
    args = ap.parse_args()
    body = json.dumps({"prompt": args.prompt, "max_tokens": args.n, "temperature": 0,
                       "stream": True}).encode()
    for rep in range(args.repeats):
        req = urllib.request.Request(f"http://{args.host}:{args.port}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        t0 = time.perf_counter()
        times, finish = [], None
        try:
            with urllib.request.urlopen(req) as r:
                for line in r:
                    line = line.strip()
                    if not line.startswith(b"data: ") or line == b"data: [DONE]":
                        continue
                    times.append(time.perf_counter())
                    choice = json.loads(line[6:])["choices"][0]
                    finish = choice.get("finish_reason") or finish
        except OSError as e:
            sys.exit(f"error: request to {args.host}:{args.port} failed: {e} (is gptoss serve running?)")
        if len(times) < 3:
            sys.exit(f"error: only {len(times)} chunks streamed (finish reason {finish}); raise -n")
        gaps = sorted((b - a) * 1e3 for a, b in zip(times, times[1:]))
        print(f"request {rep + 1}: {len(times)} chunks, finish {finish}, TTFT {(times[0] - t0) * 1e3:.2f} ms, "
              f"gap median {statistics.median(gaps):.3f} ms, p90 {gaps[int(0.9 * (len(gaps) - 1))]:.3f} ms, "
              f"end to end {(times[-1] - t0) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
