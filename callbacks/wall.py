"""The wall's own live parts: alert tiles, ticker, resolution rate, the safety-satisfaction
index, and the focus target for a new critical alert. Never any personal data."""

from __future__ import annotations

import time

import redis
from dash import ClientsideFunction, Input, Output, State, clientside_callback, html
from dash.exceptions import PreventUpdate

from cockpit import ids
from cockpit.aggregates import survey_index
from cockpit.guard import secure_callback
from cockpit.i18n import t
from cockpit.incidents import scope_grids
from cockpit.live import metric_values
from cockpit.policy import User
from cockpit.shared import SharedMemo, digest
from cockpit.webapp import request_lang, runtime

SEVERITIES = ("extreme", "severe", "moderate", "minor", "info")
FOCUS_SEVERITIES = ("extreme", "severe")
FOCUS_WINDOW_S = 300
TICKER_ITEMS = 20


def _open_alerts(client: redis.Redis, user: User, geo):  # type: ignore[no-untyped-def]
    try:
        from cockpit.alerts.store import open_alerts
    except ImportError:  # alerts not installed in this build
        return []
    return open_alerts(client, user, geo, limit=200)


@secure_callback(
    Output(ids.WALL_ALERTS, "children"),
    Output(ids.WALL_TICKER, "children"),
    Output(ids.WALL_FOCUS, "data"),
    Output(ids.WALL_SHOWN, "data"),
    Input(ids.TICK_ALERTS, "data"),
    State(ids.WALL_SHOWN, "data"),
    action="view_map",
)
def refresh_wall_alerts(user: User, _alerts_tick, shown):
    """Alert tiles, ticker and focus, when the alerts change (and every few seconds, for
    escalations by time). Apart from the indices: a callback triggered again before it
    answers is dropped by the page, and on a loaded machine the indices' tick once kept
    the focus from ever arriving."""
    rt = runtime()
    lang = request_lang(user)
    try:
        geo = rt.geography()
        alerts = _open_alerts(rt.redis, user, geo)
    except redis.RedisError:
        raise PreventUpdate from None
    scope = scope_grids(geo, user.area_id)
    focus = _focus(alerts, geo, scope)
    # every wall of one area and language shows the same: built once per process and state
    state = (user.area_id, lang, geo.version,
             tuple((a.id, a.status, a.severity, a.updated_at) for a in alerts),
             focus and focus["id"])  # fmt: skip
    out, key = _SHOWN.get(state, lambda: _alert_parts(alerts, geo, scope, lang, focus))
    if key == shown:
        raise PreventUpdate
    return (*out, key)


@secure_callback(
    Output(ids.WALL_RESOLUTION, "children"),
    Output(ids.WALL_SSI, "children"),
    Output(ids.WALL_SSI + "-n", "children"),
    Input(ids.TICK_SLOW, "data"),
    State(ids.WALL_RESOLUTION, "children"),
    State(ids.WALL_SSI, "children"),
    State(ids.WALL_SSI + "-n", "children"),
    action="view_map",
)
def refresh_wall_indices(user: User, _slow_tick, *shown):
    """The resolution rate and the safety-satisfaction index of the wall's area, sent only
    when their text changes."""
    rt = runtime()
    lang = request_lang(user)
    try:
        resolution = metric_values(rt.redis, "resolution").get(user.area_id)
        survey = survey_index(rt.redis).get(user.area_id, {})
    except redis.RedisError:
        raise PreventUpdate from None
    out = _index_texts(resolution, survey, lang)
    if list(out) == list(shown):
        raise PreventUpdate
    return out


# What walls show by their state (refresh_wall_alerts): a hundred walls of an area ask at once.
_SHOWN = SharedMemo(16)


def _alert_parts(alerts, geo, scope, lang, focus) -> tuple[tuple, str]:  # type: ignore[no-untyped-def]
    """The wall's alert tiles, ticker and focus, and their digest."""
    counts = {s: 0 for s in SEVERITIES}
    for alert in alerts:
        counts[alert.severity] = counts.get(alert.severity, 0) + 1
    tiles = [
        html.Span(
            [html.B(str(counts[s])), " " + t(f"severity_{s}", lang)], className=f"sev sev-{s}"
        )  # fmt: skip
        for s in SEVERITIES[:4]
    ]
    names = geo.areas.frame["name_zh" if lang == "zh-CN" else "name_en"]
    # an alert may reach beyond the wall's area: name and frame only its grids inside
    ticker = (
        [
            html.Span(
                [
                    html.B(t(f"severity_{a.severity}", lang)),
                    " ",
                    a.title_zh if lang == "zh-CN" else a.title_en,
                    " · " + str(names.get(next((g for g in a.area_grids if g in scope), ""),
                                          "")),
                    " · " + time.strftime("%H:%M", time.localtime(a.raised_at)),
                ],
                className=f"ticker-item sev-{a.severity}",
            )  # fmt: skip
            for a in sorted(alerts, key=lambda a: -a.raised_at)[:TICKER_ITEMS]
        ]
        or t("no_open_alerts", lang)
    )
    if focus is not None:  # the wall's heading names where the alert is while it has the focus
        focus = {**focus, "name": str(names.get(focus["grid"], ""))}
    out = (tiles, ticker, focus)
    # sent only when what the wall shows changes (it was ~8.6 KB every tick, unchanged)
    return out, digest(*out)  # components by their repr: every prop, nested


def _index_texts(resolution: float | None, survey: dict, lang: str) -> tuple[str, str, str]:
    """The resolution rate, the safety-satisfaction index and its sample count as shown."""
    ssi = survey.get("safety_index")
    ssi_text = (
        f"{(survey['safety_index'] + survey['satisfaction_index']) / 2:.1f}"
        if ssi is not None
        else t("not_enough_answers", lang)
    )
    ssi_n = f"n = {survey.get('n', 0):,} {t('answers', lang)}"
    res_text = f"{resolution:.1f} %" if resolution is not None else "–"
    return res_text, ssi_text, ssi_n


def _focus(alerts, geo, scope: frozenset[str]) -> dict | None:  # type: ignore[no-untyped-def]
    """The most severe, then newest, critical alert of the last few minutes, with the bounds
    of its grids: a newer severe alert (a gauge past danger) does not take the wall from an
    extreme one."""
    now = time.time()
    critical = [a for a in alerts if a.severity in FOCUS_SEVERITIES and a.area_grids
                and now - a.raised_at < FOCUS_WINDOW_S]  # fmt: skip
    if not critical:
        return None
    alert = max(critical, key=lambda a: (-FOCUS_SEVERITIES.index(a.severity), a.raised_at))
    grids = [g for g in alert.area_grids if g in geo.grid_index and g in scope]
    if not grids:
        return None
    minx, miny, maxx, maxy = geo.areas.frame.geometry.loc[grids].total_bounds
    return {"id": alert.id, "bounds": [[miny, minx], [maxy, maxx]], "grid": grids[0]}


clientside_callback(
    ClientsideFunction(namespace="cockpitWall", function_name="rotate"),
    Output(ids.MAP, "viewport"),
    Output(ids.WALL_AREA, "children"),
    Output(ids.WALL_CLOCK, "children"),
    Input(ids.CLOCK, "n_intervals"),
    State(ids.WALL_TARGETS, "data"),
    State(ids.WALL_FOCUS, "data"),
)
