"""The live incident heatmap, computed on the server as one PNG for a ``dl.ImageOverlay``.

dash-leaflet has no heatmap layer (dash-leaflet#240), so the server bins incidents into a pixel
grid that lines up with Leaflet's Web Mercator map, blurs it, colours it and encodes a PNG.

- ``HeatRaster``: the pixel grid over a bbox and its weighted counts. ``add``/``subtract`` take
  points (lon, lat, weight); rows are spaced evenly in Mercator y, because Leaflet stretches an
  ImageOverlay linearly between its corners in projected (Mercator) space, not in latitude.
- ``HeatWindow``: a sliding time window (15 min, 1 h, 24 h) over a raster. It keeps every point's
  pixel index and weight (5 bytes a point) in per-bucket arrays, so an expired bucket is
  subtracted in one vectorised call instead of recounting the window. ``pack_binned`` /
  ``unpack_binned`` carry binned points as bytes between processes (5 bytes a point).
- ``blur``, ``robust_max``, ``quantise``, ``encode_png``: the pure render stages (smooth, pick
  the scale, map to a 256-colour palette, encode a palette PNG), composed by
  ``HeatRaster.render_png``.
- ``heat_layer`` and ``heat_legend``: the dash-leaflet ``ImageOverlay`` that shows a rendered
  PNG (served by cockpit/heat_routes.py) and its legend in English or Chinese.

Counts are integers (severity weights 1-4) kept in int64, and the blur works on integer box sums,
so adding then subtracting a batch returns to exactly zero and a pixel far from every incident
is exactly zero, hence fully transparent. Nothing here imports Redis; Dash is imported only by
the two component builders, so the raster engine runs without it.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

# Leaflet's EPSG:3857 clips latitude here; beyond it Mercator y runs off to infinity.
MAX_MERCATOR_LAT = 85.0511287798
EARTH_RADIUS_M = 6378137.0  # the sphere Leaflet's EPSG:3857 projects on

# Colour ramp stops on the normalised, gamma-corrected value s in [0, 1]: (s, r, g, b, alpha).
# Transparent at zero, yellow, orange, red; alpha rises with s so cold areas barely tint the map.
RAMP_STOPS: tuple[tuple[float, int, int, int, int], ...] = (
    (0.00, 255, 255, 0, 0),
    (0.30, 255, 221, 0, 140),
    (0.65, 255, 140, 0, 200),
    (1.00, 215, 25, 28, 235),
)
LUT_SIZE = 4096  # linear levels before gamma: fine enough that the cold end does not band
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BLUR_PASSES = 3  # three box blurs: within a few per cent of a Gaussian


def mercator_y(lat: np.ndarray | float) -> np.ndarray:
    """Spherical Web Mercator y in radians (multiply by the earth radius for metres)."""
    phi = np.radians(lat)
    return np.log(np.tan(np.pi / 4 + phi / 2))


def inverse_mercator_y(y: np.ndarray | float) -> np.ndarray:
    """Latitude in degrees of a Mercator y in radians."""
    return np.degrees(np.arctan(np.sinh(y)))


@dataclass(frozen=True)
class HeatImage:
    """One rendered heatmap: the PNG and what a legend and the overlay need to show it."""

    png: bytes
    width: int
    height: int
    bounds: list[list[float]]  # [[south, west], [north, east]], Leaflet's order
    scale: float  # smoothed weight per pixel drawn at full red (values above are clipped)
    scale_per_km2: float  # the same on the ground: severity-weighted incidents per km²
    total_weight: int  # sum of weights in the raster (before blur)
    points: int = 0  # points behind it, when the caller knows (HeatWindow.points)

    def data_url(self) -> str:
        """The PNG as a ``data:`` URL, usable directly as an ImageOverlay ``url``."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


class HeatRaster:
    """Weighted point counts on a pixel grid over a bbox, rows spaced in Web Mercator.

    Pixel (row 0, col 0) is the north-west corner. Column ``c`` covers longitudes
    ``west + c*dx .. west + (c+1)*dx``; row ``r`` covers Mercator y ``north_y - r*dy ..
    north_y - (r+1)*dy``. The bbox is closed: points on the east or south edge land in the last
    column or row. Without ``height``, it follows from ``width`` and the Mercator aspect ratio, so
    pixels are square on screen.
    """

    def __init__(
        self, bbox: tuple[float, float, float, float], width: int = 1024, height: int | None = None
    ) -> None:
        west, south, east, north = (float(v) for v in bbox)
        if not (west < east and south < north):
            raise ValueError(f"bbox must be (min_lon, min_lat, max_lon, max_lat), got {bbox}")
        if not (south >= -MAX_MERCATOR_LAT and north <= MAX_MERCATOR_LAT):
            raise ValueError(f"latitudes must lie within ±{MAX_MERCATOR_LAT}, got {bbox}")
        if width < 1:
            raise ValueError("width must be at least 1 pixel")
        self.west, self.south, self.east, self.north = west, south, east, north
        self.y_north = float(mercator_y(north))
        self.y_south = float(mercator_y(south))
        span_x = math.radians(east - west)
        if height is None:
            height = max(1, round(width * (self.y_north - self.y_south) / span_x))
        if height < 1:
            raise ValueError("height must be at least 1 pixel")
        self.width = int(width)
        self.height = int(height)
        self._col_per_deg = self.width / (east - west)
        self._row_per_y = self.height / (self.y_north - self.y_south)
        self.counts = np.zeros((self.height, self.width), dtype=np.int64)

    @property
    def bounds(self) -> list[list[float]]:
        """``[[south, west], [north, east]]``: the ImageOverlay ``bounds``."""
        return [[self.south, self.west], [self.north, self.east]]

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the raster."""
        return self.height, self.width

    def pixel_index(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Flat pixel index ``row * width + col`` of each point; -1 outside the bbox or NaN."""
        lon = np.asarray(lon, dtype=np.float64).ravel()
        lat = np.asarray(lat, dtype=np.float64).ravel()
        if lon.shape != lat.shape:
            raise ValueError("lon and lat must have the same length")
        # NaN fails every comparison, so it drops out here too.
        inside = (lon >= self.west) & (lon <= self.east) & (lat >= self.south) & (lat <= self.north)
        out = np.full(lon.shape, -1, dtype=np.int64)
        keep = np.flatnonzero(inside)
        if keep.size == 0:
            return out
        col = ((lon[keep] - self.west) * self._col_per_deg).astype(np.int64)
        row = ((self.y_north - mercator_y(lat[keep])) * self._row_per_y).astype(np.int64)
        np.minimum(col, self.width - 1, out=col)  # the closed east edge
        np.clip(row, 0, self.height - 1, out=row)  # the closed south edge, and rounding at north
        out[keep] = row * self.width + col
        return out

    def pixel_centre(self, row: int, col: int) -> tuple[float, float]:
        """(lon, lat) of a pixel's centre, the inverse of ``pixel_index``."""
        lon = self.west + (col + 0.5) / self._col_per_deg
        lat = float(inverse_mercator_y(self.y_north - (row + 0.5) / self._row_per_y))
        return lon, lat

    def bin(
        self, lon: np.ndarray, lat: np.ndarray, weight: np.ndarray | int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pixel indices and integer weights of the points that count (inside, not NaN).

        Weights are rounded to integers (severity 1-4) so sums stay exact; a NaN or non-positive
        weight drops the point.
        """
        idx = self.pixel_index(lon, lat)
        w = np.broadcast_to(np.asarray(weight, dtype=np.float64), idx.shape)
        ok = (idx >= 0) & (w > 0)
        return idx[ok], np.rint(w[ok]).astype(np.int64)

    def add(self, lon: np.ndarray, lat: np.ndarray, weight: np.ndarray | int = 1) -> int:
        """Add weighted points; returns how many were inside the bbox and counted."""
        idx, w = self.bin(lon, lat, weight)
        self.add_binned(idx, w)
        return int(idx.size)

    def subtract(self, lon: np.ndarray, lat: np.ndarray, weight: np.ndarray | int = 1) -> int:
        """Remove points added earlier (the same lon, lat, weight); returns how many counted."""
        idx, w = self.bin(lon, lat, weight)
        self.add_binned(idx, -w)
        return int(idx.size)

    accumulate = add  # the name the issue uses

    def add_binned(self, idx: np.ndarray, weight: np.ndarray) -> None:
        """Add weights at flat pixel indices already computed by ``bin`` (negative subtracts)."""
        flat = self.counts.reshape(-1)
        if idx.size > flat.size // 16:
            # Large batches: one bincount over the grid beats scattered writes.
            # Sums of integer-valued floats are exact below 2**53, so the cast loses nothing.
            flat += np.bincount(idx, weights=weight, minlength=flat.size).astype(np.int64)
        else:
            # Small batches: a dense bincount would allocate and add the whole grid for nothing.
            np.add.at(flat, idx, weight)

    def clear(self) -> None:
        """Forget every point."""
        self.counts.fill(0)

    def pixel_area_km2(self) -> float:
        """Ground area of one pixel at the bbox's Mercator centre, in km²."""
        lat_mid = float(inverse_mercator_y((self.y_north + self.y_south) / 2))
        k = math.cos(math.radians(lat_mid)) * EARTH_RADIUS_M / 1000.0  # km per Mercator radian
        dx = math.radians(self.east - self.west) / self.width
        dy = (self.y_north - self.y_south) / self.height
        return dx * dy * k * k

    def render_png(
        self,
        sigma_px: float = 6.0,
        scale: float | None = None,
        quantile: float = 99.5,
        gamma: float = 0.5,
        compress_level: int = 1,
    ) -> HeatImage:
        """Blur, colour and encode the counts as a palette PNG with transparency.

        ``scale`` pins the value drawn at full red (keeps the legend steady between updates);
        without it, the ``quantile`` of the non-zero smoothed pixels is used. ``gamma`` < 1 lifts
        sparse areas so a lone incident stays visible next to a hot spot.
        """
        density = blur(self.counts, sigma_px)
        used = robust_max(density, quantile) if scale is None else float(scale)
        indices = quantise(density, used, gamma)
        return HeatImage(
            png=encode_png(indices, ramp_palette(), compress_level),
            width=self.width,
            height=self.height,
            bounds=self.bounds,
            scale=used,
            scale_per_km2=used / self.pixel_area_km2(),
            total_weight=int(self.counts.sum()),
        )


class HeatWindow:
    """A sliding time window over a ``HeatRaster`` without recounting it.

    Points go into time buckets of ``bucket_s`` seconds; each bucket keeps its points' pixel
    indices (int32) and weights (uint8), 5 bytes a point, so 1,000,000 points cost about 5 MB.
    ``advance(now)`` subtracts every bucket that ended before ``now - window_s``: the raster then
    holds the points of ``[now - window_s, now]``, plus at most one bucket's worth older (the
    bucket straddling the window start stays until it is wholly out). Time is passed in by the
    caller (epoch seconds), so the window is driven by event time and tests need no clock.
    """

    def __init__(self, raster: HeatRaster, window_s: float, bucket_s: float = 60.0) -> None:
        if window_s <= 0 or bucket_s <= 0:
            raise ValueError("window_s and bucket_s must be positive")
        self.raster = raster
        self.window_s = float(window_s)
        self.bucket_s = float(bucket_s)
        self._buckets: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        self._points = 0
        self._start = -math.inf  # points older than this are already out of the window

    @property
    def points(self) -> int:
        """Points currently counted in the raster."""
        return self._points

    def add(
        self, ts: np.ndarray, lon: np.ndarray, lat: np.ndarray, weight: np.ndarray | int = 1
    ) -> int:
        """Count points stamped ``ts`` (epoch seconds); returns how many counted.

        Points outside the bbox, with NaN, or already older than the window are ignored.
        """
        idx = self.raster.pixel_index(lon, lat)
        return self.add_binned(ts, idx, weight)

    def add_binned(
        self, ts: np.ndarray | float, idx: np.ndarray, weight: np.ndarray | int = 1
    ) -> int:
        """``add`` for points already binned on this raster (e.g. by the worker, see
        ``pack_binned``): flat pixel indices, -1 for none. Weights are clipped to 1..255."""
        idx = np.asarray(idx, dtype=np.int64).ravel()
        ts = np.broadcast_to(np.asarray(ts, dtype=np.float64), idx.shape)
        w = np.broadcast_to(np.asarray(weight, dtype=np.float64), idx.shape)
        ok = (idx >= 0) & (idx < self.raster.counts.size) & (w > 0) & (ts >= self._start)
        idx, ts = idx[ok], ts[ok]  # NaN weight or ts failed the comparisons above
        w = np.clip(np.rint(w[ok]), 1, 255)  # stored as uint8: add exactly what expiry removes
        if idx.size == 0:
            return 0
        self.raster.add_binned(idx, w.astype(np.int64))
        bucket = np.floor(ts / self.bucket_s).astype(np.int64)
        # Sort once and split, so a backfill spanning many buckets stays one pass.
        order = np.argsort(bucket, kind="stable")
        bucket = bucket[order]
        idx32 = idx[order].astype(np.int32)
        w8 = w[order].astype(np.uint8)
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], bucket.size]
        for a, b in zip(starts, ends, strict=True):
            self._buckets[int(bucket[a])].append((idx32[a:b], w8[a:b]))
        self._points += int(idx.size)
        return int(idx.size)

    def advance(self, now: float) -> int:
        """Move the window to end at ``now``; subtracts expired buckets, returns points removed."""
        self._start = max(self._start, now - self.window_s)
        first_kept = math.floor(self._start / self.bucket_s)
        expired = [b for b in self._buckets if b < first_kept]
        if not expired:
            return 0
        chunks = [chunk for b in expired for chunk in self._buckets.pop(b)]
        idx = np.concatenate([c[0] for c in chunks]).astype(np.int64)
        w = np.concatenate([c[1] for c in chunks]).astype(np.int64)
        self.raster.add_binned(idx, -w)
        self._points -= int(idx.size)
        return int(idx.size)


# One binned point on the wire or in Redis: flat pixel index and weight, 5 bytes, little-endian.
BINNED_DTYPE = np.dtype([("pixel", "<i4"), ("weight", "u1")])


def pack_binned(idx: np.ndarray, weight: np.ndarray | int = 1) -> bytes:
    """Binned points as bytes (5 a point), e.g. for a worker to APPEND to a per-minute key that
    a renderer reads with ``unpack_binned`` and ``HeatWindow.add_binned``. Drops idx < 0 and
    weights that are not positive; clips weights to 1..255."""
    idx = np.asarray(idx, dtype=np.int64).ravel()
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), idx.shape)
    keep = (idx >= 0) & (w > 0)  # NaN weight fails too
    out = np.empty(int(keep.sum()), dtype=BINNED_DTYPE)
    out["pixel"] = idx[keep]
    out["weight"] = np.clip(np.rint(w[keep]), 1, 255)
    return out.tobytes()


def unpack_binned(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, weight)`` as int64 arrays from ``pack_binned`` bytes."""
    records = np.frombuffer(data, dtype=BINNED_DTYPE)
    return records["pixel"].astype(np.int64), records["weight"].astype(np.int64)


def box_radius(sigma_px: float, passes: int = _BLUR_PASSES) -> int:
    """Half-width of the box whose ``passes``-fold repetition has standard deviation ~``sigma``."""
    if sigma_px <= 0:
        return 0
    width = math.sqrt(12.0 * sigma_px * sigma_px / passes + 1.0)
    return max(1, round((width - 1) / 2))


def _box_pass_rows(part: np.ndarray, buf: np.ndarray, r: int) -> None:
    """In place: each value becomes the sum of the 2r+1 values around it in its row.

    ``buf`` is (h, w + 2r + 1); its first r+1 columns are zero and stay zero under cumsum.
    """
    w = part.shape[1]
    buf[:, r + 1 : r + 1 + w] = part
    buf[:, r + 1 + w :] = 0
    np.cumsum(buf, axis=1, out=buf)
    np.subtract(buf[:, 2 * r + 1 :], buf[:, :w], out=part)


def _box_pass_columns(part: np.ndarray, buf: np.ndarray, r: int) -> None:
    """In place: the same down each column. A loop of row additions, because numpy's cumsum
    along axis 0 is several times slower than adding whole contiguous rows."""
    h = part.shape[0]
    buf[r + 1 : r + 1 + h] = part
    buf[r + 1 + h :] = 0
    for i in range(r + 2, buf.shape[0]):
        np.add(buf[i], buf[i - 1], out=buf[i])
    np.subtract(buf[2 * r + 1 :], buf[:h], out=part)


def blur(counts: np.ndarray, sigma_px: float) -> np.ndarray:
    """Approximately Gaussian blur: three box blurs along rows, then three down columns.

    The box sums run on int64 and are exact, so a pixel farther than ``3 * box_radius`` from
    every point is exactly 0, and the result does not drift with the order points came in.
    Returns float64 smoothed weight per pixel (the total is kept, except what leaves the edges).
    """
    r = box_radius(sigma_px)
    counts = np.asarray(counts)
    if r == 0:
        return counts.astype(np.float64)
    result = np.zeros(counts.shape, dtype=np.float64)
    # Work only on the rows and columns that can be non-zero: a quiet night blurs almost nothing.
    rows = np.flatnonzero(counts.any(axis=1))
    if rows.size == 0:
        return result
    cols = np.flatnonzero(counts.any(axis=0))
    reach = _BLUR_PASSES * r
    r0, r1 = max(0, rows[0] - reach), min(counts.shape[0], rows[-1] + reach + 1)
    c0, c1 = max(0, cols[0] - reach), min(counts.shape[1], cols[-1] + reach + 1)
    part = counts[r0:r1, c0:c1].astype(np.int64)  # a copy: the passes work in place
    norm = float(2 * r + 1) ** (2 * _BLUR_PASSES)
    if float(np.abs(part).sum()) * norm >= 2.0**62:
        part = part.astype(np.float64)  # exact int64 sums would overflow: fall back to floats
    h, w = part.shape
    buf = np.zeros((h, w + 2 * r + 1), dtype=part.dtype)
    for _ in range(_BLUR_PASSES):
        _box_pass_rows(part, buf, r)
    buf = np.zeros((h + 2 * r + 1, w), dtype=part.dtype)
    for _ in range(_BLUR_PASSES):
        _box_pass_columns(part, buf, r)
    np.multiply(part, 1.0 / norm, out=result[r0:r1, c0:c1])
    return result


def robust_max(density: np.ndarray, quantile: float = 99.5) -> float:
    """The ``quantile`` (per cent) of the non-zero values; 0.0 when all are zero.

    One extreme hot spot then does not wash every other area out to pale yellow.
    """
    nonzero = density[density > 0]
    if nonzero.size == 0:
        return 0.0
    return float(np.percentile(nonzero, quantile))


def ramp_palette() -> np.ndarray:
    """256 RGBA colours (uint8, shape (256, 4)): entry 0 fully transparent, 1..255 the ramp."""
    s = np.arange(256, dtype=np.float64) / 255
    stops = np.array(RAMP_STOPS, dtype=np.float64)
    pal = np.empty((256, 4), dtype=np.uint8)
    for ch in range(4):
        pal[:, ch] = np.rint(np.interp(s, stops[:, 0], stops[:, ch + 1])).astype(np.uint8)
    pal[0] = 0  # zero is no colour at all, so the overlay hides nothing where nothing happened
    return pal


def _level_table(gamma: float) -> np.ndarray:
    """Palette entry (uint8) for each of LUT_SIZE linear levels; gamma baked in, so the hot path
    needs no power function."""
    t = np.arange(LUT_SIZE, dtype=np.float64) / (LUT_SIZE - 1)
    table = np.maximum(1, np.ceil(255 * t**gamma)).astype(np.uint8)
    table[0] = 0
    return table


def quantise(density: np.ndarray, scale: float, gamma: float = 0.5) -> np.ndarray:
    """Palette indices (uint8, same shape): 0 where the value is 0, 1..255 for (v/scale)**gamma.

    Any positive value gets at least entry 1, so a lone incident is never dropped; ``scale`` and
    above get 255 (full red).
    """
    if scale <= 0:
        return np.zeros(density.shape, dtype=np.uint8)
    top = LUT_SIZE - 1
    t = np.multiply(density, top / scale)
    np.ceil(t, out=t)
    np.clip(t, 0, top, out=t)
    return _level_table(gamma)[t.astype(np.uint16)]


def colourise(indices: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """RGBA pixels (uint8, shape (h, w, 4)) of palette indices; for checks and other encoders."""
    pal = ramp_palette() if palette is None else palette
    return pal[indices]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(indices: np.ndarray, palette: np.ndarray, compress_level: int = 1) -> bytes:
    """A minimal PNG encoder for an 8-bit palette image with per-entry alpha (PLTE + tRNS).

    One byte a pixel instead of four, and filter type 2 (Up) on every row, because a blurred
    heatmap changes little from one row to the next: against RGBA with filter 0, the PNG is
    about 4x smaller and deflates about 3x faster (see benchmarks/bench_heat.py).
    """
    if indices.ndim != 2 or indices.dtype != np.uint8:
        raise ValueError("encode_png wants a (height, width) uint8 array of palette indices")
    if palette.shape != (256, 4) or palette.dtype != np.uint8:
        raise ValueError("encode_png wants a (256, 4) uint8 RGBA palette")
    h, w = indices.shape
    raw = np.empty((h, 1 + w), dtype=np.uint8)
    raw[:, 0] = 2  # filter type Up: each byte minus the byte above it, modulo 256
    raw[0, 1:] = indices[0]  # the row above the first is zeros
    np.subtract(indices[1:], indices[:-1], out=raw[1:, 1:])  # uint8 wraps, as PNG wants
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)  # 8 bits, palette, deflate, no interlace
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"PLTE", palette[:, :3].tobytes())
        + _png_chunk(b"tRNS", palette[:, 3].tobytes())
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), compress_level))
        + _png_chunk(b"IEND", b"")
    )


def encode_png_rgba(rgba: np.ndarray, compress_level: int = 1) -> bytes:
    """The plainest PNG: 8-bit RGBA, filter type 0 on every row. Kept as the baseline the
    benchmark compares ``encode_png`` with, and for callers that have RGBA already."""
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError("encode_png_rgba wants a (height, width, 4) uint8 array")
    h, w, _ = rgba.shape
    raw = np.zeros((h, 1 + 4 * w), dtype=np.uint8)  # column 0: filter type 0 (None)
    raw[:, 1:] = rgba.reshape(h, 4 * w)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8 bits, RGBA, deflate, no interlace
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), compress_level))
        + _png_chunk(b"IEND", b"")
    )


# -- the map layer and its legend ---------------------------------------------------------------

HEAT_OPACITY = 0.85  # the PNG's own alpha already fades cold areas; this keeps streets readable
_LEGEND_STOPS = (0.0, 0.02, 0.06, 0.12, 0.25, 0.5, 0.75, 1.0)  # value / scale along the bar


def heat_layer(
    layer_id: str | dict, window: str, bounds: list[list[float]], url: str,
    opacity: float = HEAT_OPACITY,
):  # fmt: skip
    """The heatmap as a ``dl.ImageOverlay``: ``url`` is a rendered PNG (``/heat/1h.png?v=...``),
    ``bounds`` its ``[[south, west], [north, east]]``. Not interactive, so clicks reach the
    grids and points below it; a new ``url`` is the only thing an update has to send."""
    import dash_leaflet as dl  # here, not at the top: the raster engine must not need Dash

    return dl.ImageOverlay(
        id=layer_id, url=url, bounds=bounds, opacity=opacity, interactive=False,
        className=f"heat-overlay heat-{window}",
    )  # fmt: skip


def legend_gradient(gamma: float = 0.5) -> str:
    """A CSS ``linear-gradient`` showing what ``render_png`` draws from 0 (left) to the scale."""
    pal = ramp_palette()
    stops = []
    for t in _LEGEND_STOPS:
        k = int(np.ceil(255 * t**gamma)) if t > 0 else 1  # entry 0 is transparent: show entry 1
        r, g, b, a = (int(v) for v in pal[k])
        stops.append(f"rgba({r},{g},{b},{max(a, 40) / 255:.2f}) {t * 100:.0f}%")
    return "linear-gradient(to right, " + ", ".join(stops) + ")"


def format_density(value: float) -> str:
    """A density people can read: two significant digits, no exponent (0.37, 4.2, 120)."""
    if value <= 0:
        return "0"
    digits = max(0, 1 - math.floor(math.log10(value)))
    return f"{round(value, digits):.{digits}f}"


def heat_legend(window: str, scale_per_km2: float, points: int, lang: str = "en"):
    """The heatmap's legend: title with the window, the colour bar from 0 to the value drawn at
    full red (severity-weighted incidents per km²), and how many incidents are counted;
    "no incidents" is said in words, so it never looks like missing data."""
    from dash import html  # here, not at the top: the raster engine must not need Dash

    from cockpit.i18n import t

    title = t("heat_title", lang, window=t(f"heat_window_{window}", lang))
    if points <= 0:
        body = [html.Div(t("heat_none", lang), className="legend-row heat-none")]
    else:
        body = [
            html.Div(className="heat-bar", style={"background": legend_gradient(),
                                                  "height": "10px", "borderRadius": "2px"}),
            html.Div([html.Span("0"),
                      html.Span(t("heat_per_km2", lang, v=format_density(scale_per_km2)),
                                style={"float": "right"})],
                     className="heat-scale"),
            html.Div(t("heat_points", lang, n=points), className="legend-row heat-points"),
        ]  # fmt: skip
    return html.Div([html.Div(title, className="legend-title"), *body], className="heat-legend")
