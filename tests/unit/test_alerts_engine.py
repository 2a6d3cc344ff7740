"""The alert engine on a real Redis with a controlled clock: feeds in, one alert per situation,
restarts and standbys that raise nothing twice, escalation on time, CAP by stream and CLI."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import pytest
import redis
import shapely
from shapely.geometry import Point, shape

from cockpit.alerts import store
from cockpit.alerts.actions import act
from cockpit.alerts.cap import apply_cap, parse_cap
from cockpit.alerts.engine import (
    CAP_REFUSED,
    CAP_STREAM,
    GROUP,
    LEADER_KEY,
    AlertEngine,
    EngineConfig,
)
from cockpit.alerts.model import Alert
from cockpit.areastore import Geography, save_reference
from cockpit.cli_alerts import register
from cockpit.contract import DEADLETTER, GAUGES, INCIDENTS, TRUCKS
from cockpit.policy import User
from cockpit.settings import Settings
from cockpit.simulator import TruckSimulator
from geo.areas import AreaSet
from geo.reference import ReferenceData, generate_reference
from tests.conftest import wait_until
from tests.unit.test_alerts_cap import FLOOD_RING, cap_xml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cap"
T0 = 1_781_000_000.0
GAUGE = "HS-G01"
HOSTILE = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
    '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&lol2;</alert>'
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def reference(demo_areas: AreaSet) -> ReferenceData:
    return generate_reference(demo_areas)


@pytest.fixture
def city(r: redis.Redis, loaded_city: Geography, reference: ReferenceData) -> Geography:
    save_reference(r, reference)
    return loaded_city


def engine(r: redis.Redis, clock: Clock, **config: object) -> AlertEngine:
    return AlertEngine(r, clock=clock, config=EngineConfig(**config))  # type: ignore[arg-type]


def drain(eng: AlertEngine) -> int:
    """Step until the engine finds nothing new."""
    total = 0
    for _ in range(100):
        n = eng.step()
        total += n
        if n == 0:
            return total
    raise AssertionError("the engine kept finding entries")


def feed_gauge(r: redis.Redis, levels: list[float], t0: float, gauge: str = GAUGE) -> float:
    """One reading a minute from ``t0``; returns the last reading's time."""
    for i, level in enumerate(levels):
        r.xadd(GAUGES, {"gauge": gauge, "ts": str(int((t0 + i * 60) * 1000)),
                        "level_m": f"{level:.3f}"})  # fmt: skip
    return t0 + (len(levels) - 1) * 60


def brute_force(geom: shapely.Geometry, areas: AreaSet) -> list[str]:
    return sorted(g for g, poly in areas.grids.geometry.items() if poly.intersects(geom))


def kinds(r: redis.Redis) -> list[tuple[str, str]]:
    return sorted((a.kind, a.status) for a in store.all_alerts(r))


def actions(r: redis.Redis) -> list[str]:
    return [f["action"] for _i, f in store.recent_changes(r) if f["action"] != "escalate"]


def grid_user(grid: str) -> User:
    return User(id="user:g:1", name="officer", level="grid", area_id=grid)


# warning of HS-G01 is 3.08 m: just below, then +-1 cm around the line, then well below
BELOW, HOVER, DROP = [3.06] * 20, [3.09, 3.07] * 30, [2.80] * 45


def test_eng001_gauge_crossing_warning_raises_one_alert_on_its_catchment_and_clears(
    r: redis.Redis, city: Geography, reference: ReferenceData
) -> None:
    clock = Clock(T0)
    eng = engine(r, clock)
    clock.t = feed_gauge(r, BELOW + HOVER, T0) + 1
    drain(eng)
    (alert,) = store.all_alerts(r)
    catchment = reference.gauges.loc[GAUGE, "catchment"]
    expected = brute_force(catchment, city.areas)
    assert 0 < len(expected) < 100
    assert (alert.kind, alert.severity, alert.status) == ("flood_warning", "moderate", "new")
    assert alert.area_grids == expected and alert.source_ref == GAUGE
    # the officers of those grids see it, others do not
    outside = next(g for g in city.areas.grids.index if g not in expected)
    assert store.open_alerts(r, grid_user(expected[0]), city) == [alert]
    assert store.open_alerts(r, grid_user(outside), city) == []
    # the level leaves the hysteresis band: cleared once it stayed below for the hold (30 min)
    t_drop = T0 + len(BELOW + HOVER) * 60
    clock.t = feed_gauge(r, DROP[:29], t_drop) + 1
    drain(eng)
    assert store.get_alert(r, alert.id).status == "new"  # type: ignore[union-attr]
    clock.t = feed_gauge(r, DROP[29:], t_drop + 29 * 60) + 1
    drain(eng)
    assert kinds(r) == [("flood_warning", "cleared")]
    assert actions(r) == ["create", "clear"]  # hovering at the line changed nothing
    assert store.open_alerts(r, grid_user(expected[0]), city) == []


def test_eng002_restart_and_redelivery_raise_nothing_twice(r: redis.Redis, city: Geography) -> None:
    clock = Clock(T0)
    first = engine(r, clock)
    clock.t = feed_gauge(r, BELOW + HOVER, T0) + 1
    drain(first)
    (alert,) = store.all_alerts(r)
    # the first engine reads the next readings and dies before handling them
    clock.t = feed_gauge(r, DROP, T0 + len(BELOW + HOVER) * 60) + 1
    got = r.xreadgroup(GROUP, first.name, {GAUGES: ">"}, count=1000)
    assert len(got[0][1]) == len(DROP)
    r.delete(LEADER_KEY)  # its lock ran out
    second = engine(r, clock)
    drain(second)
    assert r.xpending(GAUGES, GROUP)["pending"] == 0
    assert kinds(r) == [("flood_warning", "cleared")]
    changes = r.xlen(store.STREAM)
    # worst case: everything is delivered again and the rule state was lost too
    second.release()
    r.xgroup_setid(GAUGES, GROUP, "0")
    r.delete(store.STATE_PREFIX + "flood")
    third = engine(r, clock)
    assert drain(third) == len(BELOW + HOVER + DROP)
    assert [a.id for a in store.all_alerts(r)] == [alert.id]
    assert r.xlen(store.STREAM) == changes  # not one change more


def test_eng003_two_engines_one_leads_no_duplicates_and_the_standby_takes_over(
    r: redis.Redis, city: Geography
) -> None:
    clock = Clock(T0)
    a, b = engine(r, clock, lock_ttl_ms=1000), engine(r, clock, lock_ttl_ms=1000)
    levels = BELOW + HOVER
    for i in range(0, len(levels), 10):
        clock.t = feed_gauge(r, levels[i : i + 10], T0 + i * 60) + 1
        a.step()
        b.step()
    assert a.leader and not b.leader and b.stats.handled == 0
    (alert,) = store.all_alerts(r)
    # the leader dies (stops renewing); the standby takes over when its lock expires
    t_up = T0 + len(levels) * 60
    clock.t = feed_gauge(r, [3.5, 3.8, 3.8], t_up) + 1
    wait_until(lambda: b.step() or b.leader, timeout=10, what="standby to take over")
    drain(b)
    (upgraded,) = store.all_alerts(r)
    assert upgraded.id == alert.id and (upgraded.kind, upgraded.severity) == ("flood_danger",
                                                                              "severe")  # fmt: skip
    assert actions(r).count("create") == 1


def test_eng004_escalation_moves_on_time_and_stops_when_acknowledged(
    r: redis.Redis, city: Geography
) -> None:
    clock = Clock(T0)
    eng = engine(r, clock, timer_s=1)
    clock.t = feed_gauge(r, [3.06, 3.10], T0) + 1
    clock.t = feed_gauge(r, [3.30, 3.40], T0, gauge="HS-G03") + 1  # warning 3.25
    drain(eng)
    alerts = {a.source_ref: a for a in store.all_alerts(r)}
    raised = alerts[GAUGE].raised_at
    assert alerts["HS-G03"].raised_at == raised
    officer = grid_user(alerts["HS-G03"].area_grids[0])
    act(r, officer, alerts["HS-G03"].id, "acknowledge", "", city, raised + 300)
    # flood: 10 min at grid, 10 at street, 15 at district
    for offset, level in ((599, "grid"), (600, "street"), (1199, "street"), (1200, "district"),
                          (2099, "district"), (2100, "city"), (9000, "city")):  # fmt: skip
        clock.t = raised + offset
        eng.step()
        assert store.get_alert(r, alerts[GAUGE].id).escalation_level == level, offset  # type: ignore[union-attr]
        assert store.get_alert(r, alerts["HS-G03"].id).escalation_level == "grid"  # type: ignore[union-attr]
    steps = [a["comment"] for _i, a in store.audit_entries(r) if a["action"] == "escalate"]
    assert steps == ["grid -> street", "street -> district", "district -> city"]
    # a street user now finds it among the open alerts of its scope
    street = city.areas.grid_ancestors_table().loc[alerts[GAUGE].area_grids[0], "street"]
    user = User(id="user:s:1", name="s", level="street", area_id=street)
    assert alerts[GAUGE].id in [a.id for a in store.open_alerts(r, user, city)]


def test_eng005_planted_illegal_dumping_raises_one_alert_at_its_grid(
    r: redis.Redis, city: Geography, reference: ReferenceData
) -> None:
    sim = TruckSimulator(reference, city)
    planted = next(p for p in sim.planted_between(T0, T0 + 86400) if p.kind == "dumping")
    clock = Clock(planted.start_t)
    eng = engine(r, clock)
    t = planted.start_t - 600
    while t < planted.end_t + 600:
        for ping in sim.positions(t):
            if ping["truck"] == planted.truck:
                r.xadd(TRUCKS, ping)
        t += 30
        if int(t) % 600 < 30:  # hand over every ten minutes, as a live feed would
            clock.t = t
            drain(eng)
    clock.t = t
    drain(eng)
    (alert,) = store.all_alerts(r)
    assert (alert.kind, alert.source_ref, alert.status) == ("dumping_suspected", planted.truck,
                                                            "new")  # fmt: skip
    where = Point(planted.lon, planted.lat)
    assert alert.area_grids == brute_force(where, city.areas) and len(alert.area_grids) >= 1
    # the stop is anchored at the first stopped ping: where the truck stood, not ~250 m back
    assert shape(alert.geometry).distance(where) < 1 / 111_000
    # the truck falls silent: one offline notice, however often the timer looks
    for minutes in (11, 12, 30):
        clock.t = t + minutes * 60
        eng.step()
    assert kinds(r) == [("dumping_suspected", "new"), ("truck_offline", "new")]
    # it reports again: the notice clears, the dumping alert stays for an officer
    ping = {**sim.positions(planted.end_t)[0], "truck": planted.truck,
            "ts": str(int((clock.t + 1) * 1000))}  # fmt: skip
    r.xadd(TRUCKS, ping)
    clock.t += 2
    drain(eng)
    assert kinds(r) == [("dumping_suspected", "new"), ("truck_offline", "cleared")]


def test_eng006_disputes_at_one_address_warn_once_at_their_grid(
    r: redis.Redis, city: Geography
) -> None:
    clock = Clock(T0)
    eng = engine(r, clock)
    grid = city.areas.grids.index[100]
    p = city.areas.grids.geometry.iloc[100].representative_point()
    spellings = ["锡澄路88号5号楼", "锡澄路８８号 5栋", "锡澄路88号5幢", "锡澄路88号5座"]
    for i, address in enumerate(spellings):
        r.xadd(INCIDENTS, {"id": f"D-{i}", "ts": str(int((T0 - 3600 * (3 - i)) * 1000)),
                           "category": "dispute", "lat": f"{p.y}", "lon": f"{p.x}",
                           "address": address})  # fmt: skip
    # a status update of D-0 repeats its id: it counts once
    r.xadd(INCIDENTS, {"id": "D-0", "ts": str(int(T0 * 1000)), "category": "dispute",
                       "lat": f"{p.y}", "lon": f"{p.x}", "address": spellings[0],
                       "status": "handling"})  # fmt: skip
    r.xadd(INCIDENTS, {"id": "X-1", "ts": str(int(T0 * 1000)), "category": "hotline",
                       "lat": f"{p.y}", "lon": f"{p.x}", "address": spellings[0]})  # fmt: skip
    drain(eng)
    (alert,) = store.all_alerts(r)
    assert alert.kind == "dispute_escalation" and alert.area_grids == [grid]
    # a week later they have left the window: the warning clears
    clock.t = T0 + 8 * 86400
    eng.step()
    assert kinds(r) == [("dispute_escalation", "cleared")]


def _rising_setup(r: redis.Redis, city: Geography, hours: int, now: float) -> str:
    """A grid with one incident an hour for ``hours`` and 12 in the last hour."""
    grid = city.areas.grids.index[200]
    hour = int(now // 3600)
    for h in range(hour - 1 - hours, hour - 1):
        r.hset(f"cockpit:agg:inc:h:{h}:all", mapping={grid: 1, "wx": 1})
    minute = int(now // 60)
    for m in range(minute - 59, minute + 1, 5):
        r.hset(f"cockpit:agg:inc:m:{m}:all", mapping={grid: 1, "wx": 1})
    return grid


def test_eng007_rising_risk_raises_against_the_grids_history_and_clears(
    r: redis.Redis, city: Geography
) -> None:
    now = T0 - T0 % 3600 + 1800
    grid = _rising_setup(r, city, 48, now)
    clock = Clock(now)
    eng = engine(r, clock)
    eng.step()
    (alert,) = store.all_alerts(r)
    assert (alert.kind, alert.area_grids, alert.status) == ("rising_risk", [grid], "new")
    clock.t += 60
    eng.step()  # still surging: nothing new
    assert len(store.all_alerts(r)) == 1
    for key in r.scan_iter("cockpit:agg:inc:m:*"):
        r.delete(key)
    clock.t += 60
    eng.step()
    assert kinds(r) == [("rising_risk", "cleared")]


def test_eng008_rising_risk_waits_for_enough_history(r: redis.Redis, city: Geography) -> None:
    now = T0 - T0 % 3600 + 1800
    _rising_setup(r, city, 10, now)
    engine(r, Clock(now)).step()
    assert store.all_alerts(r) == []


def test_eng009_cap_by_stream_hostile_xml_is_dead_lettered_and_the_engine_goes_on(
    r: redis.Redis, city: Geography
) -> None:
    clock = Clock(T0)
    eng = engine(r, clock)
    fixtures = sorted(FIXTURES.glob("*.xml"))
    docs = [fixtures[0].read_text(), HOSTILE, fixtures[1].read_text(), "<alert><oops",
            fixtures[2].read_text(), fixtures[3].read_text(), cap_xml()]  # fmt: skip
    for doc in docs:
        r.xadd(CAP_STREAM, {"xml": doc})
    drain(eng)
    dead = [{k.decode(): v.decode() for k, v in f.items()} for _i, f in r.xrange(DEADLETTER)]
    assert [(d["stream"], d["reason"]) for d in dead] == [(CAP_STREAM, CAP_REFUSED)] * 2
    assert "DTD" in dead[0]["detail"] and "malformed XML" in dead[1]["detail"]
    assert json.loads(dead[0]["fields"])["xml"] == HOSTILE
    assert r.xpending(CAP_STREAM, GROUP)["pending"] == 0
    alerts = store.all_alerts(r)
    assert len(alerts) == 4  # three examples (example 3 is an Update of nothing) + the flood
    flood = next(a for a in alerts if a.area_grids)
    ring = shapely.Polygon([(float(p.split(",")[1]), float(p.split(",")[0]))
                            for p in FLOOD_RING.split()])  # fmt: skip
    assert flood.area_grids == brute_force(ring, city.areas)
    assert all(a.area_grids == [] for a in alerts if a is not flood)
    # an Update and then a Cancel by the stream act on their reference
    ref = "hydro@wuxi.example,wx-flood-1,2026-06-15T08:00:00+08:00"
    r.xadd(CAP_STREAM, {"xml": cap_xml("wx-flood-2", "Update", "Extreme", references=ref)})
    drain(eng)
    assert store.get_alert(r, flood.id).severity == "extreme"  # type: ignore[union-attr]
    r.xadd(CAP_STREAM, {"xml": cap_xml("wx-flood-3", "Cancel", references=ref)})
    drain(eng)
    assert store.get_alert(r, flood.id).status == "cleared"  # type: ignore[union-attr]
    assert [a["action"] for _i, a in store.audit_entries(r)] == ["update", "cancel"]


def test_eng012_alerts_clear_when_their_cap_expiry_passes(r: redis.Redis, city: Geography) -> None:
    clock = Clock(T0)
    eng = engine(r, clock, timer_s=1)
    r.xadd(CAP_STREAM, {"xml": cap_xml()})  # expires 2026-06-15T22:00:00+08:00
    drain(eng)
    (alert,) = store.all_alerts(r)
    assert alert.expires_at is not None and alert.status == "new"
    clock.t = alert.expires_at - 1
    eng.step()
    assert store.get_alert(r, alert.id).status == "new"  # type: ignore[union-attr]
    clock.t = alert.expires_at
    eng.step()
    done = store.get_alert(r, alert.id)
    assert done is not None and (done.status, done.resolution_note) == ("cleared", "expired")


def cli(argv: list[str], redis_url: str) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config")
    common.add_argument("--data-dir")
    common.add_argument("--redis-url")
    parser = argparse.ArgumentParser(prog="cockpit")
    register(parser.add_subparsers(), common)
    args = parser.parse_args(argv)
    return args.handler(args, Settings(redis_url=redis_url))


def test_eng010_cli_imports_cap_files_and_stdin_lists_and_exports(
    r: redis.Redis, city: Geography, redis_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    for path in sorted(FIXTURES.glob("*.xml")):
        assert cli(["alerts", "import-cap", str(path)], redis_url) == 0
    out = capsys.readouterr().out
    assert out.count("create: al-") == 3 and "unknown_reference" in out
    assert "on 0 grids" in out
    assert cli(["alerts", "import-cap", str(sorted(FIXTURES.glob("*.xml"))[0])], redis_url) == 0
    assert "duplicate" in capsys.readouterr().out  # imported twice: still one alert
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(cap_xml().encode())))
    assert cli(["alerts", "import-cap", "-"], redis_url) == 0
    flood = next(a for a in store.all_alerts(r) if a.area_grids)
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(HOSTILE.encode())))
    assert cli(["alerts", "import-cap", "-"], redis_url) == 1
    err = capsys.readouterr().err
    assert err.startswith("cockpit alerts import-cap: refused:") and err.count("\n") == 1
    assert len(store.all_alerts(r)) == 4
    # list: open alerts, most severe first
    assert cli(["alerts", "list"], redis_url) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 5 and flood.id in listed[1]
    # export parses back to the same alert area
    assert cli(["alerts", "export", flood.id], redis_url) == 0
    xml = capsys.readouterr().out
    msg = parse_cap(xml)
    assert msg.identifier == flood.id and msg.msg_type == "Alert"
    (change,) = apply_cap({}, msg, city.areas, T0)
    back: Alert = change.alert  # type: ignore[assignment]
    assert back.area_grids == flood.area_grids and back.severity == flood.severity
    assert cli(["alerts", "export", "al-nope"], redis_url) == 1
    assert "no alert" in capsys.readouterr().err


@pytest.mark.parametrize("sub", ["run", "import-cap", "list", "export"])
def test_eng011_every_alerts_command_has_help(sub: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli(["alerts", sub, "--help"], "redis://unused")
    assert exit_.value.code == 0
    assert "usage: cockpit alerts " + sub in capsys.readouterr().out
