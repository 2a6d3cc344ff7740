"""The leader view (/leader): drill city → district → street → community → grid, see indicator
trends of the chosen area, rank and compare the areas below it.

This module builds components from data it is given (the layout and pure builders); the
callbacks in callbacks/leader.py read Redis, check every area id against the policy and call
these builders. Definitions of the figures: docs/indicators.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import dash_leaflet as dl
import plotly.graph_objects as go
from dash import dash_table, dcc, html

from cockpit import ids
from cockpit.i18n import t
from cockpit.indicators import LOCAL_OFFSET_MS, MIN_SAMPLE, RANGES, AreaFigures, Report
from cockpit.policy import User, authorize, may_compare
from cockpit.views.alert_list import alert_panel
from cockpit.webapp import runtime
from geo.areas import LEVELS, AreaSet
from layers.alerts import PANE as ALERT_PANE
from layers.alerts import PANE_Z as ALERT_PANE_Z
from layers.alerts import alert_layer
from layers.grids import COLORS, ZERO_COLOR, class_breaks

METRICS = ("incidents", "open", "rate", "index")
# Higher is better for the rate and the index: red (low) to green (high), fixed classes so
# colours mean the same on every screen.
GOOD_COLORS = ["#d73027", "#fc8d59", "#fee08b", "#d9ef8b", "#91cf60", "#1a9850"]
GOOD_BREAKS = {"rate": [0, 50, 70, 80, 90, 95], "index": [0, 50, 60, 70, 80, 90]}
STEP_KEYS = {"24h": "leader_step_m15", "7d": "leader_step_h1", "30d": "leader_step_d1",
             "90d": "leader_step_d1"}  # fmt: skip
# leave out the chart-editing tools; keep zoom, pan, reset and the PNG download
GRAPH_CONFIG = {
    "displaylogo": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}
PAPER = "#111827"
AXIS = "#9ca3af"


def name_of(areas: AreaSet, area_id: str, lang: str) -> str:
    return str(areas.frame.at[area_id, "name_zh" if lang == "zh-CN" else "name_en"])


def tiling_children(areas: AreaSet, area_id: str) -> list[str]:
    """Children in the counted hierarchy (special-purpose grids carry no counts)."""
    return [c for c in areas.children(area_id) if areas.level_of(c) in LEVELS]


# -- layout -------------------------------------------------------------------------------


def layout(user: User, lang: str) -> html.Div:
    """The page for ``user``; the area store starts empty so the URL (``?area=``) is read once,
    on the server, through the same check as every drill."""
    compare = may_compare(user)
    return html.Div(
        className="view view-leader",
        children=[
            dcc.Store(id=ids.LEADER_AREA, data=None),
            dcc.Store(id=ids.LEADER_TOGGLED, data=[]),
            dcc.Interval(id=ids.LEADER_REFRESH, interval=30_000),
            dcc.Download(id=ids.LEADER_DOWNLOAD),
            _toolbar(lang),
            html.Div(id=ids.LEADER_KPIS, className="leader-kpis"),
            html.Div(
                className="leader-body",
                children=[
                    _side(lang, authorize(user, "view_alerts")),
                    _centre(lang, user.area_id, compare, authorize(user, "export")),
                    _charts(lang, compare),
                ],
            ),
        ],
    )


def _control(label: str, options: list[dict], value: str, id_: str) -> html.Div:
    return html.Div(
        className="leader-control",
        children=[
            html.Span(label, className="leader-control-label"),
            dcc.RadioItems(options, value, id=id_, inline=True, className="leader-radio"),
        ],
    )


def _toolbar(lang: str) -> html.Div:
    ranges = [{"label": t(f"leader_range_{r}", lang), "value": r} for r in RANGES]
    metrics = [{"label": t(f"leader_m_{m}", lang), "value": m} for m in METRICS]
    return html.Div(
        className="leader-bar",
        children=[
            html.Button(t("leader_up", lang), id=ids.LEADER_UP, className="leader-up"),
            html.Nav(id=ids.LEADER_CRUMBS, className="leader-crumbs"),
            _control(t("leader_range", lang), ranges, "7d", ids.LEADER_RANGE),
            _control(t("leader_metric", lang), metrics, "incidents", ids.LEADER_METRIC),
        ],
    )


def _side(lang: str, alerts: bool) -> html.Aside:
    # the alert list of the area drilled into (callbacks/alert_list.py), above the tree
    panel = [alert_panel("leader", lang, [dcc.Store(id=ids.LEADER_ALERT_LAYER_KEY)])]
    return html.Aside(
        className="leader-side",
        children=[
            *(panel if alerts else []),
            html.H2(t("leader_tree", lang)),
            html.Div(id=ids.LEADER_TREE, className="leader-tree"),
            html.P(t("leader_click_hint", lang), className="leader-hint"),
        ],
    )


def _centre(lang: str, area_id: str, compare: bool, export: bool) -> html.Section:
    head = html.Div(
        className="leader-ranking-head",
        children=[
            html.H2(id=ids.LEADER_RANKING),
            html.Button(
                t("leader_export", lang),
                id=ids.LEADER_EXPORT,
                className="leader-export",
                hidden=not (export and compare),
            ),
        ],
    )
    return html.Section(
        className="leader-centre",
        children=[
            html.Div(
                className="leader-map-box",
                children=[leader_map(area_id, lang),
                          html.Div(id=ids.LEADER_LEGEND, className="legend")],
            ),
            html.Div(
                className="leader-ranking",
                children=[
                    head,
                    # always in the page (the callback fills it), shown only to comparers
                    html.Div(ranking_table(lang), className="leader-table-box", hidden=not compare),
                    html.P(t("leader_no_compare", lang), className="notice", hidden=compare),
                ],
            ),
        ],
    )


def _charts(lang: str, compare: bool) -> html.Section:
    graph = {
        "config": GRAPH_CONFIG,
        "className": "leader-chart",
        "mathjax": False,
        "responsive": True,
    }
    return html.Section(
        className="leader-charts",
        children=[
            dcc.Checklist(
                [{"label": t("leader_compare", lang), "value": "on"}],
                [],
                id=ids.LEADER_COMPARE,
                className="leader-compare",
                style={} if compare else {"display": "none"},
            ),
            dcc.Graph(id=ids.LEADER_CHART_INCIDENTS, **graph),
            dcc.Graph(id=ids.LEADER_CHART_RATE, **graph),
            dcc.Graph(id=ids.LEADER_CHART_INDEX, **graph),
        ],
    )


def children_geojson(areas: AreaSet, area_id: str) -> dict:
    """Shapes of the area's children, or of the area itself when it has none (a grid)."""
    kids = tiling_children(areas, area_id) or [area_id]
    return areas.to_geojson(sorted({areas.level_of(k) for k in kids}), ids=set(kids))


def leader_map(area_id: str, lang: str = "en") -> dl.Map:
    """A map of the chosen area's children; geometry arrives with each drill (a few dozen
    shapes at most), colours through ``hideout``. It opens on ``area_id``'s children (an empty
    layer cannot be zoomed to)."""
    settings = runtime().settings
    geo = runtime().geography()
    minx, miny, maxx, maxy = geo.bbox
    tiles = (
        [dl.TileLayer(url=settings.tile_url, attribution=settings.tile_attribution)]
        if settings.tile_url
        else []
    )
    layer = dl.GeoJSON(
        id=ids.LEADER_LAYER,
        data=children_geojson(geo.areas, area_id),
        zoomToBounds=True,
        style={"variable": "cockpitLeader.areaStyle"},
        onEachFeature={"variable": "cockpitLeader.areaTooltip"},
        hoverStyle={"variable": "cockpitLeader.areaHover"},
        hideout={"values": {}, "text": {}, "breaks": [], "colors": COLORS, "zero": ZERO_COLOR,
                 "lang": "en", "label": ""},
    )  # fmt: skip
    return dl.Map(
        id=ids.LEADER_MAP,
        className="leader-map",
        preferCanvas=True,
        bounds=[[miny, minx], [maxy, maxx]],
        trackViewport=False,  # nothing reads it, and without a center prop it throws on move
        attributionControl=bool(settings.tile_url),
        children=[*tiles, layer, dl.Pane(name=ALERT_PANE, style={"zIndex": ALERT_PANE_Z}),
                  alert_layer(ids.LEADER_ALERT_LAYER, lang)],  # fmt: skip
    )


ONE_DECIMAL = {"type": "numeric", "format": {"specifier": ".1f"}}


def ranking_table(lang: str) -> dash_table.DataTable:
    columns = [
        {"id": "name", "name": t("leader_col_area", lang)},
        {"id": "incidents", "name": t("leader_col_incidents", lang), "type": "numeric"},
        {"id": "open", "name": t("leader_col_open", lang), "type": "numeric"},
        {"id": "rate", "name": t("leader_col_rate", lang), **ONE_DECIMAL},
        {"id": "index", "name": t("leader_col_index", lang), **ONE_DECIMAL},
        {"id": "safety", "name": t("leader_col_safety", lang), **ONE_DECIMAL},
        {"id": "satisfaction", "name": t("leader_col_satisfaction", lang), **ONE_DECIMAL},
        {"id": "n", "name": t("leader_col_n", lang), "type": "numeric"},
    ]
    return dash_table.DataTable(
        id=ids.LEADER_TABLE,
        columns=columns,
        data=[],
        sort_action="native",
        sort_by=[{"column_id": "incidents", "direction": "desc"}],
        page_action="none",
        style_table={"height": "100%", "overflowY": "auto"},
        style_as_list_view=True,
        style_header={"backgroundColor": "#1f2937", "color": "#e5e7eb", "fontWeight": "600",
                      "border": "none", "whiteSpace": "normal", "height": "auto"},
        style_cell={"backgroundColor": PAPER, "color": "#e5e7eb", "border": "none",
                    "borderBottom": "1px solid #1f2937", "padding": "4px 8px",
                    "fontFamily": "inherit", "fontSize": "14px", "textAlign": "right",
                    "minWidth": "60px"},
        style_cell_conditional=[{"if": {"column_id": "name"}, "textAlign": "left",
                                 "minWidth": "140px"}],
    )  # fmt: skip


# -- builders -----------------------------------------------------------------------------


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def table_rows(areas: AreaSet, figures: Sequence[AreaFigures], lang: str) -> list[dict]:
    """One row per area; empty cells (None) where there is no rate or not enough answers."""
    return [
        {
            "id": f.area_id,
            "name": name_of(areas, f.area_id, lang),
            "incidents": f.incidents,
            "open": f.open_now,
            "rate": _round(f.resolution_rate),
            "index": _round(f.survey.combined),
            "safety": _round(f.survey.safety),
            "satisfaction": _round(f.survey.satisfaction),
            "n": f.survey.n,
        }
        for f in figures
    ]


def metric_values(figures: Sequence[AreaFigures], metric: str) -> dict[str, float | None]:
    """The value each area is coloured by."""
    pick = {
        "incidents": lambda f: f.incidents,
        "open": lambda f: f.open_now,
        "rate": lambda f: _round(f.resolution_rate),
        "index": lambda f: _round(f.survey.combined),
    }[metric]
    return {f.area_id: pick(f) for f in figures}


def map_hideout(figures: Sequence[AreaFigures], metric: str, lang: str) -> dict:
    """Colours and tooltip texts of the children (no geometry)."""
    values = metric_values(figures, metric)
    if metric in GOOD_BREAKS:
        breaks, colors = GOOD_BREAKS[metric], GOOD_COLORS
    else:
        breaks, colors = class_breaks(v for v in values.values() if v), COLORS
    text = {f.area_id: tooltip_text(f, lang) for f in figures}
    return {"values": values, "text": text, "breaks": breaks, "colors": colors,
            "zero": ZERO_COLOR, "lang": lang, "label": t(f"leader_m_{metric}", lang),
            "zeroIsNone": metric not in GOOD_BREAKS}  # fmt: skip


def tooltip_text(f: AreaFigures, lang: str) -> list[str]:
    """Lines under the area's name in its tooltip (plain text; the browser sets textContent)."""
    return [
        f"{t('leader_m_incidents', lang)}: {f.incidents:,}",
        f"{t('leader_m_open', lang)}: {f.open_now:,}",
        f"{t('leader_m_rate', lang)}: {fmt_rate(f.resolution_rate, lang)}",
        f"{t('leader_m_index', lang)}: {fmt_index(f.survey.combined, f.survey.n, lang)}",
    ]


def legend(metric: str, hideout: dict, lang: str) -> html.Div:
    breaks, colors = hideout["breaks"], hideout["colors"]
    rows = []
    if hideout.get("zeroIsNone"):
        rows.append(("0", ZERO_COLOR))
    else:
        rows.append((t("leader_not_enough", lang) if metric == "index" else "–", ZERO_COLOR))
    for k, low in enumerate(breaks):
        high = breaks[k + 1] if k + 1 < len(breaks) else None
        unit = "%" if metric == "rate" else ""
        if high is None:
            text = f"≥ {low}{unit}"
        elif metric in GOOD_BREAKS:
            text = f"{low}–{high}{unit}"
        else:
            text = f"{low}" if high - 1 == low else f"{low}–{high - 1}"
        rows.append((text, colors[min(k, len(colors) - 1)]))
    return html.Div([
        html.Div(t(f"leader_m_{metric}", lang), className="legend-title"),
        *[html.Div([html.Span(className="swatch", style={"background": c}), html.Span(x)],
                   className="legend-row") for x, c in rows],
    ])  # fmt: skip


def fmt_rate(rate: float | None, lang: str) -> str:
    return t("leader_no_rate", lang) if rate is None else f"{rate:.1f} %"


def fmt_index(value: float | None, n: int, lang: str) -> str:
    if value is None:
        return t("leader_not_enough_n", lang, n=n, m=MIN_SAMPLE)
    return f"{value:.1f} ({t('leader_n', lang, n=n)})"


def kpis(report: Report, lang: str) -> list[html.Div]:
    a = report.area
    s = a.survey

    def tile(label: str, value: str, sub: str = "", kind: str = "") -> html.Div:
        return html.Div(className=f"leader-kpi {kind}", children=[
            html.Span(label, className="kpi-label"),
            html.Span(value, className="kpi-value"),
            html.Span(sub, className="kpi-sub"),
        ])  # fmt: skip

    def index_value(v: float | None) -> str:
        return "–" if v is None else f"{v:.1f}"

    sample = t("leader_n", lang, n=s.n) if s.enough else t("leader_not_enough_n", lang, n=s.n,
                                                             m=s.min_sample)  # fmt: skip
    return [
        tile(t("leader_m_incidents", lang), f"{a.incidents:,}", kind="kpi-incidents"),
        tile(t("leader_m_rate", lang), fmt_rate(a.resolution_rate, lang), kind="kpi-rate"),
        tile(t("leader_m_open", lang), f"{a.open_now:,}", kind="kpi-open"),
        tile(t("leader_m_index", lang), index_value(s.combined), sample, kind="kpi-index"),
        tile(t("leader_safety", lang), index_value(s.safety), kind="kpi-safety"),
        tile(t("leader_satisfaction", lang), index_value(s.satisfaction), kind="kpi-sat"),
    ]


def _local(ms: int) -> str:
    """Epoch ms as China wall-clock time, for the charts' time axis."""
    return datetime.fromtimestamp((ms + LOCAL_OFFSET_MS) / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _day(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")


def _figure(title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        template="plotly_dark",
        title={"text": title, "font": {"size": 14}, "x": 0.01, "y": 0.985, "yanchor": "top"},
        paper_bgcolor=PAPER,
        plot_bgcolor=PAPER,
        margin={"l": 52, "r": 52, "t": 58, "b": 28},
        font={"color": "#e5e7eb", "size": 12},
        legend={
            "orientation": "h",
            "y": 1.0,
            "yanchor": "bottom",
            "x": 0,
            "font": {"size": 11},
            "bgcolor": "rgba(0,0,0,0)",
        },
        xaxis={"gridcolor": "#1f2937", "color": AXIS},
        yaxis={"gridcolor": "#1f2937", "color": AXIS, "rangemode": "tozero"},
        hovermode="x unified",
    )
    return fig


def incidents_figure(
    report: Report, areas: AreaSet, lang: str, compare: bool, top: int = 6
) -> go.Figure:
    step = t(STEP_KEYS[report.spec.name], lang)
    fig = _figure(t("leader_chart_incidents", lang, step=step))
    x = [_local(ms) for ms in report.starts_ms]
    fig.add_bar(x=x, y=report.incidents, name=name_of(areas, report.area_id, lang),
                marker_color="#f59e0b")  # fmt: skip
    if compare and report.children:
        biggest = sorted(report.children, key=lambda f: -f.incidents)[:top]
        for f in biggest:
            fig.add_scatter(x=x, y=report.child_incidents[f.area_id], mode="lines",
                            name=name_of(areas, f.area_id, lang), line={"width": 1.5})  # fmt: skip
    return fig


def rate_figure(report: Report, lang: str) -> go.Figure:
    step = t(STEP_KEYS[report.spec.name], lang)
    fig = _figure(t("leader_chart_rate", lang, step=step))
    x = [_local(ms) for ms in report.starts_ms]
    rates = [_round(v) for v in report.rate_trend]
    fig.add_scatter(x=x, y=rates, mode="lines+markers", name=t("leader_m_rate", lang),
                    line={"color": "#34d399", "width": 2}, marker={"size": 4},
                    connectgaps=False)  # fmt: skip
    overall = report.area.resolution_rate
    top = max([100.0, *(r for r in rates if r is not None)])
    fig.update_layout(yaxis={"range": [0, top * 1.05], "ticksuffix": " %"})
    if overall is not None:
        fig.add_scatter(x=[x[0], x[-1]], y=[overall, overall], mode="lines",
                        name=f"{t('leader_over_range', lang)} {overall:.1f} %",
                        line={"color": "#93c5fd", "dash": "dash", "width": 1.5})  # fmt: skip
    return fig


def index_figure(report: Report, lang: str) -> go.Figure:
    s = report.area.survey
    title = f"{t('leader_chart_index', lang)} · {fmt_index(s.combined, s.n, lang)}"
    fig = _figure(title)
    x = [_day(d) for d in report.survey_days]
    fig.add_bar(x=x, y=[d.n for d in report.survey_trend], name=t("leader_answers", lang),
                marker_color="#334155", yaxis="y2", opacity=0.8)  # fmt: skip
    for label, attr, color in (("leader_safety", "safety", "#60a5fa"),
                               ("leader_satisfaction", "satisfaction", "#f472b6")):  # fmt: skip
        fig.add_scatter(x=x, y=[_round(getattr(d, attr)) for d in report.survey_trend],
                        mode="lines+markers", name=t(label, lang), connectgaps=False,
                        line={"color": color, "width": 2})  # fmt: skip
    fig.update_layout(
        yaxis={"range": [0, 100], "title": {"text": "%"}},
        yaxis2={"overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False,
                "tickformat": ",d",
                "color": AXIS, "title": {"text": t("leader_answers", lang)}},
    )  # fmt: skip
    return fig


def crumbs(areas: AreaSet, user_area: str, area_id: str, lang: str) -> list:
    """The path from the user's own area (never above it) to the chosen area."""
    path = [area_id]
    if area_id != user_area:
        for up in areas.ancestors(area_id):
            path.append(up)
            if up == user_area:
                break
    out: list = []
    for k, a in enumerate(reversed(path)):
        if k:
            out.append(html.Span("›", className="crumb-sep"))
        label = f"{name_of(areas, a, lang)}"
        if a == area_id:
            out.append(html.Span(label, className="crumb current"))
        else:
            out.append(html.Button(label, id={"type": ids.LEADER_CRUMB, "area": a},
                                   className="crumb"))  # fmt: skip
    out.append(html.Span(t(f"level_{areas.level_of(area_id)}", lang), className="crumb-level"))
    return out


def tree(areas: AreaSet, root: str, area_id: str, toggled: set[str], lang: str) -> html.Ul:
    """The user's area and below, opened along the path to the chosen area (and where the user
    opened or closed a node by hand): only opened nodes' children are built, so a city of
    hundreds of grids stays a few dozen list items."""
    path = {area_id, *areas.ancestors(area_id)}

    def node(a: str) -> html.Li:
        kids = tiling_children(areas, a)
        is_open = bool(kids) and ((a in path) != (a in toggled))
        toggle = (
            html.Button("▾" if is_open else "▸", id={"type": ids.LEADER_TOGGLE, "area": a},
                        className="tree-toggle", title=t(f"level_{areas.level_of(kids[0])}", lang))
            if kids else html.Span("·", className="tree-toggle leaf")
        )  # fmt: skip
        label = html.Button(
            name_of(areas, a, lang),
            id={"type": ids.LEADER_NODE, "area": a},
            className="tree-node" + (" current" if a == area_id else ""),
            **{"data-area": a},
        )
        children = [html.Ul([node(k) for k in kids], className="tree-level")] if is_open else []
        return html.Li([html.Div([toggle, label], className="tree-row"), *children])

    return html.Ul([node(root)], className="tree-level tree-root")
