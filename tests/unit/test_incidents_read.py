"""Reading single incidents for a scope (cockpit/incidents.py) against real Redis, with the real
worker applying the incidents written to the stream."""

from __future__ import annotations

import pytest
import redis
from shapely import get_coordinates

from cockpit.contract import INCIDENTS
from cockpit.incidents import incident_detail, recent_incidents, scope_streets
from cockpit.policy import User
from cockpit.worker import Worker

GRID = "wx-hs-01-001-01"  # the grid officer's grid
NEIGHBOUR = "wx-hs-01-002-01"  # same street, another community
OTHER_STREET = "wx-hs-02-001-01"
HOUR = 3_600_000

GRID_USER = User(id="user:g:1", name="g", level="grid", area_id=GRID)
STREET_USER = User(id="user:s:1", name="s", level="street", area_id="wx-hs-01")
WALL = User(id="wall:x", name="wall", level="wall", area_id="wx", is_wall=True)


def _point(geo, grid_id: str) -> tuple[float, float]:
    lon, lat = get_coordinates(geo.areas.frame.geometry.loc[grid_id].representative_point())[0]
    return float(lat), float(lon)


def _write(r: redis.Redis, geo, rows: list[dict]) -> None:
    """XADD each row (``grid`` is turned into a point inside it), then let the worker apply."""
    for row in rows:
        fields = {k: v for k, v in row.items() if k != "grid"}
        lat, lon = _point(geo, row["grid"])
        fields.update(lat=f"{lat:.7f}", lon=f"{lon:.7f}")
        r.xadd(INCIDENTS, fields)
    worker = Worker(r, name="t-inc", block_ms=10)
    worker.ensure_groups()
    for _ in range(100):
        worker.step()
        if worker.stats.applied + worker.stats.dead >= len(rows):
            break
    assert worker.stats.dead == 0 and worker.stats.applied == len(rows)


@pytest.fixture
def city(r, loaded_city):
    """Six incidents: three in the officer's grid, one next door, one in another street, and a
    petition (not visible to grid officers) in the officer's grid."""
    geo = loaded_city
    now = int(r.time()[0]) * 1000
    rows = [
        {"id": "a1", "ts": str(now - 10 * 60_000), "category": "dispute", "grid": GRID,
         "text": "Noise from a karaoke bar", "address": "Xicheng Road 88",
         "reporter": "Wang Fang 13800000000", "source": "hotline"},
        {"id": "a2", "ts": str(now - 3 * HOUR), "category": "traffic", "grid": GRID,
         "status": "handling", "text": "Broken traffic light", "address": "Huishan Ave 5"},
        {"id": "a3", "ts": str(now - 20 * HOUR), "category": "environment", "grid": GRID,
         "text": "Smoke from a workshop", "address": "KARAOKE lane 2", "reporter": "Li"},
        {"id": "a4", "ts": str(now - 60_000), "category": "petition", "grid": GRID,
         "text": "Petition about wages", "reporter": "Zhao"},
        {"id": "b1", "ts": str(now - 5 * 60_000), "category": "dispute", "grid": NEIGHBOUR,
         "text": "Parking quarrel", "reporter": "Sun"},
        {"id": "c1", "ts": str(now - 2 * 60_000), "category": "dispute", "grid": OTHER_STREET,
         "text": "Dispute elsewhere", "reporter": "Zhou"},
    ]  # fmt: skip
    _write(r, geo, rows)
    return geo, now


def _ids(records: list[dict]) -> list[str]:
    return [rec["id"] for rec in records]


def test_inc001_grid_user_sees_only_its_grid_newest_first(r, city):
    geo, now = city
    got = recent_incidents(r, geo, GRID_USER, now - 24 * HOUR, now)
    # a4 is a petition: not a grid officer's category; b1 and c1 lie in other grids
    assert _ids(got) == ["a1", "a2", "a3"]
    assert {rec["grid"] for rec in got} == {GRID}
    first = got[0]
    assert first["category"] == "dispute" and first["status"] == "new"
    assert first["text"] == "Noise from a karaoke bar" and first["address"] == "Xicheng Road 88"
    assert first["ts"] == now - 10 * 60_000 and first["source"] == "hotline"


def test_inc002_street_user_sees_its_street_and_every_category(r, city):
    geo, now = city
    got = recent_incidents(r, geo, STREET_USER, now - 24 * HOUR, now)
    assert _ids(got) == ["a4", "b1", "a1", "a2", "a3"]  # not c1: another street
    assert scope_streets(geo, "wx-hs-01") == ("wx-hs-01",)


def test_inc003_personal_data_removed_for_grid_kept_for_street(r, city):
    geo, now = city
    grid_view = recent_incidents(r, geo, GRID_USER, now - 24 * HOUR, now)
    assert all("reporter" not in rec for rec in grid_view)
    street_view = {rec["id"]: rec for rec in recent_incidents(r, geo, STREET_USER, 0, now)}
    assert street_view["a1"]["reporter"] == "Wang Fang 13800000000"
    assert street_view["b1"]["reporter"] == "Sun"
    assert "reporter" not in incident_detail(r, geo, GRID_USER, "a1")
    assert incident_detail(r, geo, STREET_USER, "a1")["reporter"] == "Wang Fang 13800000000"


def test_inc004_filters_category_status_time_and_text(r, city):
    geo, now = city
    since = now - 24 * HOUR
    assert _ids(recent_incidents(r, geo, GRID_USER, since, now, categories=["traffic"])) == ["a2"]
    # a category the user may not see cannot be asked for
    assert recent_incidents(r, geo, GRID_USER, since, now, categories=["petition"]) == []
    assert recent_incidents(r, geo, GRID_USER, since, now, categories=[]) == []
    by_status = recent_incidents(r, geo, GRID_USER, since, now, statuses=["handling"])
    assert _ids(by_status) == ["a2"]
    assert _ids(recent_incidents(r, geo, GRID_USER, since, now, statuses=["new"])) == ["a1", "a3"]
    assert recent_incidents(r, geo, GRID_USER, since, now, statuses=["bogus"]) == []
    assert _ids(recent_incidents(r, geo, GRID_USER, now - HOUR, now)) == ["a1"]
    assert _ids(recent_incidents(r, geo, GRID_USER, now - 8 * HOUR, now)) == ["a1", "a2"]
    # text: case-insensitive, over text and address
    assert _ids(recent_incidents(r, geo, GRID_USER, since, now, text="karaoke")) == ["a1", "a3"]
    assert _ids(recent_incidents(r, geo, GRID_USER, since, now, text=" HUISHAN ave")) == ["a2"]
    assert recent_incidents(r, geo, GRID_USER, since, now, text="Parking") == []  # b1: not ours
    assert _ids(recent_incidents(r, geo, GRID_USER, since, now, limit=2)) == ["a1", "a2"]


def test_inc005_detail_outside_scope_or_hidden_is_none(r, city):
    geo, _now = city
    assert incident_detail(r, geo, GRID_USER, "a2")["status"] == "handling"
    assert incident_detail(r, geo, GRID_USER, "b1") is None  # next grid
    assert incident_detail(r, geo, GRID_USER, "c1") is None  # another street
    assert incident_detail(r, geo, GRID_USER, "a4") is None  # petition: hidden category
    assert incident_detail(r, geo, STREET_USER, "c1") is None
    assert incident_detail(r, geo, STREET_USER, "a4")["category"] == "petition"
    assert incident_detail(r, geo, GRID_USER, "nope") is None
    for forged in (None, 7, ["a1"], {"id": "a1"}, "x" * 500):
        assert incident_detail(r, geo, GRID_USER, forged) is None


def test_inc006_wall_and_nobody_get_no_single_incidents(r, city):
    geo, now = city
    assert recent_incidents(r, geo, WALL, 0, now) == []
    assert recent_incidents(r, geo, None, 0, now) == []
    assert incident_detail(r, geo, WALL, "a1") is None
    assert incident_detail(r, geo, None, "a1") is None


def test_inc007_status_update_shows_in_list_and_detail(r, city):
    geo, now = city
    _write(r, geo, [{"id": "a1", "ts": str(now), "category": "dispute", "grid": GRID,
                     "status": "resolved"}])  # fmt: skip
    got = recent_incidents(r, geo, GRID_USER, now - HOUR, now, statuses=["resolved"])
    assert _ids(got) == ["a1"]
    assert got[0]["updated"] == now and got[0]["text"] == "Noise from a karaoke bar"
