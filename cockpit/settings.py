"""Settings from the environment, with an optional TOML file.

Precedence: environment variable > TOML file (``COCKPIT_CONFIG`` or ``--config``) > default.
A wrong value raises :class:`SettingsError` whose message is one line naming the setting and
what is allowed, so start-up can stop with it.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

LANGUAGES = ("en", "zh-CN")
# A feed's data-age badge turns "stale since ..." after this long without data (each feed's own
# cadence: trucks ping every 30 s, gauges read every minute); COCKPIT_STALE_AFTER_S sets all.
FEED_STALE_S = {"incidents": 60, "trucks": 120, "gauges": 180}


PUSH_MODES = ("sse", "poll")
PUSH_RESERVED_THREADS = 8


class SettingsError(ValueError):
    """A setting has a value the cockpit cannot use."""


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None  # None: start the embedded Redis under data_dir
    data_dir: Path = field(default_factory=lambda: Path("data"))
    host: str = "127.0.0.1"
    port: int = 8050
    secret_key: str = ""
    lang: str = "en"
    tile_url: str | None = None  # None: plain background, no outside requests
    tile_attribution: str = ""
    demo_seed: int = 7
    refresh_ms: int = 1000
    push: str = "sse"  # grid values: "sse" pushes changes as they happen; "poll" every refresh_ms
    # per web process; each live push stream holds one (waiting, it costs no CPU): gunicorn
    # does not spread streams evenly, and with 64 a 100-viewer run saw up to 14 refused
    web_threads: int = 128
    stale_after_s: int | None = None  # None: each feed's own (FEED_STALE_S)
    secure_cookies: bool = False  # set behind TLS: cookies then travel over https only
    secret_defaulted: bool = True  # no key was configured: a random one is in use

    def with_persistent_secret(self) -> Settings:
        """When no key is configured, keep one in ``data_dir/secret_key`` (created 0600) so
        sessions and wall displays survive a restart; a configured key is left alone."""
        if not self.secret_defaulted:
            return self
        path = self.data_dir / "secret_key"
        try:
            key = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_hex(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(key + "\n")
        return replace(self, secret_key=key, secret_defaulted=False)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, config_file: str | Path | None = None
    ) -> Settings:
        """Read settings from ``env`` (default ``os.environ``) and an optional TOML file."""
        env = os.environ if env is None else env
        path = config_file or env.get("COCKPIT_CONFIG")
        raw: dict[str, object] = _read_toml(Path(path)) if path else {}
        for key in _KEYS:
            name = "COCKPIT_" + key.upper()
            if env.get(name, "") != "":
                raw[key] = env[name]
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> Settings:
        unknown = sorted(set(raw) - set(_KEYS))
        if unknown:
            raise SettingsError(
                f"unknown setting {unknown[0]!r}; known settings: {', '.join(_KEYS)}"
            )
        s = cls()
        values: dict[str, object] = {}
        if raw.get("redis_url"):
            values["redis_url"] = _redis_url(str(raw["redis_url"]))
        if raw.get("data_dir"):
            values["data_dir"] = Path(str(raw["data_dir"])).expanduser()
        if raw.get("host"):
            values["host"] = str(raw["host"])
        if "port" in raw:
            values["port"] = _int("COCKPIT_PORT", raw["port"], 1, 65535)
        if "lang" in raw:
            values["lang"] = _one_of("COCKPIT_LANG", raw["lang"], LANGUAGES)
        if raw.get("tile_url"):
            values["tile_url"] = _tile_url(str(raw["tile_url"]))
        if raw.get("tile_attribution"):
            values["tile_attribution"] = str(raw["tile_attribution"])
        if "demo_seed" in raw:
            values["demo_seed"] = _int("COCKPIT_DEMO_SEED", raw["demo_seed"], 0, 2**31 - 1)
        if "refresh_ms" in raw:
            values["refresh_ms"] = _int("COCKPIT_REFRESH_MS", raw["refresh_ms"], 200, 60_000)
        if "push" in raw:
            values["push"] = _one_of("COCKPIT_PUSH", raw["push"], PUSH_MODES)
        if "web_threads" in raw:
            values["web_threads"] = _int("COCKPIT_WEB_THREADS", raw["web_threads"], 4, 1024)
        if raw.get("stale_after_s") not in (None, ""):
            values["stale_after_s"] = _int("COCKPIT_STALE_AFTER_S", raw["stale_after_s"], 5, 86_400)
        if "secure_cookies" in raw:
            values["secure_cookies"] = _bool("COCKPIT_SECURE_COOKIES", raw["secure_cookies"])
        values["secret_key"] = _secret(raw)
        values["secret_defaulted"] = not (raw.get("secret_key") or raw.get("secret_key_file"))
        return replace(s, **values)  # type: ignore[arg-type]

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def push_streams(self) -> int:
        """Push streams one web process holds at most: the rest of its threads answer
        callbacks and page loads (a page beyond the limit polls instead)."""
        return max(1, self.web_threads - PUSH_RESERVED_THREADS)

    def stale_after_ms(self, feed: str) -> int:
        """How long ``feed`` may be silent before its badge says "stale since ..."."""
        return 1000 * (self.stale_after_s or FEED_STALE_S[feed])


_KEYS = (
    "redis_url",
    "data_dir",
    "host",
    "port",
    "secret_key",
    "secret_key_file",
    "lang",
    "tile_url",
    "tile_attribution",
    "demo_seed",
    "refresh_ms",
    "push",
    "web_threads",
    "stale_after_s",
    "secure_cookies",
)


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"COCKPIT_CONFIG: no such file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"COCKPIT_CONFIG: {path} is not valid TOML ({exc})") from None
    section = data.get("cockpit", data)
    if not isinstance(section, dict):
        raise SettingsError(f"COCKPIT_CONFIG: {path} must hold a [cockpit] table")
    return dict(section)


def _int(name: str, value: object, low: int, high: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise SettingsError(
            f"{name}={value!r} is not a whole number; use one from {low} to {high}"
        ) from None
    if not low <= number <= high:
        raise SettingsError(f"{name}={number} is out of range; use one from {low} to {high}")
    return number


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> str:
    text = str(value)
    if text not in allowed:
        raise SettingsError(
            f"{name}={text!r} is not supported; use one of: {', '.join(allowed)}"
        )
    return text


def _bool(name: str, value: object) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={value!r} is not a yes/no value; use true or false")


def _redis_url(url: str) -> str:
    scheme = urlparse(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(
            f"COCKPIT_REDIS_URL={url!r} is not a Redis URL; use redis://host:port/db, "
            "rediss://… or unix:///path/to/redis.sock (or leave it unset for the embedded Redis)"
        )
    return url


def _tile_url(url: str) -> str:
    if not (url.startswith(("http://", "https://", "/")) and "{z}" in url):
        raise SettingsError(
            f"COCKPIT_TILE_URL={url!r} is not a tile URL template; use e.g. "
            "http://tiles.local/{z}/{x}/{y}.png (with {z}, {x}, {y}) or leave it unset"
        )
    return url


def _secret(raw: Mapping[str, object]) -> str:
    """The session-signing key: from the setting, from a file, or random per start."""
    if raw.get("secret_key"):
        key = str(raw["secret_key"])
    elif raw.get("secret_key_file"):
        path = Path(str(raw["secret_key_file"]))
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"COCKPIT_SECRET_KEY_FILE: cannot read {path} ({exc})") from None
    else:
        # Random per process start: sessions end on restart. Fine for one process; several
        # processes (gunicorn) must share a key, which cli.serve arranges via the environment.
        return secrets.token_hex(32)
    if len(key) < 16:
        raise SettingsError("COCKPIT_SECRET_KEY is too short; use at least 16 characters")
    return key
