"""The operations map (/): the user's grids coloured by a chosen metric, with flood gauges,
muck trucks, sites and zones as switchable layers, each with its legend and data age."""

from __future__ import annotations

import dash_leaflet as dl
from dash import dcc, html

from cockpit import ids
from cockpit.contract import CATEGORIES
from cockpit.i18n import category_label, t, tooltip_labels
from cockpit.live import METRICS
from cockpit.policy import User, authorize, visible_categories
from cockpit.push import push_url
from cockpit.views.alert_list import alert_panel
from cockpit.webapp import runtime
from layers.alerts import PANE as ALERT_PANE
from layers.alerts import PANE_Z as ALERT_PANE_Z
from layers.alerts import alert_layer, alert_legend
from layers.flood import gauge_layer, gauge_legend
from layers.grids import boundary_layer, grid_layer, grid_values_stores, legend
from layers.heat import heat_layer
from layers.incidents import PANE as INCIDENT_PANE
from layers.incidents import incident_labels, incident_layer, incident_legend
from layers.sites import sites_layer, sites_legend
from layers.trucks import trail_layer, truck_layer, truck_legend


def base_map(map_id: str, children: list, class_name: str = "map") -> dl.Map:
    """A Leaflet map on the geography: canvas renderer, no outside tiles unless configured."""
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
        # nothing reads it, and without a center prop its handler throws on every move: the
        # map's moveend listeners registered after it did not run
        trackViewport=False,
        attributionControl=bool(settings.tile_url),
        children=[*tiles, *children],
    )


PANES = {"sites": 410, "boundaries": 415, "trails": 420, INCIDENT_PANE: 430, "gauges": 450,
         ALERT_PANE: ALERT_PANE_Z}  # fmt: skip


def layer_labels(lang: str) -> dict[str, dict[str, str]]:
    return {
        "gauges": {"title": t("layer_gauges", lang), "level": t("gauge_level", lang),
                   **{k: t(f"gauge_{k}", lang) for k in ("normal", "warning", "danger", "nodata")},
                   "lang": lang},
        "trucks": {"title": t("layer_trucks", lang),
                   **{k: t(f"truck_{k}", lang) for k in ("loaded", "empty", "stale")},
                   "lang": lang},
        "sites": {"title": t("layer_sites", lang),
                  **{k: t(f"site_{k}", lang) for k in ("building", "disposal", "forbidden")}},
    }  # fmt: skip


def map_layers(user: User, lang: str) -> list:
    """The overlays of the operations map and the wall, in a layer switcher."""
    version = runtime().geography().version[:16]
    minx, miny, maxx, maxy = runtime().geography().bbox
    labels = layer_labels(lang)
    # Each overlay in its own pane (its own canvas) so the grid fills, restyled every tick,
    # never cover the points and outlines drawn above them.
    panes = [dl.Pane(name=name, style={"zIndex": z}) for name, z in PANES.items()]
    return [
        *panes,
        dl.LayersControl(
            position="topright",
            # dash-leaflet 1.1.3's "overlayremove" handler filters this prop as it was at the
            # first render and throws when it is unset: Leaflet then stops half-way through
            # removing the layer, and the grids came back on their next update. Nothing reads it.
            overlays=[],
            children=[
                dl.Overlay(grid_layer(f"/geo/grid.geojson?v={version}", tooltip_labels(lang)),
                           name=t("layer_grids", lang), checked=True),
                dl.Overlay(heat_layer(ids.HEAT_LAYER, "1h", [[miny, minx], [maxy, maxx]],
                                      "/heat/1h.png"),
                           name=t("layer_heat", lang), checked=True),
                *incident_overlay(user, lang),
                dl.Overlay(sites_layer(ids.SITES_LAYER, "/geo/reference.geojson?layer=sites"),
                           name=t("layer_sites", lang), checked=True),
                dl.Overlay(trail_layer(ids.TRAIL_LAYER), name=t("layer_trails", lang),
                           checked=True),
                dl.Overlay(truck_layer(ids.TRUCK_LAYER, labels["trucks"]),
                           name=t("layer_trucks", lang), checked=True),
                dl.Overlay(gauge_layer(ids.GAUGE_LAYER, "/geo/reference.geojson?layer=gauges",
                                       labels["gauges"]),
                           name=t("layer_gauges", lang), checked=True),
                dl.Overlay(alert_layer(ids.ALERT_LAYER, lang), name=t("layer_alerts", lang),
                           checked=True),
            ],
        ),  # fmt: skip
        boundary_layer(f"/geo/boundaries.geojson?v={version}"),
    ]


def incident_overlay(user: User, lang: str) -> list:
    """The incident point layer, for levels that may see single incidents (not the wall)."""
    if not authorize(user, "view_incidents"):
        return []
    return [dl.Overlay(incident_layer(ids.INCIDENT_LAYER, incident_labels(lang)),
                       name=t("layer_incidents", lang), checked=True)]  # fmt: skip


def legends(lang: str, user: User | None = None) -> list:
    labels = layer_labels(lang)
    points = authorize(user, "view_incidents")
    return [
        html.Div(legend([1, 2, 3, 4, 5, 6, 7], t("legend_title", lang), "0"), id=ids.LEGEND),
        html.Div(id=ids.HEAT_LEGEND),
        alert_legend(lang, ids.ALERT_LAYER_KEY),
        *([html.Div(incident_legend(lang, categories=list(visible_categories(user))),
                    id=ids.INCIDENT_LEGEND)] if points else []),  # fmt: skip
        gauge_legend(labels["gauges"]),
        truck_legend(labels["trucks"]),
        sites_legend(labels["sites"]),
    ]


def badge(badge_id: str, label: str, lang: str) -> html.Span:
    return html.Span([html.B(label + " "), html.Span(t("no_data", lang), id=badge_id)],
                     className="badge stale", id=badge_id + "-wrap")  # fmt: skip


def layout(user: User, lang: str) -> html.Div:
    categories = [c for c in CATEGORIES if c in visible_categories(user)]
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
                    html.Div(className="kpi", children=[
                        html.Span(t("open_now", lang), className="kpi-label"),
                        html.Span("–", id=ids.KPI_OPEN, className="kpi-value"),
                    ]),  # fmt: skip
                    html.Span(t("no_data", lang), id=ids.DATA_AGE, className="badge stale"),
                    badge(ids.AGE_GAUGES, t("feed_gauges", lang), lang),
                    badge(ids.AGE_TRUCKS, t("feed_trucks", lang), lang),
                    dcc.Dropdown(
                        id=ids.METRIC,
                        options=[{"label": t(label, lang), "value": m}
                                 for m, (label, _fmt) in METRICS.items()],  # fmt: skip
                        value="incidents", clearable=False, className="picker",
                    ),  # fmt: skip
                    dcc.Dropdown(
                        id=ids.HEAT_WINDOW,
                        options=[{"label": t(f"heat_window_{w}", lang), "value": w}
                                 for w in ("15m", "1h", "24h")],  # fmt: skip
                        value="1h", clearable=False, className="picker picker-small",
                    ),  # fmt: skip
                    dcc.Dropdown(
                        id=ids.CATEGORY,
                        options=[{"label": t("all_categories", lang), "value": "all"}]
                        + [{"label": category_label(c, lang), "value": c} for c in categories],
                        value="all", clearable=False, className="picker",
                    ),  # fmt: skip
                ],
            ),
            html.Div(className="map-wrap", children=[  # the wall reuses these parts
                base_map(ids.MAP, map_layers(user, lang)),
                html.Div(legends(lang, user), id=ids.LEGENDS, className="legend"),
                # the trend graph comes with a click (callbacks.live_map.gauge_trend)
                html.Div(id=ids.GAUGE_PANEL, className="side-panel", hidden=True, children=[]),
                *([alert_panel("ops", lang)] if authorize(user, "view_alerts") else []),
            ]),  # fmt: skip
            dcc.Store(id=ids.LIVE_STORE, data={}),
            *grid_values_stores(ids.MAP, push_url()),
            dcc.Store(id=ids.FLEET_STORE, data={}),
            dcc.Store(id=ids.INCIDENT_STORE, data={}),
        ],
    )
