"""Where the apply script's time goes: bench_ingest_redis.py with the script timed phase by
phase (``redis.call('TIME')`` between phases, summed in the hash ``prof``), in µs per event.
The timing is added to a copy of the script in this process only; the code is unchanged.

    python benchmarks/bench_apply_phases.py 557 200000

Phases: unpack (MessagePack), pending_check (XPENDING), state_check (HMGET of the states),
xack, state_write (HSET of the states), deadletters_misc, op_X per operation kind (M minute
buckets, W windows, D open counts, Z recent-incident index, A heatmap points), acc_expire,
health. See BENCHMARKS.md, "Worker ingest".
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import redis

from cockpit import apply, bench
from cockpit.embedded_redis import EmbeddedRedis

LAP = """
local PROF, prof_t = {}, nil
local function lap(name)
  local tt = redis.call('TIME')
  local us = tonumber(tt[1]) * 1000000 + tonumber(tt[2])
  if prof_t then PROF[name] = (PROF[name] or 0) + us - prof_t end
  prof_t = us
end
lap('start')
"""
# (text in the script, the lap's name, whether the lap goes after the text or before it)
MARKS = [
    ("local A = cmsgpack.unpack(ARGV[1])\n", "unpack", "after"),
    ("if #gone > 0 then return {0, gone} end\n", "pending_check", "after"),
    ("if #stale > 0 then return {2, stale} end\n", "state_check", "after"),
    ("for _, sh in ipairs(shards) do\n  for k = sh.first,", "xack", "before"),
    ("local t = redis.call('TIME')\n", "state_write", "before"),
    ("local nops = tonumber(A[i]); i = i + 1\n", "deadletters_misc", "before"),
    ("    return redis.error_reply('unknown op ' .. tostring(op))\n  end\n", "op_' .. op .. '",
     "after"),
    ("-- 5. health: applied counts, per-minute rate, data age\n", "acc_expire", "before"),
    ("return {1, nids}", "health", "before"),
]  # fmt: skip
DUMP = "for k, v in pairs(PROF) do redis.call('HINCRBY', 'prof', k, v) end\n"


def timed_script(script: str) -> str:
    """The apply script with a lap at each mark (and the sums written before it returns)."""
    script = script.replace("local A = cmsgpack.unpack", LAP + "local A = cmsgpack.unpack", 1)
    for text, name, where in MARKS:
        if script.count(text) != 1:
            raise SystemExit(f"the apply script changed: cannot place a lap at {text!r}")
        lap = f"lap('{name}')\n" + (DUMP if name == "health" else "")
        script = script.replace(text, text + lap if where == "after" else lap + text)
    return script


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("grids", type=int, help="557 (Huishan) or more (the demo city scaled)")
parser.add_argument("events", type=int)
parser.add_argument("--batch", type=int, default=20_000)
args = parser.parse_args()

apply._SCRIPT = timed_script(apply._SCRIPT)
embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="cockpit-bench-")))
client = redis.Redis.from_url(embedded.ensure())
try:
    geo = bench.fed_city(client, args.grids, args.events)
    client.config_resetstat()
    client.delete("prof")
    load_start = os.getloadavg()[0]
    rate, _worker, per_event = bench.worker_rate(client, args.events, args.batch)
    stats = client.info("commandstats")
    phases = {k.decode(): int(v) / args.events for k, v in client.hgetall("prof").items()}
    print(json.dumps({
        "grids": len(geo.areas.grids), "events": args.events, "events_per_s": round(rate),
        **per_event,
        "load_average_1m_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "evalsha_us_per_event": round(stats["cmdstat_evalsha"]["usec"] / args.events, 2),
        "xreadgroup_us_per_event": round(stats["cmdstat_xreadgroup"]["usec"] / args.events, 2),
        "script_phase_us_per_event": {
            k: round(v, 2) for k, v in sorted(phases.items(), key=lambda kv: -kv[1])
        },
    }))  # fmt: skip
finally:
    embedded.stop()
