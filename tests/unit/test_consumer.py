"""Consumer-group plumbing shared by the worker and the alert engine, on a real Redis: groups
created once, outages waited out with a doubling backoff, a lost group recreated."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cockpit.alerts import store
from cockpit.alerts.engine import CAP_STREAM, AlertEngine, EngineConfig
from cockpit.alerts.engine import GROUP as ALERTS_GROUP
from cockpit.areastore import Geography
from cockpit.consumer import Backoff, StreamConsumer, ensure_groups
from tests.conftest import wait_until
from tests.unit.test_alerts_cap import T0, cap_xml

STREAMS = ("test:in:a", "test:in:b")


class Probe(StreamConsumer):
    """Reads and acknowledges entries, remembering what happened to it."""

    group = "probe"
    streams = STREAMS

    def __init__(self, client: redis.Redis, rounds: Callable[[Probe], bool]) -> None:
        self.r = client
        self.name = "probe-1"
        self.rounds = rounds  # stop() of consume: sees the probe, so a test can stop on events
        self.seen: list[str] = []
        self.away: list[BaseException] = []
        self.missing = 0

    def serve(self, stop, backoff):  # type: ignore[no-untyped-def]
        while not stop():
            for stream, entries in self.read_new(self.r, 100, 50) or []:
                self.seen += [eid.decode() for eid, _f in entries]
                self.r.xack(stream, self.group, *[eid for eid, _f in entries])
            backoff.reset()

    def redis_away(self, exc):  # type: ignore[no-untyped-def]
        self.away.append(exc)

    def group_missing(self) -> None:
        self.missing += 1
        super().group_missing()

    def run(self) -> None:
        self.consume(lambda: self.rounds(self))


def test_con001_groups_are_created_once_and_existing_ones_keep_their_place(r: redis.Redis):
    ensure_groups(r, STREAMS, "probe")
    assert [g["name"] for s in STREAMS for g in r.xinfo_groups(s)] == [b"probe", b"probe"]
    first = r.xadd(STREAMS[0], {"k": "v"})
    r.xreadgroup("probe", "c", {STREAMS[0]: ">"})
    ensure_groups(r, STREAMS, "probe")  # BUSYGROUP: left as it is
    (group,) = r.xinfo_groups(STREAMS[0])
    assert group["last-delivered-id"] == first and group["pending"] == 1


def test_con002_backoff_doubles_to_its_ceiling_and_resets_after_a_good_round():
    backoff = Backoff(logging.getLogger("test"), first=0.001, most=0.004)
    delays = []
    for _ in range(4):
        delays.append(backoff.delay)
        backoff.wait(redis.ConnectionError("gone"))
    assert delays == [0.001, 0.002, 0.004, 0.004]
    backoff.reset()
    assert backoff.delay == 0.001


def test_con003_a_lost_group_is_recreated_and_reading_goes_on(r: redis.Redis):
    ensure_groups(r, STREAMS, "probe")
    before = r.xadd(STREAMS[0], {"k": "1"}).decode()
    probe = Probe(r, rounds=lambda p: len(p.seen) >= 3)
    thread = threading.Thread(target=probe.run, daemon=True)
    thread.start()
    wait_until(lambda: probe.seen == [before], timeout=10, what="first entry read")
    r.xgroup_destroy(STREAMS[0], "probe")  # as after Redis lost its data
    after = r.xadd(STREAMS[1], {"k": "2"}).decode()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert probe.missing >= 1 and probe.away == []
    # the recreated group starts at the stream's start: the old entry comes again
    assert sorted(probe.seen) == sorted([before, before, after])


def test_con004_while_redis_is_away_the_backoff_doubles_in_the_consumers_log(
    tmp_path, caplog: pytest.LogCaptureFixture
):
    # no retries inside redis-py: each attempt fails at once and the consumer's backoff waits
    nowhere = redis.Redis(unix_socket_path=str(tmp_path / "no.sock"), retry=Retry(NoBackoff(), 0))
    probe = Probe(nowhere, rounds=lambda p: len(p.away) >= 3)
    with caplog.at_level(logging.WARNING, logger=__name__):
        probe.run()
    assert all(isinstance(exc, redis.ConnectionError) for exc in probe.away)
    waits = [rec.getMessage().rsplit("retrying in ", 1)[1] for rec in caplog.records
             if rec.name == __name__]  # fmt: skip
    assert waits == ["0.1 s", "0.2 s", "0.4 s"]


def test_con005_other_redis_errors_are_not_swallowed(r: redis.Redis):
    r.set(STREAMS[0], "not a stream")
    probe = Probe(r, rounds=lambda p: False)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        probe.run()


def test_con006_the_alert_engine_recreates_its_lost_group_and_goes_on(
    r: redis.Redis, loaded_city: Geography
):
    engine = AlertEngine(r, clock=lambda: T0, config=EngineConfig(lock_ttl_ms=600))
    stopping = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stopping.is_set,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: engine.leader, timeout=10, what="engine leads")
        r.xgroup_destroy(CAP_STREAM, ALERTS_GROUP)  # as after Redis lost its data
        r.xadd(CAP_STREAM, {"xml": cap_xml()})
        wait_until(lambda: store.all_alerts(r), timeout=20, what="CAP alert raised")
        assert [g["name"] for g in r.xinfo_groups(CAP_STREAM)] == [ALERTS_GROUP.encode()]
        assert r.xpending(CAP_STREAM, ALERTS_GROUP)["pending"] == 0
    finally:
        stopping.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert engine.stats.handled == 1
