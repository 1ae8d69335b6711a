"""What a dashboard read costs right after calls were stored (issue 21: rollups kept as calls are stored).

    python bench/bench_rollups.py --store URL_OR_SQLITE_PATH [--calls 50] [--rounds 5]

Run it on a **copy** of a store that bench/bench_store.py built (it adds calls: ``createdb -T
callsense_b10k callsense_ab`` on PostgreSQL, ``cp`` for SQLite). Each round stores ``--calls`` new
synthetic calls (bench_store.py's generator) on one day, as a batch storing today's calls does, then
times the first read of each dashboard aggregate after them (agent scorecards, daily trends, the
90-day heat map), which is where the rollups of the changed days are brought up to date, then a
second, warm read. Also reported: ``save_result`` per call. Median over rounds, milliseconds.
Nothing is written to bench/RESULTS.md: the numbers are copied there by hand with the command.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import DAYS, EPOCH, make_call
from common import machine_info, machine_line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True, help="a store URL or SQLite path (a copy: calls are added)")
    ap.add_argument("--calls", type=int, default=50, help="calls stored before each read (default 50)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--segments", type=int, default=30)
    ap.add_argument("--seed", type=int, default=77)
    args = ap.parse_args(argv)

    from callsense.store import agent_scorecards, daily_trends, emotion_heatmap, open_store, save_result

    store = open_store(args.store)
    end = EPOCH + timedelta(days=DAYS)
    reads = {"agent scorecards": lambda: agent_scorecards(store), "daily trends": lambda: daily_trends(store),
             "heat map 90 days": lambda: emotion_heatmap(store, since=EPOCH, until=end)}
    for fn in reads.values():
        fn()  # every day clean before the first round
    first: dict[str, list[float]] = {k: [] for k in reads}
    warm: dict[str, list[float]] = {k: [] for k in reads}
    save_ms: list[float] = []
    for rnd in range(args.rounds):
        day = EPOCH + timedelta(days=DAYS - 1 - rnd)  # one day per round: "today", then the day before
        for i in range(args.calls):
            n = 10_000_000 + rnd * args.calls + i
            rng = np.random.default_rng([args.seed, n])
            r, emb = make_call(n, rng, args.dim, args.segments)
            started = day + timedelta(seconds=int(rng.integers(86400)))
            r = dataclasses.replace(r, metadata={**r.metadata, "started_at": started.isoformat() + "Z"})
            t0 = time.perf_counter()
            save_result(store, r, embeddings=emb)
            save_ms.append((time.perf_counter() - t0) * 1000)
        for name, fn in reads.items():  # the first read after the batch, then a warm one
            t0 = time.perf_counter()
            fn()
            first[name].append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            fn()
            warm[name].append((time.perf_counter() - t0) * 1000)
    print(machine_line(machine_info()))
    print(f"store: {store.dialect}, {args.rounds} rounds of {args.calls} calls stored on one day, then each read")
    print("| read | first after the calls, ms | warm, ms |")
    print("|---|---|---|")
    for name in reads:
        print(f"| {name} | {statistics.median(first[name]):.1f} ({min(first[name]):.1f}–{max(first[name]):.1f}) "
              f"| {statistics.median(warm[name]):.1f} |")
    print(f"save_result: {statistics.median(save_ms):.1f} ms per call (median of {len(save_ms)})")
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
