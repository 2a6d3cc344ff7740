"""Where an alert is drawn and how its escalation reads on screen (pure, no server)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from shapely.geometry import Point, box, mapping

from callbacks.wall import _focus
from cockpit.alerts.escalation import deadlines
from cockpit.alerts.model import Alert, alert_id, transition
from cockpit.alerts.screen import escalation, place
from cockpit.areastore import Geography
from cockpit.incidents import scope_grids
from layers.alerts import alert_features

T0 = 1_781_000_000.0


@pytest.fixture(scope="module")
def geo(demo_areas) -> Geography:
    return Geography(demo_areas)


def _alert(grids: list[str], geometry=None, severity: str = "severe") -> Alert:  # type: ignore[no-untyped-def]
    key = f"screen:{','.join(grids)}:{geometry is not None}"
    return Alert(id=alert_id(key), kind="flood_danger", severity=severity, status="new",
                 dedup_key=key, raised_at=T0, updated_at=T0, area_grids=grids,
                 geometry=geometry, title_en="<b>t</b>")  # fmt: skip


def test_scr001_point_alert_is_drawn_at_its_point_and_zooms_to_its_grid(geo) -> None:
    grid = str(geo.areas.grids.index[5])
    shape = geo.areas.frame.geometry.loc[grid]
    spot = shape.representative_point()
    where = place(_alert([grid], mapping(spot)), geo, scope_grids(geo, geo.areas.root_id))
    assert where is not None
    assert (where.lon, where.lat) == pytest.approx((spot.x, spot.y))
    minx, miny, maxx, maxy = shape.bounds
    assert sum(where.bounds, []) == pytest.approx([miny, minx, maxy, maxx])


def test_scr002_area_alert_is_drawn_inside_a_grid_the_viewer_sees(geo) -> None:
    street = geo.areas.ancestors(str(geo.areas.grids.index[0]))[1]
    mine = sorted(scope_grids(geo, street))
    others = sorted(scope_grids(geo, geo.areas.root_id) - set(mine))[:30]
    alert = _alert(mine[:3] + others)
    where = place(alert, geo, frozenset(mine))
    assert where is not None
    inside = [g for g in mine[:3] if geo.areas.frame.geometry.loc[g].contains(
        Point(where.lon, where.lat))]  # fmt: skip
    assert inside, "the marker lies outside the viewer's grids"
    minx, miny, maxx, maxy = geo.areas.frame.geometry.loc[mine[:3]].total_bounds
    assert sum(where.bounds, []) == pytest.approx([miny, minx, maxy, maxx])
    # nothing of it in the viewer's grids: no marker
    assert place(_alert(others), geo, frozenset(mine)) is None


def test_scr003_grid_less_point_outside_the_city_is_drawn_grid_less_area_is_not(geo) -> None:
    minx, miny, maxx, maxy = geo.bbox
    far = Point(maxx + 1, maxy + 1)
    everything = scope_grids(geo, geo.areas.root_id)
    assert place(_alert([], mapping(far)), geo, everything) is not None
    assert place(_alert([], mapping(box(maxx + 1, maxy + 1, maxx + 2, maxy + 2))), geo,
                 everything) is None  # fmt: skip


def test_scr004_countdown_runs_to_the_next_level_and_stops_when_acknowledged() -> None:
    alert = _alert(["g"])
    marks = dict(deadlines(alert))  # flood: street after 10 min, district after 20
    first = escalation(alert, T0 + 30)
    assert (first.level, first.next_level, first.next_at) == ("grid", "street", marks["street"])
    later = escalation(alert, marks["street"] + 1)
    assert (later.level, later.next_level, later.next_at) == (
        "street", "district", marks["district"])  # fmt: skip
    acked = transition(alert, "acknowledge", "someone", marks["street"] + 5)
    frozen = escalation(acked, marks["district"] + 100)
    assert (frozen.level, frozen.next_level, frozen.next_at) == ("street", None, None)
    top = escalation(alert, marks["city"] + 1)
    assert (top.level, top.next_level) == ("city", None)


def test_scr005_features_carry_text_fields_and_server_times(geo) -> None:
    grid = str(geo.areas.grids.index[0])
    alert = _alert([grid])
    fc = alert_features([alert], geo, scope_grids(geo, grid), "en", T0 + 60)
    (feature,) = fc["features"]
    props = feature["properties"]
    assert feature["id"] == alert.id and props["title"] == "<b>t</b>"  # raw text, shown as text
    assert props["sent_ms"] == int((T0 + 60) * 1000) and props["raised_ms"] == int(T0 * 1000)
    assert props["level"] == "grid" and props["next_level"] == "street"
    assert props["next_ms"] == int(dict(deadlines(alert))["street"] * 1000)


def test_scr006_a_moved_alert_is_placed_again_not_where_it_was(geo) -> None:
    """Markers are placed once per alert version and view; an alert that moves to another grid
    (a new version) is drawn in that grid."""
    city = scope_grids(geo, geo.areas.root_id)
    first, second = (str(g) for g in geo.areas.grids.index[[10, 400]])
    alert = _alert([first])
    before = alert_features([alert], geo, city, "en", T0)["features"][0]["geometry"]
    assert before == alert_features([alert], geo, city, "en", T0 + 1)["features"][0]["geometry"]
    moved = Alert(**{**alert.__dict__, "area_grids": [second], "updated_at": T0 + 5})
    after = alert_features([moved], geo, city, "en", T0 + 6)["features"][0]["geometry"]
    lon, lat = after["coordinates"]
    assert geo.areas.frame.geometry.loc[second].contains(Point(lon, lat))
    assert after != before


def test_scr007_a_marker_delta_applied_in_order_gives_the_new_markers(geo) -> None:
    """The alert layer sends what changed: deleting the given indexes one after the other and
    appending the rest turns the browser's markers into the new ones, whatever changed."""
    from callbacks.alert_layer import marker_delta

    city = scope_grids(geo, geo.areas.root_id)
    grids = [str(g) for g in geo.areas.grids.index[:12]]
    alerts = [_alert([g], severity="moderate") for g in grids[:8]]
    old = alert_features(alerts, geo, city, "en", T0)["features"]
    worse = Alert(**{**alerts[2].__dict__, "severity": "extreme", "updated_at": T0 + 9})
    now = [alerts[0], worse, *alerts[3:6], *(_alert([g]) for g in grids[8:])]  # 1, 6, 7 gone
    new = alert_features(now, geo, city, "en", T0 + 10)["features"]
    gone, added = marker_delta(old, new)
    shown = list(old)
    for index in gone:
        del shown[index]
    shown += added
    strip = lambda fs: sorted(  # noqa: E731
        (f["id"], f["properties"]["severity"], str(f["geometry"])) for f in fs
    )
    assert strip(shown) == strip(new)
    assert len(added) == 1 + 4  # the escalated one and the four new; unchanged ones stay
    assert marker_delta(new, new) == ([], [])


def test_scr008_wall_focus_is_the_most_severe_then_newest_recent_alert(geo) -> None:
    grids = [str(g) for g in geo.areas.grids.index[:3]]
    now = time.time()

    def at(grid: str, severity: str, age_s: float) -> Alert:
        return replace(_alert([grid], severity=severity), id=f"{grid}-{severity}",
                       raised_at=now - age_s)  # fmt: skip

    scope = scope_grids(geo, geo.areas.root_id)
    extreme, severe, newest = at(grids[0], "extreme", 60), at(grids[1], "severe", 30), at(
        grids[2], "severe", 5)  # fmt: skip
    # a newer severe alert (a gauge past danger) does not take the wall from an extreme one
    assert _focus([severe, extreme, newest], geo, scope)["id"] == extreme.id
    # among equals the newest has it; alerts older than the focus window never
    assert _focus([severe, newest], geo, scope)["id"] == newest.id
    assert _focus([at(grids[0], "extreme", 301), severe], geo, scope)["id"] == severe.id
    assert _focus([at(grids[0], "moderate", 1)], geo, scope) is None
    focus = _focus([extreme], geo, scope)
    minx, miny, maxx, maxy = geo.areas.frame.geometry.loc[grids[0]].bounds
    assert sum(focus["bounds"], []) == pytest.approx([miny, minx, maxy, maxx])
