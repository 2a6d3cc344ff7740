"""The embedded Redis's append-only-file rewrite during a burst: one in-process worker on a fresh
embedded Redis whose rewrite thresholds are set as given (``-`` keeps the server's own, those of
cockpit/embedded_redis.py), with the CPU the forked rewriting child used per event beside
Redis's own. Prints one JSON line. See BENCHMARKS.md, "Worker ingest".

    python benchmarks/bench_aof_rewrite.py 557 200000 100 64mb   # Redis's defaults
    python benchmarks/bench_aof_rewrite.py 557 200000 -           # as cockpit starts it
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import redis

from cockpit import bench
from cockpit.embedded_redis import EmbeddedRedis

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("grids", type=int)
parser.add_argument("events", type=int)
parser.add_argument("percentage", help="auto-aof-rewrite-percentage, or - for the server's")
parser.add_argument("min_size", nargs="?", default="64mb", help="auto-aof-rewrite-min-size")
args = parser.parse_args()


def children_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user_children"]) + float(cpu["used_cpu_sys_children"])


embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="cockpit-bench-")))
client = redis.Redis.from_url(embedded.ensure())
try:
    if args.percentage != "-":
        client.config_set("auto-aof-rewrite-percentage", args.percentage)
        client.config_set("auto-aof-rewrite-min-size", args.min_size)
    config = client.config_get("auto-aof-rewrite-*")
    geo = bench.fed_city(client, args.grids, args.events)
    xrange = bench.raw_xrange_rate(client, args.events)
    load_start, children = os.getloadavg()[0], children_cpu(client)
    rate, _worker, per_event = bench.worker_rate(client, args.events, 20_000)
    print(json.dumps({
        "grids": len(geo.areas.grids), "events": args.events, "rewrite_config": config,
        "events_per_s": round(rate), "raw_xrange_per_s": round(xrange),
        "ratio_worker_to_xrange": round(rate / xrange, 3), **per_event,
        "rewrite_child_cpu_us_per_event":
            round((children_cpu(client) - children) / args.events * 1e6, 2),
        "aof_mb": round(client.info("persistence")["aof_current_size"] / 2**20, 1),
        "load_average_1m_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }))  # fmt: skip
finally:
    embedded.stop()
