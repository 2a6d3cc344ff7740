"""The worker: reads the incident stream in a consumer group, validates, places each incident in
its grid and applies the counts. Several workers may run at once; each entry counts once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import redis

from cockpit.aggregates import IncidentAggregates, count_groups
from cockpit.areastore import Geography, NoAreasError, load_geography
from cockpit.contract import CATEGORIES, GROUP, INCIDENTS, Reject, decode_fields, validate_incidents

log = logging.getLogger(__name__)

CATEGORY_INDEX = {c: i for i, c in enumerate(CATEGORIES)}


class Prepared(NamedTuple):
    """A batch ready to apply: in the argument order of IncidentAggregates.apply_batch."""

    entry_ids: list[str]
    groups: list[tuple[int, str, list[tuple[str, int]]]]
    rejects: list[Reject]
    n_valid: int
    max_ts_ms: int


@dataclass
class WorkerStats:
    applied: int = 0
    dead: int = 0
    batches: int = 0
    claimed: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)


class Worker:
    """One consumer of the ``cockpit`` group."""

    def __init__(
        self,
        client: redis.Redis,
        name: str | None = None,
        batch_size: int = 5000,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.r = client
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.clock = clock
        self.aggregates = IncidentAggregates(client)
        self.stats = WorkerStats()
        self._last_roll = 0.0
        self._last_claim = 0.0

    def ensure_group(self) -> None:
        try:
            self.r.xgroup_create(INCIDENTS, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self, stop: Callable[[], bool] = lambda: False) -> WorkerStats:
        """Process until ``stop()`` is true."""
        backoff = 0.1
        while not stop():
            try:
                self.ensure_group()
                wait_for_areas(self.r, stop, timeout=float("inf"))
                while not stop():
                    self.step()
                    backoff = 0.1
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.stats.errors += 1
                log.warning("Redis unreachable (%s); retrying in %.1f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis lost its data (restart without persistence): start the group afresh.
                self.stats.errors += 1
                log.warning("consumer group missing; recreating it")
        return self.stats

    def step(self) -> int:
        """Read and apply one batch (new entries, or a dead consumer's pending ones)."""
        now = time.monotonic()
        if now - self._last_roll >= 1.0:
            self.aggregates.roll_windows()
            self._last_roll = now
        entries = []
        if now - self._last_claim >= self.claim_idle_ms / 2000:
            entries = self._claim_stale()
            self._last_claim = now
        if not entries:
            resp = self.r.xreadgroup(
                GROUP, self.name, {INCIDENTS: ">"}, count=self.batch_size, block=self.block_ms
            )
            entries = resp[0][1] if resp else []
        if entries:
            self.process(entries)
        return len(entries)

    def _claim_stale(self) -> list:
        """Take over entries another consumer read but never acknowledged (it died)."""
        _next, claimed, *_ = self.r.xautoclaim(
            INCIDENTS, GROUP, self.name, self.claim_idle_ms, "0-0", count=self.batch_size
        )
        self.stats.claimed += len(claimed)
        return claimed

    def process(self, raw_entries: list) -> None:
        geo = load_geography(self.r)
        entries = [
            (eid.decode() if isinstance(eid, bytes) else eid, decode_fields(f or {}))
            for eid, f in raw_entries
        ]
        excluded: set[str] = set()
        for _attempt in range(5):
            todo = [e for e in entries if e[0] not in excluded]
            if not todo:
                return
            prepared = self._prepare(geo, todo)
            gone = self.aggregates.apply_batch(INCIDENTS, GROUP, *prepared)
            if not gone:
                self.stats.applied += prepared.n_valid
                self.stats.dead += len(prepared.rejects)
                self.stats.batches += 1
                return
            excluded.update(gone)  # another worker applied these meanwhile
        raise RuntimeError("batch kept conflicting with another worker")

    def _prepare(self, geo: Geography, entries: list[tuple[str, dict[str, str]]]) -> Prepared:
        now_ms = int(self.clock() * 1000)
        batch = validate_incidents(entries, now_ms, geo.bbox)
        rejects = list(batch.rejects)
        pos = geo.locator.locate(batch.lon, batch.lat)
        inside = pos >= 0
        if not inside.all():
            fields_of = dict(entries)
            for k in np.flatnonzero(~inside):
                eid = batch.entry_ids[k]
                detail = f"lat={batch.lat[k]}, lon={batch.lon[k]} lies in no grid"
                rejects.append(Reject(eid, "outside_map", detail, fields_of[eid]))
        cat_idx = np.fromiter((CATEGORY_INDEX[c] for c in batch.category), np.int64, len(batch))
        minute = batch.ts_ms // 60_000
        groups = count_groups(
            geo.codes, pos[inside], cat_idx[inside], minute[inside], list(CATEGORIES)
        )
        n_valid = int(inside.sum())
        max_ts = int(batch.ts_ms[inside].max()) if n_valid else 0
        return Prepared([e[0] for e in entries], groups, rejects, n_valid, max_ts)


def wait_for_areas(client: redis.Redis, stop: Callable[[], bool], timeout: float = 60.0) -> None:
    """Block until grids are loaded (the demo loads them just after starting the worker)."""
    deadline = time.monotonic() + timeout
    while not stop():
        try:
            load_geography(client)
            return
        except NoAreasError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
