"""The load and the markers of the browser benchmarks.

- ``Feed``: a separate process that XADDs realistic incidents (the demo simulator's places,
  categories and texts: 60 % near hotspots) at a steady rate, stamped now, into every grid
  except the marker grids, so a marker grid's count changes only when a marker lands in it.
- ``write_history``: an hour of past incidents at a low rate, so every minute bucket of the 1 h
  window exists and a minute falling out changes grids as it does in a long-running cockpit.
- ``xadd_marker``: one incident at the centre of a marker grid; returns the XADD wall time.
"""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import redis

from cockpit.areastore import Geography, load_geography
from cockpit.contract import INCIDENTS
from cockpit.simulator import IncidentSimulator

STREAM_MAXLEN = 2_000_000


def choose_markers(geo: Geography, scope_grids: list[str], n: int, seed: int = 11) -> list[str]:
    """``n`` grids of the scope to carry markers (fixed seed: same grids every run)."""
    rng = np.random.default_rng(seed)
    return sorted(str(g) for g in rng.choice(sorted(scope_grids), size=n, replace=False))


def _pool(geo: Geography, avoid: set[str], n: int, seed: int) -> list[dict[str, str]]:
    """``n`` simulated incidents (fields without id/ts) outside the ``avoid`` grids."""
    sim = IncidentSimulator(geo, seed=seed, id_prefix="bench")
    grid_ids = geo.grid_ids
    out: list[dict[str, str]] = []
    while len(out) < n:
        batch = sim.batch(4096, 10.0)
        pos = geo.locator.locate(np.array([i.lon for i in batch]), np.array([i.lat for i in batch]))
        for inc, p in zip(batch, pos, strict=True):
            if p >= 0 and str(grid_ids[p]) not in avoid:
                fields = inc.fields(0)
                del fields["id"], fields["ts"]
                out.append(fields)
    return out[:n]


def _run_feed(redis_url: str, avoid: list[str], rate: float, seed: int, stop, counter,  # type: ignore[no-untyped-def]
              began) -> None:  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    geo = load_geography(client)
    pool = _pool(geo, set(avoid), 20_000, seed)
    began.value = time.time()
    tick = 0.05
    per_tick = rate * tick
    carry = 0.0
    k = 0
    next_at = time.monotonic()
    while not stop.is_set():
        carry += per_tick
        n = int(carry)
        carry -= n
        ts = str(int(time.time() * 1000))
        with client.pipeline(transaction=False) as pipe:
            for _ in range(n):
                fields = dict(pool[k % len(pool)], id=f"bg-{seed}-{k}", ts=ts)
                pipe.xadd(INCIDENTS, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
                k += 1
            pipe.execute()
        counter.value = k
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))


class Feed:
    """Background incidents at ``rate``/s in a child process (so the markers' XADD times are
    taken in a process the feed never slows)."""

    def __init__(self, redis_url: str, avoid: list[str], rate: float, seed: int = 5) -> None:
        ctx = mp.get_context("spawn")
        self.stop_event = ctx.Event()
        self.counter = ctx.Value("q", 0)
        self.began = ctx.Value("d", 0.0)
        self.rate = rate
        self.process = ctx.Process(
            target=_run_feed,
            args=(redis_url, avoid, rate, seed, self.stop_event, self.counter, self.began),
            daemon=True,
        )  # fmt: skip

    def __enter__(self) -> Feed:
        self.process.start()
        wait = time.monotonic() + 120
        while not self.began.value and time.monotonic() < wait:  # the pool takes a few seconds
            time.sleep(0.1)
        return self

    def written(self) -> int:
        return int(self.counter.value)

    def achieved_rate(self) -> float:
        return round(self.written() / max(1e-9, time.time() - self.began.value), 1)

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.process.join(timeout=15)
        if self.process.is_alive():
            self.process.terminate()


def write_history(client: redis.Redis, geo: Geography, avoid: list[str], per_minute: int,
                  minutes: int = 60, seed: int = 3) -> int:  # fmt: skip
    """``per_minute`` incidents in each of the last ``minutes`` minutes (not in ``avoid``)."""
    pool = _pool(geo, set(avoid), per_minute * minutes, seed)
    now_ms = int(time.time() * 1000)
    rng = np.random.default_rng(seed)
    k = 0
    for m in range(minutes, 0, -1):
        stamps = now_ms - m * 60_000 + np.sort(rng.integers(0, 60_000, per_minute))
        with client.pipeline(transaction=False) as pipe:
            for ts in stamps:
                fields = dict(pool[k], id=f"hist-{seed}-{k}", ts=str(int(ts)))
                pipe.xadd(INCIDENTS, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
                k += 1
            pipe.execute()
    return k


def marker_point(geo: Geography, grid_id: str) -> tuple[float, float]:
    point = geo.areas.grids.geometry.loc[grid_id].representative_point()
    return point.x, point.y


def xadd_marker(client: redis.Redis, point: tuple[float, float], marker_id: str) -> float:
    """XADD one marker incident; the wall time (epoch ms) halfway through the call."""
    lon, lat = point
    before = time.time()
    client.xadd(INCIDENTS, {
        "id": marker_id, "ts": str(int(before * 1000)), "category": "dispute",
        "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "severity": "2", "source": "bench",
    })  # fmt: skip
    after = time.time()
    return (before + after) / 2 * 1000


def raw_xadd_xread(redis_url: str, n: int = 200, gap_s: float = 0.02) -> list[float]:
    """The raw counterpart: ms from XADD on one connection to a blocked XREAD on another
    receiving it, for ``n`` entries on a scratch stream (deleted after)."""
    import threading

    stream = "bench:raw:e2s"
    client = redis.Redis.from_url(redis_url)
    reader = redis.Redis.from_url(redis_url)
    got: list[float] = []
    ready = threading.Event()

    def read() -> None:
        last = "$"
        ready.set()
        while len(got) < n:
            reply = reader.xread({stream: last}, block=2000, count=1)
            if not reply:
                continue
            entry_id, fields = reply[0][1][0]
            last = entry_id
            got.append(time.perf_counter() - float(fields[b"t"]))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    ready.wait()
    time.sleep(0.2)  # the reader is blocked in XREAD before the first XADD
    for _ in range(n):
        client.xadd(stream, {"t": repr(time.perf_counter())})
        time.sleep(gap_s)
    thread.join(timeout=10)
    client.delete(stream)
    return [g * 1000 for g in got]
