"""A deterministic demo city modelled on Wuxi: Huishan (7 streets, 113 communities, 557 grids,
60 special grids, as the source documents give) and Liangxi (5 streets, 40 communities,
200 grids).

How the tiling stays exact: areas are first cut top-down (Lloyd-relaxed Voronoi cells clipped
to the parent) as *approximate* shapes. The boundaries of all grid cells are then noded
together once, snap-rounded to a fixed grid, and polygonised; every resulting face goes to the
grid that contains it, and every higher area is the coverage union of its grids. So neighbours
share bit-identical edges and every parent is exactly the union of its children.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import MultiPolygon, Polygon

from geo.areas import AreaSet

#: Snap grid in degrees (about 1 cm); small enough to be invisible, large enough to be robust.
GRID_SIZE = 1e-7
#: Voronoi is not affine-invariant, so cells are built with longitude shrunk by cos(lat).
_LAT0 = 31.7
_KX = math.cos(math.radians(_LAT0))
_LLOYD_STEPS = 2

_CITY = ("wx", "无锡市 (demo)", "Wuxi (demo)")


@dataclass(frozen=True)
class _District:
    code: str
    name_zh: str
    name_en: str
    centre: tuple[float, float]  # lon, lat
    radius: tuple[float, float]  # degrees lon, lat
    streets: tuple[tuple[str, str, str, str], ...]  # zh, zh short, en, suffix en
    communities: int
    grids: int


_DISTRICTS = (
    _District(
        "hs",
        "惠山区",
        "Huishan",
        (120.25, 31.70),
        (0.15, 0.11),
        (
            ("洛社镇", "洛社", "Luoshe", "Town"),
            ("阳山镇", "阳山", "Yangshan", "Town"),
            ("堰桥街道", "堰桥", "Yanqiao", "Street"),
            ("长安街道", "长安", "Chang'an", "Street"),
            ("钱桥街道", "钱桥", "Qianqiao", "Street"),
            ("前洲街道", "前洲", "Qianzhou", "Street"),
            ("玉祁街道", "玉祁", "Yuqi", "Street"),
        ),
        113,
        557,
    ),
    _District(
        "lx",
        "梁溪区",
        "Liangxi",
        (120.40, 31.555),  # placed against Huishan at run time
        (0.06, 0.045),
        (
            ("崇安寺街道", "崇安寺", "Chong'ansi", "Street"),
            ("通江街道", "通江", "Tongjiang", "Street"),
            ("广益街道", "广益", "Guangyi", "Street"),
            ("清名桥街道", "清名桥", "Qingmingqiao", "Street"),
            ("南禅寺街道", "南禅寺", "Nanchansi", "Street"),
        ),
        40,
        200,
    ),
)
SPECIAL_GRIDS = 60
_KINDS = (
    ("school", "学校", "School"),
    ("park", "公园", "Park"),
    ("industrial", "工业园", "Industrial"),
)


def _counts(scale: float) -> list[tuple[int, int]]:
    """(communities, grids) per district at ``scale``; never fewer than one per parent."""
    out = []
    for d in _DISTRICTS:
        comm = max(len(d.streets), round(d.communities * scale))
        grids = max(comm, round(d.grids * scale))
        out.append((comm, grids))
    return out


def scale_for_grids(n: int) -> float:
    """Smallest scale (to 4 significant steps) whose demo city has at least ``n`` grids."""
    base = sum(d.grids for d in _DISTRICTS)
    scale = max(n, 1) / base
    while sum(g for _, g in _counts(scale)) < n:
        scale *= 1.0005
    return scale


def generate_demo_city(seed: int = 7, scale: float = 1.0) -> AreaSet:
    """Generate the demo city; same ``seed`` and ``scale`` give a byte-identical AreaSet."""
    if not scale > 0:
        raise ValueError("scale must be positive")
    rng = np.random.default_rng(seed)
    counts = _counts(scale)

    # 1. District outlines: two smooth blobs; Liangxi bites into Huishan's south-east so the
    #    city is one connected polygon and the two districts share a border.
    hs_blob = _blob(_DISTRICTS[0].centre, _DISTRICTS[0].radius, rng)
    # centre Liangxi just outside Huishan's south-east edge so the two always overlap
    cx, cy = _DISTRICTS[0].centre
    ray = shapely.LineString([(cx, cy), (cx + 1.0, cy - 0.8)])
    ex, ey = shapely.get_coordinates(shapely.intersection(ray, hs_blob.exterior))[0]
    lr = _DISTRICTS[1].radius
    lx = _blob((ex + 0.45 * lr[0] * 0.8, ey - 0.45 * lr[1] * 0.6), lr, rng)
    hs = _largest(shapely.difference(hs_blob, lx))
    lx = shapely.difference(shapely.union(hs_blob, lx), hs)  # whatever Huishan lost

    # 2. Approximate top-down cuts: streets, communities, grids.
    rows: list[dict] = []  # every tiling area, with its approximate shape for grids
    grid_cells: list[Polygon] = []
    grid_rows: list[int] = []
    for d, outline, (n_comm, n_grid) in zip(_DISTRICTS, (hs, lx), counts, strict=True):
        did = f"{_CITY[0]}-{d.code}"
        rows.append(_row(did, "district", _CITY[0], d.name_zh, d.name_en))
        streets = _split(outline, len(d.streets), rng)
        comm_per_street = _apportion([s.area for s in streets], n_comm, rng)
        communities: list[tuple[Polygon, str, tuple[str, str, str, str], int]] = []
        for si, (street, sname) in enumerate(zip(streets, d.streets, strict=True), start=1):
            sid = f"{did}-{si:02d}"
            rows.append(_row(sid, "street", did, sname[0], sname[2]))
            cells = _split(street, comm_per_street[si - 1], rng)
            width = max(3, len(str(len(cells))))
            for ci, cell in enumerate(cells, start=1):
                communities.append((cell, f"{sid}-{ci:0{width}d}", sname, ci))
        grids_per_comm = _apportion([c[0].area for c in communities], n_grid, rng)
        gwidth = max(2, len(str(max(grids_per_comm))))
        for (cell, cid, sname, ci), n in zip(communities, grids_per_comm, strict=True):
            sid = cid.rsplit("-", 1)[0]
            rows.append(
                _row(cid, "community", sid, f"{sname[1]}第{ci}社区", f"{sname[2]} Community {ci}")
            )
            for gi, gcell in enumerate(_split(cell, n, rng), start=1):
                grid_rows.append(len(rows))
                grid_cells.append(gcell)
                rows.append(
                    _row(
                        f"{cid}-{gi:0{gwidth}d}",
                        "grid",
                        cid,
                        f"{sname[1]}第{ci}社区第{gi}网格",
                        f"{sname[2]} C{ci} Grid {gi}",
                    )
                )

    # 3. Exact tiling from the grid cells, then every higher area as a union of its grids.
    exact = _exact_coverage(grid_cells)
    geom: dict[str, Polygon | MultiPolygon] = {}
    for k, g in zip(grid_rows, exact, strict=True):
        geom[rows[k]["id"]] = g
    members: dict[str, list] = {}
    for r in rows:
        if r["level"] == "grid":
            for anc in _prefixes(r["id"]):
                members.setdefault(anc, []).append(geom[r["id"]])
    for area_id, parts in members.items():
        geom[area_id] = _tidy(shapely.coverage_union_all(parts))
    rows.insert(0, _row(*_CITY[:1], "city", None, _CITY[1], _CITY[2]))
    geom[_CITY[0]] = _tidy(shapely.coverage_union_all([geom[f"wx-{d.code}"] for d in _DISTRICTS]))

    # 4. Special-purpose grids inside Huishan: small shapes that may overlap grids.
    street_ids = [r["id"] for r in rows if r["level"] == "street" and r["id"].startswith("wx-hs-")]
    rows.extend(_special_grids(geom, street_ids, rng))
    for r in rows:
        if "geometry" not in r:
            r["geometry"] = geom[r["id"]]
    return AreaSet.from_records(rows)


# -- helpers -------------------------------------------------------------------------------


def _row(area_id: str, level: str, parent: str | None, name_zh: str, name_en: str) -> dict:
    return {
        "id": area_id,
        "level": level,
        "parent": parent,
        "name_zh": name_zh,
        "name_en": name_en,
        "kind": "",
    }


def _prefixes(grid_id: str) -> list[str]:
    """Ancestor ids below the city encoded in a hierarchical id: wx-hs-01-003-02 -> 3 ids."""
    parts = grid_id.split("-")
    return ["-".join(parts[:k]) for k in range(2, len(parts))]


def _blob(
    centre: tuple[float, float], radius: tuple[float, float], rng: np.random.Generator
) -> Polygon:
    """A smooth irregular outline: an ellipse with a few random low harmonics."""
    theta = np.linspace(0.0, 2 * np.pi, 96, endpoint=False)
    r = np.ones_like(theta)
    for k, amp in ((2, 0.06), (3, 0.05), (5, 0.025)):
        r += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    x = centre[0] + radius[0] * r * np.cos(theta)
    y = centre[1] + radius[1] * r * np.sin(theta)
    return shapely.set_precision(Polygon(np.column_stack([x, y])), GRID_SIZE)


def _largest(geom: shapely.Geometry) -> Polygon:
    parts = shapely.get_parts(geom)
    return max(parts, key=lambda p: p.area)


def _apportion(weights: Sequence[float], total: int, rng: np.random.Generator) -> list[int]:
    """Split ``total`` into len(weights) integers >= 1, roughly proportional to jittered weights."""
    n = len(weights)
    w = np.asarray(weights, dtype=float) * rng.uniform(0.8, 1.2, n)
    spare = total - n
    raw = w / w.sum() * spare
    out = np.floor(raw).astype(int)
    # largest remainder, ties broken by position so the result is deterministic
    rest = spare - out.sum()
    out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return (out + 1).tolist()


def _sample_inside(poly: Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random points inside ``poly`` (rejection sampling on its bbox)."""
    x0, y0, x1, y1 = poly.bounds
    got: list[np.ndarray] = []
    have = 0
    while have < n:
        m = max(16, 2 * (n - have))
        pts = np.column_stack([rng.uniform(x0, x1, m), rng.uniform(y0, y1, m)])
        pts = pts[shapely.contains_xy(poly, pts[:, 0], pts[:, 1])]
        got.append(pts)
        have += len(pts)
    return np.concatenate(got)[:n]


def _voronoi_clip(seeds: np.ndarray, poly: Polygon) -> list[Polygon | MultiPolygon]:
    """Voronoi cells of ``seeds`` (in seed order), built in the cos(lat)-scaled plane,
    clipped to ``poly``."""
    scaled = seeds * (_KX, 1.0)
    x0, y0, x1, y1 = poly.bounds
    box = shapely.box(x0 * _KX - 0.01, y0 - 0.01, x1 * _KX + 0.01, y1 + 0.01)
    vor = shapely.voronoi_polygons(shapely.multipoints(scaled), extend_to=box, ordered=True)
    cells = shapely.transform(shapely.get_parts(vor), lambda c: c / (_KX, 1.0))
    return list(shapely.intersection(cells, poly))


def _split(poly: Polygon, n: int, rng: np.random.Generator) -> list[Polygon]:
    """Cut ``poly`` into ``n`` compact approximate cells (Voronoi + Lloyd, fragments merged)."""
    if n <= 1:
        return [poly]
    seeds = _sample_inside(poly, n, rng)
    for _ in range(_LLOYD_STEPS):
        cells = _voronoi_clip(seeds, poly)
        cent = shapely.centroid(cells)
        inside = shapely.contains(cells, cent)
        # a centroid can fall outside a non-convex cell: keep such seeds inside their cell
        fixed = np.where(inside, cent, shapely.point_on_surface(cells))
        seeds = shapely.get_coordinates(fixed)
    cells = _voronoi_clip(seeds, poly)
    return _merge_fragments(cells)


def _merge_fragments(cells: list) -> list[Polygon]:
    """Give every non-largest part of a multi-part cell to the neighbour sharing the longest
    border, so cells stay single polygons (clipping a Voronoi cell to a non-convex parent can
    cut it in two)."""
    cells = list(cells)
    for i, cell in enumerate(cells):
        parts = shapely.get_parts(cell)
        if len(parts) <= 1:
            continue
        parts = sorted(parts, key=lambda p: -p.area)
        cells[i] = parts[0]
        for part in parts[1:]:
            border = shapely.length(
                shapely.intersection(part.boundary, shapely.boundary(np.array(cells, dtype=object)))
            )
            border[i] = -1.0
            j = int(np.argmax(border))
            if border[j] <= 0:
                cells[i] = shapely.union(cells[i], part)  # isolated: nothing else to join
                continue
            cells[j] = _tidy(shapely.union(cells[j], part))
    return cells


def _exact_coverage(cells: list) -> list[Polygon | MultiPolygon]:
    """Turn approximate cells into an exact coverage on the GRID_SIZE lattice.

    All cell boundaries are noded together once (snap rounding), polygonised, and each face is
    handed to the cell containing its interior point, so shared edges are bit-identical.
    """
    arr = np.array(cells, dtype=object)
    noded = shapely.union_all(shapely.boundary(arr), grid_size=GRID_SIZE)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    tree = shapely.STRtree(arr)
    probe = shapely.point_on_surface(faces)
    fi, ci = tree.query(probe, predicate="within")
    owner = np.full(len(faces), -1, dtype=np.int64)
    # a probe on a (snapped) border could hit two cells: keep the lowest, deterministically
    for f, c in zip(fi[::-1], ci[::-1], strict=True):
        owner[f] = c
    for f in np.flatnonzero(owner < 0):
        cand = tree.query(faces[f], predicate="intersects")
        if len(cand):
            areas = shapely.area(shapely.intersection(arr[cand], faces[f]))
            owner[f] = cand[int(np.argmax(areas))]
        else:  # a face outside every cell cannot happen; guard anyway
            owner[f] = int(tree.nearest(faces[f]))
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(len(cells) + 1))
    out: list[Polygon | MultiPolygon] = []
    for k in range(len(cells)):
        group = faces[order[bounds[k] : bounds[k + 1]]]
        if len(group) == 0:
            raise RuntimeError(f"demo city: grid cell {k} vanished while snapping")
        out.append(_tidy(group[0] if len(group) == 1 else shapely.coverage_union_all(group)))
    return out


def _tidy(geom: shapely.Geometry) -> Polygon | MultiPolygon:
    """Single polygon when possible; MultiPolygon otherwise (never a collection)."""
    parts = shapely.get_parts(geom)
    parts = parts[shapely.get_type_id(parts) == 3]
    return parts[0] if len(parts) == 1 else MultiPolygon(list(parts))


def _special_grids(geom: dict, street_ids: list[str], rng: np.random.Generator) -> list[dict]:
    """60 special-purpose grids (schools, parks, industrial zones) inside Huishan streets."""
    rows = []
    per_kind = {k[0]: 0 for k in _KINDS}
    hs = next(d for d in _DISTRICTS if d.code == "hs")
    for n in range(1, SPECIAL_GRIDS + 1):
        kind, kind_zh, kind_en = _KINDS[(n - 1) % len(_KINDS)]
        per_kind[kind] += 1
        sid = street_ids[int(rng.integers(len(street_ids)))]
        street = geom[sid]
        sname = hs.streets[int(sid.split("-")[-1]) - 1]
        cx, cy = _sample_inside(street, 1, rng)[0]
        # half sizes in metres: schools small, industrial zones large
        half = {"school": (120, 220), "park": (200, 500), "industrial": (400, 900)}[kind]
        hx, hy = rng.uniform(*half, 2)
        angle = rng.uniform(0, np.pi)
        dx, dy = hx / (111_320 * _KX), hy / 110_574
        if kind == "park":
            t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            local = np.column_stack([np.cos(t) * hx, np.sin(t) * hy])
        else:
            local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]], dtype=float)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        xy = local @ rot.T
        xy = xy * (dx / hx, dy / hy) + (cx, cy)
        # clip without snapping so the result stays inside the street (snapping could push
        # a vertex ~1 cm across the border)
        shape = shapely.intersection(shapely.set_precision(Polygon(xy), GRID_SIZE), street)
        rows.append(
            {
                "id": f"wx-hs-sp-{n:03d}",
                "level": "special",
                "parent": sid,
                "name_zh": f"{sname[1]}{kind_zh}专属网格{per_kind[kind]}",
                "name_en": f"{sname[2]} {kind_en} Grid {per_kind[kind]}",
                "kind": kind,
                "geometry": _tidy(shape),
            }
        )
    return rows
