"""The first live view in real headless Chromium against `cockpit demo`."""

from __future__ import annotations

import time

import pytest
from shapely import get_coordinates

from cockpit.contract import INCIDENTS
from tests.conftest import wait_until
from tests.e2e.conftest import outside, requested_urls, screenshot, sign_in

pytestmark = pytest.mark.e2e

DRAWN = "return Object.values(window.cockpitMap.state.layers).filter(l => l._map).length"


def _open_map(browser, demo_server) -> None:
    sign_in(browser, demo_server, "demo-city")
    wait_until(
        lambda: browser.execute_script(
            "return window.cockpitMap && " + DRAWN.removeprefix("return ")
        ),
        timeout=30,
        what="grid shapes drawn",
    )


def test_map001_draws_every_grid_and_nothing_leaves_localhost(browser, demo_server):
    _open_map(browser, demo_server)
    drawn = wait_until(
        lambda: browser.execute_script(DRAWN) >= 557 and browser.execute_script(DRAWN),
        timeout=30,
        what="557 grids",
    )
    assert drawn >= 557
    # the live feed colours the map: the KPI and the badge come alive
    wait_until(
        lambda: "fresh" in browser.find_element("id", "data-age").get_attribute("class"),
        timeout=20,
        what="fresh data badge",
    )
    coloured = wait_until(
        lambda: browser.execute_script(
            "return Object.values(window.cockpitMap.state.drawn).filter(v => v > 0).length"
        ),
        timeout=10,
        what="grids coloured by the backfilled feed",
    )
    assert coloured > 100  # the demo opens on an hour of feed, spread over the city
    urls = requested_urls(browser)
    assert any("/geo/grid.geojson" in u for u in urls)
    assert outside(urls) == []
    screenshot(browser, "map.png")


def test_map002_xadd_into_one_grid_changes_its_count_within_5s(browser, demo_server):
    _open_map(browser, demo_server)
    r = demo_server.redis()
    from cockpit.areastore import load_geography

    geo = load_geography(r)
    grid_id = geo.grid_ids[42]
    point = geo.areas.grids.geometry.iloc[42].representative_point()
    lon, lat = get_coordinates(point)[0]
    before = browser.execute_script(f"return window.cockpitMap.state.drawn[{grid_id!r}] || 0")
    now_ms = int(r.time()[0]) * 1000
    for k in range(5):
        r.xadd(
            INCIDENTS,
            {
                "id": f"e2e-{k}-{now_ms}",
                "ts": str(now_ms),
                "category": "dispute",
                "lat": f"{lat:.7f}",
                "lon": f"{lon:.7f}",
                "text": "<b>x</b>",
            },
        )
    started = time.monotonic()
    after = wait_until(
        lambda: (
            (n := browser.execute_script(f"return window.cockpitMap.state.drawn[{grid_id!r}] || 0"))
            >= before + 5
            and n
        ),
        timeout=5,
        interval=0.1,
        what=f"grid {grid_id} count to rise by 5",
    )
    assert after >= before + 5
    assert time.monotonic() - started <= 5
    # the tooltip names the grid and its parents and shows the new count, as text
    text = browser.execute_script(
        f"const l = window.cockpitMap.state.layers[{grid_id!r}]; l.openTooltip();"
        "return l.getTooltip().getElement().innerText;"
    )
    row = geo.areas.grids.loc[grid_id]
    assert row["name_en"] in text
    assert f"{after} " in text
    assert outside(requested_urls(browser)) == []


def test_map003_grid_values_arrive_by_push_and_polling_leaves_them_alone(browser, demo_server):
    """The grid values come from the server's push stream: the page opens it, says so to the
    polling callback, and a new incident reaches the map as a push event."""
    _open_map(browser, demo_server)
    wait_until(
        lambda: browser.execute_script("return window.cockpitPush.on && window.cockpitPush.events"),
        timeout=15,
        what="push stream delivering",
    )
    r = demo_server.redis()
    from cockpit.areastore import load_geography

    geo = load_geography(r)
    grid_id = geo.grid_ids[7]
    lon, lat = get_coordinates(geo.areas.grids.geometry.iloc[7].representative_point())[0]
    pushed = f"return (window.cockpitPush.data.values[{grid_id!r}] || 0)"
    before = browser.execute_script(pushed)
    events = browser.execute_script("return window.cockpitPush.events")
    kpi_before = int(browser.find_element("id", "kpi-incidents").text.replace(",", "") or 0)
    # while the stream delivers, the page does not poll the grid values
    # ...and its other live parts run when the stream's view events say they changed (their
    # tick stores then hold the pushed versions, strings), not with the interval's numbers
    browser.execute_script(
        "window.__gridPolls = 0; window.__partTicks = [];"
        " const f = window.fetch; window.fetch = function (u, i) {"
        " if (String(u).includes('_dash-update-component') && i) {"
        "  const body = JSON.parse(String(i.body));"
        "  if (body.output.includes('grid-values.data')) { window.__gridPolls += 1; }"
        "  (body.inputs || []).forEach(function (x) {"
        "   if (String(x.id).startsWith('tick-')) { window.__partTicks.push([x.id, x.value]); }"
        "  }); }"
        " return f.apply(this, arguments); };"
    )
    now_ms = int(r.time()[0]) * 1000
    for k in range(3):
        r.xadd(INCIDENTS, {"id": f"push-{k}-{now_ms}", "ts": str(now_ms), "category": "dispute",
                           "lat": f"{lat:.7f}", "lon": f"{lon:.7f}"})  # fmt: skip
    value = wait_until(
        lambda: (n := browser.execute_script(pushed)) >= before + 3 and n,
        timeout=5,
        interval=0.05,
        what=f"pushed value of {grid_id} to rise by 3",
    )
    assert browser.execute_script("return window.cockpitPush.events") > events
    kpi = wait_until(
        lambda: int(browser.find_element("id", "kpi-incidents").text.replace(",", "") or 0)
        >= kpi_before + 3,
        timeout=5,
        what="the hour's incident KPI to rise by 3 through the stream",
    )
    assert kpi
    drawn = wait_until(
        lambda: browser.execute_script(f"return window.cockpitMap.state.drawn[{grid_id!r}]")
        == value,
        timeout=5,  # the page paints at most every twice its last paint's cost
        interval=0.05,
        what="the pushed value painted",
    )
    assert drawn
    assert browser.execute_script("return window.__gridPolls") == 0
    ticks = wait_until(
        lambda: (t := browser.execute_script("return window.__partTicks"))
        and any(k == "tick-slow" for k, _v in t) and t,
        timeout=10,
        what="the heat and incident layers fetched after a view event",
    )
    assert all(isinstance(v, str) for _k, v in ticks), ticks
    # the stream is one request to this server, not one per update
    urls = [u for u in requested_urls(browser) if "/push/grids" in u]
    assert len(urls) == 1 and "metric=incidents" in urls[0]
    assert outside(requested_urls(browser)) == []
