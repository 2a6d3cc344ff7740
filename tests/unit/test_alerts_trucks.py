"""Muck-truck rules on simulated GPS feeds with a controlled clock: one alert per situation."""

from __future__ import annotations

import json
import math
from datetime import datetime
from zoneinfo import ZoneInfo

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point, box

from cockpit.alerts.area import distance_m, grids_for_area
from cockpit.alerts.model import AlertEvent
from cockpit.alerts.rules import TruckPing, TruckRule, TruckState
from cockpit.areastore import Geography
from cockpit.simulator import TruckSimulator
from geo.reference import generate_reference

SH = ZoneInfo("Asia/Shanghai")
#: 10:00 local on a June day: outside the permitted hours 20:00-06:00
DAY = datetime(2026, 6, 15, 10, 0, tzinfo=SH).timestamp()
#: 22:00 local the same day: inside them
NIGHT = datetime(2026, 6, 15, 22, 0, tzinfo=SH).timestamp()
LON, LAT = 120.25, 31.70
DEG_PER_M = 1 / 111_000  # about a metre of latitude
SITE = box(120.30, 31.70, 120.31, 31.71)
ZONE = box(120.20, 31.60, 120.21, 31.61)
RULE = TruckRule(
    stop_minutes=15,
    offline_minutes=10,
    permitted_hours=("20:00", "06:00"),
    sites=(SITE,),
    forbidden_zones={"school-1": ZONE},
)


def feed(
    pings: list[TruckPing], state: TruckState | None = None, rule: TruckRule = RULE
) -> tuple[TruckState | None, list[AlertEvent]]:
    """Apply pings in order; the state goes through JSON each time, as it would via Redis."""
    events: list[AlertEvent] = []
    for ping in pings:
        if state is not None:
            state = TruckState.from_dict(json.loads(json.dumps(state.to_dict())))
        state, out = rule.evaluate(state, ping, now=ping.ts + 1)
        events += out
    return state, events


def parked(
    t0: float,
    minutes: int,
    lon: float = LON,
    lat: float = LAT,
    loaded: bool = True,
    every_s: float = 30,
) -> list[TruckPing]:
    """A parked truck pinging every 30 s with up to ~15 m of GPS jitter."""
    out = []
    for i in range(int(minutes * 60 / every_s)):
        jitter = ((i * 7) % 11 - 5) * 3 * DEG_PER_M
        out.append(TruckPing("T1", t0 + i * every_s, lon + jitter, lat - jitter, 0.5, loaded))
    return out


def driving(
    t0: float,
    minutes: int,
    lon: float = LON,
    lat: float = LAT,
    dlon: float = 0.0005,
    loaded: bool = True,
) -> list[TruckPing]:
    """A truck driving east at ~30 km/h, one ping every 30 s."""
    return [
        TruckPing("T1", t0 + i * 30, lon + i * dlon, lat, 30.0, loaded) for i in range(minutes * 2)
    ]


def test_trk001_loaded_truck_stopped_outside_sites_raises_dumping_once() -> None:
    _, events = feed(parked(NIGHT, 60))
    assert [(e.action, e.kind) for e in events] == [("raise", "dumping_suspected")]
    ev = events[0]
    assert ev.at == NIGHT + 15 * 60 + 1  # the ping at exactly 15 minutes
    assert ev.geometry == {
        "type": "Point",
        "coordinates": (LON + -5 * 3 * DEG_PER_M, LAT + 5 * 3 * DEG_PER_M),
    }
    assert ev.dedup_key == f"dumping_suspected:T1:{NIGHT:.0f}"


def test_trk002_no_dumping_alert_at_a_site_when_empty_or_short() -> None:
    _, at_site = feed(parked(NIGHT, 60, lon=120.305, lat=31.705))
    _, empty = feed(parked(NIGHT, 60, loaded=False))
    _, short = feed(parked(NIGHT, 14) + driving(NIGHT + 14 * 60, 10))
    assert at_site == [] and empty == [] and short == []


def test_trk003_a_second_stop_is_a_second_situation() -> None:
    pings = (
        parked(NIGHT, 20)
        + driving(NIGHT + 20 * 60, 5)
        + parked(NIGHT + 25 * 60, 20, lon=LON + 0.01)
    )
    _, events = feed(pings)
    assert [e.kind for e in events] == ["dumping_suspected", "dumping_suspected"]
    assert events[0].dedup_key != events[1].dedup_key


def test_trk004_forbidden_zone_one_alert_per_entry_not_per_ping() -> None:
    inside = (120.205, 31.605)
    edge_out = (120.2101, 31.605)  # ~10 m outside the zone's east edge: GPS jitter
    # 90 s out along the edge, 90 s in, for 20 minutes: shorter than the 120 s exit grace
    pings = [
        TruckPing("T1", NIGHT + i * 30, *(edge_out if i % 6 < 3 else inside), 10.0)
        for i in range(40)
    ]
    state, events = feed(pings)
    assert [(e.kind, e.data["zone"]) for e in events] == [("truck_forbidden_zone", "school-1")]
    # leaves for good (longer than the exit grace), then comes back: a second alert
    t = NIGHT + 40 * 30
    away = [TruckPing("T1", t + i * 30, 120.25, 31.65, 20.0) for i in range(10)]
    back = [TruckPing("T1", t + 300 + i * 30, *inside, 10.0) for i in range(5)]
    _, events = feed(away + back, state)
    assert len(events) == 1 and events[0].kind == "truck_forbidden_zone"


def test_trk005_moving_outside_permitted_hours_one_alert_per_period() -> None:
    state, events = feed(driving(DAY, 60))  # an hour of pings at 10:00
    assert [(e.kind, e.data["period"]) for e in events] == [
        ("truck_hours", "2026-06-15T06:00+0800")
    ]
    # the evening is permitted; the next morning is a new period and a new alert
    state, evening = feed(driving(NIGHT, 30), state)
    next_day = datetime(2026, 6, 16, 7, 30, tzinfo=SH).timestamp()
    _, morning = feed(driving(next_day, 30), state)
    assert evening == []
    assert [(e.kind, e.data["period"]) for e in morning] == [
        ("truck_hours", "2026-06-16T06:00+0800")
    ]


def test_trk006_parked_outside_hours_is_not_moving() -> None:
    _, events = feed(parked(DAY, 10, loaded=False))
    assert events == []


@pytest.mark.parametrize(
    ("hours", "local", "period"),
    [
        (("20:00", "06:00"), (15, 5, 59), None),
        (("20:00", "06:00"), (15, 6, 0), "2026-06-15T06:00+0800"),
        (("20:00", "06:00"), (15, 19, 59), "2026-06-15T06:00+0800"),
        (("20:00", "06:00"), (15, 20, 0), None),
        (("08:00", "18:00"), (15, 7, 0), "2026-06-14T18:00+0800"),
        (("08:00", "18:00"), (15, 23, 0), "2026-06-15T18:00+0800"),
        (("08:00", "18:00"), (15, 12, 0), None),
    ],
)
def test_trk007_forbidden_period_boundaries(
    hours: tuple[str, str], local: tuple[int, int, int], period: str | None
) -> None:
    rule = TruckRule(permitted_hours=hours)
    ts = datetime(2026, 6, local[0], local[1], local[2], tzinfo=SH).timestamp()
    assert rule.forbidden_period(ts) == period


def test_trk008_offline_notice_once_and_cleared_by_the_next_ping() -> None:
    state, _ = feed(parked(NIGHT, 2, loaded=False))
    assert state is not None
    last = state.last_ts
    assert last is not None
    state, early = RULE.check_offline(state, last + 9 * 60 + 59)
    assert early == []
    state, notice = RULE.check_offline(state, last + 10 * 60)
    assert [(e.action, e.kind) for e in notice] == [("raise", "truck_offline")]
    for minute in (11, 30, 120):  # the worker's timer keeps checking: no repeats
        state, again = RULE.check_offline(state, last + minute * 60)
        assert again == []
    state, events = feed([TruckPing("T1", last + 3 * 3600, LON, LAT, 0.0)], state)
    assert [(e.action, e.kind, e.dedup_key) for e in events] == [
        ("clear", "truck_offline", notice[0].dedup_key)
    ]
    _, later = RULE.check_offline(state, last + 3 * 3600 + 60)
    assert later == []


def test_trk009_out_of_order_pings_are_ignored() -> None:
    state, _ = feed(parked(NIGHT, 5))
    assert state is not None
    before = state.to_dict()
    same, out = RULE.evaluate(
        state, TruckPing("T1", NIGHT, 120.205, 31.605, 10.0, True), NIGHT + 600
    )
    assert out == [] and same.to_dict() == before


def test_trk010_bad_permitted_hours_are_refused() -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        TruckRule(permitted_hours=("8pm", "06:00"))


# -- where a stop is anchored -------------------------------------------------------------------

#: Two grids side by side; their shared edge is the meridian ``EDGE``.
EDGE = 120.26
GRIDS = gpd.GeoDataFrame(
    geometry=[box(EDGE - 0.01, 31.69, EDGE, 31.71), box(EDGE, 31.69, EDGE + 0.01, 31.71)],
    index=pd.Index(["grid-A", "grid-B"], name="id"),
    crs="EPSG:4326",
)
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(LAT))


def test_trk011_a_stop_is_anchored_where_the_truck_stands_not_at_its_last_moving_ping() -> None:
    # driving east at 30 km/h (250 m per 30 s ping); the last ping at speed is 100 m inside
    # grid A, the next one finds the truck stopped 150 m inside grid B, where it stays 20 min
    step = 250 / M_PER_DEG_LON
    last_moving = EDGE - 100 / M_PER_DEG_LON
    approach = [
        TruckPing("T1", NIGHT + i * 30, last_moving - (9 - i) * step, LAT, 30.0, True)
        for i in range(10)
    ]
    stop_lon = EDGE + 150 / M_PER_DEG_LON
    stopped = [
        TruckPing("T1", NIGHT + 300 + i * 30, stop_lon, LAT, 0.0, True) for i in range(40)
    ]
    _, events = feed(approach + stopped)
    assert [e.kind for e in events] == ["dumping_suspected"]
    (event,) = events
    assert grids_for_area(event.geometry, GRIDS) == ["grid-B"]
    assert event.geometry == {"type": "Point", "coordinates": (stop_lon, LAT)}
    # the stop began when the truck stood still: 15 minutes from then, not from the last move
    assert event.dedup_key == f"dumping_suspected:T1:{NIGHT + 300:.0f}"
    assert event.at == NIGHT + 300 + 15 * 60 + 1


def test_trk012_gps_drift_after_the_anchor_never_moves_it() -> None:
    # stopped, then slow pings drifting up to 40 m: the anchor stays at the first slow ping
    approach = driving(NIGHT, 2)
    stop = (approach[-1].lon + 0.002, LAT)
    drift = [
        TruckPing("T1", NIGHT + 120 + i * 30, stop[0] + (i % 5) * 10 / M_PER_DEG_LON, LAT, 1.0,
                  True)  # fmt: skip
        for i in range(40)
    ]
    _, events = feed(approach + drift)
    assert [e.geometry for e in events] == [{"type": "Point", "coordinates": stop}]


@pytest.fixture(scope="module")
def nights(demo_areas):
    """Every truck's pings (every 30 s) over three nights of the seed-7 simulator, through the
    rule the alert engine builds from the reference data; and the planted ground truth."""
    reference = generate_reference(demo_areas, seed=7)
    sim = TruckSimulator(reference, Geography(demo_areas), seed=7)
    rule = TruckRule(
        permitted_hours=tuple(reference.truck_hours),  # type: ignore[arg-type]
        sites=(*reference.building_sites.geometry, *reference.disposal_sites.geometry),
        forbidden_zones=dict(zip(reference.forbidden_zones.index,
                                 reference.forbidden_zones.geometry, strict=True)),
    )  # fmt: skip
    evening = datetime(2026, 7, 6, 18, 0, tzinfo=SH).timestamp()
    states: dict[str, TruckState] = {}
    events: list[AlertEvent] = []
    for k in range(3 * 86400 // 30):
        for p in sim.positions(evening + 30 * k):
            ping = TruckPing(p["truck"], int(p["ts"]) / 1000, float(p["lon"]), float(p["lat"]),
                             float(p["speed_kmh"]), p["loaded"] == "1")  # fmt: skip
            states[ping.truck], out = rule.evaluate(states.get(ping.truck), ping, ping.ts + 1)
            events += out
    planted = sim.planted_between(evening, evening + 3 * 86400)
    return events, planted


def test_trk013_every_planted_dumping_alert_lands_in_the_planted_grid(nights, demo_areas) -> None:
    events, planted = nights
    dumps = [p for p in planted if p.kind == "dumping"]
    assert len(dumps) == 9, "three a night"
    alerts = [e for e in events if e.kind == "dumping_suspected"]
    assert sorted(e.source_ref for e in alerts) == sorted(p.truck for p in dumps)
    for p in dumps:
        (alert,) = [e for e in alerts if e.source_ref == p.truck
                    and p.start_t <= e.data["stop_since"] <= p.end_t]  # fmt: skip
        where = Point(p.lon, p.lat)
        assert grids_for_area(alert.geometry, demo_areas) == grids_for_area(where, demo_areas)
        assert distance_m(*alert.geometry["coordinates"], p.lon, p.lat) < 1.0, p
