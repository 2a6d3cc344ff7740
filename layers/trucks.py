"""Muck trucks: position, heading, loaded or empty, and a short trail. Positions are small and
change every ping, so they travel as data (a few KB for the whole fleet)."""

from __future__ import annotations

import math

import dash_leaflet as dl
from dash import html

COLORS = {"loaded": "#b45309", "empty": "#16a34a", "stale": "#9ca3af"}
STALE_MS = 10 * 60 * 1000


def truck_layer(layer_id: str, labels: dict[str, str]) -> dl.GeoJSON:
    return dl.GeoJSON(
        id=layer_id,
        data={"type": "FeatureCollection", "features": []},
        pointToLayer={"variable": "cockpitMap.truckMarker"},
        onEachFeature={"variable": "cockpitMap.truckTooltip"},
        hideout={"colors": COLORS, "labels": labels},
    )


def trail_layer(layer_id: str) -> dl.GeoJSON:
    return dl.GeoJSON(
        id=layer_id,
        data={"type": "FeatureCollection", "features": []},
        interactive=False,
        pane="trails",
        style={"variable": "cockpitMap.trailStyle"},
    )


def heading(trail: list[tuple[float, float]]) -> float | None:
    """Compass heading in degrees from the last two distinct positions (lon, lat)."""
    for (lon0, lat0), (lon1, lat1) in zip(trail[-2::-1], trail[:0:-1], strict=False):
        dx = (lon1 - lon0) * math.cos(math.radians(lat1))
        dy = lat1 - lat0
        if abs(dx) + abs(dy) > 1e-6:
            return (math.degrees(math.atan2(dx, dy)) + 360) % 360
    return None


def truck_features(
    latest: dict[str, dict], trails: dict[str, list], now_ms: int
) -> tuple[dict, dict]:
    """GeoJSON of truck positions and of their trails."""
    points, lines = [], []
    for truck, v in sorted(latest.items()):
        trail = trails.get(truck, [])
        state = (
            "stale" if now_ms - v["ts"] > STALE_MS else ("loaded" if v.get("loaded") else "empty")
        )
        points.append({
            "type": "Feature", "id": truck,
            "geometry": {"type": "Point", "coordinates": [round(v["lon"], 6), round(v["lat"], 6)]},
            "properties": {"truck": truck, "state": state, "speed": v.get("speed_kmh"),
                           "heading": heading(trail), "ts": v["ts"], "grid": v.get("grid")},
        })  # fmt: skip
        if len(trail) >= 2:
            lines.append({
                "type": "Feature", "id": truck,
                "geometry": {"type": "LineString",
                             "coordinates": [[round(x, 6), round(y, 6)] for x, y in trail]},
                "properties": {"state": state},
            })  # fmt: skip
    return (
        {"type": "FeatureCollection", "features": points},
        {"type": "FeatureCollection", "features": lines},
    )


def truck_legend(labels: dict[str, str]) -> html.Div:
    rows = [
        html.Div(
            [html.Span(className="dot", style={"background": COLORS[k]}), html.Span(labels[k])],
            className="legend-row",
        )  # fmt: skip
        for k in ("loaded", "empty", "stale")
    ]
    return html.Div([html.Div(labels["title"], className="legend-title"), *rows])
