"""The operations map (/): every grid of the user's scope coloured by live counts."""

from __future__ import annotations

import dash_leaflet as dl
from dash import dcc, html

from cockpit import ids
from cockpit.i18n import t, tooltip_labels
from cockpit.policy import User
from cockpit.webapp import runtime
from layers.grids import boundary_layer, grid_layer, legend


def base_map(map_id: str, children: list, class_name: str = "map") -> dl.Map:
    """A Leaflet map on the user's geography: canvas renderer, no outside tiles unless set."""
    settings = runtime().settings
    minx, miny, maxx, maxy = runtime().geography().bbox
    tiles = (
        [dl.TileLayer(url=settings.tile_url, attribution=settings.tile_attribution)]
        if settings.tile_url
        else []
    )
    return dl.Map(
        id=map_id,
        className=class_name,
        preferCanvas=True,
        bounds=[[miny, minx], [maxy, maxx]],
        attributionControl=bool(settings.tile_url),
        children=[*tiles, *children],
    )


def layout(user: User, lang: str) -> html.Div:
    version = runtime().geography().version[:16]
    return html.Div(
        className="view view-operations",
        children=[
            html.Div(
                className="statusbar",
                children=[
                    html.Div(className="kpi", children=[
                        html.Span(t("incidents_last_hour", lang), className="kpi-label"),
                        html.Span("–", id=ids.KPI_INCIDENTS, className="kpi-value"),
                    ]),  # fmt: skip
                    html.Span(t("no_data", lang), id=ids.DATA_AGE, className="badge stale"),
                ],
            ),
            base_map(ids.MAP, [
                grid_layer(f"/geo/grid.geojson?v={version}", tooltip_labels(lang)),
                boundary_layer(f"/geo/boundaries.geojson?v={version}"),
            ]),  # fmt: skip
            html.Div(
                legend([1, 2, 3, 4, 5, 6, 7], t("legend_title", lang), "0"),
                id=ids.LEGEND,
                className="legend",
            ),
            dcc.Store(id=ids.LIVE_STORE, data={}),
        ],
    )
