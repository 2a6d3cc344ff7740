"""Counter arrays (windows and open counts packed by area slot) against a real Redis: they hold
exactly what the hash buckets and the feed say, survive the loss of their slot registry, roll
exactly, and old hash counters move into them unchanged."""

from __future__ import annotations

from collections import Counter

import numpy as np
import redis

from cockpit.aggregates import (
    ALL,
    WINDOW_KEYS,
    IncidentAggregates,
    open_key,
    window_key,
)
from cockpit.apply import INC_PREFIX, WINDOWS
from cockpit.contract import INCIDENTS
from cockpit.counters import SLOT, SLOT_TOKEN, SLOTS, assign_slots, counters_at, read_counters
from cockpit.worker import Worker

CATS = ("dispute", "hotline", "traffic", "environment")


def _feed(r: redis.Redis, geo, n: int, seed: int, now_ms: int, spread_ms: int) -> list[dict]:
    """``n`` new incidents at random grids, reported within ``spread_ms`` before ``now_ms``;
    a fifth of them also resolved (a status update) a second later."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = geo.bbox
    lon, lat = rng.uniform(minx, maxx, n * 3), rng.uniform(miny, maxy, n * 3)
    pos = geo.locator.locate(lon, lat)
    keep = np.flatnonzero(pos >= 0)[:n]
    feed = []
    for j, k in enumerate(keep.tolist()):
        fields = {"id": f"c{seed}-{j}", "ts": str(now_ms - int(rng.integers(0, spread_ms))),
                  "category": CATS[j % len(CATS)], "lat": f"{lat[k]:.7f}",
                  "lon": f"{lon[k]:.7f}"}  # fmt: skip
        feed.append(fields)
        if j % 5 == 0:
            feed.append({**fields, "status": "resolved", "ts": str(int(fields["ts"]) + 1000)})
    with r.pipeline(transaction=False) as pipe:
        for fields in feed:
            pipe.xadd(INCIDENTS, fields)
        pipe.execute()
    return feed


def _drain(worker: Worker, r: redis.Redis) -> None:
    for _ in range(500):
        worker.step()
        group = {g["name"].decode(): g for g in r.xinfo_groups(INCIDENTS)}["cockpit"]
        last = r.xinfo_stream(INCIDENTS)["last-generated-id"]
        if group["pending"] == 0 and group["last-delivered-id"] == last:
            return
    raise AssertionError("worker did not drain the stream")


def _bucket_sum(r: redis.Redis, label: str, minutes: range) -> Counter:
    total: Counter = Counter()
    for m in minutes:
        for area, v in r.hgetall(f"{INC_PREFIX}m:{m}:{label}").items():
            total[area.decode()] += int(v)
    return +total


def _truth(geo, feed: list[dict]) -> tuple[Counter, Counter, Counter]:
    """(new per area, open per area, resolved per area) over every level, from the feed."""
    ancestors, area_ids = geo.codes.grid_to_codes, geo.codes.area_ids
    new, opened, resolved = Counter(), Counter(), Counter()
    grid_of: dict[str, int] = {}
    for fields in feed:
        if fields.get("status") == "resolved":
            areas = [area_ids[a] for a in ancestors[grid_of[fields["id"]]] if a >= 0]
            opened.subtract(areas)
            resolved.update(areas)
            continue
        grid = int(geo.locator.locate(np.array([float(fields["lon"])]),
                                      np.array([float(fields["lat"])]))[0])  # fmt: skip
        grid_of[fields["id"]] = grid
        areas = [area_ids[a] for a in ancestors[grid] if a >= 0]
        new.update(areas)
        opened.update(areas)
    return +new, +opened, +resolved


def test_cnt001_arrays_equal_the_hash_buckets_and_the_feed(r, loaded_city):
    """Every window array of every label equals the sum of the minute buckets (hashes) inside
    the window, area by area, and the open and resolved counts equal the feed's truth."""
    geo = loaded_city
    now_ms = int(r.time()[0]) * 1000
    feed = _feed(r, geo, 4000, seed=5, now_ms=now_ms, spread_ms=50 * 60_000)
    worker = Worker(r, name="cnt1", batch_size=900, block_ms=20)
    worker.ensure_groups()
    _drain(worker, r)
    agg = IncidentAggregates(r)
    new, opened, resolved = _truth(geo, feed)
    assert agg.window_counts("1h", ALL) == new
    assert agg.open_counts(ALL) == opened
    assert agg.window_counts("1h", "st:resolved") == resolved
    now_min = int(r.time()[0]) // 60
    for window in WINDOWS:
        rolled = int(r.get(f"{INC_PREFIX}w:{window}:rolled"))
        for label in WINDOW_KEYS:
            assert agg.window_counts(window, label) == _bucket_sum(
                r, label, range(rolled + 1, now_min + 6)
            ), (window, label)
    # a few areas at once read the same numbers as the whole array
    some = [geo.areas.root_id, *list(new)[:5], "no-such-area"]
    (hour_row, open_row) = counters_at(r, [window_key("1h", ALL), open_key(ALL)], some)
    assert hour_row == [new.get(a, 0) for a in some]
    assert open_row == [opened.get(a, 0) for a in some]


def test_cnt002_roll_subtracts_exactly_what_left_the_window(r, loaded_city):
    """With the 1 h window's watermark set back 100 minutes, a feed over the last 90 minutes
    all counts in it; one roll then leaves exactly the buckets of the last hour."""
    geo = loaded_city
    now_min = int(r.time()[0]) // 60
    IncidentAggregates(r).roll_windows()  # every watermark set ...
    r.set(f"{INC_PREFIX}w:1h:rolled", now_min - 100)  # ... and this one set back
    _feed(r, geo, 3000, seed=6, now_ms=now_min * 60_000, spread_ms=90 * 60_000)
    worker = Worker(r, name="cnt2", batch_size=1000, block_ms=20)
    worker._last["roll"] = float("inf")  # this worker never rolls: the test does, once
    worker.ensure_groups()
    _drain(worker, r)
    agg = IncidentAggregates(r)
    assert agg.window_counts("1h", ALL) == _bucket_sum(r, ALL, range(now_min - 99, now_min + 6))
    assert agg.roll_windows() >= 40
    after = int(r.get(f"{INC_PREFIX}w:1h:rolled"))
    assert after >= now_min - 60
    for label in (ALL, "dispute", "st:resolved"):
        in_window = _bucket_sum(r, label, range(after + 1, now_min + 6))
        assert agg.window_counts("1h", label) == in_window


def test_cnt003_a_lost_slot_registry_is_never_written_with_old_slots(r, loaded_city):
    """The worker caches its slots; Redis then loses the registry and the arrays, and a new
    registry gives other slots. The next batch must be refused and prepared again, so the
    arrays hold exactly the new batch under the right area ids."""
    geo = loaded_city
    now_ms = int(r.time()[0]) * 1000
    _feed(r, geo, 500, seed=7, now_ms=now_ms, spread_ms=60_000)
    worker = Worker(r, name="cnt3", batch_size=1000, block_ms=20)
    worker.ensure_groups()
    _drain(worker, r)
    assert IncidentAggregates(r).window_counts("1h")[geo.areas.root_id] == 500
    # the registry and the arrays are lost; a new registry starts with other ids
    r.delete(SLOT, SLOTS, SLOT_TOKEN, *r.keys(f"{INC_PREFIX}wa:*"), *r.keys(f"{INC_PREFIX}oa:*"))
    assign_slots(r, ["someone-else", *reversed(geo.codes.area_ids.tolist())])
    feed = _feed(r, geo, 700, seed=8, now_ms=now_ms, spread_ms=60_000)
    conflicts = worker.stats.conflicts
    _drain(worker, r)
    assert worker.stats.conflicts > conflicts
    new, opened, _resolved = _truth(geo, feed)
    assert IncidentAggregates(r).window_counts("1h") == new
    assert IncidentAggregates(r).open_counts() == opened


def test_cnt004_old_hash_counters_move_into_arrays_once(r, loaded_city):
    """Windows and open counts written as hashes (the layout before counter arrays) read the
    same after the worker's migration, which changes nothing when run again."""
    geo = loaded_city
    rng = np.random.default_rng(9)
    areas = geo.codes.area_ids.tolist()
    written: dict[str, dict[str, int]] = {}
    for key in (f"{INC_PREFIX}w:1h:{ALL}", f"{INC_PREFIX}w:24h:hotline", f"{INC_PREFIX}open:{ALL}"):
        picked = rng.choice(len(areas), 300, replace=False)
        written[key] = {areas[p]: int(rng.integers(1, 1000)) for p in picked}
        r.hset(key, mapping=written[key])
    assign_slots(r, areas[::-1][:50])  # some areas have slots already
    agg = IncidentAggregates(r)
    assert agg.migrate_hash_counters() == 3
    assert agg.migrate_hash_counters() == 0
    assert agg.window_counts("1h", ALL) == written[f"{INC_PREFIX}w:1h:{ALL}"]
    assert agg.window_counts("24h", "hotline") == written[f"{INC_PREFIX}w:24h:hotline"]
    assert agg.open_counts(ALL) == written[f"{INC_PREFIX}open:{ALL}"]
    assert not r.exists(f"{INC_PREFIX}w:1h:{ALL}", f"{INC_PREFIX}open:{ALL}")
    assert read_counters(r, window_key("5m", ALL)) == {}
