"""Grid values pushed to the browser as server-sent events, instead of waiting for the next poll.

    GET /push/grids?metric=&category=     text/event-stream; needs ``view_counts``

The first event holds every grid value of the user's scope; the next ones only what changed
(values keyed by grid id, never geometry), at most one every ``interval``. Each event also
carries the scope's two KPIs (incidents in the last hour, open incidents) and the time of the
worker's last apply, and an ``age`` event every ``heartbeat`` keeps the data-age badge honest
while nothing changes, so a page with a live stream needs no polling for the grid layer.

A ``view`` event says when the page's other live parts have something new to fetch: a digest
of the open alerts of the user's scope, the gauge and truck feeds' last apply, and a "slow"
counter for what moves with every incident but is redrawn every few seconds (heat overlay,
incident points, resolution rate). The page runs those parts' callbacks only when their entry
changes, instead of every tick: a hundred walls then cost the server what changes, not what
they poll. Only versions travel on it: what they stand for is read through the callbacks,
scope-checked as always.

The metric and category are checked against the policy as the polling callback checks them.
One thread per process watches the worker's sequence number and wakes the streams; the values
of a sequence number come from the same Redis snapshots the polling callback uses, and what all
streams of a process share (snapshots, differences, class breaks, KPIs) is computed once.

A stream ends after ``max_age_s`` (the browser reconnects with the last id it saw and gets the
difference since), so a signed-out or disabled user loses it within that time. Streams hold a
web thread each: above ``max_streams`` per process the route answers 503 and the page polls.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import flask
import redis

from cockpit.aggregates import ALL, SEQ, open_key, window_key
from cockpit.alerts.model import Alert
from cockpit.alerts.store import STREAM as ALERTS_STREAM
from cockpit.alerts.store import open_alerts
from cockpit.apply import HEALTH
from cockpit.areastore import Geography
from cockpit.contract import GAUGES, INCIDENTS, TRUCKS
from cockpit.counters import counters_at
from cockpit.guard import secure_route
from cockpit.incidents import scope_grids
from cockpit.live import (
    METRICS,
    difference,
    metric_choice,
    metric_values,
    snapshot,
    stored_snapshot,
)
from cockpit.policy import User
from cockpit.shared import SharedMemo, digest
from layers.grids import ZERO_COLOR, scheme

PUSH_PATH = "/push/grids"
STALE_MS = {"incidents": 60_000, "gauges": 180_000, "trucks": 120_000}
# Set when this web process shuts down: a stream never ends by itself, and gunicorn waited its
# whole graceful timeout (30 s) for open ones, then killed the process (Ctrl-C of the demo
# took 31 s with one wall open). Ended, the browsers' EventSource reconnects elsewhere.
_STOPPING = threading.Event()
_WATCHES: weakref.WeakSet[SeqWatch] = weakref.WeakSet()


def stop_streams() -> None:
    """End every push stream of this process within moments (it is shutting down)."""
    _STOPPING.set()
    for watch in list(_WATCHES):
        watch.wake()


def push_url() -> str | None:
    """The stream a page opens for its grid values, or None when the settings say poll."""
    from cockpit.webapp import runtime  # late: webapp registers this module's routes

    return PUSH_PATH if runtime().settings.push == "sse" else None


@dataclass(frozen=True)
class PushLimits:
    interval_s: float = 0.25  # at most this often per stream: a wall repaints 4 times a second
    poll_s: float = 0.05  # how often the watcher reads the sequence number
    heartbeat_s: float = 5.0  # an age event: the badge's clock, and dead peers show
    max_age_s: float = 300.0
    max_streams: int = 56
    slow_s: float = 2.0  # the slow parts follow the incidents at most this often...
    slow_floor_s: float = 30.0  # ...and at least this often (incidents age out of windows)
    alerts_floor_s: float = 10.0  # alerts escalate with time even when none is written
    # a busy city changes some alert every second; a hundred walls re-reading theirs each
    # time cost more than the server has, so the alerts' version moves at most this often
    alerts_s: float = 2.0


@dataclass(frozen=True)
class Watched:
    """What the watcher last read: the worker's sequence number, the version of all alerts (the
    last id of their stream), the gauge and truck feeds' last apply, the slow counter."""

    seq: int
    alerts: str
    gauges: int | None
    trucks: int | None
    slow: int


class SeqWatch:
    """The worker's sequence number and the versions of the view, read by one thread per
    process; streams wait on it."""

    def __init__(self, client: redis.Redis, limits: PushLimits) -> None:
        self._client = client
        self._limits = limits
        self._changed = threading.Condition()
        self._state: Watched | None = None
        self._slow = (0, None, 0.0)  # counter, the sequence number and time it moved at
        self._alerts = ("", 0.0)  # the alerts version passed on, and when
        self._started = False
        _WATCHES.add(self)

    def wait_newer(self, seen: Watched | None, timeout: float) -> Watched | None:
        """What the watcher read once it differs from ``seen``, or None after ``timeout``."""
        self._start()
        with self._changed:
            self._changed.wait_for(
                lambda: _STOPPING.is_set() or (self._state is not None and self._state != seen),
                timeout,
            )
            return self._state if self._state != seen else None

    def wake(self) -> None:
        """Wake the streams waiting here (to see that the process stops)."""
        with self._changed:
            self._changed.notify_all()

    def _start(self) -> None:
        with self._changed:
            if self._started:
                return
            self._started = True  # started in the web process (after gunicorn's fork)
        threading.Thread(target=self._run, name="cockpit-seq-watch", daemon=True).start()

    def _read(self) -> Watched:
        with self._client.pipeline(transaction=False) as pipe:
            pipe.get(SEQ)
            pipe.xrevrange(ALERTS_STREAM, count=1)
            pipe.hmget(HEALTH, [f"{GAUGES}|last_apply_ms", f"{TRUCKS}|last_apply_ms"])
            seq_raw, last_alert, (gauges, trucks) = pipe.execute()
        seq = int(seq_raw or 0)
        count, slow_seq, slow_at = self._slow
        now = time.monotonic()
        since = now - slow_at
        if (seq != slow_seq and since >= self._limits.slow_s) or since >= self._limits.slow_floor_s:
            count, slow_seq, slow_at = count + 1, seq, now
            self._slow = (count, slow_seq, slow_at)
        latest = last_alert[0][0] if last_alert else b""
        latest = latest.decode() if isinstance(latest, bytes) else str(latest)
        alerts, alerts_at = self._alerts
        if latest != alerts and now - alerts_at >= self._limits.alerts_s:
            alerts, alerts_at = self._alerts = (latest, now)
        return Watched(
            seq, alerts, int(gauges) if gauges else None, int(trucks) if trucks else None, count,
        )  # fmt: skip

    def _run(self) -> None:
        while True:
            try:
                state: Watched | None = self._read()
            except redis.RedisError:
                state = None  # streams wait; their next age event fails and ends them (pages poll)
            if state is not None:
                with self._changed:
                    if state != self._state:
                        self._state = state
                        self._changed.notify_all()
            time.sleep(self._limits.poll_s)


class SharedValues:
    """What every stream of a process needs for one sequence number, computed once (by one
    stream, while the others woken with it wait): snapshots (immutable per name and sequence
    number), their differences, class breaks per area, KPIs, alert digests."""

    def __init__(self, client: redis.Redis, size: int = 64) -> None:
        self._client = client
        self._shared = SharedMemo(size)

    def _memo(self, key: tuple, make: Callable[[], object]) -> object:
        return self._shared.get(key, make)

    def event(self, key: tuple, make: Callable[[], str]) -> str:
        """A grid event's text, by stream name, area and the sequence numbers it spans."""
        return self._memo(("event", *key), make)  # type: ignore[return-value]

    def values(self, name: str, metric: str, category: str, seq: int) -> dict[str, float]:
        return self._memo(  # type: ignore[return-value]
            ("values", name, seq),
            lambda: snapshot(
                self._client, name, seq, lambda: metric_values(self._client, metric, category)
            ),
        )

    def known(self, name: str, seq: int) -> dict[str, float] | None:
        """The values of an earlier sequence number this process or Redis still holds."""
        held = self._shared.peek(("values", name, seq))
        if held is not None:
            return held  # type: ignore[return-value]
        return stored_snapshot(self._client, name, seq)

    def kpis(self, seq: int, area: str) -> tuple[int, int]:
        """Incidents of the last hour and open incidents in ``area``, as the KPI tiles show."""

        def read() -> tuple[int, int]:
            (hour,), (still_open,) = counters_at(
                self._client, [window_key("1h", ALL), open_key(ALL)], [area]
            )
            return hour, still_open

        return self._memo(("kpis", seq, area), read)  # type: ignore[return-value]

    def last_apply_ms(self, seq: int | None = None) -> int | None:
        """When the worker last applied incidents; shared per ``seq`` when one is given."""

        def read() -> int | None:
            raw = self._client.hget(HEALTH, f"{INCIDENTS}|last_apply_ms")
            return int(raw) if raw else None

        return read() if seq is None else self._memo(("applied", seq), read)  # type: ignore[return-value]

    def changes(
        self, name: str, old_seq: int, old: dict[str, float], seq: int, new: dict[str, float]
    ) -> tuple[dict[str, float], list[str]]:
        return self._memo(  # type: ignore[return-value]
            ("diff", name, old_seq, seq), lambda: difference(old, new)
        )

    def breaks(
        self, name: str, fmt: str, seq: int, area: str, grids: frozenset[str],
        values: dict[str, float],
    ) -> tuple[list[float], list[str]]:  # fmt: skip
        scoped = lambda: scheme(fmt, [values[g] for g in grids if g in values])  # noqa: E731
        return self._memo(("breaks", name, seq, area), scoped)  # type: ignore[return-value]

    def alerts_digest(self, user: User, geo: Geography, version: str) -> str:
        """A fingerprint of the open alerts ``user`` may see (those the markers and tiles
        show), once per process, area and alerts version: it changes only when they do, so an
        alert elsewhere wakes no callback of this page, and says nothing about it."""

        def read() -> str:
            shown = open_alerts(self._client, user, geo, limit=ALERTS_SHOWN)
            return digest([_alert_state(a) for a in shown])

        return self._memo(("alerts", user.area_id, user.level, version), read)  # type: ignore[return-value]


#: Alerts a map or wall shows at most (callbacks.alert_layer.MAP_LIMIT).
ALERTS_SHOWN = 200


def _alert_state(alert: Alert) -> tuple:
    return (alert.id, alert.status, alert.severity, alert.updated_at)


def push_blueprint(
    redis_of: Callable[[], redis.Redis],
    geography_of: Callable[[], Geography],
    limits: PushLimits | None = None,
    stale_ms: dict[str, int] | None = None,
) -> flask.Blueprint:
    """The push route; ``stale_ms`` per feed (incidents, gauges, trucks): how long its badge
    may go without an apply before it says stale."""
    limits = limits or PushLimits()
    bp = flask.Blueprint("push", __name__)
    streams = threading.BoundedSemaphore(limits.max_streams)
    shared: dict[str, object] = {}  # built on the first request, in the web process

    def parts() -> tuple[SeqWatch, SharedValues]:
        if not shared:
            client = redis_of()
            shared.setdefault("watch", SeqWatch(client, limits))
            shared.setdefault("values", SharedValues(client))
        return shared["watch"], shared["values"]  # type: ignore[return-value]

    @bp.route(PUSH_PATH)
    @secure_route("view_counts")
    def grid_stream(user: User) -> flask.Response:
        metric, category = metric_choice(
            flask.request.args.get("metric"), flask.request.args.get("category"), user
        )
        geo = geography_of()
        if not streams.acquire(blocking=False):
            resp = flask.Response("too many live streams; this page polls instead\n", 503)
            resp.headers["Retry-After"] = "30"
            return resp
        watch, values = parts()
        stream = GridStream(user, metric, category, geo, watch, values, limits,
                            {**STALE_MS, **(stale_ms or {})})  # fmt: skip
        last_id = flask.request.headers.get("Last-Event-ID", "")
        since = int(last_id) if last_id.isdigit() else None

        def events() -> Iterator[str]:
            try:
                yield from stream.events(since)
            finally:
                streams.release()

        resp = flask.Response(events(), mimetype="text/event-stream")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return resp

    return bp


class GridStream:
    """One browser's stream: the values of its scope, then their changes; and the versions of
    the view's other parts when they change."""

    def __init__(
        self, user: User, metric: str, category: str, geo: Geography, watch: SeqWatch,
        values: SharedValues, limits: PushLimits, stale_ms: dict[str, int],
    ) -> None:  # fmt: skip
        self.user, self.geo = user, geo
        self.area = user.area_id
        self.metric, self.category = metric, category
        self.name = f"{metric}:{category}"
        self.fmt = METRICS[metric][1]
        self.grids = scope_grids(geo, user.area_id)
        self.watch, self.values, self.limits = watch, values, limits
        self.stale_ms = stale_ms

    def events(self, since: int | None) -> Iterator[str]:
        yield f"retry: 3000\n: {self.name}\n\n"
        end = time.monotonic() + self.limits.max_age_s
        seen, sent_at = since, 0.0
        state: Watched | None = None
        shown: dict[str, object] | None = None
        while (left := end - time.monotonic()) > 0:
            # coalesce: whatever changed during the interval travels in one event
            time.sleep(max(0.0, sent_at + self.limits.interval_s - time.monotonic()))
            new = self.watch.wait_newer(state, min(self.limits.heartbeat_s, left))
            if _STOPPING.is_set():  # set before or during the wait, which it then cut short
                return
            if new is None:
                yield self.age()
            else:
                state = new
                if state.seq != seen:
                    yield self.event(seen, state.seq)
                    seen, sent_at = state.seq, time.monotonic()
            if state is not None and (view := self.view(state)) != shown:
                shown = view
                yield self.view_event(state, view)

    def _clock(self, seq: int | None = None) -> dict[str, object]:
        """The badge's clock; for an event of sequence number ``seq`` the last apply is read
        once per process (every stream sends that event), for an age event each time."""
        return {"server_ms": int(time.time() * 1000), "stale_ms": self.stale_ms["incidents"],
                "last_apply_ms": self.values.last_apply_ms(seq)}  # fmt: skip

    def age(self) -> str:
        return f"event: age\ndata: {json.dumps(self._clock(), separators=(',', ':'))}\n\n"

    def view(self, state: Watched) -> dict[str, object]:
        """The versions of the page's other live parts; an entry changes when its part has
        something new (the alerts' also every ``alerts_floor_s``, for escalations by time).
        They are strings, so a callback can tell a pushed version from a tick number."""
        recheck = int(time.time() // self.limits.alerts_floor_s)
        alerts = self.values.alerts_digest(self.user, self.geo, state.alerts)
        return {"alerts": f"{alerts}.{recheck}", "fleet": f"{state.gauges}.{state.trucks}",
                "slow": f"s{state.slow}"}  # fmt: skip

    def view_event(self, state: Watched, view: dict[str, object]) -> str:
        # the fleet's badge clock travels with it: the fleet callback runs only on a change
        fleet = {"server_ms": int(time.time() * 1000), "gauges": state.gauges,
                 "trucks": state.trucks,
                 "stale_ms": {f: self.stale_ms[f] for f in ("gauges", "trucks")}}  # fmt: skip
        data = json.dumps({"v": view, "fleet": fleet}, separators=(",", ":"))
        return f"event: view\ndata: {data}\n\n"

    def event(self, seen: int | None, seq: int) -> str:
        # the walls of one area woken by one sequence number send the same event: written once
        return self.values.event(
            (self.name, self.area, seen, seq), lambda: self._event_text(seen, seq)
        )

    def _event_text(self, seen: int | None, seq: int) -> str:
        current = self.values.values(self.name, self.metric, self.category, seq)
        old = self.values.known(self.name, seen) if seen is not None else None
        breaks, colors = self.values.breaks(self.name, self.fmt, seq, self.area, self.grids,
                                            current)  # fmt: skip
        body: dict[str, object] = {"seq": seq, "breaks": breaks, "colors": colors,
                                   "format": self.fmt, "kpi": self.values.kpis(seq, self.area),
                                   **self._clock(seq)}  # fmt: skip
        if old is None:
            body.update(full=True, zero=ZERO_COLOR,
                        values={g: v for g, v in current.items() if g in self.grids})  # fmt: skip
        else:
            changed, removed = self.values.changes(self.name, seen, old, seq, current)  # type: ignore[arg-type]
            merged: dict[str, float | None] = {g: v for g, v in changed.items() if g in self.grids}
            merged.update({g: None for g in removed if g in self.grids})
            body.update(full=False, values=merged)
        data = json.dumps(body, separators=(",", ":"))
        return f"id: {seq}\nevent: grids\ndata: {data}\n\n"
