"""Grid values pushed to the browser as server-sent events, instead of waiting for the next poll.

    GET /push/grids?metric=&category=     text/event-stream; needs ``view_counts``

The first event holds every grid value of the user's scope; the next ones only what changed
(values keyed by grid id, never geometry), at most one every ``interval``. Each event also
carries the scope's two KPIs (incidents in the last hour, open incidents) and the time of the
worker's last apply, and an ``age`` event every ``heartbeat`` keeps the data-age badge honest
while nothing changes, so a page with a live stream needs no polling for the grid layer.

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
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import flask
import redis

from cockpit.aggregates import ALL, SEQ, open_key, window_key
from cockpit.apply import HEALTH
from cockpit.areastore import Geography
from cockpit.contract import INCIDENTS
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
from layers.grids import ZERO_COLOR, scheme

PUSH_PATH = "/push/grids"


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


class SeqWatch:
    """The worker's sequence number, read by one thread per process; streams wait on it."""

    def __init__(self, client: redis.Redis, poll_s: float) -> None:
        self._client = client
        self._poll_s = poll_s
        self._changed = threading.Condition()
        self._seq: int | None = None
        self._started = False

    def wait_newer(self, seen: int | None, timeout: float) -> int | None:
        """The sequence number once it differs from ``seen``, or None after ``timeout``."""
        self._start()
        with self._changed:
            self._changed.wait_for(lambda: self._seq is not None and self._seq != seen, timeout)
            return self._seq if self._seq != seen else None

    def _start(self) -> None:
        with self._changed:
            if self._started:
                return
            self._started = True  # started in the web process (after gunicorn's fork)
        threading.Thread(target=self._run, name="cockpit-seq-watch", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                seq: int | None = int(self._client.get(SEQ) or 0)
            except redis.RedisError:
                seq = None  # streams wait; their next age event fails and ends them (pages poll)
            if seq is not None:
                with self._changed:
                    if seq != self._seq:
                        self._seq = seq
                        self._changed.notify_all()
            time.sleep(self._poll_s)


class SharedValues:
    """What every stream of a process needs for one sequence number, computed once: snapshots
    (immutable per name and sequence number), their differences, and class breaks per area."""

    def __init__(self, client: redis.Redis, size: int = 64) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, object] = OrderedDict()
        self._size = size

    def _memo(self, key: tuple, make: Callable[[], object]) -> object:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = make()  # outside the lock: a slow Redis read must not stall other streams
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return value

    def values(self, name: str, metric: str, category: str, seq: int) -> dict[str, float]:
        return self._memo(  # type: ignore[return-value]
            ("values", name, seq),
            lambda: snapshot(
                self._client, name, seq, lambda: metric_values(self._client, metric, category)
            ),
        )

    def known(self, name: str, seq: int) -> dict[str, float] | None:
        """The values of an earlier sequence number this process or Redis still holds."""
        with self._lock:
            held = self._cache.get(("values", name, seq))
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


def push_blueprint(
    redis_of: Callable[[], redis.Redis],
    geography_of: Callable[[], Geography],
    limits: PushLimits | None = None,
    stale_after_ms: int = 60_000,
) -> flask.Blueprint:
    limits = limits or PushLimits()
    bp = flask.Blueprint("push", __name__)
    streams = threading.BoundedSemaphore(limits.max_streams)
    shared: dict[str, object] = {}  # built on the first request, in the web process

    def parts() -> tuple[SeqWatch, SharedValues]:
        if not shared:
            client = redis_of()
            shared.setdefault("watch", SeqWatch(client, limits.poll_s))
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
        stream = GridStream(user, metric, category, geo, watch, values, limits, stale_after_ms)
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
    """One browser's stream: the values of its scope, then their changes."""

    def __init__(
        self, user: User, metric: str, category: str, geo: Geography, watch: SeqWatch,
        values: SharedValues, limits: PushLimits, stale_after_ms: int,
    ) -> None:  # fmt: skip
        self.area = user.area_id
        self.metric, self.category = metric, category
        self.name = f"{metric}:{category}"
        self.fmt = METRICS[metric][1]
        self.grids = scope_grids(geo, user.area_id)
        self.watch, self.values, self.limits = watch, values, limits
        self.stale_after_ms = stale_after_ms

    def events(self, since: int | None) -> Iterator[str]:
        yield f"retry: 3000\n: {self.name}\n\n"
        end = time.monotonic() + self.limits.max_age_s
        seen, sent_at = since, 0.0
        while (left := end - time.monotonic()) > 0:
            # coalesce: whatever changed during the interval travels in one event
            time.sleep(max(0.0, sent_at + self.limits.interval_s - time.monotonic()))
            seq = self.watch.wait_newer(seen, min(self.limits.heartbeat_s, left))
            if seq is None:
                yield self.age()
                continue
            yield self.event(seen, seq)
            seen, sent_at = seq, time.monotonic()

    def _clock(self, seq: int | None = None) -> dict[str, object]:
        """The badge's clock; for an event of sequence number ``seq`` the last apply is read
        once per process (every stream sends that event), for an age event each time."""
        return {"server_ms": int(time.time() * 1000), "stale_ms": self.stale_after_ms,
                "last_apply_ms": self.values.last_apply_ms(seq)}  # fmt: skip

    def age(self) -> str:
        return f"event: age\ndata: {json.dumps(self._clock(), separators=(',', ':'))}\n\n"

    def event(self, seen: int | None, seq: int) -> str:
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
