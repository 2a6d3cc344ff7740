"""The demo feeds: determinism, realism rules, planted ground truth, and the contract."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import shapely

from cockpit.areastore import Geography
from cockpit.contract import GAUGES, INCIDENTS, SURVEYS, TRUCKS, decode_fields, validate_incidents
from cockpit.simulator import (
    CATEGORY_WEIGHTS,
    GaugeSimulator,
    IncidentSimulator,
    SurveySimulator,
    TruckSimulator,
    local_hour,
    run_simulator,
)
from geo.reference import ReferenceData, generate_reference

CST = timezone(timedelta(hours=8))
#: 18:00 China time: a truck night shift (20:00-06:00) lies inside the next 16 hours.
EVENING = datetime(2026, 7, 6, 18, 0, tzinfo=CST).timestamp()
SHIFT_S = 16 * 3600


@pytest.fixture(scope="module")
def geo(demo_areas) -> Geography:
    return Geography(demo_areas)


@pytest.fixture(scope="module")
def reference(demo_areas) -> ReferenceData:
    return generate_reference(demo_areas, seed=7)


@pytest.fixture(scope="module")
def night(reference, geo):
    """A truck simulator and every ping of one night, every 30 s."""
    sim = TruckSimulator(reference, geo, seed=7)
    pings = [p for k in range(SHIFT_S // 30) for p in sim.positions(EVENING + 30 * k)]
    return sim, pings


def _by_truck(pings: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = defaultdict(list)
    for p in pings:
        out[p["truck"]].append(p)
    return out


def _t(entry: dict[str, str]) -> float:
    return int(entry["ts"]) / 1000


def _xy(entry: dict[str, str]) -> tuple[float, float]:
    return float(entry["lon"]), float(entry["lat"])


# -- incidents ---------------------------------------------------------------------------------


def test_sim001_incident_categories_follow_the_weights(geo) -> None:
    sim = IncidentSimulator(geo, seed=3)
    n = 20_000
    cats = [inc.category for inc in sim.batch(n, hour=10.0)]
    names = list(CATEGORY_WEIGHTS)
    observed = np.array([cats.count(c) for c in names])
    p = np.array([CATEGORY_WEIGHTS[c] for c in names])
    expected = n * p / p.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < 27.9, f"chi-square {chi2:.1f} above the 0.1% critical value for 9 df"


def test_sim002_incidents_and_updates_validate_against_the_contract(geo) -> None:
    sim = IncidentSimulator(geo, seed=5)
    entries = []
    t = EVENING
    for _ in range(240):  # four simulated hours, a minute apart
        entries += [inc.fields(int(t * 1000)) for inc in sim.emit(40, t)]
        t += 60
    batch = validate_incidents(
        [(f"{k}-0", e) for k, e in enumerate(entries)], now_ms=int(t * 1000), bbox=geo.bbox
    )
    assert batch.rejects == []
    assert len(batch) == len(entries)
    pos = geo.locator.locate(batch.lon, batch.lat)
    assert (pos >= 0).all(), "every incident lies in a grid"


def test_sim003_status_updates_follow_new_incidents_in_order(geo) -> None:
    sim = IncidentSimulator(geo, seed=5)
    history: dict[str, list[tuple[float, str]]] = defaultdict(list)
    t = EVENING
    for _ in range(8 * 60):  # eight hours: enough for most to be resolved
        for inc in sim.emit(10 if t < EVENING + 3600 else 0, t):
            history[inc.id].append((t, inc.status))
        t += 60
    chains = [[s for _, s in h] for h in history.values()]
    assert all(c[0] == "new" for c in chains), "an update never comes before its incident"
    allowed = {("new",), ("new", "dispatched"), ("new", "dispatched", "handling"),
               ("new", "dispatched", "handling", "resolved")}  # fmt: skip
    assert {tuple(c) for c in chains} <= allowed
    resolved = sum(c[-1] == "resolved" for c in chains) / len(chains)
    assert 0.3 < resolved < 0.6, f"about half are followed to resolution, got {resolved:.2f}"
    assert all(a[0] <= b[0] for h in history.values() for a, b in zip(h, h[1:], strict=False))


def test_sim004_a_share_carries_chinese_text_and_a_few_are_hostile(geo) -> None:
    incidents = IncidentSimulator(geo, seed=9).batch(20_000, hour=20.0)
    with_text = [i for i in incidents if i.text]
    assert 0.55 < len(with_text) / len(incidents) < 0.65
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in i.text) for i in with_text)
    assert 0.45 < sum(bool(i.address) for i in incidents) / len(incidents) < 0.55
    reporters = [i.reporter for i in incidents if i.reporter]
    assert reporters and all(r.split(" ")[1].isdigit() for r in reporters)
    hostile = [i for i in with_text if "<" in i.text or "javascript:" in i.text]
    assert 10 <= len(hostile) <= 80, len(hostile)  # 0.2% of 20k is 40
    assert any("<script>alert(1)</script>" in i.text for i in hostile)
    assert {i.source for i in incidents if i.category == "hotline"} == {"hotline"}


# -- determinism -------------------------------------------------------------------------------


def _feeds(geo, reference, seed: int) -> list:
    incidents = IncidentSimulator(geo, seed=seed)
    gauges = GaugeSimulator(reference, seed=seed)
    trucks = TruckSimulator(reference, geo, seed=seed, n_trucks=20)
    surveys = SurveySimulator(geo, seed=seed)
    out = []
    for k in range(0, 4 * 3600, 600):
        t = EVENING + 3 * 3600 + k
        out.append([inc.fields(int(t * 1000)) for inc in incidents.emit(30, t)])
        out.append(gauges.readings(t))
        out.append(trucks.positions(t))
        out.append(surveys.answers(20, t))
    return out


def test_sim005_same_seed_same_feed_other_seed_other_feed(geo, reference) -> None:
    one, two, other = (_feeds(geo, reference, s) for s in (11, 11, 12))
    assert one == two
    for kind in range(4):  # incidents, gauges, trucks, surveys: each one differs
        assert one[kind::4] != other[kind::4], kind


def test_sim006_gauges_and_trucks_are_pure_functions_of_time(geo, reference) -> None:
    ts = [EVENING + 7200 + 30 * k for k in range(200)]
    a = GaugeSimulator(reference, seed=4)
    b = GaugeSimulator(reference, seed=4)
    assert [a.readings(t) for t in ts] == [b.readings(t) for t in reversed(ts)][::-1]
    c = TruckSimulator(reference, geo, seed=4)
    d = TruckSimulator(reference, geo, seed=4)
    assert [c.positions(t) for t in ts] == [d.positions(t) for t in reversed(ts)][::-1]


# -- gauges ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gauge_day(reference) -> tuple[GaugeSimulator, list[dict[str, str]]]:
    """A gauge simulator and 24 simulated hours of readings, one a minute."""
    sim = GaugeSimulator(reference, seed=7)
    rows = [r for k in range(24 * 60) for r in sim.readings(EVENING + 60 * k)]
    return sim, rows


def test_sim007_gauges_pass_warning_and_fall_back(reference, gauge_day) -> None:
    _, rows = gauge_day
    g = reference.gauges
    levels: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        levels[r["gauge"]].append(float(r["level_m"]))
    assert set(levels) == set(g.index) and all(len(v) == 24 * 60 for v in levels.values())
    half = 12 * 60  # readings of the first 12 simulated hours
    passed = {gid for gid, v in levels.items() if max(v[:half]) > g.at[gid, "warning_m"]}
    assert passed, "some gauge passes its warning level within 12 h"
    assert any(max(levels[gid][:half]) > g.at[gid, "danger_m"] for gid in passed), "and danger"
    assert len(passed) < len(g), "not every gauge floods at once"
    complete = 0
    for gid in passed:
        above = np.array(levels[gid]) > g.at[gid, "warning_m"]
        first = int(np.argmax(above))
        back = first + int(np.argmax(~above[first:]))
        assert not above[back], f"{gid} falls back below warning"
        complete += back < half
    assert complete, "some flood rises and falls back within the 12 h"


def test_sim008_some_gauges_hover_at_the_warning_level(reference, gauge_day) -> None:
    _, rows = gauge_day
    g = reference.gauges
    crossings: dict[str, int] = defaultdict(int)
    above: dict[str, bool] = {}
    for r in rows:
        now = float(r["level_m"]) > g.at[r["gauge"], "warning_m"]
        if r["gauge"] in above and now != above[r["gauge"]]:
            crossings[r["gauge"]] += 1
        above[r["gauge"]] = now
    assert max(crossings.values()) >= 6, "a level that flickers across warning tests hysteresis"


def test_sim009_gauge_readings_follow_the_contract(reference, gauge_day) -> None:
    sim, rows = gauge_day
    for r in rows:
        assert set(r) == {"gauge", "ts", "level_m", "rain_mm"}
        assert r["gauge"] in reference.gauges.index and r["ts"].isdigit()
        assert math.isfinite(float(r["level_m"])) and float(r["level_m"]) > 0
        assert float(r["rain_mm"]) >= 0
    events = sim.rain_events(EVENING, EVENING + 12 * 3600)
    assert events and all(e.end_t > e.start_t for e in events)


# -- trucks ------------------------------------------------------------------------------------


def test_sim010_pings_follow_the_contract(night, geo) -> None:
    sim, pings = night
    assert len(pings) > 10_000
    assert len({p["truck"] for p in pings}) == sim.n_trucks
    minx, miny, maxx, maxy = geo.bbox
    lon = np.array([float(p["lon"]) for p in pings])
    lat = np.array([float(p["lat"]) for p in pings])
    assert ((lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)).all()
    assert (geo.locator.locate(lon, lat) >= 0).all(), "every ping lies in a grid"
    speeds = np.array([float(p["speed_kmh"]) for p in pings])
    assert (speeds >= 0).all() and 25 < np.median(speeds[speeds > 0]) < 35
    assert {p["loaded"] for p in pings} == {"0", "1"}
    assert all(set(p) == {"truck", "ts", "lat", "lon", "speed_kmh", "loaded"} for p in pings)


def test_sim011_every_loaded_trip_starts_in_a_building_site(night, reference) -> None:
    _, pings = night
    building = shapely.union_all(reference.building_sites.geometry.values)
    starts = 0
    for track in _by_truck(pings).values():
        before = "0"
        for p in track:
            if p["loaded"] == "1" and before == "0":
                starts += 1
                assert building.covers(shapely.Point(_xy(p))), p
            before = p["loaded"]
    assert starts > 2 * len(_by_truck(pings))


def test_sim012_unloading_happens_at_disposal_sites_or_planted_dumps(night, reference) -> None:
    sim, pings = night
    disposal = shapely.union_all(reference.disposal_sites.geometry.values)
    dumps = {(p.truck, round(p.lat, 6), round(p.lon, 6)) for p in sim.planted
             if p.kind == "dumping"}  # fmt: skip
    for truck, track in _by_truck(pings).items():
        for a, b in zip(track, track[1:], strict=False):
            if _t(b) - _t(a) > 30:
                continue  # a planted silence: where it unloaded was not seen
            if a["loaded"] == "1" and b["loaded"] == "0":
                at_dump = (truck, round(float(a["lat"]), 6), round(float(a["lon"]), 6)) in dumps
                assert at_dump or disposal.covers(shapely.Point(_xy(b))), (a, b)


def test_sim013_planted_dumping_is_a_long_loaded_stop_outside_every_site(night, reference) -> None:
    sim, pings = night
    sites = shapely.union_all(
        [*reference.building_sites.geometry, *reference.disposal_sites.geometry]
    )
    dumps = [p for p in sim.planted if p.kind == "dumping"]
    assert len(dumps) == sim.per_kind == 3
    tracks = _by_truck(pings)
    for d in dumps:
        during = [p for p in tracks[d.truck] if d.start_t <= _t(p) <= d.end_t]
        assert d.end_t - d.start_t >= 30 * 60
        assert len(during) >= 60, "stationary for 30+ min at 30 s per ping"
        assert all(p["loaded"] == "1" and float(p["speed_kmh"]) == 0 for p in during)
        assert len({_xy(p) for p in during}) == 1, "does not move"
        assert not sites.intersects(shapely.Point(_xy(during[0])).buffer(0.001))
        after = next(p for p in tracks[d.truck] if _t(p) > d.end_t)
        assert after["loaded"] == "0" and _xy(after) != _xy(during[0]), "drives off empty"


def test_sim014_only_planted_trucks_enter_forbidden_zones(night, reference) -> None:
    sim, pings = night
    zones = reference.forbidden_zones
    planted = [p for p in sim.planted if p.kind == "forbidden_zone"]
    assert len(planted) == 3
    inside = shapely.contains_xy(
        shapely.union_all(zones.geometry.values),
        [float(p["lon"]) for p in pings],
        [float(p["lat"]) for p in pings],
    )
    hits = [p for p, yes in zip(pings, inside, strict=True) if yes]
    for p in hits:
        assert any(
            z.truck == p["truck"] and z.start_t <= _t(p) <= z.end_t and p["loaded"] == "1"
            for z in planted
        ), p
    for z in planted:
        assert any(p["truck"] == z.truck for p in hits), f"{z.truck} is seen inside {z.detail}"
        assert zones.geometry[z.detail].covers(shapely.Point(z.lon, z.lat))


def test_sim015_only_planted_trucks_drive_outside_permitted_hours(night, reference) -> None:
    sim, pings = night
    planted = [p for p in sim.planted if p.kind == "off_hours"]
    assert len(planted) == 3
    outside = [p for p in pings if not reference.truck_hours_allow(local_hour(_t(p)))]
    assert outside
    for p in outside:
        assert any(o.truck == p["truck"] and o.start_t <= _t(p) <= o.end_t for o in planted), p
    moving = {p["truck"] for p in outside if float(p["speed_kmh"]) > 0}
    assert moving == {o.truck for o in planted}


def test_sim016_silent_trucks_go_quiet_for_20_minutes_and_no_one_else_does(night) -> None:
    sim, pings = night
    silent = {p.truck: p for p in sim.planted if p.kind == "silent"}
    assert len(silent) == 3
    for truck, track in _by_truck(pings).items():
        gaps = [(_t(a), _t(b)) for a, b in zip(track, track[1:], strict=False)
                if _t(b) - _t(a) > 30]  # fmt: skip
        if truck in silent:
            s = silent[truck]
            assert s.end_t - s.start_t >= 20 * 60
            assert len(gaps) == 1 and gaps[0][0] <= s.start_t and gaps[0][1] >= s.end_t
            assert not any(s.start_t < _t(p) < s.end_t for p in track)
        else:
            assert gaps == [], f"{truck} pings every 30 s while on shift"


# -- surveys -----------------------------------------------------------------------------------


def test_sim017_survey_means_differ_by_community_as_planted(geo) -> None:
    sim = SurveySimulator(geo, seed=7)
    answers = [a for k in range(40) for a in sim.answers(1000, EVENING + k)]
    table = geo.areas.grid_ancestors_table()
    grid_pos = {g: i for i, g in enumerate(geo.grid_ids)}
    with_point = [a for a in answers if "lat" in a]
    pos = geo.locator.locate([float(a["lon"]) for a in with_point],
                             [float(a["lat"]) for a in with_point])  # fmt: skip
    assert (pos >= 0).all()
    scores: dict[str, list[int]] = defaultdict(list)
    point_iter = iter(pos)
    for a in answers:
        g = a["grid"] if "grid" in a else geo.grid_ids[next(point_iter)]
        assert g in grid_pos
        scores[table.at[g, "community"]].append(int(a["safety"]))
    overall = np.mean([int(a["safety"]) for a in answers])
    for c in sim.better:
        assert np.mean(scores[c]) > overall + 0.5, c
    for c in sim.worse:
        assert np.mean(scores[c]) < overall - 0.7, c


def test_sim018_survey_answers_follow_the_contract(geo) -> None:
    answers = SurveySimulator(geo, seed=1).answers(2000, EVENING)
    assert sum("grid" in a for a in answers) == sum("lat" in a for a in answers) == 1000
    for a in answers:
        assert a["id"] and a["ts"].isdigit()
        assert a["safety"] in "12345" and a["satisfaction"] in "12345"
        assert len(a["safety"]) == len(a["satisfaction"]) == 1
        assert ("lat" in a and "lon" in a) != ("grid" in a)
    assert len({a["id"] for a in answers}) == len(answers)
    assert {a["safety"] for a in answers} == set("12345")


# -- into Redis --------------------------------------------------------------------------------


def test_sim019_run_writes_all_four_streams(r, loaded_city, reference) -> None:
    # last night at 22:00 China time, replayed at 600x and capped by the limit
    yesterday = datetime.now(CST).date() - timedelta(days=1)
    start = datetime(yesterday.year, yesterday.month, yesterday.day, 22, tzinfo=CST).timestamp()
    written = run_simulator(
        r, loaded_city, rate=2000, seed=7, limit=600, reference=reference, speed=600, start=start
    )
    assert written == 600 == r.xlen(INCIDENTS)
    for stream in (GAUGES, TRUCKS, SURVEYS):
        assert r.xlen(stream) > 0, stream
    entries = [(eid.decode(), decode_fields(f)) for eid, f in r.xrange(INCIDENTS)]
    batch = validate_incidents(entries, now_ms=int(r.time()[0]) * 1000, bbox=loaded_city.bbox)
    assert batch.rejects == []
    gauges = [decode_fields(f) for _, f in r.xrange(GAUGES)]
    assert {g["gauge"] for g in gauges} == set(reference.gauges.index)
    first = min(int(g["ts"]) for g in gauges) / 1000
    assert first == start
    trucks = [decode_fields(f) for _, f in r.xrange(TRUCKS)]
    assert all(t["loaded"] in ("0", "1") for t in trucks)


def test_sim020_feeds_can_be_chosen_and_the_limit_counts_them(r, loaded_city, reference) -> None:
    with pytest.raises(ValueError, match="unknown feed"):
        run_simulator(r, loaded_city, 10, 7, limit=1, feeds=frozenset({"weather"}))
    written = run_simulator(
        r, loaded_city, rate=10, seed=7, limit=50, reference=reference,
        feeds=frozenset({"gauges"}), speed=3600, start=EVENING,
    )  # fmt: skip
    assert written == 0  # no incident entries
    assert r.xlen(GAUGES) == 50
    assert r.xlen(INCIDENTS) == r.xlen(TRUCKS) == r.xlen(SURVEYS) == 0


@pytest.mark.parametrize("hours", [("07:30", "18:00"), ("04:00", "12:00"), ("22:00", "05:00")])
def test_sim017_trucks_drive_in_any_permitted_hours(reference, geo, hours) -> None:
    """A shift is found for any permitted hours, not only a night's (reference data may give
    07:30-18:00): from an hour after they begin to an hour before they end, trucks drive."""
    sim = TruckSimulator(replace(reference, truck_hours=hours), geo, seed=7)
    begin, end = (int(h[:2]) + int(h[3:]) / 60 for h in hours)
    start = datetime(2026, 7, 6, 0, 0, tzinfo=CST).timestamp()
    checked = 0
    for k in range(2 * 24 * 4):  # every 15 minutes of two days
        t = start + 900 * k
        hour = local_hour(t)
        if 1 <= (hour - begin) % 24 <= (end - begin) % 24 - 1:
            assert any(float(p["speed_kmh"]) > 0 for p in sim.positions(t)), (hours, hour)
            checked += 1
    assert checked >= 2 * 4 * 5  # at least five hours a day inside
