"""Each read under a consumer name of its own (cockpit/worker.py): the apply script trusts the
name's pending count only when it equals the batch, and never drops a name holding entries."""

from __future__ import annotations

import pytest
import redis

from cockpit.aggregates import IncidentAggregates
from cockpit.apply import Conflict
from cockpit.contract import GROUP, INCIDENTS
from cockpit.counters import forget_slots
from cockpit.worker import STREAMS, Worker
from tests.unit.test_worker_counts import _drain, _points_in


def _feed(r: redis.Redis, geo, n: int, seed: int) -> None:
    lon, lat, _pos = _points_in(geo, n, seed)
    now_ms = int(r.time()[0]) * 1000
    for k in range(n):
        r.xadd(INCIDENTS, {"id": f"n{seed}-{k}", "ts": str(now_ms - 1000), "category": "dispute",
                           "lat": f"{lat[k]:.7f}", "lon": f"{lon[k]:.7f}"})  # fmt: skip


def _pending(r: redis.Redis, consumer: str) -> int:
    return next((c["pending"] for c in r.xinfo_consumers(INCIDENTS, GROUP)
                 if c["name"].decode() == consumer), 0)  # fmt: skip


def _entries(r: redis.Redis, consumer: str, count: int) -> list[tuple[str, dict[str, str]]]:
    reply = r.xreadgroup(GROUP, consumer, {INCIDENTS: ">"}, count=count)
    return [(eid.decode(), {k.decode(): v.decode() for k, v in f.items()})
            for eid, f in reply[0][1]]  # fmt: skip


def test_bnm001_names_do_not_pile_up_in_the_groups(r, loaded_city):
    _feed(r, loaded_city, 2000, seed=1)
    worker = Worker(r, name="names", batch_size=300, block_ms=10)
    worker.ensure_groups()
    _drain(worker, r, 2000)
    worker.step()  # a read that finds nothing
    for stream in STREAMS:
        assert r.xinfo_consumers(stream, GROUP) == [], stream
    assert IncidentAggregates(r).window_counts("1h")[loaded_city.areas.root_id] == 2000


def test_bnm002_an_entry_claimed_away_is_found_and_applied_once(r, loaded_city):
    forget_slots()  # slots of an earlier test's registry: the script would refuse them
    _feed(r, loaded_city, 5, seed=2)
    worker = Worker(r, name="w", block_ms=10)
    worker.ensure_groups()
    entries = _entries(r, "w/1", 5)
    r.xclaim(INCIDENTS, GROUP, "other", 0, [entries[1][0]])  # another worker took one
    batch = worker._prepare(INCIDENTS, entries)
    with pytest.raises(Conflict) as caught:
        worker.applier.apply(INCIDENTS, GROUP, "w/1", batch, own=True)
    assert caught.value.gone == [entries[1][0]]
    assert _pending(r, "w/1") == 4  # nothing acknowledged, nothing counted
    assert IncidentAggregates(r).window_counts("1h") == {}
    worker.process(INCIDENTS, entries, "w/1", own=True)
    assert IncidentAggregates(r).window_counts("1h")[loaded_city.areas.root_id] == 4
    names = {c["name"].decode(): c["pending"] for c in r.xinfo_consumers(INCIDENTS, GROUP)}
    assert names == {"other": 1}  # the batch's name went with its last entry


def test_bnm003_a_name_holding_more_than_the_batch_is_checked_entry_by_entry(r, loaded_city):
    """A count that is not the batch's size proves nothing: the whole list is read, and the
    name, still holding entries, is kept."""
    forget_slots()
    _feed(r, loaded_city, 5, seed=3)
    worker = Worker(r, name="w", block_ms=10)
    worker.ensure_groups()
    entries = _entries(r, "w/2", 5)
    worker.applier.apply(INCIDENTS, GROUP, "w/2", worker._prepare(INCIDENTS, entries[:3]),
                         own=True)  # fmt: skip
    assert _pending(r, "w/2") == 2
    assert IncidentAggregates(r).window_counts("1h")[loaded_city.areas.root_id] == 3
    worker.process(INCIDENTS, entries[3:], "w/2", own=True)
    assert r.xinfo_consumers(INCIDENTS, GROUP) == []
    assert IncidentAggregates(r).window_counts("1h")[loaded_city.areas.root_id] == 5


def test_bnm004_two_processes_under_one_name_never_share_a_read_name(r, loaded_city):
    """A name's pending count stands for its list only if no one else reads under it."""
    _feed(r, loaded_city, 40, seed=4)
    one, two = (Worker(r, name="same", batch_size=10, block_ms=10) for _ in range(2))
    one.ensure_groups()
    seen: set[str] = set()
    for worker in (one, two):
        worker.reader.xreadgroup = _spy(worker.reader.xreadgroup, seen)
    for worker in (one, two, one, two):
        worker.step()
    assert len(seen) == 4 and all(n.startswith("same/") for n in seen)
    assert IncidentAggregates(r).window_counts("1h")[loaded_city.areas.root_id] == 40


def _spy(read, seen: set):  # type: ignore[no-untyped-def]
    def wrapped(group, consumer, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.add(consumer)
        return read(group, consumer, *args, **kwargs)

    return wrapped
