"""Callbacks of the officer view (/officer). The scope is always the session user's: filter
values, row and marker ids and alert ids from the browser are only ever narrowed by, or checked
against, what that user may see (cockpit.incidents and cockpit.alerts do the checks)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import redis
from dash import ALL, ClientsideFunction, Input, Output, Patch, State, clientside_callback, ctx
from dash.exceptions import PreventUpdate

from cockpit import ids
from cockpit.aggregates import IncidentAggregates
from cockpit.contract import STATUSES
from cockpit.guard import secure_callback
from cockpit.i18n import t
from cockpit.incidents import incident_detail, recent_incidents, scope_grids
from cockpit.policy import User, authorize
from cockpit.views.officer import (
    DEFAULT_RANGE,
    RANGES_MS,
    alert_items,
    incident_detail_view,
    incident_features,
    incident_rows,
)
from cockpit.webapp import request_lang, runtime
from layers.grids import class_breaks, legend

log = logging.getLogger(__name__)
LIMIT = 300  # rows in the list and points on the map (newest first): a bounded live list
ALERT_PERMISSION = {"acknowledge": "ack_alert", "resolve": "resolve_alert"}


def _alerts_api() -> tuple[Any, Any] | None:
    """(open_alerts, act) from the alerts back end, or None while it is not installed."""
    try:
        from cockpit.alerts.actions import act
        from cockpit.alerts.store import open_alerts
    except ImportError:
        return None
    return open_alerts, act


def _digest(*parts: object) -> str:
    raw = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def _filters(categories: object, statuses: object, window: object, text: object):  # type: ignore[no-untyped-def]
    """Browser filter values made safe: lists of strings, a known range, a short string."""
    cats = [c for c in categories if isinstance(c, str)] if isinstance(categories, list) else []
    sts = [s for s in statuses if s in STATUSES] if isinstance(statuses, list) else []
    window = window if window in RANGES_MS else DEFAULT_RANGE
    text = text[:100] if isinstance(text, str) else ""
    return cats or None, sts or None, window, text


@secure_callback(
    Output(ids.OFFICER_POINTS, "data"),
    Output(ids.OFFICER_ROWS, "data"),
    Output(ids.OFFICER_COUNT, "children"),
    Output(ids.OFFICER_LIST_STORE, "data"),
    Input(ids.TICK, "n_intervals"),
    Input(ids.OFFICER_CATEGORY, "value"),
    Input(ids.OFFICER_STATUS, "value"),
    Input(ids.OFFICER_RANGE, "value"),
    Input(ids.OFFICER_TEXT, "value"),
    State(ids.OFFICER_LIST_STORE, "data"),
    action="view_incidents",
)
def refresh_incidents(user: User, _tick, categories, statuses, window, text, store):  # type: ignore[no-untyped-def]
    """The list's rows and the map's points for the filters; unchanged data is not sent again."""
    rt = runtime()
    cats, sts, window, text = _filters(categories, statuses, window, text)
    lang = request_lang(user)
    try:
        geo = rt.geography()
        now_ms = int(time.time() * 1000)
        records = recent_incidents(rt.redis, geo, user, now_ms - RANGES_MS[window], now_ms,
                                   cats, sts, text, limit=LIMIT)  # fmt: skip
    except redis.RedisError:
        raise PreventUpdate from None
    data_key = _digest(records, lang, geo.version)
    previous = store if isinstance(store, dict) else {}
    if previous.get("data") == data_key:
        raise PreventUpdate  # the browser already shows exactly this
    count = t("officer_n_incidents", lang, n=len(records))
    if len(records) >= LIMIT:
        count = t("officer_n_incidents_max", lang, n=LIMIT)
    if not records:
        count = t("officer_no_incidents", lang)
    return (incident_features(records, geo, lang), incident_rows(records, geo, lang), count,
            {"data": data_key})  # fmt: skip


clientside_callback(  # rows drawn in place, each kept by id (assets/officer.js)
    ClientsideFunction(namespace="cockpitOfficer", function_name="drawRows"),
    Output(ids.OFFICER_ROWS_DRAWN, "data"),
    Input(ids.OFFICER_ROWS, "data"),
    Input(ids.OFFICER_SELECTED, "data"),
)


@secure_callback(
    Output(ids.OFFICER_GRIDS, "hideout"),
    Output(ids.OFFICER_KPI, "children"),
    Output(ids.OFFICER_LEGEND, "children"),
    Input(ids.TICK, "n_intervals"),
    action="view_counts",
)
def refresh_grid_colours(user: User, _tick):  # type: ignore[no-untyped-def]
    """Grid colours from the live last-hour counts of the user's grids (no geometry)."""
    rt = runtime()
    try:
        geo = rt.geography()
        counts = IncidentAggregates(rt.redis).window_counts("1h")
    except redis.RedisError:
        raise PreventUpdate from None
    grids = scope_grids(geo, user.area_id)
    grid_counts = {g: n for g, n in counts.items() if g in grids}
    breaks = class_breaks(grid_counts.values())
    hideout = Patch()
    hideout["counts"] = grid_counts
    hideout["breaks"] = breaks
    lang = request_lang(user)
    return hideout, f"{counts.get(user.area_id, 0):,}", legend(breaks, t("legend_title", lang), "0")


@secure_callback(
    Output(ids.OFFICER_SELECTED, "data"),
    Input(ids.OFFICER_ROW_CLICK, "data"),
    Input(ids.OFFICER_POINTS, "clickData"),
    Input(ids.OFFICER_CLOSE, "n_clicks"),
    prevent_initial_call=True,
    action="view_incidents",
)
def select_incident(user: User, _row, click_data, _close):  # type: ignore[no-untyped-def]
    """The incident the officer clicked (row or marker), kept only if it is in their scope."""
    chosen: object = None
    for item in ctx.triggered:
        prop, value = item["prop_id"], item["value"]
        if prop == f"{ids.OFFICER_CLOSE}.n_clicks" and value:
            return None
        if prop == f"{ids.OFFICER_ROW_CLICK}.data" and isinstance(value, dict):
            chosen = value.get("id")
        elif prop == f"{ids.OFFICER_POINTS}.clickData" and isinstance(value, dict):
            chosen = (value.get("properties") or {}).get("id") or value.get("id")
    if not isinstance(chosen, str) or not chosen:
        raise PreventUpdate  # not a click on anything
    rt = runtime()
    try:
        found = incident_detail(rt.redis, rt.geography(), user, chosen)
    except redis.RedisError:
        raise PreventUpdate from None
    return found["id"] if found else None


@secure_callback(
    Output(ids.OFFICER_POINTS, "hideout"),
    Input(ids.OFFICER_SELECTED, "data"),
    prevent_initial_call=True,
    action="view_incidents",
)
def mark_selected(user: User, selected):  # type: ignore[no-untyped-def]
    """Ring the selected incident's marker. The store can be set in the browser, so the id is
    checked again: an incident outside the scope rings nothing (and is not echoed back)."""
    rt = runtime()
    try:
        found = incident_detail(rt.redis, rt.geography(), user, selected)
    except redis.RedisError:
        raise PreventUpdate from None
    hideout = Patch()
    hideout["selected"] = found["id"] if found else None
    return hideout


@secure_callback(
    Output(ids.OFFICER_DETAIL_BODY, "children"),
    Output(ids.OFFICER_DETAIL, "className"),
    Output(ids.OFFICER_DETAIL_STORE, "data"),
    Input(ids.OFFICER_SELECTED, "data"),
    Input(ids.TICK, "n_intervals"),
    State(ids.OFFICER_DETAIL_STORE, "data"),
    action="view_incidents",
)
def show_detail(user: User, selected, _tick, shown):  # type: ignore[no-untyped-def]
    """The selected incident's fields, re-read every tick and sent again only when they
    changed (a status update shows up; an unchanged panel is left alone)."""
    if not isinstance(selected, str) or not selected:
        if shown is None:
            raise PreventUpdate
        return [], "officer-detail hidden", None
    rt = runtime()
    lang = request_lang(user)
    try:
        geo = rt.geography()
        record = incident_detail(rt.redis, geo, user, selected)
    except redis.RedisError:
        raise PreventUpdate from None
    key = _digest(record, lang, geo.version)
    if key == shown:
        raise PreventUpdate
    if record is None:
        return [t("officer_gone", lang)], "officer-detail", key
    return incident_detail_view(record, geo, lang), "officer-detail", key


@secure_callback(
    Output(ids.OFFICER_ALERTS, "children"),
    Output(ids.OFFICER_ALERTS_STORE, "data"),
    Input(ids.TICK, "n_intervals"),
    Input(ids.OFFICER_ALERT_MESSAGE, "children"),
    State(ids.OFFICER_ALERTS_STORE, "data"),
    action="view_alerts",
)
def refresh_alerts(user: User, _tick, _message, store):  # type: ignore[no-untyped-def]
    """Open alerts of the user's scope; re-rendered only when they change (typed comments
    stay)."""
    lang = request_lang(user)
    api = _alerts_api()
    if api is None:
        key = "unavailable"
        if isinstance(store, dict) and store.get("key") == key:
            raise PreventUpdate
        return [t("officer_alerts_unavailable", lang)], {"key": key}
    rt = runtime()
    try:
        alerts = api[0](rt.redis, user, rt.geography(), limit=50)
    except redis.RedisError:
        raise PreventUpdate from None
    may = {a: authorize(user, p) for a, p in ALERT_PERMISSION.items()}
    key = _digest([(a.id, a.status, a.severity, a.updated_at) for a in alerts], lang, may)
    if isinstance(store, dict) and store.get("key") == key:
        raise PreventUpdate
    return alert_items(alerts, may, lang), {"key": key}


@secure_callback(
    Output(ids.OFFICER_ALERT_MESSAGE, "children"),
    Input({"type": ids.OFFICER_ALERT_ACTION, "alert": ALL, "action": ALL}, "n_clicks"),
    State({"type": ids.OFFICER_ALERT_COMMENT, "alert": ALL}, "value"),
    prevent_initial_call=True,
    action="view_alerts",
)
def act_on_alert(user: User, _clicks, _comments):  # type: ignore[no-untyped-def]
    """Acknowledge or resolve: the alerts back end checks the level and the scope again."""
    trigger = ctx.triggered_id
    clicked = ctx.triggered[0]["value"] if ctx.triggered else None
    if not isinstance(trigger, dict) or not clicked:
        raise PreventUpdate  # buttons re-rendered, not clicked
    alert_id, action = trigger.get("alert"), trigger.get("action")
    if not isinstance(alert_id, str) or action not in ALERT_PERMISSION:
        raise PreventUpdate
    lang = request_lang(user)
    if not authorize(user, ALERT_PERMISSION[action]):
        return t("officer_alert_refused", lang)
    api = _alerts_api()
    if api is None:
        return t("officer_alerts_unavailable", lang)
    comment = ""
    for item in ctx.states_list[0] if ctx.states_list else []:
        if isinstance(item.get("id"), dict) and item["id"].get("alert") == alert_id:
            comment = item.get("value") if isinstance(item.get("value"), str) else ""
    rt = runtime()
    try:
        api[1](rt.redis, user, alert_id, action, comment[:500], rt.geography(), time.time())
    except PermissionError:
        return t("officer_alert_refused", lang)
    except (ValueError, redis.RedisError, RuntimeError) as exc:
        log.info("alert %s %s by %s failed: %s", alert_id, action, user.name, exc)
        return t("officer_alert_failed", lang)
    return t(f"officer_alert_done_{action}", lang)
