"""The alert lists of the operations view and the leader view: open alerts of the session user's
scope, re-rendered only when they change; acknowledge and resolve through
cockpit.alerts.actions.act (which checks level and scope again and writes the audit); a click on
an alert flies the view's map to it (in the browser, from bounds the server sent)."""

from __future__ import annotations

import logging
import time

import redis
from dash import ALL, ClientsideFunction, Input, Output, State, clientside_callback, ctx
from dash.exceptions import PreventUpdate

from callbacks.alert_layer import shown_state, viewer_alerts
from cockpit import ids
from cockpit.alerts.actions import PERMISSIONS, act, may_act
from cockpit.alerts.model import IllegalTransition
from cockpit.alerts.screen import escalation, place
from cockpit.guard import secure_callback
from cockpit.i18n import t
from cockpit.policy import User, authorize
from cockpit.shared import digest
from cockpit.views.alert_list import LIMIT, VIEW_MAPS, alert_rows, list_id, message_id, store_id
from cockpit.views.officer import area_name
from cockpit.webapp import request_lang, runtime

log = logging.getLogger(__name__)
#: Which action a status offers next.
NEXT_ACTION = {"new": "acknowledge", "acknowledged": "resolve"}


def _render(user: User, view: str, hint: object, stored: object) -> tuple:
    now = time.time()
    try:
        viewed = viewer_alerts(user, hint, LIMIT)
    except redis.RedisError:
        raise PreventUpdate from None
    geo, lang = viewed.geo, request_lang(user)
    actions = {}
    for a in viewed.alerts:
        action = NEXT_ACTION.get(a.status)
        actions[a.id] = [action] if action and may_act(user, a, action, geo) else []
    key = digest(shown_state(viewed, now), actions, viewed.area_id, geo.version, lang)
    if isinstance(stored, dict) and stored.get("key") == key:
        raise PreventUpdate
    bounds, places = {}, {}
    for a in viewed.alerts:
        spot = place(a, geo, viewed.grids)
        if spot is not None:
            bounds[a.id] = spot.bounds
        grids = [g for g in a.area_grids if g in viewed.grids]
        if grids:
            more = f" +{len(grids) - 1}" if len(grids) > 1 else ""
            places[a.id] = area_name(geo, grids[0], lang) + more
    escalations = {a.id: escalation(a, now) for a in viewed.alerts}
    rows = alert_rows(view, viewed.alerts, escalations, places, actions, lang, now)
    return rows, {"key": key, "bounds": bounds}


def _act(user: User) -> str:
    """Acknowledge or resolve the alert whose button was pressed; the answer to show."""
    trigger = ctx.triggered_id
    clicked = ctx.triggered[0]["value"] if ctx.triggered else None
    if not isinstance(trigger, dict) or not clicked:
        raise PreventUpdate  # buttons were re-rendered, not pressed
    alert_id, action = trigger.get("alert"), trigger.get("action")
    if not isinstance(alert_id, str) or action not in PERMISSIONS:
        raise PreventUpdate
    lang = request_lang(user)
    if not authorize(user, PERMISSIONS[action]):
        return t("officer_alert_refused", lang)
    rt = runtime()
    try:
        act(rt.redis, user, alert_id, action, "", rt.geography(), time.time())
    except PermissionError:
        return t("officer_alert_refused", lang)
    except (IllegalTransition, ValueError, redis.RedisError, RuntimeError) as exc:
        log.info("alert %s %s by %s failed: %s", alert_id, action, user.name, exc)
        return t("officer_alert_failed", lang)
    return t(f"officer_alert_done_{action}", lang)


@secure_callback(
    Output(list_id("ops"), "children"),
    Output(store_id("ops"), "data"),
    Input(ids.TICK_ALERTS, "data"),
    Input(message_id("ops"), "children"),
    State(store_id("ops"), "data"),
    action="view_alerts",
)
def refresh_ops_alerts(user: User, _tick, _message, stored):  # type: ignore[no-untyped-def]
    """The operations view's list: the user's whole scope."""
    return _render(user, "ops", None, stored)


@secure_callback(
    Output(list_id("leader"), "children"),
    Output(store_id("leader"), "data"),
    Input(ids.TICK, "n_intervals"),
    Input(message_id("leader"), "children"),
    Input(ids.LEADER_AREA, "data"),
    State(store_id("leader"), "data"),
    action="view_alerts",
)
def refresh_leader_alerts(user: User, _tick, _message, area, stored):  # type: ignore[no-untyped-def]
    """The leader view's list: the area drilled into (re-checked against the scope)."""
    return _render(user, "leader", area, stored)


@secure_callback(
    Output(message_id("ops"), "children"),
    Input({"type": ids.ALERT_ACT, "view": "ops", "alert": ALL, "action": ALL}, "n_clicks"),
    prevent_initial_call=True,
    action="view_alerts",
)
def act_from_ops(user: User, _clicks):  # type: ignore[no-untyped-def]
    return _act(user)


@secure_callback(
    Output(message_id("leader"), "children"),
    Input({"type": ids.ALERT_ACT, "view": "leader", "alert": ALL, "action": ALL}, "n_clicks"),
    prevent_initial_call=True,
    action="view_alerts",
)
def act_from_leader(user: User, _clicks):  # type: ignore[no-untyped-def]
    return _act(user)


# zooming needs nothing from the server: the bounds came with the list
for _view, _map in VIEW_MAPS.items():
    clientside_callback(
        ClientsideFunction(namespace="cockpitAlerts", function_name="zoomTo"),
        Output(_map, "viewport", allow_duplicate=True),
        Input({"type": ids.ALERT_ZOOM, "view": _view, "alert": ALL}, "n_clicks"),
        State(store_id(_view), "data"),
        prevent_initial_call=True,
    )
