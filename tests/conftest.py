"""Shared fixtures: a real Redis server (the embedded one, or COCKPIT_REDIS_URL when set) and the
demo city. Nothing here fakes Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from cockpit.embedded_redis import EmbeddedRedis


def pytest_report_header(config: pytest.Config) -> list[str]:
    import subprocess

    import dash
    import dash_leaflet
    import shapely

    from cockpit.embedded_redis import redis_server_binary

    server = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return [
        f"cockpit: dash {dash.__version__}, dash-leaflet {dash_leaflet.__version__}, "
        f"shapely {shapely.__version__}, GEOS {shapely.geos_version_string}",
        f"cockpit: redis {os.environ.get('COCKPIT_REDIS_URL') or 'embedded: ' + server}",
    ]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server for the whole session."""
    url = os.environ.get("COCKPIT_REDIS_URL")
    if url:
        yield url
        return
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis-data"))
    url = embedded.ensure()
    assert redis.Redis.from_url(url).ping()
    yield url
    embedded.stop()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A clean database for one test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def demo_areas():
    from geo.demo_city import generate_demo_city

    return generate_demo_city(seed=7)


@pytest.fixture
def loaded_city(r: redis.Redis, demo_areas):
    """The demo city stored in Redis, and its Geography."""
    from cockpit.areastore import load_geography, save_areas

    save_areas(r, demo_areas)
    return load_geography(r)


def wait_until(
    condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition} ({last!r})")


REPO = Path(__file__).resolve().parent.parent
