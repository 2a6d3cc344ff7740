"""Where one overlapping worker's time goes, step by step: each stage of a round timed in
place (wall time, µs per event), and the garbage collector's time per generation. Prints one
JSON line. See BENCHMARKS.md, "The worker overlaps Redis".

    python benchmarks/bench_worker_steps.py 557 300000
    python benchmarks/bench_worker_steps.py 557 300000 --automatic-gc   # as before 73529ff
"""

import argparse
import collections
import contextlib
import functools
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import redis

from cockpit import bench
from cockpit import worker as worker_module
from cockpit.embedded_redis import EmbeddedRedis

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("grids", type=int)
parser.add_argument("events", type=int)
parser.add_argument("--batch", type=int, default=20_000)
parser.add_argument("--automatic-gc", action="store_true",
                    help="leave Python's automatic garbage collection on")  # fmt: skip
args = parser.parse_args()

spent: collections.Counter[str] = collections.Counter()


def timed(owner: object, name: str, label: str) -> None:
    """Replace ``owner.name`` with a wrapper adding its wall time to ``spent[label]``."""
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*a: object, **k: object) -> object:
        started = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            spent[label] += time.perf_counter() - started

    setattr(owner, name, wrapper)


gc_started: list[float] = []


def on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        gc_started.append(time.perf_counter())
    elif gc_started:
        spent[f"gc_gen{info['generation']}"] += time.perf_counter() - gc_started.pop()


embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="cockpit-bench-")))
client = redis.Redis.from_url(embedded.ensure())
try:
    bench.fed_city(client, args.grids, args.events)
    worker = worker_module.Worker(client, name="steps", batch_size=args.batch, block_ms=10,
                                  overlap=True)  # fmt: skip
    worker.ensure_groups()
    worker.step()  # warm caches outside the timing
    worker.settle()
    timed(worker, "read_new", "read_wait_and_hiredis")
    timed(worker, "_geography", "grids_version")
    timed(worker.applier, "send", "pack_and_send")
    timed(worker_module, "_stream_entries", "entries_from_reply")
    timed(worker, "_check", "check_and_place")
    timed(worker, "_build", "build")
    timed(worker, "_finish", "wait_for_script")
    timed(worker, "_drop_if_empty", "drop_empty_names")
    timed(worker_module, "look_up_incidents", "look_up")
    gc.callbacks.append(on_gc)
    collecting = (contextlib.nullcontext() if args.automatic_gc
                  else worker.collecting_between_batches())  # fmt: skip
    load_start = os.getloadavg()[0]
    done = worker.stats.applied + worker.stats.dead
    started = time.perf_counter()
    with collecting:
        while worker.step():
            pass
        worker.settle()
    wall = time.perf_counter() - started
    n = worker.stats.applied + worker.stats.dead - done
    print(json.dumps({
        "grids": args.grids, "events": n, "automatic_gc": args.automatic_gc,
        "events_per_s": round(n / wall),
        "us_per_event": {k: round(v / n * 1e6, 1) for k, v in spent.most_common()},
        "wall_us_per_event": round(wall / n * 1e6, 1),
        "load_average_1m_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }))  # fmt: skip
finally:
    embedded.stop()
