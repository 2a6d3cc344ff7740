"""Forged requests to every Dash callback and every route get nothing outside the session's scope.

The real app (create_app) on real Redis with the demo city, incidents applied by the real worker
and stored alerts. Users of every level and a wall sign in through the real /login form and
/wall/<token> link. The walks below are built from the app itself — the callback graph Dash
serves at /_dash-dependencies and Flask's url_map — so a new callback or route is forged
against without editing this file.

What "nothing outside the scope" means here, for a user whose area is A:
- no id or name of an area that is neither A, below A, nor above A (siblings and cousins);
- no text of an incident or alert that lies only outside A;
- no reporter (name, phone) unless the level's policy shows personal data, and never the
  reporter of an incident outside A.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import itsdangerous
import pytest
from shapely import get_coordinates

from cockpit import heatservice
from cockpit.alerts.model import Alert, alert_id
from cockpit.alerts.store import create_alert, get_alert_raw
from cockpit.areastore import Geography
from cockpit.guard import ACTION_ATTR, PUBLIC
from cockpit.i18n import t
from cockpit.layout import VIEWS
from cockpit.policy import WALL, User, authorize, may_see_personal_data
from cockpit.settings import Settings
from cockpit.users import (
    add_user,
    create_wall_token,
    disable_user,
    load_user,
    load_wall,
    revoke_wall_token,
    set_password,
    token_id,
)
from cockpit.webapp import DASH_ROUTES, create_app
from geo.areas import LEVELS
from tests.unit.test_heatservice import feed

PASSWORD = "a long enough password"
COOKIE = "cockpit_session"
UPDATE = "/_dash-update-component"
BELOW_CITY = ("grid", "community", "street", "district")
OWN_TEXT = "frg own-grid blocked drain"
PERSON = "Qiu Shaowen"  # the reporter of the incident in the users' own grid
PHONE = "13912345678"
OWN_ALERT_TITLE = "frg own-grid flood warning"
STRADDLE_TITLE = "frg catchment across two streets"


@dataclass
class City:
    """The world the forgers attack: users along one chain of areas and secrets beside it."""

    geo: Geography
    chain: dict[str, str]  # level -> the area of that level's user (grid ... city)
    outsiders: dict[str, str]  # level -> a grid just outside that level's area
    secrets: dict[str, tuple[str, str, str, str]]  # grid -> (incident, text, reporter, alert)
    wall_token: str  # a wall on the street of the chain
    own_incident: str = "frg-own"
    users: dict[str, str] = field(default_factory=dict)  # level -> user name


def _incident(geo: Geography, inc_id: str, grid: str, text: str, reporter: str,
              ts_ms: int) -> dict[str, str]:  # fmt: skip
    lon, lat = get_coordinates(geo.areas.frame.geometry.loc[grid].representative_point())[0]
    return {"id": inc_id, "ts": str(ts_ms), "category": "dispute", "lat": f"{lat:.7f}",
            "lon": f"{lon:.7f}", "text": text, "address": f"{text} road", "reporter": reporter}


def _alert(r, geo: Geography, key: str, grids: list[str], title: str,
           severity: str = "moderate") -> str:  # fmt: skip
    now = time.time()
    alert = Alert(id=alert_id(key), kind="flood_warning", severity=severity, status="new",
                  dedup_key=key, raised_at=now, updated_at=now, area_grids=grids,
                  title_en=title, title_zh=title, text=title)  # fmt: skip
    assert create_alert(r, alert, geo)
    return alert.id


@pytest.fixture
def city(r, loaded_city) -> Iterator[City]:
    """Users of every level along the chain of the city's first grid, a wall on its street;
    one incident and alert in that grid, and one of each in a grid just outside every level."""
    heatservice.forget_caches()
    geo = loaded_city
    areas = geo.areas
    grid = str(areas.grids.index[0])
    chain = {areas.level_of(a): a for a in [grid, *areas.ancestors(grid)]}
    assert set(chain) == set(LEVELS)
    outsiders = {}
    for level in BELOW_CITY:  # the city has nothing outside it
        area = chain[level]
        parent = areas.parent_of(area)
        inside = {area, *areas.descendants(area)}
        outsiders[level] = sorted(set(areas.descendants(parent, level="grid")) - inside)[0]
    now = int(r.time()[0]) * 1000
    rows = [_incident(geo, "frg-own", grid, OWN_TEXT, f"{PERSON} {PHONE}", now - 60_000)]
    secrets = {}
    for k, (level, other) in enumerate(outsiders.items()):
        inc = f"frg-out-{level}"
        text = f"frg secret text {k} outside the {level}"
        reporter = f"Secret Reporter{k} 1370000000{k}"
        rows.append(_incident(geo, inc, other, text, reporter, now - 60_000))
        secrets[other] = (inc, text, reporter, _alert(r, geo, f"frg-{other}", [other],
                                                       f"frg secret alert {k} outside"))
    feed(r, rows)
    built = City(geo=geo, chain=chain, outsiders=outsiders, secrets=secrets,
                 wall_token=create_wall_token(r, chain["street"], "frg wall"))  # fmt: skip
    _alert(r, geo, "frg-own", [grid], OWN_ALERT_TITLE)
    # an alert whose first grid lies in another street: in every user's scope through the
    # second (severe and new, so the wall also takes the focus on it)
    _alert(r, geo, "frg-straddle", [outsiders["street"], grid], STRADDLE_TITLE, "severe")
    for level, area in chain.items():
        built.users[level] = f"frg.{level}"
        add_user(r, built.users[level], PASSWORD, level, area)
    yield built
    heatservice.forget_caches()


@pytest.fixture
def app(city, redis_url):
    return create_app(Settings.from_env({"COCKPIT_REDIS_URL": redis_url}))


def sign_in(app, name: str):
    client = app.server.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return client


def wall_client(app, city: City):
    client = app.server.test_client()
    assert client.get(f"/wall/{city.wall_token}").status_code == 303
    return client


def session_user(r, city: City, level: str) -> User:
    if level == WALL:
        user = load_wall(r, token_id(city.wall_token))
    else:
        user = load_user(r, city.users[level])
    assert user is not None
    return user


# -- what a user may not receive ----------------------------------------------------------------


@dataclass
class Forbidden:
    """Everything a response to ``user`` must not carry, and a check that finds it."""

    user: User
    patterns: list[tuple[str, re.Pattern]]

    def leaks(self, body: str) -> list[str]:
        return [f"{what}: {m.group(0)!r}" for what, p in self.patterns if (m := p.search(body))]


def _alternation(words: list[str]) -> re.Pattern:
    # whole ids / names only: "Luoshe C1 Grid 1" must not match inside "Luoshe C1 Grid 12"
    escaped = sorted((re.escape(w) for w in set(words) if w), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(escaped) + r")(?![\w-])")


def forbidden(city: City, user: User) -> Forbidden:
    areas = city.geo.areas
    mine = {user.area_id, *areas.descendants(user.area_id)}
    above = set(areas.ancestors(user.area_id))
    outside = [a for a in areas.frame.index if a not in mine and a not in above]
    names = [str(areas.frame.at[a, col]) for a in outside for col in ("name_en", "name_zh")]
    texts = [s for g, (_i, text, reporter, _a) in city.secrets.items() if g not in mine
             for s in (text, reporter)]  # fmt: skip
    texts += [f"frg secret alert {k} outside" for k, g in enumerate(city.outsiders.values())
              if g not in mine]  # fmt: skip
    patterns = [("out-of-scope text", _alternation(texts))] if texts else []
    if outside:
        patterns += [("out-of-scope area id", _alternation(outside)),
                     ("out-of-scope area name", _alternation(names))]  # fmt: skip
    if not may_see_personal_data(user):
        patterns.append(("personal data", _alternation([PERSON, PHONE])))
    return Forbidden(user, patterns)


class Fetched:
    """What a GET answered; of an event stream (never ending by itself) its first event."""

    def __init__(self, client, url: str) -> None:  # type: ignore[no-untyped-def]
        resp = client.get(url, buffered=False)
        self.status_code, self.headers = resp.status_code, resp.headers
        if resp.mimetype != "text/event-stream":
            self.data = resp.get_data()
            return
        chunks: list[bytes] = []
        for chunk in resp.response:
            chunks.append(chunk if isinstance(chunk, bytes) else chunk.encode())
            if b"event: " in chunk or len(chunks) > 3:
                break
        resp.close()
        self.data = b"".join(chunks)
        assert b"event: grids" in self.data, (url, self.data[:200])


def readable(raw: bytes) -> str:
    """A body as text with JSON unescaped (Dash may send "\\u6d1b" for 洛)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text


# -- the callback walk ----------------------------------------------------------------------------


def _component_id(raw: str) -> str | dict:
    return json.loads(raw) if raw.startswith("{") else raw


def _outputs(dep: dict) -> list[dict]:
    parts = [p.rsplit(".", 1) for p in dep["output"].strip(".").split("...")]
    return [{"id": _component_id(id_), "property": prop} for id_, prop in parts]


def _prop_id(id_: object, prop: str) -> str:
    if isinstance(id_, dict):
        return json.dumps(id_, separators=(",", ":"), sort_keys=True) + "." + prop
    return f"{id_}.{prop}"


Page = dict[tuple[str, str], object]  # (component id, property) -> the value a page has
BASE = {"n_intervals": 1, "n_clicks": 1, "search": "", "pathname": "/"}  # a live page's values
VIEW_PATHS = ["/", "/officer", "/leader", "/wall"]


def _components(tree: object) -> Iterator[dict]:
    """Every component (a dict with "props") in a layout as Dash serialises it."""
    if isinstance(tree, dict):
        if isinstance(tree.get("props"), dict):
            yield tree
        for value in tree.values():
            yield from _components(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _components(value)


def live_values(client, deps: list[dict]) -> Page:
    """(component id, property) -> value, as the pages this user opens start with: the shell
    from /_dash-layout and each view the router gives this user."""
    trees = [client.get("/_dash-layout").get_json()]
    router = next(d for d in deps if any(i["property"] == "pathname" for i in d["inputs"]))
    for path in VIEW_PATHS:
        request = _request(router, path, {0}, 0, [], {})
        trees.append(client.post(UPDATE, json=request.payload).get_json())
    found = {}
    for tree in trees:
        for component in _components(tree):
            props = component["props"]
            if isinstance(props.get("id"), str):
                found.update(((props["id"], k), v) for k, v in props.items())
    return found


def forged_values(city: City, user: User) -> list[object]:
    """Values a forger puts into inputs and stores: the nearest and the farthest other area, the
    area above the user's, an incident and an alert outside, clicks on their map features,
    tampered stores, views, and the user's own incident (so the walk also reaches the answers
    that carry data, personal data included)."""
    areas = city.geo.areas
    mine = {user.area_id, *areas.descendants(user.area_id)}
    foreign = [g for g in city.outsiders.values() if g not in mine]  # nearest first
    parent = areas.parent_of(user.area_id)
    near = foreign[:1]
    incidents = [city.secrets[g][0] for g in near]
    ids: list[str] = [*near, *foreign[1:][-1:], *([parent] if parent else []), *incidents,
                      *(city.secrets[g][3] for g in near), city.own_incident]  # fmt: skip
    values: list[object] = [*ids, "/officer", "/leader"]
    values += [f"?area={a}" for a in foreign[-1:]]
    values += [{"type": "Feature", "id": i, "properties": {"id": i}} for i in near + incidents]
    values += [
        {"data": "x", "list": "y", "key": "z", "name": "incidents:all", "seq": 0, "view": "x",
         "version": "forged", "breaks": [1, 2], "gauges": 1, "trucks": 1},
        [*foreign, user.area_id], [1, 2.5, 1e308], None,
    ]  # fmt: skip
    return values


@dataclass
class Request:
    label: str
    payload: dict


def _item(spec: dict, value: object, live: bool, strings: list[str],
          page: Page) -> object:  # fmt: skip
    """One input or state of a request: ``value`` if forged (live), else the page's own value.
    A pattern-matching dependency becomes components whose wildcard keys carry forged ids."""
    prop = spec["property"]
    id_ = _component_id(spec["id"])
    wild = [k for k, v in id_.items() if isinstance(v, list)] if isinstance(id_, dict) else []
    if wild:
        if not live or not isinstance(value, str):
            return []
        return [{"id": {**id_, **dict(zip(wild, combo, strict=True))}, "property": prop,
                 "value": 1 if prop == "n_clicks" else value}
                for combo in itertools.product([value, *strings], repeat=len(wild))]  # fmt: skip
    if live:
        return {"id": id_, "property": prop, "value": value}
    return {"id": id_, "property": prop, "value": page.get((spec["id"], prop), BASE.get(prop))}


def _request(dep: dict, value: object, forged: set[int], trigger: int, strings: list[str],
             page: Page, fired: int = 0) -> Request:  # fmt: skip
    """The request Dash's renderer sends for ``dep``, with ``value`` in the ``forged`` inputs
    and states; input ``trigger`` changed (its ``fired``-th component for a pattern)."""
    specs = [*dep["inputs"], *dep["state"]]
    filled = [_item(spec, value, k in forged, strings, page) for k, spec in enumerate(specs)]
    n_inputs = len(dep["inputs"])
    source = filled[trigger]
    source = source[fired : fired + 1] if isinstance(source, list) else [source]
    changed = [_prop_id(x["id"], x["property"]) for x in source]
    outputs = _outputs(dep)
    payload = {"output": dep["output"], "outputs": outputs if len(outputs) > 1 else outputs[0],
               "inputs": filled[:n_inputs], "state": filled[n_inputs:],
               "changedPropIds": changed}  # fmt: skip
    return Request(f"{dep['output']} <- {changed} = {value!r}", payload)


COUNTERS = ("n_intervals", "n_clicks")  # timer ticks and clicks: the values carry no ids


def _forgeable(spec: dict) -> bool:
    return spec["property"] not in COUNTERS or "[" in spec["id"]  # a pattern: its ids are forged


def callback_requests(deps: list[dict], values: list[object],
                      page: Page) -> Iterator[Request]:  # fmt: skip
    """For every server callback: the request a live page sends, then for every forged value,
    each input that carries ids or data fired with that value (every store forged too; ticks,
    clicks and the other inputs as the page has them). A forged pattern input is a set of
    buttons with forged ids; each of them is clicked once."""
    strings = ["acknowledge", "resolve"]  # the other wildcard keys of a forged button
    for dep in deps:
        if dep.get("clientside_function"):
            continue
        inputs, specs = dep["inputs"], [*dep["inputs"], *dep["state"]]
        states = set(range(len(inputs), len(specs)))
        yield _request(dep, None, set(), 0, strings, page)
        for value in values:
            for k, spec in enumerate(inputs):
                if not _forgeable(spec):
                    continue
                shown = _item(spec, value, True, strings, page)
                for fired in range(len(shown) if isinstance(shown, list) else 1):
                    yield _request(dep, value, {k, *states}, k, strings, page, fired)
            if states and not any(_forgeable(spec) for spec in inputs):
                yield _request(dep, value, states, 0, strings, page)


def server_callback_outputs(app) -> set[str]:
    return {k for k, cb in app.callback_map.items() if cb.get("callback")}


def walk_callbacks(client, deps: list[dict], values: list[object],
                   page: Page) -> Iterator[tuple[Request, Any]]:
    for req in callback_requests(deps, values, page):
        yield req, client.post(UPDATE, json=req.payload)


# -- the route walk -------------------------------------------------------------------------------

ARG_VALUES = ["grid", "boundaries", "reference", "15m", "1h", "24h", "en"]
QUERIES = ["", "layer=gauges", "layer=sites", "category=petition", "category=all"]


def is_public(app, rule) -> bool:
    """Routes that show nothing of the city (sign-in, health, Dash's scripts and our assets)."""
    view = app.server.view_functions[rule.endpoint]
    return DASH_ROUTES.get(rule.rule) == PUBLIC or getattr(view, ACTION_ATTR, None) == PUBLIC


def route_requests(app, city: City, user: User | None) -> Iterator[tuple[Any, str]]:
    """Every GET route of the server with its path arguments tried with plausible and foreign
    values, and forged query strings (another area, a category, a layer); public routes once
    per argument value (they show nothing of the city)."""
    areas = city.geo.areas
    mine = {user.area_id, *areas.descendants(user.area_id)} if user else set()
    foreign = [g for g in city.outsiders.values() if g not in mine]
    parent = areas.parent_of(user.area_id) if user else None
    queries = QUERIES + [f"area={a}" for a in [*foreign, parent] if a]
    queries += [f"area={a}&category=all" for a in foreign]
    if user:
        queries.append(f"area={user.area_id}")
    for rule in app.server.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint in ("signin.wall", "set_lang"):
            continue  # signing a wall in or setting the language would change the session
        args = sorted(rule.arguments)
        public = is_public(app, rule)
        for combo in itertools.product(ARG_VALUES + foreign, repeat=len(args)):
            path = rule.build(dict(zip(args, combo, strict=True)), append_unknown=False)[1]
            for query in [""] if public else queries:
                yield rule, f"{path}?{query}" if query else path


def test_frg001_every_app_of_a_process_gets_every_callback(app, redis_url):
    """Dash hands dash.callback registrations to the first app only; create_app gives each app
    every callback (tests, and anything else that builds two apps in one process)."""
    second = create_app(Settings.from_env({"COCKPIT_REDIS_URL": redis_url}))
    assert app.callback_map.keys() == second.callback_map.keys()
    assert len(server_callback_outputs(app)) >= 10
    for built in (app, second):
        client = sign_in(built, "frg.grid")
        deps = client.get("/_dash-dependencies").get_json()
        assert {d["output"] for d in deps} == set(app.callback_map)
        for cb in built.callback_map.values():
            if cb.get("callback"):  # every server callback still carries its decision
                assert getattr(cb["callback"], ACTION_ATTR, None), cb["output"]


WALKERS = [*BELOW_CITY, WALL]  # the city has nothing outside its scope to forge towards


@pytest.mark.parametrize("level", WALKERS)
def test_frg002_forged_callback_inputs_and_stores_get_nothing_outside_scope(app, city, r, level):
    user = session_user(r, city, level)
    client = wall_client(app, city) if level == WALL else sign_in(app, city.users[level])
    deps = client.get("/_dash-dependencies").get_json()
    assert {d["output"] for d in deps if not d.get("clientside_function")} == (
        server_callback_outputs(app)
    )
    guard = forbidden(city, user)
    outsiders_before = {g: get_alert_raw(r, s[3]) for g, s in city.secrets.items()}
    answered: dict[str, int] = {}
    bodies = []
    page = live_values(client, deps)
    for req, resp in walk_callbacks(client, deps, forged_values(city, user), page):
        assert resp.status_code in (200, 204), (req.label, resp.status_code, resp.data[:300])
        body = readable(resp.data)
        assert not guard.leaks(body), (req.label, guard.leaks(body))
        if resp.status_code == 200:
            answered[req.payload["output"]] = answered.get(req.payload["output"], 0) + 1
            bodies.append(body)
    # forged alert actions changed nothing outside the scope
    mine = {user.area_id, *city.geo.areas.descendants(user.area_id)}
    for grid, (_inc, _t, _rep, alert) in city.secrets.items():
        if grid not in mine:
            assert get_alert_raw(r, alert) == outsiders_before[grid], f"alert in {grid} changed"
    # the walk reached the answers that carry data, so the checks above could fail
    everything = "\n".join(bodies)
    if authorize(user, "view_incidents"):
        assert OWN_TEXT in everything
        assert (PERSON in everything) == may_see_personal_data(user)
    assert OWN_ALERT_TITLE in everything and STRADDLE_TITLE in everything
    # and every callback the level may use answered something (it was really exercised)
    allowed = {out for out in server_callback_outputs(app)
               if authorize(user, getattr(app.callback_map[out]["callback"], ACTION_ATTR))}
    assert allowed and allowed <= set(answered), allowed - set(answered)


@pytest.mark.parametrize("level", WALKERS)
def test_frg003_every_route_with_forged_arguments_gives_nothing_outside_scope(app, city, r,
                                                                              level):  # fmt: skip
    user = session_user(r, city, level)
    client = wall_client(app, city) if level == WALL else sign_in(app, city.users[level])
    guard = forbidden(city, user)
    statuses: dict[int, int] = {}
    for _rule, url in route_requests(app, city, user):
        resp = Fetched(client, url)
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        assert resp.status_code in (200, 204, 304, 400, 403, 404), (url, resp.status_code)
        body = readable(resp.data)
        assert not guard.leaks(body), (url, guard.leaks(body))
        if "area=" in url and url.split("area=")[1].split("&")[0] != user.area_id:
            assert resp.status_code in (400, 403, 404) or "/heat/" not in url, url
    assert statuses.get(200, 0) > 0 and statuses.get(403, 0) > 0
    # the map's shapes are exactly the user's grids (so the leak check above can fail)
    features = json.loads(client.get("/geo/grid.geojson").data)["features"]
    areas = city.geo.areas
    scope = [user.area_id, *areas.descendants(user.area_id)]
    assert {f["id"] for f in features} == {a for a in scope if areas.level_of(a) == "grid"}


# -- sessions that no longer hold -------------------------------------------------------------


def _assert_refused_everywhere(app, city: City, client, what: str) -> None:
    """Every callback answers 401 and every route 401 or a redirect to /login; no data."""
    deps_resp = client.get("/_dash-dependencies")
    assert deps_resp.status_code == 401, what
    # the graph from a signed-in client, so the forged requests are well-formed
    deps = sign_in(app, city.users["city"]).get("/_dash-dependencies").get_json()
    values = forged_values(city, session_user(app_redis(app), city, "city"))[:6]
    count = 0
    for req, resp in walk_callbacks(client, deps, values, {}):
        count += 1
        assert resp.status_code == 401, (what, req.label, resp.status_code)
        assert _no_city_data(city, readable(resp.data)), (what, req.label)
    assert count > 50
    routes = 0
    for rule, url in route_requests(app, city, None):
        if is_public(app, rule):
            continue
        routes += 1
        resp = Fetched(client, url)
        location = resp.headers.get("Location", "")
        assert resp.status_code == 401 or (resp.status_code == 302 and "/login" in location), (
            what, url, resp.status_code)  # fmt: skip
        assert _no_city_data(city, readable(resp.data)), (what, url)
    assert routes > 20


def app_redis(app):
    return app.server.extensions["cockpit"].redis


def _no_city_data(city: City, body: str) -> bool:
    secrets = [OWN_TEXT, PERSON, PHONE, OWN_ALERT_TITLE, "FeatureCollection", "coordinates"]
    secrets += [s for v in city.secrets.values() for s in v[1:3]]
    return not any(s in body for s in secrets)


def test_frg004_no_session_gets_401_or_the_sign_in_page(app, city):
    _assert_refused_everywhere(app, city, app.server.test_client(), "no session")


def test_frg005_password_change_ends_the_session(app, city, r):
    client = sign_in(app, city.users["street"])
    assert client.get("/geo/grid.geojson").status_code == 200
    set_password(r, city.users["street"], "another long password")
    _assert_refused_everywhere(app, city, client, "password changed")


def test_frg006_disabled_user_is_refused_at_once(app, city, r):
    client = sign_in(app, city.users["district"])
    assert client.get("/geo/grid.geojson").status_code == 200
    disable_user(r, city.users["district"])
    _assert_refused_everywhere(app, city, client, "user disabled")


def test_frg007_revoked_wall_token_ends_the_display(app, city, r):
    client = wall_client(app, city)
    assert client.get("/geo/grid.geojson").status_code == 200
    revoke_wall_token(r, token_id(city.wall_token))
    _assert_refused_everywhere(app, city, client, "wall token revoked")
    client.delete_cookie(COOKIE)  # only the 90-day remember cookie is left: it signs in no one
    _assert_refused_everywhere(app, city, client, "wall remember cookie after revoke")


def _resign(app, client, age_s: float) -> None:
    """Replace the client's session cookie by the same session signed ``age_s`` seconds ago."""
    server = app.server
    serializer = server.session_interface.get_signing_serializer(server)
    data = serializer.loads(client.get_cookie(COOKIE).value)
    signer = serializer.make_signer()
    issued = int(time.time() - age_s)
    payload = serializer.dump_payload(data)
    # itsdangerous's own format, with the timestamp of a session issued age_s ago
    stamp = itsdangerous.encoding.base64_encode(itsdangerous.encoding.int_to_bytes(issued))
    value = payload + signer.sep + stamp
    client.set_cookie(COOKIE, (value + signer.sep + signer.get_signature(value)).decode())


def test_frg008_a_session_older_than_its_lifetime_is_refused(app, city):
    client = sign_in(app, city.users["community"])
    lifetime = app.server.permanent_session_lifetime.total_seconds()
    _resign(app, client, 60)  # a recent signature of the same session still holds
    assert client.get("/geo/grid.geojson").status_code == 200
    _resign(app, client, lifetime + 60)
    _assert_refused_everywhere(app, city, client, "aged session cookie")


@pytest.mark.parametrize("level", [*LEVELS, WALL])
def test_frg009_the_router_opens_only_the_views_the_policy_allows(app, city, r, level):
    user = session_user(r, city, level)
    client = wall_client(app, city) if level == WALL else sign_in(app, city.users[level])
    deps = client.get("/_dash-dependencies").get_json()
    router = next(d for d in deps if any(i["property"] == "pathname" for i in d["inputs"]))
    refused = t("not_for_your_level", user.lang)
    opened = set()
    for path, (_label, action) in VIEWS.items():
        resp = client.post(UPDATE, json=_request(router, path, {0}, 0, [], {}).payload)
        assert resp.status_code == 200
        classes = {c["props"].get("className") for c in _components(resp.get_json())}
        views = {c for c in classes if isinstance(c, str) and c.startswith("view ")}
        if authorize(user, action):
            assert views and refused not in resp.get_data(as_text=True), (level, path)
            opened.add(path)
        else:
            assert not views and refused in resp.get_data(as_text=True), (level, path)
    # the policy gives each level something, and keeps single incidents from the wall
    assert "/" in opened and ("/officer" in opened) == (level != WALL)
