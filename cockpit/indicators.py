"""Leader indicators of one area over a time range, read from the worker's aggregates.

Everything here is read-only and takes ``now_ms`` so a caller (or a test) controls the clock.
Definitions (also in docs/indicators.md):

Time ranges
  ``24h``  96 points of 15 minutes, summed from per-minute buckets (kept 26 h);
  ``7d``   168 points of one hour, from per-hour buckets (kept 91 days);
  ``30d``  30 points of one day, from per-hour buckets;
  ``90d``  90 points of one day, from per-hour buckets.
  Points are aligned to China time (UTC+8): a day is a local calendar day, as the survey days
  are. The last point is the current, still filling one; the range is the points shown.

Incidents
  The number of incidents reported in the range (the ``all`` buckets, or the sum of the
  categories the user may see when that is not all of them: a hidden category is never
  counted into a figure).

Resolution rate
  ``100 × resolved / reported``: status reports ``resolved`` in the range (the ``st:resolved``
  buckets: an incident resolved twice counts once per report the worker accepted, normally once)
  divided by the incidents reported in the range (the ``all`` buckets). The denominator is
  ``all`` rather than ``st:new`` because an incident reported already ``dispatched`` is still a
  new incident; with producers that report ``new`` first the two are equal. Status buckets are
  not split by category, so the rate is always over every category (it shows a ratio, never a
  hidden category's count). It can exceed 100 % when a backlog from before the range is
  cleared; it is ``None`` (no number) when nothing was reported in the range.

Open now
  Incidents whose latest status is new, dispatched or handling (the ``open`` hashes), at the
  time of reading, whatever the range.

Safety-satisfaction index
  From the survey answers (safety and satisfaction, each 1-5) of the area's grids:
    safety index       = 100 × (answers with safety ≥ 4) / n
    satisfaction index = 100 × (answers with satisfaction ≥ 4) / n
    combined index     = the mean of the two = 100 × (safe + satisfied) / (2 n)
  pooled over every answer of the area in the survey period (the area's own sums, which the
  worker rolls up from its grids), so an area's index is the sample-weighted mean of its
  children's, and a child too small to have its own index still counts in its parent's.
  Below ``MIN_SAMPLE`` (30) answers the index has no number ("not enough answers"); ``n`` is
  always shown. The survey period is the range's days, but at least the last 7 local days
  (24 hours of answers are too few to say anything). The trend is per local day
  (``cockpit:agg:survey:d:{day}``), with the same minimum per day. The live map's ``ssi``
  metric is this combined index over the last 7 local days (:func:`map_survey_index`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import redis

from cockpit.aggregates import ALL, DAY_MS, SURVEY_DAY, hour_counts, open_key
from cockpit.apply import INC_PREFIX
from cockpit.counters import counters_at

MIN_SAMPLE = 30
LOCAL_OFFSET_MS = 8 * 3_600_000  # China time, as the survey day buckets (UTC+8, no DST)
RESOLVED = "st:resolved"
UNIT_MS = {"m": 60_000, "h": 3_600_000}


@dataclass(frozen=True)
class RangeSpec:
    """A time range: ``points`` points of ``step`` worker buckets of ``unit`` each."""

    name: str
    unit: str  # "m" (per-minute buckets) or "h" (per-hour buckets)
    step: int  # buckets per point
    points: int
    survey_days: int  # local days of survey answers behind the index

    @property
    def step_ms(self) -> int:
        return self.step * UNIT_MS[self.unit]


RANGES: dict[str, RangeSpec] = {
    "24h": RangeSpec("24h", "m", 15, 96, 7),
    "7d": RangeSpec("7d", "h", 1, 168, 7),
    "30d": RangeSpec("30d", "h", 24, 30, 30),
    "90d": RangeSpec("90d", "h", 24, 90, 90),
}


def range_spec(name: str) -> RangeSpec:
    """The range called ``name`` (24h, 7d, 30d, 90d); ValueError otherwise."""
    try:
        return RANGES[name]
    except KeyError:
        raise ValueError(f"unknown range {name!r}; use one of {', '.join(RANGES)}") from None


def point_buckets(spec: RangeSpec, now_ms: int) -> tuple[int, int]:
    """First and last worker bucket (minutes or hours since the epoch) of the range's points.

    The last point is the one holding ``now_ms``; points start on local (UTC+8) boundaries.
    """
    unit_ms = UNIT_MS[spec.unit]
    offset = LOCAL_OFFSET_MS // unit_ms
    current = (now_ms // unit_ms + offset) // spec.step
    first = (current - spec.points + 1) * spec.step - offset
    return first, first + spec.points * spec.step - 1


def local_day(ts_ms: int) -> int:
    """Days since the epoch in China time (the survey day buckets' numbering)."""
    return (ts_ms + LOCAL_OFFSET_MS) // DAY_MS


@dataclass(frozen=True)
class SurveyIndex:
    """Survey answers of one area (or one area on one day) and the indices they give."""

    n: int = 0
    safe: int = 0  # answers with safety >= 4
    satisfied: int = 0  # answers with satisfaction >= 4
    min_sample: int = MIN_SAMPLE

    @property
    def enough(self) -> bool:
        return self.n >= self.min_sample and self.n > 0

    @property
    def safety(self) -> float | None:
        return 100 * self.safe / self.n if self.enough else None

    @property
    def satisfaction(self) -> float | None:
        return 100 * self.satisfied / self.n if self.enough else None

    @property
    def combined(self) -> float | None:
        return 100 * (self.safe + self.satisfied) / (2 * self.n) if self.enough else None


@dataclass(frozen=True)
class AreaFigures:
    """One area's figures over a range (a row of the ranking)."""

    area_id: str
    incidents: int  # reported in the range, categories the user may see
    reported_all: int  # reported in the range, every category (the rate's denominator)
    resolved: int  # resolved reports in the range
    open_now: int
    survey: SurveyIndex

    @property
    def resolution_rate(self) -> float | None:
        """Percent; None when nothing was reported in the range."""
        return 100 * self.resolved / self.reported_all if self.reported_all else None


@dataclass(frozen=True)
class Report:
    """Everything the leader view shows for one area and range."""

    area_id: str
    spec: RangeSpec
    starts_ms: list[int]  # start of each point (epoch ms)
    incidents: list[int]  # per point, the area's reported incidents (visible categories)
    reported_all: list[int]  # per point, reported incidents of every category
    resolved: list[int]  # per point, the area's resolved reports
    survey_days: list[int]  # local day numbers, oldest first
    survey_trend: list[SurveyIndex]  # per survey day, the area
    area: AreaFigures
    children: list[AreaFigures]
    child_incidents: dict[str, list[int]] = field(default_factory=dict)  # per point, per child

    @property
    def rate_trend(self) -> list[float | None]:
        """Resolution rate per point (percent, None where nothing was reported)."""
        pairs = zip(self.reported_all, self.resolved, strict=True)
        return [100 * r / n if n else None for n, r in pairs]


def _to_int(v: bytes | str | None) -> int:
    return int(v) if v else 0


def incident_series(
    client: redis.Redis,
    areas: Sequence[str],
    spec: RangeSpec,
    now_ms: int,
    keys: Sequence[str] = (ALL,),
) -> np.ndarray:
    """Counts per point and area, summed over the bucket ``keys`` (categories, ``all`` or
    ``st:...``): an int64 array (points, len(areas)). One pipeline of one HMGET per bucket
    and key, so a 90-day hourly range of 13 areas is 2,160 commands in one round trip (hours
    with their minutes not yet folded, :func:`cockpit.aggregates.hour_counts`)."""
    first, last = point_buckets(spec, now_ms)
    n_buckets = last - first + 1
    if spec.unit == "h":
        per_hour = hour_counts(client, keys, first, last, areas).sum(axis=0)
        return per_hour.reshape(spec.points, spec.step, len(areas)).sum(axis=1)
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            for b in range(first, last + 1):
                pipe.hmget(f"{INC_PREFIX}{spec.unit}:{b}:{key}", list(areas))
        replies = pipe.execute()
    flat = np.fromiter(
        (_to_int(v) for row in replies for v in row), np.int64, len(replies) * len(areas)
    )
    per_bucket = flat.reshape(len(keys), n_buckets, len(areas)).sum(axis=0)
    return per_bucket.reshape(spec.points, spec.step, len(areas)).sum(axis=1)


def open_now(
    client: redis.Redis, areas: Sequence[str], keys: Sequence[str] = (ALL,)
) -> dict[str, int]:
    """Incidents open now per area, summed over the category ``keys``."""
    replies = counters_at(client, [open_key(key) for key in keys], list(areas))
    totals = dict.fromkeys(areas, 0)
    for row in replies:
        for area, v in zip(areas, row, strict=True):
            totals[area] += max(v, 0)
    return totals


def survey_days(spec: RangeSpec, now_ms: int) -> list[int]:
    """The local days whose answers make the index of a range (today last)."""
    today = local_day(now_ms)
    days = max(spec.survey_days, 1)
    return list(range(today - days + 1, today + 1))


def survey_matrix(client: redis.Redis, areas: Sequence[str], days: Sequence[int]) -> np.ndarray:
    """Per day and area: (n, safe, satisfied) as an int64 array (days, areas, 3)."""
    fields = [f"{a}|{m}" for a in areas for m in ("n", "safe", "satisfied")]
    with client.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hmget(f"{SURVEY_DAY}{day}", fields)
        replies = pipe.execute()
    flat = np.fromiter((_to_int(v) for row in replies for v in row), np.int64,
                       len(days) * len(fields))  # fmt: skip
    return flat.reshape(len(days), len(areas), 3)


def survey_index(
    client: redis.Redis, areas: Sequence[str], days: Sequence[int], min_sample: int = MIN_SAMPLE
) -> dict[str, SurveyIndex]:
    """The pooled index of each area over ``days``."""
    totals = survey_matrix(client, areas, days).sum(axis=0)
    return {
        a: SurveyIndex(int(n), int(safe), int(sat), min_sample)
        for a, (n, safe, sat) in zip(areas, totals.tolist(), strict=True)
    }


def map_survey_index(
    client: redis.Redis, now_ms: int, min_sample: int = MIN_SAMPLE
) -> dict[str, SurveyIndex]:
    """Every area's pooled index over the last 7 local days (the ``7d`` range's period): the
    live map's ``ssi`` metric, so the map and the leader view show the same number."""
    days = survey_days(RANGES["7d"], now_ms)
    with client.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(f"{SURVEY_DAY}{day}")
        replies = pipe.execute()
    sums: dict[str, dict[str, int]] = {}
    for reply in replies:
        for key, value in reply.items():
            area, _, metric = key.decode().rpartition("|")
            if metric in ("n", "safe", "satisfied"):
                totals = sums.setdefault(area, {})
                totals[metric] = totals.get(metric, 0) + int(value)
    return {
        area: SurveyIndex(t.get("n", 0), t.get("safe", 0), t.get("satisfied", 0), min_sample)
        for area, t in sums.items()
    }


def area_report(
    client: redis.Redis,
    area_id: str,
    children: Sequence[str],
    range_name: str,
    now_ms: int,
    categories: Sequence[str] | None = None,
    min_sample: int = MIN_SAMPLE,
) -> Report:
    """Trends of ``area_id`` and the figures of it and each of its ``children`` over the range.

    ``categories``: the incident categories to count (None: all of them, read from the ``all``
    buckets). The caller decides which areas and categories the user may see.
    """
    spec = range_spec(range_name)
    areas = [area_id, *children]
    keys = [ALL] if categories is None else list(categories)
    if keys:
        reported = incident_series(client, areas, spec, now_ms, keys)
    else:  # a level that may see no category at all
        reported = np.zeros((spec.points, len(areas)), np.int64)
    # the rate's denominator is always every category (status buckets are not split by it)
    total = reported if categories is None else incident_series(client, areas, spec, now_ms)
    resolved = incident_series(client, areas, spec, now_ms, [RESOLVED])
    opened = open_now(client, areas, keys) if keys else dict.fromkeys(areas, 0)
    days = survey_days(spec, now_ms)
    surveys = survey_matrix(client, areas, days)
    pooled = surveys.sum(axis=0)

    figures = []
    for k, a in enumerate(areas):
        n, safe, sat = (int(x) for x in pooled[k])
        figures.append(
            AreaFigures(
                a,
                int(reported[:, k].sum()),
                int(total[:, k].sum()),
                int(resolved[:, k].sum()),
                opened[a],
                SurveyIndex(n, safe, sat, min_sample),
            )
        )
    first, _last = point_buckets(spec, now_ms)
    start = first * UNIT_MS[spec.unit]
    return Report(
        area_id=area_id,
        spec=spec,
        starts_ms=[start + p * spec.step_ms for p in range(spec.points)],
        incidents=reported[:, 0].tolist(),
        reported_all=total[:, 0].tolist(),
        resolved=resolved[:, 0].tolist(),
        survey_days=days,
        survey_trend=[
            SurveyIndex(int(n), int(safe), int(sat), min_sample)
            for n, safe, sat in surveys[:, 0, :].tolist()
        ],
        area=figures[0],
        children=figures[1:],
        child_incidents={a: reported[:, k + 1].tolist() for k, a in enumerate(children)},
    )
