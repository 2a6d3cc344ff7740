"""What the worker keeps in Redis and how the screens read it.

Incident counts (``{c}`` is a category id, ``all``, or ``st:{status}``). Buckets are hashes
whose fields are area ids of every level, so a street's count is one HGET; windows and open
counts are counter arrays (cockpit/counters.py: a 32-bit integer per area slot, read with
:func:`cockpit.counters.read_counters`):
  cockpit:agg:inc:m:{minute}:{c}   HASH  per-minute bucket, kept 26 h after it is folded
                                         (trends per minute, 24 h)
  cockpit:agg:inc:h:{hour}:{c}     HASH  per-hour bucket, kept 91 days (trends per hour, 90 d):
                                         the minutes of that hour up to the fold mark
  cockpit:agg:inc:h:folded         last minute whose bucket was added to its hour bucket; read
                                   an hour with :func:`hour_counts` (cockpit/apply.py says why)
  cockpit:agg:inc:wa:{window}:{c}  ARRAY sliding window (5m, 1h, 24h) = sum of its minute buckets
  cockpit:agg:inc:w:{window}:rolled      last minute already subtracted from that window
  cockpit:agg:inc:oa:{c}           ARRAY incidents open now (new, dispatched, handling)
  (before 2026-12: the windows and open counts were hashes ``w:{window}:{c}`` and ``open:{c}``;
  :func:`migrate_hash_counters` turns them into arrays once)
  cockpit:inc:state:{day}          HASH  id -> JSON of the incident's latest state and details,
                                         sharded by the UTC day of the report, kept 8 days
  cockpit:inc:recent:{street}      ZSET  "grid|id" by ts, last 24 h (the point layer)
  cockpit:inc:pts:{version}:{minute}     packed points of that minute (the heatmap), 26 h
Gauges, trucks, surveys:
  cockpit:gauge:latest             HASH  gauge -> "ts|{json}"
  cockpit:gauge:series:{gauge}     ZSET  "ts:level" by ts, last 7 days
  cockpit:truck:latest             HASH  truck -> "ts|{json}"
  cockpit:truck:trail:{truck}      ZSET  "ts,lon,lat,loaded" by ts, last 30 pings
  cockpit:agg:survey               HASH  "{area}|n", "|safety", "|satisfaction", "|safe",
                                         "|satisfied" (sums and counts; all time)
  cockpit:agg:survey:d:{day}       HASH  the same per day (UTC+8), kept 400 days
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import redis

from cockpit.apply import (
    FOLD_AHEAD_MIN,
    FOLD_LAG_MIN,
    FOLD_MARK,
    HEALTH,
    HOUR_TTL_S,
    INC_PREFIX,
    MINUTE_TTL_S,
    WINDOWS,
)
from cockpit.contract import CATEGORIES, STATUSES
from cockpit.counters import SLOT, SLOTS_LUA, read_counters

_decode = msgspec.json.decode  # states are read by the thousand per batch

ALL = "all"
OPEN_STATUSES = ("new", "dispatched", "handling")
STATUS_KEYS = tuple(f"st:{s}" for s in STATUSES)
WINDOW_KEYS = (*CATEGORIES, ALL, *STATUS_KEYS)
SEQ = "cockpit:seq"
GAUGE_LATEST = "cockpit:gauge:latest"
GAUGE_SERIES = "cockpit:gauge:series:"
TRUCK_LATEST = "cockpit:truck:latest"
TRUCK_TRAIL = "cockpit:truck:trail:"
SURVEY = "cockpit:agg:survey"
SURVEY_DAY = "cockpit:agg:survey:d:"
INCIDENT_STATE = "cockpit:inc:state:"
DAY_MS = 86_400_000
STATE_DAYS = 8  # an incident can be updated for this many days after its report
INCIDENT_RECENT = "cockpit:inc:recent:"
INCIDENT_POINTS = "cockpit:inc:pts:"

WINDOW_ARRAY = "wa:"  # + "{window}:{c}"
OPEN_ARRAY = "oa:"  # + "{c}"

_ROLL = f"""
-- Subtract minute buckets that fell out of each window; idempotent through the watermark.
-- Then fold minute buckets into their hour buckets (cockpit/apply.py), idempotent through
-- the fold mark.
local prefix = ARGV[1]
local t = redis.call('TIME')
local now_min = math.floor(tonumber(t[1]) / 60)
local ncat = tonumber(ARGV[2])
local cats = {{}}
for c = 1, ncat do cats[c] = ARGV[2 + c] end
local i = 3 + ncat
local nwin = tonumber(ARGV[i]); i = i + 1
-- the counts of a bucket as BITFIELD arguments that subtract them from a window array;
-- an area without a slot never reached any array
local function minus(bucket)
  local args = {{}}
  for k = 1, #bucket, 2000 do
    local fields = {{}}
    for f = k, math.min(k + 1999, #bucket), 2 do fields[#fields + 1] = bucket[f] end
    local slots = redis.call('HMGET', '{SLOT}', unpack(fields))
    for j = 1, #fields do
      if slots[j] then
        local n = #args
        args[n + 1] = 'INCRBY'; args[n + 2] = 'i32'; args[n + 3] = '#' .. slots[j]
        args[n + 4] = -tonumber(bucket[k + 2 * j - 1])
      end
    end
  end
  return args
end
-- a store the windows were rolled in before: it may hold hours written before folding
local rolled_before = redis.call('EXISTS', prefix .. 'w:' .. ARGV[i] .. ':rolled') == 1
local rolled_total = 0
for w = 1, nwin do
  local name, minutes = ARGV[i], tonumber(ARGV[i + 1]); i = i + 2
  local rkey = prefix .. 'w:' .. name .. ':rolled'
  local target = now_min - minutes
  local r = tonumber(redis.call('GET', rkey) or target)
  if target - r > minutes then
    -- idle for longer than the window: everything in it has expired
    for c = 1, ncat do redis.call('DEL', prefix .. '{WINDOW_ARRAY}' .. name .. ':' .. cats[c]) end
    r = target
  end
  while r < target do
    r = r + 1
    for c = 1, ncat do
      local args = minus(redis.call('HGETALL', prefix .. 'm:' .. r .. ':' .. cats[c]))
      local wkey = prefix .. '{WINDOW_ARRAY}' .. name .. ':' .. cats[c]
      for k = 1, #args, 4000 do
        redis.call('BITFIELD', wkey, unpack(args, k, math.min(k + 3999, #args)))
      end
    end
    rolled_total = rolled_total + 1
  end
  redis.call('SET', rkey, r)
end
-- fold: each minute once, fold_lag minutes after it, at most a day of minutes per call (after
-- a long outage the rest follows in the next calls); the sum an hour reads as stays the same
local fold_lag, fold_ahead = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
local minute_ttl, hour_ttl = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
local fold_key = prefix .. 'h:folded'
local f = tonumber(redis.call('GET', fold_key) or '')
if not f then
  -- an older store: its hours hold every minute written so far (see FOLD_AHEAD_MIN); a new
  -- one holds nothing, and folding starts where it will run from now on
  f = rolled_before and now_min + fold_ahead or now_min - fold_lag
else
  local upto = math.min(now_min - fold_lag, f + 1440)
  while f < upto do
    f = f + 1
    local h = math.floor(f / 60)
    for c = 1, ncat do
      local mkey = prefix .. 'm:' .. f .. ':' .. cats[c]
      local bucket = redis.call('HGETALL', mkey)
      if #bucket > 0 then
        local hkey = prefix .. 'h:' .. h .. ':' .. cats[c]
        for k = 1, #bucket, 2000 do
          local last = math.min(k + 1999, #bucket)
          local fields = {{}}
          for j = k, last, 2 do fields[#fields + 1] = bucket[j] end
          local cur = redis.call('HMGET', hkey, unpack(fields))
          local args = {{}}
          for j = 1, #fields do
            args[2 * j - 1] = fields[j]
            args[2 * j] = tostring((tonumber(cur[j]) or 0) + tonumber(bucket[k + 2 * j - 1]))
          end
          redis.call('HSET', hkey, unpack(args))
        end
        -- an expiry already past deletes the key: counts older than the retention go
        redis.call('EXPIREAT', hkey, tostring((h + 1) * 3600 + hour_ttl))
        redis.call('EXPIREAT', mkey, tostring((f + 1) * 60 + minute_ttl))
      end
    end
  end
end
redis.call('SET', fold_key, f)
if rolled_total > 0 then redis.call('INCR', 'cockpit:seq') end
return rolled_total
"""

_MIGRATE = SLOTS_LUA + """
-- Old hash counters to counter arrays: ARGV = new registry token, then (hash key, array key)
-- pairs. A hash is added into its array and deleted, so running this again changes nothing.
local moved = 0
for k = 2, #ARGV, 2 do
  if redis.call('TYPE', ARGV[k]).ok == 'hash' then
    local old = redis.call('HGETALL', ARGV[k])
    local ids, counts = {}, {}
    for f = 1, #old, 2 do ids[#ids + 1] = old[f]; counts[#counts + 1] = tonumber(old[f + 1]) end
    local _token, slots = slots_of(ids, 1, #ids, ARGV[1])
    local args = {}
    for j = 1, #ids do
      local n = #args
      args[n + 1] = 'INCRBY'; args[n + 2] = 'i32'; args[n + 3] = '#' .. slots[j]
      args[n + 4] = counts[j]
    end
    for a = 1, #args, 4000 do
      redis.call('BITFIELD', ARGV[k + 1], unpack(args, a, math.min(a + 3999, #args)))
    end
    redis.call('DEL', ARGV[k])
    moved = moved + 1
  end
end
if moved > 0 then redis.call('INCR', 'cockpit:seq') end
return moved
"""


DENSE_KEYS = 4_000_000  # rollup counts densely below this many (bucket, label, area) keys


@dataclass(frozen=True)
class AreaCodes:
    """Per grid position, the ids of the grid and its ancestors (one column per level)."""

    area_ids: np.ndarray  # object array of all area ids that can receive counts
    grid_to_codes: np.ndarray  # int32 (n_grids, n_levels), index into area_ids, -1 for none


def rollup(
    codes: AreaCodes,
    grid_pos: np.ndarray,
    label: np.ndarray,
    labels: Sequence[str],
    bucket: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    with_all: bool = True,
) -> list[tuple[int, str, list[tuple[str, int]]]]:
    """Sum ``weight`` (default 1) per (bucket, label, area) over every level of each grid's
    hierarchy, vectorised; ``with_all`` adds the label ``all``. Returns
    ``[(bucket, label, [(area_id, total), ...]), ...]`` without zero totals."""
    return [
        (b, name, list(zip(codes.area_ids[area].tolist(), totals.tolist(), strict=True)))
        for b, name, area, totals in rollup_codes(
            codes, grid_pos, label, labels, bucket, weight, with_all
        )
    ]


def rollup_codes(
    codes: AreaCodes,
    grid_pos: np.ndarray,
    label: np.ndarray,
    labels: Sequence[str],
    bucket: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    with_all: bool = True,
) -> list[tuple[int, str, np.ndarray, np.ndarray]]:
    """:func:`rollup` with the areas as codes (positions in ``codes.area_ids``) and the
    totals as arrays: ``[(bucket, label, area codes, totals), ...]``."""
    if len(grid_pos) == 0:
        return []
    n_areas = len(codes.area_ids)
    n_lab = len(labels) + (1 if with_all else 0)
    area = codes.grid_to_codes[grid_pos]  # (n, levels)
    levels = area.shape[1]
    bucket = np.zeros(len(grid_pos), np.int64) if bucket is None else bucket.astype(np.int64)
    weight = np.ones(len(grid_pos), np.int64) if weight is None else weight.astype(np.int64)
    b0 = int(bucket.min())
    b_off = np.repeat(bucket - b0, levels)
    a = area.reshape(-1).astype(np.int64)
    lab = np.repeat(label.astype(np.int64), levels)
    w = np.repeat(weight, levels)
    keep = a >= 0
    b_off, a, lab, w = b_off[keep], a[keep], lab[keep], w[keep]
    keys = [(b_off * n_lab + lab) * n_areas + a]
    weights = [w]
    if with_all:
        keys.append((b_off * n_lab + n_lab - 1) * n_areas + a)
        weights.append(w)
    key = np.concatenate(keys)
    space = (int(b_off.max()) + 1) * n_lab * n_areas if len(b_off) else 0
    if space <= DENSE_KEYS:  # the usual live batch: a dense count beats sorting the keys
        dense = np.bincount(key, weights=np.concatenate(weights), minlength=space)
        uniq = np.flatnonzero(dense)
        totals = dense[uniq].astype(np.int64)
    else:
        uniq, inverse = np.unique(key, return_inverse=True)
        totals = np.bincount(inverse, weights=np.concatenate(weights)).astype(np.int64)
        nonzero = totals != 0
        uniq, totals = uniq[nonzero], totals[nonzero]
    if len(uniq) == 0:
        return []
    area_of = uniq % n_areas
    bl = uniq // n_areas
    names = [*labels, ALL] if with_all else list(labels)
    out = []
    bounds = np.flatnonzero(np.diff(bl)) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(uniq)]
    for lo, hi in zip(starts, ends, strict=True):
        out.append((int(bl[lo] // n_lab + b0), names[int(bl[lo] % n_lab)], area_of[lo:hi],
                    totals[lo:hi]))  # fmt: skip
    return out


def window_key(window: str, category: str) -> str:
    """The counter array of a sliding window and label."""
    return f"{INC_PREFIX}{WINDOW_ARRAY}{window}:{category}"


def open_key(category: str) -> str:
    """The counter array of incidents open now, per label."""
    return f"{INC_PREFIX}{OPEN_ARRAY}{category}"


class IncidentAggregates:
    """Reads (and rolls) the incident aggregates of one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._roll = client.register_script(_ROLL)
        self._migrate = client.register_script(_MIGRATE)

    def roll_windows(self) -> int:
        """Expire minute buckets from the sliding windows; cheap to call every second."""
        return self.roll(FOLD_LAG_MIN)

    def roll(self, fold_lag_min: int) -> int:
        """:meth:`roll_windows`, folding minutes up to ``fold_lag_min`` minutes ago (tests
        fold earlier than the worker does). Returns how many minutes the windows rolled."""
        args: list[object] = [INC_PREFIX, len(WINDOW_KEYS), *WINDOW_KEYS, len(WINDOWS)]
        for name, minutes in WINDOWS.items():
            args += [name, minutes]
        args += [fold_lag_min, FOLD_AHEAD_MIN, MINUTE_TTL_S, HOUR_TTL_S]
        return int(self._roll(args=args))

    def window_marks(self) -> list[str]:
        """Each window's watermark (the last minute subtracted from it), as stored; a window
        counts an event of minute m when m is greater. Rolls first when one is missing."""
        keys = [f"{INC_PREFIX}w:{name}:rolled" for name in WINDOWS]
        marks = self.r.mget(keys)
        if any(m is None for m in marks):
            self.roll_windows()
            marks = self.r.mget(keys)
        return [m.decode() for m in marks]

    def migrate_hash_counters(self) -> int:
        """Turn windows and open counts kept as hashes (before counter arrays) into arrays;
        returns how many hashes were moved (0 once done). Atomic, so safe with several
        workers."""
        args: list[object] = [uuid.uuid4().hex]
        for category in WINDOW_KEYS:
            for window in WINDOWS:
                args += [f"{INC_PREFIX}w:{window}:{category}", window_key(window, category)]
            args += [f"{INC_PREFIX}open:{category}", open_key(category)]
        return int(self._migrate(args=args))

    def window_counts(self, window: str = "1h", category: str = ALL) -> dict[str, int]:
        """Counts per area id (every level) over a sliding window. ``category`` may also be
        ``st:resolved`` etc.: status reports in the window."""
        if window not in WINDOWS or category not in WINDOW_KEYS:
            raise ValueError(f"unknown window {window!r} or category {category!r}")
        return read_counters(self.r, window_key(window, category))

    def open_counts(self, category: str = ALL) -> dict[str, int]:
        return read_counters(self.r, open_key(category))

    def bucket_counts(
        self, unit: str, start: int, end: int, category: str = ALL, area: str = ""
    ) -> list[int]:
        """Counts of one area per minute (``unit="m"``) or hour (``"h"``) from start to end
        (inclusive, in minutes or hours since the epoch)."""
        if unit == "h":
            return hour_counts(self.r, [category], start, end, [area])[0, :, 0].tolist()
        with self.r.pipeline(transaction=False) as pipe:
            for b in range(start, end + 1):
                pipe.hget(f"{INC_PREFIX}{unit}:{b}:{category}", area)
            return [int(v or 0) for v in pipe.execute()]

    def seq(self) -> int:
        """A counter that changes whenever any aggregate changes (lets readers skip work)."""
        return int(self.r.get(SEQ) or 0)

    def health(self) -> dict[str, int]:
        raw = self.r.hgetall(HEALTH)
        return {k.decode(): int(v) for k, v in raw.items()}


def _read_hours(
    client: redis.Redis, labels: Sequence[str], first: int, last: int, fields: Sequence[str] | None
) -> tuple[list[list[Any]], list[list[list[Any]]]]:
    """For hours ``first``..``last`` and each label: the hour bucket's reply, and the replies
    of that hour's minute buckets after the fold mark; HMGET of ``fields``, or HGETALL when
    None. Read in one MULTI with the mark, so a fold cannot fall between them."""
    for _attempt in range(5):
        mark = client.get(FOLD_MARK)
        # a missing mark: nothing folded yet, every count is in its hour bucket (apply.py)
        tail = range(max(int(mark) + 1, 60 * first), 60 * last + 60) if mark else range(0)
        with client.pipeline(transaction=True) as pipe:
            pipe.get(FOLD_MARK)
            for label in labels:
                for unit, buckets in (("h", range(first, last + 1)), ("m", tail)):
                    for b in buckets:
                        key = f"{INC_PREFIX}{unit}:{b}:{label}"
                        if fields is None:
                            pipe.hgetall(key)
                        else:
                            pipe.hmget(key, list(fields))
            replies = pipe.execute()
        if replies[0] != mark:  # folded meanwhile: read again
            continue
        hours, minutes = [], []
        at = 1
        for _label in labels:
            hours.append(replies[at : at + last - first + 1])
            at += last - first + 1
            per_hour: list[list[Any]] = [[] for _ in range(first, last + 1)]
            for m in tail:
                per_hour[m // 60 - first].append(replies[at])
                at += 1
            minutes.append(per_hour)
        return hours, minutes
    raise RuntimeError("the hour buckets kept being folded while being read")


def hour_counts(
    client: redis.Redis, labels: Sequence[str], first: int, last: int, areas: Sequence[str]
) -> np.ndarray:
    """Incidents per label, hour (``first``..``last``, hours since the epoch) and area: an
    int64 array (labels, hours, areas). An hour is its bucket plus its minute buckets not yet
    folded into it (cockpit/apply.py)."""
    hours, minutes = _read_hours(client, labels, first, last, areas)
    out = np.zeros((len(labels), last - first + 1, len(areas)), np.int64)
    for k, (label_hours, label_minutes) in enumerate(zip(hours, minutes, strict=True)):
        for h, (bucket, tail) in enumerate(zip(label_hours, label_minutes, strict=True)):
            for reply in (bucket, *tail):
                out[k, h] += [int(v) if v else 0 for v in reply]
    return out


def hour_buckets(client: redis.Redis, label: str, first: int, last: int) -> list[dict[str, int]]:
    """Whole hour buckets of ``label`` for hours ``first``..``last``: area id -> count (areas
    without incidents left out), minutes not yet folded included as in :func:`hour_counts`."""
    hours, minutes = _read_hours(client, [label], first, last, None)
    out = []
    for bucket, tail in zip(hours[0], minutes[0], strict=True):
        counts: dict[str, int] = {}
        for reply in (bucket, *tail):
            for area, v in reply.items():
                name = area.decode() if isinstance(area, bytes) else area
                counts[name] = counts.get(name, 0) + int(v)
        out.append(counts)
    return out


def read_latest(client: redis.Redis, key: str) -> dict[str, dict]:
    """Latest values of gauges or trucks: id -> dict (with ``ts``)."""
    out = {}
    for k, v in client.hgetall(key).items():
        ts, _, body = v.decode().partition("|")
        out[k.decode()] = {**json.loads(body), "ts": int(ts)}
    return out


def survey_index(client: redis.Redis, min_sample: int = 30) -> dict[str, dict[str, float]]:
    """Per area: sample size and the safety-satisfaction index (share answering 4 or 5, 0-100),
    None below ``min_sample`` answers."""
    raw = {k.decode(): int(v) for k, v in client.hgetall(SURVEY).items()}
    out: dict[str, dict[str, float]] = {}
    for key, value in raw.items():
        area, _, metric = key.rpartition("|")
        out.setdefault(area, {})[metric] = value
    for values in out.values():
        n = values.get("n", 0)
        ok = n >= min_sample
        values["safety_index"] = 100 * values.get("safe", 0) / n if ok else None
        values["satisfaction_index"] = 100 * values.get("satisfied", 0) / n if ok else None
    return out


def state_days(now_ms: int) -> range:
    """The day shards an incident state can be in (oldest first)."""
    today = now_ms // DAY_MS
    return range(today - STATE_DAYS + 1, today + 1)


_FIND_STATES = """
-- For each id, its value in the first of the given day shards that holds it. One
-- MessagePack argument {prefix, ndays, day..., id...}; returns a flat
-- {position, day, value, ...} of those found.
local A = cmsgpack.unpack(ARGV[1])
local prefix, ndays = A[1], A[2]
local first, n = 3 + ndays, #A
local out, seen = {}, {}
for d = 3, 2 + ndays do
  local key = prefix .. A[d]
  if redis.call('EXISTS', key) == 1 then
    for k = first, n, 2000 do
      local last = math.min(k + 1999, n)
      local values = redis.call('HMGET', key, unpack(A, k, last))
      for j = 1, #values do
        local at = k + j - first
        if values[j] and not seen[at] then
          seen[at] = true
          out[#out + 1] = at; out[#out + 1] = A[d]; out[#out + 1] = values[j]
        end
      end
    end
  end
end
return out
"""
_pack_ids = msgspec.msgpack.Encoder().encode


def read_states(
    client: redis.Redis, prefix: str, ids: Sequence[str], now_ms: int
) -> dict[str, tuple[int, dict] | None]:
    """For each id, (day shard, state) from the day-sharded hashes, or None.

    One script call looks in every shard inside Redis and returns only what it found: a batch
    of new incidents is mostly absent everywhere, and asking each of the 8 shards from Python
    cost more than all the rest of reading it."""
    out: dict[str, tuple[int, dict] | None] = dict.fromkeys(ids)
    if not ids:
        return out
    ids = list(out)  # each id once, in order
    days = list(reversed(state_days(now_ms)))  # newest first: the newest copy wins
    find = client.register_script(_FIND_STATES)
    for start in range(0, len(ids), 20_000):
        chunk = ids[start : start + 20_000]
        found = find(args=[_pack_ids([prefix, len(days), *days, *chunk])])
        for k in range(0, len(found), 3):
            out[chunk[int(found[k]) - 1]] = (int(found[k + 1]), _decode(found[k + 2]))
    return out


def read_incident(client: redis.Redis, incident_id: str, now_ms: int) -> dict | None:
    found = read_states(client, INCIDENT_STATE, [incident_id], now_ms)[incident_id]
    return found[1] if found else None
