"""Leader indicators against a real Redis fed through the real worker, compared with truth
computed by hand from what was written."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import redis
from shapely import get_coordinates

from cockpit.contract import INCIDENTS, SURVEYS
from cockpit.indicators import (
    DAY_MS,
    RANGES,
    SurveyIndex,
    area_report,
    local_day,
    point_buckets,
    range_spec,
)
from cockpit.live import metric_values
from cockpit.worker import Worker

MIN = 60_000
HOUR = 3_600_000
CHINA = timezone(timedelta(hours=8))
EVERY_BUT_PETITION = [
    "dispute", "public_security", "hotline", "fire_hazard", "environment", "traffic", "flood",
    "dumping", "other",
]  # fmt: skip


class Feed:
    """Writes entries with XADD and steps a real worker until all of them are applied."""

    def __init__(self, r: redis.Redis, geo) -> None:
        self.r = r
        self.geo = geo
        self.worker = Worker(r, name="ind", block_ms=10)
        self.worker.ensure_groups()
        self.sent = 0
        self.n = 0

    def point(self, grid_id: str) -> tuple[float, float]:
        lon, lat = get_coordinates(self.geo.areas.frame.geometry[grid_id].representative_point())[0]
        return lon, lat

    def incident(self, inc_id: str, grid_id: str, ts_ms: int, category: str = "dispute",
                 status: str = "new") -> None:  # fmt: skip
        lon, lat = self.point(grid_id)
        fields = {"id": inc_id, "ts": str(ts_ms), "category": category, "status": status}
        self.r.xadd(INCIDENTS, {**fields, "lat": f"{lat:.7f}", "lon": f"{lon:.7f}"})
        self.sent += 1

    def answer(self, grid_id: str, ts_ms: int, safety: int, satisfaction: int) -> None:
        self.n += 1
        scores = {"safety": str(safety), "satisfaction": str(satisfaction)}
        self.r.xadd(SURVEYS, {"id": f"s{self.n}", "ts": str(ts_ms), "grid": grid_id, **scores})
        self.sent += 1

    def apply(self) -> None:
        for _ in range(500):
            if self.worker.stats.applied + self.worker.stats.dead >= self.sent:
                break
            self.worker.step()
        assert self.worker.stats.dead == 0
        assert self.worker.stats.applied == self.sent


@pytest.fixture
def city(r, loaded_city):
    """A street, two of its communities and a grid in each."""
    areas = loaded_city.areas
    street = "wx-hs-01"
    communities = [c for c in areas.children(street) if areas.level_of(c) == "community"]
    c1, c2 = communities[:2]
    g1, g1b = [g for g in areas.children(c1) if areas.level_of(g) == "grid"][:2]
    g2 = next(g for g in areas.children(c2) if areas.level_of(g) == "grid")
    now_ms = int(r.time()[0]) * 1000
    return {"feed": Feed(r, loaded_city), "street": street, "communities": communities,
            "c1": c1, "c2": c2, "g1": g1, "g1b": g1b, "g2": g2, "now": now_ms}  # fmt: skip


def test_ind001_points_align_to_china_time_by_hand():
    # 2026-03-10 10:07 in China; 24 h = 96 quarter hours, the last one starting 10:00
    now = int(datetime(2026, 3, 10, 10, 7, 30, tzinfo=CHINA).timestamp() * 1000)
    first, last = point_buckets(range_spec("24h"), now)
    assert first * MIN == datetime(2026, 3, 9, 10, 15, tzinfo=CHINA).timestamp() * 1000
    assert (last + 1) * MIN == datetime(2026, 3, 10, 10, 15, tzinfo=CHINA).timestamp() * 1000
    # 30 days are 30 local days: 9 Feb 00:00 to the end of 10 Mar, China time
    first, last = point_buckets(range_spec("30d"), now)
    assert first * HOUR == datetime(2026, 2, 9, tzinfo=CHINA).timestamp() * 1000
    assert (last + 1) * HOUR == datetime(2026, 3, 11, tzinfo=CHINA).timestamp() * 1000
    first, last = point_buckets(range_spec("7d"), now)
    assert (last - first + 1, first * HOUR) == (
        168, datetime(2026, 3, 3, 11, tzinfo=CHINA).timestamp() * 1000)  # fmt: skip
    assert local_day(now) == local_day(
        int(datetime(2026, 3, 10, 0, 0, tzinfo=CHINA).timestamp() * 1000))  # fmt: skip
    assert local_day(now) != local_day(
        int(datetime(2026, 3, 9, 23, 59, tzinfo=CHINA).timestamp() * 1000))  # fmt: skip
    with pytest.raises(ValueError, match="unknown range"):
        range_spec("1y")
    assert set(RANGES) == {"24h", "7d", "30d", "90d"}


def test_ind002_incident_trend_per_point_and_children_equal_what_was_written(r, city):
    feed, now = city["feed"], city["now"]
    g1, g2 = city["g1"], city["g2"]
    written = [  # (id, grid, age in ms, category)
        ("i1", g1, 1 * MIN, "dispute"), ("i2", g1, 2 * MIN, "hotline"),
        ("i3", g2, 40 * MIN, "dispute"), ("i4", g2, 5 * HOUR, "traffic"),
        ("i5", g1, 23 * HOUR, "dispute"), ("i6", g1, 30 * HOUR, "dispute"),
        ("i7", g2, 3 * 24 * HOUR, "petition"), ("i8", g1, 20 * 24 * HOUR, "dispute"),
    ]  # fmt: skip
    for inc_id, grid, age, cat in written:
        feed.incident(inc_id, grid, now - age, cat)
    feed.apply()
    street, c1, c2 = city["street"], city["c1"], city["c2"]
    for range_name in ("24h", "7d", "30d", "90d"):
        rep = area_report(r, street, city["communities"], range_name, now)
        spec = rep.spec
        assert len(rep.starts_ms) == len(rep.incidents) == spec.points
        assert rep.starts_ms[-1] <= now < rep.starts_ms[-1] + spec.step_ms
        assert all(
            b - a == spec.step_ms for a, b in zip(rep.starts_ms, rep.starts_ms[1:], strict=False)
        )
        if spec.step_ms >= DAY_MS:  # days start at local midnight
            assert all((s + 8 * HOUR) % DAY_MS == 0 for s in rep.starts_ms)
        # every incident inside the range is in the point whose interval holds its ts
        truth = [0] * spec.points
        per_child = {c: 0 for c in city["communities"]}
        for _id, grid, age, _cat in written:
            ts = now - age
            for p, start in enumerate(rep.starts_ms):
                if start <= ts < start + spec.step_ms:
                    truth[p] += 1
                    per_child[c1 if grid == g1 else c2] += 1
        assert rep.incidents == truth, range_name
        assert rep.area.incidents == sum(truth)
        got = {f.area_id: f.incidents for f in rep.children}
        assert got == per_child
        assert rep.child_incidents[c1] == [
            t - c for t, c in zip(truth, rep.child_incidents[c2], strict=True)
        ]
    # by hand: 24 h holds i1..i5, 7 d adds i6 and i7, 30 and 90 days hold all eight
    assert area_report(r, street, [], "24h", now).area.incidents == 5
    assert area_report(r, street, [], "7d", now).area.incidents == 7
    assert area_report(r, street, [], "90d", now).area.incidents == 8
    # a level that may not see petitions never gets them counted; the city sees all
    hidden = area_report(r, street, [], "7d", now, categories=EVERY_BUT_PETITION)
    assert hidden.area.incidents == 6 and hidden.area.reported_all == 7
    assert area_report(r, "wx", [], "90d", now).area.incidents == 8
    assert area_report(r, "wx-lx", [], "90d", now).area.incidents == 0


def test_ind003_resolution_rate_and_open_now(r, city):
    feed, now, g1, g2 = city["feed"], city["now"], city["g1"], city["g2"]
    feed.incident("a0", g1, now - 2 * 24 * HOUR)  # an old one, resolved within the last day
    feed.incident("a1", g1, now - 10 * MIN)
    feed.incident("a2", g2, now - 10 * MIN)
    feed.incident("a3", g2, now - 10 * MIN, "petition")
    feed.incident("a4", g2, now - 9 * MIN, status="dispatched")  # new, reported as dispatched
    feed.apply()
    feed.incident("a1", g1, now - 5 * MIN, status="resolved")
    feed.incident("a0", g1, now - 4 * MIN, status="resolved")
    feed.incident("a2", g2, now - 3 * MIN, status="dispatched")
    feed.apply()
    street, c1, c2 = city["street"], city["c1"], city["c2"]
    day = area_report(r, street, [c1, c2], "24h", now)
    # 4 reported in the last day (a1..a4), 2 resolved (a1 and the old a0): 50 %
    assert (day.area.reported_all, day.area.resolved) == (4, 2)
    assert day.area.resolution_rate == pytest.approx(50.0)
    assert sum(day.resolved) == 2
    # per point: the reports and resolutions whose ts falls in it (a0's report is too old)
    step = day.spec.step_ms
    reported_at = [now - 10 * MIN] * 3 + [now - 9 * MIN]
    resolved_at = [now - 5 * MIN, now - 4 * MIN]
    expected = []
    for start in day.starts_ms:
        n = sum(start <= t < start + step for t in reported_at)
        k = sum(start <= t < start + step for t in resolved_at)
        expected.append(100 * k / n if n else None)
    assert day.rate_trend == expected
    # open now: a2 dispatched, a3 new, a4 dispatched; a0 and a1 resolved
    assert day.area.open_now == 3
    rows = {f.area_id: f for f in day.children}
    assert (rows[c1].open_now, rows[c1].resolved, rows[c1].reported_all) == (0, 2, 1)
    assert rows[c1].resolution_rate == pytest.approx(200.0)  # clearing an old backlog
    assert (rows[c2].open_now, rows[c2].resolved, rows[c2].resolution_rate) == (3, 0, 0.0)
    week = area_report(r, street, [], "7d", now)
    assert week.area.resolution_rate == pytest.approx(100 * 2 / 5)
    # without petitions: counts and open figures drop a3, the rate stays over every category
    limited = area_report(r, street, [c2], "24h", now, categories=EVERY_BUT_PETITION)
    assert (limited.area.incidents, limited.area.open_now) == (3, 2)
    assert limited.area.resolution_rate == pytest.approx(50.0)
    # nothing reported: no rate rather than 0 % or a division error
    assert area_report(r, "wx-lx", [], "24h", now).area.resolution_rate is None


def test_ind004_index_pooled_minimum_sample_and_daily_trend(r, city):
    feed, now = city["feed"], city["now"]
    g1, g1b, g2 = city["g1"], city["g1b"], city["g2"]
    # g1: 12 answers, 9 feel safe, 6 satisfied; g1b: 8 answers, 5 safe, 4 satisfied (3 days ago)
    for k in range(12):
        feed.answer(g1, now - 1000 - k, 5 if k < 9 else 2, 4 if k < 6 else 3)
    for k in range(8):
        feed.answer(g1b, now - 3 * DAY_MS, 4 if k < 5 else 1, 5 if k < 4 else 1)
    # g2: 15 answers, 6 safe, 12 satisfied; one very old one outside every period
    for k in range(15):
        feed.answer(g2, now - 2000, 4 if k < 6 else 3, 4 if k < 12 else 2)
    feed.answer(g2, now - 200 * DAY_MS, 5, 5)
    feed.apply()
    street, c1, c2 = city["street"], city["c1"], city["c2"]
    rep = area_report(r, street, [c1, c2], "24h", now)  # index over the last 7 days
    rows = {f.area_id: f.survey for f in rep.children}
    # children below 30 answers: no number, but n is known
    assert (rows[c1].n, rows[c1].safety, rows[c1].combined) == (20, None, None)
    assert (rows[c2].n, rows[c2].satisfaction) == (15, None)
    # the street pools all 35: (9 + 5 + 6) safe, (6 + 4 + 12) satisfied
    s = rep.area.survey
    assert s.n == 35
    assert s.safety == pytest.approx(100 * 20 / 35)
    assert s.satisfaction == pytest.approx(100 * 22 / 35)
    assert s.combined == pytest.approx((100 * 20 / 35 + 100 * 22 / 35) / 2)
    # roll-up = pooled = the sample-weighted mean of the children's shares
    weighted = sum(c.n * (100 * c.safe / c.n) for c in rows.values()) / sum(
        c.n for c in rows.values())  # fmt: skip
    assert s.safety == pytest.approx(weighted)
    # the minimum sample: 35 answers give a number at min 35, none at min 36
    assert area_report(r, street, [], "24h", now, min_sample=35).area.survey.safety is not None
    assert area_report(r, street, [], "24h", now, min_sample=36).area.survey.safety is None
    assert SurveyIndex(29, 29, 29).safety is None and SurveyIndex(30, 30, 0).safety == 100.0
    assert SurveyIndex(0, 0, 0, min_sample=0).safety is None  # never divide by zero
    # per local day: today 27 answers (g1 12 + g2 15), three days ago g1b's 8
    by_day = dict(zip(rep.survey_days, rep.survey_trend, strict=True))
    today = local_day(now)
    assert len(rep.survey_days) == 7 and rep.survey_days[-1] == today
    assert (by_day[today].n, by_day[today].safe, by_day[today].satisfied) == (27, 15, 18)
    assert (by_day[today - 3].n, by_day[today - 3].safe) == (8, 5)
    assert by_day[today].safety is None  # 27 < 30 on that day
    daily = area_report(r, street, [], "24h", now, min_sample=20)
    assert dict(zip(daily.survey_days, daily.survey_trend, strict=True))[today].safety == (
        pytest.approx(100 * 15 / 27))  # fmt: skip
    # the 200-day-old answer is in no period shown; the 90-day index has the same 35
    assert area_report(r, street, [], "90d", now).area.survey.n == 35
    assert area_report(r, "wx", [], "30d", now).area.survey.n == 35


def test_ind010_the_maps_ssi_is_the_leader_views_index(r, city):
    feed, now = city["feed"], city["now"]
    g1, g2 = city["g1"], city["g2"]
    # g2: 32 answers within the week (20 safe, 24 satisfied); g1: 10 answers; one old answer
    for k in range(32):
        feed.answer(g2, now - 1000 - k * 3 * HOUR, 4 if k < 20 else 2, 5 if k < 24 else 1)
    for _ in range(10):
        feed.answer(g1, now - 2000, 5, 5)
    feed.answer(g2, now - 200 * DAY_MS, 1, 1)
    feed.apply()
    street, c1, c2 = city["street"], city["c1"], city["c2"]
    values = metric_values(r, "ssi", now_ms=now)
    rep = area_report(r, street, [c1, c2], "7d", now)
    rows = {f.area_id: f.survey for f in rep.children}
    for area, index in ((street, rep.area.survey), (c2, rows[c2])):
        assert index.combined is not None
        assert values[area] == round(index.combined, 1), area
    assert values[g2] == round(100 * (20 + 24) / (2 * 32), 1)  # the old answer is not in it
    assert c1 not in values and g1 not in values  # 10 answers: not enough for a number
