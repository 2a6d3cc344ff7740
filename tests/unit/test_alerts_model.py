"""Alert record and lifecycle: JSON round trip, legal and illegal transitions, rule events."""

from __future__ import annotations

import pytest

from cockpit.alerts.model import (
    Alert,
    AlertEvent,
    IllegalTransition,
    alert_id,
    apply_event,
    severity_rank,
    transition,
)

T0 = 1_781_000_000.0


def _alert(**kw: object) -> Alert:
    base = dict(
        id=alert_id("flood:g1:1"),
        kind="flood_warning",
        severity="moderate",
        status="new",
        dedup_key="flood:g1:1",
        raised_at=T0,
        updated_at=T0,
        area_grids=["wx-hs-01-001-01"],
        geometry={"type": "Point", "coordinates": [120.2, 31.7]},
        title_en="Water high",
        title_zh="水位高",
        text="line 1\n<b>not html</b>",
        source_ref="g1",
    )
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def test_lc001_json_round_trip_keeps_every_field() -> None:
    alert = transition(_alert(), "acknowledge", "officer-7", T0 + 60, "on my way 马上到")
    back = Alert.from_json(alert.to_json())
    assert back == alert
    assert back.category == "flood"  # derived from the kind when not given
    assert back.ack_comment == "on my way 马上到"


def test_lc002_acknowledge_then_resolve_records_who_and_when() -> None:
    acked = transition(_alert(), "acknowledge", "u1", T0 + 10, "seen")
    assert (acked.status, acked.acknowledged_by, acked.acknowledged_at) == (
        "acknowledged",
        "u1",
        T0 + 10,
    )
    done = transition(acked, "resolve", "u2", T0 + 99, "pumped out")
    assert (done.status, done.resolved_by, done.resolved_at, done.resolution_note) == (
        "resolved",
        "u2",
        T0 + 99,
        "pumped out",
    )
    assert done.acknowledged_by == "u1" and not done.is_open


@pytest.mark.parametrize(
    ("status", "action", "words"),
    [
        ("new", "resolve", "acknowledge it first"),
        ("acknowledged", "acknowledge", "already acknowledged"),
        ("resolved", "acknowledge", "already resolved"),
        ("resolved", "clear", "already resolved"),
        ("cleared", "resolve", "already cleared"),
        ("new", "delete", "unknown action"),
    ],
)
def test_lc003_illegal_transitions_are_refused_clearly(
    status: str, action: str, words: str
) -> None:
    alert = _alert(status=status)
    with pytest.raises(IllegalTransition, match=words):
        transition(alert, action, "u1", T0 + 1)
    assert alert.status == status  # frozen: nothing changed


def test_lc004_acting_needs_a_user() -> None:
    with pytest.raises(IllegalTransition, match="no user"):
        transition(_alert(), "acknowledge", "", T0)


def test_lc005_clear_means_the_condition_ended_by_itself() -> None:
    cleared = transition(_alert(), "clear", "system", T0 + 5)
    assert (cleared.status, cleared.cleared_at, cleared.resolved_by) == ("cleared", T0 + 5, None)


def test_lc006_bad_values_and_bad_json_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown alert kind"):
        _alert(kind="meteor")
    with pytest.raises(ValueError, match="unknown severity"):
        _alert(severity="catastrophic")
    with pytest.raises(ValueError, match="not valid JSON"):
        Alert.from_json("{nope")
    with pytest.raises(ValueError, match="lacks field"):
        Alert.from_json('{"id": "x"}')
    assert severity_rank("info") < severity_rank("minor") < severity_rank("extreme")


def test_lc007_events_fold_into_one_alert_per_situation() -> None:
    point = {"type": "Point", "coordinates": (120.2, 31.7)}  # as shapely's mapping() gives it
    raise_ = AlertEvent(
        "raise", "flood_warning", "moderate", "flood:g1:1", "g1", T0, geometry=point
    )
    first = apply_event(None, raise_, ["a"])
    assert first is not None and first.id == alert_id("flood:g1:1") and first.area_grids == ["a"]
    assert Alert.from_json(first.to_json()) == first
    assert apply_event(first, raise_) is None  # a second worker raising the same: nothing
    upd = apply_event(
        first, AlertEvent("update", "flood_danger", "severe", "flood:g1:1", "g1", T0 + 5)
    )
    assert upd is not None and (upd.id, upd.kind, upd.severity) == (
        first.id,
        "flood_danger",
        "severe",
    )
    gone = apply_event(
        upd, AlertEvent("clear", "flood_danger", "severe", "flood:g1:1", "g1", T0 + 9)
    )
    assert gone is not None and gone.status == "cleared"
    assert (
        apply_event(
            gone, AlertEvent("clear", "flood_danger", "severe", "flood:g1:1", "g1", T0 + 10)
        )
        is None
    )
