"""The area hierarchy in Redis, so every worker and Dash process (on any machine) uses the same
grids. Geometry is immutable per version, so each process caches what it built from it."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import redis

from cockpit.aggregates import AreaCodes
from cockpit.memory import release_free_heap
from geo.areas import LEVELS, AreaSet
from geo.locate import GridLocator
from geo.reference import ReferenceData

AREAS_KEY = "cockpit:geo:areas"
VERSION_KEY = "cockpit:geo:version"
REFERENCE_KEY = "cockpit:geo:reference"
REFERENCE_VERSION_KEY = "cockpit:geo:reference:version"
GAUGE_IDS_KEY = "cockpit:geo:gauges"


class NoAreasError(RuntimeError):
    """No grids are loaded yet."""


def save_areas(client: redis.Redis, areas: AreaSet) -> str:
    """Store an area set; readers pick it up by its version."""
    with client.pipeline(transaction=True) as pipe:
        pipe.set(AREAS_KEY, areas.to_bytes())
        pipe.set(VERSION_KEY, areas.version)
        pipe.execute()
    return areas.version


@dataclass(frozen=True)
class Geography:
    """An area set with what the cockpit derives from it (built once per process)."""

    areas: AreaSet

    @property
    def version(self) -> str:
        return self.areas.version

    @cached_property
    def grid_ids(self) -> np.ndarray:
        return self.areas.grids.index.to_numpy(dtype=object)

    @cached_property
    def locator(self) -> GridLocator:
        return GridLocator(self.areas.grids.geometry.to_numpy())

    @cached_property
    def codes(self) -> AreaCodes:
        """Grid position -> ids of the grid and each of its ancestors, as integer codes."""
        table = self.areas.grid_ancestors_table()
        columns = ["grid", *[lv for lv in reversed(LEVELS[:-1]) if lv in table.columns]]
        table = table.assign(grid=table.index)[columns].reindex(self.grid_ids)
        all_ids = sorted({v for col in columns for v in table[col] if v})
        index = {a: i for i, a in enumerate(all_ids)}
        grid_to_codes = np.array(
            [[index.get(v, -1) if v else -1 for v in row] for row in table.itertuples(index=False)],
            dtype=np.int32,
        )
        return AreaCodes(np.array(all_ids, dtype=object), grid_to_codes)

    @cached_property
    def grid_streets(self) -> tuple[np.ndarray, list[str]]:
        """(street code of each grid position, street id of each code): grouping rows by an
        integer beats comparing street ids as strings."""
        names, codes = np.unique(self.grid_street.astype(str), return_inverse=True)
        return codes.astype(np.int32), names.tolist()

    @cached_property
    def grid_ids_json(self) -> list[str]:
        """Each grid id as a JSON string literal, for writing incident states quickly."""
        return [json.dumps(str(g), ensure_ascii=False) for g in self.grid_ids]

    @cached_property
    def grid_index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.grid_ids)}

    @cached_property
    def grid_street(self) -> np.ndarray:
        """Street id of each grid position ('' where the hierarchy has no street)."""
        table = self.areas.grid_ancestors_table().reindex(self.grid_ids)
        if "street" not in table.columns:
            return np.full(len(self.grid_ids), "", dtype=object)
        return table["street"].fillna("").to_numpy(dtype=object)

    @cached_property
    def bbox(self) -> tuple[float, float, float, float]:
        minx, miny, maxx, maxy = self.areas.frame.total_bounds
        return float(minx), float(miny), float(maxx), float(maxy)


_cache: dict[str, Geography] = {}
_lock = threading.Lock()


def load_geography(client: redis.Redis) -> Geography:
    """The current area set, cached per process by version (geometry never changes in place)."""
    version = client.get(VERSION_KEY)
    if version is None:
        raise NoAreasError("no grids loaded: run `cockpit demo` or `cockpit grids import FILE`")
    key = version.decode()
    with _lock:
        geo = _cache.get(key)
        if geo is None:
            raw = client.get(AREAS_KEY)
            if raw is None:
                raise NoAreasError("grid version set but no grids stored; import them again")
            _cache.clear()  # only the newest version is worth keeping
            geo = Geography(AreaSet.from_bytes(raw))
            del raw
            _cache[key] = geo
            release_free_heap()  # the parse's garbage (JSON, WKB hex) back to the system
        return geo


def known_gauges(client: redis.Redis) -> set[str] | None:
    """Gauge ids of the reference data, or None when none is loaded (then any id is taken)."""
    ids = client.smembers(GAUGE_IDS_KEY)
    return {i.decode() for i in ids} if ids else None


def save_reference(client: redis.Redis, reference: ReferenceData) -> str:
    """Store reference data (gauges, sites, zones), replacing what was there in one transaction:
    the data, its version (the alert engine polls that small key) and the gauge ids the worker
    validates readings against change together."""
    with client.pipeline(transaction=True) as pipe:
        pipe.set(REFERENCE_KEY, reference.to_bytes())
        pipe.set(REFERENCE_VERSION_KEY, reference.version)
        pipe.delete(GAUGE_IDS_KEY)
        if len(reference.gauges):
            pipe.sadd(GAUGE_IDS_KEY, *reference.gauges.index.tolist())
        pipe.execute()
    return reference.version


_reference_cache: dict[bytes, ReferenceData] = {}


def load_reference(client: redis.Redis) -> ReferenceData | None:
    """The reference data, parsed once per process per content (it is immutable)."""
    raw = client.get(REFERENCE_KEY)
    if not raw:
        return None
    digest = hashlib.sha1(raw).digest()  # noqa: S324 - a cache key, not security
    with _lock:
        found = _reference_cache.get(digest)
        if found is None:
            _reference_cache.clear()
            found = _reference_cache[digest] = ReferenceData.from_bytes(raw)
        return found
