"""The worker with and without overlap, alternating in one run on one fed stream: segments of
``--segment`` batches each, overlapped (``cockpit worker``'s way) then one at a time, repeated,
so both meet the same moment's load on a shared machine. Prints one JSON line: each mode's
events/s, worker and Redis CPU µs per event summed over its segments, and every segment.
See BENCHMARKS.md, "Worker ingest".

    python benchmarks/bench_overlap_ab.py 557 400000
"""

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

import redis

from cockpit import bench
from cockpit.embedded_redis import EmbeddedRedis
from cockpit.worker import Worker

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("grids", type=int, help="557 (Huishan) or more (the demo city scaled)")
parser.add_argument("events", type=int, help="entries fed before the run")
parser.add_argument("--batch", type=int, default=20_000)
parser.add_argument("--segment", type=int, default=2, help="batches per segment")
args = parser.parse_args()

embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="cockpit-bench-")))
client = redis.Redis.from_url(embedded.ensure())
try:
    geo = bench.fed_city(client, args.grids, args.events)
    workers = {mode: Worker(client, name=f"ab-{mode}", batch_size=args.batch, block_ms=10,
                            overlap=mode == "overlap")  # fmt: skip
               for mode in ("overlap", "one_at_a_time")}  # fmt: skip
    for worker in workers.values():
        worker.ensure_groups()
        worker.step()  # warm caches outside the timing
        worker.settle()
    # both as Worker.run has them: garbage collected between batches
    stack = contextlib.ExitStack()
    for worker in workers.values():
        stack.enter_context(worker.collecting_between_batches())
    total = {mode: {"events": 0, "s": 0.0, "cpu": 0.0, "redis": 0.0} for mode in workers}
    segments = []
    load_start = os.getloadavg()[0]
    left = args.events - sum(w.stats.applied + w.stats.dead for w in workers.values())
    # an overlapped segment ends by applying the two batches still in its pipeline
    while left >= (2 * args.segment + 2) * args.batch:
        for mode, worker in workers.items():
            done = worker.stats.applied + worker.stats.dead
            goal = done + args.segment * args.batch
            started, cpu = time.perf_counter(), time.process_time()
            server = bench._server_cpu(client)
            while worker.stats.applied + worker.stats.dead < goal:
                if not worker.step():
                    raise SystemExit(f"the stream ran dry in a segment of {mode}: feed more")
            worker.settle()
            n = worker.stats.applied + worker.stats.dead - done
            seg = {"mode": mode, "events": n, "s": time.perf_counter() - started,
                   "cpu": time.process_time() - cpu, "redis": bench._server_cpu(client) - server}
            for k in ("events", "s", "cpu", "redis"):
                total[mode][k] += seg[k]
            segments.append({"mode": mode, "events_per_s": round(n / seg["s"])})
            left -= n
    stack.close()
    out = {
        mode: {"events": t["events"], "events_per_s": round(t["events"] / t["s"]),
               "worker_cpu_us_per_event": round(t["cpu"] / t["events"] * 1e6, 1),
               "redis_cpu_us_per_event": round(t["redis"] / t["events"] * 1e6, 1)}
        for mode, t in total.items()
    }  # fmt: skip
    out["ratio_overlap_to_one_at_a_time"] = round(
        out["overlap"]["events_per_s"] / out["one_at_a_time"]["events_per_s"], 3)
    print(json.dumps({"grids": len(geo.areas.grids), "batch": args.batch, **out,
                      "load_average_1m_start_end": [round(load_start, 2),
                                                    round(os.getloadavg()[0], 2)],
                      "segments": segments}))  # fmt: skip
finally:
    embedded.stop()
