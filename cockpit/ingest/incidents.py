"""Incidents: new reports count in every window; a later entry with the same ``id`` and another
``status`` is an update (dispatched, handling, resolved...) that moves the open counts and counts
in the status windows; the same id with the same status again, or an entry older than the
incident's latest update, is a duplicate and counts once (the latest ``ts`` wins)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import msgspec
import numpy as np
import redis

from cockpit.aggregates import (
    DAY_MS,
    INCIDENT_POINTS,
    INCIDENT_RECENT,
    INCIDENT_STATE,
    OPEN_STATUSES,
    STATE_DAYS,
    STATUS_KEYS,
    IncidentAggregates,
    open_key,
    read_states,
    rollup_codes,
    state_days,
)
from cockpit.apply import HEALTH, MINUTE_TTL_S, Batch
from cockpit.areastore import Geography
from cockpit.contract import (
    BASE_KEYS,
    CATEGORIES,
    INCIDENTS,
    STATUSES,
    IncidentBatch,
    Reject,
    validate_incidents,
)
from cockpit.counters import Slots, cached_slots

RECENT_MS = 24 * 3600 * 1000
CATEGORY_INDEX = {c: i for i, c in enumerate(CATEGORIES)}
STATUS_INDEX = {s: i for i, s in enumerate(STATUSES)}
# One heatmap point: 16 bytes, appended per minute so readers fetch only new minutes.
POINT = np.dtype([("lon", "<f4"), ("lat", "<f4"), ("grid", "<i4"), ("sev", "i1"), ("cat", "i1"),
                  ("pad", "<i2")])  # fmt: skip
OPTIONAL = ("text", "address", "reporter", "source")
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')  # what a JSON string may not hold as it is
_encode = msgspec.json.Encoder().encode  # ~20x faster than json.dumps per state; same JSON


def prepare_incidents(
    client: redis.Redis,
    geo: Geography,
    entries: list[tuple[str, dict[str, str]]],
    now_ms: int | None = None,
) -> Batch:
    return build_incidents(look_up_incidents(client, check_incidents(geo, entries, now_ms)))


@dataclass
class Looked:
    """A batch of incident entries checked and placed in grids (:func:`check_incidents`),
    then with what it needs from Redis looked up (:func:`look_up_incidents`): all
    :func:`build_incidents` needs."""

    geo: Geography
    now_ms: int
    batch: Batch
    checked: IncidentBatch
    pos: np.ndarray
    inside: np.ndarray
    fields_of: dict[str, dict[str, str]]
    slots: Slots | None = None
    ids: list[str] = field(default_factory=list)
    unique_ids: list[str] = field(default_factory=list)
    found: dict[str, tuple[int, dict] | None] = field(default_factory=dict)


def check_incidents(
    geo: Geography, entries: list[tuple[str, dict[str, str]]], now_ms: int | None = None
) -> Looked:
    """Validate a batch and place its points in grids (no Redis)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    batch = Batch(entry_ids=[e[0] for e in entries])
    checked = validate_incidents(entries, now_ms, geo.bbox)
    batch.rejects = list(checked.rejects)
    pos = geo.locator.locate(checked.lon, checked.lat)
    fields_of = dict(entries)
    for k in np.flatnonzero(pos < 0):
        eid = checked.entry_ids[k]
        detail = f"lat={checked.lat[k]}, lon={checked.lon[k]} lies in no grid"
        batch.rejects.append(Reject(eid, "outside_map", detail, fields_of[eid]))
    inside = np.flatnonzero(pos >= 0)
    looked = Looked(geo, now_ms, batch, checked, pos, inside, fields_of)
    if len(inside):
        looked.ids = [checked.ids[k] for k in inside]
        looked.unique_ids = list(dict.fromkeys(looked.ids))
    return looked


def look_up_incidents(client: redis.Redis, looked: Looked) -> Looked:
    """What building the checked batch needs from Redis: the counter slots, the window
    watermarks and the stored states of its incidents (the apply script checks that none of
    them changed before it writes)."""
    geo, batch = looked.geo, looked.batch
    looked.slots = cached_slots(client, geo.version, geo.codes.area_ids.tolist())
    batch.slot_token = looked.slots.token
    batch.window_marks = IncidentAggregates(client).window_marks()
    if looked.unique_ids:
        looked.found = read_states(client, INCIDENT_STATE, looked.unique_ids, looked.now_ms)
    return looked


def build_incidents(looked: Looked) -> Batch:
    """The batch's states and counts from what :func:`look_up_incidents` found (no Redis)."""
    geo, now_ms, batch, checked, pos = (
        looked.geo, looked.now_ms, looked.batch, looked.checked, looked.pos
    )  # fmt: skip
    inside, fields_of, slots = looked.inside, looked.fields_of, looked.slots
    assert slots is not None, "looked up (look_up_incidents) before building"
    ids, unique_ids, found = looked.ids, looked.unique_ids, looked.found
    if len(inside) == 0:
        return batch
    oldest_day = state_days(now_ms)[0]
    if len(unique_ids) == len(ids) and all(f is None for f in found.values()):
        # the usual live batch: every report is new and comes once; written in bulk
        _fresh_incidents(batch, geo, checked, pos, inside, fields_of, oldest_day)
        _count_new(batch, geo, slots, checked, pos, inside, now_ms)
        batch.n_valid = len(inside)
        batch.max_ts_ms = int(checked.ts_ms[inside].max())
        return batch
    stored = {i: (f[1] if f else None) for i, f in found.items()}
    before = {i: (s["s"] if s else "") for i, s in stored.items()}
    current = dict(stored)
    new_rows: list[int] = []
    updates: list[tuple[int, dict, str]] = []  # (row, state before, old status)
    duplicates = 0
    # plain lists: indexing numpy arrays one scalar at a time costs more than the work
    ts_ms, grid_of = checked.ts_ms.tolist(), pos.tolist()
    lat, lon, sev = checked.lat.tolist(), checked.lon.tolist(), checked.severity.tolist()
    for row, k in enumerate(inside.tolist()):
        inc_id, status = ids[row], checked.status[k]
        state = current.get(inc_id)
        if state is None:
            new_rows.append(k)
            state = {
                "id": inc_id, "s": status, "c": checked.category[k],
                "g": geo.grid_ids[grid_of[k]], "t": ts_ms[k], "v": sev[k],
                "lat": round(lat[k], 6), "lon": round(lon[k], 6),
            }  # fmt: skip
            fields = fields_of[checked.entry_ids[k]]
            for name in OPTIONAL:
                if fields.get(name):
                    state[name] = fields[name]
            current[inc_id] = state
        elif state["s"] == status or ts_ms[k] <= state.get("u", state["t"]):
            duplicates += 1  # a resend, or an update older than what we hold: last ts wins
        else:
            updates.append((k, state, state["s"]))
            current[inc_id] = {**state, "s": status, "u": ts_ms[k]}
    for inc_id in unique_ids:
        state = current[inc_id]
        if state is stored.get(inc_id):
            continue
        place = found[inc_id]
        day = place[0] if place else max(int(state["t"]) // DAY_MS, oldest_day)
        expire = (day + 1) * 86_400 + STATE_DAYS * 86_400
        batch.state(f"{INCIDENT_STATE}{day}", expire, inc_id, before[inc_id],
                    _encode(state).decode())  # fmt: skip
    _count_new(batch, geo, slots, checked, pos, np.array(new_rows, dtype=np.int64), now_ms)
    _count_updates(batch, geo, slots, checked, updates)
    if duplicates:
        batch.hincr(HEALTH, f"{INCIDENTS}|duplicate", duplicates)
    batch.n_valid = len(new_rows) + len(updates)
    batch.max_ts_ms = int(checked.ts_ms[inside].max())
    return batch


def _fresh_incidents(  # type: ignore[no-untyped-def]
    batch: Batch, geo: Geography, checked, pos, rows, fields_of, oldest_day: int
) -> None:
    """States of reports seen for the first time, as JSON text built directly (the same
    document :func:`_encode` makes of the state dict, several times faster)."""
    grid_json = geo.grid_ids_json
    row_list = rows.tolist()
    ts = checked.ts_ms[rows]
    ts_l, sev = ts.tolist(), checked.severity[rows].tolist()
    # Python's round(), not numpy's: numpy's differs in the last digit now and then
    lat = [round(y, 6) for y in checked.lat[rows].tolist()]
    lon = [round(x, 6) for x in checked.lon[rows].tolist()]
    grid_of = pos[rows].tolist()
    cat, status, ids, entry_ids = checked.category, checked.status, checked.ids, checked.entry_ids
    if _NEEDS_ESCAPE.search("".join(ids)):
        id_json = [_encode(i).decode() for i in ids]
    else:  # the usual ids: quoting is all JSON needs
        id_json = [f'"{i}"' for i in ids]
    docs = [
        f'{{"id":{id_json[k]},"s":"{status[k]}","c":"{cat[k]}",'
        f'"g":{grid_json[grid_of[j]]},"t":{ts_l[j]},"v":{sev[j]},"lat":{lat[j]!r},'
        f'"lon":{lon[j]!r}{_optional(fields_of[entry_ids[k]])}}}'
        for j, k in enumerate(row_list)
    ]
    days = np.maximum(ts // DAY_MS, oldest_day)
    for day in np.unique(days).tolist():
        mine = np.flatnonzero(days == day).tolist()
        expire = (day + 1) * 86_400 + STATE_DAYS * 86_400
        batch.fresh_states(f"{INCIDENT_STATE}{day}", expire, [ids[row_list[j]] for j in mine],
                           [docs[j] for j in mine])  # fmt: skip


def _optional(fields: dict[str, str]) -> str:
    """The optional text fields of a report as the tail of its JSON state ('' for none)."""
    if fields.keys() <= BASE_KEYS:
        return ""
    return "".join(
        f',"{name}":{_encode(fields[name]).decode()}' for name in OPTIONAL if fields.get(name)
    )


def _counts(  # type: ignore[no-untyped-def]
    batch: Batch, geo: Geography, slots: Slots, grid_pos, label, labels, minute,
    with_all: bool = True,
) -> None:  # fmt: skip
    """Incident counts per label and area of every level, summed by the worker for each key
    they reach: minute buckets (hash fields; the hour buckets are folded from them) and the
    windows (counter arrays; an event counts in a window when its minute is past the window's
    watermark)."""
    codes, area_ids = geo.codes, geo.codes.area_ids

    def per(bucket):  # type: ignore[no-untyped-def]
        return rollup_codes(codes, grid_pos, label, labels, bucket, with_all=with_all)

    # the hour buckets are folded from the minute buckets in Redis (cockpit/apply.py)
    for m, lab, area, totals in per(minute):
        batch.minute_counts(m, lab, area_ids[area].tolist(), totals.tolist())
    marks = batch.window_marks
    assert marks is not None, "window marks are read before counting"
    mask = np.zeros(len(minute), np.int64)
    for w, mark in enumerate(marks):
        mask |= (minute > int(mark)).astype(np.int64) << w
    for bits, lab, area, totals in per(mask):
        if bits:
            batch.window_counts(bits, lab, slots.incr_args(area, totals.tolist()))


def _count_new(batch: Batch, geo: Geography, slots: Slots, checked, pos, rows, now_ms: int) -> None:  # type: ignore[no-untyped-def]
    if len(rows) == 0:
        return
    grid_pos = pos[rows]
    minute = checked.ts_ms[rows] // 60_000
    row_list = rows.tolist()
    cat = np.array([CATEGORY_INDEX[checked.category[k]] for k in row_list], dtype=np.int64)
    status = np.array([STATUS_INDEX[checked.status[k]] for k in row_list], dtype=np.int64)
    codes = geo.codes
    _counts(batch, geo, slots, grid_pos, cat, CATEGORIES, minute)
    _counts(batch, geo, slots, grid_pos, status, STATUS_KEYS, minute, with_all=False)
    is_open = np.isin(status, [STATUS_INDEX[s] for s in OPEN_STATUSES])
    if is_open.any():
        _open_deltas(batch, codes, slots, grid_pos[is_open], cat[is_open],
                     np.ones(is_open.sum()))  # fmt: skip
    # the heatmap's points, one blob per minute
    points = np.zeros(len(rows), POINT)
    points["lon"], points["lat"], points["grid"] = checked.lon[rows], checked.lat[rows], grid_pos
    points["sev"], points["cat"] = checked.severity[rows], cat
    for m in np.unique(minute):
        mine = minute == m
        expire = int((m + 1) * 60 + MINUTE_TTL_S)
        batch.append(f"{INCIDENT_POINTS}{geo.version[:8]}:{m}", points[mine].tobytes(), expire)
    # the point layer's index, per street
    street_code, street_names = geo.grid_streets
    streets = street_code[grid_pos]
    order = np.argsort(streets, kind="stable")
    bounds = np.flatnonzero(np.diff(streets[order])) + 1
    row_ts, row_grid = list(map(str, checked.ts_ms[rows].tolist())), grid_pos.tolist()
    grid_ids, inc_ids = geo.grid_ids.tolist(), checked.ids
    since = now_ms - RECENT_MS
    for group in np.split(order, bounds):
        js = group.tolist()
        members = [(row_ts[j], f"{grid_ids[row_grid[j]]}|{inc_ids[row_list[j]]}") for j in js]
        # scores as text: Redis formats a Lua number with "%.17g", slowly
        batch.sorted_add(INCIDENT_RECENT + street_names[streets[js[0]]], members, since)


def _count_updates(batch: Batch, geo: Geography, slots: Slots, checked, updates) -> None:  # type: ignore[no-untyped-def]
    rows = [(k, state, old) for k, state, old in updates if state["g"] in geo.grid_index]
    if not rows:
        return
    grid_pos = np.array([geo.grid_index[state["g"]] for _k, state, _o in rows])
    minute = np.array([checked.ts_ms[k] // 60_000 for k, _s, _o in rows])
    status = np.array([STATUS_INDEX[checked.status[k]] for k, _s, _o in rows])
    _counts(batch, geo, slots, grid_pos, status, STATUS_KEYS, minute, with_all=False)
    was_open = np.array([old in OPEN_STATUSES for _k, _s, old in rows])
    now_open = np.array([checked.status[k] in OPEN_STATUSES for k, _s, _o in rows])
    delta = now_open.astype(int) - was_open.astype(int)
    moved = delta != 0
    if moved.any():
        cat = np.array([CATEGORY_INDEX[state["c"]] for _k, state, _o in rows])
        _open_deltas(batch, geo.codes, slots, grid_pos[moved], cat[moved], delta[moved])


def _open_deltas(batch: Batch, codes, slots: Slots, grid_pos, cat, delta) -> None:  # type: ignore[no-untyped-def]
    for _b, label, area, totals in rollup_codes(codes, grid_pos, cat, CATEGORIES, weight=delta):
        batch.counter_incr(open_key(label), slots.incr_args(area, totals.tolist()))
