"""Consumer-group plumbing shared by the worker and the alert engine.

Both read several input streams in a consumer group of their own and must survive the same
things: the group not existing yet (create it, and the stream, from the start), Redis being away
for a while (retry with a backoff that doubles from 0.1 s to 5 s and resets once a round works),
and Redis losing its data (a read answers NOGROUP: recreate the group and go on). What a consumer
does with its entries, and what else it does on those events, is its own business.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import redis

#: Errors that mean Redis is away for now (down, unreachable, still loading its data).
REDIS_AWAY: tuple[type[redis.RedisError], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
)


def ensure_groups(client: redis.Redis, streams: Iterable[str], group: str) -> None:
    """Create ``group`` on each stream (and the stream if missing), reading from its first
    entry; a group that exists already is left as it is."""
    for stream in streams:
        try:
            client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def is_missing_group(exc: redis.ResponseError) -> bool:
    """True for the error Redis gives when a group (or its stream) is gone, e.g. after Redis
    restarted without its data."""
    return "NOGROUP" in str(exc)


class Backoff:
    """How long to wait before trying Redis again: doubles on each failure up to ``most``."""

    def __init__(self, log: logging.Logger, first: float = 0.1, most: float = 5.0) -> None:
        self.log = log
        self.first = first
        self.most = most
        self.delay = first

    def reset(self) -> None:
        """A round worked: the next outage starts again from the first delay."""
        self.delay = self.first

    def wait(self, exc: BaseException) -> None:
        """Say Redis is away (in the consumer's own log) and sleep the current delay."""
        self.log.warning("Redis unreachable (%s); retrying in %.1f s", exc, self.delay)
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, self.most)


class StreamConsumer:
    """A member of the consumer group ``group`` on ``streams``.

    A subclass sets ``group`` and ``streams``, has ``r`` (its client) and ``name`` (its consumer
    name), and implements :meth:`serve`; :meth:`consume` runs it until told to stop.
    """

    group: ClassVar[str]
    streams: ClassVar[tuple[str, ...]]
    r: redis.Redis
    name: str

    def ensure_groups(self) -> None:
        """Create this consumer's group on every stream it reads (existing ones stay)."""
        ensure_groups(self.r, self.streams, self.group)

    def read_new(
        self, client: redis.Redis, count: int, block: int | None, consumer: str | None = None
    ) -> Any:
        """One XREADGROUP of entries never delivered to the group, from all its streams, as
        ``consumer`` (default: this consumer's name)."""
        return client.xreadgroup(
            self.group, consumer or self.name, dict.fromkeys(self.streams, ">"), count=count,
            block=block,
        )  # fmt: skip

    def consume(self, stop: Callable[[], bool]) -> None:
        """Call :meth:`serve` until ``stop()``; wait out Redis outages with backoff, and call
        :meth:`group_missing` when Redis answers NOGROUP. Other errors propagate."""
        # outages are logged under the subclass's module, where its other messages go
        backoff = Backoff(logging.getLogger(type(self).__module__))
        while not stop():
            try:
                self.serve(stop, backoff)
            except REDIS_AWAY as exc:
                self.redis_away(exc)
                backoff.wait(exc)
            except redis.ResponseError as exc:
                if not is_missing_group(exc):
                    raise
                self.group_missing()

    def serve(self, stop: Callable[[], bool], backoff: Backoff) -> None:
        """Do work until ``stop()`` or an error; call ``backoff.reset()`` after each good round."""
        raise NotImplementedError

    def redis_away(self, exc: BaseException) -> None:
        """Called when Redis is away, before the backoff wait."""

    def group_missing(self) -> None:
        """Called on NOGROUP: by default, recreate the groups."""
        self.ensure_groups()
