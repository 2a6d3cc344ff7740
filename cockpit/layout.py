"""The page layout, built per request for the signed-in user (a function, so every load starts
from fresh state and nothing mutable lives at module level)."""

from __future__ import annotations

import dash_leaflet as dl
from dash import dcc, html

from cockpit import ids
from cockpit.guard import session_user
from cockpit.i18n import badge_labels, t, tooltip_labels
from cockpit.webapp import request_lang, runtime
from layers.grids import boundary_layer, grid_layer, legend


def serve_layout() -> html.Div:
    user = session_user()
    if user is None:
        return html.Div("Not signed in.", className="signed-out")
    settings = runtime().settings
    lang = request_lang(user)
    geo = runtime().geography()
    version = geo.version[:16]
    minx, miny, maxx, maxy = geo.bbox
    tiles = (
        [dl.TileLayer(url=settings.tile_url, attribution=settings.tile_attribution)]
        if settings.tile_url
        else []
    )
    return html.Div(
        className="cockpit",
        lang=lang,
        children=[
            html.Header(
                className="topbar",
                children=[
                    html.H1(t("app_title", lang)),
                    html.Div(className="kpi", children=[
                        html.Span(t("incidents_last_hour", lang), className="kpi-label"),
                        html.Span("–", id=ids.KPI_INCIDENTS, className="kpi-value"),
                    ]),  # fmt: skip
                    html.Span(t("no_data", lang), id=ids.DATA_AGE, className="badge stale"),
                    html.Span(f"{t('user', lang)}: {user.name}", className="who"),
                    html.A(
                        t("language", lang),
                        href="/lang/" + ("en" if lang == "zh-CN" else "zh-CN"),
                        className="lang-switch",
                    ),
                ],
            ),
            dl.Map(
                id=ids.MAP,
                className="map",
                preferCanvas=True,
                bounds=[[miny, minx], [maxy, maxx]],
                attributionControl=bool(settings.tile_url),
                children=[
                    *tiles,
                    grid_layer(f"/geo/grid.geojson?v={version}", tooltip_labels(lang)),
                    boundary_layer(f"/geo/boundaries.geojson?v={version}"),
                ],
            ),
            html.Div(
                legend([1, 2, 3, 4, 5, 6, 7], t("legend_title", lang), "0"),
                id=ids.LEGEND,
                className="legend",
            ),
            dcc.Interval(id=ids.TICK, interval=settings.refresh_ms),
            dcc.Interval(id=ids.CLOCK, interval=1000),
            dcc.Store(id=ids.LIVE_STORE, data={}),
            dcc.Store(id=ids.LABELS, data=badge_labels(lang)),
        ],
    )
