"""Demo city generator and AreaSet: counts, determinism, exact tiling, serialisation."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import box

from geo.areas import LEVELS, AreaSet
from geo.demo_city import generate_demo_city, scale_for_grids

HUISHAN_STREETS = {"洛社镇", "阳山镇", "堰桥街道", "长安街道", "钱桥街道", "前洲街道", "玉祁街道"}


@pytest.fixture(scope="module")
def city() -> AreaSet:
    return generate_demo_city()


def _tiling_children(areas: AreaSet, area_id: str) -> list[str]:
    return [c for c in areas.children(area_id) if areas.level_of(c) != "special"]


def test_gen001_huishan_counts(city: AreaSet) -> None:
    streets = city.children("wx-hs")
    streets = [s for s in streets if city.level_of(s) == "street"]
    assert len(streets) == 7
    assert {city.frame.at[s, "name_zh"] for s in streets} == HUISHAN_STREETS
    assert len(city.descendants("wx-hs", level="community")) == 113
    assert len(city.descendants("wx-hs", level="grid")) == 557
    special = city.descendants("wx-hs", level="special")
    assert len(special) == 60
    assert set(city.frame.loc[special, "kind"]) == {"school", "park", "industrial"}


def test_gen002_second_district(city: AreaSet) -> None:
    districts = city.children("wx")
    assert districts == ["wx-hs", "wx-lx"]
    assert 30 <= len(city.descendants("wx-lx", level="community")) <= 50
    assert 150 <= len(city.descendants("wx-lx", level="grid")) <= 250
    hs, lx = city.frame.geometry["wx-hs"], city.frame.geometry["wx-lx"]
    assert shapely.intersection(hs, lx).area < 1e-12  # touch, never overlap
    # Liangxi lies south-east of Huishan
    assert lx.centroid.x > hs.centroid.x and lx.centroid.y < hs.centroid.y


def test_gen003_determinism(city: AreaSet) -> None:
    again = generate_demo_city()
    assert again.to_bytes() == city.to_bytes()
    assert again.version == city.version
    other = generate_demo_city(seed=8)
    assert other.to_bytes() != city.to_bytes()
    assert other.version != city.version


@pytest.mark.parametrize("level", ["city", "district", "street", "community"])
def test_gen004_children_tile_parent(city: AreaSet, level: str) -> None:
    geom = city.frame.geometry
    for area_id in city.frame.index[city.frame["level"] == level]:
        kids = _tiling_children(city, area_id)
        assert kids, area_id
        parent = geom[area_id]
        parts = np.asarray(geom[kids].values, dtype=object)
        union = shapely.union_all(parts)
        rel = shapely.symmetric_difference(union, parent).area / parent.area
        assert rel < 1e-9, (area_id, rel)
        assert abs(shapely.area(parts).sum() - parent.area) / parent.area < 1e-9, area_id


@pytest.mark.parametrize("level", ["district", "street", "community", "grid"])
def test_gen005_no_overlaps_within_level(city: AreaSet, level: str) -> None:
    parts = np.asarray(city.frame.geometry[city.frame["level"] == level].values, dtype=object)
    tree = shapely.STRtree(parts)
    left, right = tree.query(parts, predicate="intersects")
    keep = left < right
    overlap = shapely.area(shapely.intersection(parts[left[keep]], parts[right[keep]]))
    assert overlap.max(initial=0.0) < 1e-14
    # the strict check: shared edges are identical, so GEOS sees a valid coverage
    assert shapely.coverage_is_valid(parts)


def test_gen006_huishan_inside_wuxi_box(city: AreaSet) -> None:
    wuxi = box(120.05, 31.55, 120.45, 31.85)
    assert wuxi.contains(city.frame.geometry["wx-hs"])
    hs = city.frame.geometry["wx-hs"]
    for sp in city.descendants("wx-hs", level="special"):
        assert shapely.difference(city.frame.geometry[sp], hs).area < 1e-15, sp


def test_gen007_plausible_cells(city: AreaSet) -> None:
    geoms = np.asarray(city.frame.geometry.values, dtype=object)
    assert set(shapely.get_type_id(geoms[city.frame["level"] != "city"])) == {3}  # all Polygon
    grids = np.asarray(city.grids.geometry.values, dtype=object)
    area = shapely.area(grids)
    assert area.min() > 0.1 * np.median(area)  # no slivers
    compact = 4 * np.pi * area / shapely.length(grids) ** 2
    assert compact.min() > 0.3


def test_gen008_ids_and_names(city: AreaSet) -> None:
    grid = "wx-hs-03-003-02"
    assert grid in city
    assert city.ancestors(grid) == ["wx-hs-03-003", "wx-hs-03", "wx-hs", "wx"]
    row = city.frame.loc[grid]
    assert row["name_zh"] == "堰桥第3社区第2网格"
    assert row["name_en"] == "Yanqiao C3 Grid 2"
    assert city.frame.at["wx-hs-03-003", "name_en"] == "Yanqiao Community 3"
    assert city.frame.at["wx", "name_en"] == "Wuxi (demo)"
    assert city.root_id == "wx"
    assert city.frame.index[city.frame["level"] == "special"][0] == "wx-hs-sp-001"


def test_gen009_sorted_frame_and_grids(city: AreaSet) -> None:
    order = {lvl: i for i, lvl in enumerate((*LEVELS, "special"))}
    keys = [(order[lvl], i) for i, lvl in zip(city.frame.index, city.frame["level"], strict=True)]
    assert keys == sorted(keys)
    assert list(city.grids.index) == sorted(city.grids.index)
    assert (city.grids["level"] == "grid").all()


def test_gen010_scaled_city_count() -> None:
    scale = scale_for_grids(5000)
    big = generate_demo_city(scale=scale)
    assert 5000 <= len(big.grids) < 5100
    assert len(big.children("wx-hs")) == 7 + 0  # streets stay fixed (specials hang off streets)
    assert shapely.coverage_is_valid(np.asarray(big.grids.geometry.values, dtype=object))



def test_gen011_fifty_thousand_grids() -> None:
    big = generate_demo_city(scale=scale_for_grids(50_000))
    assert len(big.grids) >= 50_000


def test_gen012_bytes_round_trip(city: AreaSet) -> None:
    data = city.to_bytes()
    back = AreaSet.from_bytes(data)
    assert back.to_bytes() == data
    assert back.version == city.version
    assert list(back.frame.index) == list(city.frame.index)
    assert back.frame.drop(columns="geometry").equals(city.frame.drop(columns="geometry"))
    assert all(shapely.equals_identical(back.frame.geometry.values, city.frame.geometry.values))
    assert back.frame.at["wx", "parent"] is None


def test_gen013_from_bytes_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a serialised AreaSet"):
        AreaSet.from_bytes(b"\x80\x04 definitely not gzip")


def test_gen014_geojson_has_parent_names(city: AreaSet) -> None:
    fc = city.to_geojson("grid", ids={"wx-hs-03-003-02", "wx-lx-01-001-01"}, precision=5)
    assert fc["type"] == "FeatureCollection"
    by_id = {f["id"]: f for f in fc["features"]}
    assert set(by_id) == {"wx-hs-03-003-02", "wx-lx-01-001-01"}
    props = by_id["wx-hs-03-003-02"]["properties"]
    assert props["street_zh"] == "堰桥街道" and props["street_en"] == "Yanqiao"
    assert props["community_zh"] == "堰桥第3社区"
    assert props["district_zh"] == "惠山区" and props["district_en"] == "Huishan"
    assert props["parent"] == "wx-hs-03-003" and props["level"] == "grid"
    coords = np.array(by_id["wx-hs-03-003-02"]["geometry"]["coordinates"][0])
    assert np.allclose(coords, np.round(coords, 5))
    json.dumps(fc)  # plain JSON types only


def test_gen015_geojson_several_levels(city: AreaSet) -> None:
    fc = city.to_geojson(["district", "street"])
    assert len(fc["features"]) == 2 + 12
    assert "street_zh" not in fc["features"][0]["properties"]
    with pytest.raises(ValueError, match="unknown level"):
        city.to_geojson("county")


def test_gen016_hierarchy_queries(city: AreaSet) -> None:
    assert city.level_of("wx-hs-01") == "street"
    assert city.descendants("wx-hs-01-001", level="grid") == city.children("wx-hs-01-001")
    assert len(city.descendants("wx", level="grid")) == len(city.grids)
    table = city.grid_ancestors_table()
    assert list(table.columns) == ["community", "street", "district", "city"]
    assert list(table.index) == list(city.grids.index)
    assert table.loc["wx-lx-02-001-01"].tolist() == ["wx-lx-02-001", "wx-lx-02", "wx-lx", "wx"]


def _frame(rows: list[tuple]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "id": [r[0] for r in rows],
            "level": [r[1] for r in rows],
            "parent": [r[2] for r in rows],
            "name_zh": [r[0] for r in rows],
            "name_en": [r[0] for r in rows],
        },
        geometry=[box(0, 0, 1, 1)] * len(rows),
        crs="EPSG:4326",
    )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("c", "city", None), ("g", "grid", "c"), ("g", "grid", "c")], "duplicate area ids"),
        ([("c", "city", None), ("g", "grid", "x")], "unknown parent"),
        ([("c", "city", None), ("g", "county", "c")], "invalid level"),
        ([("c", "city", None), ("d", "city", None)], "exactly one root"),
        ([("c", "city", None), ("g", "grid", "c"), ("h", "grid", "g")], "cannot have parent"),
    ],
)
def test_are001_validation_errors(rows: list[tuple], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AreaSet(_frame(rows))
