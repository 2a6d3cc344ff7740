"""The worker: reads the four input streams in the consumer group ``cockpit``, validates,
places points in grids and applies each batch atomically (see cockpit/apply.py).

Nothing is lost and nothing counts twice:
- an entry is applied and acknowledged in one atomic step, so redelivery cannot double it;
- entries a dead worker read but never acknowledged are claimed after ``claim_idle_ms``;
- an entry that makes processing fail is isolated from its batch and dead-lettered
  (``processing_failed``) with its fields, so it can neither stop the others nor loop;
- if Redis loses its data, the worker notices (the epoch key is gone), records the gap in
  ``cockpit:gaps``, restores the grids it holds in memory, recreates its groups and goes on;
- raw streams are trimmed to ``retention_ms`` but never past an entry not yet processed.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from cockpit.aggregates import IncidentAggregates
from cockpit.apply import Applier, Batch, Conflict, Sent
from cockpit.areastore import (
    VERSION_KEY,
    Geography,
    NoAreasError,
    known_gauges,
    load_geography,
    save_areas,
)
from cockpit.consumer import Backoff, StreamConsumer
from cockpit.contract import GAUGES, GROUP, INCIDENTS, SURVEYS, TRUCKS, Reject, decode_fields
from cockpit.counters import forget_slots
from cockpit.ingest.incidents import (
    Looked,
    build_incidents,
    check_incidents,
    look_up_incidents,
    prepare_incidents,
)
from cockpit.ingest.positions import prepare_gauges, prepare_trucks
from cockpit.ingest.surveys import prepare_surveys

log = logging.getLogger(__name__)

STREAMS = (INCIDENTS, GAUGES, TRUCKS, SURVEYS)
EPOCH = "cockpit:epoch"
GAPS = "cockpit:gaps"

# Remove consumer ARGV[2] from group ARGV[1] of each stream (KEYS) where it holds nothing: in
# one script, so a name is never removed with entries pending (they would be lost with it).
_DROP_IF_EMPTY = """
for _, stream in ipairs(KEYS) do
  local summary = redis.call('XPENDING', stream, ARGV[1])
  local held = 0
  if type(summary[4]) == 'table' then
    for _, c in ipairs(summary[4]) do
      if c[1] == ARGV[2] then held = tonumber(c[2]) end
    end
  end
  if held == 0 then redis.call('XGROUP', 'DELCONSUMER', stream, ARGV[1], ARGV[2]) end
end
"""


@dataclass
class WorkerStats:
    applied: int = 0
    dead: int = 0
    batches: int = 0
    claimed: int = 0
    conflicts: int = 0
    errors: int = 0
    gaps: int = 0
    started: float = field(default_factory=time.monotonic)


class Worker(StreamConsumer):
    """One consumer of the ``cockpit`` group."""

    group = GROUP
    streams = STREAMS

    def __init__(
        self,
        client: redis.Redis,
        name: str | None = None,
        batch_size: int = 5000,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        retention_ms: int = 24 * 3600 * 1000,
        max_deliveries: int = 3,
        clock: Callable[[], float] = time.time,
        overlap: bool = False,
    ) -> None:
        self.r = client
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.retention_ms = retention_ms
        self.max_deliveries = max_deliveries
        self.clock = clock
        self.applier = Applier(client)
        self.reader = _text_client(client)
        self._raw_reader = _text_client(client, _unparsed)
        self.aggregates = IncidentAggregates(client)
        self.stats = WorkerStats()
        self.epoch: bytes | None = None
        self.last_ok_ms = 0
        self._geo: Geography | None = None
        self._last = {"roll": 0.0, "claim": 0.0, "trim": 0.0}
        self._collect = False  # garbage collected between batches (collecting_between_batches)
        self._reads = 0  # batch reads so far: each is made under a name of its own
        # ... unique to this process even if another runs under the same name: the apply
        # script trusts a name's pending count only if no one else reads under it
        self._read_prefix = f"{self.name}/{uuid.uuid4().hex[:12]}"
        self._drop_if_empty = client.register_script(_DROP_IF_EMPTY)
        # overlap: batches of incidents are prepared while Redis applies the one before
        # (see _step_overlapped): one built and held for the script, one looked up
        self.overlap = overlap
        self._held: _Held | None = None
        self._looked: _Looked | None = None

    # -- the loop -----------------------------------------------------------------------
    def run(self, stop: Callable[[], bool] = lambda: False) -> WorkerStats:
        """Process until ``stop()`` is true; reconnect with backoff while Redis is away."""
        with self.collecting_between_batches():
            self.consume(stop)
        return self.stats

    @contextmanager
    def collecting_between_batches(self) -> Iterator[None]:
        """Python's automatic garbage collection off, the young generations collected at the
        start of each round and all of them every 30 s instead. A batch's tens of thousands
        of dicts and lists are freed by reference counting (they form no cycles), but while
        they live they set off collections that walk them all: 10 of 66 us per event at 557
        grids, 6.6 of them full collections (BENCHMARKS.md)."""
        enabled = gc.isenabled()
        gc.disable()
        self._collect = True
        try:
            yield
        finally:
            self._collect = False
            if enabled:
                gc.enable()

    def serve(self, stop: Callable[[], bool], backoff: Backoff) -> None:
        """Join the groups, wait for grids (putting back the ones held if Redis lost them),
        then step until ``stop()``."""
        self.ensure_groups()
        wait_for_areas(self.r, stop, timeout=float("inf"), restore=self._geo)
        self.aggregates.migrate_hash_counters()
        while not stop():
            try:
                self.step()
            except NoAreasError:
                self._grids_gone(stop)
                continue
            backoff.reset()
        self.settle()

    def _grids_gone(self, stop: Callable[[], bool]) -> None:
        """The grids vanished from Redis while its streams stayed (a key evicted under
        ``maxmemory``, or deleted by hand): put back the ones held and go on, instead of
        stopping. Batches in the pipeline were not sent; their entries stay pending and are
        taken up again (claim_stale)."""
        self.stats.errors += 1
        log.warning("the grids are gone from Redis; putting back the %s held",
                    f"{len(self._geo.grid_ids):,}" if self._geo else "none")  # fmt: skip
        self._held = self._looked = None
        wait_for_areas(self.r, stop, timeout=float("inf"), restore=self._geo)

    def redis_away(self, exc: BaseException) -> None:
        self.stats.errors += 1
        # batches in the pipeline stay pending under their reads' names; claim_stale takes
        # them up again
        self._held = self._looked = None

    def group_missing(self) -> None:
        """Redis lost its data: record the gap and restore the grids; :meth:`serve` then
        recreates the groups."""
        self.stats.errors += 1
        log.warning("consumer group missing (Redis lost its data?); recreating it")
        self._held = self._looked = None  # their entries went with the data
        self._check_epoch()

    def step(self) -> int:
        """Housekeeping when due, then read and apply one round of batches."""
        if self._collect:
            gc.collect(1)
        now = time.monotonic()
        if now - self._last["roll"] >= 1.0:
            self._check_epoch()
            self.aggregates.roll_windows()
            self._last["roll"] = now
        if now - self._last["trim"] >= 30.0:
            self.trim()
            self._last["trim"] = now
            if self._collect:
                gc.collect()
        if now - self._last["claim"] >= self.claim_idle_ms / 2000:
            self._last["claim"] = now
            claimed = self.claim_stale()
            if claimed:
                return claimed
        # A name per read: its pending list is then this read's entries alone, which the
        # apply script checks by their count (cockpit/apply.py). Redis 6.2 adds the name to
        # the group of every stream read, so it is removed where it got nothing; the apply
        # script removes it where it did, once its entries are acknowledged.
        self._reads += 1
        consumer = f"{self._read_prefix}/{self._reads}"
        if self.overlap:
            return self._step_overlapped(consumer)
        resp = self.read_new(self.reader, self.batch_size, self.block_ms, consumer)
        self._drop_if_empty(keys=list(self.streams), args=[GROUP, consumer])
        total = 0
        for stream, entries in resp or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            self.process(name, entries, consumer, own=True)
            total += len(entries)
        return total

    # -- overlap ------------------------------------------------------------------------
    def _step_overlapped(self, consumer: str) -> int:
        """One round of the overlapping worker (``cockpit worker``). Each incident batch
        goes through three stages a round apart: checked and placed (no Redis), its stored
        states looked up, built; then sent to the apply script. Redis runs batch n's script
        while this process parses and checks batch n + 2 and builds batch n + 1, so the two
        cores work at once. A batch whose states were read before the batch ahead of it was
        written (an update of an incident that batch creates) is refused by the script's
        state check, writing nothing, and prepared again."""
        busy = self._held is not None or self._looked is not None
        # with batches in the pipeline, only look for more: if there is none, they go now.
        # The reply is read whole (hiredis, in C) before the script is sent: a reply of
        # megabytes would otherwise wait in Redis's output buffer behind the script.
        reply = self.read_new(self._raw_reader, self.batch_size, None if busy else self.block_ms,
                              consumer)  # fmt: skip
        geo = self._geography()  # asked before the script goes: no Redis until it is done
        sent = self._send_held()
        built: _Held | None = None
        others: list[tuple[str, list]] = []
        checked: tuple[list, Looked | None] | None = None
        try:
            for stream, raw in _stream_entries(reply) or []:
                name = stream.decode() if isinstance(stream, bytes) else stream
                if name == INCIDENTS and raw:
                    entries = _decoded(raw)
                    checked = (entries, self._check(geo, entries))
                else:
                    others.append((name, raw))
            built = self._build(self._looked)
            self._looked = None
        finally:
            self._finish(sent)
        self._drop_if_empty(keys=list(self.streams), args=[GROUP, consumer])
        self._held = built
        for name, raw in others:
            self.process(name, raw, consumer, own=True)
        total = sum(len(raw) for _, raw in others)
        if checked is not None:
            entries, looked = checked
            total += len(entries)
            if looked is None:  # checking failed: the one-at-a-time path isolates the entry
                self.settle()
                self._process_entries(INCIDENTS, entries, consumer, own=True)
            else:
                look_up_incidents(self.r, looked)
                self._looked = _Looked(entries, looked, consumer)
        if not total:
            self.settle()
        return total

    def settle(self) -> None:
        """Apply the batches in the pipeline, if any, and wait for them."""
        self._finish(self._send_held())
        if self._looked is not None:
            self._held, self._looked = self._build(self._looked), None
            self._finish(self._send_held())

    def _check(self, geo: Geography, entries: list[tuple[str, dict[str, str]]]) -> Looked | None:
        try:
            return check_incidents(geo, entries, int(self.clock() * 1000))
        except Exception:  # noqa: BLE001
            log.exception("checking a batch of %d incidents failed", len(entries))
            return None

    def _build(self, looked: _Looked | None) -> _Held | None:
        """The looked-up batch built; if building fails, applied the one-at-a-time way."""
        if looked is None:
            return None
        try:
            return _Held(looked.entries, build_incidents(looked.looked), looked.consumer)
        except Exception:  # noqa: BLE001
            log.exception("preparing a batch of %d incidents failed", len(looked.entries))
        self._process_entries(INCIDENTS, looked.entries, looked.consumer, own=True)
        return None

    def _send_held(self) -> tuple[_Held, Sent] | None:
        held, self._held = self._held, None
        if held is None:
            return None
        return held, self.applier.send(INCIDENTS, GROUP, held.consumer, held.batch, own=True)

    def _finish(self, sent: tuple[_Held, Sent] | None) -> None:
        if sent is None:
            return
        held, handle = sent
        try:
            handle.result()
        except Conflict:
            # prepared again from fresh states (the usual path leaves out what others took)
            self.stats.conflicts += 1
            self._process_entries(INCIDENTS, held.entries, held.consumer, own=True)
            return
        except (redis.ConnectionError, redis.TimeoutError):
            raise
        except Exception:  # noqa: BLE001 - e.g. a script error: isolate the entry at fault
            log.exception("applying a batch of %d incidents failed", len(held.entries))
            self._process_entries(INCIDENTS, held.entries, held.consumer, own=True)
            return
        self._count(held.batch)

    # -- applying -----------------------------------------------------------------------
    def process(
        self, stream: str, raw_entries: list, consumer: str | None = None, own: bool = False
    ) -> None:
        """Apply entries pending for ``consumer`` (default: this worker's name); ``own``: they
        are all that was ever delivered to that name (one read's entries of ``stream``)."""
        self._process_entries(stream, _decoded(raw_entries), consumer, own)

    def _process_entries(
        self,
        stream: str,
        entries: list[tuple[str, dict[str, str]]],
        consumer: str | None = None,
        own: bool = False,
    ) -> None:
        consumer = consumer or self.name
        try:
            self._apply(stream, entries, consumer, own)
        except (redis.ConnectionError, redis.TimeoutError):
            raise
        except Exception:  # noqa: BLE001 - isolate the entry that breaks processing
            log.exception("batch of %d from %s failed; isolating entries", len(entries), stream)
            for entry in entries:  # (one entry is not all its name holds: not ``own``)
                try:
                    self._apply(stream, [entry], consumer)
                except (redis.ConnectionError, redis.TimeoutError):
                    raise
                except Exception as exc:  # noqa: BLE001
                    self._dead_letter(stream, entry, "processing_failed", _one_line(exc), consumer)

    def _apply(
        self,
        stream: str,
        entries: list[tuple[str, dict[str, str]]],
        consumer: str,
        own: bool = False,
    ) -> None:
        # ``own`` stays true on retries: the entries left out went to other consumers
        excluded: set[str] = set()
        for _attempt in range(20):
            todo = [e for e in entries if e[0] not in excluded]
            if not todo:
                return
            batch = self._prepare(stream, todo)
            try:
                self.applier.apply(stream, GROUP, consumer, batch, own)
            except Conflict as conflict:
                # another worker applied some entries, or changed an incident meanwhile:
                # drop what it applied and prepare again from fresh state
                self.stats.conflicts += 1
                excluded.update(conflict.gone)
                if conflict.slots:  # Redis lost the counter slot registry: register again
                    forget_slots()
                continue  # (a window that rolled meanwhile needs nothing but preparing again)
            self._count(batch)
            return
        raise RuntimeError(f"batch from {stream} kept conflicting with other workers")

    def _count(self, batch: Batch) -> None:
        self.stats.applied += batch.n_valid
        self.stats.dead += len(batch.rejects)
        self.stats.batches += 1

    def _prepare(self, stream: str, entries: list[tuple[str, dict[str, str]]]) -> Batch:
        geo = self._geography()
        now_ms = int(self.clock() * 1000)
        if stream == INCIDENTS:
            return prepare_incidents(self.r, geo, entries, now_ms)
        if stream == GAUGES:
            return prepare_gauges(geo, entries, known_gauges(self.r), now_ms)
        if stream == TRUCKS:
            return prepare_trucks(geo, entries, now_ms)
        if stream == SURVEYS:
            return prepare_surveys(self.r, geo, entries, now_ms)
        raise ValueError(f"no consumer for stream {stream}")

    def _dead_letter(
        self,
        stream: str,
        entry: tuple[str, dict[str, str]],
        reason: str,
        detail: str,
        consumer: str | None = None,
    ) -> None:
        batch = Batch(entry_ids=[entry[0]], rejects=[Reject(entry[0], reason, detail, entry[1])])
        try:
            self.applier.apply(stream, GROUP, consumer or self.name, batch)
            self.stats.dead += 1
        except Conflict:
            pass  # someone else settled it

    def _geography(self) -> Geography:
        geo = load_geography(self.r)
        if geo is not self._geo:
            # The grids' hundreds of thousands of long-lived objects would otherwise be walked
            # by every full garbage collection, which a batch's many short-lived dicts trigger.
            gc.collect()
            gc.freeze()
            self._geo = geo
        return geo

    # -- housekeeping -------------------------------------------------------------------
    def claim_stale(self) -> int:
        """Take over entries another consumer read but never acknowledged (it died). An entry
        delivered ``max_deliveries`` times is dead-lettered instead of tried again."""
        total = 0
        for stream in STREAMS:
            pending = self.r.xpending_range(
                stream, GROUP, min="-", max="+", count=self.batch_size, idle=self.claim_idle_ms
            )
            if not pending:
                continue
            ids = [p["message_id"] for p in pending]
            tries = {_s(p["message_id"]): p["times_delivered"] for p in pending}
            claimed = self.reader.xclaim(stream, GROUP, self.name, self.claim_idle_ms, ids)
            entries, poison = [], []
            for eid, fields in claimed:
                entry = (_s(eid), decode_fields(fields or {}))
                if fields is None:
                    poison.append((entry, "trimmed_unprocessed", "entry was trimmed before use"))
                elif tries.get(entry[0], 0) >= self.max_deliveries:
                    detail = f"delivered {tries[entry[0]]} times without being applied"
                    poison.append((entry, "processing_failed", detail))
                else:
                    entries.append(entry)
            for entry, reason, detail in poison:
                self._dead_letter(stream, entry, reason, detail)
            if entries:
                self.stats.claimed += len(entries)
                raw = [(eid, fields) for eid, fields in entries]
                self.process(stream, raw)
            total += len(claimed)
        return total

    def _check_epoch(self) -> None:
        """Notice that Redis lost its data: record the gap once and restore the grids."""
        now_ms = int(self.clock() * 1000)
        epoch = self.r.get(EPOCH)
        if epoch is None:
            fresh = uuid.uuid4().hex.encode()
            won = self.r.set(EPOCH, fresh, nx=True)
            if won and self.epoch is not None:
                self.stats.gaps += 1
                self.r.xadd(GAPS, {
                    "detected_ms": now_ms, "last_ok_ms": self.last_ok_ms, "worker": self.name,
                    "reason": "Redis lost its data (restarted without persistence?)",
                }, maxlen=1000, approximate=True)  # fmt: skip
                log.error("Redis lost its data; gap recorded since %d", self.last_ok_ms)
            if self._geo is not None and not self.r.exists(VERSION_KEY):
                save_areas(self.r, self._geo.areas)
            epoch = self.r.get(EPOCH)
            self.ensure_groups()
        self.epoch = epoch
        self.last_ok_ms = now_ms

    def trim(self) -> None:
        """Trim raw streams to the retention, never past an entry not yet processed."""
        horizon = int(self.clock() * 1000) - self.retention_ms
        for stream in STREAMS:
            floor = horizon
            for group in self.r.xinfo_groups(stream):
                last = _s(group["last-delivered-id"])
                floor = min(floor, int(last.split("-")[0]))
                # asked afresh, not from the XINFO count above: another consumer may have
                # acknowledged everything in between, and then there is no oldest entry
                oldest = self.r.xpending(stream, _s(group["name"]))["min"]
                if oldest is not None:
                    floor = min(floor, int(_s(oldest).split("-")[0]))
            if floor > 0:
                self.r.xtrim(stream, minid=f"{floor}-0", approximate=True)


def wait_for_areas(
    client: redis.Redis,
    stop: Callable[[], bool],
    timeout: float = 60.0,
    restore: Geography | None = None,
) -> None:
    """Block until grids are loaded; put back ``restore``'s grids if Redis lost them."""
    deadline = time.monotonic() + timeout
    while not stop():
        try:
            load_geography(client)
            return
        except NoAreasError:
            if restore is not None:
                save_areas(client, restore.areas)
                continue
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _text_client(client: redis.Redis, entries: Callable[..., Any] | None = None) -> redis.Redis:
    """A client on the same server whose replies hiredis decodes to text in C (much faster
    than decoding each field in Python); bytes that are not UTF-8 become U+FFFD, which
    validation rejects as ``wrong_type``. XREADGROUP's reply becomes stream entries, or what
    ``entries`` makes of it."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": True, "encoding_errors": "replace"}
    reader = redis.Redis(connection_pool=redis.ConnectionPool(pool.connection_class, **kwargs))
    reader.set_response_callback("XREADGROUP", entries or _stream_entries)
    return reader


def _unparsed(response: Any, **_options: Any) -> Any:
    """XREADGROUP's reply as hiredis gives it (turned into entries later)."""
    return response


def _stream_entries(response: Any, **_options: Any) -> list[tuple[str, list]] | None:
    """XREADGROUP's reply as [(stream, [(entry id, fields or None), ...]), ...], built with
    less Python per entry than redis-py's own parser (RESP2 list or RESP3 map)."""
    if not response:
        return None
    pairs = response.items() if isinstance(response, dict) else response
    out = []
    for stream, entries in pairs:
        out.append((stream, [
            (eid, dict(zip(f[::2], f[1::2], strict=True)) if f is not None else None)
            for eid, f in entries
        ]))  # fmt: skip
    return out


@dataclass
class _Held:
    """A prepared batch of incidents waiting for the apply script (see Worker._step_overlapped)."""

    entries: list[tuple[str, dict[str, str]]]
    batch: Batch
    consumer: str  # the name it was read under


@dataclass
class _Looked:
    """A batch of incidents checked and looked up, waiting to be built."""

    entries: list[tuple[str, dict[str, str]]]
    looked: Looked
    consumer: str


def _decoded(raw_entries: list) -> list[tuple[str, dict[str, str]]]:
    if raw_entries and isinstance(raw_entries[0][0], str):  # decoded by hiredis already
        return [(eid, f if f is not None else {}) for eid, f in raw_entries]
    return [(_s(eid), decode_fields(f or {})) for eid, f in raw_entries]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _one_line(exc: BaseException) -> str:
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return last[:300]
