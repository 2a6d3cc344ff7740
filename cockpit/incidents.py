"""Single incidents of a user's scope, read from what the worker keeps (no Dash here).

The worker indexes recent incidents per street (``cockpit:inc:recent:{street}``, members
``"grid|id"`` scored by report time, last 24 h) and keeps each incident's latest state in the
day-sharded ``cockpit:inc:state:{day}`` hashes. Readers here find the streets of the user's scope,
drop members of grids outside it before reading any state, then pass what is left through
:func:`cockpit.policy.scope_filter` (visible categories, personal data), so nothing leaves this
module that the user may not see.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import redis

from cockpit.aggregates import INCIDENT_RECENT, INCIDENT_STATE, read_states
from cockpit.areastore import Geography
from cockpit.contract import STATUSES
from cockpit.policy import User, authorize, scope_filter, visible_categories

# The compact keys the worker stores -> the names screens and policy use.
FIELD_NAMES = {"s": "status", "c": "category", "g": "grid", "t": "ts", "v": "severity",
               "u": "updated"}  # fmt: skip
# States are read in pages, newest first, until enough match the filters; past this many
# candidates a search stops (a street's 24 h of reports, with room to spare).
PAGE = 1000
MAX_SCAN = 50_000


@lru_cache(maxsize=256)
def scope_grids(geo: Geography, area_id: str) -> frozenset[str]:
    """Grid ids in an area (the area itself when it is a grid); empty for an unknown area."""
    areas = geo.areas
    if area_id not in areas:
        return frozenset()
    if areas.level_of(area_id) == "grid":
        return frozenset({area_id})
    return frozenset(areas.descendants(area_id, level="grid"))


@lru_cache(maxsize=256)
def scope_streets(geo: Geography, area_id: str) -> tuple[str, ...]:
    """The streets whose recent-incident index can hold incidents of the area's grids."""
    index, streets = geo.grid_index, geo.grid_street
    found = {streets[index[g]] for g in scope_grids(geo, area_id) if g in index}
    return tuple(sorted(found))


def to_record(state: dict[str, Any]) -> dict[str, Any]:
    """A stored incident state with readable field names (``c`` -> ``category``...)."""
    return {FIELD_NAMES.get(k, k): v for k, v in state.items()}


def _matches(record: dict[str, Any], statuses: set[str] | None, needle: str | None) -> bool:
    if statuses is not None and record.get("status") not in statuses:
        return False
    if needle:
        haystack = f"{record.get('text', '')}\n{record.get('address', '')}".casefold()
        if needle not in haystack:
            return False
    return True


def recent_incidents(
    r: redis.Redis,
    geo: Geography,
    user: User | None,
    since_ms: int,
    until_ms: int,
    categories: Iterable[str] | None = None,
    statuses: Iterable[str] | None = None,
    text: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Incidents of ``user``'s scope reported in ``[since_ms, until_ms]``, newest first.

    ``categories`` and ``statuses`` narrow the result (None: all the user may see; values the
    user may not see or that do not exist are ignored, so browser input cannot widen anything);
    ``text`` is a case-insensitive substring of the incident's text or address. Records carry
    id, status, category, grid, ts, severity, lat, lon and the optional text, address, source,
    reporter (only when the policy lets the user see personal data) and updated.
    """
    if not authorize(user, "view_incidents") or limit <= 0:
        return []
    assert user is not None
    grids = scope_grids(geo, user.area_id)
    allowed = visible_categories(user)
    wanted = allowed if categories is None else allowed & set(categories)
    wanted_status = None if statuses is None else set(statuses) & set(STATUSES)
    needle = (text or "").strip().casefold() or None
    if not grids or not wanted or wanted_status == set():
        return []

    with r.pipeline(transaction=False) as pipe:
        for street in scope_streets(geo, user.area_id):
            pipe.zrevrangebyscore(INCIDENT_RECENT + street, until_ms, since_ms, withscores=True,
                                  start=0, num=MAX_SCAN)  # fmt: skip
        replies = pipe.execute()
    candidates: list[tuple[float, str]] = []
    for members in replies:
        for member, score in members:
            grid, _, inc_id = member.decode().partition("|")
            if grid in grids:  # filter by scope before reading any state
                candidates.append((score, inc_id))
    candidates.sort(key=lambda c: (-c[0], c[1]))
    ids = list(dict.fromkeys(inc_id for _, inc_id in candidates[:MAX_SCAN]))

    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), PAGE):
        page = ids[start : start + PAGE]
        states = read_states(r, INCIDENT_STATE, page, until_ms)
        records = []
        for inc_id in page:
            place = states[inc_id]
            if place is None:
                continue  # expired between the index and the state: gone
            record = to_record(place[1])
            if record.get("category") in wanted and _matches(record, wanted_status, needle):
                records.append(record)
        found.extend(scope_filter(user, records, "grid", geo))
        if len(found) >= limit:
            break
    return found[:limit]


def incident_detail(
    r: redis.Redis,
    geo: Geography,
    user: User | None,
    incident_id: object,
    now_ms: int | None = None,
) -> dict[str, Any] | None:
    """One incident as :func:`recent_incidents` gives it, or None when it does not exist, lies
    outside ``user``'s scope, or has a category the user may not see. ``incident_id`` may come
    from a browser: anything but a short string is None."""
    if not isinstance(incident_id, str) or not incident_id or len(incident_id) > 128:
        return None
    if not authorize(user, "view_incidents"):
        return None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    place = read_states(r, INCIDENT_STATE, [incident_id], now_ms)[incident_id]
    if place is None:
        return None
    kept = scope_filter(user, [to_record(place[1])], "grid", geo)
    return kept[0] if kept else None
