"""The first live view in real headless Chromium against `cockpit demo`."""

from __future__ import annotations

import time

import pytest
from shapely import get_coordinates

from cockpit.contract import INCIDENTS
from tests.conftest import wait_until
from tests.e2e.conftest import outside, requested_urls, screenshot, show_overlays, sign_in

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


# Grids of the map with an interior pixel on the grid canvas: the centre of the grid's pixel
# bounds, inside it with 3 px to spare. For each: id, that pixel in client coordinates, the
# canvas' RGBA there, the class colour of the value drawn, and the RGBA at the midpoints of
# its outline's edges. Leaflet's own hit test (_containsPoint) says what is inside.
GRID_PIXELS_JS = """
const m = window.cockpitMap, only = arguments[0], limit = arguments[1] || 1e9;
const hex = h => [1, 3, 5].map(i => parseInt(h.slice(i, i + 2), 16));
const out = [];
for (const id of (only || Object.keys(m.state.layers))) {
  const l = m.state.layers[id];
  if (!l || !l._map || !l._parts || l._parts.length !== 1) { continue; }
  const r = l._renderer, c = l._pxBounds.getCenter().round();
  const inside = [[0, 0], [3, 0], [-3, 0], [0, 3], [0, -3], [3, 3], [-3, -3], [3, -3], [-3, 3]]
    .every(([dx, dy]) => l._containsPoint(L.point(c.x + dx, c.y + dy)));
  const x = c.x - r._bounds.min.x, y = c.y - r._bounds.min.y;
  if (!inside || x < 0 || y < 0 || x >= r._container.width || y >= r._container.height) {
    continue;
  }
  const at = (px, py) => Array.from(
    r._ctx.getImageData(Math.floor(px - r._bounds.min.x), Math.floor(py - r._bounds.min.y), 1, 1)
      .data);
  const ring = l._parts[0];
  const edges = ring.map((p, i) => { const q = ring[(i + 1) % ring.length];
                                     return at((p.x + q.x) / 2, (p.y + q.y) / 2); });
  const box = r._container.getBoundingClientRect();
  const ll = l._map.layerPointToLatLng(c);
  const cx = box.left + x, cy = box.top + y;
  // something drawn there on a canvas above (a site, a gauge, a boundary line)
  const covered = Array.from(document.querySelectorAll(".leaflet-pane canvas")).some(o => {
    if (o === r._container) { return false; }
    const b = o.getBoundingClientRect();
    if (cx < b.left || cx >= b.right || cy < b.top || cy >= b.bottom) { return false; }
    const d = o.getContext("2d").getImageData(Math.floor(cx - b.left) - 3,
                                              Math.floor(cy - b.top) - 3, 7, 7).data;
    for (let i = 3; i < d.length; i += 4) { if (d[i]) { return true; } }
    return false;
  });
  out.push({id: id, client: [cx, cy], covered: covered, lat: ll.lat, lon: ll.lng,
            rgba: at(c.x, c.y), want: hex(m.classColor(m.state.drawn[id], m.state.colours || {})),
            value: m.state.drawn[id], edges: edges, weight: l.options.weight});
  if (out.length >= limit) { break; }
}
return out;
"""
HOVER_RGB = (0x1F, 0x2D, 0x3D)  # cockpitMap.gridHover's outline


def _fill_matches(g: dict) -> bool:
    """The pixel is the class colour at the grids' fill opacity (0.78) over nothing."""
    r, gr, b, a = g["rgba"]
    return all(abs(u - v) <= 4 for u, v in zip((r, gr, b), g["want"], strict=True)) and (
        abs(a - 199) <= 4
    )


def _dark_edges(g: dict) -> float:
    """Share of the outline's edge midpoints in the hover outline's colour, opaque."""
    def dark(e: list[int]) -> bool:
        near = sum((u - v) ** 2 for u, v in zip(e[:3], HOVER_RGB, strict=True)) < 45**2
        return e[3] > 200 and near

    near = [e for e in g["edges"] if dark(e)]
    return len(near) / max(1, len(g["edges"]))


def _mouse(browser, x: float, y: float) -> bool:
    """A real mouse move to client (x, y); repeated by callers, as a moving mouse (Leaflet drops
    moves within 32 ms of the last)."""
    browser.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
    return True


def test_map004_grid_canvas_paints_each_grid_in_its_class_colour_and_hover_on_top(
    browser, demo_server
):
    """The grid renderer (assets/gridcanvas.js: a pixel buffer, only the changed grids' pixels
    rewritten and their boxes put): after pushed values, every grid's interior pixel has its
    class colour, a grid that gets its first incidents changes colour, and a hovered grid's
    dark outline is drawn over its neighbours, then gone when the mouse leaves. A real mouse
    hovers it, though the canvases of the panes above take its events first."""
    _open_map(browser, demo_server)
    # the layers of markers go: the incidents added below would draw a marker right where the
    # mouse hovers (under load their slow tick came first, and the marker took the hover), and
    # a truck may drive over the grid
    show_overlays(browser, ["layer_grids", "layer_heat", "layer_sites", "layer_gauges"])
    wait_until(
        lambda: browser.execute_script(
            "const s = window.cockpitIncidents.state; return !Object.values(s.points)"
            ".concat(Object.values(s.clusters)).some(m => m._map)"
            " && !document.querySelector('.truck-icon')"
        ),
        timeout=10,
        what="incident and truck markers off the map",
    )
    wait_until(
        lambda: browser.execute_script("return window.cockpitPush.on && window.cockpitPush.events"),
        timeout=15,
        what="push stream delivering",
    )
    assert browser.execute_script(
        "return Object.values(window.cockpitMap.state.layers)[0]._renderer.flush !== undefined"
    ), "the grids are drawn by the grid renderer"
    empty = [g for g in browser.execute_script(GRID_PIXELS_JS, None, 400)
             if not g["value"] and not g["covered"]]  # fmt: skip
    assert empty, "some grid has no incidents"
    target = empty[0]
    r = demo_server.redis()
    now_ms = int(r.time()[0]) * 1000
    for k in range(2):
        r.xadd(INCIDENTS, {"id": f"px-{k}-{now_ms}", "ts": str(now_ms), "category": "dispute",
                           "lat": f"{target['lat']:.7f}",
                           "lon": f"{target['lon']:.7f}"})  # fmt: skip
    painted = wait_until(
        lambda: (g := browser.execute_script(GRID_PIXELS_JS, [target["id"]])[0])["value"]
        and _fill_matches(g) and g,
        timeout=8,
        interval=0.1,
        what=f"grid {target['id']} painted in its new class colour",
    )  # fmt: skip
    assert painted["want"] != target["want"]  # it left the no-incidents grey
    assert painted["rgba"][:3] != target["rgba"][:3]
    # every grid (not only the changed ones) shows its own class colour: the changed boxes'
    # neighbours were redrawn, nothing else was cleared
    wrong = wait_until(
        lambda: (gs := browser.execute_script(GRID_PIXELS_JS, None, 400))
        and not [g for g in gs if not _fill_matches(g)] and len(gs),
        timeout=5,
        what="every sampled grid's interior in its class colour",
    )
    assert wrong >= 100
    # hover: a real mouse over the grid (through the canvases of the panes above it); its
    # outline goes dark and lies over its neighbours' fills
    assert _dark_edges(painted) < 0.2
    hovered = wait_until(
        lambda: _mouse(browser, *painted["client"])
        and (g := browser.execute_script(GRID_PIXELS_JS, [target["id"]])[0])["weight"] == 2.5
        and _dark_edges(g) > 0.6 and g,
        timeout=5,
        what="the hovered grid's dark outline",
    )  # fmt: skip
    assert _fill_matches(hovered)
    tip = browser.execute_script(
        f"const t = window.cockpitMap.state.layers[{target['id']!r}].getTooltip();"
        " return t && t.isOpen() && t.getElement().innerText;"
    )
    assert tip and str(painted["value"]) in tip
    # then over a grid far away (a neighbour's dark outline would cover a shared edge)
    tx, ty = target["client"]
    other = max(empty, key=lambda g: (g["client"][0] - tx) ** 2 + (g["client"][1] - ty) ** 2)
    left = wait_until(
        lambda: _mouse(browser, *other["client"])
        and (g := browser.execute_script(GRID_PIXELS_JS, [target["id"]])[0])["weight"] != 2.5
        and _dark_edges(g) < 0.2 and g,
        timeout=5,
        what="the outline back to normal once the mouse left",
    )  # fmt: skip
    assert _fill_matches(left)
    # a pan moves every grid in pixels: the renderer finds their pixels again, and every grid
    # still shows its own class colour (the pan raises nothing: dash-leaflet's viewport tracking
    # threw on every move of a map without a center prop)
    renderer = "Object.values(window.cockpitMap.state.layers)[0]._renderer"
    x0 = browser.execute_script(f"return {renderer}._bounds.min.x")
    browser.execute_script(f"{renderer}._map.panBy([37, 23], {{animate: false}})")
    panned = wait_until(
        lambda: browser.execute_script(f"return {renderer}._bounds.min.x") != x0
        and (gs := browser.execute_script(GRID_PIXELS_JS, None, 400))
        and not [g for g in gs if not _fill_matches(g)] and len(gs),
        timeout=5,
        what="every sampled grid's interior in its class colour after a pan",
    )  # fmt: skip
    assert panned >= 100
