"""Grid file import: good files in several formats and CRSs, each bad case, repair, overlaps."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon, box

from geo.areas import AreaSet
from geo.demo_city import generate_demo_city
from geo.grid_import import GridFileError, read_grid_file


@pytest.fixture(scope="module")
def city() -> AreaSet:
    return generate_demo_city()


@pytest.fixture(scope="module")
def grid_frame(city: AreaSet) -> gpd.GeoDataFrame:
    """The demo city's grids as a file would hold them: grids only, parents by id."""
    g = city.grids.reset_index()
    return g[["id", "parent", "name_zh", "name_en", "geometry"]]


def _tiny(rows: list[tuple[str, Polygon]], crs: str | None = "EPSG:4326") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": [r[0] for r in rows], "name": [r[0] for r in rows]},
        geometry=[r[1] for r in rows],
        crs=crs,
    )


def _grid(x: float, y: float, size: float = 0.01) -> Polygon:
    return box(120.2 + x, 31.6 + y, 120.2 + x + size, 31.6 + y + size)


def test_imp001_good_geojson(tmp_path: Path, grid_frame: gpd.GeoDataFrame) -> None:
    path = tmp_path / "grids.geojson"
    grid_frame.to_file(path)
    steps: list[tuple[str, int, int]] = []
    areas, report = read_grid_file(path, progress=lambda s, d, t: steps.append((s, d, t)))
    assert report.rows == 757
    assert report.levels["grid"] == 757
    assert report.levels["community"] == 153  # parents built by dissolving their grids
    assert report.repaired == report.overlaps == report.gaps == 0
    assert report.reprojected_from is None
    assert any("dissolving" in w for w in report.warnings)
    assert list(areas.grids.index) == list(grid_frame["id"].sort_values())
    assert areas.frame.at["wx-hs-03-003-02", "name_zh"] == "堰桥第3社区第2网格"
    assert {s for s, _, _ in steps} >= {"read", "validate", "repair", "overlap check"}
    # the dissolved community is exactly its grids
    comm = areas.frame.geometry["wx-hs-03-003"]
    kids = np.asarray(areas.frame.geometry[areas.children("wx-hs-03-003")].values, dtype=object)
    assert abs(comm.area - shapely.area(kids).sum()) / comm.area < 1e-9


def test_imp002_good_geopackage_full_hierarchy(tmp_path: Path, city: AreaSet) -> None:
    path = tmp_path / "city.gpkg"
    frame = city.frame[city.frame["level"] != "special"].reset_index().drop(columns="level")
    frame.to_file(path, layer="areas")
    areas, report = read_grid_file(path)
    # levels inferred from depth: grid, community, street, district, city
    assert areas.root_id == "wx"
    assert report.levels == {"grid": 757, "community": 153, "street": 12, "district": 2, "city": 1}
    assert areas.level_of("wx-hs-03") == "street"
    assert report.gaps == 0 and report.overlaps == 0


def test_imp003_reprojected_from_web_mercator(tmp_path: Path, grid_frame: gpd.GeoDataFrame) -> None:
    path = tmp_path / "grids_3857.gpkg"
    grid_frame.to_crs(3857).to_file(path)
    areas, report = read_grid_file(path)
    assert report.reprojected_from == "EPSG:3857"
    assert areas.frame.crs.to_epsg() == 4326
    orig = grid_frame.set_index("id").geometry
    got = areas.grids.geometry
    # web mercator round trip moves vertices by far less than a millimetre
    before = shapely.get_coordinates(np.asarray(orig.loc[got.index].values, dtype=object))
    after = shapely.get_coordinates(np.asarray(got.values, dtype=object))
    assert np.allclose(before, after, atol=1e-9)
    assert report.overlaps == 0 and report.gaps == 0


def test_imp004_flat_single_level(tmp_path: Path, grid_frame: gpd.GeoDataFrame) -> None:
    path = tmp_path / "flat.geojson"
    flat = grid_frame[["id", "name_zh", "geometry"]].rename(columns={"id": "GRID_ID"})
    flat.to_file(path)
    areas, report = read_grid_file(path)
    assert report.levels == {"grid": 757, "city": 1}
    root = areas.root_id
    assert areas.level_of(root) == "city"
    assert len(areas.children(root)) == 757
    assert "wx-hs-01-001-01" in areas  # GRID_ID found case-insensitively


def test_imp005_mapped_columns(tmp_path: Path) -> None:
    path = tmp_path / "mapped.geojson"
    frame = _tiny([("a", _grid(0, 0)), ("b", _grid(0.01, 0))])
    frame = frame.rename(columns={"id": "bianhao", "name": "mingcheng"})
    frame.to_file(path)
    areas, _ = read_grid_file(path, id_col="bianhao", name_col="mingcheng")
    assert sorted(areas.grids.index) == ["a", "b"]


def test_imp006_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GridFileError, match="no such file") as err:
        read_grid_file(tmp_path / "nope.geojson")
    assert err.value.exit_code == 2


def test_imp007_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    path.write_text("this is { not geojson", encoding="utf-8")
    with pytest.raises(GridFileError, match="cannot read") as err:
        read_grid_file(path)
    assert err.value.exit_code == 3
    assert "\n" not in str(err.value)


def test_imp008_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    with pytest.raises(GridFileError, match="no rows") as err:
        read_grid_file(path)
    assert err.value.exit_code == 3


def test_imp009_missing_id_column_names_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    frame = _tiny([("a", _grid(0, 0))]).rename(columns={"id": "label"})
    frame["pop"] = 3
    frame.to_file(path)
    with pytest.raises(GridFileError) as err:
        read_grid_file(path)
    msg = str(err.value)
    assert err.value.exit_code == 4
    assert "--id-col" in msg and "label" in msg and "pop" in msg and "grids.geojson" in msg


def test_imp010_flag_names_absent_column(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    _tiny([("a", _grid(0, 0))]).to_file(path)
    with pytest.raises(GridFileError, match="--parent-col") as err:
        read_grid_file(path, parent_col="parent_code")
    assert err.value.exit_code == 4


def test_imp011_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    _tiny([("a", _grid(0, 0)), ("b", _grid(0.01, 0)), ("a", _grid(0.02, 0))]).to_file(path)
    with pytest.raises(GridFileError, match="duplicate ids") as err:
        read_grid_file(path)
    assert err.value.exit_code == 5
    assert "a" in str(err.value).split("duplicate ids")[1]


def test_imp012_non_polygon_geometry(tmp_path: Path) -> None:
    path = tmp_path / "grids.gpkg"
    frame = gpd.GeoDataFrame(
        {"id": ["a", "pt", "ln"]},
        geometry=[_grid(0, 0), Point(120.3, 31.7), LineString([(120.3, 31.7), (120.31, 31.71)])],
        crs="EPSG:4326",
    )
    frame.to_file(path)
    with pytest.raises(GridFileError, match="without polygon geometry") as err:
        read_grid_file(path)
    assert err.value.exit_code == 6
    assert "pt" in str(err.value) and "ln" in str(err.value)


def test_imp013_bow_tie_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    x, y = 120.2, 31.6
    bow_tie = Polygon([(x, y), (x + 0.01, y + 0.01), (x + 0.01, y), (x, y + 0.01)])
    assert not bow_tie.is_valid
    _tiny([("bow", bow_tie), ("ok", _grid(0.02, 0))]).to_file(path)
    areas, report = read_grid_file(path)
    assert report.repaired == 1
    fixed = areas.frame.geometry["bow"]
    assert fixed.is_valid and fixed.geom_type in ("Polygon", "MultiPolygon")
    assert fixed.area == pytest.approx(0.5 * 0.01 * 0.01, rel=1e-6)
    assert any("repaired" in w for w in report.warnings)


def test_imp014_overlapping_grids_reported(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    # b overlaps a by half; c only touches b (no overlap)
    _tiny([("a", _grid(0, 0)), ("b", _grid(0.005, 0)), ("c", _grid(0.015, 0))]).to_file(path)
    _, report = read_grid_file(path)
    assert report.overlaps == 1
    # 0.005 x 0.01 degrees at 31.6 N is about 474 m x 1109 m
    assert 4.5e5 < report.overlap_area_m2 < 6.0e5
    assert any("a/b" in w for w in report.warnings)


def test_imp015_gap_against_parent(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    parent = _grid(0, 0, 0.02)
    frame = gpd.GeoDataFrame(
        {
            "id": ["c1", "g1", "g2", "g3"],
            "parent": [None, "c1", "c1", "c1"],
        },
        # the parent's north-east quarter has no grid
        geometry=[parent, _grid(0, 0), _grid(0.01, 0), _grid(0, 0.01)],
        crs="EPSG:4326",
    )
    frame.to_file(path)
    areas, report = read_grid_file(path)
    assert areas.level_of("c1") == "community"
    assert report.gaps == 1 and report.gap_area_m2 > 1e6


def test_imp016_hole_in_flat_file(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    cells = [(f"g{i}{j}", _grid(0.01 * i, 0.01 * j)) for i in range(3) for j in range(3)]
    cells = [c for c in cells if c[0] != "g11"]  # the middle one is missing
    _tiny(cells).to_file(path)
    _, report = read_grid_file(path)
    assert report.gaps == 1


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_imp017_no_crs_projected_coordinates(tmp_path: Path) -> None:
    shp = tmp_path / "grids.shp"
    _tiny([("a", box(500000, 3500000, 501000, 3501000))], crs=None).to_file(shp)
    with pytest.raises(GridFileError, match="no CRS") as err:
        read_grid_file(shp)
    assert err.value.exit_code == 7
    _tiny([("a", _grid(0, 0))], crs=None).to_file(tmp_path / "ll.shp")
    areas, report = read_grid_file(tmp_path / "ll.shp")
    assert any("assumed" in w for w in report.warnings)
    assert len(areas.grids) == 1


def test_imp018_level_column_with_aliases(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    frame = gpd.GeoDataFrame(
        {
            "code": ["s1", "g1", "g2"],
            "parent_code": [None, "s1", "s1"],
            "level": ["街道", "网格", "grid"],
        },
        geometry=[_grid(0, 0, 0.02), _grid(0, 0, 0.02), _grid(0, 0, 0.02)],
        crs="EPSG:4326",
    )
    frame.to_file(path)
    areas, report = read_grid_file(path)
    assert areas.level_of("s1") == "street"
    assert areas.level_of("g1") == "grid"
    assert report.overlaps == 1  # g1 and g2 are the same square


def test_imp019_bad_level_value(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    frame = _tiny([("a", _grid(0, 0))])
    frame["level"] = "province"
    frame.to_file(path)
    with pytest.raises(GridFileError, match="--level-col") as err:
        read_grid_file(path)
    assert err.value.exit_code == 4


def test_imp020_numeric_ids(tmp_path: Path) -> None:
    path = tmp_path / "grids.gpkg"
    frame = gpd.GeoDataFrame(
        {"gid": [101, 102]}, geometry=[_grid(0, 0), _grid(0.01, 0)], crs="EPSG:4326"
    )
    frame.to_file(path)
    areas, _ = read_grid_file(path)
    assert list(areas.grids.index) == ["101", "102"]
    assert shapely.equals(
        areas.frame.geometry[areas.root_id], _grid(0, 0, 0.01).union(_grid(0.01, 0))
    )
