"""Who may do what, where: the one place that decides. Default deny.

The rules live in ``policy.toml`` next to this module (per level: visible categories, personal
data, comparing areas, actions). It is read once per process and is read-only; a malformed file
raises :class:`PolicyError` with one line naming the problem, so start-up stops with it.

``authorize(user, action, area_id, geo)`` is the only check; callbacks and routes never compare
levels themselves. A user's scope is one area and everything under it.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cockpit.contract import CATEGORIES
from geo.areas import LEVELS

if TYPE_CHECKING:
    from cockpit.areastore import Geography
    from geo.areas import AreaSet

WALL = "wall"
#: The levels a policy may describe: the five people levels and the wall display.
POLICY_LEVELS: tuple[str, ...] = (*LEVELS, WALL)
_LEVEL_KEYS = ("categories", "personal_data", "compare_areas", "actions")
_TOP_KEYS = ("actions", "personal_fields", "levels")


class PolicyError(ValueError):
    """The policy file cannot be used; the message is one line naming the problem."""


@dataclass(frozen=True)
class User:
    """A signed-in person or display; always built on the server from the session.

    ``id`` is what flask-login keeps in the session ("user:NAME:GENERATION" or "wall:TOKEN_ID",
    see :mod:`cockpit.users`). A wall has ``level == "wall"`` and ``is_wall``; its ``name`` is
    the display's label, never a person.
    """

    id: str
    name: str
    level: str
    area_id: str
    lang: str = "en"
    display: str = ""
    is_wall: bool = False

    # flask-login's protocol
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.id


@dataclass(frozen=True)
class LevelRules:
    """What one level may see and do; every field defaults to deny."""

    categories: frozenset[str] = frozenset()
    personal_data: bool = False
    compare_areas: bool = False
    actions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Policy:
    """The parsed policy file."""

    levels: Mapping[str, LevelRules]
    actions: frozenset[str]
    personal_fields: tuple[str, ...] = field(default=())

    def rules(self, level: str) -> LevelRules:
        """The rules of ``level``; an unknown level gets the all-deny rules."""
        return self.levels.get(level, LevelRules())


DEFAULT_POLICY_FILE = "policy.toml"


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and check a policy file (default: the packaged ``policy.toml``)."""
    try:
        if path is None:
            text = resources.files("cockpit").joinpath(DEFAULT_POLICY_FILE).read_text("utf-8")
            where = DEFAULT_POLICY_FILE
        else:
            text = Path(path).read_text("utf-8")
            where = str(path)
    except OSError as exc:
        name = path or DEFAULT_POLICY_FILE
        raise PolicyError(f"policy file {name}: cannot read ({exc})") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {where}: not valid TOML ({exc})") from exc
    return parse_policy(raw, where)


def parse_policy(raw: Mapping[str, Any], where: str = "policy") -> Policy:
    """Check a policy mapping (as read from TOML) and build the :class:`Policy`."""

    def fail(message: str) -> PolicyError:
        return PolicyError(f"policy file {where}: {message}")

    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise fail(f"unknown key {unknown[0]!r}; known keys: {', '.join(_TOP_KEYS)}")
    actions = _str_list(raw.get("actions", []), "actions", fail)
    fields = _str_list(raw.get("personal_fields", []), "personal_fields", fail)
    levels_raw = raw.get("levels", {})
    if not isinstance(levels_raw, Mapping):
        raise fail("levels must be a table of [levels.LEVEL] tables")
    levels: dict[str, LevelRules] = {}
    for level, table in levels_raw.items():
        if level not in POLICY_LEVELS:
            raise fail(f"unknown level {level!r}; levels: {', '.join(POLICY_LEVELS)}")
        if not isinstance(table, Mapping):
            raise fail(f"levels.{level} must be a table")
        levels[level] = _level_rules(level, table, frozenset(actions), fail)
    if levels.get(WALL, LevelRules()).personal_data:
        raise fail("levels.wall.personal_data must be false: a wall never shows personal data")
    return Policy(levels=levels, actions=frozenset(actions), personal_fields=tuple(fields))


def _level_rules(level: str, table: Mapping[str, Any], known_actions: frozenset[str], fail):
    unknown = sorted(set(table) - set(_LEVEL_KEYS))
    if unknown:
        raise fail(f"levels.{level}: unknown key {unknown[0]!r}; keys: {', '.join(_LEVEL_KEYS)}")
    categories_raw = table.get("categories", [])
    if categories_raw == "*":
        categories = frozenset(CATEGORIES)
    else:
        categories = frozenset(_str_list(categories_raw, f"levels.{level}.categories", fail))
        bad = sorted(categories - set(CATEGORIES))
        if bad:
            raise fail(f"levels.{level}.categories: unknown category {bad[0]!r}")
    flags = {}
    for key in ("personal_data", "compare_areas"):
        value = table.get(key, False)
        if not isinstance(value, bool):
            raise fail(f"levels.{level}.{key} must be true or false, not {value!r}")
        flags[key] = value
    level_actions = frozenset(_str_list(table.get("actions", []), f"levels.{level}.actions", fail))
    bad = sorted(level_actions - known_actions)
    if bad:
        raise fail(f"levels.{level}.actions: {bad[0]!r} is not declared in the top-level actions")
    return LevelRules(categories=categories, actions=level_actions, **flags)


def _str_list(value: object, name: str, fail) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(f"{name} must be a list of non-empty strings")
    return list(value)


@functools.cache
def policy() -> Policy:
    """The process's policy, read once from the packaged file (read-only afterwards)."""
    return load_policy()


# -- the checks -------------------------------------------------------------------------------


def in_scope(user: User, area_id: str, ancestors: list[str]) -> bool:
    """Is ``area_id`` (with its ``ancestors``) the user's area or below it?"""
    return area_id == user.area_id or user.area_id in ancestors


def _areas(geo: Geography | AreaSet) -> AreaSet:
    return getattr(geo, "areas", geo)  # a Geography or a bare AreaSet


def authorize(
    user: User | None,
    action: str,
    area_id: str | None = None,
    geo: Geography | AreaSet | None = None,
    *,
    rules: Policy | None = None,
) -> bool:
    """May ``user`` take ``action`` (and, with ``area_id``, on that area)?

    The area must be the user's area or below it; without ``geo`` only the user's own area
    passes, and an area ``geo`` does not know is refused. ``rules`` defaults to the process's
    policy (tests pass their own).
    """
    if user is None:
        return False
    if action not in (rules or policy()).rules(user.level).actions:
        return False
    if area_id is None:
        return True
    if area_id == user.area_id:
        return True
    if geo is None:
        return False
    areas = _areas(geo)
    if area_id not in areas:
        return False
    return in_scope(user, area_id, areas.ancestors(area_id))


def visible_categories(user: User | None, *, rules: Policy | None = None) -> set[str]:
    """Incident categories ``user`` may see (empty for no user or an unknown level)."""
    if user is None:
        return set()
    return set((rules or policy()).rules(user.level).categories)


def may_see_personal_data(user: User | None, *, rules: Policy | None = None) -> bool:
    """May ``user`` see reporters' names and phones? Never for a wall."""
    if user is None or user.is_wall:
        return False
    return (rules or policy()).rules(user.level).personal_data


def may_compare(user: User | None, *, rules: Policy | None = None) -> bool:
    """May ``user`` rank and compare areas side by side?"""
    if user is None:
        return False
    return (rules or policy()).rules(user.level).compare_areas


def scope_filter(
    user: User | None,
    records: Iterable[Mapping[str, Any]],
    area_key: str,
    geo: Geography | AreaSet,
    *,
    category_key: str | None = "category",
    rules: Policy | None = None,
) -> list[dict[str, Any]]:
    """The records ``user`` may see, made safe to send.

    Keeps a record only when its ``area_key`` area is in scope (unknown or missing area: dropped)
    and, when it has a ``category_key`` field, that category is visible; removes the personal
    fields when the user may not see personal data. Returns new dicts; the inputs are untouched.
    """
    if user is None:
        return []
    active = rules or policy()
    areas = _areas(geo)
    categories = visible_categories(user, rules=active)
    strip = () if may_see_personal_data(user, rules=active) else active.personal_fields
    seen: dict[str, bool] = {}  # area id -> in scope, so each area is walked up once
    kept: list[dict[str, Any]] = []
    for record in records:
        area_id = record.get(area_key)
        if not isinstance(area_id, str):
            continue
        if area_id not in seen:
            seen[area_id] = area_id in areas and in_scope(user, area_id, areas.ancestors(area_id))
        if not seen[area_id]:
            continue
        if category_key in record and record[category_key] not in categories:
            continue
        kept.append({k: v for k, v in record.items() if k not in strip})
    return kept
