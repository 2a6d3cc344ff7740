"""Alerts in Redis: one JSON record per alert, indexes for the screens, a change stream and an
audit stream, and the rules' state.

Keys
  cockpit:alert:{id}               STRING  the alert as JSON (:meth:`Alert.to_json`); a closed
                                           alert expires after ``CLOSED_TTL_S``
  cockpit:alerts:open              ZSET    ids of open alerts by raised time (seconds)
  cockpit:alerts:area:{area}       ZSET    ids of open alerts covering a grid of ``area`` (the
                                           grid itself and each of its ancestors), so a user's
                                           scope is one ZRANGE; grid-less alerts are in no area
  cockpit:alerts:all               ZSET    every alert id by raised time (``alerts list --all``)
  cockpit:alerts:cap               SET     ids of CAP alerts (Update and Cancel look them up)
  cockpit:alerts                   STREAM  one entry per create, update, clear, acknowledge,
                                           resolve, cancel and escalation (maxlen ~100k)
  cockpit:audit                    STREAM  who did what to which alert, when, with a comment
  cockpit:alerts:state:{rule}      HASH    rule state per gauge / truck / grid / address (JSON)

Writes go through one Lua script, so an alert, its indexes and its stream entry change together:
- a new alert is written with ``SET NX`` on its id (derived from the dedup key), so restarts and
  several engines never raise the same situation twice;
- a change is a compare-and-set on the stored JSON: if another writer changed the alert since it
  was read, nothing is written and the caller reads again (:class:`Conflict`).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import redis

from cockpit.alerts.model import Alert, severity_rank
from cockpit.policy import User, authorize

if TYPE_CHECKING:
    from cockpit.areastore import Geography

ALERT_PREFIX = "cockpit:alert:"
OPEN = "cockpit:alerts:open"
AREA_PREFIX = "cockpit:alerts:area:"
ALL = "cockpit:alerts:all"
CAP_IDS = "cockpit:alerts:cap"
STREAM = "cockpit:alerts"
AUDIT = "cockpit:audit"
STATE_PREFIX = "cockpit:alerts:state:"
STREAM_MAXLEN = 100_000
AUDIT_MAXLEN = 1_000_000
#: A closed alert is kept this long (it stays in the change and audit streams).
CLOSED_TTL_S = 30 * 86400
#: Rule names whose state is kept (one hash each).
RULES = ("flood", "truck", "rising", "dispute")

_WRITE = """
-- ARGV: 1 id, 2 mode (create|cas), 3 expected JSON (cas), 4 new JSON, 5 raised_at,
--       6 open (1|0), 7 areas to index (JSON list), 8 areas indexed before (JSON list),
--       9 action, 10 actor, 11 comment, 12 audit (1|0), 13 at_ms, 14 stream maxlen,
--       15 audit maxlen, 16 closed ttl s, 17 is_cap (1|0), 18 status, 19 severity,
--       20 level, 21 kind
local id = ARGV[1]
local key = 'cockpit:alert:' .. id
if ARGV[2] == 'create' then
  if not redis.call('SET', key, ARGV[4], 'NX') then return 0 end
  redis.call('ZADD', 'cockpit:alerts:all', ARGV[5], id)
else
  if redis.call('GET', key) ~= ARGV[3] then return -1 end
  redis.call('SET', key, ARGV[4])
end
for _, area in ipairs(cjson.decode(ARGV[8])) do
  redis.call('ZREM', 'cockpit:alerts:area:' .. area, id)
end
if ARGV[6] == '1' then
  redis.call('ZADD', 'cockpit:alerts:open', ARGV[5], id)
  for _, area in ipairs(cjson.decode(ARGV[7])) do
    redis.call('ZADD', 'cockpit:alerts:area:' .. area, ARGV[5], id)
  end
else
  redis.call('ZREM', 'cockpit:alerts:open', id)
  redis.call('EXPIRE', key, ARGV[16])
end
if ARGV[17] == '1' then redis.call('SADD', 'cockpit:alerts:cap', id) end
redis.call('XADD', 'cockpit:alerts', 'MAXLEN', '~', ARGV[14], '*',
  'id', id, 'action', ARGV[9], 'status', ARGV[18], 'severity', ARGV[19],
  'level', ARGV[20], 'kind', ARGV[21], 'by', ARGV[10], 'at_ms', ARGV[13])
if ARGV[12] == '1' then
  redis.call('XADD', 'cockpit:audit', 'MAXLEN', '~', ARGV[15], '*',
    'who', ARGV[10], 'at_ms', ARGV[13], 'action', ARGV[9], 'alert_id', id,
    'comment', ARGV[11], 'status', ARGV[18])
end
return 1
"""


class Conflict(RuntimeError):
    """The alert changed since it was read; read it again and retry."""


def _areas_of(alert: Alert, geo: Geography | None) -> list[str]:
    """The grids of an alert with every ancestor of each (the area index keys)."""
    if not alert.area_grids:
        return []
    out = set(alert.area_grids)
    if geo is not None:
        areas = geo.areas
        for grid in alert.area_grids:
            if grid in areas:
                out.update(areas.ancestors(grid))
    return sorted(out)


def _write(
    r: redis.Redis,
    mode: str,
    old: Alert | None,
    new: Alert,
    geo: Geography | None,
    action: str,
    actor: str,
    comment: str,
    audit: bool,
    at: float,
) -> int:
    script = r.register_script(_WRITE)
    args = [
        new.id,
        mode,
        old.to_json() if old is not None else "",
        new.to_json(),
        repr(float(new.raised_at)),
        "1" if new.is_open else "0",
        json.dumps(_areas_of(new, geo)),
        json.dumps(_areas_of(old, geo) if old is not None else []),
        action,
        actor,
        comment,
        "1" if audit else "0",
        int(at * 1000),
        STREAM_MAXLEN,
        AUDIT_MAXLEN,
        CLOSED_TTL_S,
        "1" if new.kind == "cap" else "0",
        new.status,
        new.severity,
        new.escalation_level,
        new.kind,
    ]
    return int(script(args=args))


def create_alert(
    r: redis.Redis,
    alert: Alert,
    geo: Geography | None,
    actor: str = "engine",
    audit: bool = False,
) -> bool:
    """Store a new alert unless its id exists (SET NX): False means someone raised it already."""
    return _write(r, "create", None, alert, geo, "create", actor, "", audit, alert.updated_at) == 1


def update_alert(
    r: redis.Redis,
    old: Alert,
    new: Alert,
    geo: Geography | None,
    action: str,
    actor: str = "engine",
    comment: str = "",
    audit: bool = False,
) -> None:
    """Replace ``old`` by ``new`` if the stored alert is still ``old``; else :class:`Conflict`.

    Writes the change to ``cockpit:alerts`` and, with ``audit``, to ``cockpit:audit``.
    """
    if old.id != new.id:
        raise ValueError(f"cannot replace alert {old.id} by a different alert {new.id}")
    done = _write(r, "cas", old, new, geo, action, actor, comment, audit, new.updated_at)
    if done != 1:
        raise Conflict(f"alert {old.id} changed meanwhile")


def get_alert_raw(r: redis.Redis, alert_id: str) -> bytes | None:
    """The stored JSON of an alert exactly as kept (tests compare it byte for byte)."""
    return r.get(ALERT_PREFIX + alert_id)


def get_alert(r: redis.Redis, alert_id: str) -> Alert | None:
    """The alert with this id, or None."""
    raw = get_alert_raw(r, alert_id)
    return Alert.from_json(raw) if raw is not None else None


def get_alerts(r: redis.Redis, ids: Iterable[str]) -> list[Alert]:
    """The alerts with these ids that exist (one MGET), in the order given."""
    keys = [ALERT_PREFIX + i for i in ids]
    if not keys:
        return []
    return [Alert.from_json(raw) for raw in r.mget(keys) if raw is not None]


def _ids(raw: list[bytes]) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else str(i) for i in raw]


def open_alert_ids(r: redis.Redis, area_id: str | None = None) -> list[str]:
    """Ids of open alerts, newest first: all of them, or those covering ``area_id``."""
    key = OPEN if area_id is None else AREA_PREFIX + area_id
    return _ids(r.zrevrange(key, 0, -1))


def order_alerts(alerts: list[Alert]) -> list[Alert]:
    """Most severe first, then newest first."""
    return sorted(alerts, key=lambda a: (-severity_rank(a.severity), -a.raised_at, a.id))


def open_alerts(r: redis.Redis, user: User | None, geo: Geography, limit: int = 200) -> list[Alert]:
    """Open alerts in ``user``'s scope, most severe first, then newest.

    An alert is in scope when one of its grids is the user's area or lies below it. Alerts with
    no grid (e.g. a CAP area outside the city) are shown at city level only. A user without
    ``view_alerts`` gets nothing.
    """
    if user is None or not authorize(user, "view_alerts"):
        return []
    if user.area_id == geo.areas.root_id:
        key = OPEN
    elif user.area_id in geo.areas:
        key = AREA_PREFIX + user.area_id
    else:
        return []
    return _open_in(r, key)[: max(0, limit)]


# Every write of an alert goes through _WRITE, which appends to STREAM: the stream's last id
# is a version of all alerts, and the entries after a version name the alerts written since.
# Each tick, every viewer's wall tiles and alert markers asked for the same area's open alerts,
# and reading and parsing thousands of them took most of a web process's CPU; now a process
# reads them once per area and version, re-reads only the alerts written since the version it
# holds, and threads asking for a version being read wait for that read instead of repeating it.
_OPEN_CACHE: OrderedDict[tuple[int, str], tuple[str, list[Alert]]] = OrderedDict()
_OPEN_CACHE_SIZE = 64
_OPEN_LOCK = threading.Lock()
_OPEN_READING: dict[tuple[int, str, str], threading.Event] = {}
_CHANGES_AT_MOST = 2_000  # more alerts written since the held version: read them all again


def _open_in(r: redis.Redis, key: str) -> list[Alert]:
    """The open alerts indexed under ``key``, ordered, from this process's cache while no
    alert has been written since."""
    last = r.xrevrange(STREAM, count=1)
    version = _ids([last[0][0]])[0] if last else ""
    slot = (id(r.connection_pool), key)
    while True:
        with _OPEN_LOCK:
            held = _OPEN_CACHE.get(slot)
            if held is not None and held[0] == version:
                _OPEN_CACHE.move_to_end(slot)
                return held[1]
            reading = _OPEN_READING.get((*slot, version))
            if reading is None:
                done = _OPEN_READING[(*slot, version)] = threading.Event()
                break
        reading.wait(timeout=10)  # another thread reads this version: take its result
    try:
        found = _read_open(r, key, version, held)
        with _OPEN_LOCK:
            current = _OPEN_CACHE.get(slot)
            if current is None or not version or _stream_id(current[0]) <= _stream_id(version):
                _OPEN_CACHE[slot] = (version, found)
                _OPEN_CACHE.move_to_end(slot)
            while len(_OPEN_CACHE) > _OPEN_CACHE_SIZE:
                _OPEN_CACHE.popitem(last=False)
        return found
    finally:
        with _OPEN_LOCK:
            _OPEN_READING.pop((*slot, version), None)
        done.set()


def _read_open(
    r: redis.Redis, key: str, version: str, held: tuple[str, list[Alert]] | None
) -> list[Alert]:
    """The open alerts under ``key``: those written since the ``held`` version read again, the
    others reused (all read when nothing is held or the stream no longer reaches back)."""
    ids = _ids(r.zrevrange(key, 0, -1))
    reuse: dict[str, Alert] = {}
    if held is not None and held[0] and version:
        changed = r.xrange(STREAM, min=f"({held[0]}", max="+", count=_CHANGES_AT_MOST + 1)
        oldest = r.xrange(STREAM, count=1)
        reaches_back = bool(oldest) and _stream_id(_ids([oldest[0][0]])[0]) <= _stream_id(held[0])
        if len(changed) <= _CHANGES_AT_MOST and reaches_back:
            written = {_s(fields.get(b"id") or fields.get("id") or "") for _eid, fields in changed}
            reuse = {a.id: a for a in held[1] if a.id not in written}
    fresh = get_alerts(r, [i for i in ids if i not in reuse])
    listed = set(ids)
    return order_alerts([a for a in [*reuse.values(), *fresh] if a.is_open and a.id in listed])


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms or 0), int(seq or 0)


def all_alerts(r: redis.Redis, limit: int = 1000) -> list[Alert]:
    """Every stored alert (open and closed), newest first (for the CLI)."""
    return get_alerts(r, _ids(r.zrevrange(ALL, 0, max(0, limit) - 1)))


def cap_alerts(r: redis.Redis) -> dict[str, Alert]:
    """CAP alerts by id: what :func:`cockpit.alerts.cap.apply_cap` needs as ``existing``."""
    ids = sorted(_ids(list(r.smembers(CAP_IDS))))
    return {a.id: a for a in get_alerts(r, ids)}


def forget_expired(r: redis.Redis) -> int:
    """Drop index entries of alerts whose record has expired; returns how many."""
    gone = 0
    for key in (ALL, CAP_IDS):
        ids = _ids(r.zrange(key, 0, -1)) if key == ALL else _ids(list(r.smembers(key)))
        if not ids:
            continue
        with r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.exists(ALERT_PREFIX + i)
            present = pipe.execute()
        missing = [i for i, ok in zip(ids, present, strict=True) if not ok]
        if missing:
            if key == ALL:
                r.zrem(key, *missing)
            else:
                r.srem(key, *missing)
            gone += len(missing)
    return gone


def recent_changes(
    r: redis.Redis, since_id: str = "0-0", count: int = 500
) -> list[tuple[str, dict[str, str]]]:
    """Entries of ``cockpit:alerts`` after ``since_id``, oldest first: (entry id, fields).

    Fields: id, action, status, severity, level, kind, by, at_ms. Pass the last entry id back
    to get only what changed since.
    """
    raw = r.xrange(STREAM, min=f"({since_id}", max="+", count=count)
    out = []
    for entry_id, fields in raw:
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        out.append((eid, {_s(k): _s(v) for k, v in fields.items()}))
    return out


def audit_entries(r: redis.Redis, count: int = 1000) -> list[tuple[str, dict[str, str]]]:
    """The audit stream, oldest first: (entry id, {who, at_ms, action, alert_id, comment})."""
    return [
        (_s(eid), {_s(k): _s(v) for k, v in f.items()}) for eid, f in r.xrange(AUDIT, count=count)
    ]


def _s(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# -- rule state --------------------------------------------------------------------------------


def _state_key(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {RULES}")
    return STATE_PREFIX + rule


def load_states(
    r: redis.Redis, rule: str, keys: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Stored states of ``rule``: all of them, or those of ``keys`` that exist (one call)."""
    name = _state_key(rule)
    if keys is None:
        raw = {_s(k): v for k, v in r.hgetall(name).items()}
    else:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        raw = dict(zip(wanted, r.hmget(name, wanted), strict=True))
    return {k: json.loads(v) for k, v in raw.items() if v is not None}


def save_states(r: redis.Redis, rule: str, states: Mapping[str, dict[str, Any]]) -> None:
    """Store states of ``rule`` by key (one HSET)."""
    if states:
        mapping = {k: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
                   for k, v in states.items()}  # fmt: skip
        r.hset(_state_key(rule), mapping=mapping)


def delete_states(r: redis.Redis, rule: str, keys: Iterable[str]) -> None:
    """Forget states that hold nothing worth keeping."""
    keys = list(keys)
    if keys:
        r.hdel(_state_key(rule), *keys)
