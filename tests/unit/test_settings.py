"""Settings: defaults, environment, TOML file, and one-line errors for wrong values."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.settings import Settings, SettingsError


def test_set001_defaults_need_nothing():
    s = Settings.from_env({})
    assert (s.host, s.port, s.lang, s.redis_url, s.tile_url) == (
        "127.0.0.1",
        8050,
        "en",
        None,
        None,
    )
    assert len(s.secret_key) >= 32


def test_set002_environment_wins_over_file(tmp_path: Path):
    cfg = tmp_path / "cockpit.toml"
    cfg.write_text('[cockpit]\nport = 9000\nlang = "zh-CN"\n')
    s = Settings.from_env({"COCKPIT_PORT": "9100"}, config_file=cfg)
    assert s.port == 9100
    assert s.lang == "zh-CN"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"COCKPIT_PORT": "eighty"}, ("COCKPIT_PORT", "whole number")),
        ({"COCKPIT_PORT": "70000"}, ("COCKPIT_PORT", "1 to 65535")),
        ({"COCKPIT_LANG": "fr"}, ("COCKPIT_LANG", "en, zh-CN")),
        ({"COCKPIT_REDIS_URL": "http://x"}, ("COCKPIT_REDIS_URL", "redis://")),
        ({"COCKPIT_TILE_URL": "tiles"}, ("COCKPIT_TILE_URL", "{z}")),
        ({"COCKPIT_SECRET_KEY": "short"}, ("COCKPIT_SECRET_KEY", "16")),
    ],
)
def test_set003_wrong_value_is_one_line_naming_setting(env, names):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    message = str(err.value)
    assert "\n" not in message
    for word in names:
        assert word in message


def test_set004_secret_from_file(tmp_path: Path):
    secret = tmp_path / "secret"
    secret.write_text("a" * 40 + "\n")
    assert Settings.from_env({"COCKPIT_SECRET_KEY_FILE": str(secret)}).secret_key == "a" * 40


def test_set005_unknown_key_in_file(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[cockpit]\nprot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        Settings.from_env({}, config_file=cfg)


def test_set006_persistent_secret_survives_a_restart(tmp_path: Path):
    first = Settings.from_env({"COCKPIT_DATA_DIR": str(tmp_path)}).with_persistent_secret()
    again = Settings.from_env({"COCKPIT_DATA_DIR": str(tmp_path)}).with_persistent_secret()
    assert first.secret_key == again.secret_key and len(first.secret_key) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    configured = Settings.from_env({"COCKPIT_DATA_DIR": str(tmp_path),
                                    "COCKPIT_SECRET_KEY": "x" * 20}).with_persistent_secret()
    assert configured.secret_key == "x" * 20


def test_set007_stale_after_sets_every_feed_badge():
    default = Settings.from_env({})
    assert [default.stale_after_ms(f) for f in ("incidents", "trucks", "gauges")] == [
        60_000, 120_000, 180_000]  # fmt: skip
    short = Settings.from_env({"COCKPIT_STALE_AFTER_S": "20"})
    assert {short.stale_after_ms(f) for f in ("incidents", "trucks", "gauges")} == {20_000}
    with pytest.raises(SettingsError, match=r"^COCKPIT_STALE_AFTER_S=1 is out of range"):
        Settings.from_env({"COCKPIT_STALE_AFTER_S": "1"})


def test_set008_push_mode_and_web_threads():
    default = Settings.from_env({})
    assert default.push == "sse" and default.web_threads == 128 and default.push_streams == 120
    polled = Settings.from_env({"COCKPIT_PUSH": "poll", "COCKPIT_WEB_THREADS": "16"})
    assert polled.push == "poll" and polled.push_streams == 8
    refused = "COCKPIT_PUSH='websocket' is not supported; use one of: sse, poll"
    with pytest.raises(SettingsError, match=refused):
        Settings.from_env({"COCKPIT_PUSH": "websocket"})
    with pytest.raises(SettingsError, match="COCKPIT_WEB_THREADS=2 is out of range"):
        Settings.from_env({"COCKPIT_WEB_THREADS": "2"})
