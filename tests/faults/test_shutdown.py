"""Stopping: Ctrl-C of `cockpit demo` with a wall's push stream open ends everything at once.

Before: a push stream never ended by itself, so the web process waited out gunicorn's graceful
timeout (30 s) and was killed, and the demo's embedded Redis outlived it."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import redis

from tests.conftest import wait_until
from tests.e2e.conftest import launch_demo


def _sign_in(base: str, user: str, password: str) -> urllib.request.OpenerDirector:
    """A cookie-keeping client signed in through the real form."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    form = opener.open(base + "/login", timeout=10).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf, "the sign-in form has a CSRF token"
    body = urllib.parse.urlencode({"csrf_token": csrf.group(1), "name": user,
                                   "password": password, "next": "/"}).encode()  # fmt: skip
    opener.open(base + "/login", data=body, timeout=10).read()
    return opener


def test_sdn001_ctrl_c_stops_the_demo_at_once_while_a_wall_streams(tmp_path: Path) -> None:
    log_path = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCKPIT_")}  # embedded Redis
    proc, base = launch_demo(tmp_path, ["--rate", "2"], env)
    try:
        found = re.search(r"^\s+\w+\s+demo-city\s+(\S+)\s+area", log_path.read_text(), re.M)
        assert found
        opener = _sign_in(base, "demo-city", found.group(1))
        redis_url = (tmp_path / "redis" / "url").read_text().strip()

        # a wall's stream: read until the server ends it
        received: list[bytes] = []
        ended = threading.Event()

        def read_stream() -> None:
            try:
                with opener.open(base + "/push/grids?metric=incidents", timeout=60) as resp:
                    assert resp.headers["Content-Type"].startswith("text/event-stream")
                    while chunk := resp.read1(4096):
                        received.append(chunk)
            except OSError:
                pass
            finally:
                ended.set()

        reader = threading.Thread(target=read_stream, daemon=True)
        reader.start()
        wait_until(lambda: b"event:" in b"".join(received) or ended.is_set(), timeout=20,
                   what="the stream's first event")  # fmt: skip
        assert not ended.is_set(), "the stream ended before Ctrl-C"

        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the demo's terminal
        proc.wait(timeout=25)
        took = time.monotonic() - started
        assert took < 10, f"the demo took {took:.1f} s to stop"
        assert ended.wait(5), "the stream was left open"
        output = log_path.read_text()
        assert "SIGKILL" not in output and "Exception ignored" not in output, output[-3000:]
        assert "worker stopped" in output

        def redis_gone() -> bool:
            try:
                redis.Redis.from_url(redis_url, socket_timeout=1).ping()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                return True
            return False

        wait_until(redis_gone, timeout=15, what="the demo's embedded Redis stopped")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
