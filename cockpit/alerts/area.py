"""Which grids an alert's area touches.

A grid is affected when its polygon *intersects* the alert's area (touching counts: an officer
whose grid borders a flood zone should know). Lookups go through a shapely STRtree built once
per grid set and cached per process (geometry is immutable, so the cache holds no live state).
Circles are built from geodesic points (pyproj's WGS84 ``Geod``), so a 500 m radius is 500 m on
the ground at any latitude.
"""

from __future__ import annotations

import weakref
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import Point, Polygon, shape

from geo.areas import AreaSet

_GEOD = Geod(ellps="WGS84")
_TREES: weakref.WeakKeyDictionary[object, tuple[shapely.STRtree, list[str]]] = (
    weakref.WeakKeyDictionary()
)


def _grid_frame(areas: AreaSet | gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return areas.grids if isinstance(areas, AreaSet) else areas


def _tree(areas: AreaSet | gpd.GeoDataFrame) -> tuple[shapely.STRtree, list[str]]:
    cached = _TREES.get(areas) if isinstance(areas, AreaSet) else None
    if cached is None:
        frame = _grid_frame(areas)
        geoms = np.asarray(frame.geometry.values, dtype=object)
        cached = (shapely.STRtree(geoms), [str(i) for i in frame.index])
        if isinstance(areas, AreaSet):
            _TREES[areas] = cached
    return cached


def as_geometry(geometry: shapely.Geometry | dict[str, Any] | None) -> shapely.Geometry | None:
    """A shapely geometry from a shapely geometry or a GeoJSON dict (None stays None)."""
    if geometry is None or isinstance(geometry, shapely.Geometry):
        return geometry
    return shape(geometry)


def grids_for_area(
    geometry: shapely.Geometry | dict[str, Any] | None, areas: AreaSet | gpd.GeoDataFrame
) -> list[str]:
    """Ids of the grids whose polygon intersects ``geometry`` (lon/lat), sorted.

    ``areas`` is an AreaSet (its comprehensive grids) or a GeoDataFrame of grids indexed by id.
    None, an empty geometry, or an area outside the city gives [].
    """
    geom = as_geometry(geometry)
    if geom is None or geom.is_empty:
        return []
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    tree, ids = _tree(areas)
    hits = tree.query(geom, predicate="intersects")
    return sorted(ids[i] for i in hits)


def circle_polygon(lon: float, lat: float, radius_m: float, segments: int = 64) -> shapely.Geometry:
    """A circle of ``radius_m`` metres around (lon, lat) as a lon/lat polygon.

    Vertices are exact geodesic points at ``segments`` even azimuths; radius 0 gives the Point.
    """
    if radius_m < 0:
        raise ValueError(f"radius must not be negative, got {radius_m}")
    if radius_m == 0:
        return Point(lon, lat)
    azimuths = np.linspace(0.0, 360.0, segments, endpoint=False)
    lons, lats, _ = _GEOD.fwd(
        np.full(segments, lon), np.full(segments, lat), azimuths, np.full(segments, radius_m)
    )
    return Polygon(zip(lons, lats, strict=True))


def grids_within_radius(
    lon: float, lat: float, radius_m: float, areas: AreaSet | gpd.GeoDataFrame
) -> list[str]:
    """Ids of the grids within ``radius_m`` metres of (lon, lat), sorted."""
    return grids_for_area(circle_polygon(lon, lat, radius_m), areas)


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance in metres between two lon/lat points."""
    return float(_GEOD.inv(lon1, lat1, lon2, lat2)[2])
