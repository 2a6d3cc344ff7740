"""Alerts: pure, clock-injected rules and records (no Redis, no Dash).

- :mod:`~cockpit.alerts.model`: the :class:`Alert` record, its lifecycle and rule events.
- :mod:`~cockpit.alerts.rules`: flood gauges and muck trucks.
- :mod:`~cockpit.alerts.escalation`: 吹哨报到, grid -> street -> district -> city.
- :mod:`~cockpit.alerts.early_warning`: rising risk per grid, repeated disputes per address.
- :mod:`~cockpit.alerts.cap`: OASIS CAP 1.2 in and out.
- :mod:`~cockpit.alerts.area`: which grids an alert's area touches.

Every function takes ``now`` (epoch seconds) instead of reading a clock; every state that must
survive between calls is a dataclass with ``to_dict``/``from_dict`` that the caller stores.
"""

from cockpit.alerts.model import (
    Alert,
    AlertEvent,
    IllegalTransition,
    alert_id,
    apply_event,
    transition,
)

__all__ = ["Alert", "AlertEvent", "IllegalTransition", "alert_id", "apply_event", "transition"]
