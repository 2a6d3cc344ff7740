"""Every callback and route carries an authorisation decision, and the gate denies by default."""

from __future__ import annotations

import json
import re

import pytest

from cockpit.guard import ACTION_ATTR
from cockpit.settings import Settings
from cockpit.webapp import create_app, unguarded_routes


@pytest.fixture
def app(r, loaded_city, redis_url):
    return create_app(Settings.from_env({"COCKPIT_REDIS_URL": redis_url}))


def test_sec001_every_callback_has_an_authorisation_decision(app):
    server_callbacks = [cb for cb in app.callback_map.values() if cb.get("callback")]
    assert server_callbacks, "no callbacks registered"
    for cb in server_callbacks:
        fn = cb["callback"]
        decision = getattr(fn, ACTION_ATTR, None) or getattr(
            getattr(fn, "__wrapped__", None), ACTION_ATTR, None
        )
        assert decision, f"callback {fn.__name__} has no authorisation decision"


def test_sec002_every_route_has_an_authorisation_decision(app):
    assert unguarded_routes(app.server) == []


def test_sec003_no_session_gets_no_data(app, r, loaded_city):
    """Without a session: pages redirect to sign-in, data routes and callbacks answer 401."""
    client = app.server.test_client()
    resp = client.get("/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert client.get("/geo/grid.geojson").status_code in (302, 401)
    assert client.get("/_dash-layout").status_code == 401
    resp = client.post("/_dash-update-component", json={"output": "x", "inputs": []})
    assert resp.status_code == 401
    # the browser cannot pick a user: a forged user id in the session cookie is nobody
    forged = app.server.test_client()
    with forged.session_transaction() as sess:
        sess["_user_id"] = "user:demo-city:1"
        sess["_fresh"] = True
    assert forged.get("/_dash-layout").status_code == 401


def test_sec005_signed_in_street_user_gets_only_its_grids(app, r, loaded_city):
    from cockpit.users import add_user

    street = loaded_city.areas.ancestors(loaded_city.grid_ids[0])[1]
    add_user(r, "street.officer", "a long enough password", "street", street)
    client = app.server.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"name": "street.officer",
                                       "password": "a long enough password", "csrf_token": token})
    assert resp.status_code == 303
    features = json.loads(client.get("/geo/grid.geojson").data)["features"]
    expected = set(loaded_city.areas.descendants(street, level="grid"))
    assert {f["id"] for f in features} == expected
    assert 0 < len(expected) < len(loaded_city.grid_ids)


def test_sec004_pages_forbid_outside_scripts(app):
    resp = app.server.test_client().get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
