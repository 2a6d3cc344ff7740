"""Every layer of the operations map in real headless Chromium, against `cockpit demo` started
WITHOUT its simulator: nothing moves unless a test writes it to an input stream, so "this gauge
passes its warning level" and "this feed stopped" are under the test's control. Badges turn
stale after STALE_S (COCKPIT_STALE_AFTER_S) so the stale test needs no three-minute wait.

Assertions are on what the browser got and drew: Leaflet layers on the map, pixels of the
canvases and of the heatmap image, tooltip and legend text. The last tests write a lived-in
feed (an hour of past incidents, then the simulator's gauges and trucks) for the screenshots.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from shapely import get_coordinates

from cockpit.aggregates import TRUCK_LATEST
from cockpit.apply import HEALTH
from cockpit.areastore import load_geography, load_reference, save_reference
from cockpit.contract import GAUGES, INCIDENTS, TRUCKS
from cockpit.i18n import category_label, t
from cockpit.views.officer import CATEGORY_COLORS
from layers.flood import COLORS as GAUGE_COLORS
from layers.incidents import MAX_POINTS
from tests.conftest import wait_until
from tests.e2e.conftest import (
    DemoServer,
    launch_demo,
    make_browser,
    outside,
    requested_urls,
    screenshot,
    show_overlays,
    sign_in,
    stop_demo,
)

pytestmark = pytest.mark.e2e

STALE_S = 30  # badges turn stale after this long without data (the default is 60-180 s)
USER = "demo-city"
EN = "en"

# -- the server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """`cockpit demo --no-simulator --backfill 0`: the demo city, worker, alert engine and app,
    with empty feeds."""
    data_dir = tmp_path_factory.mktemp("layers-data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}
    env["COCKPIT_STALE_AFTER_S"] = str(STALE_S)
    proc, base = launch_demo(data_dir, ["--no-simulator", "--backfill", "0"], env, timeout=120)
    try:
        redis_url = (data_dir / "redis" / "url").read_text().strip()
        server = DemoServer(base, redis_url, data_dir, proc)
        assert server.redis().xlen(INCIDENTS) == 0  # no simulator, no backfill: a quiet city
        yield server
    finally:
        stop_demo(proc, data_dir)


@pytest.fixture(scope="module")
def lived_in(quiet_server: DemoServer) -> Iterator[DemoServer]:
    """The quiet city given an hour of past incidents, then the simulator's live feed (gauges,
    trucks, incidents) replaying the last 8 minutes at 4x and going on in real time."""
    from cockpit.simulator import backfill, local_hour, run_simulator

    r = quiet_server.redis()
    geo = load_geography(r)
    # trucks drive in their permitted hours only (20:00-06:00 in the demo): for this test,
    # hours from two before now to six after, whatever the time of day CI runs at
    hour = local_hour(time.time())
    hours = tuple(f"{int(h):02d}:{int(h % 1 * 60):02d}" for h in ((hour - 2) % 24, (hour + 6) % 24))
    save_reference(r, replace(load_reference(r), truck_hours=hours))
    applied_before = int(r.hget(HEALTH, f"{INCIDENTS}|applied") or 0)
    # as many as the daily curve gives this hour (about 4,300 to 10,000 at 3/s)
    written = backfill(r, geo, rate=3, seed=11, minutes=60)
    assert written > 1000
    stop = threading.Event()
    feed = threading.Thread(
        target=run_simulator,
        kwargs={"client": quiet_server.redis(), "geo": geo, "rate": 1.0, "seed": 11,
                "stop": stop.is_set, "reference": load_reference(r), "speed": 4.0,
                "start": time.time() - 8 * 60},
        daemon=True,
    )  # fmt: skip
    feed.start()
    # the backfill is applied and the first truck pings are in
    wait_until(lambda: int(r.hget(HEALTH, f"{INCIDENTS}|applied") or 0)
               >= applied_before + written
               and r.hlen(TRUCK_LATEST) >= 10, timeout=90, what="lived-in feed applied")
    yield quiet_server
    stop.set()
    feed.join(timeout=10)


# -- what the browser shows --------------------------------------------------------------------

MAP_JS = """
const grid = Object.values(window.cockpitMap.state.layers).find(l => l._map);
const map = grid ? grid._map : null;
"""
# The on-screen point of (lat, lon) in client pixels.
SCREEN_JS = MAP_JS + """
const p = map.latLngToContainerPoint([arguments[0], arguments[1]]);
const box = map.getContainer().getBoundingClientRect();
const x = box.left + p.x, y = box.top + p.y;
"""
# The RGBA of a pane's canvas at (lat, lon), as drawn (null when no canvas covers it).
PANE_PIXEL_JS = SCREEN_JS + """
for (const c of document.querySelectorAll(".leaflet-" + arguments[2] + "-pane canvas")) {
  const r = c.getBoundingClientRect();
  if (x < r.left || x >= r.right || y < r.top || y >= r.bottom) { continue; }
  const px = Math.floor((x - r.left) * c.width / r.width);
  const py = Math.floor((y - r.top) * c.height / r.height);
  return Array.from(c.getContext("2d").getImageData(px, py, 1, 1).data);
}
return null;
"""
# How many pixels of a pane's canvases are not transparent (sampled every 4th pixel).
PANE_INK_JS = """
let ink = 0;
for (const c of document.querySelectorAll(".leaflet-" + arguments[0] + "-pane canvas")) {
  if (!c.width || !c.height) { continue; }
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 16) { if (d[i] > 0) { ink++; } }
}
return ink;
"""
# The heatmap image as the browser loaded it: its URL and the largest alpha around (lat, lon).
HEAT_PIXEL_JS = SCREEN_JS + """
const img = document.querySelector("img.heat-overlay");
if (!img || !img.complete || !img.naturalWidth) { return null; }
const r = img.getBoundingClientRect();
const c = document.createElement("canvas");
c.width = img.naturalWidth; c.height = img.naturalHeight;
const ctx = c.getContext("2d");
ctx.drawImage(img, 0, 0);
const px = Math.floor((x - r.left) / r.width * c.width);
const py = Math.floor((y - r.top) / r.height * c.height);
let alpha = 0;
for (let dx = -2; dx <= 2; dx++) {
  for (let dy = -2; dy <= 2; dy++) {
    alpha = Math.max(alpha, ctx.getImageData(px + dx, py + dy, 1, 1).data[3]);
  }
}
let inked = 0;
const all = ctx.getImageData(0, 0, c.width, c.height).data;
for (let i = 3; i < all.length; i += 4) { if (all[i] > 0) { inked++; } }
return {src: img.src, alpha: alpha, inked: inked};
"""
# Incident markers on the map: id -> properties the browser received; plus clustered counts.
POINTS_JS = """
const s = window.cockpitIncidents.state;
const points = {};
for (const [id, m] of Object.entries(s.points)) {
  if (m._map) { points[id] = m.feature.properties; }
}
let clustered = 0, clusters = 0;
for (const m of Object.values(s.clusters)) {
  if (m._map) { clustered += m.feature.properties.point_count; clusters++; }
}
return {points: points, clustered: clustered, clusters: clusters};
"""


def _open_map(driver: WebDriver, server: DemoServer) -> None:
    sign_in(driver, server, USER)
    wait_until(
        lambda: driver.execute_script(
            "return !!(window.cockpitMap && window.cockpitIncidents && "
            "Object.values(window.cockpitMap.state.layers).some(l => l._map));"
        ),
        timeout=30, what="the map and its grids",
    )  # fmt: skip


def _lat_lon(geo, grid_id: str) -> tuple[float, float]:
    lon, lat = get_coordinates(geo.areas.frame.geometry.loc[grid_id].representative_point())[0]
    return float(lat), float(lon)


def _now_ms(server: DemoServer) -> int:
    sec, usec = server.redis().time()
    return int(sec) * 1000 + int(usec) // 1000


def _legend_text(driver: WebDriver) -> str:
    return driver.find_element("id", "legends").text


def _badge(driver: WebDriver, badge_id: str) -> tuple[str, str]:
    """(text, class) of a data-age badge: the incidents one, or a feed's wrapper."""
    element = driver.find_element("id", badge_id)
    wrap = element if badge_id == "data-age" else driver.find_element("id", badge_id + "-wrap")
    return element.text, wrap.get_attribute("class")


# -- tests --------------------------------------------------------------------------------------


def test_lay001_xadd_incident_reaches_heatmap_and_point_layer(browser, quiet_server):
    """One incident in a quiet city: the heat image gets colour at its place, the point layer
    draws it with a text-only tooltip, and nothing personal reaches the browser."""
    r = quiet_server.redis()
    geo = load_geography(r)
    grid_id = geo.grid_ids[123]
    lat, lon = _lat_lon(geo, grid_id)
    _open_map(browser, quiet_server)
    before = wait_until(lambda: browser.execute_script(HEAT_PIXEL_JS, lat, lon), timeout=20,
                        what="the heat image loaded")  # fmt: skip
    assert before["alpha"] == 0  # an empty city: the heatmap is transparent there

    incident = f"e2e-lay001-{_now_ms(quiet_server)}"
    reporter = "Zhang Wei 13912345678"
    r.xadd(INCIDENTS, {
        "id": incident, "ts": str(_now_ms(quiet_server)), "category": "dispute",
        "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "severity": "3", "status": "new",
        "text": "<img src=x onerror=\"document.title='pwned'\">", "reporter": reporter,
        "address": "<b>88 Xicheng Road</b>", "source": "patrol",
    })  # fmt: skip

    after = wait_until(
        lambda: (h := browser.execute_script(HEAT_PIXEL_JS, lat, lon)) and h["alpha"] > 0 and h,
        timeout=20, what="the heat image to show the incident",
    )  # fmt: skip
    assert after["src"] != before["src"]  # a new render was fetched
    assert after["inked"] > 0
    wait_until(lambda: t("heat_points", EN, n=1) in _legend_text(browser), timeout=10,
               what="the heat legend to count one incident")  # fmt: skip

    points = wait_until(
        lambda: incident in (p := browser.execute_script(POINTS_JS))["points"] and p,
        timeout=15, what="the incident drawn in the point layer",
    )  # fmt: skip
    props = points["points"][incident]
    # category, status, time, grid; nothing else (dash-leaflet adds "cluster" and "id" itself)
    assert set(props) - {"cluster", "id"} == {"c", "s", "t", "g"}
    assert props["c"] == "dispute" and props["s"] == "new"
    # its marker sits where the incident is, coloured by its category (all categories shown)
    pixel = browser.execute_script(PANE_PIXEL_JS, lat, lon, "incidents")
    assert pixel is not None and pixel[3] > 200
    assert _close(pixel[:3], CATEGORY_COLORS["dispute"]), pixel

    tip = browser.execute_script(
        "const m = window.cockpitIncidents.state.points[arguments[0]]; m.openTooltip();"
        "return m.getTooltip().getElement().innerText;", incident,
    )  # fmt: skip
    grid_name = geo.areas.frame.loc[grid_id, "name_en"]
    assert category_label("dispute", EN) in tip and grid_name in tip
    assert t("officer_status_new", EN) in tip
    received = browser.execute_script("return JSON.stringify(window.cockpitIncidents.state"
                                      ".points[arguments[0]].feature)", incident)  # fmt: skip
    assert "Zhang" not in received and "1391" not in received and "Xicheng" not in received
    assert "Zhang" not in browser.page_source
    assert browser.title != "pwned"
    legend = _legend_text(browser)
    assert t("incidents_title_category", EN, window=t("heat_window_1h", EN)) in legend
    assert t("incidents_shown", EN, n="1") in legend
    assert outside(requested_urls(browser)) == []


def _close(rgb: list[int], hex_color: str, tolerance: int = 12) -> bool:
    want = [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, want, strict=True))


def test_lay002_gauge_past_warning_changes_colour(browser, quiet_server):
    r = quiet_server.redis()
    reference = load_reference(r)
    gauge = reference.gauges.index[3]
    row = reference.gauges.loc[gauge]
    lon, lat = get_coordinates(row.geometry)[0]
    _open_map(browser, quiet_server)
    state = "return window.cockpitMap.state.gauges[arguments[0]]"
    wait_until(lambda: browser.execute_script(state, gauge) == "nodata", timeout=20,
               what="the gauge drawn without a reading")  # fmt: skip

    below = row.warning_m - 0.4
    r.xadd(GAUGES, {"gauge": gauge, "ts": str(_now_ms(quiet_server) - 60_000),
                    "level_m": f"{below:.3f}"})  # fmt: skip
    wait_until(lambda: browser.execute_script(state, gauge) == "normal", timeout=15,
               what="the gauge below warning")  # fmt: skip
    # the state is set when the marker is made; the canvas paints it on a later frame
    normal = wait_until(lambda: (p := browser.execute_script(PANE_PIXEL_JS, lat, lon, "gauges"))
                        and _close(p[:3], GAUGE_COLORS["normal"]) and p, timeout=5,
                        what="the gauge painted in the normal colour")  # fmt: skip

    above = (row.warning_m + row.danger_m) / 2
    r.xadd(GAUGES, {"gauge": gauge, "ts": str(_now_ms(quiet_server)), "level_m": f"{above:.3f}"})
    wait_until(lambda: browser.execute_script(state, gauge) == "warning", timeout=15,
               what="the gauge past warning")  # fmt: skip
    warning = wait_until(
        lambda: (p := browser.execute_script(PANE_PIXEL_JS, lat, lon, "gauges"))
        and _close(p[:3], GAUGE_COLORS["warning"]) and p,
        timeout=5, what="the gauge's pixel in the warning colour",
    )  # fmt: skip
    assert warning[:3] != normal[:3]
    assert t("layer_gauges", EN) in _legend_text(browser)
    assert t("gauge_warning", EN) in _legend_text(browser)
    # plotly.js (4.8 MB) loads only when a trend is opened: a click on the gauge opens it
    urls = requested_urls(browser)
    assert outside(urls) == [] and any("/geo/grid.geojson" in u for u in urls)
    assert not any("plotly" in u for u in urls)
    x, y = browser.execute_script(SCREEN_JS + "return [x, y];", lat, lon)
    for kind in ("mousePressed", "mouseReleased"):
        browser.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                             "button": "left", "clickCount": 1})
    levels = wait_until(
        lambda: browser.execute_script("const g = document.querySelector("
                                       "'#gauge-panel .js-plotly-plot');"
                                       " return g && g.data && g.data[0].y;"),
        timeout=30, what="the clicked gauge's trend graph",
    )  # fmt: skip
    assert [round(v, 3) for v in levels][-2:] == [round(below, 3), round(above, 3)]
    assert outside(requested_urls(browser)) == []


def test_lay003_truck_position_moves(browser, quiet_server):
    r = quiet_server.redis()
    geo = load_geography(r)
    truck = "苏B-E2E03"
    start = _lat_lon(geo, geo.grid_ids[200])
    end = _lat_lon(geo, geo.grid_ids[260])
    _open_map(browser, quiet_server)
    where = "const t = window.cockpitMap.state.trucks[arguments[0]]; return t || null;"
    icon_js = SCREEN_JS + """
    const icons = Array.from(document.querySelectorAll(".truck-icon"));
    const near = icons.map(i => i.getBoundingClientRect())
      .map(b => Math.hypot(b.left + b.width / 2 - x, b.top + b.height / 2 - y));
    return near.length ? Math.min(...near) : null;
    """  # distance in pixels from (lat, lon) to the nearest truck icon on screen

    now = _now_ms(quiet_server)
    r.xadd(TRUCKS, {"truck": truck, "ts": str(now - 20_000), "lat": f"{start[0]:.7f}",
                    "lon": f"{start[1]:.7f}", "speed_kmh": "25", "loaded": "1"})  # fmt: skip
    first = wait_until(lambda: browser.execute_script(where, truck), timeout=15,
                       what="the truck drawn")  # fmt: skip
    assert abs(first[0] - start[0]) < 1e-5 and abs(first[1] - start[1]) < 1e-5
    assert first[2] == "loaded"
    assert browser.execute_script(icon_js, *start) < 3

    r.xadd(TRUCKS, {"truck": truck, "ts": str(now), "lat": f"{end[0]:.7f}",
                    "lon": f"{end[1]:.7f}", "speed_kmh": "30", "loaded": "1"})  # fmt: skip
    moved = wait_until(
        lambda: (p := browser.execute_script(where, truck)) and abs(p[0] - end[0]) < 1e-5 and p,
        timeout=15, what="the truck at its new position",
    )  # fmt: skip
    assert abs(moved[1] - end[1]) < 1e-5
    assert browser.execute_script(icon_js, *end) < 3  # the icon on screen moved there
    assert browser.execute_script(icon_js, *start) > 10  # and left its old place
    assert t("layer_trucks", EN) in _legend_text(browser)
    assert outside(requested_urls(browser)) == []


def test_lay004_stopped_feeds_turn_their_badges_stale(browser, quiet_server):
    """Data on all three feeds, then silence: each badge says "stale since" the time its feed
    was last applied (after STALE_S), in the browser's clock."""
    r = quiet_server.redis()
    geo = load_geography(r)
    reference = load_reference(r)
    lat, lon = _lat_lon(geo, geo.grid_ids[300])
    now = _now_ms(quiet_server)
    r.xadd(INCIDENTS, {"id": f"e2e-lay004-{now}", "ts": str(now), "category": "traffic",
                       "lat": f"{lat:.7f}", "lon": f"{lon:.7f}"})  # fmt: skip
    r.xadd(GAUGES, {"gauge": reference.gauges.index[5], "ts": str(now), "level_m": "1.000"})
    r.xadd(TRUCKS, {"truck": "苏B-E2E04", "ts": str(now), "lat": f"{lat:.7f}",
                    "lon": f"{lon:.7f}", "loaded": "0"})  # fmt: skip
    feeds = {"data-age": INCIDENTS, "age-gauges": GAUGES, "age-trucks": TRUCKS}
    wait_until(lambda: all(int(r.hget(HEALTH, f"{s}|last_apply_ms") or 0) >= now - 1000
                           for s in feeds.values()), timeout=15, what="all three applied")
    _open_map(browser, quiet_server)
    for badge in feeds:
        wait_until(lambda b=badge: "fresh" in _badge(browser, b)[1], timeout=15,
                   what=f"{badge} fresh")  # fmt: skip
        assert re.search(r"updated \d+ s ago", _badge(browser, badge)[0])

    stale = re.compile(t("stale_since", EN, t=r"(\d\d:\d\d:\d\d)"))
    for badge, stream in feeds.items():
        last = int(r.hget(HEALTH, f"{stream}|last_apply_ms"))
        text = wait_until(
            lambda b=badge: (s := _badge(browser, b)) and "stale" in s[1] and stale.search(s[0])
            and s[0], timeout=STALE_S + 30, what=f"{badge} stale",
        )  # fmt: skip
        assert time.time() * 1000 - last >= STALE_S * 1000 - 1500  # not before the threshold
        shown = stale.search(text).group(1)
        expected = {time.strftime("%H:%M:%S", time.localtime(last / 1000 + d)) for d in (-1, 0, 1)}
        assert shown in expected, (badge, shown, expected)
    assert outside(requested_urls(browser)) == []


LAYERS = {  # file name -> overlays on (by their i18n key) for that screenshot
    "layer-grids.png": ["layer_grids"],
    "layer-heat.png": ["layer_heat"],
    "layer-incidents.png": ["layer_incidents"],
    "layer-gauges.png": ["layer_gauges"],
    "layer-trucks.png": ["layer_trucks", "layer_trails"],
    "layer-sites.png": ["layer_sites"],
}
# What shows that a layer is drawn (JS returning a count) and its legend's title.
DRAWN = {
    "layer_grids": ("return Object.values(window.cockpitMap.state.layers)"
                    ".filter(l => l._map).length", t("metric_incidents", EN)),
    "layer_heat": ("const i = document.querySelector('img.heat-overlay');"
                   "return i && i.complete ? i.naturalWidth : 0", None),
    "layer_incidents": ("const s = window.cockpitIncidents.state; return "
                        "Object.values(s.points).concat(Object.values(s.clusters))"
                        ".filter(m => m._map).length",
                        t("incidents_title_category", EN, window=t("heat_window_1h", EN))),
    "layer_gauges": ("return Object.keys(window.cockpitMap.state.gauges).length",
                     t("layer_gauges", EN)),
    "layer_trucks": ("return document.querySelectorAll('.truck-icon').length",
                     t("layer_trucks", EN)),
    "layer_sites": (None, t("layer_sites", EN)),
}  # fmt: skip


HEAT_TITLE = t("heat_title", EN, window=t("heat_window_1h", EN))
# Scroll the legend panel so the legend titled arguments[0] is in view; false if there is none.
SHOW_LEGEND_JS = """
const box = document.getElementById("legends");
const title = Array.from(box.querySelectorAll(".legend-title"))
  .find(e => e.textContent.trim() === arguments[0]);
if (!title) { return false; }
title.parentElement.scrollIntoView({block: "nearest"});
return true;
"""


def test_lay005_every_layer_appears_with_its_legend(browser, lived_in):
    _open_map(browser, lived_in)
    names = show_overlays(browser, [k for k in DRAWN] + ["layer_trails"])
    for key in DRAWN:
        assert t(key, EN) in names, f"{key} missing from the layer control"
    for key, (drawn_js, _title) in DRAWN.items():
        if drawn_js:
            wait_until(lambda js=drawn_js: browser.execute_script(js) > 0, timeout=30,
                       what=f"{key} drawn")  # fmt: skip
    # the canvases really carry ink: grids, sites and gauges in their panes
    for pane in ("overlay", "sites", "gauges"):
        assert browser.execute_script(PANE_INK_JS, pane) > 0, f"nothing drawn in {pane} pane"
    legend = _legend_text(browser)
    for key, (_js, title) in DRAWN.items():
        if title:
            assert title in legend, f"legend of {key} missing"
    wait_until(lambda: HEAT_TITLE in _legend_text(browser), timeout=15, what="heat legend")
    # an hour of feed is far more than the cap: the legend says only the newest are shown,
    # and the markers and clusters on the map add up to exactly the cap
    capped = t("incidents_capped", EN, n=f"{MAX_POINTS:,}")
    wait_until(lambda: capped in _legend_text(browser), timeout=20, what="capped legend")
    drawn = wait_until(
        lambda: (p := browser.execute_script(POINTS_JS))
        and len(p["points"]) + p["clustered"] == MAX_POINTS and p,
        timeout=20, what=f"{MAX_POINTS} incidents on the map",
    )  # fmt: skip
    assert drawn["clusters"] > 0  # that many points are clustered
    # switching an overlay off takes it off the map, and it stays off while its data updates
    show_overlays(browser, ["layer_heat"])
    grids, points = DRAWN["layer_grids"][0], DRAWN["layer_incidents"][0]
    wait_until(lambda: browser.execute_script(grids) == 0 and browser.execute_script(points) == 0,
               timeout=10, what="grids and incident points off")  # fmt: skip
    seen = browser.execute_script("return window.cockpitMap.state.lastSeq")
    wait_until(lambda: browser.execute_script("return window.cockpitMap.state.lastSeq") != seen,
               timeout=10, what="a grid update after switching off")  # fmt: skip
    time.sleep(0.5)  # the update has been drawn (or would have been)
    assert browser.execute_script(grids) == 0
    assert browser.execute_script(DRAWN["layer_trucks"][0]) == 0
    assert outside(requested_urls(browser)) == []


def _ready(driver: WebDriver, keys: list[str]) -> None:
    for key in keys:
        drawn_js = DRAWN.get(key, (None, None))[0]
        if drawn_js:
            wait_until(lambda js=drawn_js: driver.execute_script(js) > 0, timeout=30,
                       what=f"{key} drawn")  # fmt: skip
        elif key == "layer_sites":
            wait_until(lambda: driver.execute_script(PANE_INK_JS, "sites") > 0, timeout=30,
                       what="sites drawn")  # fmt: skip
    # the legends filled by callbacks are in, and the canvases settled
    wait_until(lambda: HEAT_TITLE in _legend_text(driver), timeout=15, what="legends")
    time.sleep(0.5)  # let the last canvas frame and CSS fade-in finish before the capture


def test_lay006_screenshots_of_each_layer_and_the_4k_map(browser, lived_in):
    _open_map(browser, lived_in)
    for name, keys in LAYERS.items():
        show_overlays(browser, keys)
        _ready(browser, keys)
        title = DRAWN[keys[0]][1] or HEAT_TITLE
        assert browser.execute_script(SHOW_LEGEND_JS, title), f"no legend {title!r}"
        path = screenshot(browser, name)
        assert path.stat().st_size > 50_000, name  # a real picture, not a blank page
    assert outside(requested_urls(browser)) == []

    wall = make_browser(3840, 2160)
    try:
        _open_map(wall, lived_in)
        _ready(wall, list(DRAWN))
        path = screenshot(wall, "map-4k.png")
        assert path.stat().st_size > 200_000
        assert outside(requested_urls(wall)) == []
    finally:
        wall.quit()
