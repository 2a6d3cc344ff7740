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
from cockpit.policy import User, visible_categories

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


def metric_choice(metric: object, category: object, user: User) -> tuple[str, str]:
    """The browser picks a metric and category; the server checks both against the policy:
    an unknown metric is the incident count, a category the user may not see is all of them."""
    metric = metric if isinstance(metric, str) and metric in METRICS else "incidents"
    if not isinstance(category, str) or category not in visible_categories(user):
        category = ALL
    if metric in ("resolution", "ssi"):
        category = ALL
    return metric, str(category or ALL)


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
    current = snapshot(client, name, seq, compute)
    old = stored_snapshot(client, name, since) if since is not None else None
    if old is None:
        return True, current, [], current
    changed, removed = difference(old, current)
    return False, changed, removed, current


def snapshot(
    client: redis.Redis, name: str, seq: int, compute: Callable[[], dict[str, float]]
) -> dict[str, float]:
    """The values of ``name`` at ``seq``: the stored snapshot, or computed and stored now (the
    first reader's values stay the snapshot of that sequence number for every process)."""
    stored = stored_snapshot(client, name, seq)
    if stored is not None:
        return stored
    current = compute()
    key = f"{SNAPSHOT}{name}:{seq}"
    if client.set(key, json.dumps(current, separators=(",", ":")), ex=SNAPSHOT_TTL_S, nx=True):
        return current
    # another reader stored its values for this sequence number first: theirs are the snapshot
    return stored_snapshot(client, name, seq) or current


def stored_snapshot(client: redis.Redis, name: str, seq: int) -> dict[str, float] | None:
    raw = client.get(f"{SNAPSHOT}{name}:{seq}")
    return None if raw is None else json.loads(raw)


def difference(
    old: dict[str, float], current: dict[str, float]
) -> tuple[dict[str, float], list[str]]:
    """(changed, removed): the values that differ in ``current`` and the ids it lost."""
    changed = {k: v for k, v in current.items() if old.get(k) != v}
    removed = [k for k in old if k not in current]
    return changed, removed
