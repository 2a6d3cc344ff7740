"""Muck-truck rules on simulated GPS feeds with a controlled clock: one alert per situation."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from shapely.geometry import box

from cockpit.alerts.model import AlertEvent
from cockpit.alerts.rules import TruckPing, TruckRule, TruckState

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
