"""Flood gauges: a point per gauge coloured by its level against its warning and danger
levels; the thresholds travel once with the shapes, the levels every tick in ``hideout``."""

from __future__ import annotations

import dash_leaflet as dl
from dash import html

COLORS = {"normal": "#2563eb", "warning": "#f59e0b", "danger": "#dc2626", "nodata": "#9ca3af"}


def gauge_layer(layer_id: str, url: str, labels: dict[str, str]) -> dl.GeoJSON:
    return dl.GeoJSON(
        id=layer_id,
        url=url,
        pane="gauges",
        pointToLayer={"variable": "cockpitMap.gaugePoint"},
        onEachFeature={"variable": "cockpitMap.gaugeTooltip"},
        hideout={"levels": {}, "colors": COLORS, "labels": labels},
    )


def gauge_legend(labels: dict[str, str]) -> html.Div:
    rows = [
        html.Div([html.Span(className="dot", style={"background": COLORS[k]}),
                  html.Span(labels[k])], className="legend-row")  # fmt: skip
        for k in ("normal", "warning", "danger", "nodata")
    ]
    return html.Div([html.Div(labels["title"], className="legend-title"), *rows])
