"""The alert engine: reads the feeds, runs the rules, keeps the alerts in Redis.

One process (``cockpit alerts run``) reads ``cockpit:in:gauges``, ``cockpit:in:trucks``,
``cockpit:in:incidents`` and ``cockpit:in:cap`` in its own consumer group ``alerts`` (the
aggregates worker's group ``cockpit`` is not touched) and acknowledges each batch after handling
it:

- gauge readings -> :class:`~cockpit.alerts.rules.FloodRule` of that gauge (thresholds and
  catchment from the reference data); the alert covers the grids the catchment intersects;
- truck pings -> :class:`~cockpit.alerts.rules.TruckRule` (sites = building + disposal sites,
  forbidden zones, permitted hours from the reference data; minutes from :class:`EngineConfig`);
  the alert covers the grid of the truck's position;
- incidents of category ``dispute`` with an address -> :class:`DisputeRule`;
- CAP 1.2 documents (field ``xml``) -> :func:`import_cap`; a malformed or hostile document goes
  to ``cockpit:deadletter`` with reason ``cap_refused`` and the refusal's text.

Timers run inside :meth:`AlertEngine.step` when due (every ``timer_s`` of the injected clock):
truck offline checks, escalation of open alerts, rising risk per grid, and expiry of old
disputes. Rules decide clearing and its hysteresis.

Idempotence. An entry is acknowledged only after its alerts and rule state are written. If the
engine dies in between, the entry is delivered again: the rules ignore readings that are not
newer than the stored state and count an incident once by id, and an alert's id is derived from
its situation's dedup key and created with SET NX, so a redelivered entry cannot raise twice.

Leader lock. Rule state is read, changed and written per gauge and truck, and readings must be
applied in order, so only one engine evaluates at a time: the leader holds
``cockpit:alerts:leader`` (``SET NX PX lock_ttl_ms``, renewed on every step by a script that
checks the holder). Other engines are standbys: their ``step`` does nothing. When the leader
dies its lock expires and a standby takes over; on taking over it first claims every entry the
group had delivered but not acknowledged (the old leader's unfinished work) and handles it.
Should a stalled old leader still write after losing the lock, SET NX and compare-and-set in
:mod:`cockpit.alerts.store` still keep alerts unique and changes unlost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
from shapely.geometry import mapping

from cockpit.aggregates import ALL, hour_buckets
from cockpit.alerts import store
from cockpit.alerts.area import grids_for_area
from cockpit.alerts.cap import CapChange, CapError, apply_cap, parse_cap
from cockpit.alerts.early_warning import (
    DisputeRule,
    DisputeState,
    RisingRiskRule,
    RisingRiskState,
    address_key,
)
from cockpit.alerts.escalation import DEFAULT_POLICY, EscalationPolicy, escalate
from cockpit.alerts.model import Alert, AlertEvent, alert_id, apply_event, transition
from cockpit.alerts.rules import FloodRule, FloodState, TruckPing, TruckRule, TruckState
from cockpit.apply import HEALTH, INC_PREFIX
from cockpit.areastore import (
    REFERENCE_KEY,
    REFERENCE_VERSION_KEY,
    Geography,
    NoAreasError,
    load_geography,
)
from cockpit.consumer import Backoff, StreamConsumer
from cockpit.contract import (
    DEADLETTER,
    GAUGES,
    INCIDENTS,
    TRUCKS,
    decode_fields,
    parse_ts_ms,
    validate_gauges,
    validate_trucks,
)
from geo.reference import ReferenceData

log = logging.getLogger(__name__)

#: CAP 1.2 documents, one per entry in the field ``xml``.
CAP_STREAM = "cockpit:in:cap"
GROUP = "alerts"
INPUTS: tuple[str, ...] = (GAUGES, TRUCKS, INCIDENTS, CAP_STREAM)
LEADER_KEY = "cockpit:alerts:leader"
DEADLETTER_MAXLEN = 100_000
CAP_REFUSED = "cap_refused"
_RETRIES = 8

_LEAD = """
-- 1: renewed, 2: newly acquired, 0: someone else leads
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 2 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class EngineConfig:
    """Tunables of the engine; :meth:`from_env` reads ``COCKPIT_ALERT_*`` variables."""

    stop_minutes: float = 15.0
    offline_minutes: float = 10.0
    timer_s: float = 30.0
    lock_ttl_ms: int = 15_000
    batch: int = 1000
    #: Hours of per-grid history for rising risk, and the least that must exist to judge.
    history_hours: int = 7 * 24
    min_history_hours: int = 24
    escalation: EscalationPolicy = field(default=DEFAULT_POLICY)
    rising: RisingRiskRule = field(default_factory=RisingRiskRule)
    disputes: DisputeRule = field(default_factory=DisputeRule)

    def __post_init__(self) -> None:
        if self.stop_minutes <= 0 or self.offline_minutes <= 0:
            raise ValueError("stop and offline minutes must be positive")
        if not 1 <= self.timer_s <= 3600:
            raise ValueError(f"timer_s={self.timer_s} must be between 1 and 3600 seconds")
        if self.lock_ttl_ms < 100:
            raise ValueError("lock_ttl_ms must be at least 100")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EngineConfig:
        """``COCKPIT_ALERT_STOP_MINUTES``, ``_OFFLINE_MINUTES``, ``_TIMER_S`` (else defaults)."""
        env = os.environ if env is None else env
        values: dict[str, float] = {}
        for name in ("stop_minutes", "offline_minutes", "timer_s"):
            raw = env.get("COCKPIT_ALERT_" + name.upper(), "")
            if raw:
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise ValueError(
                        f"COCKPIT_ALERT_{name.upper()}={raw!r} is not a number"
                    ) from None
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class EngineStats:
    """What the engine did since it started."""

    handled: int = 0
    raised: int = 0
    changed: int = 0
    dead: int = 0
    claimed: int = 0
    timers: int = 0


def import_cap(r: redis.Redis, xml: str | bytes, geo: Geography, now: float) -> list[CapChange]:
    """Apply one CAP document to the stored alerts; returns what it did.

    Raises :class:`CapError` (with the reason) for a malformed or hostile document, before
    anything is written. Update and Cancel are compare-and-set and audited under the sender.
    """
    msg = parse_cap(xml)
    for _attempt in range(_RETRIES):
        existing = store.cap_alerts(r)
        changes = apply_cap(existing, msg, geo.areas, now)
        try:
            for change in changes:
                if change.action == "create" and change.alert is not None:
                    if not store.create_alert(r, change.alert, geo, actor=msg.sender):
                        change.action, change.reason = "duplicate", f"{msg.key} already applied"
                elif change.action in ("update", "cancel") and change.alert is not None:
                    store.update_alert(
                        r, existing[change.alert.id], change.alert, geo, action=change.action,
                        actor=msg.sender, comment=msg.note or msg.identifier, audit=True,
                    )  # fmt: skip
        except store.Conflict:
            continue  # the referenced alert changed meanwhile: apply to the fresh one
        return changes
    raise store.Conflict(f"CAP {msg.identifier}: its alerts kept changing; try again")


class AlertEngine(StreamConsumer):
    """One alert engine process (see the module docstring); ``clock`` gives epoch seconds."""

    group = GROUP
    streams = INPUTS

    def __init__(
        self,
        r: redis.Redis,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self.r = r
        self.clock = clock
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.config = config or EngineConfig.from_env()
        self.stats = EngineStats()
        self._token = uuid.uuid4().hex
        self._lead = r.register_script(_LEAD)
        self._release = r.register_script(_RELEASE)
        self.leader = False
        self._last_timer: float | None = None
        self._ref_raw: bytes | None = None
        self._ref: ReferenceData | None = None
        self._ref_checked = -1e18
        self._ref_version: bytes | None = None
        self._flood: dict[str, FloodRule] = {}
        self._gauge_grids: dict[str, list[str]] = {}
        self._truck_rule: TruckRule | None = None
        self._history: tuple[int, list[str], np.ndarray] | None = None

    # -- leadership ---------------------------------------------------------------------

    def lead(self) -> bool:
        """Take or renew the leader lock; True while this engine leads."""
        got = int(self._lead(keys=[LEADER_KEY], args=[self._token, self.config.lock_ttl_ms]))
        was = self.leader
        self.leader = got > 0
        if self.leader and not was:
            log.info("alert engine %s leads", self.name)
            self.ensure_groups()
            self._claim_pending()
        elif was and not self.leader:
            log.warning("alert engine %s lost the leader lock", self.name)
        return self.leader

    def release(self) -> None:
        """Give the lock up (on a clean stop), so a standby takes over at once."""
        self._release(keys=[LEADER_KEY], args=[self._token])
        self.leader = False

    def _claim_pending(self) -> None:
        """Take over every entry delivered to the group but never acknowledged."""
        for stream in INPUTS:
            start = "0-0"
            while True:
                reply = self.r.xautoclaim(
                    stream, GROUP, self.name, min_idle_time=0, start_id=start,
                    count=self.config.batch,
                )  # fmt: skip
                start, entries = _s(reply[0]), reply[1]
                if len(reply) > 2 and reply[2]:
                    self.r.xack(stream, GROUP, *reply[2])  # trimmed away: nothing to handle
                if entries:
                    self.stats.claimed += len(entries)
                    self._handle(stream, entries)
                if start == "0-0" or not entries:
                    break

    # -- the loop -----------------------------------------------------------------------

    def step(self, block_ms: int | None = None) -> int:
        """Lead (or stand by), handle one round of new entries, run timers when due.

        Returns the number of entries handled (0 for a standby). ``block_ms`` None does not
        block (tests); :meth:`run` blocks up to a second for new entries.
        """
        if not self.lead():
            return 0
        reply = self.read_new(self.r, self.config.batch, block_ms)
        handled = 0
        for stream, entries in reply or []:
            handled += self._handle(_s(stream), entries)
        self.timers()
        return handled

    def run(self, stop: Callable[[], bool] = lambda: False) -> EngineStats:
        """Step until ``stop()``; a standby retries the lock; Redis outages are waited out."""
        try:
            self.consume(stop)
        finally:
            with contextlib.suppress(redis.RedisError):
                self.release()
        return self.stats

    def serve(self, stop: Callable[[], bool], backoff: Backoff) -> None:
        """One round: lead and step, or as a standby wait a while (a third of the lock's
        time to live, at most a second) for the lock; without grids wait a second."""
        try:
            if not self.lead():
                time.sleep(min(1.0, self.config.lock_ttl_ms / 3000))
                return
            self.step(block_ms=min(1000, self.config.lock_ttl_ms // 3))
            backoff.reset()
        except NoAreasError:
            time.sleep(1.0)

    def redis_away(self, exc: BaseException) -> None:
        # the lock may lapse meanwhile; leading again then ensures groups and claims pending
        self.leader = False

    # -- entries ------------------------------------------------------------------------

    def _handle(self, stream: str, raw_entries: list) -> int:
        entries = [(_s(eid), decode_fields(f or {})) for eid, f in raw_entries]
        if not entries:
            return 0
        try:
            self._dispatch(stream, entries)
        except (redis.ConnectionError, redis.TimeoutError, NoAreasError):
            raise
        except Exception:  # noqa: BLE001 - isolate the entry that breaks handling
            log.exception("alert batch of %d from %s failed; isolating", len(entries), stream)
            for entry in entries:
                try:
                    self._dispatch(stream, [entry])
                except (redis.ConnectionError, redis.TimeoutError, NoAreasError):
                    raise
                except Exception as exc:  # noqa: BLE001
                    self._dead_letter(stream, entry, "alert_failed", _one_line(exc))
        self.r.xack(stream, GROUP, *[eid for eid, _f in entries])
        self.stats.handled += len(entries)
        return len(entries)

    def _dispatch(self, stream: str, entries: list[tuple[str, dict[str, str]]]) -> None:
        now = self.clock()
        if stream == GAUGES:
            self._gauges(entries, now)
        elif stream == TRUCKS:
            self._trucks(entries, now)
        elif stream == INCIDENTS:
            self._disputes(entries, now)
        elif stream == CAP_STREAM:
            self._cap(entries, now)

    def _dead_letter(
        self, stream: str, entry: tuple[str, dict[str, str]], reason: str, detail: str
    ) -> None:
        """Dead-letter and acknowledge in one transaction, so a redelivery cannot repeat it."""
        eid, fields = entry
        with self.r.pipeline(transaction=True) as pipe:
            pipe.xadd(DEADLETTER, {
                "stream": stream, "entry_id": eid, "reason": reason, "detail": detail[:1000],
                "fields": json.dumps(fields, ensure_ascii=False)[:100_000],
            }, maxlen=DEADLETTER_MAXLEN, approximate=True)  # fmt: skip
            pipe.hincrby(HEALTH, f"{stream}|dead|{reason}", 1)
            pipe.xack(stream, GROUP, eid)
            pipe.execute()
        self.stats.dead += 1

    def _geo(self) -> Geography:
        return load_geography(self.r)

    def _reference(self) -> ReferenceData | None:
        """The reference data; rules rebuilt when it changed. A new import is seen by the next
        batch (one GET of the small version key); data stored without a version key (by an
        older release) is re-read at most once a minute."""
        version = self.r.get(REFERENCE_VERSION_KEY)
        if version is not None:
            if version == self._ref_version:
                return self._ref
        else:
            mono = time.monotonic()
            if mono - self._ref_checked < 60.0:
                return self._ref
            self._ref_checked = mono
        self._ref_version = version
        raw = self.r.get(REFERENCE_KEY)
        if raw == self._ref_raw:
            return self._ref
        self._ref_raw = raw
        self._ref = ReferenceData.from_bytes(raw) if raw else None
        self._build_rules(self._ref)
        return self._ref

    def _build_rules(self, ref: ReferenceData | None) -> None:
        self._flood, self._gauge_grids, self._truck_rule = {}, {}, None
        if ref is None:
            return
        areas = self._geo().areas
        for gid, row in ref.gauges.iterrows():
            area = mapping(row["catchment"])
            self._flood[str(gid)] = FloodRule(
                str(gid), warning_m=float(row["warning_m"]), danger_m=float(row["danger_m"]),
                rise_m_per_h=float(row["rise_m_per_h"]), area=area,
            )  # fmt: skip
            self._gauge_grids[str(gid)] = grids_for_area(row["catchment"], areas)
        sites = (*ref.building_sites.geometry, *ref.disposal_sites.geometry)
        zones = {str(z): g for z, g in zip(ref.forbidden_zones.index,
                                           ref.forbidden_zones.geometry, strict=True)}  # fmt: skip
        self._truck_rule = TruckRule(
            stop_minutes=self.config.stop_minutes, offline_minutes=self.config.offline_minutes,
            permitted_hours=tuple(ref.truck_hours), sites=tuple(sites), forbidden_zones=zones,
        )  # fmt: skip

    def apply(self, event: AlertEvent, grids: list[str] | None, geo: Geography) -> Alert | None:
        """Fold a rule's event into the stored alert (SET NX for raises, CAS for changes)."""
        for _attempt in range(_RETRIES):
            existing = store.get_alert(self.r, alert_id(event.dedup_key))
            new = apply_event(existing, event, grids)
            if new is None:
                return None
            if existing is None:
                if store.create_alert(self.r, new, geo):
                    self.stats.raised += 1
                    return new
                continue  # another engine raised it: the next round sees it and does nothing
            try:
                store.update_alert(self.r, existing, new, geo, action=event.action)
            except store.Conflict:
                continue
            self.stats.changed += 1
            return new
        raise store.Conflict(f"alert for {event.dedup_key} kept changing")

    def _point_grids(self, event: AlertEvent, geo: Geography) -> list[str]:
        return grids_for_area(event.geometry, geo.areas) if event.geometry else []

    def _gauges(self, entries: list[tuple[str, dict[str, str]]], now: float) -> None:
        ref = self._reference()
        if ref is None:
            return  # no thresholds without reference data
        geo = self._geo()
        checked = validate_gauges(entries, int(now * 1000), set(self._flood))
        names = [str(v["gauge"]) for _eid, v in checked.valid]
        states = store.load_states(self.r, "flood", names)
        for _eid, v in checked.valid:
            gauge = str(v["gauge"])
            doc = states.get(gauge)
            state = FloodState.from_dict(doc) if doc else None
            level, ts = float(v["level_m"]), int(v["ts"]) / 1000  # type: ignore[arg-type]
            state, events = self._flood[gauge].evaluate(state, level, ts, now)
            for event in events:
                self.apply(event, self._gauge_grids[gauge], geo)
            states[gauge] = state.to_dict()
        store.save_states(self.r, "flood", states)

    def _trucks(self, entries: list[tuple[str, dict[str, str]]], now: float) -> None:
        self._reference()
        rule = self._truck_rule
        if rule is None:
            return
        geo = self._geo()
        checked = validate_trucks(entries, int(now * 1000), geo.bbox)
        names = [str(v["truck"]) for _eid, v in checked.valid]
        states = store.load_states(self.r, "truck", names)
        for _eid, v in checked.valid:
            truck = str(v["truck"])
            ping = TruckPing(
                truck, int(v["ts"]) / 1000, float(v["lon"]), float(v["lat"]),  # type: ignore[arg-type]
                None if v["speed_kmh"] is None else float(v["speed_kmh"]),  # type: ignore[arg-type]
                bool(v["loaded"]),
            )  # fmt: skip
            doc = states.get(truck)
            state, events = rule.evaluate(TruckState.from_dict(doc) if doc else None, ping, now)
            for event in events:
                self.apply(event, self._point_grids(event, geo), geo)
            states[truck] = state.to_dict()
        store.save_states(self.r, "truck", states)

    def _disputes(self, entries: list[tuple[str, dict[str, str]]], now: float) -> None:
        found = []
        for _eid, f in entries:
            address = (f.get("address") or "").strip()
            if f.get("category") != "dispute" or not address or not f.get("id"):
                continue
            try:
                ts = parse_ts_ms(f.get("ts", "")) / 1000
                lon, lat = float(f["lon"]), float(f["lat"])
            except Exception:  # noqa: BLE001, S112 - the worker dead-letters bad incidents
                continue
            if ts > now + 300 or not (np.isfinite(lon) and np.isfinite(lat)):
                continue
            found.append((f["id"][:128], address[:500], ts, lon, lat))
        if not found:
            return
        geo = self._geo()
        keys = [address_key(a) for _i, a, _t, _x, _y in found]
        states = store.load_states(self.r, "dispute", keys)
        rule = self.config.disputes
        for key, (incident, address, ts, lon, lat) in zip(keys, found, strict=True):
            doc = states.get(key)
            state = DisputeState.from_dict(doc) if doc else None
            state, events = rule.evaluate(state, incident, address, ts, now, lon, lat)
            for event in events:
                self.apply(event, self._point_grids(event, geo), geo)
            states[key] = state.to_dict()
        store.save_states(self.r, "dispute", states)

    def _cap(self, entries: list[tuple[str, dict[str, str]]], now: float) -> None:
        geo = self._geo()
        for entry in entries:
            xml = entry[1].get("xml", "")
            try:
                changes = import_cap(self.r, xml, geo, now)
            except CapError as exc:
                self._dead_letter(CAP_STREAM, entry, CAP_REFUSED, str(exc))
                continue
            for change in changes:
                log.info("CAP %s: %s %s", entry[0], change.action, change.reason)

    # -- timers -------------------------------------------------------------------------

    def timers(self, force: bool = False) -> bool:
        """Run the timed checks if ``timer_s`` passed since the last run (or ``force``)."""
        now = self.clock()
        last = self._last_timer
        if not force and last is not None and now - last < self.config.timer_s:
            return False
        self._last_timer = now
        geo = self._geo()
        self.check_offline(now, geo)
        self.check_disputes(now, geo)
        self.check_rising(now, geo)
        self.escalate_open(now, geo)
        self.stats.timers += 1
        return True

    def check_offline(self, now: float, geo: Geography) -> None:
        """One offline notice per silent truck."""
        self._reference()
        rule = self._truck_rule
        if rule is None:
            return
        states = store.load_states(self.r, "truck")
        changed = {}
        for truck, doc in states.items():
            state, events = rule.check_offline(TruckState.from_dict(doc), now)
            for event in events:
                self.apply(event, self._point_grids(event, geo), geo)
            if events:
                changed[truck] = state.to_dict()
        store.save_states(self.r, "truck", changed)

    def check_disputes(self, now: float, geo: Geography) -> None:
        """Let disputes leave the window; clear warnings that fell below the threshold."""
        states = store.load_states(self.r, "dispute")
        keep, drop = {}, []
        for key, doc in states.items():
            state, events = self.config.disputes.check(DisputeState.from_dict(doc), now)
            for event in events:
                self.apply(event, None, geo)
            if state.incidents or state.alert_key:
                if state.to_dict() != doc:
                    keep[key] = state.to_dict()
            else:
                drop.append(key)
        store.save_states(self.r, "dispute", keep)
        store.delete_states(self.r, "dispute", drop)

    def _hour_history(self, hour: int, geo: Geography) -> tuple[list[str], np.ndarray] | None:
        """Per grid, incidents of each full hour before the last one: (grid ids, hours x grids).

        The hour the last-hour window overlaps is left out, so the observation is not part of
        its own baseline. Hours before the first stored bucket do not count (a new install has
        no history, not a quiet one); None while fewer than ``min_history_hours`` exist.
        """
        if self._history is not None and self._history[0] == hour:
            _h, grids, matrix = self._history
            return (grids, matrix) if len(matrix) >= self.config.min_history_hours else None
        last = hour - 2
        hours = list(range(last - self.config.history_hours + 1, last + 1))
        # with the minutes not yet folded into them (cockpit/apply.py)
        buckets = hour_buckets(self.r, ALL, hours[0], hours[-1]) if hours else []
        first = next((i for i, b in enumerate(buckets) if b), len(buckets))
        buckets = buckets[first:]
        grids = [str(g) for g in geo.grid_ids]
        index = geo.grid_index
        matrix = np.zeros((len(buckets), len(grids)), dtype=np.int64)
        for row, bucket in enumerate(buckets):
            for area, count in bucket.items():
                col = index.get(_s(area))
                if col is not None:
                    matrix[row, col] = int(count)
        self._history = (hour, grids, matrix)
        return (grids, matrix) if len(matrix) >= self.config.min_history_hours else None

    def _minutes(self, first: int, last: int, geo: Geography) -> dict[str, np.ndarray]:
        """Per grid, incidents in each minute bucket from ``first`` to ``last`` (event time,
        oldest first; one pipe). Grids without incidents are left out."""
        with self.r.pipeline(transaction=False) as pipe:
            for m in range(first, last + 1):
                pipe.hgetall(f"{INC_PREFIX}m:{m}:all")
            buckets = pipe.execute()
        index = geo.grid_index
        out: dict[str, np.ndarray] = {}
        for row, bucket in enumerate(buckets):
            for area, count in bucket.items():
                grid = _s(area)
                if grid in index:
                    if grid not in out:
                        out[grid] = np.zeros(len(buckets), dtype=np.int64)
                    out[grid][row] += int(count)
        return out

    def check_rising(self, now: float, geo: Geography) -> None:
        """Rising risk per grid: the last hour against the grid's own hourly history.

        The hour counted is the 60 minute buckets up to the one holding ``now``; the situation
        is named by its onset in event time (see :mod:`cockpit.alerts.early_warning`), for which
        the hour before is read only when a grid is about to raise.
        """
        history = self._hour_history(int(now // 3600), geo)
        if history is None:
            return
        grids, matrix = history
        column = {g: i for i, g in enumerate(grids)}
        minute = int(now // 60)
        window_end = (minute + 1) * 60.0
        recent = self._minutes(minute - 59, minute, geo)
        observed = {g: int(counts.sum()) for g, counts in recent.items()}
        older: dict[str, np.ndarray] | None = None
        rule = self.config.rising
        states = store.load_states(self.r, "rising")
        # a grid with fewer than min_count incidents cannot raise; only open ones can clear
        candidates = {g for g, n in observed.items() if n >= rule.min_count} | set(states)
        keep, drop = {}, []
        for grid in sorted(candidates):
            if grid not in column:
                drop.append(grid)
                continue
            doc = states.get(grid)
            state = RisingRiskState.from_dict(doc) if doc else None
            series = matrix[:, column[grid]].tolist()
            count = observed.get(grid, 0)
            earlier: list[int] = []
            if (state is None or state.alert_key is None) and rule.would_raise(count, series):
                if older is None:
                    older = self._minutes(minute - 118, minute - 60, geo)
                earlier = _earlier_windows(older.get(grid), recent[grid])
            state, events = rule.evaluate(
                state, grid, count, series, now, window_end=window_end, earlier=earlier
            )
            for event in events:
                self.apply(event, [grid], geo)
            if state.alert_key:
                keep[grid] = state.to_dict()
            elif doc:
                drop.append(grid)
        store.save_states(self.r, "rising", keep)
        store.delete_states(self.r, "rising", drop)

    def escalate_open(self, now: float, geo: Geography) -> int:
        """Clear open alerts past their ``expires_at`` (CAP ``expires``), and bring the others'
        escalation level up to date; returns how many changed."""
        moved = 0
        for alert in store.get_alerts(self.r, store.open_alert_ids(self.r)):
            if alert.expires_at is not None and now >= alert.expires_at:
                done = transition(alert, "clear", "engine", now, "expired")
                with contextlib.suppress(store.Conflict):
                    store.update_alert(self.r, alert, done, geo, action="clear", comment="expired")
                    moved += 1
                continue
            up = escalate(alert, now, self.config.escalation)
            if up is alert:
                continue
            try:
                store.update_alert(
                    self.r, alert, up, geo, action="escalate", actor="engine",
                    comment=f"{alert.escalation_level} -> {up.escalation_level}", audit=True,
                )  # fmt: skip
                moved += 1
            except store.Conflict:
                pass  # someone acted on it meanwhile; the next timer looks again
        return moved


def _earlier_windows(older: np.ndarray | None, recent: np.ndarray) -> list[int]:
    """Counts of the 60-minute windows ending 1, 2, ... 59 minutes before the last minute of
    ``recent`` (60 buckets), given the 59 buckets before it (``older``; None: all zero)."""
    before = older if older is not None else np.zeros(len(recent) - 1, dtype=np.int64)
    run = np.concatenate([[0], np.cumsum(np.concatenate([before, recent]))])
    width = len(recent)
    ends = np.arange(len(run) - 2, width - 1, -1)  # window ends, newest earlier one first
    return [int(run[e] - run[e - width]) for e in ends]


def _s(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
