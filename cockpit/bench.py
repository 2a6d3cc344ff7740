"""``cockpit bench ingest``: worker throughput and freshness, with the raw figures (XRANGE read
rate, shapely STRtree rate) measured in the same run, so ratios compare like with like on a
noisy machine. Prints JSON. Uses its own embedded Redis (or COCKPIT_REDIS_URL) and FLUSHES it.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import redis
import shapely

from cockpit.areastore import Geography, save_areas
from cockpit.contract import GROUP, INCIDENTS
from cockpit.embedded_redis import EmbeddedRedis
from cockpit.worker import Worker
from geo.areas import AreaSet
from geo.demo_city import generate_demo_city, scale_for_grids

CATEGORIES = ["dispute", "hotline", "traffic", "environment", "public_security"]


def bench_city(n_grids: int) -> AreaSet:
    """557: Huishan alone (the city root kept above it); more: the demo city scaled up."""
    if n_grids > 757:
        return generate_demo_city(seed=7, scale=scale_for_grids(n_grids))
    city = generate_demo_city(seed=7)
    if n_grids != 557:
        return city
    keep = ["wx", "wx-hs", *city.descendants("wx-hs")]
    frame = city.frame.loc[keep].copy()
    frame.loc["wx", "geometry"] = frame.loc["wx-hs", "geometry"]
    return AreaSet(frame)


def feed(geo: Geography, n: int, seed: int, now_ms: int) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    grids = geo.areas.grids.geometry
    pts = grids.representative_point()
    pick = rng.integers(0, len(grids), n)
    lon = pts.x.to_numpy()[pick] + rng.normal(0, 0.0004, n)
    lat = pts.y.to_numpy()[pick] + rng.normal(0, 0.0004, n)
    ts = now_ms - rng.integers(0, 10_000, n)  # a live feed: reports of the last seconds
    return [
        {"id": f"b-{seed}-{k}", "ts": str(ts[k]), "category": CATEGORIES[k % 5],
         "lat": f"{lat[k]:.6f}", "lon": f"{lon[k]:.6f}", "severity": str(1 + k % 4)}
        for k in range(n)
    ]  # fmt: skip


def write(client: redis.Redis, entries: list[dict[str, str]]) -> float:
    started = time.perf_counter()
    for start in range(0, len(entries), 5000):
        with client.pipeline(transaction=False) as pipe:
            for fields in entries[start : start + 5000]:
                pipe.xadd(INCIDENTS, fields)
            pipe.execute()
    return len(entries) / (time.perf_counter() - started)


def fed_city(client: redis.Redis, n_grids: int, events: int) -> Geography:
    """The benchmark city of ``n_grids`` grids saved in Redis, with ``events`` incidents of the
    last seconds written to the incident stream (the start of every ingest benchmark)."""
    areas = bench_city(n_grids)
    save_areas(client, areas)
    geo = Geography(areas)
    write(client, feed(geo, events, seed=n_grids, now_ms=int(time.time() * 1000)))
    return geo


def raw_xrange_rate(client: redis.Redis, n: int, passes: int = 3) -> float:
    """Entries/s redis-py reads by XRANGE in batches of 5,000 (the ceiling for any consumer):
    the best of ``passes`` passes, so a moment of noise on a shared machine does not lower the
    figure the worker is compared with."""
    best = 0.0
    for _ in range(passes):
        started = time.perf_counter()
        last, read = "-", 0
        while read < n:
            got = client.xrange(INCIDENTS, min=last, max="+", count=5000)
            if not got:
                break
            read += len(got) if last == "-" else len(got) - 1
            last = got[-1][0]
        best = max(best, read / (time.perf_counter() - started))
    return best


def raw_strtree_rate(geo: Geography, n: int = 200_000) -> float:
    """Points/s of a plain shapely STRtree 'intersects' query against the grids."""
    rng = np.random.default_rng(1)
    minx, miny, maxx, maxy = geo.bbox
    points = shapely.points(rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n))
    tree = shapely.STRtree(geo.areas.grids.geometry.to_numpy())
    started = time.perf_counter()
    tree.query(points, predicate="intersects")
    return n / (time.perf_counter() - started)


def worker_rate(
    client: redis.Redis, n: int, batch: int, overlap: bool = True
) -> tuple[float, Worker, dict]:
    """Events/s of one in-process worker (as ``cockpit worker`` runs it: overlapping its
    batches with Redis's work, unless ``overlap`` is false), and the CPU it and Redis spent
    per event: CPU time moves far less than wall time when other work shares the machine."""
    worker = Worker(client, name="bench", batch_size=batch, block_ms=10, overlap=overlap)
    worker.ensure_groups()
    worker.step()  # warm caches (geometry, scripts) outside the timing
    worker.settle()
    # only what is applied inside the timing counts (this once divided all n entries by the
    # time of the last n - batch, which overstated the rate by n / (n - batch): 11 % at 200k)
    warm = worker.stats.applied + worker.stats.dead
    timed = n - warm
    if timed < batch:
        raise ValueError(f"{n} events leave {max(0, timed)} to time after the warm-up batch; "
                         f"give at least {warm + batch}")  # fmt: skip
    started, cpu, server = time.perf_counter(), time.process_time(), _server_cpu(client)
    with worker.collecting_between_batches():  # as Worker.run does
        while worker.stats.applied + worker.stats.dead < n:
            worker.step()
        worker.settle()
    rate = timed / (time.perf_counter() - started)
    per_event = {
        "worker_cpu_us_per_event": round((time.process_time() - cpu) / timed * 1e6, 1),
        "redis_cpu_us_per_event": round((_server_cpu(client) - server) / timed * 1e6, 1),
    }
    return rate, worker, per_event


def _server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def parallel_rate(client: redis.Redis, n: int, batch: int, processes: int) -> float:
    """Events/s of ``processes`` ``cockpit worker`` processes sharing the group, over the
    steady part of the run (10 % to 90 % of the entries applied), so start-up is left out."""
    import subprocess
    import sys

    url = _url(client)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cockpit", "worker", "--name", f"bench-{k}", "--batch",
             str(batch), "--redis-url", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for k in range(processes)
    ]  # fmt: skip
    samples: list[tuple[float, int]] = []
    try:
        deadline = time.perf_counter() + 600
        while time.perf_counter() < deadline:
            done = _settled(client)
            samples.append((time.perf_counter(), done))
            if done >= n:
                break
            time.sleep(0.02)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    times = np.array([t for t, _ in samples])
    done = np.array([d for _, d in samples])
    lo, hi = np.searchsorted(done, 0.1 * n), np.searchsorted(done, 0.9 * n)
    if hi >= len(done) or hi <= lo:
        raise RuntimeError(f"{processes} workers applied {done[-1]} of {n} entries in time")
    return float((done[hi] - done[lo]) / (times[hi] - times[lo]))


def freshness(client: redis.Redis, geo: Geography, rate: int, seconds: float) -> dict[str, float]:
    """XADD at ``rate``/s while a worker process runs; per send, the time until the worker's
    applied count covers it (polled every millisecond by a watcher thread)."""
    import subprocess
    import sys

    url = _url(client)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "worker", "--name", "fresh", "--redis-url", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not client.exists(f"{INCIDENTS}") or not client.xinfo_groups(INCIDENTS):
            time.sleep(0.05)
        entries = feed(geo, int(rate * seconds), seed=9, now_ms=int(time.time() * 1000))
        seen: list[tuple[float, int]] = []
        stop = threading.Event()

        def watch() -> None:
            watcher = redis.Redis.from_url(url)
            while not stop.is_set():
                seen.append((time.perf_counter(), _applied(watcher)))
                time.sleep(0.001)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        sent: list[tuple[float, int]] = []
        per_tick = max(1, rate // 100)
        started = time.perf_counter()
        for k in range(0, len(entries), per_tick):
            with client.pipeline(transaction=False) as pipe:
                for fields in entries[k : k + per_tick]:
                    pipe.xadd(INCIDENTS, fields)
                pipe.execute()
            sent.append((time.perf_counter(), min(k + per_tick, len(entries))))
            time.sleep(max(0.0, started + len(sent) * 0.01 - time.perf_counter()))
        deadline = time.perf_counter() + 30
        # until the watcher itself has seen the last send applied (else its lag goes unmeasured)
        while (not seen or seen[-1][1] < len(entries)) and time.perf_counter() < deadline:
            time.sleep(0.01)
        stop.set()
        thread.join(timeout=5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    times = np.array([t for t, _ in seen])
    counts = np.array([c for _, c in seen])
    lags = []
    for t_sent, upto in sent:
        j = np.searchsorted(counts, upto)  # applied counts only grow
        if j < len(times):
            lags.append(max(0.0, times[j] - t_sent))
    lags_ms = np.array(lags) * 1000
    return {
        "sends": len(sent),
        "measured": len(lags),
        "p50_ms": round(float(np.percentile(lags_ms, 50)), 1),
        "p95_ms": round(float(np.percentile(lags_ms, 95)), 1),
    }


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host, port = kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


def _applied(client: redis.Redis) -> int:
    return int(client.hget("cockpit:health", f"{INCIDENTS}|applied") or 0)


def _settled(client: redis.Redis) -> int:
    """Entries the worker is done with: applied, duplicates and dead letters."""
    health = client.hgetall("cockpit:health")
    prefix = f"{INCIDENTS}|".encode()
    counted = (b"applied", b"duplicate", b"dead|")
    return sum(
        int(v) for k, v in health.items()
        if k.startswith(prefix) and k[len(prefix):].startswith(counted)
    )  # fmt: skip


def run_ingest(
    grids: list[int], events: int, batch: int, workers: list[int] | None = None
) -> dict[str, object]:
    tmp = tempfile.mkdtemp(prefix="cockpit-bench-")
    embedded = EmbeddedRedis(Path(tmp))
    client = redis.Redis.from_url(embedded.ensure())
    results: dict[str, object] = {
        "command": f"cockpit bench ingest --events {events} --batch {batch} --grids "
        + " ".join(map(str, grids)) + " --workers " + " ".join(map(str, workers or [])),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        # the machine is shared: the load says how far the figures can be trusted
        "load_average_start_end": [_load()],
        "runs": [],
    }
    try:
        for n_grids in grids:
            client.flushall(asynchronous=True)
            areas = bench_city(n_grids)
            save_areas(client, areas)
            geo = Geography(areas)
            entries = feed(geo, events, seed=n_grids, now_ms=int(time.time() * 1000))
            xadd = write(client, entries)
            xrange = raw_xrange_rate(client, events)
            strtree = raw_strtree_rate(geo)
            rate, worker, per_event = worker_rate(client, events, batch)
            used = int(client.info("memory")["used_memory"])
            results["runs"].append({  # type: ignore[union-attr]
                "grids": len(areas.grids),
                "events": events,
                "worker_events_per_s": round(rate),
                "raw_xadd_pipelined_per_s": round(xadd),
                "raw_xrange_per_s": round(xrange),
                "raw_strtree_points_per_s": round(strtree),
                "ratio_worker_to_xrange": round(rate / xrange, 3),
                "ratio_worker_to_strtree": round(rate / strtree, 3),
                **per_event,
                "redis_used_memory_mb": round(used / 2**20, 1),
                "dead_letters": worker.stats.dead,
            })  # fmt: skip
            for processes in workers or []:
                # the same feed again, under fresh ids, into an emptied database
                client.flushall()
                save_areas(client, areas)
                again = feed(geo, events, seed=n_grids + 1000 * processes,
                             now_ms=int(time.time() * 1000))  # fmt: skip
                write(client, again)
                xrange = raw_xrange_rate(client, events)
                rate = parallel_rate(client, events, batch, processes)
                results["runs"].append({  # type: ignore[union-attr]
                    "grids": len(areas.grids),
                    "events": events,
                    "worker_processes": processes,
                    "worker_events_per_s": round(rate),
                    "raw_xrange_per_s": round(xrange),
                    "ratio_worker_to_xrange": round(rate / xrange, 3),
                })  # fmt: skip
        client.flushall(asynchronous=True)
        save_areas(client, generate_demo_city(seed=7))
        geo = Geography(generate_demo_city(seed=7))
        results["freshness_at_1000_per_s"] = freshness(client, geo, 1000, 10.0)
        results["load_average_start_end"].append(_load())  # type: ignore[union-attr]
    finally:
        embedded.stop()
    return results


def main(args: object) -> int:
    result = run_ingest(
        args.grids, args.events, args.batch, getattr(args, "workers", None)  # type: ignore[attr-defined]
    )
    print(json.dumps(result, indent=2))
    return 0


_ = GROUP
