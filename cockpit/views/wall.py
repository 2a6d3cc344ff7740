"""The wall (/wall): full screen, dark, for 3840x2160 and unattended for days. Map, KPI tiles,
alert ticker and data age; no controls. It rotates through the child areas of its scope, and a
new critical alert takes the focus, then the rotation resumes."""

from __future__ import annotations

from dash import dcc, html

from cockpit import ids
from cockpit.i18n import t
from cockpit.policy import User
from cockpit.push import push_url
from cockpit.views.operations import badge, base_map, legends, map_layers
from cockpit.webapp import runtime
from layers.grids import grid_values_stores


def rotation_targets(user: User, lang: str) -> list[dict]:
    """The user's area, then each child area, with their bounds (sent once)."""
    areas = runtime().geography().areas
    frame = areas.frame
    out = []
    for area_id in [user.area_id, *[c for c in areas.children(user.area_id)
                                    if areas.level_of(c) != "special"]]:  # fmt: skip
        minx, miny, maxx, maxy = frame.geometry.loc[area_id].bounds
        name = frame.at[area_id, "name_zh" if lang == "zh-CN" else "name_en"]
        out.append({"id": area_id, "name": name, "bounds": [[miny, minx], [maxy, maxx]]})
    return out


def tile(label: str, value_id: str, sub_id: str | None = None) -> html.Div:
    children = [
        html.Div(label, className="tile-label"),
        html.Div("–", id=value_id, className="tile-value"),
    ]
    if sub_id:
        children.append(html.Div("", id=sub_id, className="tile-sub"))
    return html.Div(children, className="tile")


def layout(user: User, lang: str) -> html.Div:
    targets = rotation_targets(user, lang)
    return html.Div(
        className="view view-wall",
        children=[
            html.Div(
                className="wall-head",
                children=[
                    html.Div(targets[0]["name"], id=ids.WALL_AREA, className="wall-area"),
                    html.Div("", id=ids.WALL_CLOCK, className="wall-clock"),
                    html.Span(t("no_data", lang), id=ids.DATA_AGE, className="badge stale"),
                    badge(ids.AGE_GAUGES, t("feed_gauges", lang), lang),
                    badge(ids.AGE_TRUCKS, t("feed_trucks", lang), lang),
                ],
            ),  # fmt: skip
            html.Div(
                className="wall-body",
                children=[
                    html.Div(
                        className="map-wrap",
                        children=[
                            base_map(ids.MAP, map_layers(user, lang), class_name="map wall-map"),
                            html.Div(legends(lang), id=ids.LEGENDS, className="legend"),
                        ],
                    ),
                    html.Div(
                        className="wall-tiles",
                        children=[
                            tile(t("incidents_last_hour", lang), ids.KPI_INCIDENTS),
                            tile(t("open_now", lang), ids.KPI_OPEN),
                            html.Div(
                                [
                                    html.Div(t("open_alerts", lang), className="tile-label"),
                                    html.Div(id=ids.WALL_ALERTS, className="alert-tiles"),
                                ],
                                className="tile",
                            ),
                            tile(t("resolution_24h", lang), ids.WALL_RESOLUTION),
                            tile(t("ssi", lang), ids.WALL_SSI, ids.WALL_SSI + "-n"),
                        ],
                    ),
                ],
            ),  # fmt: skip
            html.Div(
                html.Div(t("no_open_alerts", lang), id=ids.WALL_TICKER, className="ticker-track"),
                className="ticker",
            ),  # fmt: skip
            # the operations map's callbacks feed this map too; these need to exist, unseen
            html.Div(
                hidden=True,
                children=[
                    dcc.Dropdown(id=ids.METRIC, options=["incidents"], value="incidents"),
                    dcc.Dropdown(id=ids.CATEGORY, options=["all"], value="all"),
                dcc.Dropdown(id=ids.HEAT_WINDOW, options=["1h"], value="1h"),
                    html.Div(id=ids.GAUGE_PANEL, children=[]),
                ],
            ),  # fmt: skip
            dcc.Store(id=ids.LIVE_STORE, data={}),
            *grid_values_stores(ids.MAP, push_url()),
            dcc.Store(id=ids.FLEET_STORE, data={}),
            dcc.Store(id=ids.WALL_TARGETS, data=targets),
            dcc.Store(id=ids.WALL_FOCUS, data=None),
            dcc.Store(id=ids.WALL_SHOWN, data=None),
        ],
    )
