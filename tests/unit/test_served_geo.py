"""The map's served geometry: every grid of the scope with what the tooltips read, built once per
grid version for all processes (shared through the real Redis), kept gzip'd, and sent gzip'd to
browsers that take it."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading

import pytest
import redis

from cockpit import served_geo
from cockpit.areastore import Geography, load_geography, save_areas
from cockpit.settings import Settings
from cockpit.webapp import create_app, warm_up
from geo.areas import AreaSet

TOOLTIP = {"name_zh", "name_en", "community_zh", "community_en", "street_zh", "street_en",
           "district_zh", "district_en"}  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_process_cache():
    served_geo.forget_cache()
    yield
    served_geo.forget_cache()


@pytest.fixture
def counted(monkeypatch):
    """How often a GeoJSON was built (the real builder runs)."""
    calls: list[tuple[str, str]] = []
    real = served_geo.build_geojson

    def build(geo: Geography, level: str, area_id: str) -> bytes:
        calls.append((level, area_id))
        return real(geo, level, area_id)

    monkeypatch.setattr(served_geo, "build_geojson", build)
    return calls


def test_sgeo001_a_stored_set_knows_its_version_without_hashing_itself_again(demo_areas):
    back = AreaSet.from_bytes(demo_areas.to_bytes())
    assert "version" in back.__dict__  # set by from_bytes, not computed on first use
    assert back.version == demo_areas.version
    assert back.version == hashlib.sha256(back._payload()).hexdigest()


def test_sgeo002_served_grids_carry_every_grid_and_the_tooltip_names(demo_areas):
    district = demo_areas.children(demo_areas.root_id)[0]
    scope = {district, *demo_areas.descendants(district)}
    doc = json.loads(demo_areas.served_geojson("grid", ids=scope))
    full = demo_areas.to_geojson("grid", ids=scope)
    assert [f["id"] for f in doc["features"]] == [f["id"] for f in full["features"]]
    assert {f["id"] for f in doc["features"]} == set(demo_areas.descendants(district, "grid"))
    for served, ref in zip(doc["features"], full["features"], strict=True):
        assert served["geometry"] == ref["geometry"]
        assert set(served["properties"]) == TOOLTIP
        assert all(served["properties"][k] == ref["properties"][k] for k in TOOLTIP)
        assert served["properties"]["street_en"]  # every demo grid has a street
    outlines = json.loads(demo_areas.served_geojson(["district", "street"]))["features"]
    assert {f["properties"]["level"] for f in outlines} == {"district", "street"}


def test_sgeo003_built_once_per_grid_version_for_all_threads_and_processes(r, demo_areas,
                                                                           counted):  # fmt: skip
    save_areas(r, demo_areas)
    geo = load_geography(r)
    root = demo_areas.root_id
    got: list[served_geo.ServedGeometry] = []

    def fetch() -> None:
        got.append(served_geo.served_geojson(r, geo, "grid", root))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted == [("grid", root)] and len(got) == 8
    assert len({g.gz for g in got}) == 1
    stored = r.get(served_geo.served_key(geo.version, "grid", root))
    assert stored == got[0].gz and r.ttl(served_geo.served_key(geo.version, "grid", root)) > 0
    features = json.loads(gzip.decompress(stored))["features"]
    assert len(features) == len(geo.grid_ids)
    # another process (this one with its cache dropped) reads it from Redis: no second build
    served_geo.forget_cache()
    assert served_geo.served_geojson(r, geo, "grid", root).gz == stored
    assert counted == [("grid", root)]
    # another area or level is another build; so is a new grid version
    served_geo.served_geojson(r, geo, "boundaries", root)
    assert counted[-1] == ("boundaries", root) and len(counted) == 2
    fewer = AreaSet(demo_areas.frame.drop(index=[demo_areas.grids.index[0]]))
    save_areas(r, fewer)
    served_geo.served_geojson(r, load_geography(r), "grid", root)
    assert len(counted) == 3


def test_sgeo004_without_redis_the_process_builds_and_keeps_it(demo_areas, counted):
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    geo = Geography(demo_areas)
    first = served_geo.served_geojson(down, geo, "grid", demo_areas.root_id)
    again = served_geo.served_geojson(down, geo, "grid", demo_areas.root_id)
    assert first is again and counted == [("grid", demo_areas.root_id)]
    assert len(json.loads(first.body())["features"]) == len(demo_areas.grids)


def test_sgeo005_the_route_sends_gzip_with_cache_headers(r, loaded_city, redis_url, counted):
    from cockpit.users import add_user

    app = create_app(Settings.from_env({"COCKPIT_REDIS_URL": redis_url}))
    assert warm_up(app.server)  # what a new gunicorn worker does before its first viewer
    assert {c[0] for c in counted} == {"grid", "boundaries"}
    root = loaded_city.areas.root_id
    add_user(r, "city.leader", "a long enough password", "city", root)
    client = app.server.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"name": "city.leader", "password": "a long enough password",
                                "csrf_token": token})  # fmt: skip
    resp = client.get("/geo/grid.geojson?v=x", headers={"Accept-Encoding": "gzip, deflate"})
    assert resp.status_code == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in resp.headers["Vary"]
    assert "immutable" in resp.headers["Cache-Control"]
    assert resp.headers["Content-Type"].startswith("application/geo+json")
    doc = json.loads(gzip.decompress(resp.data))
    assert {f["id"] for f in doc["features"]} == set(loaded_city.grid_ids)
    assert len(resp.data) * 5 < len(gzip.decompress(resp.data))  # compressed, not just labelled
    # a client that takes no gzip gets the same GeoJSON plain
    plain = client.get("/geo/grid.geojson")
    assert "Content-Encoding" not in plain.headers
    assert json.loads(plain.data) == doc
    # revalidation by its tag costs no body
    etag = resp.headers["ETag"]
    assert client.get("/geo/grid.geojson", headers={"If-None-Match": etag}).status_code == 304
    assert len(counted) == 2  # warm-up built both; requests built nothing
