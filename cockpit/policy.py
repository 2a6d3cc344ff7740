"""Who may do what, where: the one place that decides. Default deny.

``authorize(user, action, area_id, geo)`` is the only check; callbacks and routes never compare
levels themselves. A user's scope is one area and everything under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from geo.areas import LEVELS

# Actions a level may take. Issue 7 moves this table into a policy file.
ACTIONS_BY_LEVEL: dict[str, frozenset[str]] = {
    level: frozenset({"view_map", "view_counts"}) for level in LEVELS
}


@dataclass(frozen=True)
class User:
    """A signed-in person or display; always built on the server from the session."""

    id: str
    name: str
    level: str
    area_id: str
    lang: str = "en"

    # flask-login's protocol
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.id


def in_scope(user: User, area_id: str, ancestors: list[str]) -> bool:
    """Is ``area_id`` (with its ``ancestors``) the user's area or below it?"""
    return area_id == user.area_id or user.area_id in ancestors


def authorize(user: User | None, action: str) -> bool:
    """May ``user`` take ``action`` at all? Area checks go through :func:`in_scope`."""
    if user is None:
        return False
    return action in ACTIONS_BY_LEVEL.get(user.level, frozenset())
