"""Alert markers: one point per open alert in the viewer's scope, coloured by severity, with a
tooltip of title, severity, status, escalation level and countdown.

Severity colours are defined once, as CSS custom properties (``--sev-<severity>`` in
assets/alerts.css): the markers (assets/alerts.js reads them), the legends, the alert lists and
the wall's tiles and ticker all use them. Feed text (titles) reaches the browser as data and is
put on screen with textContent only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

import dash_leaflet as dl
from dash import dcc, html

from cockpit.alerts.escalation import CHAIN
from cockpit.alerts.model import SEVERITIES, STATUSES, Alert
from cockpit.alerts.screen import Place, escalation, place
from cockpit.i18n import t
from cockpit.shared import SharedMemo

if TYPE_CHECKING:
    from cockpit.areastore import Geography

#: Most severe first: the order of legends and tiles.
SEVERITY_ORDER: tuple[str, ...] = tuple(reversed(SEVERITIES))
PANE = "alerts"
PANE_Z = 460  # above the gauges (450): an alert marker is never hidden under a reading


def alert_title(alert: Alert, lang: str) -> str:
    """The alert's title in ``lang``, falling back to the other language, then the kind."""
    first, second = (alert.title_zh, alert.title_en) if lang == "zh-CN" else (
        alert.title_en, alert.title_zh)  # fmt: skip
    return first or second or t(f"alert_kind_{alert.kind}", lang)


def alert_labels(lang: str) -> dict[str, Any]:
    """Words the marker tooltips need in the browser (sent once with the layout)."""
    return {
        "lang": lang,
        "severity": {s: t(f"severity_{s}", lang) for s in SEVERITIES},
        "status": {s: t(f"alert_status_{s}", lang) for s in STATUSES},
        "level": {lv: t(f"level_{lv}", lang) for lv in CHAIN},
        "escalated_to": t("alert_escalated_to", lang),
        "countdown": t("alert_countdown", lang),
        "age": t("alert_age", lang),
    }


def alert_layer(layer_id: str, lang: str) -> dl.GeoJSON:
    """An empty point layer; the callbacks in callbacks/alert_layer.py fill it (on change)."""
    return dl.GeoJSON(
        id=layer_id,
        data={"type": "FeatureCollection", "features": []},
        pointToLayer={"variable": "cockpitAlerts.marker"},
        onEachFeature={"variable": "cockpitAlerts.tooltip"},
        hideout={"labels": alert_labels(lang), "pane": PANE},
    )


def alert_features(
    alerts: Iterable[Alert], geo: Geography, visible_grids: Collection[str], lang: str,
    now: float,
) -> dict[str, Any]:  # fmt: skip
    """A GeoJSON FeatureCollection with one point per alert that has a place on the map.

    Times are epoch milliseconds of the server's clock; ``sent_ms`` lets the browser count down
    on the server's time whatever its own clock says.
    """
    features = []
    sent_ms = int(now * 1000)
    for alert in alerts:
        spot = _placed(alert, geo, visible_grids)
        if spot is None:
            continue
        esc = escalation(alert, now)
        features.append({
            "type": "Feature",
            "id": alert.id,
            "geometry": {"type": "Point", "coordinates": [round(spot.lon, 6), round(spot.lat, 6)]},
            "properties": {
                "title": alert_title(alert, lang), "severity": alert.severity,
                "status": alert.status, "level": esc.level, "next_level": esc.next_level,
                "next_ms": int(esc.next_at * 1000) if esc.next_at is not None else None,
                "raised_ms": int(alert.raised_at * 1000), "sent_ms": sent_ms,
            },
        })  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


# Where each alert's marker goes, by alert and what the viewer sees: with a busy feed the open
# alerts change every second, but mostly by a few, and placing 200 (pandas and shapely per
# alert) cost a web process about a third of a core.
_PLACES = SharedMemo(8192)


def _placed(alert: Alert, geo: Geography, visible_grids: Collection[str]) -> Place | None:
    visible = visible_grids if isinstance(visible_grids, frozenset) else frozenset(visible_grids)
    key = (geo.version, visible, alert.id, alert.updated_at, tuple(alert.area_grids),
           repr(alert.geometry))  # fmt: skip
    return _PLACES.get(key, lambda: place(alert, geo, visible))


def severity_rows(lang: str) -> list[html.Div]:
    """One legend row per severity, most severe first, in the shared severity colours."""
    return [
        html.Div(
            [
                html.Span(className=f"swatch sev-swatch sev-bg-{s}"),
                html.Span(t(f"severity_{s}", lang)),
            ],
            className="legend-row",
        )  # fmt: skip
        for s in SEVERITY_ORDER
    ]


def alert_legend(lang: str, key_id: str) -> html.Div:
    """The legend of the alert markers, with the store of what the layer shows (kept here
    because the legend sits on every page that has the layer: the operations map and the
    wall)."""
    return html.Div([
        html.Div(t("layer_alerts", lang), className="legend-title"),
        *severity_rows(lang),
        dcc.Store(id=key_id, data=None),
    ], className="alert-legend")  # fmt: skip
