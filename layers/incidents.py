"""Incident points: the newest incidents of the user's scope for the chosen window and category,
clustered in the browser. With all categories shown, a point's colour is its category (what
happens where); with one category chosen, its status (how far the work is). Either way,
resolved and closed incidents are drawn faded.

The points travel as ``data`` (a GeoJSON FeatureCollection, at most ``MAX_POINTS`` features with
four short properties each); clustering, colours and tooltips happen in assets/incidents.js, which
builds the tooltip DOM with ``textContent`` only. Nothing personal is ever put in a feature: only
category, status, report time and grid name leave the server.
"""

from __future__ import annotations

from typing import Any

import dash_leaflet as dl
import redis
from dash import html

from cockpit.areastore import Geography
from cockpit.contract import CATEGORIES, STATUSES
from cockpit.i18n import category_label, t
from cockpit.incidents import recent_incidents
from cockpit.policy import User
from cockpit.views.officer import CATEGORY_COLORS, area_name, local_time, status_label

# Open incidents warm, finished ones cool, so a cluster's colour says "work waiting" at a glance.
STATUS_COLORS = {"new": "#dc2626", "dispatched": "#ea580c", "handling": "#ca8a04",
                 "resolved": "#16a34a", "closed": "#64748b"}  # fmt: skip
# The newest this many incidents are drawn: enough to see where things happen now (the heatmap
# shows the whole window), small enough that one update stays ~150 KB and redraws in a frame.
MAX_POINTS = 1000
WINDOWS_MS = {"15m": 15 * 60_000, "1h": 3_600_000, "24h": 24 * 3_600_000}
FIRST_SPAN_MS = 2 * 60_000  # the newest incidents are looked for here first, then 8x wider
PANE = "incidents"
FINISHED = ("resolved", "closed")  # drawn faded


def colour_by(category: str | None) -> str:
    """What a point's colour means: its category when all are shown, else its status."""
    return "category" if category is None else "status"


def incident_labels(lang: str) -> dict[str, Any]:
    """The words the markers' tooltips and clusters need in the browser (sent with the layout)."""
    return {
        "lang": lang,
        "categories": {c: category_label(c, lang) for c in CATEGORIES},
        "statuses": {s: status_label(s, lang) for s in STATUSES},
        "cluster": t("incidents_cluster_tip", lang),
    }


def incident_layer(layer_id: str, labels: dict[str, Any]) -> dl.GeoJSON:
    """The point layer: empty until its callback sends the points; clustered by supercluster."""
    return dl.GeoJSON(
        id=layer_id,
        data={"type": "FeatureCollection", "features": []},
        cluster=True,
        zoomToBoundsOnClick=True,
        superClusterOptions={"radius": 56, "maxZoom": 17},
        pointToLayer={"variable": "cockpitIncidents.point"},
        clusterToLayer={"variable": "cockpitIncidents.cluster"},
        onEachFeature={"variable": "cockpitIncidents.tooltip"},
        hideout={"colors": {"category": CATEGORY_COLORS, "status": STATUS_COLORS},
                 "by": "category", "finished": list(FINISHED), "labels": labels, "pane": PANE},
    )


def newest_incidents(
    r: redis.Redis,
    geo: Geography,
    user: User,
    window: str,
    category: str | None,
    now_ms: int,
    limit: int = MAX_POINTS,
) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``limit`` incidents of ``user``'s scope in the window (newest first), and
    whether there were more. ``category`` None means every category the user may see.

    cockpit.incidents applies scope, categories and personal-data rules. The newest incidents
    are looked for in the last 2 minutes first, then in 8x wider spans up to the window: with a
    busy feed, the newest 1,000 of a 24 h window lie in its last minutes, and reading the whole
    day's index every few seconds would cost far more than the map shows.
    """
    window_ms = WINDOWS_MS[window]
    categories = None if category is None else [category]
    span = FIRST_SPAN_MS
    while True:
        span = min(span, window_ms)
        found = recent_incidents(r, geo, user, now_ms - span, now_ms, categories, limit=limit + 1)
        if len(found) > limit or span >= window_ms:
            return found[:limit], len(found) > limit
        span *= 8


def incident_features(records: list[dict[str, Any]], geo: Geography, lang: str) -> dict:
    """GeoJSON of the points: category, status, report time and grid name; nothing else."""
    features = []
    for rec in records:
        if rec.get("lat") is None or rec.get("lon") is None:
            continue
        features.append({
            "type": "Feature",
            "id": str(rec["id"]),
            "geometry": {"type": "Point",
                         "coordinates": [round(float(rec["lon"]), 6), round(float(rec["lat"]), 6)]},
            "properties": {
                "c": str(rec.get("category", "other")),
                "s": str(rec.get("status", "")),
                "t": local_time(rec.get("ts")),
                "g": area_name(geo, str(rec.get("grid", "")), lang),
            },
        })  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


def incident_legend(lang: str, window: str = "1h", category: str | None = None,
                    categories: list[str] | None = None, shown: int | None = None,
                    capped: bool = False) -> html.Div:  # fmt: skip
    """Title with the window, a dot per colour in use (the ``categories`` the user may see, or
    the statuses when one ``category`` is chosen), and how many points are drawn; when capped
    it says only the newest are shown, so an empty-looking area is not read as a quiet one."""
    when = t(f"heat_window_{window}", lang)
    if colour_by(category) == "category":
        title = t("incidents_title_category", lang, window=when)
        keys = [c for c in CATEGORIES if categories is None or c in categories]
        colors = [(CATEGORY_COLORS[c], category_label(c, lang)) for c in keys]
    else:
        assert category is not None
        title = t("incidents_title_status", lang, window=when,
                  category=category_label(category, lang))  # fmt: skip
        colors = [(STATUS_COLORS[s], status_label(s, lang)) for s in STATUSES]
    rows = [
        html.Div([html.Span(className="dot", style={"background": color}), html.Span(label)],
                 className="legend-row")  # fmt: skip
        for color, label in colors
    ]
    extra = [
        html.Div([html.Span(className="dot incident-faded"),
                  html.Span(t("incidents_finished", lang))], className="legend-row"),
        html.Div([html.Span(className="incident-cluster-swatch"),
                  html.Span(t("incidents_cluster", lang))], className="legend-row"),
    ]  # fmt: skip
    if shown is not None:
        if capped:
            note = t("incidents_capped", lang, n=f"{shown:,}")
        elif shown:
            note = t("incidents_shown", lang, n=f"{shown:,}")
        else:
            note = t("incidents_none", lang)
        extra.append(html.Div(note, className="legend-row incident-count"
                              + (" incident-capped" if capped else "")))  # fmt: skip
    return html.Div([html.Div(title, className="legend-title"),
                     html.Div(rows, className="incident-keys"), *extra],
                    className="incident-legend")  # fmt: skip
