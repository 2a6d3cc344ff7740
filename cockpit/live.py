"""Live values for the map layers, and the deltas that carry them to browsers.

A browser that already holds the values of sequence number N gets only what changed since N:
the first reader of each sequence stores a snapshot of it in Redis for a minute, so any web
process can diff against it (no per-process or per-session memory), and a wall receives a few
hundred bytes a tick instead of every grid's value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import redis

from cockpit.aggregates import ALL, IncidentAggregates
from cockpit.indicators import map_survey_index

SNAPSHOT = "cockpit:snap:"
SNAPSHOT_TTL_S = 60
MIN_RESOLUTION_BASE = 5  # below this many new incidents a resolution rate says nothing

# metric id -> (i18n label key, value format)
METRICS: dict[str, tuple[str, str]] = {
    "incidents": ("metric_incidents", "count"),
    "open": ("metric_open", "count"),
    "resolution": ("metric_resolution", "percent"),
    "ssi": ("metric_ssi", "percent"),
}


def metric_values(
    client: redis.Redis,
    metric: str,
    category: str = ALL,
    window: str = "1h",
    now_ms: int | None = None,
) -> dict[str, float]:
    """Values per area id (every level) for a map metric; ``ssi`` is the leader view's
    safety-satisfaction index (:mod:`cockpit.indicators`), over the last 7 local days."""
    agg = IncidentAggregates(client)
    if metric == "incidents":
        return dict(agg.window_counts(window, category))
    if metric == "open":
        return dict(agg.open_counts(category))
    if metric == "resolution":
        new = agg.window_counts("24h", "st:new")
        resolved = agg.window_counts("24h", "st:resolved")
        return {
            area: round(100 * min(resolved.get(area, 0), n) / n, 1)
            for area, n in new.items()
            if n >= MIN_RESOLUTION_BASE
        }
    if metric == "ssi":
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return {
            area: round(index.combined, 1)
            for area, index in map_survey_index(client, now_ms).items()
            if index.combined is not None
        }
    raise ValueError(f"unknown metric {metric!r}")


def delta(
    client: redis.Redis,
    name: str,
    seq: int,
    since: int | None,
    compute: Callable[[], dict[str, float]],
) -> tuple[bool, dict[str, float], list[str], dict[str, float]]:
    """(full, changed, removed, current): ``full`` when the browser's ``since`` snapshot is
    unknown (then send ``current``), else the values that changed since it and the ids that
    disappeared."""
    key = f"{SNAPSHOT}{name}:{seq}"
    raw = client.get(key)
    if raw is None:
        current = compute()
        client.set(key, json.dumps(current, separators=(",", ":")), ex=SNAPSHOT_TTL_S, nx=True)
    else:
        current = json.loads(raw)
    old_raw = client.get(f"{SNAPSHOT}{name}:{since}") if since is not None else None
    if old_raw is None:
        return True, current, [], current
    old = json.loads(old_raw)
    changed = {k: v for k, v in current.items() if old.get(k) != v}
    removed = [k for k in old if k not in current]
    return False, changed, removed, current
