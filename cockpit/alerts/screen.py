"""What the screens show of an alert besides its record: where to put its marker, what to zoom
to, and how far it has escalated with the time left before the next level.

Pure functions of an alert, the geography, the viewer's grids and ``now``: no Dash, no Redis,
so the map layer, the alert lists and the wall agree, and a unit test needs no server.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely

from cockpit.alerts.area import as_geometry
from cockpit.alerts.escalation import DEFAULT_POLICY, EscalationPolicy, deadlines, escalation_level
from cockpit.alerts.model import Alert

if TYPE_CHECKING:
    from cockpit.areastore import Geography

#: Half the side of the box zoomed to around an alert that has a point but no grid (degrees,
#: about 500 m).
POINT_PAD_DEG = 0.005


@dataclass(frozen=True)
class Place:
    """Where an alert is drawn (``lon``, ``lat``) and what a click zooms to (Leaflet bounds
    ``[[south, west], [north, east]]``)."""

    lon: float
    lat: float
    bounds: list[list[float]]


@dataclass(frozen=True)
class Escalation:
    """The level the alert has reached and, while it still climbs, the next level and when
    (epoch seconds) it gets there."""

    level: str
    next_level: str | None
    next_at: float | None


def escalation(alert: Alert, now: float, policy: EscalationPolicy = DEFAULT_POLICY) -> Escalation:
    """Level now and the next deadline; no deadline once acknowledged, closed or at the top."""
    level = escalation_level(alert, now, policy)
    if alert.status != "new":
        return Escalation(level, None, None)
    upcoming = [(name, at) for name, at in deadlines(alert, policy) if at > now]
    if not upcoming:
        return Escalation(level, None, None)
    name, at = upcoming[0]
    return Escalation(level, name, at)


def _bounds(minx: float, miny: float, maxx: float, maxy: float) -> list[list[float]]:
    return [[float(miny), float(minx)], [float(maxy), float(maxx)]]


def place(alert: Alert, geo: Geography, visible_grids: Collection[str]) -> Place | None:
    """The marker point and zoom box of ``alert`` for a viewer who sees ``visible_grids``.

    - A point (a truck, a CAP circle of radius 0) is drawn where it is.
    - An area is drawn in the affected grid nearest the middle of the affected grids the viewer
      sees (inside a grid, so never in a river bend outside the scope), and zooms to them.
    - A point with no grid at all (outside the city; only city level lists such alerts) is
      drawn too; an area with no visible grid gets no marker: None.
    """
    frame = geo.areas.frame
    grids = [g for g in alert.area_grids if g in visible_grids and g in frame.index]
    shape = as_geometry(alert.geometry)
    if shape is not None and not shape.is_empty and shape.geom_type == "Point":
        lon, lat = float(shape.x), float(shape.y)
        if grids:
            return Place(lon, lat, _bounds(*frame.geometry.loc[grids].total_bounds))
        if alert.area_grids:  # its grids are all outside the viewer's: not theirs to see
            return None
        pad = POINT_PAD_DEG
        return Place(lon, lat, _bounds(lon - pad, lat - pad, lon + pad, lat + pad))
    if not grids:
        return None
    shapes = np.asarray(frame.geometry.loc[grids].values, dtype=object)
    minx, miny, maxx, maxy = shapely.total_bounds(shapes)
    middle = shapely.Point((minx + maxx) / 2, (miny + maxy) / 2)
    nearest = int(np.argmin(shapely.distance(shapely.centroid(shapes), middle)))
    inside = shapely.point_on_surface(shapes[nearest])
    return Place(float(inside.x), float(inside.y), _bounds(minx, miny, maxx, maxy))
