"""Turns a bench/results/*.jsonl file (from bench/run-all.sh) into the Markdown table of
BENCHMARKS.md.   python3 bench/summarize.py bench/results/<file>.jsonl"""

import json
import sys


def mib(b):
    return "-" if b is None else f"{b / 1048576:.1f}"


def num(x, fmt="{:,.0f}"):
    return "-" if x is None else fmt.format(x)


def main(path):
    print("| transport | arrival | executors | tasks | ours tasks/s | raw baseline /s | ours/raw | "
          "p50 us | p90 us | p99 us | max us | engine RSS MiB | executor RSS MiB (idle, anon) "
          "| ready ms | CPU ms engine/executors/bench |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    peers = []
    for line in open(path):
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        l, r, c = d["latency_us"], d["rss_bytes"], d["cpu_ms"]
        arrival = "closed" if d["rate"] is None else f"open {d['rate']:.0f}/s"
        engine_rss = mib(r["engine"]) if d["mode"] == "processes" else f"(process {mib(r['process'])})"
        executor_rss = (f"{mib(r['executor'])} ({mib(r['executor_idle'])}, {mib(r['executor_idle_anon'])})"
                        if d["mode"] == "processes" else "-")
        cpu = "/".join(num(c[k]) for k in ("engine", "executor", "bench"))
        print(f"| {d['transport']} | {arrival} | {d['executors']} | {d['tasks']:,} | {d['tasks_per_sec']:,.0f} | "
              f"{num(d['baseline_per_sec'])} | {num(d['ratio'], '{:.3f}x')} | {l['p50']:,} | "
              f"{l['p90']:,} | {l['p99']:,} | {l['max']:,} | {engine_rss} | {executor_rss} | "
              f"{num(d['ready_ms'], '{:.1f}')} | {cpu} |")
        if d.get("peer"):
            peers.append((d, d["peer"]))
    for d, p in peers:
        print()
        print(f"Peer: {p['peer']} {p['tasks_per_sec']:,.0f} tasks/s (worker draining a full queue, "
              f"concurrency {p['concurrency']}; publish + execute {p.get('end_to_end_per_sec') or 0:,.0f}/s) "
              f"vs ours ({d['transport']}) {d['tasks_per_sec']:,.0f} tasks/s = {p['ratio']:.1f}x")


if __name__ == "__main__":
    main(sys.argv[1])
