"""Alerts on screen in real headless Chromium against `cockpit demo`: a CAP document pushed to
`cockpit:in:cap` goes through the alerts engine and shows as a marker in its severity colour on
the operations map, in the operations and leader alert lists of users whose scope covers it (and
not of others), takes the wall's focus and hands it back; hostile feed text stays text."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from shapely import get_coordinates

from cockpit.alerts.cap import export_cap
from cockpit.alerts.engine import CAP_STREAM
from cockpit.alerts.model import Alert, alert_id
from cockpit.alerts.store import AUDIT, get_alert
from cockpit.areastore import load_geography
from cockpit.users import create_wall_token
from tests.conftest import wait_until
from tests.e2e.conftest import make_browser, outside, requested_urls, screenshot, sign_in

pytestmark = pytest.mark.e2e

SENDER = "e2e@cockpit.test"
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
STREET_GRID = "wx-hs-01-003-02"  # demo-street's street (wx-hs-01), not demo-community's community
COMMUNITY_GRID = "wx-hs-01-001-02"  # demo-community's community (wx-hs-01-001)
WALL_GRID = "wx-hs-02-001-01"  # another street, for the wall's focus

# an alert's marker, if on a map: [colour painted, colour the script chose] (rgb, hex)
MARKER = ("const s = window.cockpitAlerts && window.cockpitAlerts.state;"
          "const m = s && s.markers[arguments[0]]; const e = m && m._map && m.getElement();"
          "return e && e.firstChild ? [getComputedStyle(e.firstChild).backgroundColor,"
          " s.colors[arguments[0]]] : null;")  # fmt: skip
CSS_VAR = ("return getComputedStyle(document.documentElement)"
           ".getPropertyValue('--sev-' + arguments[0]).trim();")  # fmt: skip
LIST_IDS = ("return [...document.querySelectorAll(arguments[0] + ' .alist-row')]"
            ".map(e => e.dataset.alert);")  # fmt: skip
LIST_READY = "return !!document.querySelector(arguments[0] + ' [data-sent-ms]');"
MAP_VIEW = ("const m = window.cockpitAlerts.state.map; if (!m) return null;"
            "const c = m.getCenter(); return [c.lat, c.lng, m.getZoom()];")  # fmt: skip
# the wall map as Leaflet has it (any drawn grid knows its map)
WALL_VIEW = ("const l = Object.values((window.cockpitMap || {state: {layers: {}}}).state.layers)"
             ".find(l => l._map); if (!l) return null; const m = l._map, c = m.getCenter();"
             "return [c.lat, c.lng, m.getZoom()];")  # fmt: skip
# what the wall's script holds, and its stream's state (on, events, last view versions)
WALL_STATE = ("const w = window.cockpitWall, p = window.cockpitPush || {};"
              "return JSON.stringify({wall: w && w.state, push: {on: p.on, events: p.events,"
              " views: p.views, view: p.view, at: p.receivedAt}, now: Date.now()});")  # fmt: skip
LEADER_AREAS = ("return window.cockpitLeader && "
                "Object.values(window.cockpitLeader.state.layers).some(l => l._map);")  # fmt: skip
OPS_LIST = ".view-operations .alert-panel"
LEADER_LIST = ".view-leader .alert-panel"


def _raise_cap(server, grid: str, severity: str, tag: str) -> tuple[str, str]:
    """Push a CAP 1.2 Alert (a point in ``grid``) to the engine's input; returns (alert id,
    title) once the engine has stored it."""
    r = server.redis()
    geo = load_geography(r)
    lon, lat = get_coordinates(geo.areas.frame.geometry.loc[grid].representative_point())[0]
    title = f"{tag} {XSS}"
    now = time.time()
    draft = Alert(id=f"{tag}-{int(now)}", kind="cap", severity=severity, status="new",
                  dedup_key=tag, raised_at=now, updated_at=now, category="public_security",
                  geometry={"type": "Point", "coordinates": [lon, lat]}, title_en=title,
                  title_zh=title, text="drill")  # fmt: skip
    r.xadd(CAP_STREAM, {"xml": export_cap(draft, sender=SENDER)})
    stored_id = alert_id(f"cap:{SENDER}:{draft.id}")
    stored = wait_until(lambda: get_alert(r, stored_id), timeout=30, what=f"CAP {tag} stored")
    assert stored.area_grids == [grid] and stored.severity == severity
    return stored_id, title


def _rgb(hex_color: str) -> str:
    h = hex_color.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[k : k + 2], 16) for k in (0, 2, 4)))


def _grid_bounds(server, grid: str) -> tuple[float, float, float, float]:
    geo = load_geography(server.redis())
    return tuple(geo.areas.frame.geometry.loc[grid].bounds)  # minx, miny, maxx, maxy


def _inside(view, bounds) -> bool:
    minx, miny, maxx, maxy = bounds
    return bool(view) and miny <= view[0] <= maxy and minx <= view[1] <= maxx


def _row(driver, where: str, alert: str):  # type: ignore[no-untyped-def]
    """An alert's row, found afresh (the list re-renders when alerts change)."""
    return driver.find_element(By.CSS_SELECTOR, f'{where} .alist-row[data-alert="{alert}"]')


def _row_text(driver, where: str, alert: str) -> str:
    """An alert row's text and status, read in one step (no element kept across renders)."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]);"
        "return e ? e.innerText + ' ' + e.dataset.status : '';",
        f'{where} .alist-row[data-alert="{alert}"]') or ""  # fmt: skip


def _list_ids(driver, where: str) -> list[str]:
    wait_until(lambda: driver.execute_script(LIST_READY, where), timeout=20,
               what=f"{where} filled by the server")  # fmt: skip
    return driver.execute_script(LIST_IDS, where)


@pytest.fixture(scope="module")
def raised(demo_server) -> dict[str, tuple[str, str]]:
    """A severe alert in demo-street's street and a moderate one in demo-community's community."""
    return {
        "street": _raise_cap(demo_server, STREET_GRID, "severe", "als-street"),
        "community": _raise_cap(demo_server, COMMUNITY_GRID, "moderate", "als-community"),
    }


def test_als001_marker_and_list_on_the_operations_map(browser, demo_server, raised):
    street_id, title = raised["street"]
    community_id, _ = raised["community"]
    sign_in(browser, demo_server, "demo-street", "/")
    # the marker, in the severity colour defined once in alerts.css
    drawn = wait_until(lambda: browser.execute_script(MARKER, street_id), timeout=30,
                       what="street alert marker drawn")  # fmt: skip
    severe = browser.execute_script(CSS_VAR, "severe")
    assert severe.startswith("#") and drawn == [_rgb(severe), severe]
    moderate = browser.execute_script(CSS_VAR, "moderate")
    assert moderate != severe
    assert browser.execute_script(MARKER, community_id) == [_rgb(moderate), moderate]
    # the tooltip shows the feed title as text, with severity, status and the countdown
    tip = browser.execute_script(
        "const l = window.cockpitAlerts.state.markers[arguments[0]]; l.openTooltip();"
        "return l.getTooltip().getElement().innerText;", street_id)  # fmt: skip
    assert XSS in tip and "severe" in tip and "new" in tip and "escalates to street in" in tip
    # the list: the alert in its colour, with status, countdown and age, title as text
    ids = _list_ids(browser, OPS_LIST)
    assert street_id in ids and community_id in ids
    assert ids.index(street_id) < ids.index(community_id)  # most severe first
    row = _row(browser, OPS_LIST, street_id)
    assert row.find_element(By.CLASS_NAME, "alist-title").text == title
    badge = row.find_element(By.CLASS_NAME, "alist-badge")
    painted = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor;",
                                     badge)  # fmt: skip
    assert painted == _rgb(severe)
    wait_until(lambda: "escalates to street in" in (text := _row_text(browser, OPS_LIST, street_id))
               and "ago" in text, timeout=5, what="countdown and age filled")  # fmt: skip
    assert browser.execute_script("return window.__xss") is None
    # a click on the alert flies the map to it
    before = browser.execute_script(MAP_VIEW)
    bounds = _grid_bounds(demo_server, STREET_GRID)
    assert not _inside(before, bounds)
    _row(browser, OPS_LIST, street_id).find_element(By.CLASS_NAME, "alist-zoom").click()
    after = wait_until(lambda: (v := browser.execute_script(MAP_VIEW)) and _inside(v, bounds)
                       and v[2] > before[2] and v, timeout=15,
                       what="map zoomed to the alert")  # fmt: skip
    _settled_view(browser, MAP_VIEW)  # the fly has ended: markers drawn at their size
    browser.execute_script("window.cockpitAlerts.state.markers[arguments[0]].openTooltip();",
                           street_id)  # fmt: skip
    screenshot(browser, "alerts-operations.png")
    assert _inside(after, bounds)
    assert outside(requested_urls(browser)) == []

    # demo-community's scope does not cover the street alert: neither list nor marker has it
    other = make_browser()
    try:
        sign_in(other, demo_server, "demo-community", "/")
        wait_until(lambda: other.execute_script(MARKER, community_id), timeout=30,
                   what="community alert marker drawn")  # fmt: skip
        ids = _list_ids(other, OPS_LIST)
        assert community_id in ids and street_id not in ids
        assert other.execute_script(MARKER, street_id) is None
        assert title not in other.find_element(By.TAG_NAME, "body").text
    finally:
        other.quit()


def test_als002_leader_list_is_scoped_zooms_and_acknowledges(browser, demo_server, raised):
    street_id, title = raised["street"]
    community_id, _ = raised["community"]
    r = demo_server.redis()
    sign_in(browser, demo_server, "demo-street", "/leader")
    ids = _list_ids(browser, LEADER_LIST)
    assert street_id in ids and community_id in ids
    row = _row(browser, LEADER_LIST, street_id)
    assert row.find_element(By.CLASS_NAME, "alist-title").text == title
    wait_until(lambda: browser.execute_script(MARKER, street_id), timeout=30,
               what="marker on the leader map")  # fmt: skip
    # the map first zooms to the street's communities when they arrive; click after that
    wait_until(lambda: browser.execute_script(LEADER_AREAS), timeout=30, what="areas drawn")
    before = _settled_view(browser, MAP_VIEW)
    bounds = _grid_bounds(demo_server, STREET_GRID)
    _row(browser, LEADER_LIST, street_id).find_element(By.CLASS_NAME, "alist-zoom").click()
    wait_until(lambda: (v := browser.execute_script(MAP_VIEW)) and _inside(v, bounds)
               and v[2] > before[2], timeout=15, what="leader map zoomed to the alert")  # fmt: skip
    screenshot(browser, "alerts-leader.png")
    # acknowledging from the list goes through act(): status, audit entry with the user
    audit_before = r.xlen(AUDIT)
    _row(browser, LEADER_LIST, street_id).find_element(By.CLASS_NAME, "alist-acknowledge").click()
    wait_until(lambda: get_alert(r, street_id).status == "acknowledged", timeout=15,
               what="acknowledged in Redis")  # fmt: skip
    entries = [f for _, f in r.xrange(AUDIT, count=100_000)][audit_before:]
    assert any(f[b"alert_id"].decode() == street_id and f[b"who"] == b"demo-street"
               and f[b"action"] == b"acknowledge" for f in entries)  # fmt: skip
    wait_until(lambda: "acknowledged" in _row_text(browser, LEADER_LIST, street_id),
               timeout=15, what="list shows it")  # fmt: skip
    assert browser.execute_script("return window.__xss") is None

    other = make_browser()
    try:
        sign_in(other, demo_server, "demo-community", "/leader")
        ids = _list_ids(other, LEADER_LIST)
        assert community_id in ids and street_id not in ids
    finally:
        other.quit()


def test_als003_new_critical_alert_takes_the_wall_focus_and_returns(demo_server):
    token = create_wall_token(demo_server.redis(), "wx", "alerts wall")
    wall = make_browser(1920, 1080)
    try:
        wall.get(f"{demo_server.base_url}/wall/{token}")
        wait_until(lambda: wall.current_url.endswith("/wall"), timeout=15, what="on /wall")
        wait_until(lambda: wall.execute_script("return !!window.cockpitWall"), timeout=20,
                   what="wall script")  # fmt: skip
        # a short hold and no rotation step during the test, so "back" is one known area
        wall.execute_script("Object.assign(window.cockpitWall.config, {focusS: 6, rotateS: 600});")
        # once the server has answered (alert tiles drawn) and the wall has seen its answer,
        # any focus it offered (an earlier test's severe alert) must be over
        wait_until(lambda: wall.find_elements(By.CSS_SELECTOR, "#wall-alerts .sev"), timeout=20,
                   what="wall alert tiles")  # fmt: skip
        seen = wall.execute_script("return window.cockpitWall.state.ticks") + 2
        wait_until(lambda: wall.execute_script(
            "const s = window.cockpitWall.state; return s.ticks >= arguments[0] && "
            "s.mode === 'rotate' && s.last !== null && s.offered === s.seenFocus;", seen),
            timeout=40, what="wall rotating (any earlier focus handed back)")  # fmt: skip
        target = wall.find_element(By.ID, "wall-area").text
        home = _settled_view(wall, WALL_VIEW)  # the overview, once the fly there has ended

        alert, title = _raise_cap(demo_server, WALL_GRID, "extreme", "als-wall")
        bounds = _grid_bounds(demo_server, WALL_GRID)
        try:
            focused = wait_until(lambda: (v := _wall_view(wall)) and _inside(v, bounds)
                                 and v[2] > home[2] + 2 and v, timeout=30,
                                 what="wall zoomed to the new critical alert")  # fmt: skip
        except AssertionError as failed:  # say what the wall had, for a failure seen in CI
            raise AssertionError(f"{failed}; wall state {wall.execute_script(WALL_STATE)}, "
                                 f"view {_wall_view(wall)}, home {home}, grid {bounds}") from None
        assert wall.execute_script("return window.cockpitWall.state.focusId") == alert
        assert wall.find_element(By.ID, "wall-area").text.startswith("⚠")
        extreme = wall.execute_script(CSS_VAR, "extreme")
        assert wall.execute_script(MARKER, alert) == [_rgb(extreme), extreme]
        ticker = wall.find_element(By.ID, "wall-ticker")
        wait_until(lambda: title in ticker.get_attribute("textContent"), timeout=15,
                   what="alert in the ticker")  # fmt: skip
        assert wall.execute_script("return window.__xss") is None
        _settled_view(wall, WALL_VIEW)
        screenshot(wall, "alerts-wall.png")
        # after the hold the wall flies back to the area it showed before
        wait_until(lambda: (v := _wall_view(wall)) and abs(v[2] - home[2]) < 0.01
                   and abs(v[0] - home[0]) < 1e-3 and abs(v[1] - home[1]) < 1e-3,
                   timeout=30, what="wall back on its rotation")  # fmt: skip
        assert wall.find_element(By.ID, "wall-area").text == target
        assert focused[2] > home[2]
    finally:
        wall.quit()


def _settled_view(driver, script: str) -> list[float]:
    """A map's [lat, lng, zoom] once two readings a second apart agree (no fly under way)."""
    seen: list = []

    def still() -> list[float] | None:
        view = driver.execute_script(script)
        same = bool(view) and bool(seen) and seen[-1] == view
        seen.append(view)
        return view if same else None

    return wait_until(still, timeout=20, interval=1.0, what="map settled")


def _wall_view(driver) -> list[float] | None:
    return driver.execute_script(WALL_VIEW)
