"""Escalation, 吹哨报到: an alert nobody acknowledges climbs grid -> street -> district -> city.

Each category has a time to acknowledge at each level (:data:`DEFAULT_TIMES`, in seconds).
An alert raised at ``t0`` sits at grid level until ``t0 + grid``, at street level until
``t0 + grid + street``, at district level until ``t0 + grid + street + district``, and at city
level from then on. The change happens exactly at each deadline (``now == deadline`` is already
the next level). Acknowledging (or resolving, or clearing) freezes the level where it was when
it happened, so escalation stops. Community is skipped on purpose: in 吹哨报到 the grid officer
whistles and the *street's* departments report.

Everything is computed from ``raised_at`` and ``now``; nothing is stored but the alert, so every
worker and every screen agrees on the level and the countdown without coordination.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from cockpit.alerts.model import Alert

#: The escalation chain; the last level has no deadline.
CHAIN: tuple[str, ...] = ("grid", "street", "district", "city")

_MIN = 60
#: Seconds allowed at (grid, street, district) before moving up, per category.
DEFAULT_TIMES: dict[str, tuple[int, int, int]] = {
    "flood": (10 * _MIN, 10 * _MIN, 15 * _MIN),
    "fire_hazard": (10 * _MIN, 10 * _MIN, 15 * _MIN),
    "public_security": (15 * _MIN, 15 * _MIN, 30 * _MIN),
    "traffic": (15 * _MIN, 15 * _MIN, 30 * _MIN),
    "dumping": (30 * _MIN, 30 * _MIN, 60 * _MIN),
    "environment": (30 * _MIN, 30 * _MIN, 60 * _MIN),
    "dispute": (30 * _MIN, 60 * _MIN, 120 * _MIN),
    "hotline": (30 * _MIN, 60 * _MIN, 120 * _MIN),
    "petition": (60 * _MIN, 120 * _MIN, 240 * _MIN),
    "other": (30 * _MIN, 60 * _MIN, 120 * _MIN),
}


@dataclass(frozen=True)
class EscalationPolicy:
    """Times to acknowledge per category; unknown categories use ``default``."""

    times: Mapping[str, tuple[int, int, int]] = field(default_factory=lambda: DEFAULT_TIMES)
    default: tuple[int, int, int] = (30 * _MIN, 60 * _MIN, 120 * _MIN)

    def __post_init__(self) -> None:
        for category, steps in {**self.times, "(default)": self.default}.items():
            if len(steps) != len(CHAIN) - 1 or any(s <= 0 for s in steps):
                raise ValueError(
                    f"escalation times for {category!r} need {len(CHAIN) - 1} positive "
                    f"seconds (grid, street, district), got {steps!r}"
                )

    def times_for(self, category: str) -> tuple[int, int, int]:
        """(grid, street, district) seconds for a category."""
        return tuple(self.times.get(category, self.default))  # type: ignore[return-value]


DEFAULT_POLICY = EscalationPolicy()


def deadlines(alert: Alert, policy: EscalationPolicy = DEFAULT_POLICY) -> list[tuple[str, float]]:
    """(level, epoch second it is reached) for each level of the chain, grid first."""
    at = alert.raised_at
    out = [(CHAIN[0], at)]
    for level, step in zip(CHAIN[1:], policy.times_for(alert.category), strict=True):
        at += step
        out.append((level, at))
    return out


def _frozen_at(alert: Alert) -> float | None:
    """When escalation stopped: the first of acknowledgement, resolution or clearing."""
    stamps = (alert.acknowledged_at, alert.resolved_at, alert.cleared_at)
    times = [t for t in stamps if t is not None]
    return min(times) if times else None


def escalation_level(alert: Alert, now: float, policy: EscalationPolicy = DEFAULT_POLICY) -> str:
    """The level the alert is escalated to at ``now`` (frozen once acknowledged)."""
    stop = _frozen_at(alert)
    t = now if stop is None else min(now, stop)
    level = CHAIN[0]
    for name, reached in deadlines(alert, policy):
        if t >= reached:
            level = name
    return level


def deadline(alert: Alert, now: float, policy: EscalationPolicy = DEFAULT_POLICY) -> float | None:
    """Seconds left before the alert escalates to the next level (the countdown).

    None when it will not escalate any more: acknowledged, closed, or already at city level.
    """
    if alert.status != "new" or _frozen_at(alert) is not None:
        return None
    for _name, reached in deadlines(alert, policy):
        if now < reached:
            return reached - now
    return None


def escalate(alert: Alert, now: float, policy: EscalationPolicy = DEFAULT_POLICY) -> Alert:
    """The alert with ``escalation_level`` brought up to date (same object when unchanged).

    The worker calls this on a timer and audits a change; screens can also compute the level
    on the fly with :func:`escalation_level`.
    """
    level = escalation_level(alert, now, policy)
    if level == alert.escalation_level:
        return alert
    return replace(alert, escalation_level=level, updated_at=now)


def visible_to_level(
    alert: Alert, viewer_level: str, now: float, policy: EscalationPolicy = DEFAULT_POLICY
) -> bool:
    """True when the alert has escalated to (at least) ``viewer_level``.

    Grid and community viewers always see the alerts of their area; a street, district or city
    view lists an alert as "escalated to us" once it reached that level. Scope (whether the
    alert's grids are inside the viewer's area) is checked elsewhere, by the policy module.
    """
    if viewer_level in ("grid", "community"):
        return True
    if viewer_level not in CHAIN:
        raise ValueError(f"unknown level {viewer_level!r}; expected one of {CHAIN}")
    return CHAIN.index(escalation_level(alert, now, policy)) >= CHAIN.index(viewer_level)
