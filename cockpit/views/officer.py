"""The officer view (/officer): a grid or street officer's own area on a map and as a list,
filters, an incident's detail, and the open alerts to acknowledge and resolve.

This module only builds components; callbacks/officer.py reads the data (always for the session
user's scope) and calls the render functions here. Feed text goes into components as children,
which React renders as text; the map's tooltips are built in assets/officer.js with textContent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import dash_leaflet as dl
from dash import dcc, html

from cockpit import ids
from cockpit.areastore import Geography
from cockpit.contract import CATEGORIES, STATUSES
from cockpit.i18n import category_label, t
from cockpit.policy import User, visible_categories
from cockpit.webapp import runtime
from layers.grids import COLORS, ZERO_COLOR, legend

# Times are shown in the city's local time (China Standard Time, as the simulator and the
# survey day boundaries use).
CITY_TZ = timezone(timedelta(hours=8))
RANGES_MS = {"1h": 3_600_000, "8h": 8 * 3_600_000, "24h": 24 * 3_600_000}
DEFAULT_RANGE = "24h"
TEXT_PREVIEW = 80
# Marker colours per category (Okabe-Ito based, readable on the light map background).
CATEGORY_COLORS = {
    "dispute": "#d55e00", "public_security": "#0072b2", "hotline": "#009e73",
    "fire_hazard": "#e41a1c", "environment": "#4daf4a", "traffic": "#e69f00",
    "petition": "#cc79a7", "flood": "#56b4e9", "dumping": "#8c564b", "other": "#6b7280",
}  # fmt: skip


def local_time(ms: int | float | None, with_date: bool = True) -> str:
    """Epoch milliseconds as city time, ``MM-DD HH:MM`` (or ``HH:MM:SS``)."""
    if ms is None:
        return ""
    moment = datetime.fromtimestamp(float(ms) / 1000, UTC).astimezone(CITY_TZ)
    return moment.strftime("%m-%d %H:%M" if with_date else "%H:%M:%S")


def status_label(status: str, lang: str) -> str:
    return t(f"officer_status_{status}", lang) if status in STATUSES else str(status)


@lru_cache(maxsize=8)
def _names(geo: Geography) -> dict[str, tuple[str, str]]:
    frame = geo.areas.frame
    return dict(zip(frame.index, zip(frame["name_en"], frame["name_zh"], strict=True),
                    strict=True))  # fmt: skip


def area_name(geo: Geography, area_id: str, lang: str) -> str:
    """An area's name in ``lang`` (its id when the area is unknown)."""
    en, zh = _names(geo).get(area_id, (area_id, area_id))
    return zh if lang == "zh-CN" else en


def area_bounds(geo: Geography, area_id: str) -> list[list[float]]:
    """Leaflet bounds [[south, west], [north, east]] of an area, a little padded."""
    minx, miny, maxx, maxy = geo.areas.frame.geometry.loc[area_id].bounds
    pad_x, pad_y = max((maxx - minx) * 0.05, 0.001), max((maxy - miny) * 0.05, 0.001)
    return [[miny - pad_y, minx - pad_x], [maxy + pad_y, maxx + pad_x]]


def _point_labels(lang: str) -> dict[str, Any]:
    """Words the marker tooltips need in the browser (sent once with the layout)."""
    return {
        "lang": lang,
        "categories": {c: category_label(c, lang) for c in CATEGORIES},
        "statuses": {s: status_label(s, lang) for s in STATUSES},
    }


def _filters(user: User, lang: str) -> html.Div:
    categories = [c for c in CATEGORIES if c in visible_categories(user)]
    return html.Div(
        className="officer-filters",
        children=[
            dcc.Dropdown(
                id=ids.OFFICER_CATEGORY, multi=True, value=[],
                options=[{"label": category_label(c, lang), "value": c} for c in categories],
                placeholder=t("officer_all_categories", lang), className="officer-filter",
            ),
            dcc.Dropdown(
                id=ids.OFFICER_STATUS, multi=True, value=[],
                options=[{"label": status_label(s, lang), "value": s} for s in STATUSES],
                placeholder=t("officer_all_statuses", lang), className="officer-filter",
            ),
            dcc.RadioItems(
                id=ids.OFFICER_RANGE, value=DEFAULT_RANGE, inline=True,
                options=[{"label": t(f"officer_range_{k}", lang), "value": k} for k in RANGES_MS],
                className="officer-range", inputClassName="officer-range-input",
            ),
            dcc.Input(
                id=ids.OFFICER_TEXT, type="search", value="", debounce=0.4, maxLength=100,
                placeholder=t("officer_search", lang), className="officer-text",
            ),
        ],
    )  # fmt: skip


def _map(user: User, lang: str) -> html.Div:
    settings = runtime().settings
    geo = runtime().geography()
    version = geo.version[:16]
    tiles = (
        [dl.TileLayer(url=settings.tile_url, attribution=settings.tile_attribution)]
        if settings.tile_url
        else []
    )
    grids = dl.GeoJSON(
        id=ids.OFFICER_GRIDS,
        url=f"/geo/grid.geojson?v={version}",
        style={"variable": "cockpitOfficer.gridStyle"},
        hideout={"counts": {}, "breaks": [1, 2, 3, 4, 5, 6, 7], "colors": COLORS,
                 "zero": ZERO_COLOR},
    )  # fmt: skip
    points = dl.GeoJSON(
        id=ids.OFFICER_POINTS,
        data={"type": "FeatureCollection", "features": []},
        pointToLayer={"variable": "cockpitOfficer.pointToLayer"},
        onEachFeature={"variable": "cockpitOfficer.bindTip"},
        style={"variable": "cockpitOfficer.pointStyle"},
        hideout={"selected": None, "colors": CATEGORY_COLORS, "labels": _point_labels(lang)},
    )
    return html.Div(
        className="officer-mapbox",
        children=[
            dl.Map(
                id=ids.OFFICER_MAP,
                className="officer-map",
                preferCanvas=True,
                bounds=area_bounds(geo, user.area_id),
                trackViewport=False,  # nothing reads it; without a center prop it throws on move
                attributionControl=bool(settings.tile_url),
                children=[*tiles, grids, points],
            ),
            html.Div(
                legend([1, 2, 3, 4, 5, 6, 7], t("legend_title", lang), "0"),
                id=ids.OFFICER_LEGEND,
                className="legend officer-legend",
            ),
        ],
    )


def layout(user: User, lang: str) -> html.Div:
    """The page for ``user``: everything shown is filled by callbacks for the session user."""
    geo = runtime().geography()
    return html.Div(
        className="view view-officer",
        children=[
            html.Div(
                className="statusbar officer-bar",
                children=[
                    html.Span(
                        f"{t('officer_area', lang)}: {area_name(geo, user.area_id, lang)}",
                        className="officer-area",
                    ),
                    html.Div(className="kpi", children=[
                        html.Span(t("officer_incidents_hour", lang), className="kpi-label"),
                        html.Span("–", id=ids.OFFICER_KPI, className="kpi-value"),
                    ]),  # fmt: skip
                ],
            ),
            _filters(user, lang),
            html.Div(
                className="officer-body",
                children=[
                    _map(user, lang),
                    html.Div(
                        className="officer-side",
                        children=[
                            html.Section(
                                id=ids.OFFICER_DETAIL,
                                className="officer-detail hidden",
                                children=[
                                    html.Div(className="officer-detail-head", children=[
                                        html.H2(t("officer_detail", lang)),
                                        html.Button(t("officer_close", lang),
                                                    id=ids.OFFICER_CLOSE, n_clicks=0,
                                                    className="officer-close"),
                                    ]),  # fmt: skip
                                    html.Div(id=ids.OFFICER_DETAIL_BODY),
                                ],
                            ),
                            html.Section(
                                className="officer-alerts-box",
                                children=[
                                    html.H2(t("officer_alerts", lang)),
                                    html.Div(id=ids.OFFICER_ALERT_MESSAGE,
                                             className="officer-alert-message"),
                                    html.Div(id=ids.OFFICER_ALERTS),
                                ],
                            ),  # fmt: skip
                            html.Section(
                                className="officer-list-box",
                                children=[
                                    html.H2(t("officer_list", lang)),
                                    html.Div(id=ids.OFFICER_COUNT, className="officer-count"),
                                    # drawn by assets/officer.js from OFFICER_ROWS
                                    html.Ul(id=ids.OFFICER_LIST, className="officer-list"),
                                ],
                            ),
                        ],
                    ),
                ],
            ),
            dcc.Store(id=ids.OFFICER_SELECTED, data=None),
            dcc.Store(id=ids.OFFICER_LIST_STORE, data={}),
            dcc.Store(id=ids.OFFICER_ROWS, data=[]),
            dcc.Store(id=ids.OFFICER_ROWS_DRAWN, data=0),
            dcc.Store(id=ids.OFFICER_ROW_CLICK, data=None),
            dcc.Store(id=ids.OFFICER_DETAIL_STORE, data=None),
            dcc.Store(id=ids.OFFICER_ALERTS_STORE, data={}),
        ],
    )


# -- rendering of data the callbacks read for the session user ------------------------------


def preview(text: str | None) -> str:
    """The first 80 characters of a text, on one line."""
    one_line = " ".join(str(text or "").split())
    return one_line if len(one_line) <= TEXT_PREVIEW else one_line[: TEXT_PREVIEW - 1] + "…"


def incident_rows(records: list[dict[str, Any]], geo: Geography, lang: str) -> list[dict]:
    """One row per incident (newest first, as given), its words already in the user's language.
    assets/officer.js draws them with textContent and keeps each row's element by id, so a row
    stays the same element while the live list changes around it (a tap or the keyboard focus
    on it is not lost to a redraw)."""
    rows = []
    for rec in records:
        category = str(rec.get("category", "other"))
        status = str(rec.get("status", ""))
        rows.append({
            "id": str(rec["id"]),
            "grid": str(rec.get("grid", "")),
            "category": category,
            "status": status,
            "colour": CATEGORY_COLORS.get(category, "#6b7280"),
            "category_label": category_label(category, lang),
            "time": local_time(rec.get("ts")),
            "status_label": status_label(status, lang),
            "grid_name": area_name(geo, str(rec.get("grid", "")), lang),
            "text": preview(rec.get("text")),
        })  # fmt: skip
    return rows


def incident_features(records: list[dict[str, Any]], geo: Geography, lang: str) -> dict:
    """The map's points: what a tooltip shows, never personal data."""
    features = []
    for rec in records:
        if rec.get("lat") is None or rec.get("lon") is None:
            continue
        features.append({
            "type": "Feature",
            "id": str(rec["id"]),
            "geometry": {"type": "Point", "coordinates": [rec["lon"], rec["lat"]]},
            "properties": {
                "id": str(rec["id"]), "category": rec.get("category", "other"),
                "status": rec.get("status", ""), "time": local_time(rec.get("ts")),
                "severity": rec.get("severity"), "text": preview(rec.get("text")),
                "address": str(rec.get("address", ""))[:200],
                "grid": area_name(geo, str(rec.get("grid", "")), lang),
            },
        })  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


def incident_detail_view(record: dict[str, Any], geo: Geography, lang: str) -> list:
    """Every field of one incident as text (the reporter only if the policy left it in)."""
    grid = str(record.get("grid", ""))
    parents = [area_name(geo, a, lang) for a in geo.areas.ancestors(grid)[:2]] if (
        grid in geo.areas) else []  # fmt: skip
    fields: list[tuple[str, str]] = [
        ("officer_field_category", category_label(record.get("category", "other"), lang)),
        ("officer_field_status", status_label(record.get("status", ""), lang)),
        ("officer_field_severity", str(record.get("severity", ""))),
        ("officer_field_ts", local_time(record.get("ts"))),
        ("officer_field_updated", local_time(record.get("updated"))),
        ("officer_field_grid", " · ".join([area_name(geo, grid, lang), *parents])),
        ("officer_field_address", str(record.get("address", ""))),
        ("officer_field_text", str(record.get("text", ""))),
        ("officer_field_source", str(record.get("source", ""))),
        ("officer_field_reporter", str(record.get("reporter", ""))),
        ("officer_field_location", f"{record.get('lat')}, {record.get('lon')}"),
        ("officer_field_id", str(record.get("id", ""))),
    ]
    items: list = []
    for key, value in fields:
        if not value:
            continue
        items += [html.Dt(t(key, lang)), html.Dd(value, className=f"field-{key[14:]}")]
    return [html.Dl(items, className="officer-fields", **{"data-id": str(record.get("id"))})]


def alert_items(alerts: list, user_may: dict[str, bool], lang: str) -> list:
    """Open alerts with a comment field and the buttons the user's level allows."""
    if not alerts:
        return [html.Div(t("officer_no_alerts", lang), className="officer-empty")]
    items = []
    for alert in alerts:
        title = (alert.title_zh if lang == "zh-CN" else alert.title_en) or alert.title_en or (
            alert.kind)  # fmt: skip
        buttons = []
        if alert.status == "new" and user_may.get("acknowledge"):
            buttons.append(("acknowledge", "officer_acknowledge"))
        if alert.status == "acknowledged" and user_may.get("resolve"):
            buttons.append(("resolve", "officer_resolve"))
        status_key = f"officer_alert_{alert.status}"
        items.append(
            html.Li(
                className=f"officer-alert sev-{alert.severity}",
                **{"data-alert": alert.id},
                children=[
                    html.Div(className="alert-head", children=[
                        html.Span(t(f"officer_severity_{alert.severity}", lang),
                                  className=f"alert-sev sev-{alert.severity}"),
                        html.Span(title, className="alert-title"),
                    ]),  # fmt: skip
                    html.Div(className="alert-meta", children=[
                        html.Span(local_time(alert.raised_at * 1000)),
                        html.Span(t(status_key, lang) if status_key in _KNOWN else alert.status),
                    ]),  # fmt: skip
                    html.Div(alert.text, className="alert-text") if alert.text else None,
                    html.Div(className="alert-actions", children=[
                        dcc.Input(id={"type": ids.OFFICER_ALERT_COMMENT, "alert": alert.id},
                                  type="text", value="", maxLength=500,
                                  placeholder=t("officer_comment", lang),
                                  className="alert-comment"),
                        *[html.Button(t(label, lang), n_clicks=0, className=f"alert-{action}",
                                      id={"type": ids.OFFICER_ALERT_ACTION, "alert": alert.id,
                                          "action": action})
                          for action, label in buttons],
                    ]) if buttons else None,  # fmt: skip
                ],
            )
        )
    return [html.Ul(items, className="officer-alert-list")]


_KNOWN = {"officer_alert_new", "officer_alert_acknowledged"}
