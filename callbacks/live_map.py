"""Live colours of the grid map: every tick, the counts of the user's grids (no geometry)."""

from __future__ import annotations

import time
from functools import lru_cache

import redis
from dash import ClientsideFunction, Input, Output, Patch, State, clientside_callback, no_update
from dash.exceptions import PreventUpdate

from cockpit import ids
from cockpit.aggregates import IncidentAggregates
from cockpit.areastore import Geography
from cockpit.contract import INCIDENTS
from cockpit.guard import secure_callback
from cockpit.i18n import t
from cockpit.policy import User
from cockpit.webapp import request_lang, runtime
from layers.grids import class_breaks, legend


@lru_cache(maxsize=256)
def scoped_grids(geo: Geography, area_id: str) -> frozenset[str]:
    """Grid ids inside an area (immutable per grid version, so cached per process)."""
    return frozenset(geo.areas.descendants(area_id, level="grid")) | (
        {area_id} if geo.areas.level_of(area_id) == "grid" else set()
    )


@secure_callback(
    Output(ids.GRID_LAYER, "hideout"),
    Output(ids.KPI_INCIDENTS, "children"),
    Output(ids.LEGEND, "children"),
    Output(ids.LIVE_STORE, "data"),
    Input(ids.TICK, "n_intervals"),
    State(ids.LIVE_STORE, "data"),
    action="view_counts",
)
def refresh_counts(user: User, _tick: int | None, store: dict | None):
    rt = runtime()
    try:
        geo = rt.geography()
        aggregates = IncidentAggregates(rt.redis)
        seq = aggregates.seq()
        health = aggregates.health()
        previous = store or {}
        fresh = {
            "seq": seq,
            "version": geo.version,
            "server_ms": int(time.time() * 1000),
            "last_apply_ms": health.get(f"{INCIDENTS}|last_apply_ms"),
            "breaks": previous.get("breaks"),
        }
        # The store only tells what this browser already has; it is a hint, never a scope.
        if previous.get("seq") == seq and previous.get("version") == geo.version:
            return no_update, no_update, no_update, fresh
        counts = aggregates.window_counts("1h")
    except redis.RedisError:
        raise PreventUpdate from None  # nothing new: the data-age badge turns stale by itself
    grids = scoped_grids(geo, user.area_id)
    grid_counts = {g: n for g, n in counts.items() if g in grids}
    breaks = class_breaks(grid_counts.values())
    hideout = Patch()
    hideout["counts"] = grid_counts
    hideout["breaks"] = breaks
    lang = request_lang(user)
    new_legend = no_update
    if breaks != previous.get("breaks"):
        new_legend = legend(breaks, t("legend_title", lang), "0")
    fresh["breaks"] = breaks
    return hideout, f"{counts.get(user.area_id, 0):,}", new_legend, fresh


clientside_callback(
    ClientsideFunction(namespace="cockpit", function_name="dataAge"),
    Output(ids.DATA_AGE, "children"),
    Output(ids.DATA_AGE, "className"),
    Input(ids.CLOCK, "n_intervals"),
    Input(ids.LIVE_STORE, "data"),
    State(ids.LABELS, "data"),
)
