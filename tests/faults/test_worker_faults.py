"""Faults against real Redis servers: killed workers, concurrent workers, lost Redis data.
Invariant, stated as data: the aggregates' digest equals the feed's ground truth exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from cockpit.aggregates import IncidentAggregates
from cockpit.areastore import load_geography, save_areas
from cockpit.contract import INCIDENTS
from cockpit.embedded_redis import redis_server_binary
from cockpit.worker import GAPS, Worker
from tests.conftest import wait_until
from tests.faults.feed import digest, drained, make_feed, truth_digest, write_feed


def start_worker(redis_url: str, name: str) -> subprocess.Popen:
    env = {**os.environ, "COCKPIT_REDIS_URL": redis_url}
    return subprocess.Popen(
        [sys.executable, "-m", "cockpit", "worker", "--name", name, "--batch", "500",
         "--claim-idle-ms", "500"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def applied(client: redis.Redis) -> int:
    return IncidentAggregates(client).health().get(f"{INCIDENTS}|applied", 0)


def test_flt001_sigkill_at_random_moments_loses_and_doubles_nothing(r, redis_url, loaded_city):
    feed, truth = make_feed(loaded_city, 100_000, seed=101, now_ms=int(r.time()[0]) * 1000)
    write_feed(r, feed)
    schedule = np.random.default_rng(2024).uniform(0.0, 0.4, size=6)  # fixed fault schedule
    kills = 0
    for k, pause in enumerate(schedule):
        seen = applied(r)
        proc = start_worker(redis_url, f"victim-{k}")
        try:
            # kill only once this worker is mid-stream: it has applied something new
            wait_until(lambda s=seen: applied(r) > s or drained(r), timeout=60, what="progress")
            if drained(r):
                break
            time.sleep(pause)  # the fault schedule itself, not a wait for a result
            proc.send_signal(signal.SIGKILL)
            kills += 1
        finally:
            proc.wait(timeout=30)
    assert kills >= 5, f"only {kills} kills landed mid-stream"
    survivor = start_worker(redis_url, "survivor")
    try:
        wait_until(lambda: drained(r), timeout=120, interval=0.2, what="stream drained")
    finally:
        survivor.terminate()
        survivor.wait(timeout=30)
    got, want = digest(r), truth_digest(truth)
    for key in ("new", "open", "resolved"):
        diff = {a: (got[key].get(a), want[key].get(a)) for a in set(got[key]) | set(want[key])
                if got[key].get(a) != want[key].get(a)}
        assert diff == {}, f"{key} differs in {len(diff)} areas: {sorted(diff.items())[:5]}"
    assert got == want


def test_flt002_two_workers_give_exactly_the_totals_of_one(r, redis_url, loaded_city):
    feed, truth = make_feed(loaded_city, 30_000, seed=202, now_ms=int(r.time()[0]) * 1000)
    write_feed(r, feed)
    one = Worker(r, name="solo", batch_size=700, block_ms=10)
    one.ensure_groups()
    wait_until(lambda: one.step() == 0 and drained(r), timeout=60, what="solo drained")
    solo = digest(r)
    assert solo == truth_digest(truth)

    r.flushdb()
    save_areas(r, loaded_city.areas)
    write_feed(r, feed)
    procs = [start_worker(redis_url, f"pair-{k}") for k in range(2)]
    try:
        wait_until(lambda: drained(r), timeout=90, interval=0.2, what="pair drained")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
    # each batch is read under a name of its own, removed once applied: none is left holding
    # anything, and whatever is left (a read cut short by the stop) is one of the pair's
    consumers = r.xinfo_consumers(INCIDENTS, "cockpit")
    assert all(c["pending"] == 0 for c in consumers)
    assert {c["name"].decode().split("/")[0] for c in consumers} <= {"pair-0", "pair-1"}
    assert digest(r) == solo


class VolatileRedis:
    """A real redis-server with no persistence at all, restartable on the same socket."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "volatile.sock"
        self.dir = directory
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket),
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._up, timeout=10, what="redis up")

    def _up(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url).ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # gone with its data, like a crash without persistence
        self.proc.wait(timeout=10)


@pytest.fixture
def volatile(tmp_path):
    server = VolatileRedis(Path(os.path.realpath(tmp_path)))
    server.start()
    yield server
    if server.proc and server.proc.poll() is None:
        server.stop()


def test_flt003_redis_losing_its_data_is_survived_and_shown(volatile, demo_areas):
    client = redis.Redis.from_url(volatile.url, socket_timeout=2)
    save_areas(client, demo_areas)
    geo = load_geography(client)
    now_ms = int(client.time()[0]) * 1000
    first, _ = make_feed(geo, 800, seed=303, now_ms=now_ms)
    first = [f for f in first if f.get("category") != "ufo"]
    write_feed(client, first)
    stop = threading.Event()
    worker = Worker(client, name="steady", block_ms=100, overlap=True)  # as `cockpit worker` runs
    thread = threading.Thread(target=worker.run, args=(stop.is_set,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: drained(client), timeout=30, what="first feed applied")
        volatile.stop()
        volatile.start()
        assert not client.exists(INCIDENTS)  # the data is really gone
        second, truth = make_feed(geo, 500, seed=304, now_ms=int(client.time()[0]) * 1000)
        write_feed(client, second)
        wait_until(lambda: client.exists(GAPS) and drained(client), timeout=60,
                   what="gap recorded and new feed applied")  # fmt: skip
        assert digest(client) == truth_digest(truth)
        gap = client.xrange(GAPS)[0][1]
        assert int(gap[b"last_ok_ms"]) > 0 and b"lost its data" in gap[b"reason"]
        assert client.xlen(GAPS) == 1
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
