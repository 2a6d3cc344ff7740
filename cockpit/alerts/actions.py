"""People acting on alerts: acknowledge and resolve, checked, compare-and-set, audited.

Only a user whose level may take the action (``ack_alert`` / ``resolve_alert`` in the policy)
and whose scope covers one of the alert's grids may act on it; an alert with no grid (a CAP area
outside the city) can be acted on at city level only. A refused action raises before anything is
read for writing, so it changes nothing and leaves no audit entry; an alert that does not exist
is refused the same way as one outside the scope (the answer does not reveal which).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from cockpit.alerts import store
from cockpit.alerts.model import Alert, IllegalTransition, transition
from cockpit.policy import User, authorize

if TYPE_CHECKING:
    from cockpit.areastore import Geography

#: Lifecycle action -> the policy action it needs.
PERMISSIONS: dict[str, str] = {"acknowledge": "ack_alert", "resolve": "resolve_alert"}
MAX_COMMENT = 1000
_RETRIES = 5


def may_act(user: User | None, alert: Alert, action: str, geo: Geography) -> bool:
    """Whether ``user`` may take ``action`` on ``alert`` (level and scope)."""
    permission = PERMISSIONS.get(action)
    if user is None or permission is None or not authorize(user, permission):
        return False
    if not alert.area_grids:
        return authorize(user, permission, geo.areas.root_id, geo)
    return any(authorize(user, permission, grid, geo) for grid in alert.area_grids)


def act(
    r: redis.Redis,
    user: User | None,
    alert_id: str,
    action: str,
    text: str,
    geo: Geography,
    now: float,
) -> Alert:
    """Acknowledge or resolve an alert as ``user``; returns the stored alert.

    Raises PermissionError (no right, out of scope, or no such alert), IllegalTransition (the
    alert's status does not allow it) or ValueError (comment too long). On success the change
    goes to ``cockpit:alerts`` and ``cockpit:audit`` (who, when, what, alert id, comment).
    """
    if action not in PERMISSIONS:
        raise IllegalTransition(f"unknown action {action!r}; expected one of {tuple(PERMISSIONS)}")
    text = (text or "").strip()
    if len(text) > MAX_COMMENT:
        raise ValueError(f"comment is {len(text)} characters; at most {MAX_COMMENT}")
    if user is None or not authorize(user, PERMISSIONS[action]):
        raise PermissionError(f"your level may not {action} alerts")
    for _attempt in range(_RETRIES):
        alert = store.get_alert(r, alert_id)
        if alert is None or not may_act(user, alert, action, geo):
            raise PermissionError(f"alert {alert_id} is not in your scope")
        changed = transition(alert, action, user.name, now, text)
        try:
            store.update_alert(
                r, alert, changed, geo, action=action, actor=user.name, comment=text, audit=True
            )
        except store.Conflict:
            continue  # someone changed it meanwhile: decide again on the fresh alert
        return changed
    raise store.Conflict(f"alert {alert_id} kept changing; try again")
