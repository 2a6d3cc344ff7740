"""A demo feed: incidents that cluster in hotspots drifting through the day, written to
``cockpit:in:incidents`` at a steady rate. Same seed, same sequence of incidents."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import redis

from cockpit.areastore import Geography
from cockpit.contract import INCIDENTS

# Share of each category in the feed (dispute and hotline dominate, as in DOMAIN.md's figures).
CATEGORY_WEIGHTS = {
    "dispute": 0.22, "public_security": 0.10, "hotline": 0.30, "fire_hazard": 0.06,
    "environment": 0.10, "traffic": 0.09, "petition": 0.04, "flood": 0.02, "dumping": 0.03,
    "other": 0.04,
}  # fmt: skip
SEVERITY_WEIGHTS = (0.45, 0.35, 0.15, 0.05)
STREAM_MAXLEN = 2_000_000


@dataclass
class Incident:
    id: str
    category: str
    lat: float
    lon: float
    severity: int

    def fields(self, ts_ms: int) -> dict[str, str]:
        return {
            "id": self.id,
            "ts": str(ts_ms),
            "category": self.category,
            "lat": f"{self.lat:.6f}",
            "lon": f"{self.lon:.6f}",
            "severity": str(self.severity),
            "status": "new",
            "source": "simulator",
        }


class IncidentSimulator:
    """Generates incidents; ``batch(n, hour)`` is deterministic for a seed."""

    def __init__(
        self, geo: Geography, seed: int = 7, hotspots: int = 12, id_prefix: str = "sim"
    ) -> None:
        self.geo = geo
        self.id_prefix = f"{id_prefix}-{seed}"
        self.rng = np.random.default_rng(seed)
        self.seq = 0
        self.seed = seed
        grids = geo.areas.grids
        centroids = grids.geometry.representative_point()
        self.cx = centroids.x.to_numpy()
        self.cy = centroids.y.to_numpy()
        picks = self.rng.choice(len(grids), size=min(hotspots, len(grids)), replace=False)
        self.hot_x, self.hot_y = self.cx[picks], self.cy[picks]
        self.hot_phase = self.rng.uniform(0, 2 * math.pi, len(picks))
        self.categories = np.array(list(CATEGORY_WEIGHTS))
        self.cat_p = np.array(list(CATEGORY_WEIGHTS.values()))
        self.cat_p /= self.cat_p.sum()

    @staticmethod
    def daily_factor(hour: float) -> float:
        """Relative incident rate by hour of day: quiet at 4 am, busiest around 10 am and 8 pm."""
        return 0.35 + 0.65 * (
            0.55 * math.exp(-((hour - 10) ** 2) / 8) + 0.45 * math.exp(-((hour - 20) ** 2) / 6)
        ) / 0.55

    def batch(self, n: int, hour: float) -> list[Incident]:
        """``n`` incidents at time of day ``hour``: 60% near hotspots, the rest anywhere."""
        rng = self.rng
        hot = rng.random(n) < 0.6
        which = rng.integers(0, len(self.hot_x), n)
        drift = 0.02 * np.sin(2 * math.pi * hour / 24 + self.hot_phase[which])
        spread = 0.006
        gx = rng.integers(0, len(self.cx), n)
        lon = np.where(hot, self.hot_x[which] + drift, self.cx[gx])
        lat = np.where(hot, self.hot_y[which] - drift / 2, self.cy[gx])
        lon = lon + rng.normal(0, spread, n)
        lat = lat + rng.normal(0, spread, n)
        # keep points inside the city: a point outside is moved to its grid centroid draw
        pos = self.geo.locator.locate(lon, lat)
        out = pos < 0
        lon[out], lat[out] = self.cx[gx[out]], self.cy[gx[out]]
        cats = rng.choice(self.categories, size=n, p=self.cat_p)
        sev = rng.choice(4, size=n, p=SEVERITY_WEIGHTS) + 1
        start = self.seq
        self.seq += n
        return [
            Incident(f"{self.id_prefix}-{start + k}", str(cats[k]), float(lat[k]), float(lon[k]),
                     int(sev[k]))
            for k in range(n)
        ]  # fmt: skip


def run_simulator(
    client: redis.Redis,
    geo: Geography,
    rate: float,
    seed: int,
    stop: Callable[[], bool] = lambda: False,
    limit: int | None = None,
) -> int:
    """Write incidents at ``rate`` per second (scaled by the daily cycle) until stopped."""
    sim = IncidentSimulator(geo, seed=seed)
    written = 0
    tick = 0.1
    next_at = time.monotonic()
    carry = 0.0
    while not stop() and (limit is None or written < limit):
        now = time.time()
        hour = (now / 3600 + 8) % 24  # China Standard Time
        carry += rate * tick * IncidentSimulator.daily_factor(hour)
        n = int(carry)
        carry -= n
        if limit is not None:
            n = min(n, limit - written)
        if n:
            ts = int(now * 1000)
            with client.pipeline(transaction=False) as pipe:
                for inc in sim.batch(n, hour):
                    pipe.xadd(INCIDENTS, inc.fields(ts), maxlen=STREAM_MAXLEN, approximate=True)
                pipe.execute()
            written += n
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    return written



def backfill_counts(rate: float, minutes: int, now: float) -> list[int]:
    """Incidents per past minute (oldest first) that a backfill writes."""
    return [
        int(rate * 60 * IncidentSimulator.daily_factor(((now - m * 60) / 3600 + 8) % 24))
        for m in range(minutes, 0, -1)
    ]


def backfill(
    client: redis.Redis,
    geo: Geography,
    rate: float,
    seed: int,
    minutes: int = 60,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the last ``minutes`` of a feed at ``rate``, so a new demo opens on a lived-in city
    rather than an empty one. Incident ids differ from the live feed's (prefix ``hist``)."""
    sim = IncidentSimulator(geo, seed=seed, id_prefix="hist")
    now = time.time()
    written = 0
    for minute, n in zip(range(minutes, 0, -1), backfill_counts(rate, minutes, now), strict=True):
        moment = now - minute * 60
        hour = (moment / 3600 + 8) % 24
        incidents = sim.batch(n, hour)
        ts = (moment + np.sort(sim.rng.uniform(0, 60, n))) * 1000
        with client.pipeline(transaction=False) as pipe:
            for inc, t in zip(incidents, ts, strict=True):
                pipe.xadd(INCIDENTS, inc.fields(int(t)), maxlen=STREAM_MAXLEN, approximate=True)
            pipe.execute()
        written += n
        if progress:
            progress(n)
    return written
