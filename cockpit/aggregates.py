"""Incident aggregates in Redis: counts per area and category in minute and hour buckets and
sliding windows (5 min, 1 h, 24 h), written by the worker and read by the screens.

Keys (``{c}`` is a category id or ``all``; fields are area ids at every level):
  cockpit:agg:inc:m:{minute}:{c}   HASH  per-minute bucket, kept 26 h
  cockpit:agg:inc:h:{hour}:{c}     HASH  per-hour bucket, kept 91 days
  cockpit:agg:inc:w:{window}:{c}   HASH  sliding window = sum of its minute buckets
  cockpit:agg:inc:w:{window}:rolled      last minute already subtracted from the window

A batch is applied by one Lua script that first checks every entry is still pending in the
consumer group, then acknowledges it, writes its dead letters and adds its counts. Applying and
acknowledging are one atomic step, so an entry is counted exactly once however often it is
delivered (a crashed worker's entries are re-read; two workers never both apply one entry).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis

from cockpit.contract import CATEGORIES, DEADLETTER, Reject

PREFIX = "cockpit:agg:inc:"
META = "cockpit:agg:meta"
HEALTH = "cockpit:health"
WINDOWS: dict[str, int] = {"5m": 5, "1h": 60, "24h": 24 * 60}  # name -> minutes
ALL = "all"
MINUTE_TTL_S = 26 * 3600
HOUR_TTL_S = 91 * 86400
DEADLETTER_MAXLEN = 1_000_000

_APPLY = """
local stream, dl = KEYS[1], KEYS[2]
local group, prefix, meta, health = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local minute_ttl, hour_ttl, dl_maxlen = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local i = 8
local nwin = tonumber(ARGV[i]); i = i + 1
local wins = {}
for w = 1, nwin do wins[w] = {ARGV[i], tonumber(ARGV[i + 1])}; i = i + 2 end
local nids = tonumber(ARGV[i]); i = i + 1
local first_id = i
-- 1. every entry must still be pending: one that is not was applied by someone already
local gone = {}
for k = first_id, first_id + nids - 1 do
  local p = redis.call('XPENDING', stream, group, ARGV[k], ARGV[k], 1)
  if #p == 0 then gone[#gone + 1] = ARGV[k] end
end
if #gone > 0 then return {0, gone} end
for k = first_id, first_id + nids - 1, 500 do
  redis.call('XACK', stream, group, unpack(ARGV, k, math.min(k + 499, first_id + nids - 1)))
end
i = first_id + nids
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_min = math.floor(now_s / 60)
-- 2. dead letters, with their reason and original fields
local ndead = tonumber(ARGV[i]); i = i + 1
for d = 1, ndead do
  redis.call('XADD', dl, 'MAXLEN', '~', dl_maxlen, '*', 'stream', stream,
    'entry_id', ARGV[i], 'reason', ARGV[i + 1], 'detail', ARGV[i + 2], 'fields', ARGV[i + 3])
  redis.call('HINCRBY', health, stream .. '|dead|' .. ARGV[i + 1], 1)
  i = i + 4
end
-- 3. counts: groups of (minute, category, n, field/delta pairs)
local rolled = {}
for w = 1, nwin do
  local key = prefix .. 'w:' .. wins[w][1] .. ':rolled'
  local r = redis.call('GET', key)
  if not r then r = now_min - wins[w][2]; redis.call('SET', key, r) end
  rolled[w] = tonumber(r)
end
local ngroups = tonumber(ARGV[i]); i = i + 1
for g = 1, ngroups do
  local minute, cat, n = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local hour = math.floor(minute / 60)
  local mexp = (minute + 1) * 60 + minute_ttl
  local hexp = (hour + 1) * 3600 + hour_ttl
  local mkey = prefix .. 'm:' .. minute .. ':' .. cat
  local hkey = prefix .. 'h:' .. hour .. ':' .. cat
  for f = 0, n - 1 do
    local field, delta = ARGV[i + 2 * f], tonumber(ARGV[i + 2 * f + 1])
    if mexp > now_s then redis.call('HINCRBY', mkey, field, delta) end
    if hexp > now_s then redis.call('HINCRBY', hkey, field, delta) end
    for w = 1, nwin do
      if minute > rolled[w] then
        redis.call('HINCRBY', prefix .. 'w:' .. wins[w][1] .. ':' .. cat, field, delta)
      end
    end
  end
  if mexp > now_s then redis.call('EXPIREAT', mkey, mexp) end
  if hexp > now_s then redis.call('EXPIREAT', hkey, hexp) end
  i = i + 2 * n
end
local nvalid = tonumber(ARGV[i]); local max_ts = ARGV[i + 1]
redis.call('HINCRBY', health, stream .. '|applied', nvalid)
redis.call('HSET', meta, 'last_apply_ms', now_s * 1000 + math.floor(tonumber(t[2]) / 1000))
if tonumber(max_ts) > tonumber(redis.call('HGET', meta, 'last_event_ms') or '0') then
  redis.call('HSET', meta, 'last_event_ms', max_ts)
end
redis.call('INCR', prefix .. 'seq')
return {1, nids}
"""

_ROLL = """
-- Subtract minute buckets that fell out of each window; idempotent through the watermark.
local prefix = ARGV[1]
local t = redis.call('TIME')
local now_min = math.floor(tonumber(t[1]) / 60)
local ncat = tonumber(ARGV[2])
local cats = {}
for c = 1, ncat do cats[c] = ARGV[2 + c] end
local i = 3 + ncat
local nwin = tonumber(ARGV[i]); i = i + 1
local rolled_total = 0
for w = 1, nwin do
  local name, minutes = ARGV[i], tonumber(ARGV[i + 1]); i = i + 2
  local rkey = prefix .. 'w:' .. name .. ':rolled'
  local target = now_min - minutes
  local r = tonumber(redis.call('GET', rkey) or target)
  if target - r > minutes then
    -- idle for longer than the window: everything in it has expired
    for c = 1, ncat do redis.call('DEL', prefix .. 'w:' .. name .. ':' .. cats[c]) end
    r = target
  end
  while r < target do
    r = r + 1
    for c = 1, ncat do
      local wkey = prefix .. 'w:' .. name .. ':' .. cats[c]
      local bucket = redis.call('HGETALL', prefix .. 'm:' .. r .. ':' .. cats[c])
      for f = 1, #bucket, 2 do
        local left = redis.call('HINCRBY', wkey, bucket[f], -tonumber(bucket[f + 1]))
        if left <= 0 then redis.call('HDEL', wkey, bucket[f]) end
      end
    end
    rolled_total = rolled_total + 1
  end
  redis.call('SET', rkey, r)
end
if rolled_total > 0 then redis.call('INCR', prefix .. 'seq') end
return rolled_total
"""


@dataclass(frozen=True)
class AreaCodes:
    """Per grid position, the ids of the grid and its ancestors (one column per level)."""

    area_ids: np.ndarray  # object array of all area ids that can receive counts
    grid_to_codes: np.ndarray  # int32 (n_grids, n_levels), index into area_ids, -1 for none


class IncidentAggregates:
    """Writes and reads the incident aggregates of one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._apply = client.register_script(_APPLY)
        self._roll = client.register_script(_ROLL)
        self.categories = [*CATEGORIES, ALL]

    # -- writing (worker) -------------------------------------------------------------
    def apply_batch(
        self,
        stream: str,
        group: str,
        entry_ids: Sequence[str],
        groups: Sequence[tuple[int, str, Sequence[tuple[str, int]]]],
        rejects: Sequence[Reject],
        n_valid: int,
        max_ts_ms: int,
    ) -> list[str]:
        """Apply one batch atomically. Returns the ids that were already applied elsewhere
        (then nothing was written and the caller retries without them)."""
        args: list[object] = [
            group, PREFIX, META, HEALTH, MINUTE_TTL_S, HOUR_TTL_S, DEADLETTER_MAXLEN,
            len(WINDOWS),
        ]  # fmt: skip
        for name, minutes in WINDOWS.items():
            args += [name, minutes]
        args.append(len(entry_ids))
        args.extend(entry_ids)
        args.append(len(rejects))
        for rej in rejects:
            args += [
                rej.entry_id,
                rej.reason,
                rej.detail,
                json.dumps(rej.fields, ensure_ascii=False),
            ]
        args.append(len(groups))
        for minute, cat, pairs in groups:
            args += [minute, cat, len(pairs)]
            for field, delta in pairs:
                args += [field, delta]
        args += [n_valid, max_ts_ms]
        ok, detail = self._apply(keys=[stream, DEADLETTER], args=args)
        if ok == 1:
            return []
        return [x.decode() if isinstance(x, bytes) else x for x in detail]

    def roll_windows(self) -> int:
        """Expire minute buckets from the sliding windows; cheap to call every second."""
        args: list[object] = [PREFIX, len(self.categories), *self.categories, len(WINDOWS)]
        for name, minutes in WINDOWS.items():
            args += [name, minutes]
        return int(self._roll(args=args))

    # -- reading (screens) ------------------------------------------------------------
    def window_counts(self, window: str = "1h", category: str = ALL) -> dict[str, int]:
        """Counts per area id (every level) over a sliding window."""
        if window not in WINDOWS or category not in self.categories:
            raise ValueError(f"unknown window {window!r} or category {category!r}")
        raw = self.r.hgetall(f"{PREFIX}w:{window}:{category}")
        return {k.decode(): int(v) for k, v in raw.items()}

    def seq(self) -> int:
        """A counter that changes whenever any aggregate changes (lets readers skip work)."""
        return int(self.r.get(PREFIX + "seq") or 0)

    def meta(self) -> dict[str, int]:
        raw = self.r.hgetall(META)
        return {k.decode(): int(v) for k, v in raw.items()}


def count_groups(
    codes: AreaCodes,
    grid_pos: np.ndarray,
    category_idx: np.ndarray,
    minute: np.ndarray,
    categories: Sequence[str],
) -> list[tuple[int, str, list[tuple[str, int]]]]:
    """Turn located events into (minute, category, [(area_id, count)]) groups, rolled up to
    every level and to ``all`` categories, vectorised with numpy."""
    if len(grid_pos) == 0:
        return []
    n_areas = len(codes.area_ids)
    n_cat = len(categories) + 1  # last slot is "all"
    area = codes.grid_to_codes[grid_pos]  # (n, levels)
    n, levels = area.shape
    m0 = int(minute.min())
    m_off = np.repeat((minute - m0).astype(np.int64), levels)
    a = area.reshape(-1).astype(np.int64)
    c = np.repeat(category_idx.astype(np.int64), levels)
    keep = a >= 0
    m_off, a, c = m_off[keep], a[keep], c[keep]
    key = np.concatenate(
        [(m_off * n_cat + c) * n_areas + a, (m_off * n_cat + n_cat - 1) * n_areas + a]
    )
    uniq, counts = np.unique(key, return_counts=True)
    area_of = uniq % n_areas
    mc = uniq // n_areas
    cat_of = mc % n_cat
    min_of = mc // n_cat + m0
    names = [*categories, ALL]
    out: list[tuple[int, str, list[tuple[str, int]]]] = []
    bounds = np.flatnonzero(np.diff(mc)) + 1
    for chunk in np.split(np.arange(len(uniq)), bounds):
        j = chunk[0]
        pairs = list(
            zip(codes.area_ids[area_of[chunk]].tolist(), counts[chunk].tolist(), strict=True)
        )
        out.append((int(min_of[j]), names[int(cat_of[j])], pairs))
    return out


def now_minute() -> int:
    return int(time.time() // 60)
