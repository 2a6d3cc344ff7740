"""The officer view (/officer) in real headless Chromium against `cockpit demo`: own area only,
feed text shown as text, filters, detail, and a phone-sized screen."""

from __future__ import annotations

import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from shapely import get_coordinates

from cockpit.areastore import load_geography
from cockpit.contract import INCIDENTS
from tests.conftest import wait_until
from tests.e2e.conftest import make_browser, outside, requested_urls, screenshot, sign_in

pytestmark = pytest.mark.e2e

GRID = "wx-hs-01-001-01"  # demo-grid's area; demo-street has wx-hs-01
SAME_STREET_GRID = "wx-hs-01-003-02"
OTHER_STREET_GRID = "wx-hs-02-001-01"
XSS_TEXT = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
XSS_ADDRESS = "javascript:alert(1)"

ROWS = ("return [...document.querySelectorAll('.officer-row')]"
        ".map(e => [e.dataset.id, e.dataset.grid])")
MARKERS = ("return Object.entries(window.cockpitOfficer.state.markers)"
           ".filter(([k, l]) => l._map).map(([k, l]) => k)")  # fmt: skip


def _feed(server, tag: str) -> dict[str, str]:
    """XADD incidents into the officer's grid, the same street and another street."""
    r = server.redis()
    geo = load_geography(r)
    now = int(r.time()[0]) * 1000
    plan = {
        f"{tag}-xss": (GRID, "dispute", XSS_TEXT, XSS_ADDRESS, now - 60_000, "new"),
        f"{tag}-old": (GRID, "traffic", f"{tag} broken light", "Road 5", now - 3 * 3_600_000,
                       "handling"),
        f"{tag}-street": (SAME_STREET_GRID, "dispute", f"{tag} street quarrel", "Road 7",
                          now - 120_000, "new"),
        f"{tag}-other": (OTHER_STREET_GRID, "dispute", f"{tag} elsewhere", "Far road",
                         now - 30_000, "new"),
    }  # fmt: skip
    for inc_id, (grid, category, text, address, ts, status) in plan.items():
        point = geo.areas.frame.geometry.loc[grid].representative_point()
        lon, lat = get_coordinates(point)[0]
        r.xadd(INCIDENTS, {"id": inc_id, "ts": str(ts), "category": category, "status": status,
                           "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "text": text,
                           "address": address, "reporter": "Reporter 13800000000"})  # fmt: skip
    return {k: v[0] for k, v in plan.items()}


def _rows(driver) -> dict[str, str]:
    return dict(driver.execute_script(ROWS))


def _wait_rows(driver, cond, what: str) -> dict[str, str]:
    return wait_until(lambda: cond(rows := _rows(driver)) and rows, timeout=15, what=what)


def test_ofe001_grid_officer_sees_own_grid_as_text_and_filters_work(browser, demo_server):
    placed = _feed(demo_server, "g1")
    sign_in(browser, demo_server, "demo-grid", "/officer")
    rows = _wait_rows(browser, lambda r: "g1-xss" in r and "g1-old" in r, "own incidents listed")
    assert set(rows.values()) == {GRID}  # every row of the list lies in the officer's grid
    assert "g1-street" not in rows and "g1-other" not in rows
    markers = wait_until(lambda: "g1-xss" in (m := browser.execute_script(MARKERS)) and m,
                         timeout=10, what="markers drawn")  # fmt: skip
    assert set(markers) == set(rows) and "g1-other" not in markers
    assert placed["g1-other"] == OTHER_STREET_GRID

    # hostile feed text is literal text in the list, the tooltip and the detail
    row = browser.find_element(By.CSS_SELECTOR, '.officer-row[data-id="g1-xss"]')
    assert XSS_TEXT in row.find_element(By.CLASS_NAME, "row-text").text
    tip = browser.execute_script(
        "const l = window.cockpitOfficer.state.markers['g1-xss']; l.openTooltip();"
        "return l.getTooltip().getElement().innerText;"
    )
    assert XSS_TEXT in tip and XSS_ADDRESS in tip
    _click_row(browser, "g1-xss")
    detail = _detail(browser, "g1-xss")
    assert XSS_TEXT in detail["text"] and XSS_ADDRESS in detail["address"]
    assert "13800000000" not in detail["all"]  # a grid officer gets no reporter
    assert browser.execute_script("return typeof window.__xss") == "undefined"
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    screenshot(browser, "officer-desktop.png")

    # the selection survives ticks and the marker is ringed
    wait_until(lambda: browser.execute_script(
        "return window.cockpitOfficer.state.markers['g1-xss'].options.weight") == 3,
        timeout=5, what="selected marker ringed")  # fmt: skip
    wait_until(lambda: browser.execute_script(
        "return document.querySelector('.officer-row.selected').dataset.id") == "g1-xss",
        timeout=5, what="selected row marked")  # fmt: skip

    # filters: time range, text, status
    browser.find_element(By.XPATH, "//label[normalize-space()='1 h']").click()
    _wait_rows(browser, lambda r: "g1-xss" in r and "g1-old" not in r, "1 h range")
    browser.find_element(By.XPATH, "//label[normalize-space()='24 h']").click()
    _wait_rows(browser, lambda r: "g1-old" in r, "24 h range")
    search = browser.find_element(By.ID, "officer-text")
    search.send_keys("G1 BROKEN")  # case-insensitive substring of g1-old's text
    _wait_rows(browser, lambda r: set(r) == {"g1-old"}, "text filter")
    _pick(browser, "officer-status", "Handling")
    _pick(browser, "officer-category", "Dispute")  # g1-old is traffic: nothing left
    wait_until(lambda: "No incidents match" in browser.find_element(By.ID, "officer-count").text,
               timeout=10, what="empty list")  # fmt: skip
    search.send_keys(Keys.CONTROL, "a")
    search.send_keys(Keys.DELETE)
    # without the text, whatever shows is a handling dispute of the grid (the demo feed may add)
    wait_until(lambda: "No incidents match" not in browser.find_element(By.ID, "officer-count")
               .text or browser.execute_script("return document.getElementById('officer-text')"
               ".value === ''"), timeout=10, what="text cleared")  # fmt: skip
    kinds = browser.execute_script(
        "return [...document.querySelectorAll('.officer-row')]"
        ".map(e => [e.dataset.category, e.dataset.status, e.dataset.grid])"
    )
    assert all(k == ["dispute", "handling", GRID] for k in kinds)
    assert browser.execute_script("return typeof window.__xss") == "undefined"
    assert outside(requested_urls(browser)) == []


def _click_row(driver, inc_id: str) -> None:
    """Click a list row as a person does (again if the live list re-rendered under the click)."""

    def click() -> bool:
        try:
            row = driver.find_element(By.CSS_SELECTOR, f'.officer-row[data-id="{inc_id}"]')
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
            row.click()
        except StaleElementReferenceException:
            return False
        return True

    wait_until(click, timeout=10, what=f"row {inc_id} clicked")


def _detail(driver, inc_id: str) -> dict:
    """The open detail panel's texts, read in one script (the panel may re-render)."""
    script = (
        "const d = document.querySelector('.officer-fields[data-id=\"' + arguments[0] + '\"]');"
        "if (!d) { return null; } const box = d.getBoundingClientRect();"
        "const f = c => (d.querySelector('.field-' + c) || {}).innerText || '';"
        "return {all: d.innerText, text: f('text'), address: f('address'), left: box.left,"
        " right: box.right};"
    )
    return wait_until(lambda: driver.execute_script(script, inc_id), timeout=10,
                      what=f"detail of {inc_id} open")  # fmt: skip


def _pick(driver, dropdown_id: str, label: str) -> None:
    """Choose an option of a dcc.Dropdown as a person does: open it, type, press Enter."""

    def opened() -> bool:
        box = driver.find_element(By.ID, dropdown_id)
        if box.get_attribute("aria-expanded") != "true":
            box.click()
        return box.get_attribute("aria-expanded") == "true"

    wait_until(opened, timeout=5, what=f"{dropdown_id} open")
    option = wait_until(
        lambda: [o for o in driver.find_elements(By.CSS_SELECTOR, "[role=option]")
                 if o.text.strip() == label and o.is_displayed()],
        timeout=5, what=f"option {label}",
    )[0]  # fmt: skip
    option.click()
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    wait_until(lambda: label in driver.find_element(By.ID, f"{dropdown_id}-value").text,
               timeout=5, what=f"{label} chosen in {dropdown_id}")  # fmt: skip


def test_ofe002_street_officer_on_a_phone(demo_server):
    driver = make_browser(375, 812)
    try:
        _feed(demo_server, "s1")
        sign_in(driver, demo_server, "demo-street", "/officer")
        rows = _wait_rows(driver, lambda r: "s1-street" in r and "s1-xss" in r,
                          "street incidents listed")  # fmt: skip
        assert "s1-other" not in rows
        assert all(grid.startswith("wx-hs-01-") for grid in rows.values())
        markers = wait_until(lambda: "s1-street" in (m := driver.execute_script(MARKERS)) and m,
                             timeout=10, what="markers drawn")  # fmt: skip
        assert "s1-other" not in markers
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 375
        # the map is on screen, the list below it
        map_box = driver.find_element(By.ID, "officer-map").rect
        list_box = driver.find_element(By.ID, "officer-list").rect
        assert map_box["width"] >= 360 and 200 <= map_box["height"] <= 812
        assert list_box["y"] >= map_box["y"] + map_box["height"]
        _click_row(driver, "s1-street")
        detail = _detail(driver, "s1-street")
        assert "Reporter 13800000000" in detail["all"]  # the street level sees the reporter
        assert detail["left"] >= 0 and detail["right"] <= 375
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 375
        # an alert of the street: acknowledge it with a comment, on the phone
        from cockpit.alerts.model import Alert, alert_id
        from cockpit.alerts.store import create_alert, get_alert

        r = demo_server.redis()
        now = time.time()
        alert = Alert(id=alert_id(f"e2e-{now}"), kind="flood_warning", severity="severe",
                      status="new", dedup_key=f"e2e-{now}", raised_at=now, updated_at=now,
                      area_grids=[SAME_STREET_GRID], title_en="<b>Gauge</b> over warning")
        assert create_alert(r, alert, load_geography(r))
        box = wait_until(lambda: driver.find_elements(
            By.CSS_SELECTOR, f'.officer-alert[data-alert="{alert.id}"]'), timeout=10,
            what="alert shown")[0]  # fmt: skip
        assert "<b>Gauge</b> over warning" in box.text
        comment = box.find_element(By.CSS_SELECTOR, "input.alert-comment, .alert-comment input")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", comment)
        comment.send_keys("on my way")
        box.find_element(By.CLASS_NAME, "alert-acknowledge").click()
        wait_until(lambda: get_alert(r, alert.id).status == "acknowledged", timeout=10,
                   what="alert acknowledged")  # fmt: skip
        assert get_alert(r, alert.id).ack_comment == "on my way"
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 375
        driver.execute_script("window.scrollTo(0, 0)")
        screenshot(driver, "officer.png")
        assert driver.execute_script("return typeof window.__xss") == "undefined"
        assert outside(requested_urls(driver)) == []
    finally:
        driver.quit()


def test_ofe003_rows_stay_put_while_the_live_list_changes(browser, demo_server):
    """A row keeps its element while newer incidents join the list (a Dash re-render replaced
    every row on any change: a tap straddling it, or the keyboard focus, was lost), and the
    keyboard opens it."""
    _feed(demo_server, "k1")
    sign_in(browser, demo_server, "demo-street", "/officer")
    _wait_rows(browser, lambda r: "k1-street" in r, "street incidents listed")
    browser.execute_script(
        "window.__row = document.querySelector('.officer-row[data-id=\"k1-street\"]');"
        "window.__row.focus();"
    )
    _feed(demo_server, "k2")  # the list changes around the held row
    _wait_rows(browser, lambda r: "k2-street" in r and "k1-street" in r, "newer incidents listed")
    held = browser.execute_script(
        "const r = window.__row; return [r.isConnected, document.activeElement === r,"
        " r.dataset.id];"
    )
    assert held == [True, True, "k1-street"]
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    detail = _detail(browser, "k1-street")
    assert "k1 street quarrel" in detail["text"]
    wait_until(lambda: browser.execute_script(
        "return document.querySelector('.officer-row.selected').dataset.id") == "k1-street",
        timeout=10, what="the row marked selected")  # fmt: skip
    # the officer pans the map (dash-leaflet's viewport tracking threw on every move of a map
    # without a center prop; Leaflet then skipped the move listeners registered after it)
    browser.execute_script(
        "Object.values(window.cockpitOfficer.state.markers).find(m => m._map)._map"
        ".panBy([30, 20], {animate: false});"
    )
