"""The alert list shown beside the operations map and in the leader view: the open alerts of the
viewer's scope, most severe first, each with its severity colour, status, the level it has
escalated to with the countdown to the next, its age, and (where the viewer may) buttons to
acknowledge or resolve. Clicking an alert flies the view's map to it.

This module only builds components; callbacks/alert_list.py reads the alerts for the session
user and decides the buttons. Titles are children of components, which React renders as text.
Countdowns and ages are rendered empty with their times as data attributes; assets/alerts.js
fills them every second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dash import dcc, html

from cockpit import ids
from cockpit.alerts.model import Alert
from cockpit.alerts.screen import Escalation
from cockpit.i18n import t
from layers.alerts import alert_title

#: The views that carry an alert list, and the map each one zooms.
VIEW_MAPS: dict[str, str] = {"ops": ids.MAP, "leader": ids.LEADER_MAP}
#: How many alerts a list shows (most severe and newest first).
LIMIT = 50


def list_id(view: str) -> dict[str, str]:
    return {"type": ids.ALERT_LIST, "view": view}


def store_id(view: str) -> dict[str, str]:
    return {"type": ids.ALERT_LIST_STORE, "view": view}


def message_id(view: str) -> dict[str, str]:
    return {"type": ids.ALERT_LIST_MESSAGE, "view": view}


def alert_panel(view: str, lang: str, extra: Sequence = ()) -> html.Section:
    """The (empty) panel of a view; ``extra`` holds components that belong with it (stores)."""
    if view not in VIEW_MAPS:
        raise ValueError(f"unknown alert list view {view!r}; expected one of {tuple(VIEW_MAPS)}")
    return html.Section(
        className="alert-panel",
        children=[
            html.H2(t("open_alerts", lang)),
            html.Div(id=message_id(view), className="alist-message"),
            html.Div(id=list_id(view), children=html.Div(t("no_open_alerts", lang),
                                                         className="alist-empty")),
            dcc.Store(id=store_id(view), data=None),
            *extra,
        ],
    )  # fmt: skip


def _escalation_line(esc: Escalation, status: str, lang: str) -> list:
    level = t(f"level_{esc.level}", lang)
    out: list = []
    if esc.level != "grid":
        out.append(html.Span(t("alert_escalated_to", lang, level=level), className="alist-level"))
    if esc.next_at is not None and esc.next_level is not None and status == "new":
        template = t("alert_countdown", lang).replace("{level}", t(f"level_{esc.next_level}", lang))
        out.append(html.Span(className="alist-countdown", **{
            "data-at-ms": str(int(esc.next_at * 1000)), "data-kind": "countdown",
            "data-template": template}))  # fmt: skip
    return out


def alert_rows(
    view: str,
    alerts: Sequence[Alert],
    escalations: Mapping[str, Escalation],
    places: Mapping[str, str],
    actions: Mapping[str, Sequence[str]],
    lang: str,
    now: float,
) -> html.Ul | html.Div:
    """The list: ``escalations`` by alert id, ``places`` the area name to show per alert id,
    ``actions`` the buttons the viewer may press per alert id."""
    sent = {"data-sent-ms": str(int(now * 1000))}  # also tells a test the server answered
    if not alerts:
        return html.Div(t("no_open_alerts", lang), className="alist-empty", **sent)
    rows = []
    for alert in alerts:
        esc = escalations[alert.id]
        buttons = [
            html.Button(
                t(f"alert_{action}", lang),
                n_clicks=0,
                className=f"alist-{action}",
                id={"type": ids.ALERT_ACT, "view": view, "alert": alert.id, "action": action},
            )  # fmt: skip
            for action in actions.get(alert.id, ())
        ]
        rows.append(html.Li(
            # an id makes React key the row by alert, so rows follow their alert when one is
            # added above them (and a countdown never jumps to another alert's row)
            id={"type": ids.ALERT_ROW, "view": view, "alert": alert.id},
            className="alist-row",
            **{"data-alert": alert.id, "data-severity": alert.severity,
               "data-status": alert.status},
            children=[
                html.Button(
                    [html.Span(t(f"severity_{alert.severity}", lang),
                               className=f"alist-badge sev-bg-{alert.severity}"),
                     html.Span(alert_title(alert, lang), className="alist-title")],
                    id={"type": ids.ALERT_ZOOM, "view": view, "alert": alert.id},
                    n_clicks=0, className="alist-zoom", title=t("alert_zoom_hint", lang),
                ),
                html.Div(className="alist-meta", children=[
                    html.Span(t(f"alert_status_{alert.status}", lang),
                              className=f"alist-status st-{alert.status}"),
                    *_escalation_line(esc, alert.status, lang),
                    html.Span(className="alist-age", **{
                        "data-at-ms": str(int(alert.raised_at * 1000)), "data-kind": "age",
                        "data-template": t("alert_age", lang)}),
                    html.Span(places.get(alert.id, ""), className="alist-area"),
                ]),
                html.Div(buttons, className="alist-actions") if buttons else None,
            ],
        ))  # fmt: skip
    return html.Ul(rows, className="alist", **sent)
