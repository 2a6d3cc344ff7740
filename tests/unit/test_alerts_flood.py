"""Flood gauge rule on simulated feeds with a controlled clock (no real waiting)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from cockpit.alerts.model import AlertEvent, apply_event
from cockpit.alerts.rules import FloodRule, FloodState

T0 = 1_781_000_000.0
STEP = 60.0  # one reading a minute
RULE = FloodRule(
    "g-luoshe-1", warning_m=3.0, danger_m=3.5, rise_m_per_h=0.3, hysteresis_m=0.05, hold_s=1800
)


def run(
    levels: Iterable[float], state: FloodState | None = None, t0: float = T0, rule: FloodRule = RULE
) -> tuple[FloodState | None, list[AlertEvent]]:
    """Feed one reading a minute; the state goes through JSON each time, as via Redis."""
    events: list[AlertEvent] = []
    for i, level in enumerate(levels):
        ts = t0 + i * STEP
        if state is not None:
            state = FloodState.from_dict(json.loads(json.dumps(state.to_dict())))
        state, out = rule.evaluate(state, level, ts, now=ts + 2)
        events += out
    return state, events


def level_events(events: list[AlertEvent]) -> list[AlertEvent]:
    return [e for e in events if e.kind != "flood_rise"]


def test_fl001_crossing_warning_raises_once() -> None:
    _, events = run([2.0] * 5 + [3.02] * 120)
    assert [(e.action, e.kind, e.severity) for e in level_events(events)] == [
        ("raise", "flood_warning", "moderate")
    ]
    assert events[0].at == T0 + 5 * STEP + 2 and events[0].source_ref == "g-luoshe-1"


def test_fl002_crossing_danger_upgrades_the_same_alert() -> None:
    _, events = run([2.9, 3.1, 3.3, 3.55, 3.6, 3.6])
    evs = level_events(events)
    assert [(e.action, e.kind, e.severity) for e in evs] == [
        ("raise", "flood_warning", "moderate"),
        ("update", "flood_danger", "severe"),
    ]
    assert evs[0].dedup_key == evs[1].dedup_key
    alert = apply_event(None, evs[0])
    upgraded = apply_event(alert, evs[1])
    assert alert is not None and upgraded is not None
    assert upgraded.id == alert.id and upgraded.severity == "severe"


def test_fl003_level_hovering_at_the_line_does_not_flap() -> None:
    # +-1 cm around the warning line for an hour: one raise, nothing else
    hover = [3.01 if i % 2 else 2.99 for i in range(60)]
    _, events = run(hover)
    assert [(e.action, e.kind) for e in events] == [("raise", "flood_warning")]
    # the same at the danger line: one raise, one upgrade, no downgrade back and forth
    hover = [3.51 if i % 2 else 3.49 for i in range(60)]
    _, events = run([2.5, 3.2] + hover)
    assert [(e.action, e.kind) for e in level_events(events)] == [
        ("raise", "flood_warning"),
        ("update", "flood_danger"),
    ]


def test_fl004_clears_only_after_the_hold_below_the_hysteresis_band() -> None:
    state, events = run([3.2] * 3)
    assert [e.action for e in events] == ["raise"]
    # 2.97 is below the line but inside the 5 cm band: never clears
    state, events = run([2.97] * 90, state, t0=T0 + 3 * STEP)
    assert events == []
    # below the band for 29 minutes, then back into it: the hold starts over
    state, events = run([2.9] * 30 + [2.96], state, t0=T0 + 93 * STEP)
    assert events == []
    # below the band again: clears at exactly hold_s (30 min = 30 readings later)
    state, events = run([2.9] * 31, state, t0=T0 + 124 * STEP)
    assert [(e.action, e.kind) for e in events] == [("clear", "flood_warning")]
    assert events[0].at == T0 + (124 + 30) * STEP + 2
    assert state is not None and state.level == "normal"
    # a new crossing later is a new situation with a new key
    _, again = run([3.1], state, t0=T0 + 200 * STEP)
    assert again[0].action == "raise" and again[0].dedup_key != events[0].dedup_key


def test_fl005_danger_steps_down_to_warning_then_clears() -> None:
    state, events = run([3.6, 3.6])
    state, events = run([3.3] * 31, state, t0=T0 + 2 * STEP)
    assert [(e.action, e.kind, e.severity) for e in events] == [
        ("update", "flood_warning", "moderate")
    ]
    _, events = run([2.0] * 31, state, t0=T0 + 33 * STEP)
    assert [e.action for e in level_events(events)] == ["clear"]


def test_fl006_rate_of_rise_raises_its_own_alert_once_and_clears() -> None:
    # 0.6 m/h = 1 cm a minute, from 1.0 m: stays under the warning line for the whole test
    rising = [1.0 + 0.01 * i for i in range(60)]
    state, events = run(rising)
    rise = [e for e in events if e.kind == "flood_rise"]
    assert [e.action for e in rise] == ["raise"] and level_events(events) == []
    # needs 15 minutes of readings before a slope counts: raised at the 16th reading
    assert rise[0].at == T0 + 15 * STEP + 2 and rise[0].data["rise_m_per_h"] >= 0.3
    # level then holds steady: the slope decays; clears after holding under half the rule
    state, events = run([1.6] * 150, state, t0=T0 + 60 * STEP)
    assert [e.action for e in events] == ["clear"]
    assert events[0].dedup_key == rise[0].dedup_key


def test_fl007_slow_rise_and_noise_raise_nothing() -> None:
    slow = [1.0 + 0.002 * i + (0.01 if i % 2 else -0.01) for i in range(180)]  # 0.12 m/h
    _, events = run(slow)
    assert events == []


def test_fl008_out_of_order_and_repeated_readings_are_ignored() -> None:
    state, events = run([2.0, 3.2])
    assert state is not None and len(events) == 1
    before = state.to_dict()
    late, out = RULE.evaluate(state, 3.9, T0, now=T0 + 500)  # older than the last reading
    assert out == [] and late.to_dict() == before
    again, out = RULE.evaluate(state, 3.9, T0 + STEP, now=T0 + 500)  # redelivered timestamp
    assert out == [] and again.to_dict() == before
    future, out = RULE.evaluate(state, 3.9, T0 + 86400, now=T0 + 500)  # producer clock fault
    assert out == [] and future.to_dict() == before
