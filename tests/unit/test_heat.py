"""The heatmap raster: Mercator pixel mapping, exact add/subtract, the sliding window, the PNG
(decoded here with zlib alone) and the time budget. Pure: no server, no Redis."""

from __future__ import annotations

import base64
import math
import struct
import time
import zlib

import numpy as np
import pytest

from layers.heat import (
    PNG_SIGNATURE,
    HeatRaster,
    HeatWindow,
    blur,
    box_radius,
    encode_png_rgba,
    pack_binned,
    quantise,
    ramp_palette,
    robust_max,
    unpack_binned,
)

# 10°E..20°E, 0°..60°N at 100 px wide: tall enough that latitude and Mercator rows differ a lot.
# Hand values: y(60°) = ln tan 75° = ln(2 + √3); y(30°) = ln tan 60° = ½ ln 3; the Mercator
# middle y(60°)/2 is at latitude asin(1/√3) = 35.2644°.
TALL = (10.0, 0.0, 20.0, 60.0)
Y60 = math.log(2 + math.sqrt(3))
DEMO_BBOX = (120.1107701, 31.5684163, 120.4271709, 31.8140682)  # the demo city's extent
BUDGET_MS = 200.0


def decode_png(data: bytes) -> np.ndarray:
    """A tiny PNG decoder (8-bit RGBA or palette with tRNS, filters None/Sub/Up, one or more
    IDAT chunks), checking every CRC; returns (height, width, 4) uint8 RGBA."""
    assert data[:8] == PNG_SIGNATURE
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, comp, filt, interlace) == (8, 0, 0, 0) and ctype in (3, 6)
    bpp = 4 if ctype == 6 else 1
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    assert len(raw) == h * (1 + w * bpp)
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, 1 + w * bpp)
    out = np.zeros((h, w * bpp), dtype=np.uint8)
    for i in range(h):
        ftype, line = rows[i, 0], rows[i, 1:].astype(np.int64)
        if ftype == 1:  # Sub
            for j in range(bpp, w * bpp):
                line[j] = (line[j] + line[j - bpp]) % 256
        elif ftype == 2:  # Up
            line = (line + (out[i - 1] if i else 0)) % 256
        else:
            assert ftype == 0, f"filter {ftype} not supported by this test decoder"
        out[i] = line
    if ctype == 6:
        return out.reshape(h, w, 4)
    chunk = dict(chunks)
    plte = np.frombuffer(chunk[b"PLTE"], dtype=np.uint8).reshape(-1, 3)
    alpha = np.full(len(plte), 255, dtype=np.uint8)
    trns = np.frombuffer(chunk.get(b"tRNS", b""), dtype=np.uint8)
    alpha[: len(trns)] = trns
    rgba = np.concatenate([plte, alpha[:, None]], axis=1)
    return rgba[out]


def _row_col(raster: HeatRaster, lon: float, lat: float) -> tuple[int, int]:
    (flat,) = raster.pixel_index(np.array([lon]), np.array([lat]))
    assert flat >= 0
    return divmod(int(flat), raster.width)


def test_heat001_rows_are_spaced_in_mercator_at_edges_and_middle():
    raster = HeatRaster(TALL, width=100)
    # height = round(100 * ln(2+√3) / radians(10)) = round(754.56)
    assert raster.shape == (755, 100)
    assert _row_col(raster, 10.0, 60.0) == (0, 0)  # north-west corner
    assert _row_col(raster, 20.0, 0.0) == (754, 99)  # south-east corner: closed edges
    assert _row_col(raster, 15.0, 59.99)[0] == 0
    assert _row_col(raster, 15.0, 0.01)[0] == 754
    # Mercator middle, asin(1/√3): row 377 of 755, the centre row.
    assert _row_col(raster, 15.0, math.degrees(math.asin(1 / math.sqrt(3))))[0] == 377
    # The latitude middle, 30°: floor((ln(2+√3) - ½ ln 3) / ln(2+√3) * 755) = floor(440.09),
    # far from row 377 where a linear-in-latitude raster would put it.
    expected = math.floor((Y60 - 0.5 * math.log(3)) / Y60 * 755)
    assert expected == 440
    assert _row_col(raster, 15.0, 30.0)[0] == 440
    # Columns are linear in longitude: 15.05°E is 50.5 px from the west edge.
    assert _row_col(raster, 15.05, 30.0)[1] == 50


def test_heat002_pixel_centres_round_trip_and_demo_pixels_are_square():
    raster = HeatRaster(TALL, width=100)
    for row, col in [(0, 0), (377, 50), (440, 7), (754, 99)]:
        lon, lat = raster.pixel_centre(row, col)
        assert _row_col(raster, lon, lat) == (row, col)
    demo = HeatRaster(DEMO_BBOX, width=1024)
    dx = math.radians(DEMO_BBOX[2] - DEMO_BBOX[0]) / demo.width
    dy = (demo.y_north - demo.y_south) / demo.height
    assert abs(dy / dx - 1) < 1 / demo.height  # square on screen, up to rounding the height
    assert demo.bounds == [[DEMO_BBOX[1], DEMO_BBOX[0]], [DEMO_BBOX[3], DEMO_BBOX[2]]]


def test_heat003_weights_add_in_one_pixel():
    raster = HeatRaster(TALL, width=100)
    counted = raster.add(np.array([15.0, 15.0, 15.0]), np.array([30.0, 30.0, 30.0]), [1, 3, 4])
    assert counted == 3
    assert raster.counts[440, 50] == 8
    assert raster.counts.sum() == 8
    raster.add(np.array([15.0]), np.array([30.0]), 2)  # a scalar weight broadcasts
    assert raster.counts[440, 50] == 10


def test_heat004_outside_and_nan_are_ignored():
    raster = HeatRaster(TALL, width=100)
    lon = np.array([9.99, 20.01, 15.0, 15.0, np.nan, 15.0, 15.0, 15.0])
    lat = np.array([30.0, 30.0, -0.01, 60.01, 30.0, np.nan, 30.0, 30.0])
    weight = np.array([1, 1, 1, 1, 1, 1, np.nan, 2])
    assert raster.add(lon, lat, weight) == 1
    assert raster.counts.sum() == 2 and raster.counts[440, 50] == 2
    assert raster.pixel_index(lon, lat).tolist()[:6] == [-1] * 6


@pytest.mark.parametrize("n", [500, 200_000])  # the scattered-add path and the bincount path
def test_heat005_add_then_subtract_returns_to_zero(n):
    rng = np.random.default_rng(5)
    raster = HeatRaster(DEMO_BBOX, width=256)
    lon = rng.uniform(120.0, 120.5, n)  # some fall outside, on purpose
    lat = rng.uniform(31.5, 31.9, n)
    weight = rng.integers(1, 5, n)
    counted = raster.add(lon, lat, weight)
    assert 0 < counted < n
    assert raster.counts.sum() == weight[raster.pixel_index(lon, lat) >= 0].sum()
    assert raster.subtract(lon, lat, weight) == counted
    assert not raster.counts.any()


def test_heat006_window_keeps_exactly_the_points_of_its_buckets():
    rng = np.random.default_rng(6)
    t0 = 1_700_000_000.0 - 1_700_000_000.0 % 60  # a bucket boundary
    n = 6000
    ts = t0 + rng.uniform(0, 600, n)  # ten minutes of events
    lon = rng.uniform(DEMO_BBOX[0], DEMO_BBOX[2], n)
    lat = rng.uniform(DEMO_BBOX[1], DEMO_BBOX[3], n)
    weight = rng.integers(1, 5, n)
    window = HeatWindow(HeatRaster(DEMO_BBOX, width=128), window_s=300, bucket_s=60)
    for k in range(0, n, 1000):  # batches, as the worker would deliver them
        window.add(ts[k : k + 1000], lon[k : k + 1000], lat[k : k + 1000], weight[k : k + 1000])
    assert window.points == n
    # At t0+600 the window starts at t0+300: buckets 0-4 leave, buckets 5-9 stay.
    removed = window.advance(t0 + 600)
    keep = ts >= t0 + 300
    assert removed == n - keep.sum() and window.points == keep.sum()
    expected = HeatRaster(DEMO_BBOX, width=128)
    expected.add(lon[keep], lat[keep], weight[keep])
    assert np.array_equal(window.raster.counts, expected.counts)
    # A late event older than the window start is not counted; a fresh one is.
    assert window.add([t0 + 100], [120.2], [31.7], [4]) == 0
    assert window.add([t0 + 610], [120.2], [31.7], [4]) == 1
    window.advance(t0 + 2000)
    assert window.points == 0 and not window.raster.counts.any()


def test_heat007_png_is_valid_and_has_the_raster_size():
    raster = HeatRaster(DEMO_BBOX, width=300)
    raster.add(np.array([120.2, 120.3]), np.array([31.6, 31.7]), [2, 4])
    image = raster.render_png(sigma_px=3)
    assert image.png[:8] == PNG_SIGNATURE
    assert image.png[12:16] == b"IHDR"
    assert struct.unpack(">II", image.png[16:24]) == (raster.width, raster.height)
    assert decode_png(image.png).shape == (raster.height, raster.width, 4)
    assert image.data_url().startswith("data:image/png;base64,")
    assert base64.b64decode(image.data_url().split(",", 1)[1]) == image.png
    # The RGBA baseline encoder makes a valid PNG of the same pixels.
    pixels = ramp_palette()[quantise(blur(raster.counts, 3), image.scale)]
    assert np.array_equal(decode_png(encode_png_rgba(pixels)), decode_png(image.png))


def test_heat008_zero_counts_are_fully_transparent():
    empty = HeatRaster(DEMO_BBOX, width=200)
    image = empty.render_png()
    assert image.scale == 0.0
    assert not decode_png(image.png).any()  # every byte 0: no colour, alpha 0
    one = HeatRaster(DEMO_BBOX, width=200)
    one.add([120.25], [31.7], [1])
    row, col = divmod(int(one.pixel_index([120.25], [31.7])[0]), one.width)
    rgba = decode_png(one.render_png(sigma_px=4).png)
    reach = 3 * box_radius(4)
    alpha = rgba[..., 3]
    assert alpha[row, col] > 0
    assert alpha[row, col + reach] > 0 and alpha[row, col + reach + 1] == 0  # exact support
    assert (alpha > 0).sum() == (2 * reach + 1) ** 2
    assert not rgba[alpha == 0].any()


def test_heat009_hottest_cell_is_most_opaque_and_red():
    raster = HeatRaster(DEMO_BBOX, width=400)
    raster.add(np.full(500, 120.2), np.full(500, 31.65), 4)  # a hot spot
    raster.add([120.35], [31.75], [1])  # one lone, mild incident
    image = raster.render_png(sigma_px=3)
    rgba = decode_png(image.png).astype(int)
    hot = divmod(int(raster.pixel_index([120.2], [31.65])[0]), raster.width)
    lone = divmod(int(raster.pixel_index([120.35], [31.75])[0]), raster.width)
    red = ramp_palette()[255].astype(int)
    assert rgba[hot].tolist() == red.tolist()
    assert red[0] > 200 and red[1] < 60 and red[2] < 60  # red, not orange
    assert rgba[hot][3] == rgba[..., 3].max()
    assert 0 < rgba[lone][3] < rgba[hot][3]  # still visible, much fainter
    assert rgba[lone][1] > rgba[hot][1]  # more yellow (green channel) than the hot spot
    # Alpha and redness rise together along the whole palette.
    pal = ramp_palette().astype(int)
    assert (np.diff(pal[1:, 3]) >= 0).all() and (np.diff(pal[1:, 1]) <= 0).all()


def test_heat010_blur_keeps_mass_and_approximates_the_gaussian_sigma():
    counts = np.zeros((101, 101), dtype=np.int64)
    counts[50, 50] = 3
    density = blur(counts, sigma_px=6)
    assert density.sum() == pytest.approx(3.0, rel=1e-12)
    profile = density.sum(axis=0) / 3.0
    x = np.arange(101) - 50
    sigma = math.sqrt((profile * x * x).sum())
    assert sigma == pytest.approx(6.0, rel=0.1)
    assert np.array_equal(density, density.T)  # the same blur along rows and columns
    assert (density >= 0).all()


def test_heat011_scale_is_robust_and_reported():
    density = np.zeros(10_000)
    density[:1000] = 1.0
    density[0] = 1000.0  # one outlier
    assert robust_max(density, 99.5) == 1.0
    raster = HeatRaster(DEMO_BBOX, width=200)
    raster.add(np.full(10, 120.2), np.full(10, 31.7), 1)
    pinned = raster.render_png(sigma_px=2, scale=7.5)
    assert pinned.scale == 7.5
    assert pinned.scale_per_km2 == pytest.approx(7.5 / raster.pixel_area_km2())
    # At ~31.7°N a 200 px raster over 0.316° of longitude has ~150 m pixels: ~0.023 km².
    assert raster.pixel_area_km2() == pytest.approx(0.0225, rel=0.05)
    auto = raster.render_png(sigma_px=2)
    assert auto.scale == pytest.approx(robust_max(blur(raster.counts, 2)))
    assert auto.total_weight == 10


def test_heat012_update_with_a_million_points_stays_within_twice_the_budget():
    rng = np.random.default_rng(12)
    n, batch, bucket_s = 1_000_000, 20_000, 60.0
    centres = rng.uniform(DEMO_BBOX[:2], DEMO_BBOX[2:], (113, 2))
    k = rng.integers(0, 113, n + 3 * batch)
    # Clusters around 113 community-like centres, kept inside the city so every point counts.
    lon = np.clip(centres[k, 0] + rng.normal(0, 0.006, k.size), DEMO_BBOX[0], DEMO_BBOX[2])
    lat = np.clip(centres[k, 1] + rng.normal(0, 0.005, k.size), DEMO_BBOX[1], DEMO_BBOX[3])
    weight = rng.integers(1, 5, k.size)
    t0 = 1_700_000_000.0 - 1_700_000_000.0 % bucket_s
    ts = t0 + np.arange(k.size) // batch * bucket_s  # 50 buckets of 20,000 points
    window = HeatWindow(HeatRaster(DEMO_BBOX, width=1024), window_s=50 * bucket_s, bucket_s=60)
    window.add(ts[:n], lon[:n], lat[:n], weight[:n])
    assert window.points == n
    elapsed = []
    for step in range(3):
        new = slice(n + step * batch, n + (step + 1) * batch)
        start = time.perf_counter()
        window.add(ts[new], lon[new], lat[new], weight[new])
        removed = window.advance(float(ts[new][-1]) + bucket_s)
        image = window.raster.render_png(sigma_px=6)
        elapsed.append((time.perf_counter() - start) * 1000)
        assert removed == batch and window.points == n
        assert len(image.png) > 1000
    assert sorted(elapsed)[1] <= 2 * BUDGET_MS, f"update took {elapsed} ms"


def test_heat013_binned_points_travel_as_bytes_and_window_matches():
    rng = np.random.default_rng(13)
    n = 3000
    lon = rng.uniform(DEMO_BBOX[0] - 0.01, DEMO_BBOX[2], n)  # a few west of the city
    lat = rng.uniform(DEMO_BBOX[1], DEMO_BBOX[3], n)
    weight = rng.integers(1, 5, n).astype(float)
    weight[:3] = [np.nan, 0, 900]  # dropped, dropped, clipped to 255
    lon[2], lat[2] = 120.25, 31.7  # inside, so the clipped weight is the first record
    ts = 1_700_000_000.0 + rng.uniform(0, 120, n)
    direct = HeatWindow(HeatRaster(DEMO_BBOX, width=128), window_s=600)
    carried = HeatWindow(HeatRaster(DEMO_BBOX, width=128), window_s=600)
    direct.add(ts, lon, lat, weight)
    idx = carried.raster.pixel_index(lon, lat)
    data = pack_binned(idx, weight)
    keep = (idx >= 0) & (weight > 0)
    assert len(data) == 5 * keep.sum()
    got_idx, got_w = unpack_binned(data)
    assert np.array_equal(got_idx, idx[keep])
    assert got_w[0] == 255
    assert carried.add_binned(ts[keep], got_idx, got_w) == direct.points == keep.sum()
    assert np.array_equal(carried.raster.counts, direct.raster.counts)
    direct.advance(1_700_000_000.0 + 10_000)  # everything expires, the clipped 255 included
    assert direct.points == 0 and not direct.raster.counts.any()
