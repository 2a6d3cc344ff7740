"""The incident point layer of the operations map: the newest incidents of the session user's
scope for the chosen window and category. The browser's choices are only narrowed by the policy
(cockpit.incidents applies scope, categories and personal data); the points are sent only when
what the layer would show has changed."""

from __future__ import annotations

import time

import redis
from dash import Input, Output, Patch, State, no_update
from dash.exceptions import PreventUpdate

from cockpit import ids, shared
from cockpit.aggregates import SEQ
from cockpit.guard import secure_callback
from cockpit.policy import User, visible_categories
from cockpit.webapp import request_lang, runtime
from layers.incidents import (
    WINDOWS_MS,
    colour_by,
    incident_features,
    incident_legend,
    newest_incidents,
)

# Each send redraws every marker and cluster, so a busy feed is sampled at most this often...
MIN_INTERVAL_MS = 2000
# ...and a quiet one is still re-read this often, as incidents age out of the window.
RECHECK_MS = 30_000


@secure_callback(
    Output(ids.INCIDENT_LAYER, "data"),
    Output(ids.INCIDENT_LAYER, "hideout"),
    Output(ids.INCIDENT_LEGEND, "children"),
    Output(ids.INCIDENT_STORE, "data"),
    Input(ids.TICK_SLOW, "data"),
    Input(ids.HEAT_WINDOW, "value"),
    Input(ids.CATEGORY, "value"),
    State(ids.INCIDENT_STORE, "data"),
    action="view_incidents",
)
def refresh_incident_points(user: User, tick, window, category, store):  # type: ignore[no-untyped-def]
    rt = runtime()
    window = window if window in WINDOWS_MS else "1h"
    category = category if category in visible_categories(user) else None
    lang = request_lang(user)
    previous = store if isinstance(store, dict) else {}
    now_ms = int(time.time() * 1000)
    try:
        geo = rt.geography()
        seq = int(rt.redis.get(SEQ) or 0)
        view = f"{window}|{category}|{lang}|{geo.version[:16]}"
        same_view = previous.get("view") == view
        since = now_ms - int(previous.get("at") or 0)
        # a pushed version (a string) comes paced by the stream, when incidents were applied
        paced = isinstance(tick, str)
        if same_view and ((since < MIN_INTERVAL_MS and not paced)
                          or (previous.get("seq") == seq and since < RECHECK_MS)):  # fmt: skip
            raise PreventUpdate  # nothing new was applied, or the last read is too recent
        records, capped = newest_incidents(rt.redis, geo, user, window, category, now_ms)
    except redis.RedisError:
        raise PreventUpdate from None
    points = incident_features(records, geo, lang)
    digest = shared.digest(points, capped)
    fresh = {"view": view, "seq": seq, "at": now_ms, "digest": digest,
             "shown": len(points["features"]), "capped": capped}  # fmt: skip
    if same_view and previous.get("digest") == digest:
        return no_update, no_update, no_update, fresh  # the browser already shows exactly this
    hideout = Patch()
    hideout["by"] = colour_by(category)
    legend = incident_legend(lang, window, category, list(visible_categories(user)),
                             len(points["features"]), capped)  # fmt: skip
    return points, hideout, legend, fresh

