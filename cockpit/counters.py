"""Counter arrays: per-area counters packed as 32-bit integers, one array per key.

The sliding windows and the open counts are read as a whole (every area of a map at once) and
written for nearly every area an event touches: at 50,000 grids most of those writes were new
fields of hashes of tens of thousands of fields, summed field by field in the apply script.
Packed, each area has a fixed *slot* and a counter is the big-endian signed 32-bit integer at
byte ``4 * slot`` of a string, incremented by ``BITFIELD key INCRBY i32 #slot delta`` (one
command for a thousand areas, its arguments built by the worker, no Lua per field) and read
with one ``GET`` (all areas) or ``GETRANGE`` (a few).

Slots are given out once per area id and never change or get reused, so an array stays valid
when the grids are reloaded (a new grid gets the next slot; a removed one keeps its own):
  cockpit:agg:slot         HASH    area id -> slot
  cockpit:agg:slots        LIST    area ids by slot
  cockpit:agg:slot:token   STRING  random id of this registry; a writer checks it in the same
                                   atomic step as its write, so counts prepared with slots of a
                                   registry Redis has since lost are never written
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis

SLOT = "cockpit:agg:slot"
SLOTS = "cockpit:agg:slots"
SLOT_TOKEN = "cockpit:agg:slot:token"  # noqa: S105 - a key name, not a secret
CELL = np.dtype(">i4")  # BITFIELD's i32: big-endian, at bit offset 32 * slot

# Lua: slots_of(ids, first, last, new_token) -> token, {slot, ...} for ids[first..last],
# giving the next free slot to each id that has none. Shared by the scripts that register.
SLOTS_LUA = f"""
local function slots_of(ids, first, last, new_token)
  local token = redis.call('GET', '{SLOT_TOKEN}')
  if not token then
    token = new_token
    redis.call('DEL', '{SLOT}', '{SLOTS}')
    redis.call('SET', '{SLOT_TOKEN}', token)
  end
  local n = redis.call('LLEN', '{SLOTS}')
  local out = {{}}
  for k = first, last, 1000 do
    local upto = math.min(k + 999, last)
    local cur = redis.call('HMGET', '{SLOT}', unpack(ids, k, upto))
    for j = 1, #cur do
      local slot = cur[j]
      if not slot then
        slot = n
        n = n + 1
        redis.call('RPUSH', '{SLOTS}', ids[k + j - 1])
        redis.call('HSET', '{SLOT}', ids[k + j - 1], slot)
      end
      out[#out + 1] = tonumber(slot)
    end
  end
  return token, out
end
"""

_ASSIGN = SLOTS_LUA + """
local token, slots = slots_of(ARGV, 2, #ARGV, ARGV[1])
table.insert(slots, 1, token)
return slots
"""


@dataclass(frozen=True)
class Slots:
    """The slots of a list of area ids in one registry."""

    token: str
    slots: np.ndarray  # int64, one per area id asked for
    offsets: np.ndarray  # object: "#slot", BITFIELD's offset argument, one per area id

    def incr_args(self, index: np.ndarray, deltas: Sequence[int]) -> list[object]:
        """``INCRBY i32 #slot delta`` for the areas at ``index`` (positions in the list the
        slots were asked for): the arguments of one BITFIELD command."""
        n = len(deltas)
        args: list[object] = [None] * (4 * n)
        args[0::4] = ["INCRBY"] * n
        args[1::4] = ["i32"] * n
        args[2::4] = self.offsets[index].tolist()
        args[3::4] = list(map(str, deltas))  # as text: Redis formats Lua numbers slowly
        return args


def assign_slots(client: redis.Redis, area_ids: Sequence[str]) -> Slots:
    """The slots of ``area_ids``, registering those that have none (atomic, so concurrent
    workers agree)."""
    script = client.register_script(_ASSIGN)
    reply = script(args=[uuid.uuid4().hex, *area_ids])
    token = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    slots = np.array(reply[1:], dtype=np.int64)
    offsets = np.array([f"#{s}" for s in slots.tolist()], dtype=object)
    return Slots(token, slots, offsets)


_assigned: dict[str, Slots] = {}
_assigned_lock = threading.Lock()


def cached_slots(client: redis.Redis, name: str, area_ids: Sequence[str]) -> Slots:
    """:func:`assign_slots` once per ``name`` (e.g. a grid version) and process. A batch names
    the registry token it used and the apply script refuses a stale one; the worker then calls
    :func:`forget_slots` and asks again."""
    with _assigned_lock:
        found = _assigned.get(name)
    if found is None:
        found = assign_slots(client, area_ids)
        with _assigned_lock:
            _assigned.clear()  # only the newest grid version is worth keeping
            _assigned[name] = found
    return found


def forget_slots() -> None:
    with _assigned_lock:
        _assigned.clear()


class _Registry:
    """The reader's copy of the registry: slot -> area id, grown as slots are added. Slots are
    never changed or reused within a registry, so the copy stays valid until its token changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.token = b""
        self.ids: list[str] = []
        self.index: dict[str, int] = {}

    def sync(self, client: redis.Redis, token: bytes | None, length: int) -> None:
        with self.lock:
            if token != self.token:
                self.token, self.ids, self.index = token or b"", [], {}
            if token is None or length <= len(self.ids):
                return
            tail = client.lrange(SLOTS, len(self.ids), length - 1)
            # a registry lost and rebuilt between the two reads: start again next time
            if len(tail) != length - len(self.ids) or client.get(SLOT_TOKEN) != token:
                self.token, self.ids, self.index = b"", [], {}
                return
            for area in tail:
                self.index[area.decode()] = len(self.ids)
                self.ids.append(area.decode())


_registry = _Registry()


def read_counters(client: redis.Redis, key: str) -> dict[str, int]:
    """Every non-zero counter of the array at ``key``, by area id."""
    for _attempt in range(3):
        with client.pipeline(transaction=True) as pipe:
            pipe.get(SLOT_TOKEN).llen(SLOTS).get(key)
            token, length, raw = pipe.execute()
        _registry.sync(client, token, length)
        if raw is None:
            return {}
        values = np.frombuffer(raw, CELL)
        slots = np.flatnonzero(values)
        with _registry.lock:
            ids = _registry.ids
            if _registry.token == token and (not len(slots) or slots[-1] < len(ids)):
                return {ids[s]: int(values[s]) for s in slots.tolist()}
    raise RuntimeError("the counter slot registry kept changing while being read")


def counters_at(client: redis.Redis, keys: Sequence[str], areas: Sequence[str]) -> list[list[int]]:
    """For each key, the counters of ``areas`` (0 for an area without a slot): a few areas
    without reading whole arrays."""
    for _attempt in range(3):
        with client.pipeline(transaction=True) as pipe:
            pipe.get(SLOT_TOKEN).llen(SLOTS)
            token, length = pipe.execute()
        _registry.sync(client, token, length)
        with _registry.lock:
            known = _registry.token == token
            slots = [_registry.index.get(a) if known else None for a in areas]
        with client.pipeline(transaction=True) as pipe:
            pipe.get(SLOT_TOKEN)
            for key in keys:
                for slot in slots:
                    if slot is not None:
                        pipe.getrange(key, 4 * slot, 4 * slot + 3)
            replies = pipe.execute()
        if replies[0] != token:  # the registry changed in between: ask again
            continue
        values = iter(replies[1:])
        out = []
        for _key in keys:
            row = []
            for slot in slots:
                raw = next(values) if slot is not None else b""
                row.append(int.from_bytes(raw, "big", signed=True) if len(raw) == 4 else 0)
            out.append(row)
        return out
    raise RuntimeError("the counter slot registry kept changing while being read")
