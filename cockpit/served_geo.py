"""The map's geometry as browsers get it: GeoJSON of the grids (or district and street outlines)
inside one area, built once per (grid version, level, area) for every process and kept gzip'd.

At 20,000 grids the GeoJSON is ~10 MB of text and ~1 MB gzip'd, and building it takes about a
second of CPU. The first process that needs one builds it under a Redis lock and stores the
gzip'd bytes in Redis (``cockpit:geo:served:{version}:{level}:{area}``); every other process and
thread reads those bytes, and each process keeps only compressed bytes (a small LRU bounded in
bytes). Geometry never changes within a version, so nothing here is ever invalidated: a new grid
version has new keys, and the old ones expire.
"""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import redis

from cockpit.areastore import Geography
from cockpit.memory import release_free_heap

LEVELS = ("grid", "boundaries")
KEY_PREFIX = "cockpit:geo:served:"
TTL_S = 7 * 86400  # immutable; kept a week after its last build, then built again on demand
LOCK_TTL_MS = 60_000  # far longer than a build (~1 s of CPU at 20,000 grids)
WAIT_POLL_S = 0.05
MAX_CACHED_BYTES = 32 * 1024 * 1024  # per process, compressed (a 20,000-grid city: ~1 MB)
GZIP_LEVEL = 6  # level 9 saves ~8 % more for ~4x the time

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class ServedGeometry:
    """One area's GeoJSON, gzip'd, with the entity tag it is served under (weak: the gzip'd
    and the plain body are the same GeoJSON)."""

    gz: bytes
    etag: str

    def body(self) -> bytes:
        """The GeoJSON itself, for a client that does not take gzip."""
        return gzip.decompress(self.gz)


def served_key(version: str, level: str, area_id: str) -> str:
    return f"{KEY_PREFIX}{version}:{level}:{area_id}"


def build_geojson(geo: Geography, level: str, area_id: str) -> bytes:
    """The GeoJSON of ``level`` ("grid" or "boundaries": districts and streets) inside
    ``area_id``, uncompressed."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    areas = geo.areas
    scope = {area_id, *areas.descendants(area_id)}
    levels = ["grid"] if level == "grid" else ["district", "street"]
    return areas.served_geojson(levels, ids=scope)


class _Compressed:
    """Per-process LRU of served geometry, bounded by its compressed size."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str, str], ServedGeometry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> ServedGeometry | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str, str], value: ServedGeometry) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            total = sum(len(v.gz) for v in self._items.values())
            while total > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                total -= len(dropped.gz)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = _Compressed(MAX_CACHED_BYTES)
_building: dict[tuple[str, str, str], threading.Lock] = {}
_building_lock = threading.Lock()


def forget_cache() -> None:
    """Drop this process's copies (tests)."""
    _cache.clear()


def served_geojson(
    r: redis.Redis, geo: Geography, level: str, area_id: str, wait_s: float = 30.0
) -> ServedGeometry:
    """The gzip'd GeoJSON of ``level`` inside ``area_id`` for ``geo``'s version: from this
    process's cache, else from Redis, else built here (by the one process holding the lock; the
    others wait for its result up to ``wait_s`` and then build it themselves). Without Redis it
    is built and kept here."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    key = (geo.version, level, area_id)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    with _building_lock:
        per_key = _building.setdefault(key, threading.Lock())
    with per_key:  # threads of one process: one of them fetches or builds
        hit = _cache.get(key)
        if hit is None:
            hit = ServedGeometry(
                _shared(r, geo, level, area_id, wait_s), f'W/"{geo.version[:16]}-{level}-{area_id}"'
            )
            _cache.put(key, hit)
    with _building_lock:
        _building.pop(key, None)
    return hit


def _shared(r: redis.Redis, geo: Geography, level: str, area_id: str, wait_s: float) -> bytes:
    rkey = served_key(geo.version, level, area_id)
    try:
        found = r.get(rkey)
        deadline = time.monotonic() + wait_s
        token = uuid.uuid4().hex
        while found is None:
            if r.set(f"{rkey}:lock", token, nx=True, px=LOCK_TTL_MS):
                try:
                    found = r.get(rkey)  # stored between our read and the lock
                    if found is None:
                        found = _build(geo, level, area_id)
                        r.set(rkey, found, ex=TTL_S)
                finally:
                    r.eval(_RELEASE, 1, f"{rkey}:lock", token)
                break
            if time.monotonic() >= deadline:  # the builder died holding the lock
                found = _build(geo, level, area_id)
                break
            time.sleep(WAIT_POLL_S)  # another process is building this very geometry
            found = r.get(rkey)
        return bytes(found)
    except redis.RedisError:
        return _build(geo, level, area_id)  # geometry is what we hold; Redis only shares it


def _build(geo: Geography, level: str, area_id: str) -> bytes:
    gz = gzip.compress(build_geojson(geo, level, area_id), compresslevel=GZIP_LEVEL, mtime=0)
    release_free_heap()  # the ~10 MB of text and its pieces are garbage now: give it back
    return gz
