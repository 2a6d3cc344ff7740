"""Forged Dash callback requests to the alert markers and alert lists (operations and leader
views) get nothing outside the session user's scope, and forged clicks act on nothing outside it.

The app is the real one (create_app) on real Redis; a street user signs in through the real
/login form; requests are built the way Dash's renderer builds them, from /_dash-dependencies.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from cockpit.alerts.model import Alert, alert_id
from cockpit.alerts.store import AUDIT, create_alert, get_alert
from cockpit.settings import Settings
from cockpit.users import add_user
from cockpit.webapp import create_app

PASSWORD = "a long enough password"
STREET = "wx-hs-01"
OWN_GRID = "wx-hs-01-003-02"
OWN_COMMUNITY = "wx-hs-01-003"
EMPTY_COMMUNITY = "wx-hs-01-001"  # in the street, without an alert
FAR_GRID = "wx-hs-02-001-01"
OWN_TITLE = "Own street alert"
FAR_TITLE = "Far street secret alert"


@pytest.fixture
def app(r, loaded_city, redis_url):
    add_user(r, "street.lead", PASSWORD, "street", STREET)
    return create_app(Settings.from_env({"COCKPIT_REDIS_URL": redis_url}))


@pytest.fixture
def alerts(r, loaded_city) -> tuple[str, str]:
    now = time.time()
    out = []
    for key, grid, title in (("scr-own", OWN_GRID, OWN_TITLE), ("scr-far", FAR_GRID, FAR_TITLE)):
        alert = Alert(id=alert_id(key), kind="cap", severity="severe", status="new",
                      dedup_key=key, raised_at=now, updated_at=now, area_grids=[grid],
                      title_en=title)  # fmt: skip
        assert create_alert(r, alert, loaded_city)
        out.append(alert.id)
    return out[0], out[1]


@pytest.fixture
def client(app):
    client = app.server.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"name": "street.lead", "password": PASSWORD,
                                       "csrf_token": token})  # fmt: skip
    assert resp.status_code == 303
    return client


def _id(text: str) -> object:
    return json.loads(text) if text.startswith("{") else text


def _key(id_: object) -> str:
    return json.dumps(id_, separators=(",", ":"), sort_keys=True) if isinstance(id_, dict) else id_


def call(client, output_part: str, inputs: list, state: list, changed: list[str]):
    """POST a callback request as Dash's renderer does; returns (status, parsed body)."""
    deps = client.get("/_dash-dependencies").get_json()
    dep = next(d for d in deps if output_part in d["output"])
    parts = dep["output"].removeprefix("..").removesuffix("..").split("...")
    outputs = [{"id": _id(i), "property": p} for i, p in (part.rsplit(".", 1) for part in parts)]
    payload = {"output": dep["output"], "outputs": outputs if len(outputs) > 1 else outputs[0],
               "inputs": inputs, "state": state, "changedPropIds": changed}  # fmt: skip
    resp = client.post("/_dash-update-component", json=payload)
    body = resp.get_data(as_text=True)
    return resp.status_code, (json.loads(body) if resp.status_code == 200 else body)


def _inp(id_: object, prop: str, value: object) -> dict:
    return {"id": id_, "property": prop, "value": value}


def _leader_list(client, area: object) -> str:
    view = {"type": "alert-list", "view": "leader"}
    inputs = [_inp("tick", "n_intervals", 1),
              _inp({"type": "alert-list-message", "view": "leader"}, "children", None),
              _inp("leader-area", "data", area)]  # fmt: skip
    state = [_inp({"type": "alert-list-store", "view": "leader"}, "data", None)]
    status, body = call(client, '"alert-list","view":"leader"}.children', inputs, state,
                        ["leader-area.data"])  # fmt: skip
    assert status == 200
    return json.dumps(body["response"][_key(view)])


def test_asc001_leader_list_never_leaves_the_scope_whatever_area_is_sent(client, alerts):
    own, far = alerts
    for forged in ("wx-hs-02", "wx", FAR_GRID, "no-such-area", {"$ne": 1}, None):
        body = _leader_list(client, forged)
        assert own in body and OWN_TITLE in body, forged
        assert far not in body and FAR_TITLE not in body, forged
    # an area inside the scope narrows the list (so the probes above could fail)
    assert own in _leader_list(client, OWN_COMMUNITY)
    narrowed = _leader_list(client, EMPTY_COMMUNITY)
    assert own not in narrowed and "No open alerts" in narrowed


def test_asc002_markers_carry_only_the_scopes_alerts(client, alerts):
    own, far = alerts
    status, body = call(client, "alert-layer.data", [_inp("tick", "n_intervals", 1)],
                        [_inp("alert-layer-key", "data", None)], ["tick.n_intervals"])  # fmt: skip
    assert status == 200
    features = body["response"]["alert-layer"]["data"]["features"]
    assert [f["id"] for f in features] == [own]
    inputs = [_inp("tick", "n_intervals", 1), _inp("leader-area", "data", "wx-hs-02")]
    status, body = call(client, "leader-alert-layer.data", inputs,
                        [_inp("leader-alert-layer-key", "data", None)],
                        ["leader-area.data"])  # fmt: skip
    assert status == 200
    text = json.dumps(body["response"])
    assert own in text and far not in text and FAR_TITLE not in text
    # the same request with the key it was given answers "nothing changed" (204)
    key = body["response"]["leader-alert-layer-key"]["data"]
    state = [_inp("leader-alert-layer-key", "data", key)]
    status, _ = call(client, "leader-alert-layer.data", inputs, state, ["tick.n_intervals"])
    assert status == 204


def _click(client, view: str, alert: str, action: str):  # type: ignore[no-untyped-def]
    button = {"action": action, "alert": alert, "type": "alert-act", "view": view}
    output = f'"alert-list-message","view":"{view}"}}.children'
    status, body = call(client, output, [[_inp(button, "n_clicks", 1)]], [],
                        [_key(button) + ".n_clicks"])  # fmt: skip
    if status == 204:
        return None
    assert status == 200
    return body["response"][_key({"type": "alert-list-message", "view": view})]["children"]


def test_asc003_forged_clicks_act_on_nothing_outside_the_scope(client, r, alerts):
    own, far = alerts
    audit = r.xlen(AUDIT)
    for view in ("ops", "leader"):
        assert _click(client, view, far, "acknowledge") == "Not allowed for this alert."
        assert _click(client, view, "al-does-not-exist", "acknowledge") == (
            "Not allowed for this alert.")  # fmt: skip
        assert _click(client, view, own, "delete") is None  # unknown action: no update
    assert get_alert(r, far).status == "new" and r.xlen(AUDIT) == audit
    # the user's own alert: acknowledged through act(), audited with the session user
    assert _click(client, "leader", own, "acknowledge") == "Alert acknowledged."
    stored = get_alert(r, own)
    assert stored.status == "acknowledged" and stored.acknowledged_by == "street.lead"
    ((_, entry),) = r.xrange(AUDIT, count=audit + 1)[audit:]
    assert entry[b"who"] == b"street.lead" and entry[b"alert_id"].decode() == own
    assert _click(client, "ops", own, "resolve") == "Alert resolved."
    assert get_alert(r, own).status == "resolved"


def test_asc003_markers_travel_as_deltas_and_whole_once_a_period(
    r, loaded_city, client, alerts, monkeypatch
):
    """After a whole send the layer gets only the markers that changed (a Patch), and the whole
    collection again once the period of its last whole send is over, so a delta applied to
    other markers than it was made for cannot stay on a wall."""
    from callbacks import alert_layer

    monkeypatch.setattr(alert_layer, "WHOLE_EVERY_S", 10**12)  # no period ends during the test
    own, _far = alerts
    state = lambda key: [_inp("alert-layer-key", "data", key)]  # noqa: E731
    tick = [_inp("tick", "n_intervals", 1)]
    _, body = call(client, "alert-layer.data", tick, state(None), ["tick.n_intervals"])
    whole = body["response"]["alert-layer"]["data"]
    key = body["response"]["alert-layer-key"]["data"]
    assert [f["id"] for f in whole["features"]] == [own] and "@" in key
    now = time.time()
    new = Alert(id=alert_id("scr-new"), kind="cap", severity="extreme", status="new",
                dedup_key="scr-new", raised_at=now, updated_at=now, area_grids=[OWN_GRID],
                title_en="New in the street")  # fmt: skip
    assert create_alert(r, new, loaded_city)
    _, body = call(client, "alert-layer.data", tick, state(key), ["tick.n_intervals"])
    delta = body["response"]["alert-layer"]["data"]
    assert "__dash_patch_update" in delta and "features" not in delta
    assert new.id in json.dumps(delta) and OWN_TITLE not in json.dumps(delta)
    assert body["response"]["alert-layer-key"]["data"].endswith("@" + key.split("@")[1])
    stale = key.split("@")[0] + "@-1"  # the same markers, but sent whole in an old period
    _, body = call(client, "alert-layer.data", tick, state(stale), ["tick.n_intervals"])
    again = body["response"]["alert-layer"]["data"]
    assert {f["id"] for f in again["features"]} == {own, new.id}
