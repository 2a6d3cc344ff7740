"""The embedded Redis's persistence settings (see cockpit/embedded_redis.py)."""

from __future__ import annotations

import os

import pytest
import redis


@pytest.mark.skipif(bool(os.environ.get("COCKPIT_REDIS_URL")), reason="not the embedded server")
def test_emb001_log_kept_every_second_and_rewritten_late(redis_url: str) -> None:
    config = redis.Redis.from_url(redis_url, decode_responses=True).config_get("*")
    # every write logged and fsync'd each second: what "nothing lost" rests on
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    # the rewrite (a fork copying the dataset) waits for 5x growth and 512 MB
    assert config["auto-aof-rewrite-percentage"] == "400"
    assert int(config["auto-aof-rewrite-min-size"]) == 512 * 2**20
