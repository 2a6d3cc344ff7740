"""Heatmap server time: full accumulate of the window, and one live update (add a batch, expire
the oldest, blur, scale, colour, PNG) with the window full. Prints one JSON object.

    python benchmarks/bench_heat.py                      # 1,000,000 points, 1024 px, 20k batches
    python benchmarks/bench_heat.py --width 512 --sigma 3 --batch 1000

Points are synthetic and seeded: clusters around 113 community-like centres over the demo
city's extent (severity 1-4), so the PNG is about as busy as a real, very loud city makes it.
The reference figure is ``np.bincount`` over the same number of flat indices, measured in the
same run, so a slower or faster machine shows in both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from layers.heat import (
    HeatRaster,
    HeatWindow,
    blur,
    colourise,
    encode_png,
    encode_png_rgba,
    quantise,
    ramp_palette,
    robust_max,
)

DEMO_BBOX = (120.1107701, 31.5684163, 120.4271709, 31.8140682)  # generate_demo_city(seed=7)


def synthetic_incidents(
    n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` (lon, lat, severity) inside the demo city, clustered around 113 centres."""
    rng = np.random.default_rng(seed)
    west, south, east, north = DEMO_BBOX
    centres = rng.uniform((west, south), (east, north), (113, 2))
    k = rng.integers(0, 113, n)
    lon = np.clip(centres[k, 0] + rng.normal(0, 0.006, n), west, east)  # ~600 m spread
    lat = np.clip(centres[k, 1] + rng.normal(0, 0.005, n), south, north)
    severity = rng.choice(np.arange(1, 5), n, p=(0.45, 0.35, 0.15, 0.05))
    return lon, lat, severity


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(_ms(start))
    return float(np.median(times))


def run(points: int, batch: int, width: int, sigma: float, updates: int, seed: int) -> dict:
    """Measure and return the figures as a dict (see the module docstring)."""
    bucket_s = 60.0
    total = points + (updates + 1) * batch
    lon, lat, sev = synthetic_incidents(total, seed)
    t0 = 1_700_000_000.0 - 1_700_000_000.0 % bucket_s
    ts = t0 + np.arange(total) // batch * bucket_s  # one bucket per batch
    buckets_in_window = -(-points // batch)

    raster = HeatRaster(DEMO_BBOX, width=width)
    # Reference: the raw numpy cost of binning this many points, same run, same machine.
    flat = raster.pixel_index(lon[:points], lat[:points])
    bincount_ms = _median_ms(lambda: np.bincount(flat, minlength=raster.counts.size), 5)

    def full() -> None:
        raster.clear()
        raster.add(lon[:points], lat[:points], sev[:points])

    full_ms = _median_ms(full, 3)

    window = HeatWindow(raster, window_s=buckets_in_window * bucket_s, bucket_s=bucket_s)
    raster.clear()
    window.add(ts[:points], lon[:points], lat[:points], sev[:points])
    palette = ramp_palette()
    stages: dict[str, list[float]] = {
        k: [] for k in ("add", "expire", "blur", "scale", "colour", "png", "total")
    }
    png_bytes: list[int] = []
    for step in range(updates):
        new = slice(points + step * batch, points + (step + 1) * batch)
        begin = time.perf_counter()
        start = time.perf_counter()
        window.add(ts[new], lon[new], lat[new], sev[new])
        stages["add"].append(_ms(start))
        start = time.perf_counter()
        window.advance(float(ts[new][-1]) + bucket_s)
        stages["expire"].append(_ms(start))
        # The same stages, in the same order, as HeatRaster.render_png.
        start = time.perf_counter()
        density = blur(raster.counts, sigma)
        stages["blur"].append(_ms(start))
        start = time.perf_counter()
        scale = robust_max(density)
        stages["scale"].append(_ms(start))
        start = time.perf_counter()
        indices = quantise(density, scale)
        stages["colour"].append(_ms(start))
        start = time.perf_counter()
        png = encode_png(indices, palette)
        stages["png"].append(_ms(start))
        stages["total"].append(_ms(begin))
        png_bytes.append(len(png))
    assert window.points == points, "the window must hold exactly the points asked for"
    assert raster.render_png(sigma).png == png, "stages must equal render_png"

    start = time.perf_counter()
    rgba_png = encode_png_rgba(colourise(indices, palette))
    rgba_ms = _ms(start)

    def p(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 2)

    return {
        "benchmark": "heat",
        "points_in_window": window.points,
        "batch_points": batch,
        "raster": [raster.width, raster.height],
        "sigma_px": sigma,
        "nonzero_pixel_share": round(float((indices > 0).mean()), 3),
        "full_accumulate_ms": round(full_ms, 2),
        "update_ms": {"p50": p(stages["total"], 50), "p95": p(stages["total"], 95),
                      "max": p(stages["total"], 100), "updates": updates},
        "stage_ms_p50": {k: p(v, 50) for k, v in stages.items() if k != "total"},
        "png_bytes": {"p50": int(np.median(png_bytes)), "max": max(png_bytes),
                      "as_data_url": 22 + 4 * -(-int(np.median(png_bytes)) // 3)},
        "baseline_rgba_filter0_png": {"bytes": len(rgba_png), "ms": round(rgba_ms, 2)},
        "reference": {"np_bincount_ms": round(bincount_ms, 2),
                      "full_accumulate_over_bincount": round(full_ms / bincount_ms, 1),
                      "update_p50_over_bincount": round(p(stages["total"], 50) / bincount_ms, 1)},
        "budget_ms": 200,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points in the window")
    parser.add_argument("--batch", type=int, default=20_000, help="new points per update")
    parser.add_argument("--width", type=int, default=1024, help="raster width in pixels")
    parser.add_argument("--sigma", type=float, default=6.0, help="blur in pixels")
    parser.add_argument("--updates", type=int, default=30, help="updates measured")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(run(args.points, args.batch, args.width, args.sigma, args.updates, args.seed)))


if __name__ == "__main__":
    main()
