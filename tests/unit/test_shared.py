"""SharedMemo: viewers asking for one new answer at once compute it once."""

from __future__ import annotations

import threading

import pytest

from cockpit.shared import SharedMemo
from tests.conftest import wait_until


def test_shm001_threads_asking_for_one_key_at_once_compute_it_once() -> None:
    memo = SharedMemo(4)
    calls: list[int] = []
    inside = threading.Event()
    release = threading.Event()

    def make() -> str:
        calls.append(1)
        inside.set()
        release.wait(10)  # hold the computation until every thread has asked
        return "features"

    results: list[str] = []
    asked: list[int] = []

    def ask() -> None:
        asked.append(1)
        results.append(memo.get("k", make))

    first = threading.Thread(target=ask)
    first.start()
    assert inside.wait(10)
    others = [threading.Thread(target=ask) for _ in range(7)]
    for t in others:
        t.start()
    wait_until(lambda: len(asked) == 8, timeout=10, what="every thread asking")
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert results == ["features"] * 8
    assert len(calls) == 1


def test_shm002_a_failed_computation_is_not_kept_and_waiters_try_themselves() -> None:
    memo = SharedMemo(4)

    def broken() -> str:
        raise RuntimeError("redis went away")

    with pytest.raises(RuntimeError):
        memo.get("k", broken)
    assert memo.peek("k") is None
    assert memo.get("k", lambda: "again") == "again"


def test_shm003_keeps_the_newest_keys_only() -> None:
    memo = SharedMemo(2)
    for key in ("a", "b", "c"):
        memo.get(key, lambda key=key: key.upper())
    assert memo.peek("a") is None and memo.peek("b") == "B" and memo.peek("c") == "C"
    assert memo.get("b", lambda: "recomputed") == "B"
