"""The alert record, its lifecycle, and the events that rules emit.

An :class:`Alert` is a plain, JSON-serialisable record. Its ``id`` is derived from its
``dedup_key`` (the situation it describes: e.g. one gauge's warning that began at a given
reading), so a restarted or duplicated worker that sees the same situation computes the same id
and cannot raise it twice.

Rules never build alerts directly: they emit :class:`AlertEvent` (raise, update, clear), which
:func:`apply_event` folds into the stored alert. Users act on alerts through :func:`transition`.
Nothing here reads a clock: every time is an explicit ``now`` in epoch seconds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

KINDS: tuple[str, ...] = (
    "flood_warning",
    "flood_danger",
    "flood_rise",
    "dumping_suspected",
    "truck_forbidden_zone",
    "truck_hours",
    "truck_offline",
    "rising_risk",
    "dispute_escalation",
    "cap",
)
#: CAP's severity scale, lowest first ("info" stands for CAP's "Unknown").
SEVERITIES: tuple[str, ...] = ("info", "minor", "moderate", "severe", "extreme")
STATUSES: tuple[str, ...] = ("new", "acknowledged", "resolved", "cleared")
#: Statuses after which nothing changes any more.
CLOSED: frozenset[str] = frozenset({"resolved", "cleared"})
ESCALATION_LEVELS: tuple[str, ...] = ("grid", "community", "street", "district", "city")
EVENT_ACTIONS: tuple[str, ...] = ("raise", "update", "clear")
ACTIONS: tuple[str, ...] = ("acknowledge", "resolve", "clear")

#: The incident category (cockpit.contract.CATEGORIES) an alert kind belongs to; escalation
#: times are set per category.
KIND_CATEGORY: dict[str, str] = {
    "flood_warning": "flood",
    "flood_danger": "flood",
    "flood_rise": "flood",
    "dumping_suspected": "dumping",
    "truck_forbidden_zone": "dumping",
    "truck_hours": "dumping",
    "truck_offline": "dumping",
    "rising_risk": "other",
    "dispute_escalation": "dispute",
    "cap": "other",
}


class IllegalTransition(ValueError):
    """An action that the alert's current status does not allow."""


def severity_rank(severity: str) -> int:
    """Position of ``severity`` on the scale (info=0 ... extreme=4); ValueError if unknown."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(f"unknown severity {severity!r}; expected one of {SEVERITIES}") from None


def alert_id(dedup_key: str) -> str:
    """Stable alert id for a dedup key: equal situations give equal ids on any worker."""
    return "al-" + hashlib.sha256(dedup_key.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class AlertEvent:
    """What a rule decided: raise a new alert, update it (e.g. severity), or clear it.

    ``dedup_key`` names the situation; all events of one situation share it. ``geometry`` is
    GeoJSON in lon/lat (a point for a truck, the catchment for a gauge) or None, in which case
    the caller supplies the area (e.g. the gauge's catchment from reference data).
    """

    action: str
    kind: str
    severity: str
    dedup_key: str
    source_ref: str
    at: float
    title_en: str = ""
    title_zh: str = ""
    text: str = ""
    geometry: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in EVENT_ACTIONS:
            raise ValueError(f"unknown event action {self.action!r}; expected {EVENT_ACTIONS}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}")
        severity_rank(self.severity)


@dataclass(frozen=True)
class Alert:
    """One alert: what, how bad, where, and who did what with it when."""

    id: str
    kind: str
    severity: str
    status: str
    dedup_key: str
    raised_at: float
    updated_at: float
    area_grids: list[str] = field(default_factory=list)
    geometry: dict[str, Any] | None = None
    title_en: str = ""
    title_zh: str = ""
    text: str = ""
    source_ref: str = ""
    category: str = ""
    escalation_level: str = "grid"
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    ack_comment: str = ""
    resolved_by: str | None = None
    resolved_at: float | None = None
    resolution_note: str = ""
    cleared_at: float | None = None
    expires_at: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}; expected one of {KINDS}")
        severity_rank(self.severity)
        if self.status not in STATUSES:
            raise ValueError(f"unknown alert status {self.status!r}; expected one of {STATUSES}")
        if self.escalation_level not in ESCALATION_LEVELS:
            raise ValueError(f"unknown escalation level {self.escalation_level!r}")
        if not self.category:
            object.__setattr__(self, "category", KIND_CATEGORY[self.kind])
        if self.geometry is not None:
            # shapely's mapping() gives tuples; store JSON types so a stored alert reads back equal
            object.__setattr__(self, "geometry", json.loads(json.dumps(self.geometry)))

    @property
    def is_open(self) -> bool:
        """True while the alert is neither resolved nor cleared."""
        return self.status not in CLOSED

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of JSON types."""
        return asdict(self)

    def to_json(self) -> str:
        """Compact JSON; :meth:`from_json` reads it back to an equal alert."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Alert:
        """Build from :meth:`to_dict` output; unknown keys are ignored (newer writers)."""
        if not isinstance(doc, dict):
            raise ValueError("an alert must be a JSON object")
        known = {f.name for f in fields(cls)}
        missing = [n for n in ("id", "kind", "severity", "status", "dedup_key") if n not in doc]
        if missing:
            raise ValueError(f"alert lacks field(s): {', '.join(missing)}")
        values = {k: v for k, v in doc.items() if k in known}
        values["area_grids"] = list(values.get("area_grids") or [])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> Alert:
        """Inverse of :meth:`to_json`; ValueError on anything that is not an alert."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"alert is not valid JSON: {exc}") from exc
        return cls.from_dict(doc)


def transition(alert: Alert, action: str, user_id: str, now: float, text: str = "") -> Alert:
    """Apply a lifecycle action and return the new alert (the input is not changed).

    - ``acknowledge``: new -> acknowledged (who, when, comment); stops escalation.
    - ``resolve``: acknowledged -> resolved (who, when, note). A new alert must be
      acknowledged first, so the audit trail always shows who took it on.
    - ``clear``: new or acknowledged -> cleared; the condition ended by itself (a rule or the
      CAP issuer says so), ``user_id`` names the system actor.

    Raises :class:`IllegalTransition` naming the action, the alert and its status.
    """
    if action not in ACTIONS:
        raise IllegalTransition(f"unknown action {action!r}; expected one of {ACTIONS}")
    if not user_id:
        raise IllegalTransition(f"cannot {action} alert {alert.id}: no user given")
    if alert.status in CLOSED:
        raise IllegalTransition(f"cannot {action} alert {alert.id}: it is already {alert.status}")
    if action == "acknowledge":
        if alert.status != "new":
            raise IllegalTransition(
                f"cannot acknowledge alert {alert.id}: it is already {alert.status}"
            )
        return replace(
            alert,
            status="acknowledged",
            acknowledged_by=user_id,
            acknowledged_at=now,
            ack_comment=text,
            updated_at=now,
        )
    if action == "resolve":
        if alert.status != "acknowledged":
            raise IllegalTransition(
                f"cannot resolve alert {alert.id}: it is {alert.status}; acknowledge it first"
            )
        return replace(
            alert,
            status="resolved",
            resolved_by=user_id,
            resolved_at=now,
            resolution_note=text,
            updated_at=now,
        )
    # clear: the condition ended without anyone resolving it
    note = text or alert.resolution_note
    return replace(alert, status="cleared", cleared_at=now, resolution_note=note, updated_at=now)


def apply_event(
    existing: Alert | None, event: AlertEvent, area_grids: list[str] | None = None
) -> Alert | None:
    """Fold a rule's event into the stored alert of its situation.

    Returns the alert to store, or None when the event changes nothing (a raise for a situation
    that already has an alert: the dedup guard; an update or clear with no open alert).
    ``area_grids`` (from :mod:`cockpit.alerts.area`) replaces the alert's grids when given.
    """
    if event.action == "raise":
        if existing is not None:
            return None
        return Alert(
            id=alert_id(event.dedup_key),
            kind=event.kind,
            severity=event.severity,
            status="new",
            dedup_key=event.dedup_key,
            raised_at=event.at,
            updated_at=event.at,
            area_grids=list(area_grids or []),
            geometry=event.geometry,
            title_en=event.title_en,
            title_zh=event.title_zh,
            text=event.text,
            source_ref=event.source_ref,
        )
    if existing is None or not existing.is_open:
        return None
    if event.action == "update":
        return replace(
            existing,
            kind=event.kind,
            severity=event.severity,
            title_en=event.title_en or existing.title_en,
            title_zh=event.title_zh or existing.title_zh,
            text=event.text or existing.text,
            geometry=event.geometry if event.geometry is not None else existing.geometry,
            area_grids=list(area_grids) if area_grids is not None else existing.area_grids,
            updated_at=event.at,
        )
    return transition(existing, "clear", "system", event.at, event.text)
