"""The wall in real Chromium at 3840x2160: a display signs in with its token, shows the map,
KPI tiles and ticker, never personal data, and rotates through its child areas."""

from __future__ import annotations

import re
import time

import pytest

from cockpit.users import create_wall_token, revoke_wall_token, token_id
from tests.conftest import wait_until
from tests.e2e.conftest import make_browser, outside, requested_urls, screenshot

pytestmark = pytest.mark.e2e

DRAWN = "return Object.values(window.cockpitMap.state.layers).filter(l => l._map).length"
# Where the wall's map looks now: centre and zoom, or null while a zoom animates.
VIEW_JS = """
const g = Object.values(window.cockpitMap.state.layers).find(l => l._map);
const m = g && g._map;
if (!m || m._animatingZoom) { return null; }
const c = m.getCenter();
return [c.lat.toFixed(6), c.lng.toFixed(6), m.getZoom()].join(",");
"""


def wait_map_still(driver, seconds: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    """Until the map's view has not moved for ``seconds`` (a rotation flies to its area)."""
    seen: dict[str, object] = {}

    def still() -> bool:
        view = driver.execute_script(VIEW_JS)
        now = time.monotonic()
        if view is None or view != seen.get("view"):
            seen.update(view=view, since=now)
            return False
        return now - seen["since"] >= seconds  # type: ignore[operator]

    wait_until(still, timeout=20, interval=0.2, what="the wall's map at rest")
PHONE = re.compile(r"1[3-9]\d{9}")


@pytest.fixture
def wall_browser():
    driver = make_browser(3840, 2160)
    yield driver
    driver.quit()


def test_wal001_token_link_shows_the_wall_without_personal_data(wall_browser, demo_server):
    r = demo_server.redis()
    token = create_wall_token(r, "wx", "centre wall")
    wall_browser.get(f"{demo_server.base_url}/wall/{token}")
    wait_until(lambda: wall_browser.current_url.endswith("/wall"), timeout=15, what="on /wall")
    wait_until(lambda: wall_browser.execute_script(
        "return window.cockpitMap && " + DRAWN.removeprefix("return ")) >= 757,
        timeout=40, what="all grids drawn on the wall")  # fmt: skip
    tile = wall_browser.find_element("id", "kpi-incidents")
    wait_until(lambda: tile.text not in ("", "–"), timeout=20, what="KPI tile filled")
    wait_until(lambda: wall_browser.find_element("id", "wall-resolution").text != "–",
               timeout=20, what="resolution tile")  # fmt: skip
    # it rotates: the area name changes from the city to a district within the rotation time
    first = wall_browser.find_element("id", "wall-area").text
    wait_until(lambda: wall_browser.find_element("id", "wall-area").text != first,
               timeout=75, interval=0.5,  # 20 s a step; a critical alert holds focus 45 s
               what="rotation to the next area")  # fmt: skip
    text = wall_browser.find_element("tag name", "body").text
    assert not PHONE.search(text), "a phone number reached the wall"
    urls = requested_urls(wall_browser)
    assert outside(urls) == []
    # the wall draws no chart: plotly.js (4.8 MB to load and compile) stays out of its page
    assert any("/geo/grid.geojson" in u for u in urls)
    assert not any("plotly" in u for u in urls)
    wait_map_still(wall_browser)  # not a frame of the flight to the next area
    screenshot(wall_browser, "wall.png")
    # a revoked token ends the display's session at once
    revoke_wall_token(r, token_id(token))
    wall_browser.get(f"{demo_server.base_url}/wall")
    wait_until(lambda: "/login" in wall_browser.current_url, timeout=15, what="wall signed out")
