"""Forged Dash callback requests to the officer view get nothing outside the session user's scope.

The app is the real one (create_app) on real Redis; users sign in through the real /login form;
callback requests are built the way Dash's renderer builds them, from /_dash-dependencies, with
another area's incident id, forged filters or forged clicks in the inputs and state.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from shapely import get_coordinates

from cockpit.contract import INCIDENTS
from cockpit.settings import Settings
from cockpit.users import add_user
from cockpit.webapp import create_app
from cockpit.worker import Worker

PASSWORD = "a long enough password"
GRID = "wx-hs-01-001-01"
OTHER_STREET_GRID = "wx-hs-02-001-01"
MINE_TEXT = "own-grid leaking pipe"
SECRET_TEXT = "other-street secret text"
SECRET_REPORTER = "Zhou 13900000000"


@pytest.fixture
def app(r, loaded_city, redis_url):
    geo = loaded_city
    now = int(r.time()[0]) * 1000
    rows = [
        ("mine-1", GRID, "dispute", MINE_TEXT, "Own road 1"),
        ("theirs-1", OTHER_STREET_GRID, "dispute", SECRET_TEXT, "Their road 9"),
        ("petition-1", GRID, "petition", "a petition in the grid", "Own road 2"),
    ]
    for inc_id, grid, category, text, address in rows:
        point = geo.areas.frame.geometry.loc[grid].representative_point()
        lon, lat = get_coordinates(point)[0]
        r.xadd(INCIDENTS, {"id": inc_id, "ts": str(now - 60_000), "category": category,
                           "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "text": text,
                           "address": address, "reporter": SECRET_REPORTER})  # fmt: skip
    worker = Worker(r, name="sec", block_ms=10)
    worker.ensure_groups()
    for _ in range(50):
        worker.step()
        if worker.stats.applied >= len(rows):
            break
    assert worker.stats.applied == len(rows)
    add_user(r, "grid.officer", PASSWORD, "grid", GRID)
    return create_app(Settings.from_env({"COCKPIT_REDIS_URL": redis_url}))


@pytest.fixture
def client(app):
    client = app.server.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"name": "grid.officer", "password": PASSWORD,
                                       "csrf_token": token})  # fmt: skip
    assert resp.status_code == 303
    return client


def _dependency(client, output_part: str) -> dict:
    deps = client.get("/_dash-dependencies").get_json()
    return next(d for d in deps if output_part in d["output"])


def _outputs(dep: dict) -> list[dict]:
    parts = dep["output"].strip(".").split("...")
    return [dict(zip(("id", "property"), p.rsplit(".", 1), strict=True)) for p in parts]


def call(client, output_part: str, inputs: list, state: list, changed: list[str]):
    """POST a callback request as Dash's renderer does; returns (status, body text)."""
    dep = _dependency(client, output_part)
    outputs = _outputs(dep)
    payload = {
        "output": dep["output"],
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": inputs,
        "state": state,
        "changedPropIds": changed,
    }
    resp = client.post("/_dash-update-component", json=payload)
    return resp.status_code, resp.get_data(as_text=True)


def _inp(id_: object, prop: str, value: object) -> dict:
    return {"id": id_, "property": prop, "value": value}


def test_off001_detail_of_another_streets_incident_is_not_sent(client):
    inputs = [_inp("officer-selected", "data", "theirs-1"), _inp("tick", "n_intervals", 3)]
    state = [_inp("officer-detail-store", "data", None)]
    status, body = call(client, "officer-detail-body.children", inputs, state,
                        ["officer-selected.data"])  # fmt: skip
    assert status == 200
    assert SECRET_TEXT not in body and "Their road" not in body and "Zhou" not in body
    assert "no longer available" in body
    # the same request for the officer's own incident answers (so the probe above can fail)
    inputs[0]["value"] = "mine-1"
    status, body = call(client, "officer-detail-body.children", inputs, state,
                        ["officer-selected.data"])  # fmt: skip
    assert status == 200 and MINE_TEXT in body
    assert "Zhou" not in body  # a grid officer never gets the reporter


def test_off002_forged_clicks_cannot_select_another_areas_incident(client):
    for forged in ("theirs-1", "petition-1"):
        inputs = [
            _inp("officer-row-click", "data", {"id": forged, "at": 1}),
            _inp("officer-points", "clickData", None),
            _inp("officer-close", "n_clicks", 0),
        ]
        status, body = call(client, "officer-selected.data", inputs, [],
                            ["officer-row-click.data"])  # fmt: skip
        assert status == 200
        assert json.loads(body)["response"]["officer-selected"]["data"] is None
        # a forged marker click (a feature of another street) is refused the same way
        inputs[0] = _inp("officer-row-click", "data", None)
        inputs[1]["value"] = {"type": "Feature", "id": forged, "properties": {"id": forged}}
        status, body = call(client, "officer-selected.data", inputs, [],
                            ["officer-points.clickData"])  # fmt: skip
        assert json.loads(body)["response"]["officer-selected"]["data"] is None
    inputs[1]["value"] = {"type": "Feature", "id": "mine-1", "properties": {"id": "mine-1"}}
    status, body = call(client, "officer-selected.data", inputs, [], ["officer-points.clickData"])
    assert json.loads(body)["response"]["officer-selected"]["data"] == "mine-1"


def test_off003_forged_filters_never_widen_the_list(client):
    inputs = [
        _inp("tick", "n_intervals", 1),
        _inp("officer-category", "value", ["petition", "dispute", "<script>"]),
        _inp("officer-status", "value", ["new", "bogus"]),
        _inp("officer-range", "value", "9999h"),
        _inp("officer-text", "value", {"$ne": ""}),
    ]
    state = [_inp("officer-list-store", "data", {"data": "x"})]
    status, body = call(client, "officer-rows.data", inputs, state,
                        ["officer-category.value"])  # fmt: skip
    assert status == 200
    assert "mine-1" in body and MINE_TEXT in body
    for leaked in ("theirs-1", SECRET_TEXT, "petition-1", "Zhou", OTHER_STREET_GRID):
        assert leaked not in body
    # a text search for the other street's text finds nothing
    inputs[4]["value"] = "secret"
    status, body = call(client, "officer-rows.data", inputs, state, ["officer-text.value"])
    assert SECRET_TEXT not in body and "theirs-1" not in body and "mine-1" not in body


def test_off004_grid_colours_carry_only_the_users_grids(client):
    status, body = call(client, "officer-grids.hideout", [_inp("tick", "n_intervals", 1)], [],
                        ["tick.n_intervals"])  # fmt: skip
    assert status == 200
    counts = json.loads(body)["response"]["officer-grids"]["hideout"]
    assert json.dumps(counts).count("wx-hs-") == 1 and GRID in json.dumps(counts)


def test_off005_without_a_session_callbacks_answer_401(app):
    anonymous = app.server.test_client()
    resp = anonymous.post("/_dash-update-component", json={
        "output": "officer-detail-body.children", "inputs": [], "changedPropIds": []})  # fmt: skip
    assert resp.status_code == 401


def _alerts(r, geo) -> tuple[str, str]:
    """One open alert in the officer's grid and one in another street."""
    from cockpit.alerts.model import Alert, alert_id
    from cockpit.alerts.store import create_alert

    now = time.time()
    ids = []
    for key, grid, title in (("own", GRID, "Water rising at own gauge"),
                             ("far", OTHER_STREET_GRID, "Far street flood secret")):  # fmt: skip
        alert = Alert(id=alert_id(key), kind="flood_warning", severity="moderate", status="new",
                      dedup_key=key, raised_at=now, updated_at=now, area_grids=[grid],
                      title_en=title)  # fmt: skip
        assert create_alert(r, alert, geo)
        ids.append(alert.id)
    return ids[0], ids[1]


def _act(client, alert: str, action: str, comment: str) -> str | None:
    """Click an alert's button with a comment; the message shown, None for no update (204)."""
    button = {"action": action, "alert": alert, "type": "officer-alert-action"}
    field = {"alert": alert, "type": "officer-alert-comment"}
    status, body = call(
        client, "officer-alert-message.children", [[_inp(button, "n_clicks", 1)]],
        [[_inp(field, "value", comment)]],
        [json.dumps(button, separators=(",", ":"), sort_keys=True) + ".n_clicks"],
    )  # fmt: skip
    if status == 204:
        return None
    assert status == 200
    return json.loads(body)["response"]["officer-alert-message"]["children"]


def test_off006_alert_list_and_actions_stay_in_scope(client, r, loaded_city):
    from cockpit.alerts.store import get_alert

    own, far = _alerts(r, loaded_city)
    inputs = [_inp("tick", "n_intervals", 1), _inp("officer-alert-message", "children", None)]
    state = [_inp("officer-alerts-store", "data", None)]
    status, body = call(client, "officer-alerts.children", inputs, state, ["tick.n_intervals"])
    assert status == 200 and "Water rising at own gauge" in body and own in body
    assert "Far street" not in body and far not in body
    # a forged click on the other street's alert is refused and changes nothing
    assert _act(client, far, "acknowledge", "forged") == "Not allowed for this alert."
    assert get_alert(r, far).status == "new"
    assert _act(client, far, "resolve", "forged") == "Not allowed for this alert."
    assert _act(client, own, "bogus", "x") is None  # an unknown action: no update at all
    # the officer's own alert: acknowledge with a comment, then resolve
    assert _act(client, own, "acknowledge", "on my way") == "Alert acknowledged."
    stored = get_alert(r, own)
    assert stored.status == "acknowledged" and stored.ack_comment == "on my way"
    assert stored.acknowledged_by == "grid.officer"
    assert _act(client, own, "resolve", "pumped out") == "Alert resolved."
    assert get_alert(r, own).status == "resolved"
    assert get_alert(r, far).status == "new"
