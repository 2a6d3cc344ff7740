"""The heatmap service against a real Redis: incidents go in with XADD and through the real
worker, the PNG comes out of cockpit.heatservice and is decoded here."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import redis

from cockpit import heatservice
from cockpit.areastore import Geography, save_areas
from cockpit.contract import INCIDENTS
from cockpit.heatservice import (
    STATS_KEY,
    area_raster,
    cached_heat,
    forget_caches,
    heat_by_version,
    heat_key,
    redis_now_ms,
    render_heat,
)
from cockpit.worker import Worker
from tests.unit.test_heat import decode_png

STREET_A, STREET_B = "wx-hs-01", "wx-hs-02"


@pytest.fixture(autouse=True)
def cold_caches():
    """Each test starts with empty per-process caches (a fresh Dash process)."""
    forget_caches()
    yield
    forget_caches()


def grid_point(geo: Geography, grid_id: str) -> tuple[float, float]:
    """(lon, lat) of a point inside the grid (the worker locates it there)."""
    p = geo.areas.grids.geometry.loc[grid_id].representative_point()
    return float(p.x), float(p.y)


def street_grids(geo: Geography, street: str) -> list[str]:
    return [g for g in geo.areas.descendants(street, "grid") if g in geo.grid_index]


_seq = iter(range(10**9))


def incident(geo, grid_id, ts_ms, category="dispute", severity=2, lonlat=None) -> dict:
    """Fields of one new incident in ``grid_id`` (at its representative point by default)."""
    lon, lat = lonlat or grid_point(geo, grid_id)
    return {"id": f"h-{next(_seq)}", "ts": str(ts_ms), "category": category,
            "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "severity": str(severity)}  # fmt: skip


def feed(r: redis.Redis, incidents: list[dict]) -> None:
    """XADD the incidents and step the real worker until every one is applied."""
    with r.pipeline(transaction=False) as pipe:
        for fields in incidents:
            pipe.xadd(INCIDENTS, fields)
        pipe.execute()
    worker = Worker(r, name="heat-test", batch_size=1000, block_ms=10)
    worker.ensure_groups()
    for _ in range(100):
        worker.step()
        group = {g["name"]: g for g in r.xinfo_groups(INCIDENTS)}[b"cockpit"]
        if group["pending"] == 0 and worker.stats.applied + worker.stats.dead >= len(incidents):
            break
    assert worker.stats.applied == len(incidents) and worker.stats.dead == 0


def alpha_at(png: bytes, raster, lon: float, lat: float) -> int:
    (flat,) = raster.pixel_index(np.array([lon]), np.array([lat]))
    row, col = divmod(int(flat), raster.width)
    return int(decode_png(png)[row, col, 3])


def test_hsv001_hot_grid_is_the_reddest_spot_of_the_city(r, loaded_city):
    geo = loaded_city
    now = redis_now_ms(r)
    grids = street_grids(geo, STREET_A) + street_grids(geo, STREET_B)
    hot = grids[len(grids) // 2]
    step = max(1, len(grids) // 20)
    spread = [incident(geo, g, now - 60_000, severity=1) for g in grids[::step] if g != hot]
    hot_ones = [incident(geo, hot, now - 30_000, severity=4) for _ in range(25)]
    feed(r, spread + hot_ones)

    image = render_heat(r, geo, geo.areas.root_id, "1h")
    raster, _sigma = area_raster(geo, geo.areas.root_id)
    assert image.points == len(spread) + len(hot_ones)
    assert image.total_weight == len(spread) * 1 + 25 * 4
    assert (image.width, image.height) == (raster.width, raster.height)
    rgba = decode_png(image.png)
    assert rgba.shape == (raster.height, raster.width, 4)
    # the reddest pixels (full red, the top of the ramp) all sit on the hot grid's blur core,
    # and the hot grid's own pixel is one of them
    red = np.all(rgba == (215, 25, 28, 235), axis=2)
    hot_lon, hot_lat = grid_point(geo, hot)
    (flat,) = raster.pixel_index(np.array([hot_lon]), np.array([hot_lat]))
    hot_row, hot_col = divmod(int(flat), raster.width)
    assert red[hot_row, hot_col]
    rows, cols = np.nonzero(red)
    assert np.hypot(rows - hot_row, cols - hot_col).max() <= 2 * _sigma
    assert image.scale_per_km2 > 0


def test_hsv002_a_street_heatmap_counts_and_shows_nothing_outside_the_street(r, loaded_city):
    geo = loaded_city
    now = redis_now_ms(r)
    raster_a, _ = area_raster(geo, STREET_A)
    west, south, east, north = raster_a.west, raster_a.south, raster_a.east, raster_a.north
    # a grid of another street whose point lies inside street A's (padded) raster
    outsider = next(
        g for g in geo.grid_ids if geo.grid_street[geo.grid_index[g]] != STREET_A
        and west < grid_point(geo, g)[0] < east and south < grid_point(geo, g)[1] < north
    )  # fmt: skip
    ox, oy = grid_point(geo, outsider)
    # street A's incidents in its grid farthest from the outsider, so the blur cannot reach it
    far = max(
        street_grids(geo, STREET_A),
        key=lambda g: np.hypot(*np.subtract(grid_point(geo, g), (ox, oy))),
    )
    inside = [incident(geo, far, now - 10_000, severity=3) for _ in range(4)]
    outside = [incident(geo, outsider, now - 10_000, severity=4) for _ in range(9)]
    feed(r, inside + outside)

    street = render_heat(r, geo, STREET_A, "15m")
    assert street.points == 4 and street.total_weight == 12
    assert alpha_at(street.png, raster_a, ox, oy) == 0  # fully transparent where B's are
    assert alpha_at(street.png, raster_a, *grid_point(geo, far)) > 0
    # the same spot is hot on the city's heatmap: the test point really carries incidents
    city = render_heat(r, geo, geo.areas.root_id, "15m")
    assert city.points == 13
    assert alpha_at(city.png, area_raster(geo, geo.areas.root_id)[0], ox, oy) > 0


def test_hsv003_window_expiry_15m_drops_what_1h_keeps(r, loaded_city):
    geo = loaded_city
    now = redis_now_ms(r)
    g = street_grids(geo, STREET_A)[0]
    old = [incident(geo, g, now - 20 * 60_000) for _ in range(3)]  # 20 minutes ago
    recent = [incident(geo, g, now - 60_000) for _ in range(2)]
    ancient = [incident(geo, g, now - 5 * 3600_000)]  # 5 hours ago: only the 24 h window
    feed(r, old + recent + ancient)
    assert render_heat(r, geo, STREET_A, "15m", now_ms=now).points == 2
    assert render_heat(r, geo, STREET_A, "1h", now_ms=now).points == 5
    assert render_heat(r, geo, STREET_A, "24h", now_ms=now).points == 6
    # the same 15 min raster, 10 minutes later: the recent ones expire too (subtracted)
    later = render_heat(r, geo, STREET_A, "15m", now_ms=now + 15 * 60_000)
    assert later.points == 0 and later.total_weight == 0
    assert decode_png(later.png)[..., 3].max() == 0


def test_hsv004_incremental_render_equals_a_cold_one_with_late_arrivals(r, loaded_city):
    geo = loaded_city
    now = redis_now_ms(r)
    grids = street_grids(geo, STREET_A)
    feed(r, [incident(geo, grids[k % len(grids)], now - k * 7_000, severity=1 + k % 4)
             for k in range(60)])  # fmt: skip
    first = render_heat(r, geo, STREET_A, "1h", now_ms=now)
    assert first.points == 60
    # new ones now, and late arrivals stamped 40 and 50 minutes ago (appended to old minutes)
    feed(r, [incident(geo, grids[3], now - 1_000, severity=4),
             incident(geo, grids[5], now - 40 * 60_000, severity=2),
             incident(geo, grids[7], now - 50 * 60_000, severity=3)])  # fmt: skip
    warm = render_heat(r, geo, STREET_A, "1h", now_ms=now)
    assert warm.points == 63
    forget_caches()
    cold = render_heat(r, geo, STREET_A, "1h", now_ms=now)
    assert cold.png == warm.png and cold.points == warm.points
    assert cold.total_weight == warm.total_weight == first.total_weight + 9


def test_hsv005_category_filter_counts_only_that_category(r, loaded_city):
    geo = loaded_city
    now = redis_now_ms(r)
    g = street_grids(geo, STREET_A)[2]
    feed(r, [incident(geo, g, now, "flood", 4)] * 1
         + [incident(geo, g, now, "dispute", 1) for _ in range(5)]
         + [incident(geo, g, now, "petition", 2) for _ in range(2)])  # fmt: skip
    assert render_heat(r, geo, STREET_A, "15m", "flood").total_weight == 4
    assert render_heat(r, geo, STREET_A, "15m", ["dispute", "petition"]).points == 7
    assert render_heat(r, geo, STREET_A, "15m").points == 8
    with pytest.raises(ValueError):
        render_heat(r, geo, STREET_A, "15m", "no-such-category")
    with pytest.raises(ValueError):
        render_heat(r, geo, STREET_A, "2h")


def test_hsv006_many_viewers_at_once_cost_one_render(r, loaded_city):
    geo = loaded_city
    now = redis_now_ms(r)
    feed(r, [incident(geo, g, now) for g in street_grids(geo, STREET_A)[:10]])
    barrier = threading.Barrier(8)
    served = []

    def viewer() -> None:
        barrier.wait()
        served.append(cached_heat(r, geo, STREET_A, "1h"))

    threads = [threading.Thread(target=viewer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(r.hget(STATS_KEY, "renders")) == 1
    assert int(r.hget(STATS_KEY, "served")) == 8
    assert len({s.version for s in served}) == 1 and served[0].points == 10
    key = heat_key(STREET_A, "1h", heatservice.category_set(None))
    assert not r.exists(key + ":lock")  # released
    assert 0 < r.pttl(key) <= heatservice.CACHE_TTL_MS
    meta = cached_heat(r, geo, STREET_A, "1h", with_png=False)
    assert meta.version == served[0].version and meta.png == b""
    kept = heat_by_version(r, STREET_A, "1h", None, served[0].version)
    assert kept is not None and kept.png == served[0].png
    assert heat_by_version(r, STREET_A, "1h", None, "0123abcd") is None


def test_hsv007_a_lock_left_by_a_dead_renderer_does_not_stall_viewers(r, loaded_city):
    geo = loaded_city
    feed(r, [incident(geo, street_grids(geo, STREET_A)[0], redis_now_ms(r))])
    lock = heat_key(STREET_A, "15m", heatservice.category_set(None)) + ":lock"
    r.set(lock, "someone-else", px=60_000)
    served = cached_heat(r, geo, STREET_A, "15m", wait_s=0.05)
    assert served.points == 1
    assert r.get(lock) == b"someone-else"  # not ours to delete


def test_hsv008_redis_data_loss_is_noticed_even_when_blobs_regrow_to_the_same_length(
    r, loaded_city
):
    geo = loaded_city
    now = redis_now_ms(r)
    grids = street_grids(geo, STREET_A)
    feed(r, [incident(geo, grids[0], now, severity=1) for _ in range(3)])
    before = render_heat(r, geo, STREET_A, "15m", now_ms=now)
    r.flushdb()  # Redis loses everything; the worker starts a new epoch
    save_areas(r, geo.areas)
    feed(r, [incident(geo, grids[-1], now, severity=4) for _ in range(3)])  # same byte count
    after = render_heat(r, geo, STREET_A, "15m", now_ms=now)
    assert after.total_weight == 12 and after.png != before.png
    forget_caches()
    assert render_heat(r, geo, STREET_A, "15m", now_ms=now).png == after.png


def test_hsv009_overlay_and_legend_in_both_languages():
    from layers.heat import format_density, heat_layer, heat_legend

    bounds = [[31.5, 120.1], [31.8, 120.4]]
    layer = heat_layer("heat-layer", "1h", bounds, "/heat/1h.png?area=wx&v=ab")
    assert layer.url == "/heat/1h.png?area=wx&v=ab" and layer.bounds == bounds
    assert layer.interactive is False and 0 < layer.opacity <= 1

    def text(component) -> str:
        kids = getattr(component, "children", component)
        if isinstance(kids, str):
            return kids
        return " ".join(text(k) for k in (kids if isinstance(kids, list) else [kids]) if k)

    en = text(heat_legend("1h", 37.4, 1234, "en"))
    assert "last hour" in en and "37 or more per km²" in en and "1234 incidents" in en
    zh = text(heat_legend("15m", 0.372, 5, "zh-CN"))
    assert "近15分钟" in zh and "每平方公里0.37及以上" in zh and "5起" in zh
    assert "No incidents" in text(heat_legend("24h", 0.0, 0, "en"))  # not a blank bar
    assert [format_density(v) for v in (0, 0.0123, 4.25, 120.4)] == ["0", "0.012", "4.2", "120"]
