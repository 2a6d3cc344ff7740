"""Building sites, approved disposal sites (消纳场) and forbidden zones for muck trucks: static
reference shapes, sent once."""

from __future__ import annotations

import dash_leaflet as dl
from dash import html

COLORS = {"building": "#7c3aed", "disposal": "#0d9488", "forbidden": "#e11d48"}


def sites_layer(layer_id: str, url: str) -> dl.GeoJSON:
    return dl.GeoJSON(
        id=layer_id,
        url=url,
        pane="sites",
        style={"variable": "cockpitMap.siteStyle"},
        onEachFeature={"variable": "cockpitMap.siteTooltip"},
        hideout={"colors": COLORS},
    )


def sites_legend(labels: dict[str, str]) -> html.Div:
    rows = [
        html.Div([html.Span(className="swatch", style={"background": COLORS[k]}),
                  html.Span(labels[k])], className="legend-row")  # fmt: skip
        for k in ("building", "disposal", "forbidden")
    ]
    return html.Div([html.Div(labels["title"], className="legend-title"), *rows])
