"""The grid-values push stream on a minimal Flask app with the real sign-in form, guard, policy,
worker and Redis: a user's stream carries the values of their own scope only, metric and
category are checked as the polling callback checks them, and streams are capped."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator

import flask
import flask_login
import pytest

from cockpit.aggregates import ALL
from cockpit.alerts import store
from cockpit.apply import HEALTH
from cockpit.contract import GAUGES
from cockpit.heatservice import redis_now_ms
from cockpit.incidents import scope_grids
from cockpit.live import metric_values
from cockpit.push import PUSH_PATH, PushLimits, push_blueprint
from cockpit.signin import signin_blueprint, user_loader
from cockpit.users import add_user
from tests.conftest import wait_until
from tests.security.test_signin import PASSWORD, sign_in
from tests.unit.test_alerts_store import make_alert
from tests.unit.test_heatservice import STREET_A, STREET_B, feed, incident, street_grids

LIMITS = PushLimits(interval_s=0.05, poll_s=0.02, heartbeat_s=0.3, max_age_s=20, max_streams=8)


def make_app(r, geo, limits: PushLimits = LIMITS) -> flask.Flask:
    app = flask.Flask("push-test")
    app.config.update(SECRET_KEY="test-secret", SESSION_COOKIE_NAME="cockpit_session")
    login = flask_login.LoginManager(app)
    login.session_protection = "strong"
    login.user_loader(lambda user_id: user_loader(r, user_id))
    app.register_blueprint(signin_blueprint(lambda: r))
    app.register_blueprint(push_blueprint(lambda: r, lambda: geo, limits))
    return app


@pytest.fixture
def city(r, loaded_city):
    """Incidents in two streets through the real worker: A has 4 disputes and a petition."""
    geo = loaded_city
    now = redis_now_ms(r)
    a, b = street_grids(geo, STREET_A), street_grids(geo, STREET_B)
    feed(r, [incident(geo, a[k], now - 5_000, "dispute", 3) for k in range(4)]
         + [incident(geo, a[0], now - 5_000, "petition", 2)]
         + [incident(geo, b[k % len(b)], now - 5_000, "traffic", 4) for k in range(7)])  # fmt: skip
    add_user(r, "li.wei", PASSWORD, "street", STREET_A)
    add_user(r, "zhao", PASSWORD, "grid", a[0])
    return geo, make_app(r, geo), a, b


def client_of(app, name):
    client = app.test_client()
    assert sign_in(client, name=name).status_code == 303
    return client


class Events:
    """The events of one open stream, read by a thread as the server writes them."""

    def __init__(self, resp) -> None:  # type: ignore[no-untyped-def]
        self.resp = resp
        self.comments: list[str] = []
        self.events: list[dict] = []  # grid events
        self.views: list[dict] = []  # view events
        self.ids: list[str] = []
        self.closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = ""
        for chunk in self.resp.response:
            if self.closed:
                break  # the generator now rests at a yield, so closing it ends the stream
            buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                fields = [line.split(": ", 1) for line in block.split("\n") if line]
                kind = next((value for key, value in fields if key == "event"), "")
                for key, value in fields:
                    if key == "":
                        self.comments.append(value)
                    elif key == "data" and kind == "grids":
                        self.events.append(json.loads(value))
                    elif key == "data" and kind == "view":
                        self.views.append(json.loads(value))
                    elif key == "id":
                        self.ids.append(value)

    def nth(self, n: int, timeout: float = 10) -> dict:
        wait_until(lambda: len(self.events) > n, timeout=timeout, what=f"event {n + 1}")
        return self.events[n]

    def close(self) -> None:
        """End the stream now, so it reads nothing more from Redis after its test."""
        self.closed = True
        self._thread.join(timeout=10)  # it stops at the next event (a heartbeat at most)
        with contextlib.suppress(ValueError):
            self.resp.close()


@pytest.fixture
def open_stream() -> Iterator:
    opened: list[Events] = []

    def start(client, query: str = "", headers: dict | None = None) -> Events:  # type: ignore[no-untyped-def]
        resp = client.get(PUSH_PATH + query, buffered=False, headers=headers or {})
        assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
        opened.append(Events(resp))
        return opened[-1]

    yield start
    for events in opened:
        events.close()


def test_psh001_no_session_gets_401_and_no_stream(city):
    _geo, app, _a, _b = city
    resp = app.test_client().get(PUSH_PATH)
    assert resp.status_code == 401 and resp.mimetype != "text/event-stream"


def test_psh002_first_event_holds_the_scope_values_only(r, city, open_stream):
    geo, app, a, b = city
    first = open_stream(client_of(app, "li.wei")).nth(0)
    assert first["full"] is True and first["format"] == "count"
    scope = scope_grids(geo, STREET_A)
    assert set(first["values"]) <= scope and not set(first["values"]) & set(b)
    truth = {g: v for g, v in metric_values(r, "incidents", ALL).items() if g in scope and v}
    assert {g: v for g, v in first["values"].items() if v} == truth
    assert sum(truth.values()) == 5  # 4 disputes and a petition, none of street B's 7
    # the KPI tiles of the street (last hour, open) and the badge's clock travel with it
    assert first["kpi"] == [5, metric_values(r, "open", ALL)[STREET_A]]
    assert first["last_apply_ms"] > 0 and first["server_ms"] >= first["last_apply_ms"]
    officer = open_stream(client_of(app, "zhao")).nth(0)
    assert set(officer["values"]) == {a[0]} and officer["values"][a[0]] == 2


def test_psh003_forged_metric_and_category_fall_back_as_the_callback_does(city, open_stream):
    _geo, app, _a, _b = city
    client = client_of(app, "li.wei")
    events = open_stream(client, "?metric=<script>&category=no-such")
    events.nth(0)
    assert events.comments[0] == "incidents:all"
    by_category = open_stream(client, "?metric=open&category=dispute")
    by_category.nth(0)
    assert by_category.comments[0] == "open:dispute"


def test_psh004_later_events_carry_only_what_changed_in_scope(r, city, open_stream):
    geo, app, a, b = city
    events = open_stream(client_of(app, "li.wei"))
    first = events.nth(0)
    now = redis_now_ms(r)
    feed(r, [incident(geo, a[1], now - 1_000, "dispute", 3),
             incident(geo, b[0], now - 1_000, "traffic", 2)])  # fmt: skip
    wait_until(lambda: any(e["values"] for e in events.events[1:]), timeout=10,
               what="an event with a changed value")  # fmt: skip
    changed = [e for e in events.events[1:] if e["values"]]
    assert all(e["full"] is False for e in events.events[1:])
    assert changed[0]["values"] == {a[1]: first["values"].get(a[1], 0) + 1}
    assert changed[0]["seq"] > first["seq"] and events.ids[-1] == str(events.events[-1]["seq"])


def test_psh005_a_reconnect_with_its_last_id_gets_the_difference(r, city, open_stream):
    geo, app, a, _b = city
    client = client_of(app, "li.wei")
    first = open_stream(client).nth(0)
    feed(r, [incident(geo, a[2], redis_now_ms(r) - 1_000, "dispute", 3)])
    again = open_stream(client, headers={"Last-Event-ID": str(first["seq"])}).nth(0)
    assert again["full"] is False and again["values"] == {a[2]: first["values"].get(a[2], 0) + 1}
    forged = open_stream(client, headers={"Last-Event-ID": "x' or 1=1"}).nth(0)
    assert forged["full"] is True


def test_psh006_streams_beyond_the_cap_get_503_until_one_ends(r, loaded_city, open_stream):
    add_user(r, "li.wei", PASSWORD, "street", STREET_A)
    limits = PushLimits(interval_s=0.05, poll_s=0.02, heartbeat_s=0.1, max_age_s=1.5,
                        max_streams=2)  # fmt: skip
    client = client_of(make_app(r, loaded_city, limits), "li.wei")
    for events in (open_stream(client), open_stream(client)):
        events.nth(0)
    refused = client.get(PUSH_PATH)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
    # a stream that reaches its age frees its slot
    wait_until(lambda: client.head(PUSH_PATH).status_code == 200, timeout=5,
               interval=0.1, what="a freed stream slot")  # fmt: skip


def test_psh007_a_stream_ends_at_its_max_age(r, loaded_city):
    add_user(r, "li.wei", PASSWORD, "street", STREET_A)
    limits = PushLimits(interval_s=0.05, poll_s=0.02, heartbeat_s=0.1, max_age_s=0.5)
    client = client_of(make_app(r, loaded_city, limits), "li.wei")
    resp = client.get(PUSH_PATH, buffered=False)
    body = "".join(c.decode() for c in resp.response)  # returns only because the stream ends
    assert "event: grids" in body and "event: age" in body


def test_psh008_view_events_change_only_with_what_the_user_may_see(r, city, open_stream):
    """The view event's alerts entry follows the open alerts of the user's scope only (an
    alert in another street changes nothing for them); the fleet and slow entries follow the
    feeds; the fleet badge's clock and stale times travel with it."""
    geo, _app, a, b = city
    add_user(r, "wang", PASSWORD, "district", geo.areas.root_id)
    limits = PushLimits(interval_s=0.05, poll_s=0.02, heartbeat_s=0.3, max_age_s=20,
                        slow_s=0.1)  # fmt: skip
    app = make_app(r, geo, limits)
    street = open_stream(client_of(app, "li.wei"))
    city_wide = open_stream(client_of(app, "wang"))
    wait_until(lambda: street.views and city_wide.views, timeout=10, what="first view events")
    first = street.views[0]
    assert set(first["v"]) == {"alerts", "fleet", "slow"}
    assert set(first["fleet"]) == {"server_ms", "gauges", "trucks", "stale_ms"}
    assert first["fleet"]["stale_ms"] == {"gauges": 180_000, "trucks": 120_000}

    def digests(events: Events) -> list[str]:
        seen = [v["v"]["alerts"].split(".")[0] for v in events.views]
        return [d for k, d in enumerate(seen) if k == 0 or d != seen[k - 1]]

    store.create_alert(r, make_alert("flood:psh:b", [b[0]]), geo)
    wait_until(lambda: len(digests(city_wide)) == 2, timeout=10, what="the district sees B's")
    store.create_alert(r, make_alert("flood:psh:a", [a[1]]), geo)
    wait_until(lambda: len(digests(street)) >= 2, timeout=10, what="the street sees A's")
    assert len(digests(street)) == 2  # B's alert never changed the street's entry
    assert len(digests(city_wide)) == 3

    r.hset(HEALTH, f"{GAUGES}|last_apply_ms", 1_781_000_000_123)
    wait_until(lambda: street.views[-1]["fleet"]["gauges"] == 1_781_000_000_123, timeout=10,
               what="the gauge feed's apply in a view event")  # fmt: skip
    assert street.views[-1]["v"]["fleet"].startswith("1781000000123.")
    slow = int(street.views[-1]["v"]["slow"][1:])
    feed(r, [incident(geo, a[3], redis_now_ms(r) - 1_000, "dispute", 3)])
    wait_until(lambda: int(street.views[-1]["v"]["slow"][1:]) > slow, timeout=10,
               what="the slow entry moving with an applied incident")  # fmt: skip
