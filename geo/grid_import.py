"""Read real grid files (GeoJSON, GeoPackage, Shapefile, anything pyogrio reads).

Every failure raises :class:`GridFileError` with a one-line message that names the problem and
the fix, and an ``exit_code`` the CLI returns:

====  ==========================================================================
code  meaning
====  ==========================================================================
2     usage: no such file
3     unreadable (not a vector file GDAL knows) or no rows
4     missing column (no id column, or a column named by a flag is absent), or a
      hierarchy that cannot be mapped to the five levels (bad level, cycle, too deep)
5     duplicate area ids
6     non-polygon, empty or unrepairable geometry
7     no CRS and the coordinates are not longitude/latitude
====  ==========================================================================

Repairable problems (invalid polygons, other CRS, overlaps, gaps) are fixed or measured and
reported in an :class:`ImportReport` instead of failing the import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.areas import CRS, LEVEL_ORDER, LEVELS, AreaSet

Progress = Callable[[str, int, int], None]

ID_COLS = ("id", "grid_id", "code", "gid")
NAME_COLS = ("name", "name_zh", "grid_name", "名称")
NAME_EN_COLS = ("name_en",)
PARENT_COLS = ("parent", "parent_id", "parent_code")
LEVEL_COLS = ("level",)
#: Level spellings seen in real files, mapped to ours.
LEVEL_ALIASES = {
    "市": "city",
    "区": "district",
    "县": "district",
    "街道": "street",
    "镇": "street",
    "town": "street",
    "社区": "community",
    "村": "community",
    "village": "community",
    "网格": "grid",
    "专属网格": "special",
}
#: Overlaps and gaps smaller than this (m²) are snapping noise, not data problems.
AREA_TOLERANCE_M2 = 1.0
SYNTHETIC_ROOT = "root"


class GridFileError(Exception):
    """A grid file cannot be imported; ``exit_code`` is what the CLI should exit with."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


@dataclass
class ImportReport:
    """What the import found and fixed."""

    rows: int = 0
    repaired: int = 0
    overlaps: int = 0
    overlap_area_m2: float = 0.0
    gaps: int = 0
    gap_area_m2: float = 0.0
    reprojected_from: str | None = None
    levels: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_grid_file(
    path: str | os.PathLike[str],
    *,
    id_col: str | None = None,
    name_col: str | None = None,
    name_en_col: str | None = None,
    parent_col: str | None = None,
    level_col: str | None = None,
    progress: Progress | None = None,
) -> tuple[AreaSet, ImportReport]:
    """Read, validate and repair a grid file into an :class:`AreaSet` plus a report.

    Column flags override the defaults, which are tried case-insensitively. Without a parent
    column every row is a grid under a synthetic root. Parents referenced but absent are
    built by dissolving their children. Without a level column, levels follow the depth from
    the leaves (leaf = grid, then community, street, district, city).
    """
    path = Path(path)
    label = path.name
    step = progress or (lambda _s, _d, _t: None)
    report = ImportReport()

    if not path.exists():
        raise GridFileError(2, f"{path}: no such file; check the path")
    step("read", 0, 1)
    try:
        frame = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # pyogrio raises several types; all mean "cannot read"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GridFileError(
            3,
            f"{label}: cannot read as a vector file ({first}); use GeoJSON, GeoPackage or "
            "Shapefile",
        ) from exc
    if len(frame) == 0:
        raise GridFileError(3, f"{label}: the file has no rows; nothing to import")
    report.rows = len(frame)
    step("read", len(frame), len(frame))

    # -- columns ---------------------------------------------------------------------------
    cols = [c for c in frame.columns if c != frame.geometry.name]
    found = ", ".join(cols) or "(none)"
    cid = _pick(cols, id_col, ID_COLS, "--id-col", label, required=True, found=found)
    cname = _pick(cols, name_col, NAME_COLS, "--name-col", label, found=found)
    cname_en = _pick(cols, name_en_col, NAME_EN_COLS, "--name-en-col", label, found=found)
    cparent = _pick(cols, parent_col, PARENT_COLS, "--parent-col", label, found=found)
    clevel = _pick(cols, level_col, LEVEL_COLS, "--level-col", label, found=found)
    assert cid is not None  # required=True raised otherwise

    step("validate", 0, len(frame))
    ids = pd.Series([_text(v) for v in frame[cid]], index=frame.index, dtype=object)
    blank = ids.isna()
    if blank.any():
        rows = ", ".join(str(i) for i in np.flatnonzero(blank.to_numpy())[:5])
        raise GridFileError(
            4, f"{label}: rows {rows} have an empty {cid!r}; every area needs an id"
        )
    dup = ids[ids.duplicated(keep=False)].unique().tolist()
    if dup:
        more = f" and {len(dup) - 5} more" if len(dup) > 5 else ""
        raise GridFileError(
            5,
            f"{label}: duplicate ids in column {cid!r}: {', '.join(dup[:5])}{more}; "
            "ids must be unique",
        )

    geoms = np.asarray(frame.geometry.values, dtype=object)
    types = shapely.get_type_id(geoms)  # -1 for missing geometry
    bad = np.flatnonzero(~np.isin(types, (3, 6)) | shapely.is_empty(geoms))
    if bad.size:
        kinds = sorted({"none" if g is None else g.geom_type for g in geoms[bad]})
        raise GridFileError(
            6,
            f"{label}: {bad.size} row(s) without polygon geometry ({', '.join(kinds)}), "
            f"ids {', '.join(ids.iloc[bad[:5]])}; grids must be Polygon or MultiPolygon",
        )
    step("validate", len(frame), len(frame))

    # -- CRS -------------------------------------------------------------------------------
    if frame.crs is None:
        x0, y0, x1, y1 = shapely.total_bounds(geoms)
        if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
            raise GridFileError(
                7,
                f"{label}: no CRS and the coordinates ({x0:.0f}, {y0:.0f}) are not "
                "longitude/latitude; save the file with its CRS (e.g. .prj or GeoPackage)",
            )
        report.warnings.append(f"{label}: no CRS given; assumed {CRS} (lon/lat)")
        frame = frame.set_crs(CRS)
    elif not frame.crs.equals(CRS):
        report.reprojected_from = frame.crs.to_string()
        frame = frame.to_crs(CRS)
    geoms = np.asarray(frame.geometry.values, dtype=object)

    # -- repair ----------------------------------------------------------------------------
    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    step("repair", 0, int(invalid.size))
    for n, k in enumerate(invalid, start=1):
        fixed = _polygonal(shapely.make_valid(geoms[k]))
        if fixed is None:
            raise GridFileError(
                6,
                f"{label}: geometry of {ids.iloc[k]!r} is invalid and has no area after "
                "repair; fix or drop that row",
            )
        geoms[k] = fixed
        if n % 1000 == 0:
            step("repair", n, int(invalid.size))
    report.repaired = int(invalid.size)
    if invalid.size:
        report.warnings.append(
            f"{label}: repaired {invalid.size} invalid polygon(s): "
            f"{', '.join(ids.iloc[invalid[:5]])}"
        )
    step("repair", int(invalid.size), int(invalid.size))

    # -- hierarchy -------------------------------------------------------------------------
    names = _texts(frame, cname, ids)
    names_en = _texts(frame, cname_en, names)
    parents = [_text(v) for v in frame[cparent]] if cparent is not None else [None] * len(frame)
    levels = [_level(v, label, clevel) for v in frame[clevel]] if clevel is not None else None
    records = _build_hierarchy(
        ids.tolist(),
        names.tolist(),
        names_en.tolist(),
        parents,
        levels,
        list(geoms),
        label,
        report,
        flat=cparent is None,
    )
    areas = _to_areaset(records, label)
    report.levels = {lvl: int(n) for lvl, n in areas.frame["level"].value_counts().items() if n}

    # -- overlaps and gaps -----------------------------------------------------------------
    _check_overlaps(areas, report, step)
    file_ids = set(ids.tolist())
    _check_gaps(areas, file_ids, report)
    return areas, report


# -- helpers -------------------------------------------------------------------------------


def _pick(
    cols: list[str],
    given: str | None,
    defaults: tuple[str, ...],
    flag: str,
    label: str,
    *,
    found: str,
    required: bool = False,
) -> str | None:
    """Column to use: the flag's value if given (must exist), else the first default present."""
    lower = {c.lower(): c for c in cols}
    if given is not None:
        if given in cols:
            return given
        if given.lower() in lower:
            return lower[given.lower()]
        raise GridFileError(
            4,
            f"{label}: column {given!r} given by {flag} is not in the file; found columns {found}",
        )
    for name in defaults:
        if name.lower() in lower:
            return lower[name.lower()]
    if required:
        what = {"--id-col": "the area id"}.get(flag, flag)
        raise GridFileError(
            4,
            f"{label}: no column for {what} (tried {', '.join(defaults)}); found columns "
            f"{found}. Map one with {flag} NAME",
        )
    return None


def _text(value: object) -> str | None:
    """Cell as stripped text; None for missing. Integral floats lose their '.0' (codes)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float):
        if np.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def _texts(frame: pd.DataFrame, col: str | None, fallback: pd.Series) -> pd.Series:
    if col is None:
        return fallback.copy()
    values = [_text(v) for v in frame[col]]
    return pd.Series(
        [v if v is not None else f for v, f in zip(values, fallback, strict=True)],
        index=fallback.index,
        dtype=object,
    )


def _level(value: object, label: str, col: str) -> str:
    text = _text(value)
    level = LEVEL_ALIASES.get(text, text.lower()) if text else None
    if level not in LEVEL_ORDER:
        raise GridFileError(
            4,
            f"{label}: level {text!r} in column {col!r} is not one of "
            f"{', '.join(LEVEL_ORDER)}; fix the value or map another column with --level-col",
        )
    return level


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    """Only the polygonal parts of a repaired geometry (make_valid may add lines/points)."""
    parts = shapely.get_parts(geom)
    parts = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
    if not len(parts):
        return None
    polys = shapely.get_parts(parts)  # flattens MultiPolygons
    polys = polys[shapely.area(polys) > 0]
    if not len(polys):
        return None
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(list(polys))


def _build_hierarchy(
    ids: list[str],
    names: list[str],
    names_en: list[str],
    parents: list[str | None],
    levels: list[str] | None,
    geoms: list[shapely.Geometry],
    label: str,
    report: ImportReport,
    *,
    flat: bool,
) -> list[dict]:
    """Complete the tree: dissolve missing parents, add a root if needed, assign levels."""
    nodes: dict[str, dict] = {}
    for k, area_id in enumerate(ids):
        nodes[area_id] = {
            "id": area_id,
            "name_zh": names[k],
            "name_en": names_en[k],
            "parent": parents[k],
            "level": levels[k] if levels is not None else None,
            "kind": "other" if levels is not None and levels[k] == "special" else "",
            "geometry": geoms[k],
        }
    # parents that are referenced but absent: create them, possibly over several rounds
    missing = sorted({p for p in parents if p is not None and p not in nodes})
    if missing:
        report.warnings.append(
            f"{label}: {len(missing)} parent area(s) not in the file were built by dissolving "
            f"their children: {', '.join(missing[:5])}"
        )
    for p in missing:
        nodes[p] = {
            "id": p,
            "name_zh": p,
            "name_en": p,
            "parent": None,
            "level": None,
            "kind": "",
            "geometry": None,
        }
    children: dict[str, list[str]] = {i: [] for i in nodes}
    for area_id, node in nodes.items():
        if node["parent"] is not None:
            children[node["parent"]].append(area_id)

    roots = sorted(i for i, n in nodes.items() if n["parent"] is None)
    # a flat file, a forest, or a lone leaf gets a synthetic city root above it
    synthetic = flat or len(roots) > 1 or not children[roots[0]]
    if synthetic:
        root = SYNTHETIC_ROOT
        while root in nodes:
            root = f"_{root}"
        children[root] = roots
        for r in roots:
            nodes[r]["parent"] = root
        stack = list(roots)
    else:
        root = roots[0]
        stack = [root]

    # post-order over the tree (iterative: files can be deep and wide)
    order: list[str] = []
    seen: set[str] = set()
    while stack:
        node = stack.pop()
        seen.add(node)
        order.append(node)
        stack.extend(children[node])
    unreachable = sorted(set(nodes) - seen)
    if unreachable:
        raise GridFileError(
            4, f"{label}: parent links form a cycle through {', '.join(unreachable[:5])}"
        )
    height: dict[str, int] = {}
    for node in reversed(order):  # children before parents
        kids = children[node]
        height[node] = 1 + max(height[c] for c in kids) if kids else 0
        if nodes[node]["geometry"] is None:
            nodes[node]["geometry"] = _dissolve([nodes[c]["geometry"] for c in kids])
        if nodes[node]["level"] is not None:
            continue
        if levels is None:
            if height[node] >= len(LEVELS):
                raise GridFileError(
                    4,
                    f"{label}: the hierarchy is {height[node] + 1} levels deep, more than "
                    f"{' > '.join(LEVELS)}; add a level column and map it with --level-col",
                )
            nodes[node]["level"] = LEVELS[-1 - height[node]]
        else:
            # a built parent sits one level above its highest child
            top = min(LEVEL_ORDER[nodes[c]["level"]] for c in kids)
            nodes[node]["level"] = LEVELS[min(top, len(LEVELS) - 1) - 1] if top else None
            if nodes[node]["level"] is None:
                raise GridFileError(
                    4,
                    f"{label}: area {node!r} would sit above the city level; check the "
                    "parent and level columns",
                )
    if synthetic:
        if any(nodes[r]["level"] == "city" for r in roots):
            raise GridFileError(
                4,
                f"{label}: {len(roots)} top-level areas and some are cities; a file must "
                "have one city at most",
            )
        nodes[root] = {
            "id": root,
            "name_zh": "全部",
            "name_en": "All",
            "parent": None,
            "level": "city",
            "kind": "",
            "geometry": _dissolve([nodes[r]["geometry"] for r in roots]),
        }
    return list(nodes.values())


def _dissolve(parts: list[shapely.Geometry]) -> shapely.Geometry:
    union = shapely.union_all(np.asarray(parts, dtype=object))
    return _polygonal(union) or union


def _to_areaset(records: list[dict], label: str) -> AreaSet:
    """AreaSet from records, turning its ValueError into a GridFileError."""
    try:
        return AreaSet.from_records(records)
    except ValueError as exc:
        raise GridFileError(4, f"{label}: {exc}; check the parent and level columns") from exc


def _metric(geoms: np.ndarray) -> np.ndarray:
    """The geometries in a local metric CRS (UTM zone of their centre) for areas in m²."""
    series = gpd.GeoSeries(geoms, crs=CRS)
    return np.asarray(series.to_crs(series.estimate_utm_crs()).values, dtype=object)


def _check_overlaps(areas: AreaSet, report: ImportReport, step: Progress) -> None:
    """Count grid pairs whose overlap exceeds AREA_TOLERANCE_M2."""
    grids = np.asarray(areas.grids.geometry.values, dtype=object)
    step("overlap check", 0, len(grids))
    if len(grids) < 2:
        step("overlap check", len(grids), len(grids))
        return
    tree = shapely.STRtree(grids)
    left, right = tree.query(grids, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if left.size:
        pieces = shapely.intersection(grids[left], grids[right])
        areas_m2 = shapely.area(_metric(pieces))
        big = areas_m2 > AREA_TOLERANCE_M2
        report.overlaps = int(big.sum())
        report.overlap_area_m2 = float(areas_m2[big].sum())
        if report.overlaps:
            ids = areas.grids.index
            pairs = [
                f"{ids[a]}/{ids[b]}" for a, b in zip(left[big][:5], right[big][:5], strict=True)
            ]
            report.warnings.append(
                f"{report.overlaps} overlapping grid pair(s), {report.overlap_area_m2:,.0f} m² "
                f"in all: {', '.join(pairs)}"
            )
    step("overlap check", len(grids), len(grids))


def _check_gaps(areas: AreaSet, file_ids: set[str], report: ImportReport) -> None:
    """Holes in the grid cover that the parent areas do not explain.

    Grids whose parent came from the file are checked against it (parent minus its grids).
    Grids whose parent was built here can only be checked for holes in their union; a hole
    that a parent area from the file also leaves open is a lake or an enclave, not a gap.
    """
    frame = areas.frame
    grids = areas.grids
    pieces: list[shapely.Geometry] = []
    loose: list[str] = []
    for parent, members in grids.groupby("parent").groups.items():
        if parent not in file_ids:
            loose.extend(members)
            continue
        cover = shapely.union_all(np.asarray(grids.geometry.loc[members].values, dtype=object))
        pieces.extend(shapely.get_parts(shapely.difference(frame.geometry.loc[parent], cover)))
    if loose:
        union = shapely.union_all(np.asarray(grids.geometry.loc[loose].values, dtype=object))
        holes = [shapely.Polygon(r) for p in shapely.get_parts(union) for r in p.interiors]
        real = frame[frame.index.isin(list(file_ids)) & ~frame["level"].isin(["grid", "special"])]
        covered = shapely.union_all(np.asarray(real.geometry.values, dtype=object))
        for hole in holes:
            if covered.is_empty:
                pieces.append(hole)  # no parent says otherwise: an unexplained hole
            else:
                pieces.extend(shapely.get_parts(shapely.intersection(hole, covered)))
    parts = np.asarray(pieces, dtype=object)
    if not len(parts):
        return
    parts = shapely.get_parts(parts)
    parts = parts[(shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)]
    if not len(parts):
        return
    m2 = shapely.area(_metric(parts))
    big = m2 > AREA_TOLERANCE_M2
    report.gaps = int(big.sum())
    report.gap_area_m2 = float(m2[big].sum())
    if report.gaps:
        report.warnings.append(
            f"{report.gaps} gap(s) between grids, {report.gap_area_m2:,.0f} m² in all"
        )
