"""One in-process worker on a fresh embedded Redis, with Redis's own account of the work: events/s,
worker and Redis CPU µs per event, and `INFO commandstats` time per event for each command
(reset just before the worker starts); and the raw XRANGE read rate of the same run (as
`cockpit bench ingest` measures it) with the worker's ratio to it. Prints one JSON line. See
BENCHMARKS.md, "Worker ingest".

To compare two versions of the code, run it from an export of each, alternately, e.g.
    git archive main | tar -x -C /tmp/base
    cd /tmp/base && PYTHONPATH=/tmp/base python benchmarks/bench_ingest_redis.py 50000 200000
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
parser.add_argument("grids", type=int, help="557 (Huishan) or more (the demo city scaled)")
parser.add_argument("events", type=int)
parser.add_argument("--batch", type=int, default=20_000)
parser.add_argument("--one-at-a-time", action="store_true",
                    help="the worker waits for Redis to apply each batch before preparing the "
                         "next (as before the overlap), for an A/B in one session")  # fmt: skip
args = parser.parse_args()

embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="cockpit-bench-")))
client = redis.Redis.from_url(embedded.ensure())
try:
    geo = bench.fed_city(client, args.grids, args.events)
    xrange = bench.raw_xrange_rate(client, args.events)
    client.config_resetstat()
    load_start = os.getloadavg()[0]
    rate, _worker, per_event = bench.worker_rate(client, args.events, args.batch,
                                                 overlap=not args.one_at_a_time)  # fmt: skip
    stats = client.info("commandstats")
    commands = {
        name.removeprefix("cmdstat_"): round(v["usec"] / args.events, 2)
        for name, v in stats.items()
        if v["usec"] / args.events >= 0.05
    }
    print(json.dumps({
        "grids": len(geo.areas.grids), "events": args.events, "overlap": not args.one_at_a_time,
        "events_per_s": round(rate),
        "raw_xrange_per_s": round(xrange), "ratio_worker_to_xrange": round(rate / xrange, 3),
        **per_event,
        "redis_used_memory_mb": round(client.info("memory")["used_memory"] / 2**20, 1),
        "load_average_1m_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "command_us_per_event": dict(sorted(commands.items(), key=lambda kv: -kv[1])),
    }))  # fmt: skip
finally:
    embedded.stop()
