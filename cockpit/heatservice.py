"""The live incident heatmap of one area, served from the worker's per-minute point blobs.

The worker appends every new incident as a 16-byte ``POINT`` record to
``cockpit:inc:pts:{geo version[:8]}:{minute}`` (see cockpit/ingest/incidents.py). This module
turns those into one PNG per (area, window, categories) and tick, for every viewer in every
process:

- ``MinutePoints`` (per process, a speed-up only): the decoded records of each minute. A blob
  only grows (APPEND), so one script reads every minute's STRLEN in a consistent snapshot and
  only the bytes added since the last read are fetched with GETRANGE. Late arrivals, appended to
  a minute long past, are caught the same way; a blob that shrank (Redis lost its data) is read
  again from the start under a new generation.
- ``_AreaWindow`` (per process, a speed-up only): a ``HeatWindow`` over the area's bbox fed with
  only the new records whose grid lies inside the area (so a street's heatmap reveals nothing
  outside the street, even through the blur) and whose category is asked for, weighted by
  severity; expired minutes are subtracted, never recounted.
- ``render_heat``: refresh, update, render: one ``HeatImage``.
- ``cached_heat``: the rendered PNG shared through Redis (``cockpit:heat:{area}:{window}:{cats}``,
  TTL ~1 s, version = content hash) behind a short lock (SET NX PX), so many viewers of the same
  heatmap cost one render per tick whichever process they hit; the others wait for or reuse it.

Correctness never depends on the per-process caches: a process with none builds the same raster
from Redis (the counts are exact integers, so the PNG and its version are byte-identical).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import redis

from cockpit.aggregates import INCIDENT_POINTS
from cockpit.areastore import Geography
from cockpit.contract import CATEGORIES
from cockpit.ingest.incidents import POINT
from cockpit.worker import EPOCH
from layers.heat import EARTH_RADIUS_M, MAX_MERCATOR_LAT, HeatImage, HeatRaster, HeatWindow

#: Heatmap windows: name -> whole minutes, the current minute included (as the worker's windows).
WINDOWS: dict[str, int] = {"15m": 15, "1h": 60, "24h": 24 * 60}
ALL = "all"
CACHE_PREFIX = "cockpit:heat:"
STATS_KEY = "cockpit:heat:stats"  # HASH renders / served: how often the shared cache saved work
CACHE_TTL_MS = 1000  # one render per tick per (area, window, categories) for everyone
VERSION_TTL_MS = 10_000  # a PNG named by its version (?v=) stays fetchable this long
LOCK_TTL_MS = 3000  # longer than a cold render (a new process reading 24 h of points)
WAIT_POLL_S = 0.005
PIXEL_M = 30.0  # ground size of a raster pixel: the demo city is then ~1000 px wide
MIN_WIDTH, MAX_WIDTH = 128, 1024
SIGMA_M = 180.0  # the blur on the ground, the same for a street as for the city
PAD_M = 3 * SIGMA_M  # margin around the area so the blur of an edge grid is not cut off
MAX_STATES = 8  # rasters kept per process (city: ~8 MB plus 5 bytes a point; a street: less)
_RECORD = POINT.itemsize

# The worker's epoch (a new one when Redis lost its data) first, then every blob's length.
_LENGTHS = """
local out = {redis.call('GET', ARGV[1]) or ''}
for i, k in ipairs(KEYS) do out[i + 1] = redis.call('STRLEN', k) end
return out
"""
# Unlock only our own lock: after a timeout it may already belong to the next renderer.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class ServedHeat:
    """A heatmap as shared between processes: the PNG and what the overlay and legend need."""

    version: str  # content hash: equal versions are byte-identical PNGs
    png: bytes
    bounds: list[list[float]]  # [[south, west], [north, east]]
    scale_per_km2: float  # severity-weighted incidents per km² drawn at full red
    points: int  # incidents counted (in the area, window and categories)
    width: int
    height: int
    rendered_ms: int  # Redis time of the render

    def meta(self) -> dict:
        """Everything but the PNG, as JSON-ready values."""
        return {
            "version": self.version, "bounds": self.bounds, "scale_per_km2": self.scale_per_km2,
            "points": self.points, "width": self.width, "height": self.height,
            "rendered_ms": self.rendered_ms,
        }  # fmt: skip


# -- categories --------------------------------------------------------------------------------


def category_set(category: str | Iterable[str] | None) -> frozenset[str]:
    """The categories a heatmap counts: None or "all" is every category; one id or several."""
    if category is None or category == ALL:
        return frozenset(CATEGORIES)
    chosen = frozenset([category] if isinstance(category, str) else category)
    unknown = sorted(chosen - set(CATEGORIES))
    if unknown:
        raise ValueError(f"unknown category {unknown[0]!r}")
    if not chosen:
        raise ValueError("no category chosen")
    return chosen


def category_label(categories: frozenset[str]) -> str:
    """The cache-key part for a category set: "all", one id, or the ids joined by "+"."""
    return ALL if categories == frozenset(CATEGORIES) else "+".join(sorted(categories))


# -- the per-minute points ---------------------------------------------------------------------


class MinutePoints:
    """Decoded ``POINT`` records per minute, read incrementally (thread-safe, per process)."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, int], np.ndarray] = {}
        self._generation: dict[tuple[str, int], int] = {}
        self._epoch: bytes | None = None
        self._dataset = 0  # bumped when the worker's epoch changes: every blob may be new
        self._lock = threading.Lock()
        self._script_sha: str | None = None

    def refresh(
        self, r: redis.Redis, version: str, minutes: range
    ) -> dict[int, tuple[tuple[int, int], np.ndarray]]:
        """``{minute: (generation, records)}`` for ``minutes``, with every byte stored now.

        A minute's generation changes when its blob had to be read again from the start (Redis
        lost its data), so whoever counted the old records knows to recount.
        """
        prefix = f"{INCIDENT_POINTS}{version[:8]}:"
        keys = [f"{prefix}{m}" for m in minutes]
        with self._lock:
            epoch, *lengths = self._lengths(r, keys)
            if epoch != self._epoch:
                self._records.clear()
                self._generation.clear()
                self._epoch = epoch
                self._dataset += 1
            reads: list[tuple[int, int, int]] = []  # (minute, from byte, to byte)
            for m, n in zip(minutes, lengths, strict=True):
                n -= n % _RECORD  # the worker appends whole records; never read half of one
                held = self._records.get((version, m))
                have = 0 if held is None else held.size * _RECORD
                if n < have:  # the blob shrank: Redis lost data; start this minute over
                    self._generation[(version, m)] = self._generation.get((version, m), 0) + 1
                    self._records.pop((version, m), None)
                    have = 0
                if n > have:
                    reads.append((m, have, n))
            if reads:
                with r.pipeline(transaction=False) as pipe:
                    for m, start, end in reads:
                        pipe.getrange(f"{prefix}{m}", start, end - 1)
                    blobs = pipe.execute()
                for (m, _start, end), blob in zip(reads, blobs, strict=True):
                    new = np.frombuffer(blob, dtype=POINT)
                    held = self._records.get((version, m))
                    whole = new if held is None else np.concatenate([held, new])
                    if whole.size * _RECORD == end:  # else a race with a shrink: next time
                        self._records[(version, m)] = whole
            self._forget_before(version, minutes.start - WINDOWS["24h"])
            empty = np.empty(0, dtype=POINT)
            return {
                m: (
                    (self._dataset, self._generation.get((version, m), 0)),
                    self._records.get((version, m), empty),
                )
                for m in minutes
            }

    def _lengths(self, r: redis.Redis, keys: list[str]) -> list:
        # One script: every STRLEN from the same instant, so a batch the worker appended to two
        # minutes at once is seen in both or in neither.
        if self._script_sha is None:
            self._script_sha = r.script_load(_LENGTHS)
        try:
            reply = r.evalsha(self._script_sha, len(keys), *keys, EPOCH)
        except redis.exceptions.NoScriptError:  # Redis restarted and forgot it
            self._script_sha = r.script_load(_LENGTHS)
            reply = r.evalsha(self._script_sha, len(keys), *keys, EPOCH)
        epoch = reply[0].encode() if isinstance(reply[0], str) else bytes(reply[0])
        return [epoch, *(int(n) for n in reply[1:])]

    def _forget_before(self, version: str, oldest: int) -> None:
        for key in [k for k in self._records if k[0] != version or k[1] < oldest]:
            del self._records[key]
            self._generation.pop(key, None)

    def clear(self) -> None:
        """Forget everything (tests and benchmarks start cold with it)."""
        with self._lock:
            self._records.clear()
            self._generation.clear()
            self._epoch = None


# -- one area's sliding raster -----------------------------------------------------------------


def area_raster(geo: Geography, area_id: str) -> tuple[HeatRaster, float]:
    """An empty raster over the area's bbox (plus the blur's margin) and the blur in pixels.

    Pixels are about ``PIXEL_M`` on the ground (128..1024 wide), and the blur is ``SIGMA_M`` on
    the ground, so a street and the city look alike at their own zoom.
    """
    west, south, east, north = (float(v) for v in geo.areas.frame.geometry.loc[area_id].bounds)
    lat_mid = (south + north) / 2
    m_per_deg_lat = math.radians(1) * EARTH_RADIUS_M
    m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(lat_mid))
    west, east = west - PAD_M / m_per_deg_lon, east + PAD_M / m_per_deg_lon
    south = max(south - PAD_M / m_per_deg_lat, -MAX_MERCATOR_LAT)
    north = min(north + PAD_M / m_per_deg_lat, MAX_MERCATOR_LAT)
    span_m = (east - west) * m_per_deg_lon
    width = int(min(MAX_WIDTH, max(MIN_WIDTH, round(span_m / PIXEL_M))))
    return HeatRaster((west, south, east, north), width=width), SIGMA_M / (span_m / width)


def area_grid_mask(geo: Geography, area_id: str) -> np.ndarray:
    """Boolean per grid position: is the grid the area or inside it?"""
    inside = {area_id, *geo.areas.descendants(area_id, "grid")}
    return np.fromiter((g in inside for g in geo.grid_ids), dtype=bool, count=len(geo.grid_ids))


class _AreaWindow:
    """A ``HeatWindow`` over one area fed incrementally from ``MinutePoints``."""

    def __init__(
        self, geo: Geography, area_id: str, minutes: int, categories: frozenset[str]
    ) -> None:
        self.raster, self.sigma_px = area_raster(geo, area_id)
        self.minutes = minutes
        self.window = HeatWindow(self.raster, window_s=minutes * 60.0, bucket_s=60.0)
        self.grid_ok = area_grid_mask(geo, area_id)
        self.cat_ok = np.array([c in categories for c in CATEGORIES], dtype=bool)
        # minute -> (generation, records counted)
        self.taken: dict[int, tuple[tuple[int, int], int]] = {}
        self.lock = threading.Lock()

    def update(self, blobs: dict[int, tuple[tuple[int, int], np.ndarray]], now_min: int) -> None:
        """Count the records not counted yet and drop the minutes that left the window."""
        if any(m in self.taken and self.taken[m][0] != g for m, (g, _a) in blobs.items()):
            self._reset()  # a minute was lost and rewritten: recount from scratch (rare)
        parts: list[np.ndarray] = []
        stamps: list[np.ndarray] = []
        for m, (gen, records) in blobs.items():
            done = self.taken.get(m, (gen, 0))[1]
            if records.size > done:
                new = records[done:]
                keep = _member(self.grid_ok, new["grid"]) & _member(self.cat_ok, new["cat"])
                if keep.any():
                    parts.append(new[keep])
                    stamps.append(np.full(int(keep.sum()), m * 60.0))
            self.taken[m] = (gen, int(records.size))
        if parts:
            new = np.concatenate(parts) if len(parts) > 1 else parts[0]
            ts = np.concatenate(stamps) if len(stamps) > 1 else stamps[0]
            self.window.add(ts, new["lon"], new["lat"], new["sev"])
        # The window holds minutes now_min - minutes + 1 .. now_min.
        self.window.advance((now_min + 1) * 60.0)
        first = now_min + 1 - self.minutes
        for m in [m for m in self.taken if m < first]:
            del self.taken[m]

    def _reset(self) -> None:
        self.raster.clear()
        self.window = HeatWindow(self.raster, window_s=self.minutes * 60.0, bucket_s=60.0)
        self.taken.clear()


def _member(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``table[codes]`` where codes index the table, False where they do not."""
    codes = codes.astype(np.int64)
    ok = (codes >= 0) & (codes < table.size)
    ok[ok] = table[codes[ok]]
    return ok


_points = MinutePoints()
_states: OrderedDict[tuple[str, str, str, str], _AreaWindow] = OrderedDict()
_states_lock = threading.Lock()


def _state(geo: Geography, area_id: str, window: str, categories: frozenset[str]) -> _AreaWindow:
    key = (geo.version, area_id, window, category_label(categories))
    with _states_lock:
        state = _states.get(key)
        if state is None:
            state = _AreaWindow(geo, area_id, WINDOWS[window], categories)
            _states[key] = state
            while len(_states) > MAX_STATES:
                _states.popitem(last=False)  # least recently used
        _states.move_to_end(key)
        return state


def forget_caches() -> None:
    """Drop this process's caches (points and rasters); the next render starts cold."""
    _points.clear()
    with _states_lock:
        _states.clear()


def redis_now_ms(r: redis.Redis) -> int:
    """Redis's clock, the one every process and the worker's window roll agree on."""
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) // 1000


# -- rendering ---------------------------------------------------------------------------------


def render_heat(
    r: redis.Redis,
    geo: Geography,
    area_id: str,
    window: str,
    category: str | Iterable[str] | None = None,
    now_ms: int | None = None,
) -> HeatImage:
    """The heatmap of ``area_id`` over ``window`` ("15m", "1h", "24h"), weighted by severity.

    Counts only incidents whose grid lies in the area and whose category is in ``category``
    (None: all). The window is the whole minutes ending with ``now_ms``'s (default: Redis's
    clock). Incremental: only points stored since this process's last render are read and
    binned. Authorisation is the caller's job (see cockpit.heat_routes).
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {window!r}")
    if area_id not in geo.areas:
        raise KeyError(area_id)
    categories = category_set(category)
    now_ms = redis_now_ms(r) if now_ms is None else int(now_ms)
    now_min = now_ms // 60_000
    state = _state(geo, area_id, window, categories)
    with state.lock:
        blobs = _points.refresh(r, geo.version, range(now_min - WINDOWS[window] + 1, now_min + 1))
        state.update(blobs, now_min)
        image = state.raster.render_png(state.sigma_px)
        return replace(image, points=state.window.points)


# -- sharing one render between every viewer ---------------------------------------------------


def heat_key(area_id: str, window: str, categories: frozenset[str]) -> str:
    """The Redis key of the shared render."""
    return f"{CACHE_PREFIX}{area_id}:{window}:{category_label(categories)}"


def _served(image: HeatImage, rendered_ms: int) -> ServedHeat:
    bounds = [[round(v, 7) for v in corner] for corner in image.bounds]
    meta = json.dumps([bounds, image.scale_per_km2, image.points], separators=(",", ":"))
    version = hashlib.blake2b(image.png + meta.encode(), digest_size=8).hexdigest()
    return ServedHeat(
        version=version, png=image.png, bounds=bounds,
        scale_per_km2=float(image.scale_per_km2), points=int(image.points),
        width=image.width, height=image.height, rendered_ms=rendered_ms,
    )  # fmt: skip


def _read(r: redis.Redis, key: str, with_png: bool = True) -> ServedHeat | None:
    fields = ["meta", "png"] if with_png else ["meta"]
    got = r.hmget(key, fields)
    if got[0] is None or (with_png and got[1] is None):
        return None
    meta = json.loads(got[0])
    return ServedHeat(png=got[1] if with_png else b"", **meta)


def _store(r: redis.Redis, key: str, served: ServedHeat) -> None:
    fields = {"meta": json.dumps(served.meta(), separators=(",", ":")), "png": served.png}
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=fields)
        pipe.pexpire(key, CACHE_TTL_MS)
        pipe.hset(f"{key}:v:{served.version}", mapping=fields)
        pipe.pexpire(f"{key}:v:{served.version}", VERSION_TTL_MS)
        pipe.hincrby(STATS_KEY, "renders", 1)
        pipe.execute()


def cached_heat(
    r: redis.Redis,
    geo: Geography,
    area_id: str,
    window: str,
    category: str | Iterable[str] | None = None,
    now_ms: int | None = None,
    with_png: bool = True,
    wait_s: float = LOCK_TTL_MS / 1000,
) -> ServedHeat:
    """The shared heatmap of (area, window, categories): at most one render per ``CACHE_TTL_MS``
    across all processes. A fresh render in Redis is reused; otherwise the one caller that takes
    the lock renders and stores it, and the others poll for it (``wait_s`` at most, then render
    themselves, e.g. when the renderer died holding the lock). ``with_png=False`` skips moving
    the PNG out of Redis (for the version poll). ``now_ms`` only matters when this call renders.
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {window!r}")
    categories = category_set(category)
    key = heat_key(area_id, window, categories)
    hit = _read(r, key, with_png)
    deadline = time.monotonic() + wait_s
    token = uuid.uuid4().hex
    while hit is None:
        if r.set(f"{key}:lock", token, nx=True, px=LOCK_TTL_MS):
            try:
                hit = _read(r, key, with_png)  # finished between our read and the lock
                if hit is None:
                    hit = _render_and_store(r, geo, area_id, window, categories, now_ms, key)
            finally:
                r.eval(_RELEASE, 1, f"{key}:lock", token)
            break
        if time.monotonic() >= deadline:
            hit = _render_and_store(r, geo, area_id, window, categories, now_ms, key)
            break
        time.sleep(WAIT_POLL_S)  # another process is rendering this very heatmap
        hit = _read(r, key, with_png)
    r.hincrby(STATS_KEY, "served", 1)
    return hit


def _render_and_store(
    r: redis.Redis, geo: Geography, area_id: str, window: str, categories: frozenset[str],
    now_ms: int | None, key: str,
) -> ServedHeat:  # fmt: skip
    now_ms = redis_now_ms(r) if now_ms is None else now_ms
    served = _served(render_heat(r, geo, area_id, window, categories, now_ms), now_ms)
    _store(r, key, served)
    return served


def heat_by_version(
    r: redis.Redis, area_id: str, window: str, category: str | Iterable[str] | None, version: str
) -> ServedHeat | None:
    """A render named by its version, if still kept (``VERSION_TTL_MS``), else None."""
    if not version.isalnum() or len(version) > 32:
        return None
    return _read(r, f"{heat_key(area_id, window, category_set(category))}:v:{version}")
