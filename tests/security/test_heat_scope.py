"""The heatmap routes on a minimal Flask app with the real sign-in form, guard, policy, worker and
Redis: a user sees the heatmap of their own scope and categories only."""

from __future__ import annotations

import flask
import flask_login
import pytest

from cockpit import heatservice
from cockpit.contract import CATEGORIES
from cockpit.guard import ACTION_ATTR
from cockpit.heat_routes import heat_blueprint, heat_scope, overlay_url
from cockpit.heatservice import forget_caches, redis_now_ms
from cockpit.policy import User
from cockpit.signin import signin_blueprint, user_loader
from cockpit.users import add_user
from tests.security.test_signin import PASSWORD, sign_in
from tests.unit.test_heat import decode_png
from tests.unit.test_heatservice import STREET_A, STREET_B, feed, incident, street_grids

COOKIE = "cockpit_session"


def make_app(r, geo) -> flask.Flask:
    app = flask.Flask("heat-test")
    app.config.update(SECRET_KEY="test-secret", SESSION_COOKIE_NAME=COOKIE)
    login = flask_login.LoginManager(app)
    login.session_protection = "strong"
    login.user_loader(lambda user_id: user_loader(r, user_id))
    app.register_blueprint(signin_blueprint(lambda: r))
    app.register_blueprint(heat_blueprint(lambda: r, lambda: geo))
    return app


@pytest.fixture
def city(r, loaded_city):
    """Incidents in two streets, through the real worker: A has 5 (one petition), B has 7."""
    forget_caches()
    geo = loaded_city
    now = redis_now_ms(r)
    a, b = street_grids(geo, STREET_A), street_grids(geo, STREET_B)
    feed(
        r,
        [incident(geo, a[k], now - 5_000, "dispute", 3) for k in range(4)]
        + [incident(geo, a[0], now - 5_000, "petition", 2)]
        + [incident(geo, b[k % len(b)], now - 5_000, "traffic", 4) for k in range(7)],
    )
    add_user(r, "li.wei", PASSWORD, "street", STREET_A)
    add_user(r, "zhao", PASSWORD, "grid", a[0])
    add_user(r, "boss", PASSWORD, "city", geo.areas.root_id)
    yield geo, make_app(r, geo), a
    forget_caches()


def client_of(app, name):
    client = app.test_client()
    assert sign_in(client, name=name).status_code == 303
    return client


def test_hsc001_no_session_gets_401(city):
    _geo, app, _a = city
    client = app.test_client()
    for path in ("/heat/1h.png", "/heat/1h.json", f"/heat/15m.png?area={STREET_A}"):
        resp = client.get(path)
        assert resp.status_code == 401 and resp.mimetype != "image/png"


def test_hsc002_street_user_counts_only_their_street(city):
    _geo, app, _a = city
    resp = client_of(app, "li.wei").get("/heat/1h.png")
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    assert resp.headers["X-Heat-Points"] == "5"  # not the 7 of street B
    assert resp.headers["Cache-Control"] == "private, max-age=1"
    assert resp.headers["ETag"].strip('"')
    assert float(resp.headers["X-Heat-Scale"]) > 0
    rgba = decode_png(resp.data)
    assert rgba[..., 3].max() > 0
    boss = client_of(app, "boss").get("/heat/1h.png")
    assert boss.headers["X-Heat-Points"] == "12"


def test_hsc003_another_area_outside_the_scope_is_refused(city):
    geo, app, a = city
    client = client_of(app, "li.wei")
    assert client.get(f"/heat/1h.png?area={STREET_B}").status_code == 403
    assert client.get(f"/heat/1h.json?area={STREET_B}").status_code == 403
    assert client.get("/heat/1h.png?area=wx-hs").status_code == 403  # their district: above
    assert client.get("/heat/1h.png?area=no-such-area").status_code == 403
    assert client.get("/heat/2h.png").status_code == 404
    # an area inside the scope: one of street A's grids, holding two of the five incidents
    inner = client.get(f"/heat/1h.png?area={a[0]}")
    assert inner.status_code == 200 and inner.headers["X-Heat-Points"] == "2"
    # the city user may look at street B
    boss = client_of(app, "boss").get(f"/heat/15m.png?area={STREET_B}")
    assert boss.status_code == 200 and boss.headers["X-Heat-Points"] == "7"
    assert geo.areas.parent_of(STREET_B) == "wx-hs"


def test_hsc004_categories_follow_the_level(city):
    _geo, app, _a = city
    grid = client_of(app, "zhao")  # grid officers do not see petitions
    resp = grid.get("/heat/1h.png")
    assert (
        resp.status_code == 200 and resp.headers["X-Heat-Points"] == "1"
    )  # one dispute, no petition
    assert grid.get("/heat/1h.png?category=petition").status_code == 403
    assert grid.get("/heat/1h.png?category=dispute").headers["X-Heat-Points"] == "1"
    assert grid.get("/heat/1h.png?category=bogus").status_code == 400
    street = client_of(app, "li.wei")
    assert street.get("/heat/1h.png?category=petition").headers["X-Heat-Points"] == "1"
    assert street.get("/heat/1h.png?category=all").headers["X-Heat-Points"] == "5"


def test_hsc005_json_version_names_the_png_and_etag_revalidates(r, city):
    _geo, app, _a = city
    client = client_of(app, "li.wei")
    meta = client.get("/heat/1h.json")
    assert meta.status_code == 200
    body = meta.get_json()
    assert body["points"] == 5 and body["area"] == STREET_A and body["window"] == "1h"
    (south, west), (north, east) = body["bounds"]
    assert south < north and west < east and body["scale_per_km2"] > 0
    png = client.get(body["url"])
    assert png.status_code == 200 and png.headers["ETag"] == f'"{body["version"]}"'
    again = client.get(body["url"], headers={"If-None-Match": png.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    # that version is still served after the shared render expired, without a new render
    r.delete(heatservice.heat_key(STREET_A, "1h", frozenset(heatservice.CATEGORIES)))
    renders = int(r.hget(heatservice.STATS_KEY, "renders"))
    later = client.get(body["url"])
    assert later.headers["ETag"] == png.headers["ETag"] and later.data == png.data
    assert int(r.hget(heatservice.STATS_KEY, "renders")) == renders
    # an unknown version falls back to the current render
    fresh = client.get("/heat/1h.png?v=00000000")
    assert fresh.status_code == 200 and fresh.headers["X-Heat-Points"] == "5"


def test_hsc006_every_heat_route_declares_view_map(city):
    _geo, app, _a = city
    heat_rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/heat/")]
    assert {rule.rule for rule in heat_rules} == {"/heat/<window>.png", "/heat/<window>.json"}
    for rule in heat_rules:
        assert getattr(app.view_functions[rule.endpoint], ACTION_ATTR) == "view_map"


def test_hsc007_heat_scope_is_the_one_decision_for_routes_and_callbacks(loaded_city):
    geo = loaded_city
    street = User(id="user:x:1", name="x", level="street", area_id=STREET_A)
    grid_id = street_grids(geo, STREET_A)[0]
    grid = User(id="user:y:1", name="y", level="grid", area_id=grid_id)
    every = frozenset(CATEGORIES)
    assert heat_scope(street, STREET_A, None, geo) == (STREET_A, every)
    assert heat_scope(street, grid_id, "flood", geo) == (grid_id, frozenset({"flood"}))
    assert heat_scope(street, STREET_B, None, geo) is None
    assert heat_scope(street, "wx-hs", "all", geo) is None
    assert heat_scope(None, STREET_A, None, geo) is None
    assert heat_scope(grid, grid_id, "all", geo) == (grid_id, every - {"petition"})
    assert heat_scope(grid, grid_id, "petition", geo) is None
    assert overlay_url("1h", STREET_A, "ab12") == f"/heat/1h.png?area={STREET_A}&v=ab12"
    assert overlay_url("15m", grid_id, "ab12", "all") == f"/heat/15m.png?area={grid_id}&v=ab12"
    assert overlay_url("24h", STREET_A, "ab12", "flood").endswith("&category=flood")
