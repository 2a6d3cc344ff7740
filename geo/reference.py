"""Reference data for the feeds: flood gauges, building sites (工地), approved disposal sites
(消纳场), forbidden zones for muck trucks (渣土车) and their permitted hours.

Like an :class:`~geo.areas.AreaSet`, a :class:`ReferenceData` is immutable, has a content
``version`` and serialises without pickle (gzip'd JSON, geometry as WKB hex), because it travels
through Redis. :func:`generate_reference` builds a deterministic set for the demo city.

Layers (GeoDataFrames in EPSG:4326, indexed by a string id, each with ``name_zh``/``name_en``):

- ``gauges``: Point geometry; ``street``, ``river`` ("" when the gauge sits at a drainage pumping
  station off the rivers), ``normal_m`` < ``warning_m`` < ``danger_m`` (water level in metres
  above the local datum), ``rise_m_per_h`` (rate-of-rise alarm threshold), ``grid_id`` (the grid
  containing the gauge) and ``catchment``: a *second geometry column* (a GeoSeries, EPSG:4326)
  holding the Polygon the gauge warns for, its Voronoi cell within its street.
- ``building_sites``, ``disposal_sites``: Polygon; ``street``.
- ``forbidden_zones``: Polygon; ``reason`` (``school``, ``hospital`` or ``scenic``).
- ``rivers``: (Multi)LineString, for drawing; the river gauges lie on them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely import Point, Polygon

from geo.areas import AreaSet
from geo.locate import GridLocator
from geo.packing import pack, payload, unpack

CRS = "EPSG:4326"
_FORMAT = "cockpit-reference"
_FORMAT_VERSION = 1
#: Metres per degree near the demo city (31.7 N): good enough for sizes and speeds.
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(31.7))
#: Muck trucks may only drive at night (local China time), as most Chinese cities rule.
TRUCK_HOURS = ("20:00", "06:00")

# Column schema of each layer: name -> "str" | "float" | "geom"; "geometry" is the active one.
_SCHEMA: dict[str, dict[str, str]] = {
    "gauges": {
        "name_zh": "str", "name_en": "str", "street": "str", "river": "str",
        "normal_m": "float", "warning_m": "float", "danger_m": "float",
        "rise_m_per_h": "float", "grid_id": "str", "catchment": "geom", "geometry": "geom",
    },
    "building_sites": {"name_zh": "str", "name_en": "str", "street": "str", "geometry": "geom"},
    "disposal_sites": {"name_zh": "str", "name_en": "str", "street": "str", "geometry": "geom"},
    "forbidden_zones": {"name_zh": "str", "name_en": "str", "reason": "str", "geometry": "geom"},
    "rivers": {"name_zh": "str", "name_en": "str", "geometry": "geom"},
}  # fmt: skip
LAYERS: tuple[str, ...] = tuple(_SCHEMA)

_RIVERS = (
    ("京杭大运河", "Grand Canal", (0.0, 0.62), (1.0, 0.30)),
    ("锡澄运河", "Xicheng Canal", (0.55, 1.0), (0.62, 0.0)),
    ("北兴塘河", "Beixingtang River", (0.0, 0.85), (1.0, 0.75)),
)
_ZONE_REASONS = {
    "school": ("学校", "School"),
    "hospital": ("医院", "Hospital"),
    "scenic": ("景区", "Scenic area"),
}


@dataclass(frozen=True, eq=False)
class ReferenceData:
    """Immutable reference layers for the feeds (see the module docstring for the columns)."""

    gauges: gpd.GeoDataFrame
    building_sites: gpd.GeoDataFrame
    disposal_sites: gpd.GeoDataFrame
    forbidden_zones: gpd.GeoDataFrame
    rivers: gpd.GeoDataFrame
    truck_hours: tuple[str, str] = TRUCK_HOURS

    def _doc(self) -> dict[str, Any]:
        layers = {}
        for name, schema in _SCHEMA.items():
            frame = getattr(self, name)
            cols = list(schema)
            values = []
            for col in cols:
                kind = schema[col]
                if kind == "geom":
                    geoms = np.asarray(frame[col].values, dtype=object)
                    values.append(list(shapely.to_wkb(geoms, hex=True)) if len(geoms) else [])
                elif kind == "float":
                    values.append([float(v) for v in frame[col]])
                else:
                    values.append([str(v) for v in frame[col]])
            ids = [str(i) for i in frame.index]
            rows = [list(r) for r in zip(ids, *values, strict=True)]
            layers[name] = {"columns": ["id", *cols], "rows": rows}
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "crs": CRS,
            "truck_hours": list(self.truck_hours),
            "layers": layers,
        }

    def _payload(self) -> bytes:
        return payload(self._doc())

    @cached_property
    def version(self) -> str:
        """sha256 hex of the content; equal data give equal versions (cache key)."""
        return hashlib.sha256(self._payload()).hexdigest()

    def to_bytes(self) -> bytes:
        """Gzip'd JSON with WKB hex geometries; deterministic (gzip mtime fixed at 0)."""
        return pack(self._payload())

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceData:
        """Inverse of :meth:`to_bytes`; raises ValueError on anything unexpected."""
        doc = unpack(data, _FORMAT, _FORMAT_VERSION, "serialised reference data")
        frames = {}
        for name, schema in _SCHEMA.items():
            layer = doc["layers"][name]
            if layer["columns"] != ["id", *schema]:
                raise ValueError(f"reference layer {name!r} has columns {layer['columns']}")
            records = [dict(zip(layer["columns"], row, strict=True)) for row in layer["rows"]]
            for rec in records:
                for col, kind in schema.items():
                    if kind == "geom":
                        rec[col] = shapely.from_wkb(rec[col])
            frames[name] = _frame(records, schema)
        hours = doc["truck_hours"]
        return cls(**frames, truck_hours=(str(hours[0]), str(hours[1])))

    def truck_hours_allow(self, local_hour: float) -> bool:
        """Whether muck trucks may drive at ``local_hour`` (0-24, China time)."""
        start, end = (_hour(h) for h in self.truck_hours)
        if start <= end:
            return start <= local_hour < end
        return local_hour >= start or local_hour < end  # a window across midnight


def _hour(text: str) -> float:
    hh, mm = text.split(":")
    return int(hh) + int(mm) / 60


def _frame(records: list[dict[str, Any]], schema: dict[str, str]) -> gpd.GeoDataFrame:
    """One layer in its canonical dtypes and order (sorted by id), so round trips are exact."""
    records = sorted(records, key=lambda r: r["id"])
    data: dict[str, Any] = {}
    for col, kind in schema.items():
        if col == "geometry":
            continue
        vals = [r[col] for r in records]
        if kind == "geom":
            data[col] = gpd.GeoSeries(np.asarray(vals, dtype=object), crs=CRS)
        elif kind == "float":
            data[col] = np.asarray(vals, dtype=np.float64)
        else:
            data[col] = pd.Series([str(v) for v in vals], dtype=object)
    frame = gpd.GeoDataFrame(
        data, geometry=np.asarray([r["geometry"] for r in records], dtype=object), crs=CRS
    )
    frame.index = pd.Index([str(r["id"]) for r in records], name="id", dtype=object)
    for col, kind in schema.items():  # GeoSeries built above carry a RangeIndex
        if kind == "geom" and col != "geometry":
            frame[col] = gpd.GeoSeries(np.asarray([r[col] for r in records], dtype=object),
                                       index=frame.index, crs=CRS)  # fmt: skip
    return frame


def reference_from_records(
    layers: dict[str, list[dict[str, Any]]], truck_hours: tuple[str, str] = TRUCK_HOURS
) -> ReferenceData:
    """Reference data from plain records per layer: ``id`` and the layer's columns (see the
    module docstring), geometry columns as shapely geometries. Layers left out are empty."""
    unknown = set(layers) - set(_SCHEMA)
    if unknown:
        raise ValueError(f"unknown reference layers: {', '.join(sorted(unknown))}")
    frames = {name: _frame(layers.get(name, []), schema) for name, schema in _SCHEMA.items()}
    return ReferenceData(**frames, truck_hours=truck_hours)


# -- generation ----------------------------------------------------------------------------


def generate_reference(areas: AreaSet, seed: int = 7) -> ReferenceData:
    """Deterministic reference data for ``areas`` (meant for the demo city, works on any).

    Every feature lies inside the city; building sites, disposal sites and forbidden zones do
    not overlap one another (sites keep a margin of 150 m from each other and from zones).
    """
    rng = np.random.default_rng([seed, 0x5EF])
    frame = areas.frame
    city = frame.geometry[areas.root_id]
    streets = frame[frame["level"] == "street"].sort_index()
    locator = GridLocator(areas.grids.geometry.to_numpy())
    grid_ids = areas.grids.index.to_numpy(dtype=object)

    rivers = _rivers(city, rng)
    gauges = _gauges(streets, rivers, locator, grid_ids, rng)
    zones = _forbidden_zones(areas, city, rng)
    taken = [z["geometry"] for z in zones]
    disposal = _sites(
        "DS", "消纳场", "Disposal Site", streets, city, taken, rng,
        count=int(rng.integers(3, 7)), half_m=(180, 320), edge=True,
    )  # fmt: skip
    taken += [s["geometry"] for s in disposal]
    building = _sites(
        "BS", "工地", "Building Site", streets, city, taken, rng,
        count=int(rng.integers(15, 26)), half_m=(70, 180), edge=False,
    )  # fmt: skip
    return ReferenceData(
        gauges=_frame(gauges, _SCHEMA["gauges"]),
        building_sites=_frame(building, _SCHEMA["building_sites"]),
        disposal_sites=_frame(disposal, _SCHEMA["disposal_sites"]),
        forbidden_zones=_frame(zones, _SCHEMA["forbidden_zones"]),
        rivers=_frame(rivers, _SCHEMA["rivers"]),
        truck_hours=TRUCK_HOURS,
    )


def _metres(dx_m: float | np.ndarray, dy_m: float | np.ndarray) -> tuple[Any, Any]:
    """Degrees of longitude and latitude for a displacement in metres."""
    return dx_m / M_PER_DEG_LON, dy_m / M_PER_DEG_LAT


def _round(geom: shapely.Geometry) -> shapely.Geometry:
    # 1e-7 degrees (~1 cm): short payloads, and exact in WKB/JSON round trips anyway
    return shapely.set_precision(geom, 1e-7)


def _rivers(city: shapely.Geometry, rng: np.random.Generator) -> list[dict[str, Any]]:
    """A few gently meandering rivers across the city, clipped to it."""
    x0, y0, x1, y1 = city.bounds
    out = []
    for k, (zh, en, a, b) in enumerate(_RIVERS, start=1):
        s = np.linspace(0.0, 1.0, 120)
        ax, ay = x0 + a[0] * (x1 - x0), y0 + a[1] * (y1 - y0)
        bx, by = x0 + b[0] * (x1 - x0), y0 + b[1] * (y1 - y0)
        length = math.hypot(bx - ax, by - ay)
        nx, ny = -(by - ay) / length, (bx - ax) / length
        wiggle = 0.0
        for _ in range(2):
            amp, waves, phase = rng.uniform(0.004, 0.012), rng.uniform(1, 3), rng.uniform(0, 7)
            wiggle = wiggle + amp * np.sin(2 * np.pi * waves * s + phase)
        line = shapely.LineString(
            np.column_stack([ax + (bx - ax) * s + nx * wiggle, ay + (by - ay) * s + ny * wiggle])
        )
        # clip ~20 cm inside the border, so snapping to 1 cm cannot push a vertex outside
        clipped = _round(shapely.intersection(line, city.buffer(-2e-6)))
        if not clipped.is_empty:
            out.append({"id": f"RV-{k:02d}", "name_zh": zh, "name_en": en, "geometry": clipped})
    return out


def _sample_point(poly: shapely.Geometry, rng: np.random.Generator) -> Point:
    x0, y0, x1, y1 = poly.bounds
    for _ in range(10_000):
        p = Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
        if poly.contains(p):
            return p
    return poly.representative_point()


def _gauges(
    streets: gpd.GeoDataFrame,
    rivers: list[dict[str, Any]],
    locator: GridLocator,
    grid_ids: np.ndarray,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """2-4 gauges per street: on a river where one runs through it, else at pumping stations."""
    out: list[dict[str, Any]] = []
    per_district: dict[str, int] = {}
    for sid, street in zip(streets.index, streets.itertuples(), strict=True):
        geom = street.geometry
        inner = geom.buffer(-0.002)  # keep gauges ~200 m off the street border
        inner = inner if not inner.is_empty else geom
        n = int(rng.integers(2, 5))
        placed: list[tuple[Point, str, str]] = []
        for river in rivers:
            part = shapely.intersection(river["geometry"], inner)
            if part.is_empty or part.length < 0.01 or len(placed) >= n:
                continue
            for f in np.sort(rng.uniform(0.15, 0.85, min(2, n - len(placed)))):
                placed.append((part.interpolate(float(f), normalized=True), river["name_zh"],
                               river["name_en"]))  # fmt: skip
        while len(placed) < n:
            p = _sample_point(inner, rng)
            if all(p.distance(q) > 0.006 for q, _, _ in placed):
                placed.append((p, "", ""))
        # catchments: Voronoi cells of the street's gauges, clipped to the street
        pts = [_round(p) for p, _, _ in placed]
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=geom.envelope.buffer(0.05))
        )
        district = sid.split("-")[1]
        short = street.name_zh.removesuffix("街道").removesuffix("镇")
        for p, (_, rzh, ren) in zip(pts, placed, strict=True):
            per_district[district] = per_district.get(district, 0) + 1
            num = per_district[district]
            cell = next(c for c in cells if c.covers(p))
            catchment = _part_with(shapely.intersection(cell, geom), p)
            normal = float(np.round(rng.uniform(1.8, 3.2), 2))
            warning = float(np.round(normal + rng.uniform(0.6, 1.0), 2))
            danger = float(np.round(warning + rng.uniform(0.4, 0.7), 2))
            pos = locator.locate_one(p.x, p.y)
            if rzh:
                name_zh = f"{rzh}{short}{num}号水位站"
                name_en = f"{ren} at {street.name_en} (gauge {num})"
            else:
                name_zh, name_en = f"{short}排涝站{num}", f"{street.name_en} Pumping Station {num}"
            out.append(
                {
                    "id": f"{district.upper()}-G{num:02d}",
                    "name_zh": name_zh, "name_en": name_en, "street": sid, "river": ren,
                    "normal_m": normal, "warning_m": warning, "danger_m": danger,
                    "rise_m_per_h": float(np.round(rng.uniform(0.15, 0.3), 2)),
                    "grid_id": str(grid_ids[pos]) if pos >= 0 else "",
                    "catchment": catchment, "geometry": p,
                }
            )  # fmt: skip
    return out


def _part_with(geom: shapely.Geometry, p: Point) -> Polygon:
    """The polygon part of ``geom`` that holds ``p`` (a Voronoi cell clipped to a non-convex
    street can fall apart); the largest part if none does."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"]
    holding = [g for g in parts if g.covers(p)]
    return _round(holding[0] if holding else max(parts, key=lambda g: g.area))


def _street_of(streets: gpd.GeoDataFrame, p: Point) -> str:
    hits = [sid for sid, g in zip(streets.index, streets.geometry, strict=True) if g.covers(p)]
    return hits[0] if hits else ""


def _forbidden_zones(
    areas: AreaSet, city: shapely.Geometry, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """4-8 zones: around some school and park special grids, and around hospitals."""
    frame = areas.frame
    special = frame[frame["level"] == "special"].sort_index()
    streets = frame[frame["level"] == "street"].sort_index()
    candidates: list[tuple[str, shapely.Geometry, str]] = []
    for kind, reason, margin in (("school", "school", 150.0), ("park", "scenic", 100.0)):
        pool = special[special["kind"] == kind]
        for i in rng.permutation(len(pool))[:3]:
            name = pool["name_zh"].iloc[i]
            geom = pool.geometry.iloc[i].buffer(margin / M_PER_DEG_LAT, quad_segs=4)
            candidates.append((reason, geom, name))
    for _ in range(3):
        p = _sample_point(city.buffer(-0.01), rng)
        radius = rng.uniform(300, 420) / M_PER_DEG_LAT
        candidates.append(("hospital", p.buffer(radius, quad_segs=6), ""))
    target = int(rng.integers(4, 9))
    out: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for k in rng.permutation(len(candidates)):
        reason, geom, name = candidates[k]
        geom = _round(shapely.intersection(geom, city.buffer(-2e-6)))
        if geom.geom_type != "Polygon" or any(geom.intersects(z["geometry"]) for z in out):
            continue
        counts[reason] = counts.get(reason, 0) + 1
        zh, en = _ZONE_REASONS[reason]
        street = _street_of(streets, geom.representative_point())
        street_zh = streets["name_zh"].get(street, "")
        out.append(
            {
                "id": "",  # numbered below, in a stable order
                "name_zh": f"{name or street_zh + zh}禁行区",
                "name_en": f"{en} zone {counts[reason]}",
                "reason": reason,
                "geometry": geom,
            }
        )
        if len(out) == target:
            break
    for n, z in enumerate(out, start=1):
        z["id"] = f"FZ-{n:02d}"
    return out


def _sites(
    prefix: str,
    kind_zh: str,
    kind_en: str,
    streets: gpd.GeoDataFrame,
    city: shapely.Geometry,
    taken: list[shapely.Geometry],
    rng: np.random.Generator,
    count: int,
    half_m: tuple[float, float],
    edge: bool,
) -> list[dict[str, Any]]:
    """``count`` rotated rectangles inside the city, 150 m clear of ``taken`` and each other.

    Disposal sites (``edge``) go to the outskirts, 0.5-4 km inside the city border.
    """
    margin = 150 / M_PER_DEG_LAT
    inner = city.buffer(-0.006)
    if edge:
        inner = shapely.difference(inner, city.buffer(-0.04))
    out: list[dict[str, Any]] = []
    blocked = list(taken)
    for _ in range(20_000):
        if len(out) == count:
            break
        c = _sample_point(inner, rng)
        hx, hy = rng.uniform(*half_m, 2)
        angle = rng.uniform(0, np.pi)
        local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        dx, dy = _metres((local @ rot.T)[:, 0], (local @ rot.T)[:, 1])
        poly = _round(Polygon(np.column_stack([c.x + dx, c.y + dy])))
        if not city.contains(poly) or any(poly.distance(b) < margin for b in blocked):
            continue
        street = _street_of(streets, c)
        n = len(out) + 1
        short = streets["name_zh"].get(street, "")
        out.append(
            {
                "id": f"{prefix}-{n:03d}",
                "name_zh": f"{short}{kind_zh}{n}号",
                "name_en": f"{kind_en} {n}",
                "street": street,
                "geometry": poly,
            }
        )
        blocked.append(poly)
    if len(out) < count:
        raise RuntimeError(f"reference data: placed only {len(out)} of {count} {kind_en}s")
    return out
