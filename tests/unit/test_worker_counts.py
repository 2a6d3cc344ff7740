"""The worker against a real Redis server: counts per grid equal what was written."""

from __future__ import annotations

import numpy as np
import redis

from cockpit.aggregates import IncidentAggregates
from cockpit.contract import DEADLETTER, INCIDENTS
from cockpit.worker import Worker


def _drain(worker: Worker, r: redis.Redis, expected_total: int) -> None:
    """Step the worker until the stream has no unread and no pending entries."""
    for _ in range(200):
        worker.step()
        info = {g["name"].decode(): g for g in r.xinfo_groups(INCIDENTS)}["cockpit"]
        done = worker.stats.applied + worker.stats.dead
        if info["pending"] == 0 and done >= expected_total:
            return
    raise AssertionError("worker did not drain the stream")


def _points_in(geo, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = geo.bbox
    lon = rng.uniform(minx, maxx, n * 3)
    lat = rng.uniform(miny, maxy, n * 3)
    pos = geo.locator.locate(lon, lat)
    keep = np.flatnonzero(pos >= 0)[:n]
    return lon[keep], lat[keep], pos[keep]


def test_wrk001_counts_equal_incidents_written_per_grid(r, loaded_city):
    geo = loaded_city
    lon, lat, pos = _points_in(geo, 3000, seed=11)
    now_ms = int(r.time()[0]) * 1000
    cats = np.array(["dispute", "hotline", "traffic"])[np.arange(len(lon)) % 3]
    with r.pipeline(transaction=False) as pipe:
        for k in range(len(lon)):
            pipe.xadd(
                INCIDENTS,
                {
                    "id": f"t-{k}",
                    "ts": str(now_ms - 1000),
                    "category": cats[k],
                    "lat": f"{lat[k]:.7f}",
                    "lon": f"{lon[k]:.7f}",
                },
            )
        pipe.execute()
    worker = Worker(r, name="t1", batch_size=700, block_ms=50)
    worker.ensure_groups()
    _drain(worker, r, len(lon))

    counts = IncidentAggregates(r).window_counts("1h")
    truth = {}
    for p in pos:
        gid = geo.grid_ids[p]
        truth[gid] = truth.get(gid, 0) + 1
    assert {g: counts.get(g, 0) for g in truth} == truth
    assert sum(counts.get(g, 0) for g in geo.grid_ids) == len(lon)
    # rolled up: the city equals the total, each district the sum of its grids
    assert counts[geo.areas.root_id] == len(lon)
    hotline = IncidentAggregates(r).window_counts("1h", "hotline")
    assert hotline[geo.areas.root_id] == int((cats == "hotline").sum())
    assert not r.exists(DEADLETTER)


def test_wrk002_bad_entries_go_to_deadletter_and_valid_ones_count(r, loaded_city):
    geo = loaded_city
    lon, lat, _pos = _points_in(geo, 2, seed=3)
    now_ms = int(r.time()[0]) * 1000
    good = {
        "id": "g1",
        "ts": str(now_ms),
        "category": "dispute",
        "lat": str(lat[0]),
        "lon": str(lon[0]),
    }
    bad = [
        (
            {"id": "b1", "ts": str(now_ms), "category": "dispute", "lon": str(lon[0])},
            "missing_field",
        ),
        ({**good, "id": "b2", "lat": "abc"}, "bad_number"),
        ({**good, "id": "b3", "lat": "nan"}, "not_finite"),
        ({**good, "id": "b4", "lat": "10.0"}, "outside_map"),
        ({**good, "id": "b5", "category": "aliens"}, "unknown_category"),
        ({**good, "id": "b6", "text": "x" * 5000}, "oversize_text"),
        ({**good, "id": "b7", "ts": "yesterday"}, "bad_ts"),
        ({**good, "id": "b8", "text": b"\xff\xfe not utf-8"}, "wrong_type"),
    ]
    r.xadd(INCIDENTS, good)
    for fields, _reason in bad:
        r.xadd(INCIDENTS, fields)
    r.xadd(INCIDENTS, {**good, "id": "g2", "lat": str(lat[1]), "lon": str(lon[1])})
    worker = Worker(r, name="t2", block_ms=50)
    worker.ensure_groups()
    _drain(worker, r, len(bad) + 2)

    dead = r.xrange(DEADLETTER)
    reasons = {f[b"entry_id"]: f[b"reason"].decode() for _id, f in dead}
    assert sorted(reasons.values()) == sorted(reason for _f, reason in bad)
    assert IncidentAggregates(r).window_counts("1h")[geo.areas.root_id] == 2
    # the original fields travel with the reason
    assert any(b'"category": "aliens"' in f[b"fields"] for _id, f in dead)


def test_wrk003_trim_keeps_unprocessed_and_survives_idle_groups(r, loaded_city):
    """Trim drops entries past the retention once every group is done with them, keeps what a
    group has not read or acknowledged, and copes with a second group that has nothing pending
    (the alert engine's, whose pending entries can vanish between two calls)."""
    now_ms = 1_795_000_000_000
    for k in range(3000):  # old enough to fall outside a one-hour retention
        r.xadd(INCIDENTS, {"id": f"t{k}"}, id=f"{now_ms - 7_200_000 + k}-0")
    r.xadd(INCIDENTS, {"id": "fresh"}, id=f"{now_ms}-0")
    worker = Worker(r, name="trim", retention_ms=3_600_000, clock=lambda: now_ms / 1000)
    worker.ensure_groups()
    r.xgroup_create(INCIDENTS, "idle-readers", id="$")  # nothing pending, nothing behind
    r.xreadgroup("cockpit", "slow", {INCIDENTS: ">"}, count=10)  # ten read, not acknowledged
    worker.trim()
    first = r.xrange(INCIDENTS, count=1)[0][0].decode()
    assert first == f"{now_ms - 7_200_000}-0"  # the unacknowledged ones hold the floor
    r.xack(INCIDENTS, "cockpit", *[e for e, _f in r.xrange(INCIDENTS, count=10)])
    r.xreadgroup("cockpit", "slow", {INCIDENTS: ">"})
    r.xack(INCIDENTS, "cockpit", *[e for e, _f in r.xrange(INCIDENTS)])
    worker.trim()
    assert r.xlen(INCIDENTS) < 3001  # trimmed (approximately: whole nodes) ...
    assert r.xrange(INCIDENTS, min=f"{now_ms}-0")[0][1][b"id"] == b"fresh"  # ... not the new one


def test_wrk004_an_entry_that_keeps_failing_goes_to_the_dead_letters(r, loaded_city):
    """An entry that three workers took and died on (read, never acknowledged) is dead-lettered
    with its fields when the next worker claims it, instead of being tried a fourth time; an
    entry taken by one dead worker only is claimed and counted."""
    from tests.conftest import wait_until

    lon, lat, _pos = _points_in(loaded_city, 2, seed=5)
    now_ms = int(r.time()[0]) * 1000
    fields = [{"id": f"k{k}", "ts": str(now_ms), "category": "dispute", "lat": str(lat[k]),
               "lon": str(lon[k])} for k in range(2)]  # fmt: skip
    worker = Worker(r, name="survivor", claim_idle_ms=1, max_deliveries=3, block_ms=10)
    worker.ensure_groups()
    poison = r.xadd(INCIDENTS, fields[0]).decode()
    r.xreadgroup("cockpit", "died-1", {INCIDENTS: ">"}, count=1)  # delivered once
    for k in (2, 3):  # each the next worker that took it over and died too
        r.xclaim(INCIDENTS, "cockpit", f"died-{k}", 0, [poison])
    once = r.xadd(INCIDENTS, fields[1]).decode()
    r.xreadgroup("cockpit", "died-4", {INCIDENTS: ">"}, count=1)  # delivered once, then died
    tries = {p["message_id"].decode(): p["times_delivered"]
             for p in r.xpending_range(INCIDENTS, "cockpit", "-", "+", 10)}  # fmt: skip
    assert tries == {poison: 3, once: 1}

    wait_until(lambda: worker.claim_stale() == 0 and worker.stats.dead == 1, timeout=10,
               what="stale entries claimed")  # fmt: skip
    dead = r.xrange(DEADLETTER)
    assert len(dead) == 1
    entry = dead[0][1]
    assert entry[b"entry_id"].decode() == poison
    assert entry[b"reason"] == b"processing_failed"
    assert b'"id": "k0"' in entry[b"fields"]  # the original fields travel with it
    assert r.xpending(INCIDENTS, "cockpit")["pending"] == 0
    assert IncidentAggregates(r).window_counts("1h")[loaded_city.areas.root_id] == 1  # k1 only
