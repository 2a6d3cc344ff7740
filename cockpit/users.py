"""People and wall displays who may sign in, kept in Redis.

A user is a hash ``cockpit:user:{name}`` (listed in the set ``cockpit:users``) with its level,
area, language, display name, disabled flag, an argon2id password hash and timestamps. Nothing
stores a password in plain text. Each user has a ``generation`` that changing the password or
disabling bumps; it is part of the session id ("user:NAME:GENERATION"), so either ends every
session of that user at once.

A wall token is a random URL-safe secret shown once; only its SHA-256 is stored, in
``cockpit:wall:{sha256}`` (listed in ``cockpit:walls``) with the area, a label, the creation time
and a revoked flag. The token's SHA-256 is its id, and a wall's session id is "wall:TOKEN_ID",
so the secret itself never sits in a cookie.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cockpit.policy import WALL, User
from cockpit.settings import LANGUAGES
from geo.areas import LEVELS, SPECIAL, AreaSet

USERS_SET = "cockpit:users"
USER_KEY = "cockpit:user:{name}"
WALLS_SET = "cockpit:walls"
WALL_KEY = "cockpit:wall:{token_id}"

#: User levels, lowest first (information widens upwards).
USER_LEVELS: tuple[str, ...] = tuple(reversed(LEVELS))  # grid, community, street, district, city
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # hashing a megabyte on every attempt would be a cheap denial of service
MAX_DISPLAY = 100
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_TOKEN_PREFIX = 6
DEMO_PREFIX = "demo-"

# argon2id with the library's recommended parameters; a stored hash made with other parameters
# is re-hashed at the next successful sign-in.
HASHER = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so they take as long as known ones."""
    return HASHER.hash(secrets.token_urlsafe(16))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- validation -------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """A valid user name: 2-64 of a-z 0-9 . _ -, starting with a letter or digit."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(
            f"name: {name!r} is not a valid user name (2-64 characters of a-z, 0-9, '.', '_', "
            "'-', starting with a letter or digit)"
        )
    return name


def check_password(password: str) -> str:
    """A usable password: at least 10 characters (and at most 1024)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValueError(f"password: must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"password: must have at most {MAX_PASSWORD} characters")
    return password


def check_level(level: str) -> str:
    if level not in USER_LEVELS:
        raise ValueError(f"level: {level!r} is not a level; use one of: {', '.join(USER_LEVELS)}")
    return level


def check_lang(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"lang: {lang!r} is not supported; use one of: {', '.join(LANGUAGES)}")
    return lang


def check_display(text: str | None, field: str = "display") -> str:
    """A display name or label: printable, at most 100 characters, surrounding space removed."""
    text = (text or "").strip()
    if len(text) > MAX_DISPLAY:
        raise ValueError(f"{field}: must have at most {MAX_DISPLAY} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise ValueError(f"{field}: must not contain control characters")
    return text


def check_area_fits(areas: AreaSet, level: str, area_id: str) -> None:
    """Raise ValueError unless ``area_id`` exists in ``areas`` and is of ``level``.

    A grid-level user may also have a special grid (school, park, industrial zone).
    """
    check_level(level)
    if area_id not in areas:
        raise ValueError(f"area_id: no area {area_id!r} in the loaded grids")
    area_level = areas.level_of(area_id)
    if area_level == level or (level == "grid" and area_level == SPECIAL):
        return
    raise ValueError(f"area_id: {area_id!r} is a {area_level}, but the user's level is {level}")


# -- users ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRecord:
    """A stored user as listed by the CLI (never the hash)."""

    name: str
    level: str
    area_id: str
    lang: str
    display: str
    disabled: bool
    created: str
    updated: str


def _decode(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _record(fields: dict[str, str]) -> UserRecord | None:
    try:
        return UserRecord(
            name=fields["name"],
            level=fields["level"],
            area_id=fields["area_id"],
            lang=fields.get("lang", "en"),
            display=fields.get("display", ""),
            disabled=fields.get("disabled", "0") == "1",
            created=fields.get("created", ""),
            updated=fields.get("updated", ""),
        )
    except KeyError:
        return None  # half-written (a concurrent add) or damaged: treat as absent


def add_user(
    r: redis.Redis,
    name: str,
    password: str,
    level: str,
    area_id: str,
    lang: str = "en",
    display: str | None = None,
) -> UserRecord:
    """Create a user; ValueError naming the field when something is wrong or the name is taken.

    Whether ``area_id`` exists and fits ``level`` is the caller's check (:func:`check_area_fits`).
    """
    check_name(name)
    check_password(password)
    check_level(level)
    check_lang(lang)
    shown = check_display(display) or name
    if not isinstance(area_id, str) or not area_id:
        raise ValueError("area_id: must not be empty")
    key = USER_KEY.format(name=name)
    # HSETNX claims the name atomically, so two concurrent adds cannot both succeed.
    if not r.hsetnx(key, "name", name):
        raise ValueError(f"name: user {name!r} already exists")
    now = _now()
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={
            "level": level, "area_id": area_id, "lang": lang, "display": shown, "disabled": "0",
            "password_hash": HASHER.hash(password), "generation": "1", "created": now,
            "updated": now,
        })  # fmt: skip
        pipe.sadd(USERS_SET, name)
        pipe.execute()
    record = _record(_decode(r.hgetall(key)))
    assert record is not None
    return record


def list_users(r: redis.Redis) -> list[UserRecord]:
    """All users, sorted by name."""
    names = sorted(n.decode() for n in r.smembers(USERS_SET))
    with r.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(USER_KEY.format(name=name))
        rows = pipe.execute()
    return [rec for raw in rows if (rec := _record(_decode(raw))) is not None]


def _existing(r: redis.Redis, name: str) -> str:
    key = USER_KEY.format(name=name)
    if not isinstance(name, str) or not r.hexists(key, "password_hash"):
        raise ValueError(f"name: no user {name!r}")
    return key


def disable_user(r: redis.Redis, name: str) -> None:
    """Disable a user: no sign-in, and every open session of theirs ends at its next request."""
    key = _existing(r, name)
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={"disabled": "1", "updated": _now()})
        pipe.hincrby(key, "generation", 1)
        pipe.execute()


def enable_user(r: redis.Redis, name: str) -> None:
    """Allow a disabled user to sign in again (old sessions stay ended)."""
    key = _existing(r, name)
    r.hset(key, mapping={"disabled": "0", "updated": _now()})


def set_password(r: redis.Redis, name: str, password: str) -> None:
    """Set a new password; every open session of the user ends."""
    check_password(password)
    key = _existing(r, name)
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={"password_hash": HASHER.hash(password), "updated": _now()})
        pipe.hincrby(key, "generation", 1)
        pipe.execute()


def _user(fields: dict[str, str]) -> User | None:
    record = _record(fields)
    if record is None or record.disabled or record.level not in USER_LEVELS:
        return None
    return User(
        id=f"user:{record.name}:{fields.get('generation', '1')}",
        name=record.name,
        level=record.level,
        area_id=record.area_id,
        lang=record.lang if record.lang in LANGUAGES else "en",
        display=record.display or record.name,
    )


def load_user(r: redis.Redis, name: str) -> User | None:
    """The user ``name`` as a session :class:`User`, or None when unknown or disabled."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return None
    return _user(_decode(r.hgetall(USER_KEY.format(name=name))))


def verify(r: redis.Redis, name: str, password: str) -> User | None:
    """The user if ``password`` is theirs and they are not disabled, else None.

    Unknown names verify against a dummy hash so they take as long as known ones. A hash made
    with older parameters is replaced by a fresh one.
    """
    name = name.strip().lower() if isinstance(name, str) else ""
    key = USER_KEY.format(name=name)
    fields = _decode(r.hgetall(key)) if NAME_RE.match(name) else {}
    stored = fields.get("password_hash")
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        password = ""
    try:
        HASHER.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None:
        return None  # (the dummy hash cannot match a random secret, but be explicit)
    user = _user(fields)
    if user is not None and HASHER.check_needs_rehash(stored):
        # Only if the hash is still the one we verified (a concurrent passwd wins).
        with r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                if pipe.hget(key, "password_hash") == stored.encode():
                    pipe.multi()
                    pipe.hset(key, "password_hash", HASHER.hash(password))
                    pipe.execute()
            except redis.WatchError:
                pass
    return user


# -- wall tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WallToken:
    """A wall token as stored (its id is the SHA-256 of the secret, never the secret)."""

    token_id: str
    area_id: str
    label: str
    lang: str
    created: str
    revoked: bool


def token_id(token: str) -> str:
    """The stored id of a wall token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_wall_token(r: redis.Redis, area_id: str, label: str, lang: str = "en") -> str:
    """A new wall token for ``area_id`` (the caller checks the area exists); shown only now."""
    label = check_display(label, "label")
    if not label:
        raise ValueError("label: must not be empty")
    check_lang(lang)
    if not isinstance(area_id, str) or not area_id:
        raise ValueError("area_id: must not be empty")
    token = secrets.token_urlsafe(32)
    tid = token_id(token)
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(WALL_KEY.format(token_id=tid), mapping={
            "area_id": area_id, "label": label, "lang": lang, "created": _now(), "revoked": "0",
        })  # fmt: skip
        pipe.sadd(WALLS_SET, tid)
        pipe.execute()
    return token


def _wall_record(tid: str, fields: dict[str, str]) -> WallToken | None:
    if "area_id" not in fields:
        return None
    return WallToken(
        token_id=tid,
        area_id=fields["area_id"],
        label=fields.get("label", ""),
        lang=fields.get("lang", "en"),
        created=fields.get("created", ""),
        revoked=fields.get("revoked", "1") != "0",  # anything unexpected counts as revoked
    )


def list_wall_tokens(r: redis.Redis) -> list[WallToken]:
    """All wall tokens, revoked ones included, oldest first."""
    tids = sorted(t.decode() for t in r.smembers(WALLS_SET))
    with r.pipeline(transaction=False) as pipe:
        for tid in tids:
            pipe.hgetall(WALL_KEY.format(token_id=tid))
        rows = pipe.execute()
    found = [
        w for tid, raw in zip(tids, rows, strict=True) if (w := _wall_record(tid, _decode(raw)))
    ]
    return sorted(found, key=lambda w: (w.created, w.token_id))


def revoke_wall_token(r: redis.Redis, token_id_or_prefix: str) -> WallToken:
    """Revoke the token whose id is or starts with ``token_id_or_prefix`` (at least 6 hex
    characters, unique); the wall's session ends at its next request."""
    prefix = (token_id_or_prefix or "").strip().lower()
    if len(prefix) < MIN_TOKEN_PREFIX or not re.fullmatch(r"[0-9a-f]+", prefix):
        raise ValueError(
            f"token_id: give at least {MIN_TOKEN_PREFIX} hex characters of the id "
            "(see `cockpit wall-token list`)"
        )
    matches = [t.decode() for t in r.smembers(WALLS_SET) if t.decode().startswith(prefix)]
    if not matches:
        raise ValueError(f"token_id: no wall token starts with {prefix!r}")
    if len(matches) > 1:
        raise ValueError(f"token_id: {prefix!r} matches {len(matches)} tokens; give more of it")
    key = WALL_KEY.format(token_id=matches[0])
    r.hset(key, "revoked", "1")
    wall = _wall_record(matches[0], _decode(r.hgetall(key)))
    assert wall is not None
    return wall


def load_wall(r: redis.Redis, tid: str) -> User | None:
    """The wall :class:`User` of a token id, or None when unknown or revoked."""
    if not isinstance(tid, str) or not re.fullmatch(r"[0-9a-f]{64}", tid):
        return None
    wall = _wall_record(tid, _decode(r.hgetall(WALL_KEY.format(token_id=tid))))
    if wall is None or wall.revoked:
        return None
    return User(
        id=f"wall:{tid}",
        name=wall.label,
        level=WALL,
        area_id=wall.area_id,
        lang=wall.lang if wall.lang in LANGUAGES else "en",
        display=wall.label,
        is_wall=True,
    )


def wall_user(r: redis.Redis, token: str) -> User | None:
    """The read-only wall :class:`User` a token signs in, or None (unknown, revoked, malformed)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 128:
        return None
    return load_wall(r, token_id(token))


# -- demo ---------------------------------------------------------------------------------------


def ensure_demo_users(r: redis.Redis, areas: AreaSet) -> list[tuple[str, str | None, str, str]]:
    """One demo user per level, ``demo-grid`` … ``demo-city``, as (name, password, level, area).

    Areas are fixed: the first grid of the city by id and its ancestors. Every call gives each
    demo user a fresh random password (returned, so the demo can print it; sessions from the
    previous run end) and a user that already exists keeps its area. A demo user an operator has
    disabled stays disabled and comes back with password None. Levels the area set lacks are
    skipped.
    """
    first_grid = str(areas.grids.index[0])
    chain = [first_grid, *areas.ancestors(first_grid)]
    by_level = {areas.level_of(a): a for a in chain}
    out: list[tuple[str, str | None, str, str]] = []
    for level in USER_LEVELS:
        if level not in by_level:
            continue
        name = DEMO_PREFIX + level
        password: str | None = secrets.token_urlsafe(12)
        existing = _record(_decode(r.hgetall(USER_KEY.format(name=name))))
        if existing is None:
            try:
                add_user(r, name, password, level, by_level[level], display=f"Demo {level}")
                out.append((name, password, level, by_level[level]))
                continue
            except ValueError:  # created concurrently by another demo process
                existing = _record(_decode(r.hgetall(USER_KEY.format(name=name))))
                assert existing is not None
        if existing.disabled:
            password = None
        else:
            set_password(r, name, password)
        out.append((name, password, existing.level, existing.area_id))
    return out
