"""Reference data files: flood gauges, their catchments, building sites (工地), approved disposal
sites (消纳场), forbidden zones for muck trucks, rivers and the trucks' permitted hours.

:func:`read_reference_files` reads one or more GeoJSON or GeoPackage files (anything pyogrio
reads; every layer of a GeoPackage), checks them against the grids and builds a
:class:`~geo.reference.ReferenceData`; :func:`write_reference_file` writes one back in the same
format, so ``export`` then ``import`` gives the same data. The format is documented in
docs/reference.md: one feature per thing, its ``kind`` in a column (or the layer's name).

Every failure raises :class:`ReferenceFileError` with one line that names the file, the feature
and the field, and an ``exit_code`` the CLI returns:

====  ==========================================================================
code  meaning
====  ==========================================================================
2     no such file, or an export file type other than .geojson/.gpkg
3     unreadable (not a vector file GDAL knows), or no features at all
4     a missing field (kind, id, warning, danger, a catchment's gauge) or an
      unknown kind
5     duplicate ids, two catchments for one gauge, two different truck hours
6     wrong geometry type for the kind, empty or unrepairable geometry
7     no CRS and the coordinates are not longitude/latitude
8     a bad value: not a finite number, warning not below danger, normal not below
      warning, rise per hour not above 0, hours not HH:MM-HH:MM
9     a broken reference: a catchment names a gauge that is not in the files, or a
      gauge outside every grid has no catchment (its alerts would reach no one)
====  ==========================================================================

Repairable problems are fixed and reported in a :class:`ReferenceReport`: other CRSs are
reprojected to EPSG:4326, invalid polygons repaired, coordinates snapped to 1e-7 degrees
(~1 cm, as the demo data), single-part multi-geometries unpacked, missing optional fields
filled (names, street, normal level, rate of rise, a catchment from the gauge's grid), and
features outside the grids or sites inside forbidden zones reported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo.areas import CRS, AreaSet
from geo.locate import GridLocator
from geo.reference import TRUCK_HOURS, ReferenceData, reference_from_records

Progress = Callable[[str, int, int], None]

KINDS: tuple[str, ...] = (
    "gauge", "catchment", "building_site", "disposal_site", "forbidden_zone", "river",
    "truck_hours",
)  # fmt: skip
#: Spellings of a kind (in the kind column or as a layer name), mapped to ours.
KIND_ALIASES: dict[str, str] = {
    **{k: k for k in KINDS},
    **{k + "s": k for k in KINDS if k != "truck_hours"},
    "水位站": "gauge", "汇水区": "catchment", "工地": "building_site", "消纳场": "disposal_site",
    "禁行区": "forbidden_zone", "河道": "river", "河流": "river",
}  # fmt: skip
#: Field -> column names tried, case-insensitively (first present wins).
FIELDS: dict[str, tuple[str, ...]] = {
    "kind": ("kind",),
    "id": ("id",),
    "name_zh": ("name_zh", "name", "名称"),
    "name_en": ("name_en",),
    "gauge": ("gauge", "gauge_id"),
    "street": ("street",),
    "river": ("river",),
    "normal": ("normal", "normal_m"),
    "warning": ("warning", "warning_m"),
    "danger": ("danger", "danger_m"),
    "rise_per_hour": ("rise_per_hour", "rise_m_per_h"),
    "reason": ("reason",),
    "hours": ("hours",),
}
_POLYGONAL = ("Polygon", "MultiPolygon")
#: Geometry types each kind accepts (truck hours carry none).
GEOMETRY: dict[str, tuple[str, ...]] = {
    "gauge": ("Point",),
    "catchment": _POLYGONAL,
    "building_site": _POLYGONAL,
    "disposal_site": _POLYGONAL,
    "forbidden_zone": _POLYGONAL,
    "river": ("LineString", "MultiLineString"),
    "truck_hours": (),
}
#: Kinds stored as a layer of ReferenceData (catchments go with their gauge).
LAYER_OF = {
    "gauge": "gauges", "building_site": "building_sites", "disposal_site": "disposal_sites",
    "forbidden_zone": "forbidden_zones", "river": "rivers",
}  # fmt: skip
#: The rate-of-rise alarm when a gauge gives none (the flood rule's default), m/h.
DEFAULT_RISE_M_PER_H = 0.3
#: Coordinates are kept to 1 / SCALE degrees (~1 cm), as the generated demo data.
SCALE = 1e7
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–~]\s*(\d{1,2}):(\d{2})\s*$")
#: Column order of written files.
COLUMNS = ("kind", "id", "gauge", "name_zh", "name_en", "street", "river", "normal", "warning",
           "danger", "rise_per_hour", "reason", "hours")  # fmt: skip


class ReferenceFileError(Exception):
    """A reference file cannot be imported; ``exit_code`` is what the CLI should exit with."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


@dataclass
class ReferenceReport:
    """What the import found, filled in and fixed."""

    files: int = 0
    features: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    repaired: int = 0
    reprojected: list[str] = field(default_factory=list)
    gauges_outside: int = 0
    truck_hours: tuple[str, str] = TRUCK_HOURS
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Feature:
    where: str  # "file.geojson feature 3"
    kind: str
    fields: dict[str, Any]
    geometry: shapely.Geometry | None

    @property
    def id(self) -> str | None:
        return self.fields.get("id")

    @property
    def label(self) -> str:
        what = f"{self.kind} {self.id}" if self.id else self.kind
        return f"{self.where} ({what})"


# -- reading -------------------------------------------------------------------------------


def check_paths(paths: Sequence[str | os.PathLike[str]]) -> None:
    """Raise (exit code 2) for the first path that does not exist."""
    for path in paths:
        if not Path(path).exists():
            raise ReferenceFileError(2, f"{path}: no such file; check the path")


def read_reference_files(
    paths: Sequence[str | os.PathLike[str]],
    areas: AreaSet,
    *,
    truck_hours: str | None = None,
    progress: Progress | None = None,
) -> tuple[ReferenceData, ReferenceReport]:
    """Read, check and repair reference files into :class:`ReferenceData` plus a report.

    ``areas`` are the grids the data must fit: each gauge gets the grid it lies in and a
    street, and features outside every grid are reported. ``truck_hours`` ("HH:MM-HH:MM")
    overrides the files' permitted hours.
    """
    step = progress or (lambda _s, _d, _t: None)
    report = ReferenceReport()
    check_paths(paths)
    features: list[_Feature] = []
    for n, path in enumerate(paths, start=1):
        step("read", n - 1, len(paths))
        features += _read_file(Path(path), report)
        report.files += 1
    step("read", len(paths), len(paths))
    if not features:
        names = ", ".join(Path(p).name for p in paths)
        raise ReferenceFileError(3, f"{names}: no features; nothing to import")
    report.features = len(features)
    report.kinds = {k: n for k in KINDS if (n := sum(f.kind == k for f in features))}

    step("check", 0, len(features))
    for n, feature in enumerate(features, start=1):
        _check_geometry(feature, report)
        if n % 500 == 0:
            step("check", n, len(features))
    _check_ids(features)
    gauges = {f.id: f for f in features if f.kind == "gauge"}
    levels = {gid: _levels(f) for gid, f in gauges.items()}
    no_rise = [str(gid) for gid, f in gauges.items() if f.fields.get("rise_per_hour") is None]
    if no_rise:
        report.warnings.append(
            f"{len(no_rise)} gauge(s) give no rise_per_hour; their rate-of-rise alarm is "
            f"{DEFAULT_RISE_M_PER_H} m/h: {', '.join(no_rise[:5])}"
        )
    catchments = _catchments(features, gauges)
    report.truck_hours = _truck_hours(features, truck_hours)
    step("check", len(features), len(features))

    step("locate", 0, len(features))
    layers = _locate(features, gauges, levels, catchments, areas, report)
    step("locate", len(features), len(features))
    _sites_in_zones(layers, report)
    if not layers["gauges"]:
        report.warnings.append("no gauges: flood alerts have no thresholds until some are imported")
    return reference_from_records(layers, report.truck_hours), report


def _read_file(path: Path, report: ReferenceReport) -> list[_Feature]:
    label = path.name
    try:
        layers = [str(name) for name, _type in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises several types; all mean "cannot read"
        raise ReferenceFileError(
            3, f"{label}: cannot read as a vector file ({_first_line(exc)}); use GeoJSON or "
            "GeoPackage",
        ) from exc  # fmt: skip
    out: list[_Feature] = []
    for layer in layers:
        where = label if len(layers) == 1 else f"{label} layer {layer!r}"
        try:
            frame = gpd.read_file(path, layer=layer, engine="pyogrio")
        except Exception as exc:  # noqa: BLE001 - as above
            raise ReferenceFileError(
                3, f"{where}: cannot read ({_first_line(exc)}); use GeoJSON or GeoPackage"
            ) from exc
        if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name not in frame:
            # an attribute table (e.g. truck hours in a GeoPackage): no geometry
            frame = gpd.GeoDataFrame(frame, geometry=[None] * len(frame))
        if len(frame):
            out += _features(_to_wgs84(frame, where, report), where, layer)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _to_wgs84(frame: gpd.GeoDataFrame, where: str, report: ReferenceReport) -> gpd.GeoDataFrame:
    present = frame.geometry[frame.geometry.notna() & ~frame.geometry.is_empty]
    if not len(present):  # attributes only (truck hours): nothing to reproject
        return frame.set_crs(CRS, allow_override=True)
    if frame.crs is None:
        x0, y0, x1, y1 = present.total_bounds
        if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
            raise ReferenceFileError(
                7,
                f"{where}: no CRS and the coordinates ({x0:.0f}, {y0:.0f}) are not "
                "longitude/latitude; save the file with its CRS (e.g. as GeoPackage)",
            )
        report.warnings.append(f"{where}: no CRS given; assumed {CRS} (lon/lat)")
        return frame.set_crs(CRS, allow_override=True)
    if not frame.crs.equals(CRS):
        report.reprojected.append(f"{where} (from {frame.crs.to_string()})")
        return frame.to_crs(CRS)
    return frame


def _features(frame: gpd.GeoDataFrame, where: str, layer: str) -> list[_Feature]:
    """One :class:`_Feature` per row, with its fields under our names."""
    lower = {str(c).lower(): c for c in frame.columns if c != frame.geometry.name}
    columns = {}
    for name, spellings in FIELDS.items():
        found = next((lower[s.lower()] for s in spellings if s.lower() in lower), None)
        if found is not None:
            columns[name] = found
    layer_kind = KIND_ALIASES.get(layer.strip().lower(), KIND_ALIASES.get(layer.strip()))
    if "kind" not in columns and layer_kind is None:
        raise ReferenceFileError(
            4,
            f"{where}: no 'kind' column and the layer name {layer!r} is not a kind; add a "
            f"kind column ({', '.join(KINDS)}) or name the layer after the kind",
        )
    out = []
    geoms = frame.geometry.to_numpy()
    values = {name: frame[col].to_numpy(dtype=object) for name, col in columns.items()}
    for i in range(len(frame)):
        here = f"{where} feature {i + 1}"
        fields = {name: _value(col[i]) for name, col in values.items()}
        kind_text = fields.pop("kind", None)
        if kind_text is None:
            if layer_kind is None:
                raise ReferenceFileError(
                    4, f"{here}: 'kind' is empty; set it to one of {', '.join(KINDS)}"
                )
            kind = layer_kind
        else:
            kind = KIND_ALIASES.get(str(kind_text).strip().lower(), "")
            if not kind:
                raise ReferenceFileError(
                    4, f"{here}: kind {kind_text!r} is not one of {', '.join(KINDS)}"
                )
        if fields.get("id") is not None:
            fields["id"] = _text(fields["id"])
        out.append(_Feature(here, kind, fields, geoms[i]))
    return out


def _value(value: object) -> object:
    """A cell, with the missing-value spellings (None, NaN, NA, blank text) as None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _text(value: object) -> str | None:
    """Cell as stripped text; integral floats lose their '.0' (numeric ids and codes)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() or None


# -- checks --------------------------------------------------------------------------------


def _snap(geom: shapely.Geometry) -> shapely.Geometry:
    # coordinate by coordinate (no overlay), so data already on the grid stays bit-identical
    return shapely.transform(geom, lambda c: np.round(c * SCALE) / SCALE)


def _check_geometry(f: _Feature, report: ReferenceReport) -> None:
    allowed = GEOMETRY[f.kind]
    if not allowed:
        f.geometry = None  # truck hours: any geometry is ignored
        return
    geom = f.geometry
    want = " or ".join(allowed)
    if geom is None or geom.is_empty:
        raise ReferenceFileError(6, f"{f.label}: no geometry; a {f.kind} needs a {want}")
    geom = shapely.force_2d(geom)
    if geom.geom_type not in allowed and geom.geom_type.startswith("Multi"):
        parts = shapely.get_parts(geom)
        if len(parts) == 1 and parts[0].geom_type in allowed:
            report.warnings.append(f"{f.label}: a one-part {geom.geom_type}; took its part")
            geom = parts[0]  # a one-part MultiPoint is a Point
    if geom.geom_type not in allowed:
        raise ReferenceFileError(
            6, f"{f.label}: geometry is a {geom.geom_type}; a {f.kind} must be a {want}"
        )
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise ReferenceFileError(6, f"{f.label}: geometry has coordinates that are not numbers")
    geom = _snap(geom)
    if not geom.is_valid:
        fixed = _polygonal(shapely.make_valid(geom)) if allowed == _POLYGONAL else None
        if fixed is None:
            raise ReferenceFileError(
                6, f"{f.label}: geometry is invalid and cannot be repaired; fix or drop it"
            )
        geom = fixed
        report.repaired += 1
        if report.repaired <= 5:
            report.warnings.append(f"{f.label}: repaired an invalid polygon")
    f.geometry = geom


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    """The polygonal parts of a repaired geometry (make_valid may add lines or points)."""
    parts = [p for p in shapely.get_parts(shapely.get_parts(geom)) if p.geom_type == "Polygon"]
    parts = [p for p in parts if p.area > 0]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _check_ids(features: list[_Feature]) -> None:
    """Every gauge, site, zone and river has an id, unique across them all."""
    seen: dict[str, _Feature] = {}
    for f in features:
        if f.kind not in LAYER_OF:
            continue
        if f.id is None:
            raise ReferenceFileError(4, f"{f.label}: no 'id'; every {f.kind} needs a unique id")
        other = seen.get(f.id)
        if other is not None:
            raise ReferenceFileError(
                5, f"{f.label}: id {f.id!r} is already used by {other.label}; ids must be unique"
            )
        seen[f.id] = f


def _number(f: _Feature, name: str, *, required: bool = False) -> float | None:
    value = f.fields.get(name)
    if value is None:
        if required:
            raise ReferenceFileError(
                4, f"{f.label}: field {name!r} is missing; every gauge needs warning and danger "
                "levels in metres",
            )  # fmt: skip
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        unit = "metres per hour" if name == "rise_per_hour" else "metres"
        raise ReferenceFileError(
            8, f"{f.label}: {name} {value!r} is not a number; give it in {unit}"
        ) from None
    if isinstance(value, bool) or not np.isfinite(number):
        raise ReferenceFileError(8, f"{f.label}: {name} is {value!r}; give a finite number")
    return number


def _levels(f: _Feature) -> dict[str, float]:
    """normal_m < warning_m < danger_m and rise_m_per_h > 0 of one gauge."""
    warning = _number(f, "warning", required=True)
    danger = _number(f, "danger", required=True)
    assert warning is not None and danger is not None
    if not warning < danger:
        raise ReferenceFileError(
            8, f"{f.label}: warning {warning:g} m is not below danger {danger:g} m; fix the levels"
        )
    normal = _number(f, "normal")
    if normal is None:
        normal = warning - (danger - warning)  # only the demo simulator reads it
    elif not normal < warning:
        raise ReferenceFileError(
            8, f"{f.label}: normal {normal:g} m is not below warning {warning:g} m; fix the levels"
        )
    rise = _number(f, "rise_per_hour")
    if rise is None:
        rise = DEFAULT_RISE_M_PER_H
    elif not rise > 0:
        raise ReferenceFileError(
            8, f"{f.label}: rise_per_hour {rise:g} must be above 0 (metres per hour)"
        )
    return {"normal_m": normal, "warning_m": warning, "danger_m": danger, "rise_m_per_h": rise}


def _catchments(
    features: list[_Feature], gauges: dict[str | None, _Feature]
) -> dict[str, _Feature]:
    """Gauge id -> its catchment feature; each names an existing gauge, at most one each."""
    out: dict[str, _Feature] = {}
    for f in features:
        if f.kind != "catchment":
            continue
        gauge = _text(f.fields.get("gauge"))
        if gauge is None:
            raise ReferenceFileError(
                4, f"{f.label}: field 'gauge' is missing; name the gauge this catchment drains to"
            )
        if gauge not in gauges:
            raise ReferenceFileError(
                9, f"{f.label}: gauge {gauge!r} is not a gauge in the files; fix its 'gauge' "
                "field or add that gauge",
            )  # fmt: skip
        if gauge in out:
            raise ReferenceFileError(
                5, f"{f.label}: gauge {gauge!r} already has a catchment ({out[gauge].where}); "
                "keep one or merge them",
            )  # fmt: skip
        out[gauge] = f
    return out


def parse_hours(text: str, where: str) -> tuple[str, str]:
    """("HH:MM", "HH:MM") from "HH:MM-HH:MM"; raises exit code 8 naming ``where``."""
    match = _HOURS.match(text)
    hours = [int(g) for g in match.groups()] if match else []
    if not match or hours[0] > 23 or hours[2] > 23 or hours[1] > 59 or hours[3] > 59:
        raise ReferenceFileError(
            8, f"{where}: hours {text!r} are not HH:MM-HH:MM (e.g. 20:00-06:00, across midnight)"
        )
    start, end = f"{hours[0]:02d}:{hours[1]:02d}", f"{hours[2]:02d}:{hours[3]:02d}"
    if start == end:
        raise ReferenceFileError(8, f"{where}: hours {text!r} start and end at the same time")
    return start, end


def _truck_hours(features: list[_Feature], override: str | None) -> tuple[str, str]:
    if override is not None:
        return parse_hours(override, "--truck-hours")
    found: tuple[str, str] | None = None
    first: _Feature | None = None
    for f in features:
        if f.kind != "truck_hours":
            continue
        text = f.fields.get("hours")
        if text is None:
            raise ReferenceFileError(4, f"{f.label}: field 'hours' is missing (e.g. 20:00-06:00)")
        hours = parse_hours(str(text), f.label)
        if found is not None and hours != found:
            raise ReferenceFileError(
                5, f"{f.label}: hours {'-'.join(hours)} differ from {'-'.join(found)} given by "
                f"{first.label if first else '?'}; keep one",
            )  # fmt: skip
        found, first = hours, first or f
    return found or TRUCK_HOURS


# -- placing on the grids ------------------------------------------------------------------


def _locate(
    features: list[_Feature],
    gauges: dict[str | None, _Feature],
    levels: dict[str | None, dict[str, float]],
    catchments: dict[str, _Feature],
    areas: AreaSet,
    report: ReferenceReport,
) -> dict[str, list[dict[str, Any]]]:
    """Records per layer: gauges get their grid, street and catchment; sites their street."""
    grids = areas.grids
    grid_ids = grids.index.to_numpy(dtype=object)
    grid_geoms = grids.geometry.to_numpy()
    locator = GridLocator(grid_geoms)
    table = areas.grid_ancestors_table().reindex(grid_ids)
    street_of = table["street"].to_numpy(dtype=object) if "street" in table else None
    streets = set(areas.frame.index[areas.frame["level"] == "street"])

    def street(f: _Feature, x: float, y: float) -> str:
        pos = locator.locate_one(x, y)
        here = str(street_of[pos]) if street_of is not None and pos >= 0 else ""
        given = _text(f.fields.get("street"))
        if given is None or given == here:
            return here
        if given in streets:
            return given
        report.warnings.append(
            f"{f.label}: street {given!r} is not a street of the grids; using {here or 'none'}"
        )
        return here

    layers: dict[str, list[dict[str, Any]]] = {name: [] for name in LAYER_OF.values()}
    outside: list[str] = []
    own_grid: list[str] = []
    for f in features:
        if f.kind not in LAYER_OF:
            continue
        name_zh = _text(f.fields.get("name_zh")) or str(f.id)
        record: dict[str, Any] = {
            "id": f.id, "name_zh": name_zh,
            "name_en": _text(f.fields.get("name_en")) or name_zh, "geometry": f.geometry,
        }  # fmt: skip
        if f.kind == "gauge":
            point = f.geometry
            pos = locator.locate_one(point.x, point.y)
            catchment = catchments.get(str(f.id))
            if pos < 0:
                outside.append(str(f.id))
                if catchment is None:
                    raise ReferenceFileError(
                        9, f"{f.label}: lies outside every grid and has no catchment, so its "
                        f"alerts would reach no one; fix its coordinates or add a catchment "
                        f"feature with gauge={f.id}",
                    )  # fmt: skip
            if catchment is None:
                own_grid.append(str(f.id))
                area = grid_geoms[pos]
            else:
                area = catchment.geometry
                if not area.covers(point):
                    report.warnings.append(f"{catchment.label}: does not contain its gauge")
            record.update(
                street=street(f, point.x, point.y), river=_text(f.fields.get("river")) or "",
                grid_id=str(grid_ids[pos]) if pos >= 0 else "", catchment=area,
                **levels[f.id],
            )  # fmt: skip
        elif f.kind in ("building_site", "disposal_site"):
            inner = f.geometry.representative_point()
            record["street"] = street(f, inner.x, inner.y)
        elif f.kind == "forbidden_zone":
            record["reason"] = _text(f.fields.get("reason")) or ""
        layers[LAYER_OF[f.kind]].append(record)

    report.gauges_outside = len(outside)
    if outside:
        report.warnings.append(
            f"{len(outside)} gauge(s) lie outside every grid (their catchments still count): "
            f"{', '.join(outside[:5])}"
        )
    if own_grid:
        report.warnings.append(
            f"{len(own_grid)} gauge(s) have no catchment; their alerts cover the grid they lie "
            f"in: {', '.join(own_grid[:5])}"
        )
    city = areas.frame.geometry[areas.root_id]
    for name in ("building_sites", "disposal_sites", "forbidden_zones"):
        away = [r["id"] for r in layers[name] if not city.intersects(r["geometry"])]
        if away:
            report.warnings.append(
                f"{len(away)} of the {name.replace('_', ' ')} lie outside every grid: "
                f"{', '.join(away[:5])}"
            )
    return layers


def _sites_in_zones(layers: dict[str, list[dict[str, Any]]], report: ReferenceReport) -> None:
    """A site overlapping a forbidden zone is probably a mistake in one of them: report it."""
    zones = layers["forbidden_zones"]
    if not zones:
        return
    tree = shapely.STRtree([z["geometry"] for z in zones])
    for name in ("building_sites", "disposal_sites"):
        for site in layers[name]:
            hits = tree.query(site["geometry"], predicate="intersects")
            for k in hits[:1]:
                report.warnings.append(
                    f"{name[:-1].replace('_', ' ')} {site['id']} overlaps forbidden zone "
                    f"{zones[int(k)]['id']}; trucks stopping there count as at a site"
                )


# -- writing -------------------------------------------------------------------------------


def reference_frame(reference: ReferenceData) -> gpd.GeoDataFrame:
    """The reference data as one table in the file format (one feature per thing)."""
    rows: list[dict[str, Any]] = []
    geoms: list[shapely.Geometry | None] = []

    def add(kind: str, geometry: shapely.Geometry | None, **values: Any) -> None:
        rows.append({"kind": kind, **values})
        geoms.append(geometry)

    for gid, g in reference.gauges.iterrows():
        add("gauge", g.geometry, id=gid, name_zh=g["name_zh"], name_en=g["name_en"],
            street=g["street"], river=g["river"] or None, normal=g["normal_m"],
            warning=g["warning_m"], danger=g["danger_m"],
            rise_per_hour=g["rise_m_per_h"])  # fmt: skip
        add("catchment", g["catchment"], gauge=gid)
    for kind, frame in (("building_site", reference.building_sites),
                        ("disposal_site", reference.disposal_sites)):  # fmt: skip
        for sid, s in frame.iterrows():
            add(kind, s.geometry, id=sid, name_zh=s["name_zh"], name_en=s["name_en"],
                street=s["street"] or None)  # fmt: skip
    for zid, z in reference.forbidden_zones.iterrows():
        add("forbidden_zone", z.geometry, id=zid, name_zh=z["name_zh"], name_en=z["name_en"],
            reason=z["reason"] or None)  # fmt: skip
    for rid, river in reference.rivers.iterrows():
        add("river", river.geometry, id=rid, name_zh=river["name_zh"], name_en=river["name_en"])
    add("truck_hours", None, hours="-".join(reference.truck_hours))
    numbers = ("normal", "warning", "danger", "rise_per_hour")
    table = pd.DataFrame(
        {col: [r.get(col) for r in rows] for col in COLUMNS}, columns=list(COLUMNS)
    )
    for col in COLUMNS:  # numbers as floats (NaN where none), text with None where none
        table[col] = table[col].astype("float64") if col in numbers else table[col].astype(object)
    return gpd.GeoDataFrame(table, geometry=np.asarray(geoms, dtype=object), crs=CRS)


def write_reference_file(reference: ReferenceData, path: str | os.PathLike[str]) -> int:
    """Write ``reference`` as GeoJSON (.geojson/.json) or GeoPackage (.gpkg, layer
    ``reference``); returns the number of features. An existing file is replaced."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".geojson", ".json", ".gpkg"):
        raise ReferenceFileError(
            2, f"{path}: unknown file type {suffix or '(none)'}; name it .geojson or .gpkg"
        )
    frame = reference_frame(reference)
    path.unlink(missing_ok=True)
    if suffix == ".gpkg":
        frame.to_file(path, driver="GPKG", layer="reference", engine="pyogrio")
    else:
        frame.to_file(path, driver="GeoJSON", engine="pyogrio")
    return len(frame)
