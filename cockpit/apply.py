"""One atomic step per batch: check, acknowledge, dead-letter and apply.

The Lua script first checks that every entry of the batch is still pending for this consumer
(one XPENDING over the batch's id range) and that every incident state it will overwrite still
holds what the worker read. If any check fails nothing is written and the caller retries with
what it learns. Otherwise it
acknowledges the entries, appends the dead letters and applies the operations, all in one
script, so an entry is applied exactly once however often it is delivered: a redelivered entry
is either not yet applied (still pending) or already applied (acknowledged, so skipped).

Operations (built by :class:`Batch`):
  H key field delta            HINCRBY
  E key unix_ts                EXPIREAT (skipped when already past)
  G minute cat n f1 d1 ... a1 ... a4n
                               incident counts: minute and hour buckets (hash fields), and
                               the sliding windows' counter arrays (BITFIELD arguments)
  D key n a1 ... a4n           BITFIELD INCRBY on a counter array (cockpit/counters.py)
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
Counter increments are summed per key and field in the script and written with one HMGET and
one HSET per 1,000 fields, instead of one HINCRBY call each. Counter arrays (windows, open
counts) take the worker's BITFIELD arguments as they are, a thousand areas per command; the
batch names the slot registry it used, and a batch prepared with a registry Redis no longer
holds is refused (code 3) before anything is written.
"""

from __future__ import annotations

import json
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
DEADLETTER_MAXLEN = 1_000_000

_SCRIPT = """
local stream, dl, slot_key = KEYS[1], KEYS[2], KEYS[3]
local A = cmsgpack.unpack(ARGV[1])
local group, health, rate_prefix, dl_maxlen = A[1], A[2], A[3], A[4]
local prefix, minute_ttl, hour_ttl = A[5], tonumber(A[6]), tonumber(A[7])
local consumer, slot_token = A[8], A[9]
local i = 10
local nwin = tonumber(A[i]); i = i + 1
local wins = {}
for w = 1, nwin do wins[w] = {A[i], tonumber(A[i + 1])}; i = i + 2 end
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
-- (A consumer's pending list is normally just the batch it is applying.)
local gone = {}
if nids > 0 then
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

-- 3. dead letters, with reason and original fields
local ndead = tonumber(A[i]); i = i + 1
for d = 1, ndead do
  redis.call('XADD', dl, 'MAXLEN', '~', dl_maxlen, '*', 'stream', stream,
    'entry_id', A[i], 'reason', A[i + 1], 'detail', A[i + 2], 'fields', A[i + 3])
  redis.call('HINCRBY', health, stream .. '|dead|' .. A[i + 1], 1)
  i = i + 4
end

-- 4. operations
local rolled = nil
local function window_marks()
  rolled = {}
  for w = 1, nwin do
    local key = prefix .. 'w:' .. wins[w][1] .. ':rolled'
    local r = redis.call('GET', key)
    if not r then r = now_min - wins[w][2]; redis.call('SET', key, r) end
    rolled[w] = tonumber(r)
  end
end
-- Counter increments are summed per key and field first and written at the end with one
-- HMGET and one HSET per thousand fields: a minute's count reaches the minute bucket, the
-- hour bucket and three windows, and one redis.call per increment (about 2 us with its
-- AOF record) was the largest cost of a batch.
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
  elseif op == 'G' then
    -- n (area id, count) pairs for the minute and hour buckets, then the same counts as
    -- 4n BITFIELD arguments (INCRBY i32 #slot count) for the window arrays
    if not rolled then window_marks() end
    local minute, cat, n = tonumber(A[i + 1]), A[i + 2], tonumber(A[i + 3])
    i = i + 4
    local hour = math.floor(minute / 60)
    local mexp = (minute + 1) * 60 + minute_ttl
    local hexp = (hour + 1) * 3600 + hour_ttl
    local mkey = prefix .. 'm:' .. minute .. ':' .. cat
    local hkey = prefix .. 'h:' .. hour .. ':' .. cat
    local live_m, live_h = mexp > now_s, hexp > now_s
    for f = i, i + 2 * n - 1, 2 do
      local fld, delta = A[f], tonumber(A[f + 1])
      if live_m then add(mkey, fld, delta) end
      if live_h then add(hkey, fld, delta) end
    end
    if live_m then expire_at(mkey, mexp) end
    if live_h then expire_at(hkey, hexp) end
    i = i + 2 * n
    for w = 1, nwin do
      if minute > rolled[w] then bitfield(prefix .. 'wa:' .. wins[w][1] .. ':' .. cat, i, n) end
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
      args[n + 1] = flds[j]; args[n + 2] = (tonumber(cur[j - k + 1]) or 0) + deltas[j]
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
    (``gone``), some incident states changed meanwhile (``stale``), or the counter slots it
    used belong to a registry Redis no longer holds (``slots``)."""

    def __init__(self, gone: list[str], stale: list[str], slots: bool = False) -> None:
        super().__init__(f"{len(gone)} entries applied elsewhere, {len(stale)} states changed"
                         + (", counter slots outdated" if slots else ""))  # fmt: skip
        self.gone = gone
        self.stale = stale
        self.slots = slots


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

    def counts(
        self, minute: int, category: str, areas: list[str], totals: list[int],
        window_args: list[object],
    ) -> None:  # fmt: skip
        """Incident counts of one minute and label: ``totals`` per area id for the buckets,
        and the same as BITFIELD arguments (:meth:`cockpit.counters.Slots.incr_args`) for the
        window arrays."""
        n = len(areas)
        flat: list[object] = [None] * (2 * n)
        flat[0::2] = areas
        flat[1::2] = totals
        self.ops += ["G", minute, category, n]
        self.ops += flat
        self.ops += window_args
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

    def apply(self, stream: str, group: str, consumer: str, batch: Batch) -> None:
        """Apply ``batch`` atomically, or raise :class:`Conflict` having written nothing.
        Only entries pending for ``consumer`` are applied (claimed ones belong to the claimer)."""
        args: list[object] = [
            group, HEALTH, HEALTH_RATE, DEADLETTER_MAXLEN, INC_PREFIX, MINUTE_TTL_S, HOUR_TTL_S,
            consumer, batch.slot_token, len(WINDOWS),
        ]  # fmt: skip
        for name, minutes in WINDOWS.items():
            args += [name, minutes]
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
        packed = _pack(args)
        code, detail = self._script(
            keys=[stream, DEADLETTER, SLOT_TOKEN], args=[packed, *batch.blobs]
        )
        if code == 1:
            return
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in detail]
        raise Conflict(gone=ids if code == 0 else [], stale=ids if code == 2 else [],
                       slots=code == 3)  # fmt: skip


def _plain(value: object) -> object:
    """numpy scalars as Python numbers: MessagePack knows only the plain types."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"cannot send {type(value).__name__} to the apply script")


_pack = msgspec.msgpack.Encoder(enc_hook=_plain).encode
