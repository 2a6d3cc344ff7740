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
  G minute cat n f1 d1 ...     incident counts: minute bucket, hour bucket, sliding windows
  L key field ts value         latest value if newer than the stored one (stored "ts|value")
  Z key min_score keep n s1 m1 ...
                               ZADD n members, drop those under min_score, keep the last `keep`
  A key bytes unix_ts          APPEND (packed points) and EXPIREAT

States (incidents, survey answers) are JSON values in hashes sharded by day; the check compares
their status ``s`` ('' when absent), with one HMGET per shard, and the write is one HSET.
New states travel as (field, json) and changed ones as (field, expected status, json): every
argument costs about a microsecond inside Redis's Lua, more than the commands themselves.

Idempotent index writes (ZADD of the same member with the same score) are sent in a pipeline
just before the script: repeating them after a crash or a conflict changes nothing, and they
would otherwise be two script arguments per event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from cockpit.contract import DEADLETTER, Reject

INC_PREFIX = "cockpit:agg:inc:"
HEALTH = "cockpit:health"
HEALTH_RATE = "cockpit:health:m:"  # per-minute applied counts, for events/s
WINDOWS: dict[str, int] = {"5m": 5, "1h": 60, "24h": 24 * 60}  # name -> minutes
MINUTE_TTL_S = 26 * 3600
HOUR_TTL_S = 91 * 86400
DEADLETTER_MAXLEN = 1_000_000

_SCRIPT = """
local stream, dl = KEYS[1], KEYS[2]
local group, health, rate_prefix, dl_maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local prefix, minute_ttl, hour_ttl = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local consumer = ARGV[8]
local i = 9
-- stream ids compare by their two numbers, not as strings
local function stream_lt(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, bms = tonumber(ams), tonumber(bms)
  if ams ~= bms then return ams < bms end
  return tonumber(aseq) < tonumber(bseq)
end
local nwin = tonumber(ARGV[i]); i = i + 1
local wins = {}
for w = 1, nwin do wins[w] = {ARGV[i], tonumber(ARGV[i + 1])}; i = i + 2 end
local nids = tonumber(ARGV[i]); i = i + 1
local first_id = i; i = i + nids
-- states: per shard hash, n_new (field, json) pairs then n_upd (field, expected, json)
local nshard = tonumber(ARGV[i]); i = i + 1
local shards = {}
for s = 1, nshard do
  local n_new, n_upd = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  shards[s] = {key = ARGV[i], expire = tonumber(ARGV[i + 1]), n_new = n_new, n_upd = n_upd,
               first = i + 4, first_upd = i + 4 + 2 * n_new}
  i = i + 4 + 2 * n_new + 3 * n_upd
end

-- 1. checks, before any write. Our own pending entries in the batch's id range, in one call:
-- an entry missing from them was acknowledged (applied) or claimed by another consumer.
local gone = {}
if nids > 0 then
  local mine = {}
  local lo_id, hi_id = ARGV[first_id], ARGV[first_id]
  for k = first_id, first_id + nids - 1 do
    local id = ARGV[k]
    if stream_lt(id, lo_id) then lo_id = id end
    if stream_lt(hi_id, id) then hi_id = id end
  end
  local pending = redis.call('XPENDING', stream, group, lo_id, hi_id, nids + 1000000, consumer)
  for _, p in ipairs(pending) do mine[p[1]] = true end
  for k = first_id, first_id + nids - 1 do
    if not mine[ARGV[k]] then gone[#gone + 1] = ARGV[k] end
  end
end
if #gone > 0 then return {0, gone} end
local stale = {}
for _, sh in ipairs(shards) do
  -- new states: the field must still be absent
  for k = sh.first, sh.first + 2 * sh.n_new - 1, 2000 do
    local upto = math.min(k + 1999, sh.first + 2 * sh.n_new - 1)
    local fields = {}
    for f = k, upto, 2 do fields[#fields + 1] = ARGV[f] end
    local cur = redis.call('HMGET', sh.key, unpack(fields))
    for f = 1, #fields do
      if cur[f] then stale[#stale + 1] = fields[f] end
    end
  end
  -- changed states: the stored status must still be the one the worker read
  for k = 0, sh.n_upd - 1 do
    local at = sh.first_upd + 3 * k
    local value = redis.call('HGET', sh.key, ARGV[at])
    if not (value and cjson.decode(value).s == ARGV[at + 1]) then
      stale[#stale + 1] = ARGV[at]
    end
  end
end
if #stale > 0 then return {2, stale} end

-- 2. acknowledge and record state
for k = first_id, first_id + nids - 1, 500 do
  redis.call('XACK', stream, group, unpack(ARGV, k, math.min(k + 499, first_id + nids - 1)))
end
for _, sh in ipairs(shards) do
  for k = sh.first, sh.first + 2 * sh.n_new - 1, 2000 do
    redis.call('HSET', sh.key, unpack(ARGV, k, math.min(k + 1999, sh.first + 2 * sh.n_new - 1)))
  end
  for k = 0, sh.n_upd - 1 do
    local at = sh.first_upd + 3 * k
    redis.call('HSET', sh.key, ARGV[at], ARGV[at + 2])
  end
  redis.call('EXPIREAT', sh.key, sh.expire)
end

local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_min = math.floor(now_s / 60)

-- 3. dead letters, with reason and original fields
local ndead = tonumber(ARGV[i]); i = i + 1
for d = 1, ndead do
  redis.call('XADD', dl, 'MAXLEN', '~', dl_maxlen, '*', 'stream', stream,
    'entry_id', ARGV[i], 'reason', ARGV[i + 1], 'detail', ARGV[i + 2], 'fields', ARGV[i + 3])
  redis.call('HINCRBY', health, stream .. '|dead|' .. ARGV[i + 1], 1)
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
local nops = tonumber(ARGV[i]); i = i + 1
for _ = 1, nops do
  local op = ARGV[i]
  if op == 'H' then
    redis.call('HINCRBY', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'E' then
    if tonumber(ARGV[i + 2]) > now_s then redis.call('EXPIREAT', ARGV[i + 1], ARGV[i + 2]) end
    i = i + 3
  elseif op == 'G' then
    if not rolled then window_marks() end
    local minute, cat, n = tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
    i = i + 4
    local hour = math.floor(minute / 60)
    local mexp = (minute + 1) * 60 + minute_ttl
    local hexp = (hour + 1) * 3600 + hour_ttl
    local mkey = prefix .. 'm:' .. minute .. ':' .. cat
    local hkey = prefix .. 'h:' .. hour .. ':' .. cat
    for f = 0, n - 1 do
      local fld, delta = ARGV[i + 2 * f], tonumber(ARGV[i + 2 * f + 1])
      if mexp > now_s then redis.call('HINCRBY', mkey, fld, delta) end
      if hexp > now_s then redis.call('HINCRBY', hkey, fld, delta) end
      for w = 1, nwin do
        if minute > rolled[w] then
          redis.call('HINCRBY', prefix .. 'w:' .. wins[w][1] .. ':' .. cat, fld, delta)
        end
      end
    end
    if mexp > now_s then redis.call('EXPIREAT', mkey, mexp) end
    if hexp > now_s then redis.call('EXPIREAT', hkey, hexp) end
    i = i + 2 * n
  elseif op == 'L' then
    local key, fld, ts = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
    local cur = redis.call('HGET', key, fld)
    local cur_ts = cur and tonumber(string.match(cur, '^(%d+)|')) or -1
    if ts > cur_ts then redis.call('HSET', key, fld, ARGV[i + 3] .. '|' .. ARGV[i + 4]) end
    i = i + 5
  elseif op == 'Z' then
    local key, min_score = ARGV[i + 1], ARGV[i + 2]
    local keep, n = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
    i = i + 5
    for k = i, i + 2 * n - 1, 1000 do
      redis.call('ZADD', key, unpack(ARGV, k, math.min(k + 999, i + 2 * n - 1)))
    end
    i = i + 2 * n
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. min_score)
    if keep > 0 then redis.call('ZREMRANGEBYRANK', key, 0, -(keep + 1)) end
  elseif op == 'A' then
    redis.call('APPEND', ARGV[i + 1], ARGV[i + 2])
    redis.call('EXPIREAT', ARGV[i + 1], ARGV[i + 3])
    i = i + 4
  else
    return redis.error_reply('unknown op ' .. tostring(op))
  end
end

-- 5. health: applied counts, per-minute rate, data age
local nvalid, max_ts = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
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
    (``gone``) or some incident states changed meanwhile (``stale``)."""

    def __init__(self, gone: list[str], stale: list[str]) -> None:
        super().__init__(f"{len(gone)} entries applied elsewhere, {len(stale)} states changed")
        self.gone = gone
        self.stale = stale


@dataclass
class Batch:
    """Everything one batch of one stream writes, in the order the script reads it."""

    entry_ids: list[str] = field(default_factory=list)
    # shard key -> (expire unix ts, [(field, expected status or '', new json)])
    states: dict[str, tuple[int, list[tuple[str, str, str]]]] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    ops: list[object] = field(default_factory=list)
    # idempotent sorted-set writes sent before the script: key -> (min score, [(score, member)])
    index: dict[str, tuple[int, list[tuple[int, str]]]] = field(default_factory=dict)
    n_ops: int = 0
    n_valid: int = 0
    max_ts_ms: int = 0

    def state(self, shard: str, expire_unix: int, field_: str, expected: str, new: str) -> None:
        """Set ``field_`` of ``shard`` to ``new`` if its status is still ``expected``."""
        self.states.setdefault(shard, (expire_unix, []))[1].append((field_, expected, new))

    def hincr(self, key: str, field_: str, delta: int) -> None:
        self.ops += ["H", key, field_, delta]
        self.n_ops += 1

    def expire_at(self, key: str, unix_ts: int) -> None:
        self.ops += ["E", key, unix_ts]
        self.n_ops += 1

    def counts(self, minute: int, category: str, pairs: list[tuple[str, int]]) -> None:
        self.ops += ["G", minute, category, len(pairs)]
        for area_id, delta in pairs:
            self.ops += [area_id, delta]
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
        for score, member in members:
            self.ops += [score, member]
        self.n_ops += 1

    def index_add(self, key: str, members: list[tuple[int, str]], min_score: int) -> None:
        """ZADD ``members`` (score, member) and drop those under ``min_score``, before the
        script: only for writes that change nothing when repeated."""
        self.index.setdefault(key, (min_score, []))[1].extend(members)

    def append(self, key: str, data: bytes, expire_unix: int) -> None:
        self.ops += ["A", key, data, expire_unix]
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
            consumer, len(WINDOWS),
        ]  # fmt: skip
        for name, minutes in WINDOWS.items():
            args += [name, minutes]
        args.append(len(batch.entry_ids))
        args.extend(batch.entry_ids)
        args.append(len(batch.states))
        for shard, (expire, items) in batch.states.items():
            fresh = [(f, new) for f, expected, new in items if expected == ""]
            changed = [item for item in items if item[1] != ""]
            args += [shard, expire, len(fresh), len(changed)]
            for field_, new in fresh:
                args += [field_, new]
            for field_, expected, new in changed:
                args += [field_, expected, new]
        args.append(len(batch.rejects))
        for rej in batch.rejects:
            original = json.dumps(rej.fields, ensure_ascii=False)
            args += [rej.entry_id, rej.reason, rej.detail, original]
        args.append(batch.n_ops)
        args.extend(batch.ops)
        args += [batch.n_valid, batch.max_ts_ms]
        if batch.index:
            with self._client.pipeline(transaction=False) as pipe:
                for key, (min_score, members) in batch.index.items():
                    pipe.zadd(key, {member: score for score, member in members})
                    pipe.zremrangebyscore(key, "-inf", f"({min_score}")
                pipe.execute()
        code, detail = self._script(keys=[stream, DEADLETTER], args=args)
        if code == 1:
            return
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in detail]
        raise Conflict(gone=ids if code == 0 else [], stale=ids if code == 2 else [])
