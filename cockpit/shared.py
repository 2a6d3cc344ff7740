"""Answers a web process computes once and hands to every viewer asking for the same thing.

A hundred walls of one area learn of a change at the same moment (a pushed view event) and ask
for the same new thing together. A plain cache misses for all of them at once, and each thread
computes the answer again: placing 200 alert markers a hundred times took half of the web
processes' CPU. Here the first thread computes, the others wait for its result.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class SharedMemo:
    """The newest ``size`` answers by key; one thread computes a missing one while the others
    asking for that key wait (at most ``wait_s``, then compute it themselves)."""

    def __init__(self, size: int, wait_s: float = 10.0) -> None:
        self._size = size
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._computing: dict[Hashable, threading.Event] = {}

    def peek(self, key: Hashable) -> object | None:
        """The answer held for ``key``, or None; computes nothing."""
        with self._lock:
            return self._items.get(key)

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[return-value]
            done = self._computing.get(key)
            mine = done is None
            if mine:
                done = self._computing[key] = threading.Event()
        if not mine:
            done.wait(self._wait_s)  # type: ignore[union-attr]
            with self._lock:
                if key in self._items:
                    return self._items[key]  # type: ignore[return-value]
            return make()  # its maker failed or is stuck: answer this request anyway
        try:
            value = make()  # outside the lock: a slow Redis read must not stall other keys
            with self._lock:
                self._items[key] = value
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._computing.pop(key, None)
            done.set()  # type: ignore[union-attr]


def digest(*parts: object) -> str:
    """A short fingerprint of what a view shows, to send it only when it changes."""
    raw = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()
