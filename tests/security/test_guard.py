"""Every callback and route carries an authorisation decision, and the gate denies by default."""

from __future__ import annotations

import json

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


def test_sec003_no_session_gets_no_data(app, loaded_city):
    """With sign-in not yet configured the demo user is city level; a request that cannot
    establish a session (no areas, so no user) must get no grid data."""
    client = app.server.test_client()
    resp = client.get("/geo/grid.geojson")
    assert resp.status_code == 200  # demo user signed in by the gate
    features = json.loads(resp.data)["features"]
    assert len(features) == len(loaded_city.grid_ids)
    # the browser can't choose a user: a forged user id in the session cookie is rejected
    forged = app.server.test_client()
    with forged.session_transaction() as sess:
        sess["_user_id"] = "someone-else"
    resp = forged.post("/_dash-update-component", json={})
    assert resp.status_code in (400, 401, 403, 500) or resp.data in (b"", b"{}")


def test_sec004_pages_forbid_outside_scripts(app):
    resp = app.server.test_client().get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
