"""Early warning: rising risk (Poisson tail against the grid's own history) and repeated
disputes at one normalised address."""

from __future__ import annotations

import math

import numpy as np
import pytest
import redis

from cockpit.alerts import store
from cockpit.alerts.early_warning import (
    DisputeRule,
    DisputeState,
    RisingRiskRule,
    RisingRiskState,
    baseline_rate,
    normalise_address,
    poisson_sf,
)
from cockpit.alerts.engine import AlertEngine, EngineConfig
from cockpit.alerts.model import AlertEvent
from cockpit.apply import INC_PREFIX
from cockpit.areastore import Geography

T0 = 1_781_000_000.0
HOUR = 3600.0
DAY = 86400.0
RULE = RisingRiskRule()


def test_ew001_poisson_tail_matches_closed_forms() -> None:
    assert poisson_sf(0, 2.0) == 1.0
    assert poisson_sf(1, 1.0) == pytest.approx(1 - math.exp(-1))
    assert poisson_sf(3, 2.0) == pytest.approx(1 - math.exp(-2) * (1 + 2 + 2))
    # far tail: dominated by its first term e^-1 / 40!, kept exact rather than rounded to 0
    assert poisson_sf(40, 1.0) == pytest.approx(math.exp(-1) / math.factorial(40), rel=0.05)
    assert baseline_rate([2, 4, 0]) == pytest.approx((1 + 6) / (1 + 3))


def _day(rng: np.random.Generator, grids: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per grid: a week of hourly history and a normal next day, at the grid's own rate."""
    out = []
    for g in range(grids):
        lam = rng.uniform(0.2, 12.0)
        out.append((f"wx-hs-01-001-{g:02d}", rng.poisson(lam, 7 * 24), rng.poisson(lam, 24)))
    return out


def _run_day(grid: str, history: np.ndarray, day: np.ndarray) -> list[AlertEvent]:
    state: RisingRiskState | None = None
    events: list[AlertEvent] = []
    for hour, observed in enumerate(day):
        state, out = RULE.evaluate(
            state, grid, int(observed), history.tolist(), now=T0 + hour * HOUR
        )
        state = RisingRiskState.from_dict(state.to_dict())
        events += out
    return events


def test_ew002_a_normal_day_raises_nothing() -> None:
    rng = np.random.default_rng(7)
    events = [e for grid, hist, day in _day(rng, 20) for e in _run_day(grid, hist, day)]
    assert events == []


def test_ew003_false_alarm_rate_stays_below_the_threshold() -> None:
    # p < 0.001 is meant as a false-alarm rate: check it over 48,000 normal grid-hours (the
    # plug-in baseline makes the test slightly optimistic; a week of history keeps it under)
    rng = np.random.default_rng(11)
    fired = total = 0
    for _grid, hist, day in _day(rng, 2000):
        for observed in day:
            p, _ = RULE.surprise(int(observed), hist.tolist())
            fired += p < RULE.p_raise and observed >= RULE.min_count
            total += 1
    assert fired <= total * RULE.p_raise


def test_ew004_a_planted_surge_raises_once_and_clears_after() -> None:
    rng = np.random.default_rng(7)
    history = rng.poisson(3.0, 7 * 24)
    day = rng.poisson(3.0, 24)
    day[14] = 16  # a fight spilling over, a burst of hotline calls...
    day[15] = 14  # still high the next hour: the same situation, no second alert
    events = _run_day("wx-hs-03-010-04", history, day)
    assert [(e.action, e.kind) for e in events] == [
        ("raise", "rising_risk"),
        ("clear", "rising_risk"),
    ]
    raised, cleared = events
    assert raised.at == T0 + 14 * HOUR and cleared.at == T0 + 16 * HOUR
    assert raised.data["observed"] == 16 and raised.data["p"] < 1e-3
    assert raised.dedup_key == cleared.dedup_key and raised.source_ref == "wx-hs-03-010-04"


def test_ew005_relative_to_the_grids_own_history() -> None:
    busy = [20] * 168
    _, events = RULE.evaluate(None, "busy", 30, busy, T0)  # p ~ 0.02: a busy grid's normal
    assert events == []
    quiet = [0] * 168
    _, events = RULE.evaluate(None, "quiet", 4, quiet, T0)  # tiny p but under the min count
    assert events == []
    _, events = RULE.evaluate(None, "quiet", 5, quiet, T0)
    assert [e.severity for e in events] == ["moderate"]  # p < 1e-6


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("惠山区 堰桥街道 锡山大道１２号 ５号楼 ３０１室", "惠山区堰桥街道锡山大道12号5幢301室"),
        ("长安街道 惠山大道88号3栋", "长安街道惠山大道88號3号楼"),
        ("Wanda Plaza, Block B", "wanda plaza block b"),
        ("钱桥街道（盛岸西路）２－３号", "钱桥街道盛岸西路2-3号"),
    ],
)
def test_ew006_address_spellings_of_one_place_normalise_equal(a: str, b: str) -> None:
    assert normalise_address(a) == normalise_address(b)


def test_ew007_street_number_and_building_stay_different() -> None:
    assert normalise_address("惠山大道12号") != normalise_address("惠山大道12幢")


def test_ew008_three_disputes_at_one_address_within_a_week_warn_once() -> None:
    rule = DisputeRule()
    spellings = ["锡山大道12号 5号楼", "锡山大道１２号５栋", "锡山大道12号5幢", "锡山大道12号5座"]
    state: DisputeState | None = None
    events: list[AlertEvent] = []
    for i, address in enumerate(spellings):
        ts = T0 + i * 2 * DAY
        state, out = rule.evaluate(state, f"inc-{i}", address, ts, now=ts, lon=120.2, lat=31.7)
        state = DisputeState.from_dict(state.to_dict())
        events += out
    assert [(e.action, e.kind, e.at) for e in events] == [
        ("raise", "dispute_escalation", T0 + 4 * DAY)
    ]
    assert events[0].data["incidents"] == ["inc-0", "inc-1", "inc-2"]
    assert events[0].geometry == {"type": "Point", "coordinates": (120.2, 31.7)}
    # the window passes with no new dispute: the warning clears
    assert state is not None
    state, out = rule.check(state, T0 + 14 * DAY)
    assert [e.action for e in out] == ["clear"] and state.incidents == []


def test_ew009_spread_out_or_redelivered_disputes_do_not_warn() -> None:
    rule = DisputeRule()
    state, events = None, []
    for i in range(4):  # one every 4 days: never 3 within 7 days
        state, out = rule.evaluate(
            state, f"inc-{i}", "前洲街道前洲路1号", T0 + i * 4 * DAY, now=T0 + i * 4 * DAY
        )
        events += out
    assert events == []
    state = None
    for _ in range(5):  # the same incident delivered five times counts once
        state, out = rule.evaluate(state, "inc-x", "前洲街道前洲路1号", T0, now=T0)
        events += out
    assert events == [] and state is not None and len(state.incidents) == 1


# -- one rising-risk situation, one key, whoever judges it when --------------------------------

#: A grid with one incident an hour for two days, then one every 5 minutes (12 in an hour).
SURGE_HISTORY = [1] * 48


def _window(per_minute: dict[int, int], last: int) -> int:
    """Incidents in the 60 minute buckets ending with ``last``."""
    return sum(per_minute.get(m, 0) for m in range(last - 59, last + 1))


def _judge(rule: RisingRiskRule, per_minute: dict[int, int], minute: int, clock: float):
    """What an engine whose clock reads ``clock`` in ``minute`` decides, from no state."""
    earlier = [_window(per_minute, minute - j) for j in range(1, 60)]
    return rule.evaluate(
        None, "g", _window(per_minute, minute), SURGE_HISTORY, clock,
        window_end=(minute + 1) * 60.0, earlier=earlier,
    )  # fmt: skip


def test_ew011_the_rising_risk_key_names_the_onset_not_the_engines_clock() -> None:
    m0 = int(T0 // 60)
    per_minute = {m0 + 5 * i: 1 for i in range(12)}  # minutes m0 .. m0 + 55
    # with a baseline of 1 an hour, 6 in an hour is the first count with p < 0.001: the
    # window ending with the sixth incident's minute (m0 + 25) is the onset
    onset = (m0 + 25 + 1) * 60.0
    keys = set()
    for minute, clock in ((m0 + 55, (m0 + 55) * 60 + 7), (m0 + 56, (m0 + 56) * 60 + 41),
                          (m0 + 58, (m0 + 58) * 60 + 59.5)):  # fmt: skip
        _, events = _judge(RisingRiskRule(), per_minute, minute, clock)
        assert [(e.action, e.at) for e in events] == [("raise", clock)]
        keys.add(events[0].dedup_key)
    assert keys == {f"rising_risk:g:all:{onset:.0f}"}


def test_ew012_a_surge_after_a_cleared_one_is_a_new_situation() -> None:
    m0 = int(T0 // 60)
    first = {m0 + 5 * i: 1 for i in range(12)}
    # two quiet hours, then a second burst: its onset is its own, not the first one's
    second = {**first, **{m0 + 180 + 5 * i: 1 for i in range(12)}}
    _, old = _judge(RisingRiskRule(), first, m0 + 55, 0.0)
    _, new = _judge(RisingRiskRule(), second, m0 + 235, 0.0)
    assert old[0].dedup_key != new[0].dedup_key
    assert new[0].dedup_key == f"rising_risk:g:all:{(m0 + 180 + 25 + 1) * 60:.0f}"


def test_ew013_two_engines_over_the_same_feed_raise_rising_risk_once(
    r: redis.Redis, loaded_city: Geography
) -> None:
    now = T0 - T0 % HOUR + 1800 + 20
    grid = loaded_city.areas.grids.index[200]
    hour, minute = int(now // HOUR), int(now // 60)
    for h in range(hour - 49, hour - 1):
        r.hset(f"{INC_PREFIX}h:{h}:all", mapping={grid: 1})
    for m in range(minute - 59, minute + 1, 5):
        r.hset(f"{INC_PREFIX}m:{m}:all", mapping={grid: 1})
    first = AlertEngine(r, clock=lambda: now, name="first", config=EngineConfig())
    first.step()
    (raised,) = store.all_alerts(r)
    # the first engine dies after raising the alert, before it saved the rule's state; the
    # second takes over 45 s later (another minute) and judges the same surge again
    r.delete(f"{store.STATE_PREFIX}rising")
    first.release()
    second = AlertEngine(r, clock=lambda: now + 45, name="second", config=EngineConfig())
    second.step()
    assert [a.id for a in store.all_alerts(r)] == [raised.id]
    assert raised.dedup_key == f"rising_risk:{grid}:all:{(minute - 59 + 25 + 1) * 60}"
    assert raised.raised_at == now  # the engine's (controlled) clock stamps it
    assert store.load_states(r, "rising")[grid]["alert_key"] == raised.dedup_key
