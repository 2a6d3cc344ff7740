"""Each level in real Chromium against `cockpit demo`: what a demo user sees on the operations map
(/), the officer view (/officer) and the leader view (/leader) matches the user's area and the
level's policy; a view the level may not open is refused; personal data reaches the browser only
where the policy allows it, checked in the page and in every response the page received.

Expectations come from the policy (cockpit/policy.toml via cockpit.policy), the view table
(cockpit.layout.VIEWS) and the geography of the user's area, never from fixed numbers.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from urllib.parse import urlparse

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from shapely import get_coordinates

from cockpit.aggregates import read_incident
from cockpit.areastore import Geography, load_geography
from cockpit.contract import CATEGORIES, INCIDENTS
from cockpit.i18n import category_label, t
from cockpit.layout import VIEWS
from cockpit.policy import User, authorize, may_compare, may_see_personal_data, visible_categories
from cockpit.users import create_wall_token, load_user, revoke_wall_token, token_id
from cockpit.views.leader import tiling_children
from tests.conftest import wait_until
from tests.e2e.conftest import make_browser, outside, sign_in

pytestmark = pytest.mark.e2e

DEMO_USERS = ["demo-grid", "demo-community", "demo-street", "demo-district", "demo-city"]
MAP_GRIDS = "return Object.entries(window.cockpitMap.state.layers).filter(([k, l]) => l._map)" \
            ".map(([k, l]) => k)"  # fmt: skip
OFFICER_GRIDS = "return Object.keys(window.cockpitOfficer.state.grids)"
LEADER_AREAS = "return Object.entries(window.cockpitLeader.state.layers)" \
               ".filter(([k, l]) => l._map).map(([k, l]) => k)"  # fmt: skip
ROWS = ("return [...document.querySelectorAll('.officer-row')]"
        ".map(e => [e.dataset.id, e.dataset.grid])")
# Responses whose bodies carry city data (scripts, styles and images do not).
DATA_PATHS = ("/_dash-update-component", "/_dash-layout", "/geo/", "/heat/")


@dataclass(frozen=True)
class Marked:
    """An incident in the grid every demo user's scope holds, with a reporter to look for."""

    id: str
    grid: str
    tag: str
    person: str
    phone: str


@pytest.fixture(scope="module")
def marked(demo_server) -> Marked:
    r = demo_server.redis()
    geo = load_geography(r)
    grid = load_user(r, "demo-grid").area_id
    stamp = int(r.time()[0])
    tag = f"lvl{stamp}"
    person, phone = f"Reporter{tag.capitalize()}", f"139{stamp % 10**8:08d}"
    lon, lat = get_coordinates(geo.areas.frame.geometry.loc[grid].representative_point())[0]
    r.xadd(INCIDENTS, {"id": tag, "ts": str(stamp * 1000), "category": "dispute",
                       "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "text": f"{tag} blocked drain",
                       "address": f"{tag} road 1", "reporter": f"{person} {phone}"})  # fmt: skip
    wait_until(lambda: read_incident(r, tag, stamp * 1000 + 60_000), timeout=30,
               what="the marked incident applied")  # fmt: skip
    return Marked(tag, grid, tag, person, phone)


class Network:
    """Bodies of the app's data responses, read from Chrome's DevTools log as pages get them
    (call :meth:`collect` before leaving a page: Chrome forgets a page's bodies when it goes)."""

    def __init__(self, driver, base_url: str) -> None:
        self.driver, self.base = driver, base_url
        self.bodies: list[tuple[str, str]] = []
        self.page = ""  # the loader id of the document shown
        self.lost = 0  # bodies of a page left before they could be read
        # room for every body of a page (Chrome's default buffer drops the oldest ones)
        driver.execute_cdp_cmd("Network.enable", {"maxTotalBufferSize": 512 * 2**20,
                                                  "maxResourceBufferSize": 64 * 2**20})

    def collect(self) -> None:
        pending: dict[str, tuple[str, str]] = {}  # request id -> (url, loader)
        finished: set[str] = set()
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent" and params.get("type") == (
                    "Document"):
                self.page = params["loaderId"]  # the page now shown
            elif message["method"] == "Network.responseReceived":
                url, status = params["response"]["url"], params["response"]["status"]
                path = urlparse(url).path
                data = path.startswith(DATA_PATHS) and not path.endswith(".png")
                if url.startswith(self.base) and data and status != 204:
                    pending[params["requestId"]] = (url, params.get("loaderId", ""))
            elif message["method"] == "Network.loadingFinished":
                finished.add(params["requestId"])
        for request_id, (url, loader) in pending.items():
            if request_id not in finished:
                continue
            try:
                got = self.driver.execute_cdp_cmd("Network.getResponseBody",
                                                  {"requestId": request_id})  # fmt: skip
            except WebDriverException as exc:
                if loader != self.page:  # answered as the page was left: Chrome dropped it
                    self.lost += 1
                    continue
                raise AssertionError(f"body of {url} could not be read: {exc}") from None
            body = got["body"]
            if got.get("base64Encoded"):
                body = base64.b64decode(body).decode("utf-8", errors="replace")
            self.bodies.append((url, _readable(body)))

    def count(self, path: str) -> int:
        return sum(1 for url, _ in self.bodies if urlparse(url).path == path)


def _readable(body: str) -> str:
    try:
        return json.dumps(json.loads(body), ensure_ascii=False)
    except ValueError:
        return body


def scope_of(geo: Geography, area_id: str) -> set[str]:
    return {area_id, *geo.areas.descendants(area_id)}


def grids_of(geo: Geography, area_id: str) -> set[str]:
    """The grids the map draws for an area: the area's own "grid"-level areas."""
    return {a for a in scope_of(geo, area_id) if geo.areas.level_of(a) == "grid"}


def outside_grid_ids(geo: Geography, area_id: str) -> re.Pattern | None:
    """A pattern for the id of any grid outside the area (whole ids only)."""
    mine = scope_of(geo, area_id)
    others = [g for g in geo.areas.descendants(geo.areas.root_id) if g not in mine
              and geo.areas.level_of(g) in ("grid", "special")]  # fmt: skip
    if not others:
        return None
    return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, others)) + r")(?![\w-])")


def _name(geo: Geography, area_id: str, lang: str) -> str:
    return str(geo.areas.frame.at[area_id, "name_zh" if lang == "zh-CN" else "name_en"])


def _script(driver, script: str, default=None):  # noqa: ANN001, ANN202
    try:
        return driver.execute_script(script)
    except WebDriverException:  # the page is still loading its scripts
        return default


def _nav(driver) -> set[str]:
    links = driver.find_elements(By.CSS_SELECTOR, ".nav a.nav-link")
    return {urlparse(a.get_attribute("href")).path for a in links}


def _dropdown_options(driver, dropdown_id: str) -> set[str]:
    """The labels a person sees when opening a dcc.Dropdown."""

    def opened() -> bool:
        box = driver.find_element(By.ID, dropdown_id)
        if box.get_attribute("aria-expanded") != "true":
            box.click()
        return box.get_attribute("aria-expanded") == "true"

    wait_until(opened, timeout=10, what=f"{dropdown_id} open")
    labels = wait_until(lambda: {o.text.strip() for o in driver.find_elements(
        By.CSS_SELECTOR, "[role=option]") if o.is_displayed()}, timeout=5,
        what=f"{dropdown_id} options")  # fmt: skip
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    return labels


def _refused(driver, lang: str) -> None:
    notice = t("not_for_your_level", lang)
    wait_until(lambda: any(notice in p.text for p in driver.find_elements(By.ID, "page")),
               timeout=20, what="the view refused")  # fmt: skip


def _check_map(driver, geo: Geography, user: User) -> None:
    """/ draws exactly the user's grids and offers the categories the level may see."""
    expected = grids_of(geo, user.area_id)
    drawn = wait_until(lambda: len(d := set(_script(driver, MAP_GRIDS, []) or [])) >= len(
        expected) and d, timeout=60, what=f"{len(expected)} grids drawn")  # fmt: skip
    assert drawn == expected
    offered = _dropdown_options(driver, "category")
    visible = visible_categories(user)
    assert offered == {t("all_categories", user.lang)} | {
        category_label(c, user.lang) for c in CATEGORIES if c in visible}
    hidden = {category_label(c, user.lang) for c in CATEGORIES if c not in visible}
    assert not offered & hidden


def _click_row(driver, inc_id: str) -> None:
    def click() -> bool:
        try:
            row = driver.find_element(By.CSS_SELECTOR, f'.officer-row[data-id="{inc_id}"]')
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
            row.click()
        except (StaleElementReferenceException, WebDriverException):
            return False
        return True

    wait_until(click, timeout=10, what=f"row {inc_id} clicked")


def _check_officer(driver, geo: Geography, user: User, marked: Marked) -> str:
    """/officer lists and draws only the user's grids; the marked incident's detail shows the
    reporter exactly when the policy allows. Returns the detail's text."""
    expected = grids_of(geo, user.area_id)
    rows = wait_until(lambda: dict(_script(driver, ROWS, []) or []), timeout=30,
                      what="the officer list")  # fmt: skip
    assert set(rows.values()) <= expected, set(rows.values()) - expected
    drawn = wait_until(lambda: len(d := set(_script(driver, OFFICER_GRIDS, []) or [])) >= len(
        expected) and d, timeout=60, what="officer grids drawn")  # fmt: skip
    assert drawn == expected
    search = driver.find_element(By.ID, "officer-text")
    search.send_keys(marked.tag)
    wait_until(lambda: set(dict(_script(driver, ROWS, []) or [])) == {marked.id}, timeout=20,
               what="the marked incident found")  # fmt: skip
    _click_row(driver, marked.id)
    detail = wait_until(lambda: _script(driver,
        f"const d = document.querySelector('.officer-fields[data-id=\"{marked.id}\"]');"
        "return d && d.innerText;"), timeout=15, what="the detail open")  # fmt: skip
    assert f"{marked.tag} blocked drain" in detail
    shows = may_see_personal_data(user)
    assert (marked.person in detail) == shows and (marked.phone in detail) == shows
    reporter = driver.find_elements(By.CSS_SELECTOR, ".officer-fields .field-reporter")
    assert bool(reporter) == shows
    return detail


def _check_leader(driver, geo: Geography, user: User, export: bool) -> None:
    """/leader's tree starts at the user's area, the map shows its parts, the ranking and the
    export exist only for levels that may compare."""
    areas = geo.areas
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".tree-node.current"), timeout=30,
               what="the area tree")  # fmt: skip
    roots = driver.find_elements(By.CSS_SELECTOR, ".tree-root > li > .tree-row .tree-node")
    assert [r.get_attribute("data-area") for r in roots] == [user.area_id]
    nodes = {b.get_attribute("data-area") for b in driver.find_elements(By.CSS_SELECTOR,
                                                                        ".tree-node")}  # fmt: skip
    assert nodes <= scope_of(geo, user.area_id)
    current = wait_until(lambda: [c.text for c in driver.find_elements(
        By.CSS_SELECTOR, ".leader-crumbs .crumb.current")], timeout=15, what="the crumbs")
    assert current == [_name(geo, user.area_id, user.lang)]
    parts = set(tiling_children(areas, user.area_id)) or {user.area_id}
    wait_until(lambda: set(_script(driver, LEADER_AREAS, []) or []) == parts, timeout=30,
               what="the parts of the area on the map")  # fmt: skip
    compare = may_compare(user)
    table = driver.find_element(By.CSS_SELECTOR, ".leader-table-box")
    assert (table.get_attribute("hidden") is None) == compare
    button = driver.find_element(By.ID, "leader-export")
    assert (button.get_attribute("hidden") is None) == (compare and export)


def _check_network(net: Network, sources: list[str], geo: Geography, user: User,
                   marked: Marked) -> None:  # fmt: skip
    """No response or page carried a grid outside the scope, nor personal data the level may
    not see; and the responses were really read (so these checks can fail)."""
    # Chrome drops the bodies of a page's last responses when the page is left; on a loaded
    # machine more land in that moment. Up to a third may go unread, never the bulk of them.
    assert net.count("/_dash-update-component") >= 10 and net.lost <= len(net.bodies) // 3
    foreign = outside_grid_ids(geo, user.area_id)
    for url, body in net.bodies:
        if foreign is not None:
            found = foreign.search(body)
            assert not found, f"{url} carried {found.group(0)} outside {user.area_id}"
    everything = [body for _, body in net.bodies] + sources
    personal = [s for s in everything if marked.person in s or marked.phone in s]
    if may_see_personal_data(user):
        assert personal  # the detail's response carried the reporter
    else:
        assert personal == [], "personal data reached a level that may not see it"


@pytest.mark.parametrize("name", DEMO_USERS)
def test_lvl001_each_level_sees_its_share(demo_server, marked, name):
    r = demo_server.redis()
    geo = load_geography(r)
    user = load_user(r, name)
    assert user is not None and marked.grid in scope_of(geo, user.area_id)
    allowed = {path for path, (_label, action) in VIEWS.items() if authorize(user, action)}
    driver = make_browser()
    net = Network(driver, demo_server.base_url)
    sources: list[str] = []
    try:
        sign_in(driver, demo_server, name, "/")
        wait_until(lambda: _nav(driver), timeout=20, what="the navigation")
        assert _nav(driver) == allowed and "/" in allowed
        _check_map(driver, geo, user)
        sources.append(driver.page_source)
        net.collect()

        driver.get(demo_server.base_url + "/officer")
        if "/officer" in allowed:
            detail = _check_officer(driver, geo, user, marked)
            assert marked.grid in detail or _name(geo, marked.grid, user.lang) in detail
        else:
            _refused(driver, user.lang)
        sources.append(driver.page_source)
        net.collect()

        driver.get(demo_server.base_url + "/leader")
        if "/leader" in allowed:
            _check_leader(driver, geo, user, authorize(user, "export"))
        else:
            _refused(driver, user.lang)
            assert not driver.find_elements(By.ID, "leader-tree")
        sources.append(driver.page_source)
        net.collect()
        _check_network(net, sources, geo, user, marked)
        assert outside([url for url, _ in net.bodies]) == []
    finally:
        driver.quit()


def test_lvl002_a_wall_sees_its_area_and_no_single_incident(demo_server, marked):
    r = demo_server.redis()
    geo = load_geography(r)
    community = geo.areas.parent_of(marked.grid)
    token = create_wall_token(r, community, "levels wall")
    wall = User(id="", name="", level="wall", area_id=community, is_wall=True)
    allowed = {path for path, (_label, action) in VIEWS.items() if authorize(wall, action)}
    assert "/wall" in allowed and "/officer" not in allowed
    driver = make_browser()
    net = Network(driver, demo_server.base_url)
    sources: list[str] = []
    try:
        driver.get(f"{demo_server.base_url}/wall/{token}")
        wait_until(lambda: driver.current_url.endswith("/wall"), timeout=15, what="on /wall")
        expected = grids_of(geo, community)
        drawn = wait_until(lambda: len(d := set(_script(driver, MAP_GRIDS, []) or [])) >= len(
            expected) and d, timeout=60, what="the wall's grids")  # fmt: skip
        assert drawn == expected
        wait_until(lambda: driver.find_element(By.ID, "kpi-incidents").text not in ("", "–"),
                   timeout=30, what="the KPI tile")  # fmt: skip
        assert _nav(driver) == allowed
        sources.append(driver.page_source)
        net.collect()

        driver.get(demo_server.base_url + "/officer")  # single incidents: not for a wall
        _refused(driver, "en")
        assert not driver.find_elements(By.CLASS_NAME, "officer-row")
        sources.append(driver.page_source)
        net.collect()

        if "/leader" in allowed:
            driver.get(demo_server.base_url + "/leader")
            _check_leader(driver, geo, wall, authorize(wall, "export"))
            sources.append(driver.page_source)
            net.collect()
        _check_network(net, sources, geo, wall, marked)
    finally:
        revoke_wall_token(r, token_id(token))
        driver.quit()

