"""Point-in-grid: which grid does each (lon, lat) fall in?

Every point gets exactly one grid position or -1. A point on a border or vertex shared by
several grids intersects all of them; it is given the lowest position among them, so the answer
never depends on query order and a repeated report of the same place always lands in the same
grid (the "standard address" rule: one place, one grid).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

_NONE = np.iinfo(np.int64).max


class GridLocator:
    """Vectorised point-in-polygon over a fixed sequence of grid polygons.

    Positions are indices into ``geometries`` (use ``AreaSet.grids`` order). Built on a
    shapely STRtree with the ``intersects`` predicate, which GEOS evaluates with exact
    (robust) orientation tests, so boundary points are decided consistently.
    """

    def __init__(self, geometries: Sequence[shapely.Geometry] | np.ndarray) -> None:
        geoms = np.asarray(list(geometries), dtype=object)
        if geoms.ndim != 1:
            raise ValueError("GridLocator needs a flat sequence of polygons")
        types = shapely.get_type_id(geoms)
        bad = np.flatnonzero(~np.isin(types, (3, 6)))
        if bad.size:
            raise ValueError(f"GridLocator needs (Multi)Polygons; bad positions {bad[:5].tolist()}")
        self._geoms = geoms
        self._tree = shapely.STRtree(geoms)
        # Fast reject of points outside the map before building shapely points.
        self._bounds = shapely.total_bounds(geoms) if len(geoms) else np.full(4, np.nan)

    def __len__(self) -> int:
        return len(self._geoms)

    @property
    def geometries(self) -> np.ndarray:
        """The grid polygons, in position order."""
        return self._geoms

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Grid position (int64) of each point, -1 where no grid contains it.

        NaN or infinite coordinates give -1; empty input gives an empty array.
        """
        lon = np.asarray(lon, dtype=np.float64).ravel()
        lat = np.asarray(lat, dtype=np.float64).ravel()
        if lon.shape != lat.shape:
            raise ValueError(f"lon and lat differ in length: {lon.size} != {lat.size}")
        out = np.full(lon.shape, -1, dtype=np.int64)
        if lon.size == 0 or len(self._geoms) == 0:
            return out
        x0, y0, x1, y1 = self._bounds
        # comparisons with NaN are False, so non-finite values drop out here as well
        ok = (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return out
        points = shapely.points(lon[idx], lat[idx])
        point_pos, grid_pos = self._tree.query(points, predicate="intersects")
        best = np.full(idx.size, _NONE, dtype=np.int64)
        np.minimum.at(best, point_pos, grid_pos)
        hit = best != _NONE
        out[idx[hit]] = best[hit]
        return out

    def locate_one(self, lon: float, lat: float) -> int:
        """Grid position of one point, or -1."""
        return int(self.locate(np.array([lon]), np.array([lat]))[0])
