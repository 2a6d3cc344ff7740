"""A known incident feed with its ground truth: new reports, status updates, producer
duplicates and bad entries, all from a fixed seed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import redis

from cockpit.aggregates import IncidentAggregates
from cockpit.areastore import Geography
from cockpit.contract import DEADLETTER, GROUP, INCIDENTS


@dataclass
class Truth:
    new_per_area: Counter = field(default_factory=Counter)
    open_per_area: Counter = field(default_factory=Counter)
    resolved_per_area: Counter = field(default_factory=Counter)
    dead: int = 0
    entries: int = 0


def make_feed(geo: Geography, n: int, seed: int, now_ms: int) -> tuple[list[dict], Truth]:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = geo.bbox
    # the truth locates exactly the numbers the feed carries (7 decimals), not the draws
    lon_s = [f"{x:.7f}" for x in rng.uniform(minx, maxx, n * 2)]
    lat_s = [f"{y:.7f}" for y in rng.uniform(miny, maxy, n * 2)]
    lon, lat = np.array(lon_s, dtype=float), np.array(lat_s, dtype=float)
    pos = geo.locator.locate(lon, lat)
    inside = np.flatnonzero(pos >= 0)
    ancestors = geo.codes.grid_to_codes
    truth = Truth()
    feed: list[dict] = []
    news: list[tuple[dict, int]] = []
    resolved: set[str] = set()
    cats = ["dispute", "hotline", "traffic", "environment", "public_security"]
    bad_kinds = [
        lambda f: {k: v for k, v in f.items() if k != "lat"},
        lambda f: {**f, "lon": "12o.3"},
        lambda f: {**f, "lat": "inf"},
        lambda f: {**f, "category": "ufo"},
        lambda f: {**f, "lat": "45.0"},
        lambda f: {**f, "text": "长" * 2500},
    ]
    j = 0
    for k in range(n):
        roll = rng.random()
        if roll < 0.03 and len(news) > 10:  # a status update of an earlier incident
            base, grid = news[int(rng.integers(0, len(news)))]
            if base["id"] in resolved:
                feed.append(dict(base))  # a producer re-sending: duplicate, counts once
                continue
            resolved.add(base["id"])
            feed.append({**base, "status": "resolved", "ts": str(int(base["ts"]) + 1000)})
            for a in ancestors[grid]:
                if a >= 0:
                    area = geo.codes.area_ids[a]
                    truth.open_per_area[area] -= 1
                    truth.resolved_per_area[area] += 1
            continue
        if roll < 0.05 and news:  # a producer duplicate
            feed.append(dict(news[int(rng.integers(0, len(news)))][0]))
            continue
        i = inside[j]
        j += 1
        fields = {"id": f"inc-{seed}-{k}", "ts": str(now_ms - int(rng.integers(60_000, 3_000_000))),
                  "category": cats[k % len(cats)], "lat": lat_s[i], "lon": lon_s[i],
                  "severity": str(1 + k % 4), "status": "new"}  # fmt: skip
        if roll > 0.99:
            feed.append(bad_kinds[k % len(bad_kinds)](fields))
            truth.dead += 1
            continue
        feed.append(fields)
        news.append((fields, int(pos[i])))
        for a in ancestors[pos[i]]:
            if a >= 0:
                area = geo.codes.area_ids[a]
                truth.new_per_area[area] += 1
                truth.open_per_area[area] += 1
    truth.entries = len(feed)
    return feed, truth


def write_feed(client: redis.Redis, feed: list[dict]) -> None:
    for start in range(0, len(feed), 2000):
        with client.pipeline(transaction=False) as pipe:
            for fields in feed[start : start + 2000]:
                pipe.xadd(INCIDENTS, fields)
            pipe.execute()


def digest(client: redis.Redis) -> dict[str, object]:
    """What the aggregates say, in the shape of :class:`Truth`."""
    agg = IncidentAggregates(client)
    return {
        "new": Counter(agg.window_counts("1h", "all")),
        "open": Counter(agg.open_counts("all")),
        "resolved": Counter(agg.window_counts("1h", "st:resolved")),
        "dead": client.xlen(DEADLETTER) if client.exists(DEADLETTER) else 0,
    }


def truth_digest(truth: Truth) -> dict[str, object]:
    return {
        "new": +truth.new_per_area,
        "open": +truth.open_per_area,
        "resolved": +truth.resolved_per_area,
        "dead": truth.dead,
    }


def drained(client: redis.Redis) -> bool:
    """Every entry delivered and acknowledged."""
    if not client.exists(INCIDENTS):
        return False
    groups = {g["name"].decode(): g for g in client.xinfo_groups(INCIDENTS)}
    group = groups.get(GROUP)
    if group is None or group["pending"]:
        return False
    last = client.xinfo_stream(INCIDENTS)["last-generated-id"]
    return group["last-delivered-id"] == last
