"""Live layers of the operations map: grid colours by metric (sent as deltas), gauges, trucks,
the gauge trend on click, and the data-age badges."""

from __future__ import annotations

import time
from functools import lru_cache

import plotly.graph_objects as go
import redis
from dash import (
    ClientsideFunction,
    Input,
    Output,
    Patch,
    State,
    clientside_callback,
    dcc,
    no_update,
)
from dash.exceptions import PreventUpdate

from cockpit import ids
from cockpit.aggregates import (
    ALL,
    GAUGE_LATEST,
    GAUGE_SERIES,
    SEQ,
    TRUCK_LATEST,
    TRUCK_TRAIL,
    open_key,
    read_latest,
    window_key,
)
from cockpit.apply import HEALTH
from cockpit.areastore import Geography, load_reference
from cockpit.contract import GAUGES, INCIDENTS, TRUCKS
from cockpit.counters import counters_at
from cockpit.guard import secure_callback
from cockpit.i18n import t
from cockpit.incidents import scope_grids
from cockpit.live import METRICS, delta, metric_choice, metric_values, snapshot
from cockpit.policy import User
from cockpit.webapp import request_lang, runtime
from layers.grids import legend, scheme
from layers.trucks import truck_features


@lru_cache(maxsize=256)
def scoped_gauges(geo: Geography, reference_version: str, area_id: str) -> frozenset[str]:
    reference = load_reference(runtime().redis)
    if reference is None:
        return frozenset()
    scope = geo.areas.frame.geometry.loc[area_id]
    return frozenset(reference.gauges.index[reference.gauges.intersects(scope)])


@secure_callback(
    Output(ids.GRID_VALUES, "data"),
    Output(ids.KPI_INCIDENTS, "children"),
    Output(ids.KPI_OPEN, "children"),
    Output(ids.LEGEND, "children"),
    Output(ids.LIVE_STORE, "data"),
    Input(ids.GRID_POLL, "data"),
    Input(ids.METRIC, "value"),
    Input(ids.CATEGORY, "value"),
    State(ids.LIVE_STORE, "data"),
    State(ids.GRID_PUSH_ON, "data"),
    action="view_counts",
)
def refresh_grids(user: User, _tick, metric, category, store, push_on):
    """Grid values, KPIs, legend and data age each tick while the page's push stream
    (cockpit.push) does not deliver them (the tick then stops at ``cockpitPush.pollTick``).
    On a change of metric the values come from the stream if it is on; once it stops, they
    come whole."""
    rt = runtime()
    metric, category = metric_choice(metric, category, user)
    name = f"{metric}:{category}"
    previous = store or {}
    pushed = push_on is True
    try:
        geo = rt.geography()
        client = rt.redis
        with client.pipeline(transaction=False) as pipe:
            pipe.get(SEQ)
            pipe.hget(HEALTH, f"{INCIDENTS}|last_apply_ms")
            seq_raw, last_apply = pipe.execute()
        (hour_count,), (open_count,) = counters_at(
            client, [window_key("1h", ALL), open_key(ALL)], [user.area_id]
        )
        seq = int(seq_raw or 0)
        fresh = {
            "name": name, "seq": seq, "version": geo.version, "pushed": pushed,
            "server_ms": int(time.time() * 1000),
            "last_apply_ms": int(last_apply) if last_apply else None,
            "breaks": previous.get("breaks"),
            "stale_ms": rt.settings.stale_after_ms("incidents"),
        }  # fmt: skip
        kpis = (f"{int(hour_count or 0):,}", f"{int(open_count or 0):,}")
        same_view = previous.get("name") == name and previous.get("version") == geo.version
        if same_view and previous.get("seq") == seq and previous.get("pushed") == pushed:
            return no_update, *kpis, no_update, fresh
        compute = lambda: metric_values(client, metric, category)  # noqa: E731
        if pushed:  # the stream carries the values; here only the legend follows them
            full, changed, removed = True, {}, []
            current = snapshot(client, name, seq, compute)
        else:
            since = previous.get("seq") if same_view and not previous.get("pushed") else None
            full, changed, removed, current = delta(client, name, seq, since, compute)
    except redis.RedisError:
        raise PreventUpdate from None  # the data-age badge turns stale by itself
    grids = scope_grids(geo, user.area_id)
    fmt = METRICS[metric][1]
    breaks, colors = scheme(fmt, [v for g, v in current.items() if g in grids])
    new_breaks = breaks != previous.get("breaks") or not same_view
    new_legend = no_update
    if new_breaks:
        lang = request_lang(user)
        title = t(METRICS[metric][0], lang)
        new_legend = legend(breaks, title, t("no_values", lang), colors, fmt)
    fresh["breaks"] = breaks
    if pushed:  # the stream carries values, breaks and colours
        return no_update, *kpis, new_legend, fresh
    hideout = Patch()
    if full:
        hideout["values"] = {g: v for g, v in current.items() if g in grids}
        hideout["format"] = fmt
        hideout["colors"] = colors
    else:
        # one Merge operation, not one Assign per grid: about a quarter of the bytes, and the
        # browser copies the values object once per tick instead of once per changed grid; a
        # grid that has no value any more travels as null in the same Merge (a Delete
        # operation copies the whole values object once per grid: seconds at 20,000 grids)
        merged = {g: v for g, v in changed.items() if g in grids}
        merged.update({g: None for g in removed if g in grids})
        if merged:
            hideout["values"].update(merged)
    if new_breaks:
        hideout["breaks"] = breaks
    return hideout, *kpis, new_legend, fresh


@secure_callback(
    Output(ids.GAUGE_LAYER, "hideout"),
    Output(ids.TRUCK_LAYER, "data"),
    Output(ids.TRAIL_LAYER, "data"),
    Output(ids.FLEET_STORE, "data"),
    Input(ids.TICK_FLEET, "data"),
    State(ids.FLEET_STORE, "data"),
    action="view_map",
)
def refresh_fleet(user: User, _tick, store):
    rt = runtime()
    client = rt.redis
    try:
        geo = rt.geography()
        reference = load_reference(client)
        health = client.hmget(HEALTH, [f"{GAUGES}|last_apply_ms", f"{TRUCKS}|last_apply_ms"])
        fresh = {
            "server_ms": int(time.time() * 1000),
            "gauges": int(health[0]) if health[0] else None,
            "trucks": int(health[1]) if health[1] else None,
            "stale_ms": {f: rt.settings.stale_after_ms(f) for f in ("gauges", "trucks")},
        }
        previous = store or {}
        if (previous.get("gauges"), previous.get("trucks")) == (fresh["gauges"], fresh["trucks"]):
            return no_update, no_update, no_update, fresh
        gauges = scoped_gauges(geo, reference.version, user.area_id) if reference else frozenset()
        levels = {
            g: [round(v["level_m"], 3), v["ts"]]
            for g, v in read_latest(client, GAUGE_LATEST).items()
            if g in gauges
        }
        grids = scope_grids(geo, user.area_id)
        trucks = {
            k: v for k, v in read_latest(client, TRUCK_LATEST).items() if v.get("grid") in grids
        }
        with client.pipeline(transaction=False) as pipe:
            for truck in trucks:
                pipe.zrange(f"{TRUCK_TRAIL}{truck}", 0, -1)
            raw_trails = pipe.execute()
    except redis.RedisError:
        raise PreventUpdate from None
    trails = {
        truck: [tuple(map(float, m.decode().split(",")[1:3])) for m in members]
        for truck, members in zip(trucks, raw_trails, strict=True)
    }
    points, lines = truck_features(trucks, trails, fresh["server_ms"])
    hideout = Patch()
    hideout["levels"] = levels
    return hideout, points, lines, fresh


@secure_callback(
    Output(ids.GAUGE_PANEL, "hidden"),
    Output(ids.GAUGE_PANEL, "children"),
    Input(ids.GAUGE_LAYER, "clickData"),
    action="view_map",
)
def gauge_trend(user: User, click):
    """The 24 h trend of a clicked gauge, as a graph put into the panel only then: a
    ``dcc.Graph`` in the page makes the browser load and compile plotly.js (4.8 MB), which
    delayed the wall's first paint by about a second."""
    gauge = ((click or {}).get("properties") or {}).get("id")
    rt = runtime()
    reference = load_reference(rt.redis)
    if not gauge or reference is None:
        return True, no_update
    geo = rt.geography()
    if gauge not in scoped_gauges(geo, reference.version, user.area_id):
        return True, no_update  # a forged click on a gauge outside the scope shows nothing
    row = reference.gauges.loc[gauge]
    now_ms = int(time.time() * 1000)
    members = rt.redis.zrangebyscore(f"{GAUGE_SERIES}{gauge}", now_ms - 86_400_000, "+inf")
    points = [m.decode().split(":") for m in members]
    xs = [int(ts) for ts, _ in points]
    ys = [float(level) for _, level in points]
    lang = request_lang(user)
    name = row.name_zh if lang == "zh-CN" else row.name_en
    fig = go.Figure(go.Scatter(x=[_iso(x) for x in xs], y=ys, mode="lines", name=name))
    for level, label, color in ((row.warning_m, "warning_line", "#f59e0b"),
                                (row.danger_m, "danger_line", "#dc2626")):  # fmt: skip
        fig.add_hline(y=level, line_dash="dash", line_color=color,
                      annotation_text=t(label, lang))  # fmt: skip
    fig.update_layout(
        title=f"{name} · {t('gauge_trend_title', lang)}",
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
        template="plotly_white", showlegend=False,
    )  # fmt: skip
    graph = dcc.Graph(id=ids.GAUGE_TREND, figure=fig, config={"displaylogo": False},
                      style={"height": "260px"})  # fmt: skip
    return False, graph


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


clientside_callback(  # restyle the grids in place (see layers.grids.grid_values_stores)
    ClientsideFunction(namespace="cockpit", function_name="paintGrids"),
    Output(ids.GRID_PAINTED, "data"),
    Input(ids.GRID_VALUES, "data"),
)
@secure_callback(
    Output(ids.LEGEND, "children", allow_duplicate=True),
    Input(ids.GRID_BREAKS, "data"),
    State(ids.METRIC, "value"),
    State(ids.CATEGORY, "value"),
    action="view_counts",
    prevent_initial_call=True,
)
def pushed_legend(user: User, breaks, metric, category):
    """The legend for the class breaks the push stream delivered (only when they change). The
    breaks come back from the browser: only numbers are taken, the colours are the metric's."""
    metric, _category = metric_choice(metric, category, user)
    if not (isinstance(breaks, list) and 0 < len(breaks) <= 12):
        raise PreventUpdate
    numbers = [float(b) for b in breaks if isinstance(b, int | float) and not isinstance(b, bool)]
    if len(numbers) != len(breaks):
        raise PreventUpdate
    fmt = METRICS[metric][1]
    _, colors = scheme(fmt, [])
    lang = request_lang(user)
    shown = [int(b) if b.is_integer() else b for b in numbers]
    return legend(shown, t(METRICS[metric][0], lang), t("no_values", lang), colors, fmt)


clientside_callback(  # the grid layer's tick, held back while its push stream delivers
    ClientsideFunction(namespace="cockpitPush", function_name="pollTick"),
    Output(ids.GRID_POLL, "data"),
    Input(ids.TICK, "n_intervals"),
    State(ids.GRID_PUSH_ON, "data"),
)
clientside_callback(  # the other live parts follow the tick while no stream delivers
    ClientsideFunction(namespace="cockpitPush", function_name="viewTicks"),
    Output(ids.TICK_ALERTS, "data"),
    Output(ids.TICK_FLEET, "data"),
    Output(ids.TICK_SLOW, "data"),
    Input(ids.TICK, "n_intervals"),
    State(ids.GRID_PUSH_ON, "data"),
)
clientside_callback(  # open the push stream of the grid values (assets/push.js, cockpit.push)
    ClientsideFunction(namespace="cockpitPush", function_name="gridPush"),
    Output(ids.GRID_PUSH_ON, "data"),
    Input(ids.METRIC, "value"),
    Input(ids.CATEGORY, "value"),
    State(ids.GRID_PUSH, "data"),
)
clientside_callback(
    ClientsideFunction(namespace="cockpit", function_name="dataAge"),
    Output(ids.DATA_AGE, "children"),
    Output(ids.DATA_AGE, "className"),
    Input(ids.CLOCK, "n_intervals"),
    Input(ids.LIVE_STORE, "data"),
    State(ids.LABELS, "data"),
)
clientside_callback(
    ClientsideFunction(namespace="cockpit", function_name="fleetAge"),
    Output(ids.AGE_GAUGES, "children"),
    Output(ids.AGE_GAUGES + "-wrap", "className"),
    Output(ids.AGE_TRUCKS, "children"),
    Output(ids.AGE_TRUCKS + "-wrap", "className"),
    Input(ids.CLOCK, "n_intervals"),
    Input(ids.FLEET_STORE, "data"),
    State(ids.LABELS, "data"),
)


@secure_callback(
    Output(ids.HEAT_LAYER, "url"),
    Output(ids.HEAT_LAYER, "bounds"),
    Output(ids.HEAT_LEGEND, "children"),
    Input(ids.TICK_SLOW, "data"),
    Input(ids.HEAT_WINDOW, "value"),
    Input(ids.CATEGORY, "value"),
    State(ids.HEAT_LAYER, "url"),
    action="view_map",
)
def refresh_heat(user: User, _tick, window, category, current_url):
    """Only the overlay's URL changes, when the shared render's version does; the browser
    fetches the PNG itself (decoded off the main thread as an image)."""
    from cockpit import heatservice
    from cockpit.heat_routes import heat_scope, overlay_url
    from layers.heat import heat_legend

    rt = runtime()
    try:
        geo = rt.geography()
        allowed = heat_scope(user, user.area_id, category, geo)
        if window not in heatservice.WINDOWS or allowed is None:
            raise PreventUpdate
        area, categories = allowed
        served = heatservice.cached_heat(rt.redis, geo, area, window, categories, with_png=False)
    except redis.RedisError:
        raise PreventUpdate from None
    url = overlay_url(window, area, served.version, category)
    if url == current_url:
        raise PreventUpdate
    return url, served.bounds, heat_legend(window, served.scale_per_km2, served.points,
                                           request_lang(user))  # fmt: skip
