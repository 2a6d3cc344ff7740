"""Reference data files: export and import round trips, each bad case with its exit code and one
line, repairs and defaults, and an import the running app, worker and alert engine see at once.
Files are real files in tmp_path; Redis is the real test server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import redis
import shapely
from geopandas.testing import assert_geodataframe_equal
from shapely.geometry import MultiPoint, Point, Polygon, box

from cockpit.alerts import store
from cockpit.alerts.engine import AlertEngine, EngineConfig
from cockpit.areastore import Geography, known_gauges, load_reference, save_reference
from cockpit.cli import main
from cockpit.contract import GAUGES
from geo.areas import AreaSet
from geo.reference import LAYERS, ReferenceData, generate_reference
from geo.reference_import import (
    ReferenceFileError,
    read_reference_files,
    reference_frame,
    write_reference_file,
)
from tests.conftest import REPO

T0 = 1_781_000_000.0


@pytest.fixture(scope="module")
def demo_reference(demo_areas: AreaSet) -> ReferenceData:
    return generate_reference(demo_areas, seed=7)


@pytest.fixture
def stored(r: redis.Redis, loaded_city: Geography, demo_reference: ReferenceData) -> Geography:
    """The demo city and its reference data in Redis."""
    save_reference(r, demo_reference)
    return loaded_city


def cli(capsys: pytest.CaptureFixture[str], redis_url: str, *args: str) -> tuple[int, str, str]:
    """Run ``cockpit ARGS`` in this process against the test Redis: (exit code, out, err)."""
    code = main([*args, "--redis-url", redis_url])
    out, err = capsys.readouterr()
    return code, out, err


def same_data(a: ReferenceData, b: ReferenceData) -> None:
    assert a.version == b.version
    assert a.truck_hours == b.truck_hours
    for name in LAYERS:
        assert_geodataframe_equal(getattr(a, name), getattr(b, name), check_less_precise=False)
    assert shapely.equals_exact(a.gauges["catchment"].values, b.gauges["catchment"].values, 0).all()


# -- good files ----------------------------------------------------------------------------------


def test_rim001_export_then_import_gives_the_same_data(
    tmp_path: Path, r: redis.Redis, redis_url: str, stored: Geography,
    demo_reference: ReferenceData, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for name in ("reference.geojson", "reference.gpkg"):
        path = tmp_path / name
        code, out, err = cli(capsys, redis_url, "reference", "export", str(path))
        assert code == 0, err
        assert out.startswith("Wrote 95 features") and path.stat().st_size > 10_000
        save_reference(r, generate_reference(stored.areas, seed=8))  # something else meanwhile
        assert load_reference(r).version != demo_reference.version  # type: ignore[union-attr]
        code, out, err = cli(capsys, redis_url, "reference", "import", str(path))
        assert code == 0, err
        assert "Read 1 file, 95 features: 32 gauge, 32 catchment, 20 building_site, " in out
        assert f"Stored as reference version {demo_reference.version[:12]}" in out
        same_data(load_reference(r), demo_reference)  # type: ignore[arg-type]


def test_rim002_several_files_layers_named_by_kind_and_another_crs(
    tmp_path: Path, demo_areas: AreaSet, demo_reference: ReferenceData
) -> None:
    frame = reference_frame(demo_reference)
    gpkg = tmp_path / "flood.gpkg"
    for kind in ("gauge", "catchment", "river", "truck_hours"):
        layer = frame[frame["kind"] == kind].drop(columns="kind").to_crs(3857)
        layer.to_file(gpkg, layer=kind if kind == "truck_hours" else kind + "s")
    sites = tmp_path / "sites.geojson"
    frame[frame["kind"].str.endswith(("site", "zone"))].to_file(sites)
    steps: list[str] = []
    got, report = read_reference_files([gpkg, sites], demo_areas,
                                       progress=lambda s, _d, _t: steps.append(s))  # fmt: skip
    # 4326 -> 3857 -> 4326 moves a point by ~1e-9 degrees: the 1 cm snapping takes it back
    same_data(got, demo_reference)
    assert report.files == 2 and report.features == 95
    assert len(report.reprojected) == 3 and all("EPSG:3857" in s for s in report.reprojected)
    assert {"read", "check", "locate"} <= set(steps)


def test_rim003_defaults_and_repairs_are_reported(tmp_path: Path, demo_areas: AreaSet) -> None:
    grids = demo_areas.grids
    inside = grids.geometry.iloc[100].representative_point()
    bow_tie = Polygon([(120.30, 31.70), (120.31, 31.71), (120.31, 31.70), (120.30, 31.71)])
    zone = box(120.305, 31.695, 120.32, 31.70)
    rows = [
        ("gauge", "G-1", MultiPoint([inside]), {"warning": 3.0, "danger": 3.5}),
        ("gauge", "G-2", Point(121.5, 31.0), {"warning": 1.0, "danger": 2.0,
                                              "rise_per_hour": 0.2}),  # fmt: skip
        ("catchment", None, box(121.49, 30.99, 121.51, 31.01), {"gauge": "G-2"}),
        ("building_site", "B-1", bow_tie, {"name": "工地一"}),
        ("forbidden_zone", "Z-1", zone, {"reason": "school"}),
    ]
    path = tmp_path / "small.geojson"
    gpd.GeoDataFrame(
        [{"kind": k, "id": i, **v} for k, i, _g, v in rows],
        geometry=[g for _k, _i, g, _v in rows], crs="EPSG:4326",
    ).to_file(path)  # fmt: skip
    got, report = read_reference_files([path], demo_areas, truck_hours="07:30-18:00")
    g1 = got.gauges.loc["G-1"]
    pos = int(np.flatnonzero(grids.geometry.contains(inside))[0])
    assert g1["grid_id"] == grids.index[pos]
    assert g1["catchment"].equals(grids.geometry.iloc[pos]), "no catchment: its own grid"
    assert (g1["name_zh"], g1["name_en"]) == ("G-1", "G-1")
    assert g1["rise_m_per_h"] == 0.3 and g1["normal_m"] == 2.5
    street = demo_areas.grid_ancestors_table().loc[grids.index[pos], "street"]
    assert g1["street"] == street != ""
    assert report.gauges_outside == 1 and got.gauges.loc["G-2", "grid_id"] == ""
    assert report.repaired == 1 and got.building_sites.loc["B-1"].geometry.is_valid
    assert got.building_sites.loc["B-1", "name_zh"] == "工地一"
    assert got.truck_hours == ("07:30", "18:00")
    text = "\n".join(report.warnings)
    for expected in ("(gauge G-1): a one-part MultiPoint",
                     "1 gauge(s) give no rise_per_hour; their rate-of-rise alarm is 0.3 m/h: G-1",
                     "outside every grid (their catchments still count): G-2",
                     "have no catchment; their alerts cover the grid they lie in: G-1",
                     "(building_site B-1): repaired", "building site B-1 overlaps forbidden "
                     "zone Z-1"):  # fmt: skip
        assert expected in text, text


def test_rim004_an_import_replaces_the_set_the_engine_worker_and_app_use_at_once(
    tmp_path: Path, r: redis.Redis, redis_url: str, stored: Geography,
    demo_reference: ReferenceData, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    now = [T0]
    engine = AlertEngine(r, clock=lambda: now[0], config=EngineConfig())

    def reading(level: float) -> None:
        now[0] += 60
        r.xadd(GAUGES, {"gauge": "HS-G01", "ts": str(int(now[0] * 1000)), "level_m": str(level)})
        engine.step()

    reading(2.6)  # below the demo warning level of 3.08 m
    assert store.all_alerts(r) == []
    frame = reference_frame(demo_reference)
    g01 = (frame["kind"] == "gauge") & (frame["id"] == "HS-G01")
    frame.loc[g01, ["warning", "danger"]] = [2.5, 3.0]
    frame = frame[(frame["id"] != "HS-G02") & (frame["gauge"] != "HS-G02")]
    path = tmp_path / "lower.geojson"
    frame.to_file(path)
    code, _out, err = cli(capsys, redis_url, "reference", "import", str(path))
    assert code == 0, err
    new = load_reference(r)
    assert new is not None and new.gauges.loc["HS-G01", "warning_m"] == 2.5
    assert known_gauges(r) == set(new.gauges.index) and "HS-G02" not in new.gauges.index
    reading(2.62)  # the same engine, the very next batch: the new warning level counts
    (alert,) = store.all_alerts(r)
    assert (alert.kind, alert.source_ref) == ("flood_warning", "HS-G01")


def test_rim005_the_example_in_the_docs_imports(tmp_path: Path, demo_areas: AreaSet) -> None:
    text = (REPO / "docs" / "reference.md").read_text(encoding="utf-8")
    example = re.search(r"```json\n(.*?)```", text, re.S)
    assert example is not None
    path = tmp_path / "example.geojson"
    path.write_text(example.group(1), encoding="utf-8")
    json.loads(example.group(1))
    got, report = read_reference_files([path], demo_areas)
    assert report.kinds == {"gauge": 1, "catchment": 1, "disposal_site": 1, "truck_hours": 1}
    assert got.gauges.loc["HS-G07", ["warning_m", "danger_m", "rise_m_per_h"]].tolist() == [
        3.8, 4.3, 0.25]  # fmt: skip
    assert got.gauges.loc["HS-G07", "grid_id"] != ""


def test_rim006_reference_demo_stores_the_generated_set(
    r: redis.Redis, redis_url: str, loaded_city: Geography, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, redis_url, "reference", "demo", "--seed", "7")
    assert code == 0, err
    assert "32 gauges" in out
    expected = generate_reference(loaded_city.areas, seed=7)  # over the grids as stored
    assert load_reference(r).version == expected.version  # type: ignore[union-attr]


def test_rim007_export_refuses_without_data_or_with_an_unknown_file_type(
    tmp_path: Path, r: redis.Redis, redis_url: str, loaded_city: Geography,
    demo_reference: ReferenceData, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code, _out, err = cli(capsys, redis_url, "reference", "export", str(tmp_path / "a.geojson"))
    assert code == 1 and "no reference data stored" in err and err.count("\n") == 1
    save_reference(r, demo_reference)
    code, _out, err = cli(capsys, redis_url, "reference", "export", str(tmp_path / "a.kml"))
    assert code == 2 and "name it .geojson or .gpkg" in err and err.count("\n") == 1
    with pytest.raises(ReferenceFileError):
        write_reference_file(demo_reference, tmp_path / "b.shp")


# -- bad files: one exit code and one line each -------------------------------------------------

Edit = Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]


def _row(frame: gpd.GeoDataFrame, kind: str, ident: str, col: str = "id") -> int:
    return int(np.flatnonzero((frame["kind"] == kind) & (frame[col] == ident))[0])


def _set(which: str, ident: str, **values: object) -> Edit:
    """Set ``values`` on the feature of kind ``which`` with id (a catchment: gauge) ``ident``."""

    def edit(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        i = _row(frame, which, ident, "gauge" if which == "catchment" else "id")
        for col, value in values.items():
            if col != "geometry" and not isinstance(value, float):
                frame[col] = frame[col].astype(object)
            if col == "geometry":
                geoms = frame.geometry.to_numpy().copy()
                geoms[i] = value
                frame = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs=frame.crs))
            else:
                frame.iloc[i, frame.columns.get_loc(col)] = value
        return frame

    return edit


def _drop_catchment_of(gauge: str, then: Edit) -> Edit:
    return lambda f: then(f[~((f["kind"] == "catchment") & (f["gauge"] == gauge))])


def _second_hours(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    extra = frame[frame["kind"] == "truck_hours"].assign(hours="22:00-05:00")
    return gpd.GeoDataFrame(
        [*frame.to_dict("records"), *extra.to_dict("records")], geometry="geometry", crs=frame.crs
    )


BAD: list[tuple[str, Edit, int, tuple[str, ...]]] = [
    ("unknown_kind", _set("building_site", "BS-001", kind="pump"), 4,
     ("feature", "kind 'pump' is not one of gauge, catchment")),
    ("no_kind_column", lambda f: f.drop(columns="kind"), 4,
     ("no 'kind' column", "layer name 'bad'")),
    ("no_danger", _set("gauge", "HS-G01", danger=float("nan")), 4,
     ("(gauge HS-G01)", "field 'danger' is missing")),
    ("no_id", _set("building_site", "BS-001", id=None), 4, ("(building_site)", "no 'id'")),
    ("catchment_without_gauge", _set("catchment", "HS-G01", gauge=None), 4,
     ("(catchment)", "field 'gauge' is missing")),
    ("duplicate_id", _set("building_site", "BS-002", id="BS-001"), 5,
     ("(building_site BS-001)", "already used by", "ids must be unique")),
    ("two_catchments", _set("catchment", "HS-G02", gauge="HS-G01"), 5,
     ("gauge 'HS-G01' already has a catchment",)),
    ("two_truck_hours", _second_hours, 5, ("(truck_hours)", "differ from 20:00-06:00")),
    ("gauge_polygon", _set("gauge", "HS-G01", geometry=box(120.12, 31.72, 120.13, 31.73)), 6,
     ("(gauge HS-G01)", "geometry is a Polygon; a gauge must be a Point")),
    ("site_point", _set("disposal_site", "DS-001", geometry=Point(120.15, 31.67)), 6,
     ("(disposal_site DS-001)", "must be a Polygon or MultiPolygon")),
    ("zone_no_geometry", _set("forbidden_zone", "FZ-01", geometry=None), 6,
     ("(forbidden_zone FZ-01)", "no geometry")),
    ("warning_above_danger", _set("gauge", "HS-G01", warning=3.9), 8,
     ("(gauge HS-G01)", "warning 3.9 m is not below danger 3.74 m")),
    ("not_a_number", _set("gauge", "HS-G01", warning="high"), 8,
     ("(gauge HS-G01)", "warning 'high' is not a number")),
    ("rise_zero", _set("gauge", "HS-G01", rise_per_hour=0.0), 8,
     ("(gauge HS-G01)", "rise_per_hour 0 must be above 0")),
    ("normal_above_warning", _set("gauge", "HS-G01", normal=3.5), 8,
     ("(gauge HS-G01)", "normal 3.5 m is not below warning 3.08 m")),
    ("bad_hours", lambda f: f.assign(hours=f["hours"].where(f["hours"].isna(), "8pm-6am")), 8,
     ("(truck_hours)", "'8pm-6am' are not HH:MM-HH:MM")),
    ("catchment_of_unknown_gauge", _set("catchment", "HS-G01", gauge="XX-G99"), 9,
     ("(catchment)", "gauge 'XX-G99' is not a gauge in the files")),
    ("gauge_outside_without_catchment",
     _drop_catchment_of("HS-G01", _set("gauge", "HS-G01", geometry=Point(121.5, 31.0))), 9,
     ("(gauge HS-G01)", "outside every grid and has no catchment")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "edit", "code", "words"), BAD, ids=[b[0] for b in BAD])
def test_rim010_each_bad_file_exits_with_its_code_and_one_line(
    case: str, edit: Edit, code: int, words: tuple[str, ...], tmp_path: Path,
    r: redis.Redis, redis_url: str, stored: Geography, demo_reference: ReferenceData,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path = tmp_path / "bad.geojson"
    edit(reference_frame(demo_reference)).to_file(path)
    got, out, err = cli(capsys, redis_url, "reference", "import", str(path))
    assert got == code, err
    assert err.startswith("cockpit reference import: bad.geojson") and err.count("\n") == 1
    assert "Traceback" not in err and out == ""
    for word in words:
        assert word in err, err
    assert load_reference(r).version == demo_reference.version  # type: ignore[union-attr]


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_rim011_files_that_cannot_be_read_or_placed(
    tmp_path: Path, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str],
    demo_areas: AreaSet,
) -> None:  # fmt: skip
    missing = tmp_path / "nope.geojson"
    code, _out, err = cli(capsys, redis_url, "reference", "import", str(missing))
    assert code == 2 and f"{missing}: no such file" in err and err.count("\n") == 1
    text = tmp_path / "notes.geojson"
    text.write_text("this is { not geojson", encoding="utf-8")
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    metres = tmp_path / "metres.gpkg"
    gpd.GeoDataFrame({"kind": ["building_site"], "id": ["B-1"]},
                     geometry=[box(500000, 3500000, 500100, 3500100)]).to_file(metres)  # fmt: skip
    good = tmp_path / "good.geojson"
    gpd.GeoDataFrame({"kind": ["building_site"], "id": ["B-1"]},
                     geometry=[box(120.30, 31.70, 120.301, 31.701)], crs="EPSG:4326").to_file(good)
    # no grids loaded yet: nothing to check the data against
    code, _out, err = cli(capsys, redis_url, "reference", "import", str(good))
    assert code == 1 and "no grids loaded" in err and err.count("\n") == 1
    from cockpit.areastore import save_areas

    save_areas(r, demo_areas)
    for path, code, words in (
        (text, 3, ("notes.geojson: cannot read as a vector file", "use GeoJSON or GeoPackage")),
        (empty, 3, ("empty.geojson: no features; nothing to import",)),
        (metres, 7, ("metres.gpkg: no CRS", "are not longitude/latitude")),
    ):
        got, _out, err = cli(capsys, redis_url, "reference", "import", str(path))
        assert got == code, err
        assert err.count("\n") == 1 and "Traceback" not in err
        for word in words:
            assert word in err, err
    code, out, err = cli(capsys, redis_url, "reference", "import", str(good), "--dry-run")
    assert code == 0 and "Dry run: nothing stored." in out and load_reference(r) is None
    code, _out, err = cli(capsys, redis_url, "reference", "import", str(good),
                          "--truck-hours", "06:00-06:00")  # fmt: skip
    assert code == 8 and "--truck-hours: hours '06:00-06:00' start and end at the same" in err
