"""Gauges and trucks: the latest value of each (kept only if newer) and a short history."""

from __future__ import annotations

import json
import time

from cockpit.aggregates import GAUGE_LATEST, GAUGE_SERIES, TRUCK_LATEST, TRUCK_TRAIL
from cockpit.apply import Batch
from cockpit.areastore import Geography
from cockpit.contract import validate_gauges, validate_trucks

GAUGE_SERIES_MS = 7 * 86400 * 1000
TRUCK_TRAIL_PINGS = 30


def prepare_gauges(
    geo: Geography,
    entries: list[tuple[str, dict[str, str]]],
    known_gauges: set[str] | None,
    now_ms: int | None = None,
) -> Batch:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    checked = validate_gauges(entries, now_ms, known_gauges)
    batch = Batch(entry_ids=[e[0] for e in entries], rejects=checked.rejects)
    series: dict[str, list[tuple[int, str]]] = {}
    for _eid, v in checked.valid:
        ts, gauge = int(v["ts"]), str(v["gauge"])  # type: ignore[call-overload]
        body = json.dumps({"level_m": v["level_m"], "rain_mm": v["rain_mm"]})
        batch.latest(GAUGE_LATEST, gauge, ts, body)
        series.setdefault(gauge, []).append((ts, f"{ts}:{v['level_m']}"))
        batch.max_ts_ms = max(batch.max_ts_ms, ts)
    for gauge, members in series.items():
        batch.sorted_add(GAUGE_SERIES + gauge, members, now_ms - GAUGE_SERIES_MS)
    batch.n_valid = len(checked.valid)
    return batch


def prepare_trucks(
    geo: Geography, entries: list[tuple[str, dict[str, str]]], now_ms: int | None = None
) -> Batch:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    checked = validate_trucks(entries, now_ms, geo.bbox)
    batch = Batch(entry_ids=[e[0] for e in entries], rejects=checked.rejects)
    trails: dict[str, list[tuple[int, str]]] = {}
    for _eid, v in checked.valid:
        ts, truck = int(v["ts"]), str(v["truck"])  # type: ignore[call-overload]
        grid = geo.locator.locate_one(v["lon"], v["lat"])  # type: ignore[arg-type]
        body = {k: v[k] for k in ("lat", "lon", "speed_kmh", "loaded")}
        body["grid"] = geo.grid_ids[grid] if grid >= 0 else None
        batch.latest(TRUCK_LATEST, truck, ts, json.dumps(body))
        loaded = "" if v["loaded"] is None else int(bool(v["loaded"]))
        trails.setdefault(truck, []).append((ts, f"{ts},{v['lon']},{v['lat']},{loaded}"))
        batch.max_ts_ms = max(batch.max_ts_ms, ts)
    for truck, members in trails.items():
        batch.sorted_add(TRUCK_TRAIL + truck, members, 0, keep=TRUCK_TRAIL_PINGS)
    batch.n_valid = len(checked.valid)
    return batch
