"""The overlapping worker (each incident batch prepared while Redis applies the one before)
against a real Redis: a batch whose states it read before the previous batch wrote them is
refused by the apply script and prepared again, so the counts are exactly those of the
one-batch-at-a-time worker."""

from __future__ import annotations

import gc

import numpy as np
import redis

from cockpit.aggregates import IncidentAggregates
from cockpit.areastore import save_areas
from cockpit.contract import INCIDENTS
from cockpit.worker import Worker

N = 300


def _write(r: redis.Redis, geo, now_ms: int) -> None:  # type: ignore[no-untyped-def]
    """N new reports, then for each an update to 'resolved' and a resend of the report: the
    updates arrive in the batch right after their reports."""
    pts = geo.areas.grids.geometry.representative_point()
    rng = np.random.default_rng(3)
    picks = rng.integers(0, len(pts), N)
    reports = [{"id": f"ov-{k}", "ts": str(now_ms - 60_000), "category": "traffic",
                "lat": f"{pts.y.iloc[g]:.7f}", "lon": f"{pts.x.iloc[g]:.7f}"}
               for k, g in enumerate(picks)]  # fmt: skip
    with r.pipeline(transaction=False) as pipe:
        for fields in reports:
            pipe.xadd(INCIDENTS, fields)
        for fields in reports:
            pipe.xadd(INCIDENTS, {**fields, "ts": str(now_ms - 30_000), "status": "resolved"})
        for fields in reports[: N // 3]:
            pipe.xadd(INCIDENTS, fields)  # resends of the report: duplicates
        for k in range(N // 10):  # and bad entries among them: dead letters in both
            pipe.xadd(INCIDENTS, {**reports[k], "id": f"bad-{k}", "lat": "north"})
        pipe.execute()


def _drain(worker: Worker, r: redis.Redis) -> None:
    for _ in range(100):
        read = worker.step()
        group = {g["name"].decode(): g for g in r.xinfo_groups(INCIDENTS)}["cockpit"]
        if read == 0 and group["pending"] == 0 and worker._held is None and worker._looked is None:
            return
    raise AssertionError("worker did not drain the stream")


def _digest(r: redis.Redis) -> dict[str, dict[str, int]]:
    agg = IncidentAggregates(r)
    return {
        "all": agg.window_counts("1h"),
        "traffic": agg.window_counts("1h", "traffic"),
        "resolved": agg.window_counts("1h", "st:resolved"),
        "open": agg.open_counts(),
        "health": {k: v for k, v in agg.health().items()
                   if k.endswith(("applied", "duplicate", "bad_number"))},  # fmt: skip
    }


def test_ovl001_overlap_counts_equal_one_batch_at_a_time(r, loaded_city):
    now_ms = int(r.time()[0]) * 1000
    _write(r, loaded_city, now_ms)
    plain = Worker(r, name="plain", batch_size=N, block_ms=10)
    plain.ensure_groups()
    _drain(plain, r)
    expected = _digest(r)
    assert sum(v for k, v in expected["all"].items() if k.count("-") == 3) == N  # grids
    assert expected["open"] == {}  # every report was resolved
    assert expected["health"][f"{INCIDENTS}|dead|bad_number"] == N // 10

    r.flushall()
    save_areas(r, loaded_city.areas)
    _write(r, loaded_city, now_ms)
    overlapped = Worker(r, name="overlap", batch_size=N, block_ms=10, overlap=True)
    overlapped.ensure_groups()
    _drain(overlapped, r)
    assert overlapped.stats.conflicts >= 1  # the updates' batch read states before its reports
    assert _digest(r) == expected
    assert overlapped.stats.dead == plain.stats.dead == N // 10


def test_ovl002_garbage_is_collected_between_batches_and_the_setting_restored(r, loaded_city):
    now_ms = int(r.time()[0]) * 1000
    _write(r, loaded_city, now_ms)
    worker = Worker(r, name="gc", batch_size=N, block_ms=10, overlap=True)
    worker.ensure_groups()
    assert gc.isenabled()
    collected: list[int] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start":
            collected.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        with worker.collecting_between_batches():
            assert not gc.isenabled()  # no automatic collection in the middle of a batch
            worker.step()  # the first round also loads the grids and trims: full collections
            assert collected[0] == 1
            collected.clear()
            worker.step()
            assert collected == [1]  # only the young generations, at the start of the round
            _drain(worker, r)
    finally:
        gc.callbacks.remove(seen)
    assert gc.isenabled()
    assert worker.stats.applied > N


def test_ovl003_grids_gone_from_redis_are_put_back_and_nothing_is_lost(r, loaded_city):
    """The grid keys vanish under a running worker (evicted, or deleted by hand) while its
    streams stay: it puts back the grids it holds and counts every entry, instead of stopping
    with NoAreasError."""
    import threading

    from cockpit.areastore import AREAS_KEY, VERSION_KEY
    from tests.conftest import wait_until

    now_ms = int(r.time()[0]) * 1000
    pts = loaded_city.areas.grids.geometry.representative_point()

    def feed(tag: str, n: int) -> None:
        with r.pipeline(transaction=False) as pipe:
            for k in range(n):
                pipe.xadd(INCIDENTS, {"id": f"{tag}-{k}", "ts": str(now_ms - 1000),
                                      "category": "traffic", "lat": f"{pts.y.iloc[k]:.7f}",
                                      "lon": f"{pts.x.iloc[k]:.7f}"})  # fmt: skip
            pipe.execute()

    def counted() -> int:
        return IncidentAggregates(r).window_counts("1h").get("wx", 0)

    worker = Worker(r, name="gone", batch_size=50, block_ms=10, overlap=True,
                    claim_idle_ms=500)  # fmt: skip
    stopping = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(stopping.is_set)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        feed("a", 100)
        wait_until(lambda: counted() == 100, timeout=20, what="first entries counted")
        r.delete(AREAS_KEY, VERSION_KEY)
        feed("b", 150)
        wait_until(lambda: counted() == 250 or failed, timeout=30,
                   what="entries after the grids vanished counted")  # fmt: skip
        assert not failed, failed
        assert thread.is_alive()
        assert r.get(VERSION_KEY).decode() == loaded_city.version  # the grids are back
        assert worker.stats.errors >= 1
    finally:
        stopping.set()
        thread.join(timeout=10)
    assert counted() == 250
