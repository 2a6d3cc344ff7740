"""Survey answers: sums and counts of safety and satisfaction per area (every level), all time
and per day; an answer id seen before is not counted again."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import redis

from cockpit.aggregates import DAY_MS, STATE_DAYS, SURVEY, SURVEY_DAY, read_states, rollup
from cockpit.apply import HEALTH, Batch
from cockpit.areastore import Geography
from cockpit.contract import SURVEYS, Reject, validate_surveys

SURVEY_SEEN = "cockpit:survey:seen:"
DAY_TTL_S = 400 * 86400
CHINA = timedelta(hours=8)
METRICS = ("n", "safety", "satisfaction", "safe", "satisfied")


def prepare_surveys(
    client: redis.Redis,
    geo: Geography,
    entries: list[tuple[str, dict[str, str]]],
    now_ms: int | None = None,
) -> Batch:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    checked = validate_surveys(entries, now_ms, geo.bbox, set(geo.grid_index))
    batch = Batch(entry_ids=[e[0] for e in entries], rejects=list(checked.rejects))
    fields_of = dict(entries)
    rows = []
    for eid, v in checked.valid:
        if "grid" in v:
            pos = geo.grid_index[str(v["grid"])]
        else:
            pos = geo.locator.locate_one(v["lon"], v["lat"])  # type: ignore[arg-type]
            if pos < 0:
                batch.rejects.append(Reject(eid, "outside_map", "the point lies in no grid",
                                            fields_of[eid]))  # fmt: skip
                continue
        rows.append((eid, v, pos))
    # an answer id counts once, even if a producer sends it again within STATE_DAYS
    ids = [str(v["id"]) for _e, v, _p in rows]
    seen = read_states(client, SURVEY_SEEN, ids, now_ms) if rows else {}
    today = now_ms // DAY_MS
    fresh, dup, taken = [], 0, set()
    for eid, v, pos in rows:
        if seen[str(v["id"])] is not None or v["id"] in taken:
            dup += 1
            continue
        taken.add(v["id"])
        fresh.append((eid, v, pos))
        expire = (today + 1) * 86_400 + STATE_DAYS * 86_400
        batch.state(f"{SURVEY_SEEN}{today}", expire, str(v["id"]), "", '{"s":"seen"}')
    if dup:
        batch.hincr(HEALTH, f"{SURVEYS}|duplicate", dup)
    if fresh:
        grid_pos = np.array([p for _e, _v, p in fresh])
        safety = np.array([v["safety"] for _e, v, _p in fresh])
        satisfaction = np.array([v["satisfaction"] for _e, v, _p in fresh])
        day = np.array([_day(int(v["ts"])) for _e, v, _p in fresh])  # type: ignore[call-overload]
        values = {
            "n": np.ones(len(fresh), int),
            "safety": safety,
            "satisfaction": satisfaction,
            "safe": (safety >= 4).astype(int),
            "satisfied": (satisfaction >= 4).astype(int),
        }
        zero = np.zeros(len(fresh), int)
        for metric, weight in values.items():
            for d, _label, pairs in rollup(geo.codes, grid_pos, zero, ["x"], bucket=day,
                                           weight=weight, with_all=False):  # fmt: skip
                for area, total in pairs:
                    batch.hincr(SURVEY, f"{area}|{metric}", total)
                    batch.hincr(f"{SURVEY_DAY}{d}", f"{area}|{metric}", total)
        for d in np.unique(day):
            batch.expire_at(f"{SURVEY_DAY}{d}", int((d + 1) * 86400 + DAY_TTL_S))
        batch.max_ts_ms = max(int(v["ts"]) for _e, v, _p in fresh)  # type: ignore[call-overload]
    batch.n_valid = len(fresh)
    return batch


def _day(ts_ms: int) -> int:
    """Days since the epoch in China time, so a day's bucket matches the local calendar."""
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC) + CHINA
    return int(moment.timestamp() // 86400)
