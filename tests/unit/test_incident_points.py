"""The incident point layer's server side (layers/incidents.py) against real Redis, with the real
worker applying what was written to the stream: the newest N of a window, the policy on the
points, and the legend."""

from __future__ import annotations

import json

import pytest

from cockpit.i18n import category_label, t
from layers.incidents import incident_features, incident_legend, newest_incidents
from tests.unit.test_incidents_read import GRID, GRID_USER, NEIGHBOUR, STREET_USER, _write

MINUTE = 60_000


@pytest.fixture
def feed(r, loaded_city):
    """Twelve incidents in one street, 1 to 100 minutes old (newest first: p00 … p11), with a
    petition and personal data among them."""
    geo = loaded_city
    now = int(r.time()[0]) * 1000
    ages = [1, 3, 6, 9, 14, 20, 35, 50, 70, 80, 90, 100]  # minutes
    rows = [
        {"id": f"p{k:02d}", "ts": str(now - age * MINUTE), "grid": GRID if k % 2 else NEIGHBOUR,
         "category": "petition" if k == 0 else "dispute", "status": "new" if k < 6 else "closed",
         "reporter": "Wang Fang 13800000000", "address": "Xicheng Road 88", "text": "<b>x</b>"}
        for k, age in enumerate(ages)
    ]  # fmt: skip
    _write(r, geo, rows)
    return geo, now


def _ids(records: list[dict]) -> list[str]:
    return [rec["id"] for rec in records]


def test_pts001_newest_n_of_the_window_whatever_their_age(r, feed):
    geo, now = feed
    found, capped = newest_incidents(r, geo, STREET_USER, "24h", None, now, limit=5)
    assert _ids(found) == ["p00", "p01", "p02", "p03", "p04"] and capped
    # more than the first 2-minute span holds, and older than the 16-minute one: still all found
    found, capped = newest_incidents(r, geo, STREET_USER, "24h", None, now, limit=9)
    assert _ids(found) == [f"p{k:02d}" for k in range(9)] and capped
    found, capped = newest_incidents(r, geo, STREET_USER, "24h", None, now, limit=50)
    assert len(found) == 12 and not capped
    # the window cuts: 15 min holds p00-p04, one hour p00-p07
    assert _ids(newest_incidents(r, geo, STREET_USER, "15m", None, now)[0]) == [
        "p00", "p01", "p02", "p03", "p04"]  # fmt: skip
    found, capped = newest_incidents(r, geo, STREET_USER, "1h", None, now, limit=8)
    assert len(found) == 8 and not capped


def test_pts002_points_follow_the_policy_and_carry_nothing_personal(r, feed):
    geo, now = feed
    found, _ = newest_incidents(r, geo, GRID_USER, "24h", None, now)
    # a grid officer: only their grid (odd k), and never a petition
    assert _ids(found) == ["p01", "p03", "p05", "p07", "p09", "p11"]
    street, _ = newest_incidents(r, geo, STREET_USER, "24h", "dispute", now)
    assert "p00" not in _ids(street) and len(street) == 11
    points = incident_features(street, geo, "en")
    assert len(points["features"]) == 11
    for feature in points["features"]:
        assert set(feature["properties"]) == {"c", "s", "t", "g"}
    text = json.dumps(points, ensure_ascii=False)
    assert "Wang" not in text and "1380" not in text and "Xicheng" not in text and "<b>" not in text
    first = points["features"][0]["properties"]
    assert first["s"] == "new" and first["g"] == geo.areas.frame.loc[GRID, "name_en"]


def test_pts003_legend_names_colours_in_use_and_says_when_capped():
    capped = incident_legend("en", "1h", None, ["dispute", "traffic"], shown=1000, capped=True)
    text = json.dumps(capped.to_plotly_json(), default=lambda o: o.to_plotly_json(),
                      ensure_ascii=False)  # fmt: skip
    assert t("incidents_title_category", "en", window=t("heat_window_1h", "en")) in text
    assert category_label("dispute", "en") in text and category_label("traffic", "en") in text
    assert category_label("petition", "en") not in text  # not a category this user may see
    assert t("incidents_capped", "en", n="1,000") in text
    by_status = incident_legend("zh-CN", "24h", "dispute", ["dispute"], shown=12)
    text = json.dumps(by_status.to_plotly_json(), default=lambda o: o.to_plotly_json(),
                      ensure_ascii=False)  # fmt: skip
    assert t("incidents_title_status", "zh-CN", window=t("heat_window_24h", "zh-CN"),
             category=category_label("dispute", "zh-CN")) in text  # fmt: skip
    assert t("officer_status_closed", "zh-CN") in text
    assert t("incidents_shown", "zh-CN", n="12") in text
    assert t("incidents_capped", "zh-CN", n="12") not in text
