"""Which grids an alert's area touches: agrees with brute force, empty outside the city."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, box, mapping

from cockpit.alerts.area import (
    circle_polygon,
    distance_m,
    grids_for_area,
    grids_within_radius,
)
from geo.areas import AreaSet


def brute_force(geom: shapely.Geometry, areas: AreaSet) -> list[str]:
    return sorted(str(i) for i, g in areas.grids.geometry.items() if g.intersects(geom))


def test_area001_outside_the_city_or_no_area_gives_no_grid(demo_areas: AreaSet) -> None:
    assert grids_for_area(box(-120.2, 38.3, -119.7, 38.7), demo_areas) == []
    assert grids_for_area(Point(121.5, 31.2), demo_areas) == []  # Shanghai, east of the map
    assert grids_for_area(None, demo_areas) == []
    assert grids_for_area(shapely.Polygon(), demo_areas) == []


def test_area002_random_areas_agree_with_brute_force(demo_areas: AreaSet) -> None:
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = demo_areas.grids.total_bounds
    for _ in range(25):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        radius = rng.uniform(0.002, 0.05)
        n = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        ring = [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles]
        area = shapely.Polygon(ring)
        expected = brute_force(area, demo_areas)
        assert grids_for_area(area, demo_areas) == expected
        assert grids_for_area(mapping(area), demo_areas.grids) == expected  # GeoJSON, frame
    # a point on a shared border touches both grids: both officers are told
    first = demo_areas.grids.geometry.iloc[0]
    corner = Point(first.exterior.coords[0])
    assert grids_for_area(corner, demo_areas) == brute_force(corner, demo_areas)
    assert len(grids_for_area(corner, demo_areas)) >= 2


def test_area003_radius_matches_metric_distance(demo_areas: AreaSet) -> None:
    lon, lat, radius = 120.25, 31.70, 1500.0
    found = set(grids_within_radius(lon, lat, radius, demo_areas))
    metric = demo_areas.grids.to_crs(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +units=m")
    dist = metric.geometry.distance(Point(0, 0))
    inside = {str(i) for i, d in dist.items() if d <= radius * 0.995}
    outside = {str(i) for i, d in dist.items() if d > radius}
    assert inside and inside <= found  # a 64-gon loses at most 0.12 % of the radius
    assert not (found & outside)


def test_area004_circles_and_distances() -> None:
    assert circle_polygon(120.25, 31.7, 0).equals(Point(120.25, 31.7))
    ring = circle_polygon(120.25, 31.7, 1000.0)
    for x, y in list(ring.exterior.coords)[:-1]:
        assert distance_m(120.25, 31.7, x, y) == pytest.approx(1000.0, abs=0.01)
    with pytest.raises(ValueError, match="negative"):
        circle_polygon(120.25, 31.7, -1)
