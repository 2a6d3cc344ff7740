"""吹哨报到: grid -> street -> district -> city exactly at the deadlines; acknowledging stops it."""

from __future__ import annotations

import pytest

from cockpit.alerts.escalation import (
    DEFAULT_POLICY,
    EscalationPolicy,
    deadline,
    deadlines,
    escalate,
    escalation_level,
    visible_to_level,
)
from cockpit.alerts.model import Alert, alert_id, transition

T0 = 1_781_000_000.0
MIN = 60


def _alert(kind: str = "flood_warning", category: str = "") -> Alert:
    return Alert(
        id=alert_id(f"k:{kind}"),
        kind=kind,
        severity="moderate",
        status="new",
        dedup_key=f"k:{kind}",
        raised_at=T0,
        updated_at=T0,
        category=category,
    )


def test_esc001_flood_climbs_exactly_at_each_deadline() -> None:
    alert = _alert()  # flood: 10 min at grid, 10 at street, 15 at district
    expected = [
        (0, "grid", 600),
        (599, "grid", 1),
        (600, "street", 600),
        (1199, "street", 1),
        (1200, "district", 900),
        (2099, "district", 1),
        (2100, "city", None),
        (86400, "city", None),
    ]
    for dt, level, left in expected:
        assert escalation_level(alert, T0 + dt) == level, dt
        assert deadline(alert, T0 + dt) == left, dt
    assert deadlines(alert) == [
        ("grid", T0),
        ("street", T0 + 600),
        ("district", T0 + 1200),
        ("city", T0 + 2100),
    ]


def test_esc002_acknowledging_stops_escalation_where_it_was() -> None:
    acked = transition(_alert(), "acknowledge", "street-officer", T0 + 700, "taking it")
    for dt in (700, 1200, 5000, 86400):
        assert escalation_level(acked, T0 + dt) == "street"
        assert deadline(acked, T0 + dt) is None
    early = transition(_alert(), "acknowledge", "grid-officer", T0 + 30)
    assert escalation_level(early, T0 + 86400) == "grid"


def test_esc003_each_category_has_its_own_times() -> None:
    dispute = _alert("dispute_escalation")
    assert dispute.category == "dispute"
    assert escalation_level(dispute, T0 + 29 * MIN) == "grid"
    assert escalation_level(dispute, T0 + 30 * MIN) == "street"
    assert escalation_level(dispute, T0 + 90 * MIN) == "district"
    unknown = _alert("cap", category="volcano")  # not a known category: the default times
    assert deadline(unknown, T0) == DEFAULT_POLICY.default[0]
    fast = EscalationPolicy(times={"flood": (60, 60, 60)})
    assert escalation_level(_alert(), T0 + 180, fast) == "city"


def test_esc004_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        EscalationPolicy(times={"flood": (60, 0, 60)})
    with pytest.raises(ValueError, match="3 positive"):
        EscalationPolicy(times={"flood": (60, 60)})  # type: ignore[dict-item]


def test_esc005_escalate_updates_the_stored_level_and_views_see_it() -> None:
    alert = _alert()
    assert escalate(alert, T0 + 10) is alert  # unchanged: nothing to store or audit
    up = escalate(alert, T0 + 1300)
    assert (up.escalation_level, up.updated_at) == ("district", T0 + 1300)
    assert visible_to_level(alert, "street", T0 + 1300)
    assert visible_to_level(alert, "district", T0 + 1300)
    assert not visible_to_level(alert, "city", T0 + 1300)
    assert visible_to_level(alert, "grid", T0)
    with pytest.raises(ValueError, match="unknown level"):
        visible_to_level(alert, "province", T0)
