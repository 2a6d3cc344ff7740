"""Heatmap server time through cockpit.heatservice, with 1,000,000 points in the window of the
whole demo city, read from a real Redis. Prints one JSON object.

    python benchmarks/bench_heatservice.py                  # 1h and 24h windows, 1M points each
    python benchmarks/bench_heatservice.py --windows 15m --points 200000 --ticks 10

For each window the points are written as the worker stores them (16-byte ``POINT`` records
APPENDed to ``cockpit:inc:pts:{version}:{minute}``), spread evenly over the window's minutes,
clustered around grid centres, severity 1-4. Then, with the clock passed in:

- ``cold_ms``: the first render of a fresh process (reads every minute from Redis, bins 1M).
- ``tick_ms``: one update a second with ``--rate`` new points a second appended to the current
  minute (the steady state: re-read every length, fetch only the new bytes, bin them, render).
- ``minute_ms``: the update when a new minute starts: a whole minute's points added and the
  oldest minute's subtracted.
- ``shared_hit_ms``: what every other viewer of the same heatmap costs (``cached_heat`` reading
  the render another viewer triggered).
The reference is ``np.bincount`` over 1M flat pixel indices of the same raster, measured in the
same run. Uses its own embedded Redis server in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from cockpit import heatservice
from cockpit.aggregates import INCIDENT_POINTS
from cockpit.areastore import Geography, load_geography, save_areas
from cockpit.embedded_redis import EmbeddedRedis
from cockpit.ingest.incidents import POINT
from geo.demo_city import generate_demo_city


def synthetic_points(geo: Geography, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` POINT records clustered around grid centres (~40 m spread), as the worker packs."""
    centres = geo.areas.grids.geometry.representative_point()
    pick = rng.integers(0, len(centres), n)
    out = np.zeros(n, POINT)
    out["lon"] = centres.x.to_numpy()[pick] + rng.normal(0, 0.0004, n)
    out["lat"] = centres.y.to_numpy()[pick] + rng.normal(0, 0.0004, n)
    out["grid"] = pick
    out["sev"] = rng.choice(np.arange(1, 5), n, p=(0.45, 0.35, 0.15, 0.05))
    out["cat"] = rng.integers(0, 10, n)
    return out


def _append(r: redis.Redis, geo: Geography, minute: int, points: np.ndarray) -> None:
    r.append(f"{INCIDENT_POINTS}{geo.version[:8]}:{minute}", points.tobytes())


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return (time.perf_counter() - start) * 1000, value


def _p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def bench_window(
    r: redis.Redis, geo: Geography, window: str, points: int, rate: int, ticks: int, seed: int
) -> dict:
    """Figures for one window (see the module docstring)."""
    rng = np.random.default_rng(seed)
    minutes = heatservice.WINDOWS[window]
    per_minute = points // minutes
    r.flushdb()
    save_areas(r, geo.areas)
    now_min = heatservice.redis_now_ms(r) // 60_000
    with r.pipeline(transaction=False) as pipe:
        for m in range(now_min - minutes + 1, now_min + 1):
            pipe.append(f"{INCIDENT_POINTS}{geo.version[:8]}:{m}",
                        synthetic_points(geo, per_minute, rng).tobytes())  # fmt: skip
        pipe.execute()
    city = geo.areas.root_id
    now_ms = now_min * 60_000 + 1_000

    heatservice.forget_caches()
    cold_ms, image = _timed(lambda: heatservice.render_heat(r, geo, city, window, now_ms=now_ms))
    in_window = image.points

    tick_ms, png_bytes = [], []
    for _ in range(ticks):  # one second of new incidents each tick, same minute
        _append(r, geo, now_min, synthetic_points(geo, rate, rng))
        now_ms += 1_000
        ms, image = _timed(
            lambda at=now_ms: heatservice.render_heat(r, geo, city, window, now_ms=at)
        )
        tick_ms.append(ms)
        png_bytes.append(len(image.png))

    minute_ms = []
    for step in range(1, max(3, ticks // 5) + 1):  # a new minute: one in, the oldest out
        _append(r, geo, now_min + step, synthetic_points(geo, per_minute, rng))
        at = (now_min + step) * 60_000 + 500
        ms, image = _timed(lambda at=at: heatservice.render_heat(r, geo, city, window, now_ms=at))
        minute_ms.append(ms)
    # the stages of the last update: render_png alone, on the same raster
    state = heatservice._state(geo, city, window, heatservice.category_set(None))  # noqa: SLF001
    render_ms = float(np.median([_timed(lambda: state.raster.render_png(state.sigma_px))[0]
                                 for _ in range(3)]))  # fmt: skip

    # every other viewer: a shared render already in Redis
    heatservice.cached_heat(r, geo, city, window)
    hits = [_timed(lambda: heatservice.cached_heat(r, geo, city, window))[0] for _ in range(20)]

    # the reference: np.bincount over the same number of flat indices, same raster, same run
    sample = synthetic_points(geo, in_window, rng)
    flat = state.raster.pixel_index(sample["lon"], sample["lat"])
    size = state.raster.counts.size
    bincount_ms = float(np.median([_timed(lambda: np.bincount(flat, minlength=size))[0]
                                   for _ in range(5)]))  # fmt: skip
    return {
        "points_in_window": in_window,
        "raster": [state.raster.width, state.raster.height],
        "sigma_px": round(state.sigma_px, 2),
        "cold_ms": round(cold_ms, 1),
        "tick_ms": {"p50": _p(tick_ms, 50), "p95": _p(tick_ms, 95), "max": _p(tick_ms, 100),
                    "ticks": ticks, "new_points_per_tick": rate},
        "minute_ms": {"p50": _p(minute_ms, 50), "p95": _p(minute_ms, 95), "updates": len(minute_ms),
                      "points_in_and_out": per_minute},
        "render_png_ms": round(render_ms, 2),
        "shared_hit_ms": {"p50": _p(hits, 50), "p95": _p(hits, 95)},
        "png_bytes_p50": int(np.median(png_bytes)),
        "reference": {"np_bincount_ms": round(bincount_ms, 2),
                      "tick_p50_over_bincount": round(_p(tick_ms, 50) / bincount_ms, 1),
                      "tick_p95_over_bincount": round(_p(tick_ms, 95) / bincount_ms, 1),
                      "minute_p95_over_bincount": round(_p(minute_ms, 95) / bincount_ms, 1)},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points in each window")
    parser.add_argument("--windows", default="1h,24h", help="comma-separated: 15m, 1h, 24h")
    parser.add_argument("--rate", type=int, default=1000, help="new points a second (per tick)")
    parser.add_argument("--ticks", type=int, default=30, help="one-second updates measured")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-heat-") as tmp:
        server = EmbeddedRedis(Path(tmp))
        try:
            r = redis.Redis.from_url(server.ensure())
            save_areas(r, generate_demo_city(seed=7))
            geo = load_geography(r)
            results = {
                w: bench_window(r, geo, w, args.points, args.rate, args.ticks, args.seed)
                for w in args.windows.split(",")
            }
            redis_version = r.info("server")["redis_version"]
        finally:
            server.stop()
    print(json.dumps({
        "benchmark": "heatservice",
        "area": "city (demo, 757 grids)",
        "windows": results,
        "budget_ms": 200,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "redis": redis_version},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
