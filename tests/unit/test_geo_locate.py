"""GridLocator: one grid per point, deterministic on borders, agrees with brute force."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from geo.demo_city import generate_demo_city
from geo.locate import GridLocator


@pytest.fixture(scope="module")
def grids() -> np.ndarray:
    return np.asarray(generate_demo_city().grids.geometry.values, dtype=object)


@pytest.fixture(scope="module")
def locator(grids: np.ndarray) -> GridLocator:
    return GridLocator(grids)


def _shared_edge(grids: np.ndarray) -> tuple[int, int, np.ndarray]:
    """Two neighbouring grids and a segment of the edge they share."""
    tree = shapely.STRtree(grids)
    left, right = tree.query(grids, predicate="touches")
    for a, b in zip(left, right, strict=True):
        if a >= b:
            continue
        edge = shapely.intersection(grids[a].boundary, grids[b].boundary)
        lines = [p for p in shapely.get_parts(shapely.line_merge(edge)) if p.geom_type != "Point"]
        if lines:
            return int(a), int(b), np.asarray(lines[0].coords)
    raise AssertionError("no shared edge found")


def test_loc001_inside(grids: np.ndarray, locator: GridLocator) -> None:
    probe = shapely.point_on_surface(grids)
    xy = shapely.get_coordinates(probe)
    got = locator.locate(xy[:, 0], xy[:, 1])
    assert got.dtype == np.int64
    assert np.array_equal(got, np.arange(len(grids)))


def test_loc002_outside(locator: GridLocator) -> None:
    got = locator.locate(np.array([0.0, 121.5, 120.25]), np.array([0.0, 31.7, 40.0]))
    assert got.tolist() == [-1, -1, -1]


def test_loc003_point_on_shared_border(grids: np.ndarray, locator: GridLocator) -> None:
    a, b, coords = _shared_edge(grids)
    # vertices and midpoints of the shared edge; midpoints may be off by rounding, so
    # compare with the exact candidates GEOS sees rather than assume both
    mids = (coords[:-1] + coords[1:]) / 2
    pts = np.vstack([coords, mids])
    for _ in range(3):  # same answer each time
        got = locator.locate(pts[:, 0], pts[:, 1])
        for (x, y), g in zip(pts, got, strict=True):
            cand = np.flatnonzero(shapely.intersects_xy(grids, x, y))
            assert len(cand) >= 1
            assert g == cand.min()
    # the edge's own vertices are exactly on both grids, so the answer is never the higher one
    for x, y in coords:
        assert shapely.intersects_xy(grids[a], x, y) and shapely.intersects_xy(grids[b], x, y)
    assert (locator.locate(coords[:, 0], coords[:, 1]) <= min(a, b)).all()


def test_loc004_point_on_shared_vertex(grids: np.ndarray, locator: GridLocator) -> None:
    # a vertex used by three or more grids: where three cells meet
    xy = shapely.get_coordinates(grids)
    uniq, counts = np.unique(xy, axis=0, return_counts=True)
    x, y = uniq[np.argmax(counts)]
    cand = np.flatnonzero(shapely.intersects_xy(grids, x, y))
    assert len(cand) >= 3
    got = locator.locate(np.array([x] * 5), np.array([y] * 5))
    assert (got == cand.min()).all()


def test_loc005_empty_input(locator: GridLocator) -> None:
    got = locator.locate(np.array([]), np.array([]))
    assert got.shape == (0,) and got.dtype == np.int64
    assert len(GridLocator([]).locate(np.array([1.0]), np.array([2.0]))) == 1


def test_loc006_nan_and_inf(grids: np.ndarray, locator: GridLocator) -> None:
    x, y = shapely.get_coordinates(shapely.point_on_surface(grids[:1]))[0]
    lon = np.array([np.nan, x, np.inf, -np.inf, x, x])
    lat = np.array([y, np.nan, y, y, np.inf, y])
    assert locator.locate(lon, lat).tolist() == [-1, -1, -1, -1, -1, 0]


def test_loc007_matches_brute_force(grids: np.ndarray, locator: GridLocator) -> None:
    rng = np.random.default_rng(42)
    x0, y0, x1, y1 = shapely.total_bounds(grids)
    lon = rng.uniform(x0 - 0.01, x1 + 0.01, 10_000)
    lat = rng.uniform(y0 - 0.01, y1 + 0.01, 10_000)
    got = locator.locate(lon, lat)
    points = shapely.points(lon, lat)
    expected = np.full(len(lon), -1)
    for k in range(len(grids) - 1, -1, -1):  # lowest position wins, as in the locator
        expected[shapely.contains(grids[k], points)] = k
    assert np.array_equal(got, expected)
    assert (got >= 0).sum() > 5000  # most points are on the map


def test_loc008_lowest_wins_on_overlap() -> None:
    loc = GridLocator([box(0, 0, 2, 2), box(1, 1, 3, 3), box(0, 0, 1, 1)])
    got = loc.locate(np.array([1.5, 2.5, 0.5, 1.0]), np.array([1.5, 2.5, 0.5, 1.0]))
    assert got.tolist() == [0, 1, 0, 0]
    assert loc.locate_one(2.5, 2.5) == 1


def test_loc009_rejects_non_polygons() -> None:
    with pytest.raises(ValueError, match="Polygon"):
        GridLocator([box(0, 0, 1, 1), shapely.Point(0, 0)])
    with pytest.raises(ValueError, match="differ in length"):
        GridLocator([box(0, 0, 1, 1)]).locate(np.array([1.0]), np.array([1.0, 2.0]))


def test_loc010_geo_imports_neither_dash_nor_redis() -> None:
    code = (
        "import sys, geo.areas, geo.demo_city, geo.locate, geo.grid_import; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dash', 'redis', 'flask')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
