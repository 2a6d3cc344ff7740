"""Reference data for the demo city: counts, containment, non-overlap, thresholds, round trip."""

from __future__ import annotations

import gzip
import subprocess
import sys
from itertools import combinations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from geo.locate import GridLocator
from geo.reference import LAYERS, ReferenceData, generate_reference


@pytest.fixture(scope="module")
def reference(demo_areas) -> ReferenceData:
    return generate_reference(demo_areas, seed=7)


def test_ref001_counts_per_layer(reference, demo_areas) -> None:
    streets = demo_areas.frame.index[demo_areas.frame["level"] == "street"]
    per_street = reference.gauges["street"].value_counts()
    assert set(per_street.index) == set(streets), "every street has gauges"
    assert per_street.between(2, 4).all(), per_street.to_dict()
    assert 15 <= len(reference.building_sites) <= 25
    assert 3 <= len(reference.disposal_sites) <= 6
    assert 4 <= len(reference.forbidden_zones) <= 8
    assert set(reference.forbidden_zones["reason"]) <= {"school", "hospital", "scenic"}
    assert len(reference.rivers) >= 1
    assert reference.truck_hours == ("20:00", "06:00")


def test_ref002_layers_are_string_indexed_wgs84_with_names(reference) -> None:
    for name in LAYERS:
        frame = getattr(reference, name)
        assert isinstance(frame, gpd.GeoDataFrame)
        assert frame.crs.to_string() == "EPSG:4326"
        assert all(isinstance(i, str) and i for i in frame.index)
        assert frame.index.is_unique
        assert (frame["name_zh"].str.len() > 0).all() and (frame["name_en"].str.len() > 0).all()
    assert set(shapely.get_type_id(reference.gauges.geometry.values)) == {0}  # Point
    for name in ("building_sites", "disposal_sites", "forbidden_zones"):
        assert set(getattr(reference, name).geom_type) == {"Polygon"}, name
    assert isinstance(reference.gauges["catchment"], gpd.GeoSeries)
    assert set(reference.gauges["catchment"].geom_type) == {"Polygon"}


def test_ref003_every_feature_inside_the_city(reference, demo_areas) -> None:
    city = demo_areas.frame.geometry[demo_areas.root_id]
    for name in LAYERS:
        geoms = getattr(reference, name).geometry.values
        assert shapely.covers(city, geoms).all(), name
    streets = demo_areas.frame.geometry
    for gid, row in reference.gauges.iterrows():
        street = streets[row["street"]]
        assert street.covers(row.geometry), gid
        assert row["catchment"].covers(row.geometry), f"{gid} lies in its catchment"
        # catchments are clipped to the street (allow the 1 cm snapping of set_precision)
        assert row["catchment"].difference(street).area < 1e-10, gid


def test_ref004_gauge_grid_is_the_grid_containing_it(reference, demo_areas) -> None:
    grids = demo_areas.grids
    pos = GridLocator(grids.geometry.to_numpy()).locate(
        reference.gauges.geometry.x.to_numpy(), reference.gauges.geometry.y.to_numpy()
    )
    assert (pos >= 0).all()
    assert reference.gauges["grid_id"].tolist() == grids.index[pos].tolist()


def test_ref005_gauge_thresholds_are_ordered(reference) -> None:
    g = reference.gauges
    assert (g["normal_m"] < g["warning_m"]).all()
    assert (g["warning_m"] < g["danger_m"]).all()
    assert (g["rise_m_per_h"] > 0).all()
    river = g[g["river"] != ""]
    assert len(river) >= 3, "some gauges lie on rivers"
    rivers = shapely.union_all(reference.rivers.geometry.values)
    assert (shapely.distance(river.geometry.values, rivers) < 1e-6).all()


def test_ref006_sites_and_zones_do_not_overlap(reference) -> None:
    shapes = [
        (f"{name}:{i}", geom)
        for name in ("building_sites", "disposal_sites", "forbidden_zones")
        for i, geom in getattr(reference, name).geometry.items()
    ]
    clashes = [(a, b) for (a, ga), (b, gb) in combinations(shapes, 2) if ga.intersects(gb)]
    assert clashes == []


def test_ref007_round_trip_is_exact(reference) -> None:
    data = reference.to_bytes()
    back = ReferenceData.from_bytes(data)
    assert back.to_bytes() == data
    assert back.version == reference.version
    assert back.truck_hours == reference.truck_hours
    for name in LAYERS:
        ours, theirs = getattr(reference, name), getattr(back, name)
        assert_geodataframe_equal(theirs, ours, check_less_precise=False)
        assert shapely.equals_exact(theirs.geometry.values, ours.geometry.values, 0).all()
    assert shapely.equals_exact(
        back.gauges["catchment"].values, reference.gauges["catchment"].values, 0
    ).all()


def test_ref008_bad_bytes_raise_value_error() -> None:
    with pytest.raises(ValueError, match="not serialised"):
        ReferenceData.from_bytes(b"not gzip")
    with pytest.raises(ValueError, match="format marker"):
        ReferenceData.from_bytes(gzip.compress(b'{"format": "cockpit-areas"}'))


def test_ref009_deterministic_for_a_seed(reference, demo_areas) -> None:
    again = generate_reference(demo_areas, seed=7)
    assert again.version == reference.version
    assert again.to_bytes() == reference.to_bytes()
    assert generate_reference(demo_areas, seed=8).version != reference.version


def test_ref010_permitted_truck_hours_span_midnight(reference) -> None:
    allowed = [reference.truck_hours_allow(h) for h in np.arange(0, 24, 0.5)]
    hours = np.arange(0, 24, 0.5)
    assert all(ok == (h >= 20 or h < 6) for ok, h in zip(allowed, hours, strict=True))


def test_ref011_reference_module_imports_neither_dash_nor_redis() -> None:
    code = (
        "import sys, geo.reference; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dash', 'redis', 'flask')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
