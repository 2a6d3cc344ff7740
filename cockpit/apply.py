"""One atomic step per batch: check, acknowledge, dead-letter and apply.

The Lua script first checks that every entry of the batch is still pending for this consumer
and that every incident state it will overwrite still holds what the worker read. If any
check fails nothing is written and the caller retries with what it learns. Otherwise it
acknowledges the entries, appends the dead letters and applies the operations, all in one
script, so an entry is applied exactly once however often it is delivered: a redelivered entry
is either not yet applied (still pending) or already applied (acknowledged, so skipped).

The worker reads each batch under a consumer name of its own (``worker/token/seq``, see
cockpit/worker.py), so that name's pending list is the batch minus what others claimed from
it: the script compares the name's pending count (XPENDING's summary, one line per consumer)
with the batch's size, and deletes the name once the batch is acknowledged. Only when they
differ, or for a batch under a shared name (claimed entries, one isolated entry), does it
read the whole pending list (XPENDING's extended form) to name the entries that went:
turning 20,000 entries of that list into Lua values cost 1.4 µs per event, as much as the
rest of the check and acknowledgement together.

Operations (built by :class:`Batch`):
  H key field delta            HINCRBY
  E key unix_ts                EXPIREAT (skipped when already past)
  C key unix_ts n f1 ... fn d1 ... dn
                               add counts to n distinct fields of a hash (a bucket), unless
                               its expiry unix_ts (0: none) is already past
  M minute label n f1 ... fn d1 ... dn
                               incident counts of one minute: into its minute bucket, and
                               into its hour bucket too only if that minute is already folded
                               (see below)
  W mask label n a1 ... a4n    window counts: BITFIELD arguments (INCRBY i32 #slot delta) for
                               the window arrays of ``label`` whose bits are set in ``mask``
  D key n a1 ... a4n           BITFIELD on one counter array (cockpit/counters.py)
  L key field ts value         latest value if newer than the stored one (stored "ts|value")
  Z key min_score keep n s1 m1 ...
                               ZADD n members, drop those under min_score, keep the last `keep`
  A key bytes unix_ts          APPEND (packed points) and EXPIREAT

States (incidents, survey answers) are JSON values in hashes sharded by day; the check compares
their status ``s`` ('' when absent), with one HMGET per shard, and the write is one HSET.

The whole batch travels as ONE MessagePack argument that the script unpacks with Redis's
built-in ``cmsgpack`` (C): packing tens of thousands of script arguments in redis-py cost about
a microsecond each, a fifth of the worker's time. Binary values (the heatmap's packed points;
cmsgpack has no bin type) follow as extra arguments and the batch names them by position.
Bucket counts arrive summed per key and field by the worker and are written with one HMGET
and one HSET per 1,000 fields (single increments, H, are summed in the script first), instead
of one HINCRBY call each. Counter arrays (windows, open counts) take the worker's BITFIELD
arguments as they are, a thousand areas per command. The batch names the slot registry and
the window watermarks it was prepared with; if Redis no longer holds that registry (code 3)
or a window has rolled since (code 4), nothing is written and the worker prepares again.
Counts reach redis.call as strings: Redis formats every Lua number with "%.17g".

Hour buckets are folded from minute buckets (cockpit/aggregates.py, ``_ROLL``): a minute's
counts go into its minute bucket only, and the roll adds the whole bucket to its hour bucket
once, :data:`FOLD_LAG_MIN` minutes later, and moves the mark ``h:folded`` past it. A count
for a minute the mark has passed (a late report) goes into both buckets here. So an hour
bucket holds exactly its folded minutes, and an hour's count is its bucket plus its minutes
after the mark (:func:`cockpit.aggregates.hour_counts`). A minute bucket gets its expiry when
folded, so no outage can expire one before its counts reach the hour. This halves a batch's
writes to bucket hashes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain

import msgspec
import numpy as np
import redis

from cockpit.contract import DEADLETTER, Reject
from cockpit.counters import SLOT_TOKEN

INC_PREFIX = "cockpit:agg:inc:"
HEALTH = "cockpit:health"
HEALTH_RATE = "cockpit:health:m:"  # per-minute applied counts, for events/s
WINDOWS: dict[str, int] = {"5m": 5, "1h": 60, "24h": 24 * 60}  # name -> minutes
MINUTE_TTL_S = 26 * 3600
HOUR_TTL_S = 91 * 86400
FOLD_MARK = INC_PREFIX + "h:folded"  # the last minute folded into the hour buckets
# A minute is folded this long after it ends: live reports arrive within seconds, so nearly
# every count lands after the mark and is written once (a count before it is written twice).
FOLD_LAG_MIN = 10
# In a store written before folding existed (its windows were rolled before), a missing mark
# starts this far past the current minute: past every minute a report can carry (ts up to
# 5 min ahead, contract.MAX_FUTURE_MS), so its hours, written directly, are never folded
# again. A new store starts FOLD_LAG_MIN back (the roll runs before the first batch).
FOLD_AHEAD_MIN = 6
DEADLETTER_MAXLEN = 1_000_000

_SCRIPT = """
local stream, dl, slot_key = KEYS[1], KEYS[2], KEYS[3]
local A = cmsgpack.unpack(ARGV[1])
local group, health, rate_prefix, dl_maxlen = A[1], A[2], A[3], A[4]
local prefix, minute_ttl, hour_ttl = A[5], tonumber(A[6]), tonumber(A[7])
local consumer, slot_token, fold_ahead = A[8], A[9], tonumber(A[10])
local own = A[11] == 1  -- the consumer name is this batch's alone (see the docstring)
local i = 12
local nwin = tonumber(A[i]); i = i + 1
local wins = {}
for w = 1, nwin do wins[w] = {A[i], tonumber(A[i + 1])}; i = i + 2 end
-- the window watermarks the worker split its window counts by ('' when it has none)
local marks = {}
for w = 1, nwin do marks[w] = A[i + w - 1] end
i = i + nwin
local nids = tonumber(A[i]); i = i + 1
local first_id = i; i = i + nids
-- states: per shard hash, n_new (field, json) pairs then n_upd (field, expected, json)
local nshard = tonumber(A[i]); i = i + 1
local shards = {}
for s = 1, nshard do
  local n_new, n_upd = tonumber(A[i + 2]), tonumber(A[i + 3])
  shards[s] = {key = A[i], expire = tonumber(A[i + 1]), n_new = n_new, n_upd = n_upd,
               first = i + 4, first_upd = i + 4 + 2 * n_new}
  i = i + 4 + 2 * n_new + 3 * n_upd
end

-- 1. checks, before any write. Our own pending entries, in one read-only call: an entry of
-- the batch missing from them was acknowledged (applied) or claimed by another consumer.
-- Under the batch's own name, a pending count equal to the batch's size says all are there.
local gone = {}
local whole = false  -- every entry still pending under the batch's own name
if own and nids > 0 then
  local summary = redis.call('XPENDING', stream, group)
  if type(summary[4]) == 'table' then
    for _, c in ipairs(summary[4]) do
      if c[1] == consumer then whole = tonumber(c[2]) == nids end
    end
  end
end
if nids > 0 and not whole then
  local pending = redis.call('XPENDING', stream, group, '-', '+', 2147483647, consumer)
  local mine = {}
  for _, p in ipairs(pending) do mine[p[1]] = true end
  for k = first_id, first_id + nids - 1 do
    if not mine[A[k]] then gone[#gone + 1] = A[k] end
  end
end
if #gone > 0 then return {0, gone} end
-- counter arrays were addressed with slots of this registry: it must still be the one in Redis
if slot_token ~= '' and redis.call('GET', slot_key) ~= slot_token then return {3, {}} end
-- window counts were split by these watermarks: a roll since then means prepare again
for w = 1, nwin do
  local mark = redis.call('GET', prefix .. 'w:' .. wins[w][1] .. ':rolled')
  if marks[w] ~= '' and mark ~= marks[w] then return {4, {}} end
end
local stale = {}
for _, sh in ipairs(shards) do
  -- new states: the field must still be absent
  for k = sh.first, sh.first + 2 * sh.n_new - 1, 2000 do
    local upto = math.min(k + 1999, sh.first + 2 * sh.n_new - 1)
    local fields = {}
    for f = k, upto, 2 do fields[#fields + 1] = A[f] end
    local cur = redis.call('HMGET', sh.key, unpack(fields))
    for f = 1, #fields do
      if cur[f] then stale[#stale + 1] = fields[f] end
    end
  end
  -- changed states: the stored status must still be the one the worker read
  for k = 0, sh.n_upd - 1 do
    local at = sh.first_upd + 3 * k
    local value = redis.call('HGET', sh.key, A[at])
    if not (value and cjson.decode(value).s == A[at + 1]) then
      stale[#stale + 1] = A[at]
    end
  end
end
if #stale > 0 then return {2, stale} end

-- 2. acknowledge and record state
for k = first_id, first_id + nids - 1, 500 do
  redis.call('XACK', stream, group, unpack(A, k, math.min(k + 499, first_id + nids - 1)))
end
-- the batch's own name holds nothing now: drop it, so names do not pile up in the group
if whole then redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer) end
for _, sh in ipairs(shards) do
  for k = sh.first, sh.first + 2 * sh.n_new - 1, 2000 do
    redis.call('HSET', sh.key, unpack(A, k, math.min(k + 1999, sh.first + 2 * sh.n_new - 1)))
  end
  for k = 0, sh.n_upd - 1 do
    local at = sh.first_upd + 3 * k
    redis.call('HSET', sh.key, A[at], A[at + 2])
  end
  redis.call('EXPIREAT', sh.key, sh.expire)
end

local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_min = math.floor(now_s / 60)
-- minutes up to this one are already in their hour buckets (see the module's docstring)
local fold_key = prefix .. 'h:folded'
local folded = tonumber(redis.call('GET', fold_key) or '')
if not folded then
  folded = now_min + fold_ahead
  redis.call('SET', fold_key, folded)
end

-- 3. dead letters, with reason and original fields
local ndead = tonumber(A[i]); i = i + 1
for d = 1, ndead do
  redis.call('XADD', dl, 'MAXLEN', '~', dl_maxlen, '*', 'stream', stream,
    'entry_id', A[i], 'reason', A[i + 1], 'detail', A[i + 2], 'fields', A[i + 3])
  redis.call('HINCRBY', health, stream .. '|dead|' .. A[i + 1], 1)
  i = i + 4
end

-- 4. operations
-- A number passed to redis.call is formatted with "%.17g" (a tenth of Redis's time when
-- every count went that way): counts go as strings, small ones from a table.
local small = {}
for v = 0, 255 do small[v] = tostring(v) end
local function int_str(v)
  return small[v] or string.format('%d', v)
end
-- Single increments (health, surveys) are summed per key and field first and written at
-- the end with one HMGET and one HSET per thousand fields; bucket counts come summed by the
-- worker ('C'), window and open counts as BITFIELD arguments ('W', 'D').
local acc, acc_keys, expires, expire_keys = {}, {}, {}, {}
local function add(key, fld, delta)
  local t = acc[key]
  if not t then t = {}; acc[key] = t; acc_keys[#acc_keys + 1] = key end
  t[fld] = (t[fld] or 0) + delta
end
-- EXPIREAT once per key, after its counters exist (many minute ops share a key)
local function expire_at(key, at)
  if not expires[key] then expire_keys[#expire_keys + 1] = key end
  expires[key] = at
end
-- n counts into distinct fields of the hash key: fields A[at..], deltas A[at + n..]; one
-- HMGET and one HSET per thousand fields
local function add_counts(key, at, n)
  for k = at, at + n - 1, 1000 do
    local last = math.min(k + 999, at + n - 1)
    local cur = redis.call('HMGET', key, unpack(A, k, last))
    local args, m = {}, 0
    for j = k, last do
      args[m + 1] = A[j]; args[m + 2] = int_str((tonumber(cur[j - k + 1]) or 0) + A[j + n])
      m = m + 2
    end
    redis.call('HSET', key, unpack(args))
  end
end
-- n BITFIELD operations (4 arguments each) from A[at] on, a thousand per command
local function bitfield(key, at, n)
  for k = at, at + 4 * n - 1, 4000 do
    redis.call('BITFIELD', key, unpack(A, k, math.min(k + 3999, at + 4 * n - 1)))
  end
end
local nops = tonumber(A[i]); i = i + 1
for _ = 1, nops do
  local op = A[i]
  if op == 'H' then
    add(A[i + 1], A[i + 2], tonumber(A[i + 3])); i = i + 4
  elseif op == 'E' then
    if tonumber(A[i + 2]) > now_s then expire_at(A[i + 1], A[i + 2]) end
    i = i + 3
  elseif op == 'C' then
    -- counts into a hash (a bucket): n distinct fields, then their n deltas; skipped when
    -- the bucket's expiry is already past
    local key, at, n = A[i + 1], tonumber(A[i + 2]), tonumber(A[i + 3])
    i = i + 4
    if at == 0 or at > now_s then
      add_counts(key, i, n)
      if at > 0 then expire_at(key, at) end
    end
    i = i + 2 * n
  elseif op == 'M' then
    -- a minute's counts of one label: minute bucket; hour bucket too if already folded
    local m, label, n = tonumber(A[i + 1]), A[i + 2], tonumber(A[i + 3])
    i = i + 4
    local mkey = prefix .. 'm:' .. m .. ':' .. label
    if m > folded then
      add_counts(mkey, i, n)  -- no expiry until folded: the fold sets it
    else
      local m_at, h = (m + 1) * 60 + minute_ttl, math.floor(m / 60)
      if m_at > now_s then add_counts(mkey, i, n); expire_at(mkey, m_at) end
      local h_at = (h + 1) * 3600 + hour_ttl
      if h_at > now_s then
        local hkey = prefix .. 'h:' .. h .. ':' .. label
        add_counts(hkey, i, n); expire_at(hkey, h_at)
      end
    end
    i = i + 2 * n
  elseif op == 'W' then
    -- window counts: the windows (bit w - 1 of mask) these events fall in, the label, and
    -- n BITFIELD operations for the window arrays
    local mask, cat, n = tonumber(A[i + 1]), A[i + 2], tonumber(A[i + 3])
    i = i + 4
    for w = 1, nwin do
      if math.floor(mask / 2 ^ (w - 1)) % 2 == 1 then
        bitfield(prefix .. 'wa:' .. wins[w][1] .. ':' .. cat, i, n)
      end
    end
    i = i + 4 * n
  elseif op == 'D' then
    local n = tonumber(A[i + 2])
    bitfield(A[i + 1], i + 3, n)
    i = i + 3 + 4 * n
  elseif op == 'L' then
    local key, fld, ts = A[i + 1], A[i + 2], tonumber(A[i + 3])
    local cur = redis.call('HGET', key, fld)
    local cur_ts = cur and tonumber(string.match(cur, '^(%d+)|')) or -1
    if ts > cur_ts then redis.call('HSET', key, fld, A[i + 3] .. '|' .. A[i + 4]) end
    i = i + 5
  elseif op == 'Z' then
    local key, min_score = A[i + 1], A[i + 2]
    local keep, n = tonumber(A[i + 3]), tonumber(A[i + 4])
    i = i + 5
    for k = i, i + 2 * n - 1, 1000 do
      redis.call('ZADD', key, unpack(A, k, math.min(k + 999, i + 2 * n - 1)))
    end
    i = i + 2 * n
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. min_score)
    if keep > 0 then redis.call('ZREMRANGEBYRANK', key, 0, -(keep + 1)) end
  elseif op == 'A' then
    redis.call('APPEND', A[i + 1], ARGV[A[i + 2]])
    redis.call('EXPIREAT', A[i + 1], A[i + 3])
    i = i + 4
  else
    return redis.error_reply('unknown op ' .. tostring(op))
  end
end

for _, key in ipairs(acc_keys) do
  local flds, deltas, m = {}, {}, 0
  for fld, delta in pairs(acc[key]) do
    if delta ~= 0 then m = m + 1; flds[m] = fld; deltas[m] = delta end
  end
  for k = 1, #flds, 1000 do
    local last = math.min(k + 999, #flds)
    local cur = redis.call('HMGET', key, unpack(flds, k, last))
    local args, n = {}, 0
    for j = k, last do
      -- a Lua number reaches Redis as "%.17g", which writes whole numbers as integers
      args[n + 1] = flds[j]; args[n + 2] = int_str((tonumber(cur[j - k + 1]) or 0) + deltas[j])
      n = n + 2
    end
    redis.call('HSET', key, unpack(args))
  end
end
for _, key in ipairs(expire_keys) do redis.call('EXPIREAT', key, expires[key]) end

-- 5. health: applied counts, per-minute rate, data age
local nvalid, max_ts = tonumber(A[i]), tonumber(A[i + 1])
redis.call('HINCRBY', health, stream .. '|applied', nvalid)
redis.call('HINCRBY', rate_prefix .. now_min, stream, nvalid + ndead)
redis.call('EXPIRE', rate_prefix .. now_min, 7200)
local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', health, stream .. '|last_apply_ms', now_ms)
if max_ts > tonumber(redis.call('HGET', health, stream .. '|last_event_ms') or '0') then
  redis.call('HSET', health, stream .. '|last_event_ms', max_ts)
end
redis.call('INCR', 'cockpit:seq')
return {1, nids}
"""


class Conflict(Exception):
    """The batch could not be applied as prepared: some entries were applied elsewhere
    (``gone``), some incident states changed meanwhile (``stale``), the counter slots it
    used belong to a registry Redis no longer holds (``slots``), or a window it counted into
    has rolled since (``windows``)."""

    def __init__(
        self, gone: list[str], stale: list[str], slots: bool = False, windows: bool = False
    ) -> None:
        super().__init__(f"{len(gone)} entries applied elsewhere, {len(stale)} states changed"
                         + (", counter slots outdated" if slots else "")
                         + (", a window rolled" if windows else ""))  # fmt: skip
        self.gone = gone
        self.stale = stale
        self.slots = slots
        self.windows = windows


@dataclass
class Batch:
    """Everything one batch of one stream writes, in the order the script reads it."""

    entry_ids: list[str] = field(default_factory=list)
    # shard key -> (expire unix ts, [field, json, field, json, ...]): states that must be absent
    fresh: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    # shard key -> (expire unix ts, [(field, expected status, new json)]): states that change
    changed: dict[str, tuple[int, list[tuple[str, str, str]]]] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    ops: list[object] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)  # binary values, script arguments 2...
    n_ops: int = 0
    n_valid: int = 0
    slot_token: str = ""  # the slot registry the counter arrays were addressed with
    window_marks: list[str] | None = None  # the watermarks window counts were split by
    max_ts_ms: int = 0

    def state(self, shard: str, expire_unix: int, field_: str, expected: str, new: str) -> None:
        """Set ``field_`` of ``shard`` to ``new`` if its status is still ``expected`` (''
        for: the field must not exist yet)."""
        if expected == "":
            self.fresh.setdefault(shard, (expire_unix, []))[1].extend((field_, new))
        else:
            self.changed.setdefault(shard, (expire_unix, []))[1].append((field_, expected, new))

    def fresh_states(
        self, shard: str, expire_unix: int, fields: list[str], values: list[str]
    ) -> None:
        """Many :meth:`state` calls at once for states that must not exist yet."""
        flat = self.fresh.setdefault(shard, (expire_unix, []))[1]
        flat.extend(chain.from_iterable(zip(fields, values, strict=True)))

    def hincr(self, key: str, field_: str, delta: int) -> None:
        self.ops += ["H", key, field_, delta]
        self.n_ops += 1

    def expire_at(self, key: str, unix_ts: int) -> None:
        self.ops += ["E", key, unix_ts]
        self.n_ops += 1

    def bucket_counts(
        self, key: str, expire_unix: int, fields: list[str], deltas: list[int]
    ) -> None:
        """Add ``deltas`` to distinct ``fields`` of the hash ``key``, expiring at
        ``expire_unix`` (0: never); nothing if that is already past when applied."""
        self.ops += ["C", key, expire_unix, len(fields)]
        self.ops += fields
        self.ops += deltas
        self.n_ops += 1

    def minute_counts(self, minute: int, label: str, fields: list[str], deltas: list[int]) -> None:
        """Incident counts of ``minute`` for ``label``: add ``deltas`` to distinct ``fields``
        (area ids) of its minute bucket, and of its hour bucket if the minute is already
        folded (see the module's docstring)."""
        self.ops += ["M", minute, label, len(fields)]
        self.ops += fields
        self.ops += deltas
        self.n_ops += 1

    def window_counts(self, mask: int, label: str, args: list[object]) -> None:
        """BITFIELD ``args`` (:meth:`cockpit.counters.Slots.incr_args`) on the window arrays
        of ``label`` whose bit is set in ``mask`` (bit k: the k-th of :data:`WINDOWS`), as
        split by :attr:`window_marks`."""
        self.ops += ["W", mask, label, len(args) // 4]
        self.ops += args
        self.n_ops += 1

    def counter_incr(self, key: str, args: list[object]) -> None:
        """BITFIELD ``args`` (``INCRBY i32 #slot delta`` each) on the counter array ``key``."""
        self.ops += ["D", key, len(args) // 4]
        self.ops += args
        self.n_ops += 1

    def latest(self, key: str, field_: str, ts_ms: int, value: str) -> None:
        self.ops += ["L", key, field_, ts_ms, value]
        self.n_ops += 1

    def sorted_add(
        self, key: str, members: list[tuple[int, str]], min_score: int, keep: int = 0
    ) -> None:
        """ZADD ``members`` (score, member); drop those under ``min_score``; keep the last
        ``keep`` (0: all)."""
        self.ops += ["Z", key, min_score, keep, len(members)]
        self.ops.extend(chain.from_iterable(members))
        self.n_ops += 1

    def append(self, key: str, data: bytes, expire_unix: int) -> None:
        self.blobs.append(data)
        self.ops += ["A", key, len(self.blobs) + 1, expire_unix]  # ARGV index of the data
        self.n_ops += 1


class Applier:
    """Runs the apply script for one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._script = client.register_script(_SCRIPT)

    def apply(
        self, stream: str, group: str, consumer: str, batch: Batch, own: bool = False
    ) -> None:
        """Apply ``batch`` atomically, or raise :class:`Conflict` having written nothing.
        Only entries pending for ``consumer`` are applied (claimed ones belong to the claimer).
        ``own``: nothing but this batch's entries was ever delivered to ``consumer`` (a name
        per batch read), so its pending count can stand for its pending list."""
        packed = _pack(self._arguments(group, consumer, batch, own))
        _result(self._script(keys=[stream, DEADLETTER, SLOT_TOKEN], args=[packed, *batch.blobs]))

    def send(
        self, stream: str, group: str, consumer: str, batch: Batch, own: bool = False
    ) -> Sent:
        """Start applying ``batch`` and return at once; :meth:`Sent.result` waits for the
        outcome, as :meth:`apply` would end. The worker prepares its next batch meanwhile:
        Redis runs the script on one core while the worker uses the other."""
        packed = _pack(self._arguments(group, consumer, batch, own))
        pool = self._client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command("EVALSHA", self._script.sha, 3, stream, DEADLETTER, SLOT_TOKEN,
                              packed, *batch.blobs)  # fmt: skip
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            raise
        return Sent(pool, conn, lambda: self.apply(stream, group, consumer, batch, own))

    def _arguments(self, group: str, consumer: str, batch: Batch, own: bool) -> list[object]:
        args: list[object] = [
            group, HEALTH, HEALTH_RATE, DEADLETTER_MAXLEN, INC_PREFIX, MINUTE_TTL_S, HOUR_TTL_S,
            consumer, batch.slot_token, FOLD_AHEAD_MIN, 1 if own else 0, len(WINDOWS),
        ]  # fmt: skip
        for name, minutes in WINDOWS.items():
            args += [name, minutes]
        args += batch.window_marks or [""] * len(WINDOWS)
        args.append(len(batch.entry_ids))
        args.extend(batch.entry_ids)
        shards = list(dict.fromkeys([*batch.fresh, *batch.changed]))
        args.append(len(shards))
        for shard in shards:
            expire, fresh = batch.fresh.get(shard, (0, []))
            expire, changed = batch.changed.get(shard, (expire, []))
            args += [shard, expire, len(fresh) // 2, len(changed)]
            args.extend(fresh)
            for item in changed:
                args.extend(item)
        args.append(len(batch.rejects))
        for rej in batch.rejects:
            original = json.dumps(rej.fields, ensure_ascii=False)
            args += [rej.entry_id, rej.reason, rej.detail, original]
        args.append(batch.n_ops)
        args.extend(batch.ops)
        args += [batch.n_valid, batch.max_ts_ms]
        return args


class Sent:
    """A batch on its way through the apply script (see :meth:`Applier.send`)."""

    def __init__(
        self, pool: redis.ConnectionPool, conn: redis.connection.AbstractConnection,
        again: Callable[[], None],
    ) -> None:  # fmt: skip
        self._pool, self._conn, self._again = pool, conn, again

    def result(self) -> None:
        """Wait for the script; raise :class:`Conflict` (nothing written) as apply() does."""
        try:
            reply = self._conn.read_response()
        except redis.exceptions.NoScriptError:
            self._pool.release(self._conn)
            self._again()  # the script's first use on this server: apply() loads it
            return
        except BaseException:
            # a broken or half-read connection is not given back for reuse
            self._conn.disconnect()
            self._pool.release(self._conn)
            raise
        self._pool.release(self._conn)
        _result(reply)


def _result(reply: list) -> None:
    code, detail = reply
    if code == 1:
        return
    ids = [x.decode() if isinstance(x, bytes) else str(x) for x in detail]
    raise Conflict(gone=ids if code == 0 else [], stale=ids if code == 2 else [],
                   slots=code == 3, windows=code == 4)  # fmt: skip


def _plain(value: object) -> object:
    """numpy scalars as Python numbers: MessagePack knows only the plain types."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"cannot send {type(value).__name__} to the apply script")


_pack = msgspec.msgpack.Encoder(enc_hook=_plain).encode
