"""Alert markers on the operations map (and the wall, which reuses its layers) and on the leader
map: the open alerts of the session user's scope (narrowed to the area the leader drilled into),
sent only when what they show changes."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from dash import Input, Output, Patch, State
from dash.exceptions import PreventUpdate

from cockpit import ids
from cockpit.alerts.model import Alert
from cockpit.alerts.screen import escalation
from cockpit.alerts.store import open_alerts
from cockpit.areastore import Geography
from cockpit.guard import secure_callback
from cockpit.incidents import scope_grids
from cockpit.policy import User, authorize
from cockpit.shared import SharedMemo, digest
from cockpit.webapp import request_lang, runtime
from layers.alerts import alert_features

#: Markers on one map at most (most severe and newest first).
MAP_LIMIT = 200
#: Alerts read before narrowing to a drilled area, so the area's own are not cut off.
READ_LIMIT = 2000
#: Markers travel as deltas, and whole again once a period (seconds): should a delta ever
#: meet markers other than those it was computed for (an answer lost or applied out of
#: order), the wall is right again within this time.
WHOLE_EVERY_S = 60


@dataclass(frozen=True)
class Viewed:
    """Open alerts as one viewer sees them: the area viewed, its grids, the alerts in it."""

    geo: Geography
    area_id: str
    grids: frozenset[str]
    alerts: list[Alert]


def viewed_area(user: User, hint: object, geo: Geography) -> str:
    """The area a view shows: the browser's hint (the leader's drill) if the user may see alerts
    there, else the user's own area."""
    if isinstance(hint, str) and hint != user.area_id and authorize(user, "view_alerts", hint, geo):
        return hint
    return user.area_id


def viewer_alerts(user: User, hint: object, limit: int) -> Viewed:
    """The open alerts of ``user``'s scope that touch the viewed area, most severe first.

    Scope comes from :func:`cockpit.alerts.store.open_alerts` (the session user's area); the
    hint can only narrow it. Raises redis.RedisError when Redis does not answer.
    """
    rt = runtime()
    geo = rt.geography()
    area = viewed_area(user, hint, geo)
    grids = scope_grids(geo, area)
    alerts = open_alerts(rt.redis, user, geo, limit=READ_LIMIT if area != user.area_id else limit)
    if area != user.area_id:
        alerts = [a for a in alerts if any(g in grids for g in a.area_grids)]
    return Viewed(geo, area, grids, alerts[:limit])


def shown_state(viewed: Viewed, now: float) -> list[tuple]:
    """What of each alert is on screen; escalation is in it, so a level change is sent."""
    out = []
    for a in viewed.alerts:
        esc = escalation(a, now)
        out.append((a.id, a.status, a.severity, a.updated_at, esc.level, esc.next_at))
    return out


# Markers by what they show (the digest below): every viewer of one area, language and alert
# state gets the same features, and placing 200 alerts (shapely, per alert) took tens of
# milliseconds, which each of a hundred walls repeated after every alert change; they ask at
# the same moment (a pushed view event), so one computes and the others wait for it.
_FEATURES = SharedMemo(32)
_KEYS = SharedMemo(64)
_DELTAS = SharedMemo(64)


def _layer_data(user: User, hint: object, shown: object) -> tuple[dict, str]:
    now = time.time()
    try:
        viewed = viewer_alerts(user, hint, MAP_LIMIT)
    except redis.RedisError:
        raise PreventUpdate from None  # keep the markers shown; the next tick tries again
    lang = request_lang(user)
    # escalation levels move with time: the digest is shared per second of it
    state = (viewed.area_id, lang, viewed.geo.version, int(now),
             tuple((a.id, a.status, a.severity, a.updated_at) for a in viewed.alerts))  # fmt: skip
    key = _KEYS.get(
        state, lambda: digest(shown_state(viewed, now), viewed.area_id, viewed.geo.version, lang)
    )
    # the browser holds "<key of what it shows>@<period of its last whole send>"
    shown_key, _, shown_period = shown.partition("@") if isinstance(shown, str) else ("", "", "")
    if key == shown_key:
        raise PreventUpdate
    features = _FEATURES.get(
        key, lambda: alert_features(viewed.alerts, viewed.geo, viewed.grids, lang, now)["features"]
    )
    sent_ms = int(now * 1000)  # the browser counts down on the server's clock of this answer
    period = str(int(now // WHOLE_EVERY_S))
    old = _FEATURES.peek(shown_key) if shown_period == period else None
    if old is None:  # a first answer, a new period, or what the browser shows is not known here
        fresh = [_sent(f, sent_ms) for f in features]
        return {"type": "FeatureCollection", "features": fresh}, f"{key}@{period}"
    # the markers that changed, not all 200 again (~80 KB to each wall after every change)
    gone, added = _DELTAS.get((shown_key, key), lambda: marker_delta(old, features))  # type: ignore[arg-type]
    patch = Patch()
    for index in gone:
        del patch["features"][index]
    patch["features"].extend([_sent(f, sent_ms) for f in added])
    return patch, f"{key}@{shown_period}"


def _sent(feature: dict, sent_ms: int) -> dict:
    return {**feature, "properties": {**feature["properties"], "sent_ms": sent_ms}}


def marker_delta(old: list[dict], new: list[dict]) -> tuple[list[int], list[dict]]:
    """How the browser's markers ``old`` become ``new``: the indexes to delete (highest first,
    so each index holds while applied in order) and the features to append. A marker whose
    properties or place changed is deleted and appended again; the order of markers does not
    matter (severity sets which is drawn on top)."""
    wanted = {f["id"]: f for f in new}
    kept = {f["id"] for f in old if _same(f, wanted.get(f["id"]))}
    gone = [k for k in range(len(old) - 1, -1, -1) if old[k]["id"] not in kept]
    return gone, [f for f in new if f["id"] not in kept]


def _same(a: dict, b: dict | None) -> bool:
    if b is None or a["geometry"] != b["geometry"]:
        return False
    return {k: v for k, v in a["properties"].items() if k != "sent_ms"} == {
        k: v for k, v in b["properties"].items() if k != "sent_ms"
    }


@secure_callback(
    Output(ids.ALERT_LAYER, "data"),
    Output(ids.ALERT_LAYER_KEY, "data"),
    Input(ids.TICK_ALERTS, "data"),
    State(ids.ALERT_LAYER_KEY, "data"),
    action="view_alerts",
)
def refresh_alert_markers(user: User, _tick, shown):  # type: ignore[no-untyped-def]
    """Markers of the open alerts in the user's scope (operations map and wall)."""
    return _layer_data(user, None, shown)


@secure_callback(
    Output(ids.LEADER_ALERT_LAYER, "data"),
    Output(ids.LEADER_ALERT_LAYER_KEY, "data"),
    Input(ids.TICK, "n_intervals"),
    Input(ids.LEADER_AREA, "data"),
    State(ids.LEADER_ALERT_LAYER_KEY, "data"),
    action="view_alerts",
)
def refresh_leader_alert_markers(user: User, _tick, area, shown):  # type: ignore[no-untyped-def]
    """Markers of the open alerts in the area the leader looks at (checked against the scope)."""
    return _layer_data(user, area, shown)
