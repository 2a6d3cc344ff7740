"""The leader view (/leader) in real headless Chromium against `cockpit demo`: drilling by the tree,
the map and the up button, the ranking and its CSV, and forged drills outside a user's scope."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from shapely import get_coordinates

from cockpit.aggregates import SURVEY, read_incident
from cockpit.areastore import load_geography
from cockpit.contract import INCIDENTS, SURVEYS
from tests.conftest import wait_until
from tests.e2e.conftest import outside, requested_urls, screenshot, sign_in

pytestmark = pytest.mark.e2e

HOUR = 3_600_000
DRAWN = (
    "return Object.entries(window.cockpitLeader.state.layers)"
    ".filter(([k, l]) => l._map).map(([k, l]) => k).sort()"
)
CHART = "return document.querySelector('#{} .js-plotly-plot').data"


def _feed_huishan(r, geo) -> None:
    """A week of incidents (most resolved a few hours later) and survey answers in Huishan, so
    every chart has something to show; all older than an hour, so live counts are untouched."""
    grids = geo.areas.descendants("wx-hs", level="grid")
    now = int(r.time()[0]) * 1000
    tag = str(now)
    with r.pipeline(transaction=False) as pipe:
        for k in range(700):
            grid = grids[(k * 37) % len(grids)]
            lon, lat = get_coordinates(geo.areas.frame.geometry[grid].representative_point())[0]
            ts = now - 2 * HOUR - (k * 7919 % (6 * 24 * 60)) * 60_000
            fields = {"id": f"lead-{tag}-{k}", "category": "dispute", "lat": f"{lat:.7f}",
                      "lon": f"{lon:.7f}"}  # fmt: skip
            pipe.xadd(INCIDENTS, {**fields, "ts": str(ts)})
            if k % 5:  # four in five are resolved one to four hours later
                pipe.xadd(INCIDENTS, {**fields, "ts": str(ts + (1 + k % 4) * HOUR - 1),
                                      "status": "resolved"})  # fmt: skip
        for k in range(420):
            grid = grids[(k * 13) % len(grids)]
            scores = {"safety": str(5 - k % 4), "satisfaction": str(5 - k % 3)}
            ts = now - HOUR - (k % 7) * 24 * HOUR
            pipe.xadd(SURVEYS, {"id": f"lead-{tag}-{k}", "grid": grid, "ts": str(ts), **scores})
        pipe.execute()
    last = f"lead-{tag}-699"  # 699 % 5 != 0: its resolve is the last entry written
    wait_until(
        lambda: (
            int(r.hget(SURVEY, "wx-hs|n") or 0) >= 420
            and (read_incident(r, last, now) or {}).get("s") == "resolved"
        ),
        timeout=30,
        what="the week of Huishan data applied",
    )


def _open(browser, demo_server, user: str, path: str = "/leader") -> None:
    sign_in(browser, demo_server, user, path)
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, ".tree-node.current"),
        timeout=30,
        what="the area tree",
    )


def _current(browser) -> str:
    return browser.find_element(By.CSS_SELECTOR, ".leader-crumbs .crumb.current").text


def _drawn(browser) -> list[str]:
    return browser.execute_script(DRAWN)


def _at(browser, area_name: str, layer_ids: list[str]) -> bool:
    """The page shows ``area_name`` with exactly ``layer_ids`` on the map."""
    try:
        return _current(browser) == area_name and _drawn(browser) == sorted(layer_ids)
    except Exception:  # noqa: BLE001 - the page is being re-rendered
        return False


def _tree_nodes(browser) -> set[str]:
    buttons = browser.find_elements(By.CSS_SELECTOR, ".tree-node")
    return {b.get_attribute("data-area") for b in buttons}


def _table_names(browser) -> list[str]:
    cells = browser.find_elements(By.CSS_SELECTOR, "#leader-table td[data-dash-column=name]")
    return [c.text for c in cells]


def test_lead001_city_drills_by_tree_map_and_up_ranks_and_exports(browser, demo_server, tmp_path):
    r = demo_server.redis()
    geo = load_geography(r)
    areas = geo.areas

    def name(area_id: str) -> str:
        return areas.frame.at[area_id, "name_en"]

    _feed_huishan(r, geo)
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    _open(browser, demo_server, "demo-city")

    # the tree and the map show the districts of the city
    assert _tree_nodes(browser) == {"wx", "wx-hs", "wx-lx"}  # lazily built: no streets yet
    wait_until(lambda: _at(browser, name("wx"), ["wx-hs", "wx-lx"]), timeout=15, what="city map")
    assert browser.find_element(By.ID, "leader-up").get_attribute("disabled") is not None

    # clicking a district in the tree drills down: map, charts and ranking follow
    browser.find_element(By.CSS_SELECTOR, '.tree-node[data-area="wx-hs"]').click()
    streets = [s for s in areas.children("wx-hs") if areas.level_of(s) == "street"]
    wait_until(lambda: _at(browser, name("wx-hs"), streets), timeout=15, what="Huishan drawn")
    wait_until(
        lambda: (
            browser.execute_script(CHART.format("leader-chart-incidents"))[0]["name"]
            == name("wx-hs")
        ),
        timeout=10,
        what="incidents chart of Huishan",
    )
    wait_until(
        lambda: sorted(_table_names(browser)) == sorted(name(s) for s in streets),
        timeout=10,
        what="ranking of Huishan's streets",
    )
    # the week fed above is in the charts: resolution rates and a pooled index with its n
    rates = browser.execute_script(CHART.format("leader-chart-rate"))[0]["y"]
    assert any(v is not None and v > 0 for v in rates)
    index_title = browser.execute_script(
        "return document.querySelector('#leader-chart-index .js-plotly-plot').layout.title.text"
    )
    assert "n = " in index_title
    assert _tree_nodes(browser) == {"wx", "wx-hs", "wx-lx", *streets}  # one branch opened

    # the CSV export writes the ranking: Huishan first, then each street, with its figures
    browser.find_element(By.ID, "leader-export").click()
    target = tmp_path / "cockpit-wx-hs-7d.csv"
    wait_until(lambda: target.exists() and target.stat().st_size > 0, timeout=10, what="CSV")
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert rows[0][:3] == ["Area id", "Area", "Incidents"]
    assert [row[0] for row in rows[1:]] == ["wx-hs", *streets]
    # each bucket is read for the district and its streets in one HMGET: the streets add up
    assert int(rows[1][2]) == sum(int(row[2]) for row in rows[2:]) > 0

    # clicking a street on the map drills into it
    street = streets[2]
    lon, lat = get_coordinates(areas.frame.geometry[street].representative_point())[0]
    x, y = browser.execute_script(
        "const l = Object.values(window.cockpitLeader.state.layers).find(l => l._map);"
        f"const p = l._map.latLngToContainerPoint([{lat}, {lon}]); return [p.x, p.y];"
    )
    map_el = browser.find_element(By.ID, "leader-map")
    w, h = map_el.size["width"], map_el.size["height"]
    chain = ActionChains(browser).move_to_element_with_offset(map_el, x - w / 2, y - h / 2)
    chain.click().perform()  # a real mouse click on the canvas, where the street is
    communities = [c for c in areas.children(street) if areas.level_of(c) == "community"]
    wait_until(lambda: _at(browser, name(street), communities), timeout=15, what="street drawn")
    assert browser.find_element(By.ID, "leader-up").get_attribute("disabled") is None

    # up goes back to the district
    browser.find_element(By.ID, "leader-up").click()
    wait_until(lambda: _at(browser, name("wx-hs"), streets), timeout=15, what="back up")
    browser.find_element(By.CSS_SELECTOR, "#leader-compare input").click()
    wait_until(
        lambda: len(browser.execute_script(CHART.format("leader-chart-incidents"))) > 1,
        timeout=10,
        what="comparison lines",
    )
    assert outside(requested_urls(browser)) == []
    time.sleep(0.5)  # let the charts finish their transition before the picture
    screenshot(browser, "leader.png")


def _render_request(browser, area: str) -> dict:
    """POST the indicators callback ourselves, as a forger would, with ``area`` in the store."""
    script = """
    const done = arguments[arguments.length - 1];
    const area = arguments[0];
    fetch('/_dash-dependencies').then(r => r.json()).then(deps => {
      const cb = deps.find(d => d.output.includes('leader-crumbs.children'));
      const outputs = cb.output.replace(/^\\.\\./, '').replace(/\\.\\.$/, '').split('...')
        .map(s => { const i = s.lastIndexOf('.');
                    return {id: s.slice(0, i), property: s.slice(i + 1)}; });
      const values = {'leader-area': area, 'leader-range': '7d', 'leader-metric': 'incidents',
                      'leader-compare': [], 'leader-refresh': 1};
      const inputs = cb.inputs.map(i => ({id: i.id, property: i.property, value: values[i.id]}));
      return fetch('/_dash-update-component', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({output: cb.output, outputs, inputs, state: [],
                              changedPropIds: ['leader-area.data']})});
    }).then(r => r.text()).then(t => done(t)).catch(e => done('ERROR ' + e));
    """
    text = browser.execute_async_script(script, area)
    assert not text.startswith("ERROR"), text
    return json.loads(text)


def test_lead002_forged_drill_outside_a_street_shows_nothing_of_it(browser, demo_server):
    r = demo_server.redis()
    areas = load_geography(r).areas
    own = "wx-hs-01"
    foreign = ["wx-lx", *areas.descendants("wx-lx")]
    foreign_names = {areas.frame.at[a, "name_en"] for a in foreign if areas.level_of(a) != "grid"}
    communities = [c for c in areas.children(own) if areas.level_of(c) == "community"]
    own_name = areas.frame.at[own, "name_en"]

    # a crafted link: ?area= another district lands on the street's own area
    _open(browser, demo_server, "demo-street", "/leader?area=wx-lx")
    wait_until(lambda: _at(browser, own_name, communities), timeout=15, what="own street")

    # the store set by script, then a range change so the indicators are read again with it
    browser.execute_script("window.dash_clientside.set_props('leader-area', {data: 'wx-lx'})")
    browser.find_element(By.CSS_SELECTOR, "#leader-range input[value='30d']").click()
    wait_until(
        lambda: len(browser.execute_script(CHART.format("leader-chart-incidents"))[0]["x"]) == 30,
        timeout=10,
        what="30-day chart",
    )
    assert _at(browser, own_name, communities)
    page = browser.find_element(By.TAG_NAME, "body").text
    assert not [n for n in foreign_names if n in page]
    assert browser.find_element(By.ID, "leader-up").get_attribute("disabled") is not None

    # the raw request a forger would send: the answer is about the street, never the district
    answer = json.dumps(_render_request(browser, "wx-lx"), ensure_ascii=False)
    assert own_name in answer
    leaked = [a for a in foreign if f'"{a}"' in answer]
    assert leaked == [] and not [n for n in foreign_names if n in answer]
    assert outside(requested_urls(browser)) == []
