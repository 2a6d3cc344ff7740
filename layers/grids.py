"""The grid choropleth: polygons sent once (by URL), coloured in the browser from a small
``hideout`` of counts keyed by grid id, so an update never carries geometry."""

from __future__ import annotations

import math
from collections.abc import Iterable

import dash_leaflet as dl
from dash import dcc, html

from cockpit import ids

# ColorBrewer YlOrRd, 7 classes; a grid with no incidents is grey, not the lightest class.
COLORS = ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"]
# Rates and indices: higher is better, red to green (ColorBrewer RdYlGn).
PERCENT_COLORS = ["#d73027", "#fc8d59", "#fee08b", "#ffffbf", "#d9ef8b", "#91cf60", "#1a9850"]
PERCENT_BREAKS = [0, 50, 60, 70, 80, 90, 95]
ZERO_COLOR = "#eef0f2"


def scheme(fmt: str, values) -> tuple[list[float], list[str]]:  # type: ignore[no-untyped-def]
    """Class breaks and colours for a metric's format ("count" or "percent")."""
    if fmt == "percent":
        return PERCENT_BREAKS, PERCENT_COLORS
    return class_breaks(values), COLORS


def nice_step(value: float) -> int:
    """Round up to 1, 2 or 5 times a power of ten (legends people can read)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        if value <= m * power:
            return int(m * power)
    return int(10 * power)


def class_breaks(counts: Iterable[int], classes: int = len(COLORS)) -> list[int]:
    """Lower bounds of the colour classes: [1, s, 2s, ...]; stable while the load is stable."""
    values = sorted(v for v in counts if v > 0)
    top = values[int(0.98 * (len(values) - 1))] if values else 0
    step = nice_step(max(top, classes) / classes)
    return [1] + [step * k for k in range(1, classes)] if step > 1 else list(range(1, classes + 1))


def grid_layer(geojson_url: str, labels: dict[str, str]) -> dl.GeoJSON:
    return dl.GeoJSON(
        id=ids.GRID_LAYER,
        url=geojson_url,
        style={"variable": "cockpitMap.gridStyle"},
        onEachFeature={"variable": "cockpitMap.gridTooltip"},
        hoverStyle={"variable": "cockpitMap.gridHover"},
        hideout={"values": {}, "breaks": [1, 2, 3, 4, 5, 6, 7], "colors": COLORS,
                 "zero": ZERO_COLOR, "labels": labels, "format": "count"},
    )  # fmt: skip


def grid_values_stores(map_id: str, push_url: str | None = None) -> list[dcc.Store]:
    """The grid colours, kept out of the layer's ``hideout``: dash-leaflet 1.1.3 removes and
    re-adds every feature of a GeoJSON whenever its hideout changes (a second and more for
    20,000 grids), while ``cockpitMap.paintGrids`` restyles in place only the grids whose
    value changed (all of them when the classes change). With ``push_url`` the page takes the
    values from that event stream (assets/push.js) and the polling callback leaves them alone
    while the stream delivers; the stream closes when the map ``map_id`` leaves the page. The
    tick stores drive the view's other live parts (see cockpit.ids.TICK_ALERTS)."""
    return [
        dcc.Store(id=ids.GRID_VALUES, data={"values": {}, "breaks": [1, 2, 3, 4, 5, 6, 7],
                                            "colors": COLORS, "zero": ZERO_COLOR,
                                            "format": "count"}),
        dcc.Store(id=ids.GRID_PAINTED, data=None),
        dcc.Store(id=ids.GRID_PUSH, data={"url": push_url, "map": map_id}),
        dcc.Store(id=ids.GRID_PUSH_ON, data=False),
        dcc.Store(id=ids.GRID_POLL, data=None),
        dcc.Store(id=ids.GRID_BREAKS, data=None),
        dcc.Store(id=ids.TICK_ALERTS, data=None),
        dcc.Store(id=ids.TICK_FLEET, data=None),
        dcc.Store(id=ids.TICK_SLOW, data=None),
    ]  # fmt: skip


def boundary_layer(geojson_url: str) -> dl.GeoJSON:
    """District and street outlines drawn above the grids; not interactive."""
    return dl.GeoJSON(
        id=ids.BOUNDARY_LAYER,
        url=geojson_url,
        interactive=False,
        pane="boundaries",
        style={"variable": "cockpitMap.boundaryStyle"},
    )


def legend(
    breaks: list[float], title: str, none_label: str, colors: list[str] = COLORS,
    fmt: str = "count",
) -> html.Div:  # fmt: skip
    rows = [html.Div([html.Span(className="swatch", style={"background": ZERO_COLOR}),
                      html.Span(none_label)], className="legend-row")]  # fmt: skip
    for k, low in enumerate(breaks):
        nxt = breaks[k + 1] if k + 1 < len(breaks) else None
        if fmt == "percent":
            text = f"{low}–{nxt} %" if nxt is not None else f"{low}–100 %"
        else:
            high = nxt - 1 if nxt is not None else None
            text = f"{low}+" if high is None else (f"{low}" if high == low else f"{low}–{high}")
        rows.append(
            html.Div(
                [html.Span(className="swatch", style={"background": colors[k]}), html.Span(text)],
                className="legend-row",
            )
        )
    return html.Div([html.Div(title, className="legend-title"), *rows])
