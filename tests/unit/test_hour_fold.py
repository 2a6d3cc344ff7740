"""Hour buckets folded from minute buckets (cockpit/apply.py): whatever the fold mark, an hour
read through :func:`cockpit.aggregates.hour_counts` equals the reports of that hour, and once
folded the hour bucket alone does."""

from __future__ import annotations

from collections import Counter

import numpy as np
import redis

from cockpit.aggregates import IncidentAggregates, hour_buckets, hour_counts
from cockpit.apply import FOLD_AHEAD_MIN, FOLD_LAG_MIN, FOLD_MARK, INC_PREFIX, MINUTE_TTL_S
from cockpit.contract import INCIDENTS
from cockpit.worker import Worker
from tests.unit.test_worker_counts import _drain, _points_in

CATS = np.array(["dispute", "hotline", "traffic"])


def _send(r: redis.Redis, geo, ts_ms: np.ndarray, seed: int, tag: str) -> Counter:
    """XADD one report per ts at random grids; the truth per (hour, label, area id), every
    level of each grid's hierarchy."""
    lon, lat, pos = _points_in(geo, len(ts_ms), seed)
    truth: Counter = Counter()
    with r.pipeline(transaction=False) as pipe:
        for k in range(len(ts_ms)):
            cat = str(CATS[k % 3])
            pipe.xadd(INCIDENTS, {"id": f"{tag}-{k}", "ts": str(ts_ms[k]), "category": cat,
                                  "lat": f"{lat[k]:.7f}", "lon": f"{lon[k]:.7f}"})  # fmt: skip
            codes = geo.codes.grid_to_codes[pos[k]]
            for area in geo.codes.area_ids[codes[codes >= 0]].tolist():
                for label in (cat, "all"):
                    truth[(int(ts_ms[k]) // 3_600_000, label, area)] += 1
        pipe.execute()
    return truth


def _assert_hours(r: redis.Redis, geo, truth: Counter, hours: list[int], raw: bool) -> None:
    """hour_counts (and hour_buckets) equal the truth for every area; with ``raw``, the hour
    buckets alone do too (every minute folded)."""
    areas = geo.codes.area_ids.tolist()
    labels = [*CATS.tolist(), "all"]
    for h in hours:
        got = hour_counts(r, labels, h, h, areas)[:, 0, :]
        want = np.array([[truth[(h, lab, a)] for a in areas] for lab in labels])
        assert (got == want).all(), f"hour {h}"
        whole = hour_buckets(r, "all", h, h)[0]
        assert whole == {a: n for (hh, lab, a), n in truth.items() if hh == h and lab == "all"}
        if raw:
            stored = {k.decode(): int(v) for k, v in r.hgetall(f"{INC_PREFIX}h:{h}:all").items()}
            assert stored == whole, f"hour {h} bucket alone"


def test_hrf001_hours_equal_the_truth_before_and_after_folding(r, loaded_city):
    geo = loaded_city
    now_s = int(r.time()[0])
    now_min = now_s // 60
    # a store that has been folding for a while: the mark 200 minutes back
    r.set(FOLD_MARK, now_min - 200)
    rng = np.random.default_rng(5)
    # reports over the last 5 hours (some before the mark: written to both buckets), and some
    # two days old (their minute bucket already expired: the hour bucket only)
    recent = now_s * 1000 - rng.integers(0, 5 * 3_600_000, 1500)
    old = now_s * 1000 - 2 * 86_400_000 - rng.integers(0, 3_600_000, 100)
    ts = np.concatenate([recent, old])
    truth = _send(r, geo, ts, seed=21, tag="a")
    worker = Worker(r, name="fold", batch_size=400, block_ms=50)
    worker.ensure_groups()
    _drain(worker, r, len(ts))
    hours = sorted({h for h, _l, _a in truth})
    _assert_hours(r, geo, truth, hours, raw=False)
    # the worker's roll folded up to 10 minutes ago; unfolded minutes carry no expiry yet
    mark = int(r.get(FOLD_MARK))
    assert now_min - 11 <= mark <= now_min
    ttls = {int(k.split(b":")[4]): r.ttl(k) for k in r.scan_iter(f"{INC_PREFIX}m:*:all")}
    assert any(m > mark for m in ttls) and any(m <= mark for m in ttls)
    assert all((ttl == -1) == (m > mark) for m, ttl in ttls.items())

    # fold everything up to 10 minutes ahead: the hour buckets alone are the truth now
    IncidentAggregates(r).roll(fold_lag_min=-10)
    assert int(r.get(FOLD_MARK)) >= now_min + 10
    _assert_hours(r, geo, truth, hours, raw=True)
    folded = f"{INC_PREFIX}m:{now_min - 1}:all"
    if r.exists(folded):
        ttl = r.ttl(folded)
        assert 0 < ttl <= (now_min + 1) * 60 + MINUTE_TTL_S - now_s + 5

    # late reports after the fold go to both buckets; folding again changes nothing
    more = now_s * 1000 - rng.integers(0, 2 * 3_600_000, 500)
    truth += _send(r, geo, more, seed=22, tag="b")
    _drain(worker, r, len(ts) + len(more))
    _assert_hours(r, geo, truth, hours, raw=True)
    IncidentAggregates(r).roll(fold_lag_min=-10)
    _assert_hours(r, geo, truth, hours, raw=True)


def test_hrf002_a_missing_mark_never_folds_hours_written_directly(r, loaded_city):
    """Buckets from before folding (or a store without a mark) already hold every minute in
    their hour: the mark starts past them, so they are not added twice."""
    now_min = int(r.time()[0]) // 60
    hour = now_min // 60
    r.hset(f"{INC_PREFIX}h:{hour}:all", "wx", 7)
    r.hset(f"{INC_PREFIX}m:{now_min}:all", "wx", 7)
    r.set(f"{INC_PREFIX}w:5m:rolled", now_min - 5)  # the windows were rolled before
    IncidentAggregates(r).roll_windows()
    assert int(r.get(FOLD_MARK)) == now_min + FOLD_AHEAD_MIN
    IncidentAggregates(r).roll_windows()
    assert hour_counts(r, ["all"], hour, hour, ["wx"]).tolist() == [[[7]]]
    assert r.hget(f"{INC_PREFIX}h:{hour}:all", "wx") == b"7"


def test_hrf003_the_leader_trend_counts_unfolded_minutes(r, loaded_city):
    """The 7-day hourly trend reads the current hour from its minute buckets."""
    from cockpit.indicators import RANGES, incident_series

    geo = loaded_city
    now_s = int(r.time()[0])
    r.set(FOLD_MARK, now_s // 60 - 500)
    ts = np.full(300, now_s * 1000 - 1000)
    truth = _send(r, geo, ts, seed=23, tag="c")
    worker = Worker(r, name="fold3", block_ms=50)
    worker.ensure_groups()
    _drain(worker, r, len(ts))
    root = geo.areas.root_id
    assert not r.exists(f"{INC_PREFIX}h:{now_s // 3600}:all")  # nothing folded yet
    series = incident_series(r, [root], RANGES["7d"], now_s * 1000)
    assert int(series[-1, 0]) == truth[(now_s // 3600, "all", root)] == 300


def test_hrf004_a_new_store_folds_from_the_start(r, loaded_city):
    """With nothing rolled before, the mark starts FOLD_LAG_MIN back, as it will run."""
    now_min = int(r.time()[0]) // 60
    IncidentAggregates(r).roll_windows()
    assert now_min - FOLD_LAG_MIN <= int(r.get(FOLD_MARK)) <= now_min + 1 - FOLD_LAG_MIN
