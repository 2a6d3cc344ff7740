"""Hostile feed text in real Chromium against `cockpit demo`: an incident and an alert carrying
<script>, <img onerror>, <svg onload> and javascript: links show as literal text in the officer
list, the map tooltip, the detail (reporter included), the alert panel and the wall's ticker;
no page gets an injected element, and nothing the payloads would do happens."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from shapely import get_coordinates

from cockpit.aggregates import read_incident
from cockpit.alerts.model import Alert, alert_id
from cockpit.alerts.store import create_alert
from cockpit.areastore import load_geography
from cockpit.contract import INCIDENTS
from cockpit.users import create_wall_token, load_user, revoke_wall_token, token_id
from cockpit.views.officer import preview
from tests.conftest import wait_until
from tests.e2e.conftest import make_browser, outside, requested_urls, sign_in

pytestmark = pytest.mark.e2e

# Each payload would set window.__xss (or open a dialog) if the browser ran it.
SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=2">'
SVG = "<svg onload=alert(3)>"
LINK = '<a href="javascript:window.__xss=4">open</a>'
JS_URL = "javascript:window.__xss=5"

# Every element or attribute a payload could have planted, found in the live DOM.
INJECTED = """
const handlers = [...document.querySelectorAll('*')].filter(
  e => [...e.attributes].some(a => a.name.toLowerCase().startsWith('on')));
const jsUrls = [...document.querySelectorAll('[href], [src], [action], [formaction]')].filter(
  e => ['href', 'src', 'action', 'formaction'].some(
    n => /^\\s*javascript:/i.test(e.getAttribute(n) || '')));
return {
  handlers: handlers.map(e => e.outerHTML.slice(0, 120)),
  js_urls: jsUrls.map(e => e.outerHTML.slice(0, 120)),
  scripts: [...document.scripts].filter(s => s.textContent.includes('__xss')).length,
  images: document.querySelectorAll('img[src="x"], svg[onload]').length,
  xss: typeof window.__xss,
};
"""

# What a person reads in each place (innerText: the rendered text, not the HTML).
ROW = """const r = document.querySelector(`.officer-row[data-id="${arguments[0]}"]`);
return r && r.querySelector('.row-text').innerText;"""
TOOLTIP = """const l = window.cockpitOfficer.state.markers[arguments[0]];
if (!l || !l._map) { return null; }
l.openTooltip();
return l.getTooltip().getElement().innerText;"""
DETAIL = """const d = document.querySelector(`.officer-fields[data-id="${arguments[0]}"]`);
if (!d) { return null; }
const f = c => (d.querySelector('.field-' + c) || {}).innerText;
return {text: f('text'), address: f('address'), reporter: f('reporter')};"""
ALERT = """const a = document.querySelector(`.officer-alert[data-alert="${arguments[0]}"]`);
return a && {title: a.querySelector('.alert-title').innerText,
             text: a.querySelector('.alert-text').innerText};"""
TICKER = """return [...document.querySelectorAll('#wall-ticker .ticker-item')]
  .map(e => e.textContent);"""


@dataclass(frozen=True)
class Hostile:
    incident: str
    text: str
    address: str
    reporter: str
    alert: str
    title: str
    alert_text: str
    grid: str


@pytest.fixture(scope="module")
def hostile(demo_server) -> Hostile:
    """One incident and one open alert in demo-grid's grid, every text field a payload."""
    r = demo_server.redis()
    geo = load_geography(r)
    grid = load_user(r, "demo-grid").area_id
    stamp = int(r.time()[0])
    tag = f"xss{stamp}"
    h = Hostile(
        incident=tag, text=f"{tag} {SCRIPT}{IMG}{SVG}{LINK}", address=JS_URL,
        reporter=f"{IMG} 13800000000", alert=alert_id(f"e2e-{tag}"),
        title=f"{tag} {IMG}{SCRIPT}", alert_text=f"{LINK}{SVG}", grid=grid,
    )  # fmt: skip
    lon, lat = get_coordinates(geo.areas.frame.geometry.loc[grid].representative_point())[0]
    r.xadd(INCIDENTS, {"id": h.incident, "ts": str(stamp * 1000), "category": "dispute",
                       "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "text": h.text,
                       "address": h.address, "reporter": h.reporter})  # fmt: skip
    now = time.time()
    assert create_alert(r, Alert(
        id=h.alert, kind="flood_warning", severity="moderate", status="new",
        dedup_key=f"e2e-{tag}", raised_at=now, updated_at=now, area_grids=[grid],
        title_en=h.title, title_zh=h.title, text=h.alert_text), geo)  # fmt: skip
    wait_until(lambda: read_incident(r, h.incident, stamp * 1000 + 60_000), timeout=30,
               what="the hostile incident applied")  # fmt: skip
    return h


def assert_nothing_injected(driver, where: str) -> None:
    found = driver.execute_script(INJECTED)
    assert found == {"handlers": [], "js_urls": [], "scripts": 0, "images": 0,
                     "xss": "undefined"}, (where, found)  # fmt: skip
    try:
        dialog = driver.switch_to.alert.text
    except NoAlertPresentException:
        dialog = None
    assert dialog is None, f"{where}: a dialog opened: {dialog!r}"


def _texts(driver, script: str, *args: object) -> object:
    try:
        return driver.execute_script(script, *args)
    except WebDriverException:  # re-rendered under the script
        return None


def test_xss001_officer_list_tooltip_detail_and_alerts_show_feed_text_as_text(demo_server,
                                                                             hostile):  # fmt: skip
    driver = make_browser()
    try:
        sign_in(driver, demo_server, "demo-street", "/officer")  # the street sees the reporter
        search = wait_until(lambda: driver.find_elements(By.ID, "officer-text"), timeout=30,
                            what="the officer view")[0]  # fmt: skip
        search.send_keys(hostile.incident)
        row = wait_until(lambda: _texts(driver, ROW, hostile.incident), timeout=30,
                         what="the hostile row")  # fmt: skip
        assert row == preview(hostile.text)  # literally, as much as a row shows

        tip = wait_until(lambda: _texts(driver, TOOLTIP, hostile.incident), timeout=15,
                         what="the marker's tooltip")  # fmt: skip
        assert preview(hostile.text) in tip and hostile.address in tip
        assert_nothing_injected(driver, "officer tooltip")

        # the row is clicked as soon as it is there (again, should it be gone in between)
        wait_until(lambda: _click(driver, f'.officer-row[data-id="{hostile.incident}"]'),
                   timeout=15, what="a click on the hostile row")  # fmt: skip
        fields = wait_until(lambda: _texts(driver, DETAIL, hostile.incident), timeout=15,
                            what="the detail")  # fmt: skip
        assert fields == {"text": hostile.text, "address": hostile.address,
                          "reporter": hostile.reporter}  # fmt: skip

        alert = wait_until(lambda: _texts(driver, ALERT, hostile.alert), timeout=30,
                           what="the hostile alert in the panel")  # fmt: skip
        assert alert == {"title": hostile.title, "text": hostile.alert_text}
        assert_nothing_injected(driver, "officer view")

        # the other views of the same user: whatever they show, nothing is planted
        for path, ready in (("/", "#data-age.fresh"), ("/leader", ".tree-node.current")):
            driver.get(demo_server.base_url + path)
            wait_until(lambda r=ready: driver.find_elements(By.CSS_SELECTOR, r), timeout=30,
                       what=f"{path} ready")  # fmt: skip
            assert_nothing_injected(driver, path)
        assert outside(requested_urls(driver)) == []
    finally:
        driver.quit()


def test_xss002_wall_ticker_shows_alert_titles_as_text(demo_server, hostile):
    r = demo_server.redis()
    community = load_geography(r).areas.parent_of(hostile.grid)
    token = create_wall_token(r, community, "xss wall")
    driver = make_browser(1920, 1080)
    try:
        driver.get(f"{demo_server.base_url}/wall/{token}")
        wait_until(lambda: driver.current_url.endswith("/wall"), timeout=15, what="on /wall")
        items = wait_until(lambda: [t for t in _texts(driver, TICKER) or [] if hostile.title in t],
                           timeout=30, what="the hostile title in the ticker")  # fmt: skip
        assert len(items) == 1
        assert_nothing_injected(driver, "wall")
        assert outside(requested_urls(driver)) == []
    finally:
        revoke_wall_token(r, token_id(token))
        driver.quit()


def _click(driver, selector: str) -> bool:  # type: ignore[no-untyped-def]
    """Click the element now matching ``selector``; False when it was redrawn meanwhile."""
    try:
        driver.find_element(By.CSS_SELECTOR, selector).click()
    except StaleElementReferenceException:
        return False
    return True
