"""Callbacks of the leader view (/leader): drilling, the area tree, indicators and the CSV export.

The area drilled into lives in a browser store, so it is only ever a request: every callback
that uses it checks it with ``authorize(user, "view_trends", area, geo)`` and falls back to the
user's own area. Children are compared (map colours, ranking, comparison lines, CSV) only for
levels that may compare areas.
"""

from __future__ import annotations

import csv
import io
import json
from functools import lru_cache
from urllib.parse import parse_qs

import redis
from dash import ALL, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from cockpit import ids
from cockpit.areastore import Geography
from cockpit.contract import CATEGORIES
from cockpit.guard import secure_callback
from cockpit.i18n import t
from cockpit.indicators import RANGES, Report, area_report
from cockpit.policy import User, authorize, may_compare, visible_categories
from cockpit.views import leader as view
from cockpit.webapp import request_lang, runtime
from geo.areas import LEVELS

TRENDS = "view_trends"
DEFAULT_RANGE = "7d"


def checked_area(user: User, requested: object, geo: Geography) -> str:
    """The requested area if the user may see its trends, else the user's own area."""
    if (
        isinstance(requested, str)
        and requested in geo.areas
        and geo.areas.level_of(requested) in LEVELS
        and authorize(user, TRENDS, requested, geo)
    ):
        return requested
    return user.area_id


def _categories(user: User) -> list[str] | None:
    """None when the user sees every category (the ``all`` buckets), else the visible ones."""
    visible = visible_categories(user)
    return None if visible >= set(CATEGORIES) else sorted(visible)


def _clicked() -> object:
    """The id of the input that really changed: buttons a re-render creates arrive with no
    clicks and must not count as a click."""
    for trig in ctx.triggered:
        if trig.get("value"):
            key = trig["prop_id"].rsplit(".", 1)[0]
            return json.loads(key) if key.startswith("{") else key
    return None


def _now_ms(client: redis.Redis) -> int:
    """Redis's clock, the one the worker's buckets follow."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _report(user: User, geo: Geography, area: str, range_name: str) -> Report:
    client = runtime().redis
    children = view.tiling_children(geo.areas, area) if may_compare(user) else []
    return area_report(client, area, children, range_name, _now_ms(client), _categories(user))


@lru_cache(maxsize=128)
def _children_geojson(geo: Geography, area: str) -> dict:
    """Immutable per grid version, so cached per process."""
    return view.children_geojson(geo.areas, area)


@secure_callback(
    Output(ids.LEADER_AREA, "data"),
    Input(ids.URL, "search"),
    Input({"type": ids.LEADER_NODE, "area": ALL}, "n_clicks"),
    Input({"type": ids.LEADER_CRUMB, "area": ALL}, "n_clicks"),
    Input(ids.LEADER_LAYER, "clickData"),
    Input(ids.LEADER_UP, "n_clicks"),
    State(ids.LEADER_AREA, "data"),
    action=TRENDS,
)
def navigate(user: User, search, _nodes, _crumbs, click, _up, current):
    """Drill to the clicked area (tree, breadcrumb, map), up one level, or to ``?area=`` on
    load; anything outside the user's scope lands on the user's own area."""
    geo = runtime().geography()
    here = checked_area(user, current, geo)
    source = _clicked()
    if source is None:
        if current is not None:
            raise PreventUpdate  # new buttons arrived; nobody clicked
        source = ids.URL
    if source == ids.URL:
        requested = parse_qs((search or "").lstrip("?")).get("area", [None])[0]
        return checked_area(user, requested, geo)
    if source == ids.LEADER_UP:
        parent = geo.areas.parent_of(here)
        return checked_area(user, parent, geo) if parent else here
    if source == ids.LEADER_LAYER:
        feature = click if isinstance(click, dict) else {}
        requested = feature.get("id") or (feature.get("properties") or {}).get("id")
        return checked_area(user, requested, geo)
    if isinstance(source, dict):
        return checked_area(user, source.get("area"), geo)
    raise PreventUpdate


@secure_callback(
    Output(ids.LEADER_TREE, "children"),
    Output(ids.LEADER_TOGGLED, "data"),
    Input(ids.LEADER_AREA, "data"),
    Input({"type": ids.LEADER_TOGGLE, "area": ALL}, "n_clicks"),
    State(ids.LEADER_TOGGLED, "data"),
    action=TRENDS,
)
def refresh_tree(user: User, area, _toggles, toggled):
    """The tree from the user's area down; a drill resets hand-opened nodes."""
    source = _clicked()
    if area is None or source is None:
        raise PreventUpdate
    geo = runtime().geography()
    here = checked_area(user, area, geo)
    opened = {a for a in (toggled or []) if isinstance(a, str) and a in geo.areas}
    if isinstance(source, dict) and source.get("type") == ids.LEADER_TOGGLE:
        opened ^= {source.get("area")}
    else:
        opened = set()
    # the store comes back from the browser: keep only areas the user may open
    opened = {a for a in opened if isinstance(a, str) and checked_area(user, a, geo) == a}
    lang = request_lang(user)
    return view.tree(geo.areas, user.area_id, here, opened, lang), sorted(opened)[:500]


@secure_callback(
    Output(ids.LEADER_CRUMBS, "children"),
    Output(ids.LEADER_KPIS, "children"),
    Output(ids.LEADER_LAYER, "data"),
    Output(ids.LEADER_LAYER, "hideout"),
    Output(ids.LEADER_LEGEND, "children"),
    Output(ids.LEADER_CHART_INCIDENTS, "figure"),
    Output(ids.LEADER_CHART_RATE, "figure"),
    Output(ids.LEADER_CHART_INDEX, "figure"),
    Output(ids.LEADER_RANKING, "children"),
    Output(ids.LEADER_TABLE, "data"),
    Output(ids.LEADER_UP, "disabled"),
    Input(ids.LEADER_AREA, "data"),
    Input(ids.LEADER_RANGE, "value"),
    Input(ids.LEADER_METRIC, "value"),
    Input(ids.LEADER_COMPARE, "value"),
    Input(ids.LEADER_REFRESH, "n_intervals"),
    action=TRENDS,
)
def render(user: User, area, range_name, metric, compare_on, _tick):
    """Everything shown for the chosen area and range; geometry only when the area changed."""
    if area is None:
        raise PreventUpdate  # the drill callback has not placed us yet
    rt = runtime()
    try:
        geo = rt.geography()
        here = checked_area(user, area, geo)
        range_name = range_name if range_name in RANGES else DEFAULT_RANGE
        metric = metric if metric in view.METRICS else "incidents"
        report = _report(user, geo, here, range_name)
    except redis.RedisError:
        raise PreventUpdate from None  # keep what is shown; the next refresh tries again
    lang = request_lang(user)
    areas = geo.areas
    compare = may_compare(user)
    changed_area = ctx.triggered_id in (None, ids.LEADER_AREA)
    data = _children_geojson(geo, here) if changed_area else no_update
    if compare:
        hideout = view.map_hideout(report.children, metric, lang)
    else:  # outlines only: colouring the areas below would compare them
        hideout = {**view.map_hideout([], metric, lang), "values": {}, "text": {}}
    return (
        view.crumbs(areas, user.area_id, here, lang),
        view.kpis(report, lang),
        data,
        hideout,
        view.legend(metric, hideout, lang) if compare else None,
        view.incidents_figure(report, areas, lang, compare and bool(compare_on)),
        view.rate_figure(report, lang),
        view.index_figure(report, lang),
        t("leader_ranking", lang, name=view.name_of(areas, here, lang))
        if report.children or not compare
        else t("leader_no_children", lang),
        view.table_rows(areas, report.children, lang) if compare else [],
        here == user.area_id,  # never above the user's own area
    )


CSV_FIELDS = ("id", "name", "incidents", "open", "rate", "index", "safety", "satisfaction", "n")
CSV_LABELS = {"id": "leader_col_id", "name": "leader_col_area", "incidents": "leader_col_incidents",
              "open": "leader_col_open", "rate": "leader_col_rate", "index": "leader_col_index",
              "safety": "leader_col_safety", "satisfaction": "leader_col_satisfaction",
              "n": "leader_col_n"}  # fmt: skip


def _cell(value: object) -> object:
    """Keep a spreadsheet from running a cell as a formula (names come from grid files)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def ranking_csv(report: Report, geo: Geography, lang: str) -> str:
    """The chosen area's row, then one per child: the ranking table as CSV (UTF-8 with BOM so
    spreadsheet programs read the Chinese names)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([t(CSV_LABELS[f], lang) for f in CSV_FIELDS])
    for row in view.table_rows(geo.areas, [report.area, *report.children], lang):
        writer.writerow([_cell(row[f]) for f in CSV_FIELDS])
    return "\ufeff" + out.getvalue()


@secure_callback(
    Output(ids.LEADER_DOWNLOAD, "data"),
    Input(ids.LEADER_EXPORT, "n_clicks"),
    State(ids.LEADER_AREA, "data"),
    State(ids.LEADER_RANGE, "value"),
    action="export",
    prevent_initial_call=True,
)
def export_csv(user: User, n_clicks, area, range_name):
    """The ranking of the chosen area's children as a CSV download."""
    if not n_clicks or not may_compare(user):
        raise PreventUpdate
    geo = runtime().geography()
    here = checked_area(user, area, geo)
    if not authorize(user, "export", here, geo):
        raise PreventUpdate
    range_name = range_name if range_name in RANGES else DEFAULT_RANGE
    try:
        report = _report(user, geo, here, range_name)
    except redis.RedisError:
        raise PreventUpdate from None
    lang = request_lang(user)
    return {
        "content": ranking_csv(report, geo, lang),
        "filename": f"cockpit-{here}-{range_name}.csv",
        "type": "text/csv",
    }
