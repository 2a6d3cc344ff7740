"""Demo feeds for all four input streams. Same seed, same feed.

Every generator takes the simulated time ``t`` (epoch seconds) from its caller and never reads
the clock; only :func:`run_simulator` and :func:`backfill` do. Local time is China Standard Time
(UTC+8), which drives the daily incident cycle, the rain days and the trucks' night shifts.

- :class:`IncidentSimulator`: incidents cluster in hotspots that drift through the day and follow
  a daily cycle, with the category weights below. A share carries Chinese ``text``, ``address``
  and ``reporter`` (a tiny deterministic share carries hostile-looking text such as
  ``<script>alert(1)</script>``, so the UI's escaping is exercised). :meth:`IncidentSimulator.emit`
  also emits **status updates** of earlier incidents: an update is an entry with the *same*
  ``id`` as an earlier incident and a ``status`` other than ``new`` (``dispatched``, then
  ``handling``, then ``resolved``); it repeats the incident's category, place and severity.
- :class:`GaugeSimulator`: one reading per gauge; rain events per street make levels rise and
  fall (a linear-reservoir response); some events pass warning, a few danger, some hover at the
  warning level. :meth:`GaugeSimulator.rain_events` is the ground truth.
- :class:`TruckSimulator`: muck trucks work night shifts within the permitted hours, loaded from a
  building site to a disposal site and empty back; a few planted trucks dump illegally, cross a
  forbidden zone, drive outside the permitted hours or go silent. :meth:`TruckSimulator.planted`
  is the ground truth.
- :class:`SurveySimulator`: safety and satisfaction answers with a bias per community.
"""

from __future__ import annotations

import bisect
import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import redis
import shapely
from shapely import LineString, Point

from cockpit.areastore import Geography
from cockpit.contract import GAUGES, INCIDENTS, SURVEYS, TRUCKS
from geo.reference import M_PER_DEG_LAT, M_PER_DEG_LON, ReferenceData

# Share of each category in the feed (dispute and hotline dominate, as in DOMAIN.md's figures).
CATEGORY_WEIGHTS = {
    "dispute": 0.22, "public_security": 0.10, "hotline": 0.30, "fire_hazard": 0.06,
    "environment": 0.10, "traffic": 0.09, "petition": 0.04, "flood": 0.02, "dumping": 0.03,
    "other": 0.04,
}  # fmt: skip
SEVERITY_WEIGHTS = (0.45, 0.35, 0.15, 0.05)
STREAM_MAXLEN = 2_000_000
ALL_FEEDS: frozenset[str] = frozenset({"incidents", "gauges", "trucks", "surveys"})
#: China Standard Time offset; local time drives daily cycles and truck shifts.
UTC_OFFSET_S = 8 * 3600
GAUGE_INTERVAL_S = 60.0
TRUCK_INTERVAL_S = 30.0


def local_hour(t: float) -> float:
    """Hour of day (0-24, China time) at epoch seconds ``t``."""
    return ((t + UTC_OFFSET_S) / 3600) % 24


def _local_day(t: float) -> int:
    return int((t + UTC_OFFSET_S) // 86400)


def _day_start(day: int) -> float:
    """Epoch seconds of local midnight starting ``day``."""
    return day * 86400.0 - UTC_OFFSET_S


# -- incidents -------------------------------------------------------------------------------

SHARE_TEXT = 0.6
SHARE_ADDRESS = 0.5
SHARE_REPORTER = 0.3
SHARE_HOSTILE = 0.002
#: Share of new incidents whose progress is followed with status updates.
SHARE_TRACKED = 0.5
#: Most updates waiting at once; beyond it new incidents are not followed (bounded memory).
MAX_PENDING_UPDATES = 200_000

_TEXTS: dict[str, tuple[str, ...]] = {
    "dispute": ("邻里因噪音问题发生纠纷，双方情绪激动", "楼上漏水引发邻里矛盾，要求调解",
                "租户与房东因押金退还产生纠纷", "小区停车位归属争执，需社区协调"),
    "public_security": ("夜间有可疑人员在小区周边徘徊", "电动车电瓶被盗，请求处理",
                        "街面有人聚众争吵，存在治安隐患"),
    "hotline": ("市民来电反映路灯损坏多日未修", "来电反映小区供水压力不足",
                "市民反映公交站台破损", "来电咨询老旧小区改造进度"),
    "fire_hazard": ("楼道内堆放杂物，堵塞消防通道", "电动车在楼道内充电，存在火灾隐患",
                    "沿街商铺私拉电线"),
    "environment": ("餐饮店油烟扰民", "河道水面漂浮垃圾较多", "工地夜间施工噪音扰民"),
    "traffic": ("路口信号灯故障，车辆拥堵", "机动车占用人行道停放", "道路出现坑洼，影响通行"),
    "petition": ("群众反映征地补偿问题", "多名居民联名反映物业服务问题"),
    "flood": ("下穿通道积水较深，车辆无法通行", "小区地下车库进水", "河道水位上涨明显"),
    "dumping": ("夜间有渣土车在路边倾倒建筑垃圾", "农田旁发现大量建筑垃圾"),
    "other": ("群众反映其他事项，需进一步核实", "共享单车乱停放"),
}  # fmt: skip
_HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<b>加粗</b> & 'quoted' \"text\" </div>",
    "javascript:alert(document.cookie)",
)
_ROADS = ("锡澄路", "惠山大道", "钱皋路", "堰新路", "洛宁路", "玉祁路", "前洲路", "长安路",
          "人民路", "中山路", "解放路", "凤宾路", "吴桥路", "通江大道")  # fmt: skip
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_SOURCES: dict[str, tuple[str, ...]] = {
    "hotline": ("hotline",),
    "public_security": ("police", "video_ai", "patrol"),
    "petition": ("petition",),
}
_DEFAULT_SOURCES = ("patrol", "hotline", "video_ai")
_NEXT_STATUS = {"new": "dispatched", "dispatched": "handling", "handling": "resolved"}
#: Minutes from one status to the next (uniform range).
_STATUS_DELAY_MIN = {"dispatched": (2, 20), "handling": (5, 60), "resolved": (10, 180)}


@dataclass
class Incident:
    """One incident entry: a new incident, or (``status`` not ``new``) an update of one."""

    id: str
    category: str
    lat: float
    lon: float
    severity: int
    status: str = "new"
    source: str = "patrol"
    text: str = ""
    address: str = ""
    reporter: str = ""

    def fields(self, ts_ms: int) -> dict[str, str]:
        """The stream entry at ``ts_ms``; optional text fields only when present."""
        out = {
            "id": self.id,
            "ts": str(ts_ms),
            "category": self.category,
            "lat": f"{self.lat:.6f}",
            "lon": f"{self.lon:.6f}",
            "severity": str(self.severity),
            "status": self.status,
            "source": self.source,
        }
        for name in ("text", "address", "reporter"):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


class IncidentSimulator:
    """Generates incidents; ``batch(n, hour)`` and ``emit(n, t)`` are deterministic for a seed
    and a sequence of calls."""

    def __init__(
        self, geo: Geography, seed: int = 7, hotspots: int = 12, id_prefix: str = "sim"
    ) -> None:
        self.geo = geo
        self.id_prefix = f"{id_prefix}-{seed}"
        self.rng = np.random.default_rng(seed)
        self.seq = 0
        self.seed = seed
        grids = geo.areas.grids
        centroids = grids.geometry.representative_point()
        self.cx = centroids.x.to_numpy()
        self.cy = centroids.y.to_numpy()
        picks = self.rng.choice(len(grids), size=min(hotspots, len(grids)), replace=False)
        self.hot_x, self.hot_y = self.cx[picks], self.cy[picks]
        self.hot_phase = self.rng.uniform(0, 2 * math.pi, len(picks))
        self.categories = np.array(list(CATEGORY_WEIGHTS))
        self.cat_p = np.array(list(CATEGORY_WEIGHTS.values()))
        self.cat_p /= self.cat_p.sum()
        # a separate stream of randomness for text and updates, so adding them left the
        # places and categories of a seed unchanged
        self.text_rng = np.random.default_rng([seed, 0x7E27])
        frame = geo.areas.frame
        table = geo.areas.grid_ancestors_table().reindex(geo.grid_ids)
        self.grid_street_zh = [str(frame.at[s, "name_zh"]) if s else "" for s in table["street"]]
        self.grid_comm_zh = [str(frame.at[c, "name_zh"]) if c else "" for c in table["community"]]
        self._pending: list[tuple[float, int, Incident]] = []  # (due t, tie-break, update)
        self._tie = 0

    @staticmethod
    def daily_factor(hour: float) -> float:
        """Relative incident rate by hour of day: quiet at 4 am, busiest around 10 am and 8 pm."""
        return (
            0.35
            + 0.65
            * (0.55 * math.exp(-((hour - 10) ** 2) / 8) + 0.45 * math.exp(-((hour - 20) ** 2) / 6))
            / 0.55
        )

    def batch(self, n: int, hour: float) -> list[Incident]:
        """``n`` new incidents at time of day ``hour``: 60% near hotspots, the rest anywhere."""
        rng = self.rng
        hot = rng.random(n) < 0.6
        which = rng.integers(0, len(self.hot_x), n)
        drift = 0.02 * np.sin(2 * math.pi * hour / 24 + self.hot_phase[which])
        spread = 0.006
        gx = rng.integers(0, len(self.cx), n)
        lon = np.where(hot, self.hot_x[which] + drift, self.cx[gx])
        lat = np.where(hot, self.hot_y[which] - drift / 2, self.cy[gx])
        lon = lon + rng.normal(0, spread, n)
        lat = lat + rng.normal(0, spread, n)
        # keep points inside the city: a point outside is moved to its grid centroid draw
        pos = self.geo.locator.locate(lon, lat)
        out = pos < 0
        lon[out], lat[out] = self.cx[gx[out]], self.cy[gx[out]]
        pos[out] = gx[out]
        cats = rng.choice(self.categories, size=n, p=self.cat_p)
        sev = rng.choice(4, size=n, p=SEVERITY_WEIGHTS) + 1
        start = self.seq
        self.seq += n
        incidents = []
        for k in range(n):
            inc = Incident(f"{self.id_prefix}-{start + k}", str(cats[k]), float(lat[k]),
                           float(lon[k]), int(sev[k]))  # fmt: skip
            self._describe(inc, int(pos[k]))
            incidents.append(inc)
        return incidents

    def _describe(self, inc: Incident, grid_pos: int) -> None:
        """Source, and on a share of incidents text, address and reporter (all Chinese)."""
        rng = self.text_rng
        sources = _SOURCES.get(inc.category, _DEFAULT_SOURCES)
        inc.source = sources[int(rng.integers(len(sources)))]
        u = rng.random(4)
        if u[0] < SHARE_TEXT:
            texts = _TEXTS[inc.category]
            inc.text = texts[int(rng.integers(len(texts)))]
            if u[3] < SHARE_HOSTILE / SHARE_TEXT:
                inc.text = _HOSTILE[int(rng.integers(len(_HOSTILE)))] + inc.text
        if u[1] < SHARE_ADDRESS:
            road = _ROADS[int(rng.integers(len(_ROADS)))]
            inc.address = (
                f"{self.grid_street_zh[grid_pos]}{self.grid_comm_zh[grid_pos]} "
                f"{road}{int(rng.integers(1, 400))}号"
            )
        # hotline callers leave a name and number twice as often
        if u[2] < SHARE_REPORTER * (2 if inc.source == "hotline" else 1):
            name = _SURNAMES[int(rng.integers(len(_SURNAMES)))] + ("先生", "女士")[int(u[3] * 2)]
            phone = f"1{int(rng.integers(30, 90))}{int(rng.integers(0, 10**8)):08d}"
            inc.reporter = f"{name} {phone}"

    def emit(self, n: int, t: float) -> list[Incident]:
        """Status updates due by ``t`` (oldest first), then ``n`` new incidents at ``t``.

        Half of the new incidents are followed: dispatched after 2-20 min, handling 5-60 min
        later, resolved 10-180 min after that.
        """
        due: list[Incident] = []
        while self._pending and self._pending[0][0] <= t:
            _, _, update = heapq.heappop(self._pending)
            due.append(update)
            self._schedule(update, t)
        fresh = self.batch(n, local_hour(t))
        follow = self.text_rng.random(len(fresh)) < SHARE_TRACKED
        for inc, yes in zip(fresh, follow, strict=True):
            if yes:
                self._schedule(inc, t)
        return due + fresh

    def _schedule(self, inc: Incident, t: float) -> None:
        nxt = _NEXT_STATUS.get(inc.status)
        if nxt is None or len(self._pending) >= MAX_PENDING_UPDATES:
            return
        lo, hi = _STATUS_DELAY_MIN[nxt]
        at = t + 60.0 * float(self.text_rng.uniform(lo, hi))
        update = Incident(inc.id, inc.category, inc.lat, inc.lon, inc.severity, status=nxt,
                          source=inc.source)  # fmt: skip
        self._tie += 1
        heapq.heappush(self._pending, (at, self._tie, update))


# -- gauges ----------------------------------------------------------------------------------

#: Rain event classes: share, and where the peak level lands.
_RAIN_CLASSES = (("light", 0.35), ("warning", 0.30), ("danger", 0.15), ("hover", 0.20))
#: Plum-rain season: about three showers a day over each street.
RAIN_EVENTS_PER_STREET_DAY = 3.0


@dataclass(frozen=True)
class RainEvent:
    """Rain over one street: ``intensity`` mm/h from ``start_t`` to ``end_t``; ``kind`` says
    where the gauges' peak was planted (light: below warning; warning: between warning and
    danger; danger: above danger; hover: within a few cm of warning)."""

    street: str
    start_t: float
    end_t: float
    intensity: float
    kind: str
    #: per gauge id in the street: rise amplitude (m) of the linear-reservoir response
    amplitude: tuple[tuple[str, float], ...] = field(default=(), repr=False)


class GaugeSimulator:
    """Water levels that rise and fall with rain. ``readings(t)`` is a pure function of ``t``."""

    def __init__(self, reference: ReferenceData, seed: int = 7) -> None:
        g = reference.gauges
        self.seed = seed
        self.ids = [str(i) for i in g.index]
        self.street = dict(zip(self.ids, g["street"], strict=True))
        self.normal = dict(zip(self.ids, g["normal_m"].astype(float), strict=True))
        self.warning = dict(zip(self.ids, g["warning_m"].astype(float), strict=True))
        self.danger = dict(zip(self.ids, g["danger_m"].astype(float), strict=True))
        self.streets = sorted(set(self.street.values()))
        rng = np.random.default_rng([seed, 0x6A6E])
        # recession time constant (s): small channels answer fast, big rivers slowly
        self.tau = {i: float(rng.uniform(0.8, 2.0)) * 3600 for i in self.ids}
        self.phase = {i: rng.uniform(0, 2 * math.pi, 3) for i in self.ids}
        self._days: dict[int, list[RainEvent]] = {}

    def _events_of_day(self, day: int) -> list[RainEvent]:
        events = self._days.get(day)
        if events is not None:
            return events
        rng = np.random.default_rng([self.seed, day, 0x4A1])
        events = []
        kinds = [k for k, _ in _RAIN_CLASSES]
        shares = np.array([p for _, p in _RAIN_CLASSES])
        for street in self.streets:
            for _ in range(int(rng.poisson(RAIN_EVENTS_PER_STREET_DAY))):
                kind = kinds[int(rng.choice(len(kinds), p=shares))]
                start = _day_start(day) + float(rng.uniform(0, 86400))
                hours = float(rng.uniform(3.0, 5.0) if kind == "hover" else rng.uniform(1.0, 4.0))
                intensity = float(rng.uniform(4, 12) if kind == "light" else rng.uniform(12, 45))
                amps = []
                for gid in self.ids:
                    if self.street[gid] != street:
                        continue
                    normal, warn, dang = self.normal[gid], self.warning[gid], self.danger[gid]
                    peak = {
                        "light": normal + rng.uniform(0.2, 0.7) * (warn - normal),
                        "warning": warn + rng.uniform(0.15, 0.85) * (dang - warn),
                        "danger": dang + rng.uniform(0.05, 0.35),
                        "hover": warn + rng.uniform(-0.03, 0.03),
                    }[kind]
                    fill = 1 - math.exp(-hours * 3600 / self.tau[gid])
                    amps.append((gid, float((peak - normal) / fill)))
                events.append(
                    RainEvent(street, start, start + hours * 3600, intensity, kind, tuple(amps))
                )
        if len(self._days) > 8:
            self._days.pop(min(self._days))
        self._days[day] = events
        return events

    def rain_events(self, t0: float, t1: float) -> list[RainEvent]:
        """Ground truth: rain events overlapping [t0, t1], by start time."""
        out = []
        for day in range(_local_day(t0) - 1, _local_day(t1) + 1):
            out.extend(e for e in self._events_of_day(day) if e.start_t <= t1 and e.end_t >= t0)
        return sorted(out, key=lambda e: (e.start_t, e.street))

    def _near_events(self, t: float) -> list[RainEvent]:
        # a response decays by e^-10 within 20 h of the rain's end: 3 days cover every effect
        day = _local_day(t)
        return [e for d in (day - 2, day - 1, day) for e in self._events_of_day(d)
                if e.start_t <= t]  # fmt: skip

    def level(self, gauge: str, t: float, events: list[RainEvent] | None = None) -> float:
        """Water level (m) of ``gauge`` at ``t``: normal + rain response + small waves."""
        tau = self.tau[gauge]
        rise = 0.0
        for e in events if events is not None else self._near_events(t):
            amp = dict(e.amplitude).get(gauge)
            if amp is None:
                continue
            if t <= e.end_t:
                rise += amp * (1 - math.exp(-(t - e.start_t) / tau))
            else:
                filled = amp * (1 - math.exp(-(e.end_t - e.start_t) / tau))
                rise += filled * math.exp(-(t - e.end_t) / tau)
        p = self.phase[gauge]
        waves = (
            0.012 * math.sin(2 * math.pi * t / 660 + p[0])
            + 0.008 * math.sin(2 * math.pi * t / 2220 + p[1])
            + 0.03 * math.sin(2 * math.pi * t / 86400 + p[2])
        )
        return self.normal[gauge] + rise + waves

    def rain_last_hour(self, gauge: str, t: float, events: list[RainEvent] | None = None) -> float:
        """Rain (mm) over the gauge's street in the hour before ``t``."""
        street = self.street[gauge]
        total = 0.0
        for e in events if events is not None else self._near_events(t):
            if e.street == street:
                overlap = min(t, e.end_t) - max(t - 3600, e.start_t)
                total += e.intensity * max(0.0, overlap) / 3600
        return total

    def readings(self, t: float) -> list[dict[str, str]]:
        """One reading per gauge at ``t`` (meant to be called every 60 simulated seconds)."""
        events = self._near_events(t)
        ts = str(int(t * 1000))
        return [
            {
                "gauge": gid,
                "ts": ts,
                "level_m": f"{self.level(gid, t, events):.3f}",
                "rain_mm": f"{self.rain_last_hour(gid, t, events):.1f}",
            }
            for gid in self.ids
        ]


# -- trucks ----------------------------------------------------------------------------------

#: Share of trucks planted with each violation per shift (at least one each).
SHARE_PLANTED = 0.075
PLANTED_KINDS = ("dumping", "forbidden_zone", "off_hours", "silent")
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class Planted:
    """Ground truth of one planted truck situation, for tests of alert rules.

    ``kind``: ``dumping`` (stopped loaded >= 30 min at ``lat``/``lon``, outside every site, then
    drives off empty), ``forbidden_zone`` (inside zone ``detail`` from ``start_t`` to ``end_t``),
    ``off_hours`` (driving between ``start_t`` and ``end_t``, outside the permitted hours),
    ``silent`` (no pings strictly between ``start_t`` and ``end_t``, though it keeps driving).
    """

    truck: str
    kind: str
    start_t: float
    end_t: float
    lat: float = float("nan")
    lon: float = float("nan")
    detail: str = ""


@dataclass
class _Track:
    """A truck's shift: piecewise-linear positions between knots; interval k is
    [times[k], times[k+1]] with ``loaded[k]`` and ``speed[k]``."""

    times: list[float] = field(default_factory=list)
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    loaded: list[int] = field(default_factory=list)
    speed: list[float] = field(default_factory=list)
    silent: tuple[float, float] | None = None

    def go(self, t: float, x: float, y: float, loaded: int, speed: float) -> None:
        """Append a knot at ``t``; the interval leading to it has ``loaded`` and ``speed``."""
        if not self.times:
            self.times.append(t)
            self.xs.append(x)
            self.ys.append(y)
            return
        self.loaded.append(loaded)
        self.speed.append(speed)
        self.times.append(t)
        self.xs.append(x)
        self.ys.append(y)

    @property
    def t(self) -> float:
        return self.times[-1]

    @property
    def end(self) -> tuple[float, float]:
        return self.xs[-1], self.ys[-1]

    def at(self, t: float) -> tuple[float, float, int, float] | None:
        """(lon, lat, loaded, speed) at ``t``, or None when not active or silent."""
        if not self.times or t < self.times[0] or t > self.times[-1] or len(self.times) < 2:
            return None
        if self.silent and self.silent[0] < t < self.silent[1]:
            return None
        k = min(bisect.bisect_right(self.times, t) - 1, len(self.loaded) - 1)
        t0, t1 = self.times[k], self.times[k + 1]
        f = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        x = self.xs[k] + f * (self.xs[k + 1] - self.xs[k])
        y = self.ys[k] + f * (self.ys[k + 1] - self.ys[k])
        return x, y, self.loaded[k], self.speed[k]


def _metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot((b[0] - a[0]) * M_PER_DEG_LON, (b[1] - a[1]) * M_PER_DEG_LAT)


class TruckSimulator:
    """Muck trucks on night shifts. ``positions(t)`` is a pure function of ``t``.

    A shift runs inside the permitted hours (``reference.truck_hours``); each truck loads at its
    building site (reported loaded while loading), drives loaded at ~30 km/h along a two-segment
    route to a disposal site (reported empty while unloading) and drives back empty, until its
    shift ends; then it parks and sends nothing. Normal routes keep 100 m clear of every forbidden
    zone and stay inside the city. Per shift, ``SHARE_PLANTED`` of the trucks (at least one) are
    planted with each of :data:`PLANTED_KINDS`.
    """

    def __init__(
        self, reference: ReferenceData, geo: Geography, seed: int = 7, n_trucks: int = 40
    ) -> None:
        self.reference = reference
        self.seed = seed
        self.n_trucks = n_trucks
        self.per_kind = max(1, round(SHARE_PLANTED * n_trucks))
        if self.per_kind * len(PLANTED_KINDS) > n_trucks:
            raise ValueError(f"need at least {len(PLANTED_KINDS)} trucks to plant every kind")
        rng = np.random.default_rng([seed, 0x7C])
        plates: list[str] = []
        while len(plates) < n_trucks:
            plate = f"苏B-{_PLATE_LETTERS[int(rng.integers(len(_PLATE_LETTERS)))]}" + str(
                int(rng.integers(1000, 10000))
            )
            if plate not in plates:
                plates.append(plate)
        self.trucks = plates
        self.city = geo.areas.frame.geometry[geo.areas.root_id]
        self.sites = shapely.union_all(
            [*reference.building_sites.geometry, *reference.disposal_sites.geometry]
        )
        self.zones = reference.forbidden_zones
        zone_union = shapely.union_all(list(self.zones.geometry)) if len(self.zones) else None
        clear = zone_union.buffer(100 / M_PER_DEG_LAT) if zone_union is not None else None
        self.load_at = [_xy(p) for p in reference.building_sites.geometry.representative_point()]
        self.unload_at = [_xy(p) for p in reference.disposal_sites.geometry.representative_point()]
        # clean routes (building site, disposal site) -> polyline, and routes via a zone
        self.routes: dict[tuple[int, int], list[tuple[float, float]]] = {}
        self.zone_routes: list[tuple[int, int, str, list[tuple[float, float]]]] = []
        for b, a in enumerate(self.load_at):
            for d, z in enumerate(self.unload_at):
                mid = ((a[0] + z[0]) / 2, (a[1] + z[1]) / 2)
                dx, dy = z[0] - a[0], z[1] - a[1]
                bend = float(rng.uniform(-0.12, 0.12))  # straight-ish: a gentle dog-leg
                way = [a, (mid[0] - dy * bend, mid[1] + dx * bend), z]
                line = LineString(way)
                if self.city.contains(line) and (clear is None or not line.intersects(clear)):
                    self.routes[(b, d)] = way
                if (b, d) not in self.routes:
                    continue  # a planted truck still needs a clean way back
                for zid, zone in zip(self.zones.index, self.zones.geometry, strict=True):
                    via = [a, _xy(zone.representative_point()), z]
                    others = shapely.buffer(
                        np.asarray(self.zones.geometry.drop(zid).values, dtype=object),
                        100 / M_PER_DEG_LAT,
                    )
                    via_line = LineString(via)
                    if (
                        self.city.contains(via_line)
                        and not shapely.intersects(others, via_line).any()
                    ):
                        self.zone_routes.append((b, d, str(zid), via))
        if not self.routes:
            raise ValueError("no building site has a clean route to a disposal site")
        self.route_keys = sorted(self.routes)
        start, end = (_hm(h) for h in reference.truck_hours)
        self.shift_start_h, self.shift_end_h = start, end
        # shift k runs from `start` on local day k to `end` (the next day if it is earlier);
        # the middle of the time off before it starts its span of the clock: 13:00 for
        # 20:00-06:00 (shift k holds from 13:00 of day k), 20:00 of day k - 1 for 04:00-12:00
        end_h = end + (24 if end <= start else 0)
        self._span_starts_h = (end_h + start + 24) / 2 - 24
        self._shifts: dict[int, tuple[list[_Track], list[Planted]]] = {}

    # a shift k starts at the permitted start hour on local day k
    def _shift_index(self, t: float) -> int:
        # each shift holds the clock from the middle of the time off before it to the middle
        # of the time off after it (a planted truck drives up to 100 min outside its hours)
        return _local_day(t - self._span_starts_h * 3600)

    def _shift(self, k: int) -> tuple[list[_Track], list[Planted]]:
        got = self._shifts.get(k)
        if got is not None:
            return got
        rng = np.random.default_rng([self.seed, k, 0x5F])
        order = rng.permutation(self.n_trucks)
        kind_of: dict[int, str] = {}
        for j, kind in enumerate(PLANTED_KINDS):
            for i in order[j * self.per_kind : (j + 1) * self.per_kind]:
                kind_of[int(i)] = kind
        start = _day_start(k) + self.shift_start_h * 3600
        end = _day_start(k) + (self.shift_end_h + (24 if self.shift_end_h <= self.shift_start_h
                                                   else 0)) * 3600  # fmt: skip
        tracks, planted = [], []
        for i in range(self.n_trucks):
            track, truth = self._build(i, kind_of.get(i, ""), start, end,
                                       np.random.default_rng([self.seed, k, i]))  # fmt: skip
            tracks.append(track)
            planted.extend(truth)
        if len(self._shifts) > 4:
            self._shifts.pop(min(self._shifts))
        self._shifts[k] = (tracks, planted)
        return tracks, planted

    def _build(
        self, i: int, kind: str, start: float, end: float, rng: np.random.Generator
    ) -> tuple[_Track, list[Planted]]:
        truck = self.trucks[i]
        v_kmh = float(rng.uniform(26, 34))
        v = v_kmh / 3.6
        if kind == "forbidden_zone" and self.zone_routes:
            b, d, zone_id, via = self.zone_routes[int(rng.integers(len(self.zone_routes)))]
            route = self.routes[(b, d)]
        else:
            b, d = self.route_keys[int(rng.integers(len(self.route_keys)))]
            route = self.routes[(b, d)]
        t0 = start + float(rng.uniform(0, 45)) * 60
        t_end = end - float(rng.uniform(0, 30)) * 60
        truth: list[Planted] = []
        late = False
        if kind == "off_hours":
            if rng.random() < 0.5:
                t0 = start - float(rng.uniform(40, 100)) * 60
                truth.append(Planted(truck, kind, t0, start))
            else:
                late = True
                t_end = end + float(rng.uniform(40, 100)) * 60
        track = _Track()
        track.go(t0, *self.load_at[b], 1, 0.0)
        trip = 0
        planted_trip = 1  # the second loaded trip carries the planted behaviour
        while True:
            dwell_load = float(rng.uniform(8, 15)) * 60
            dwell_unload = float(rng.uniform(5, 10)) * 60
            length = sum(_metres_between(p, q) for p, q in zip(route, route[1:], strict=False))
            special = trip == planted_trip
            cycle = dwell_load + dwell_unload + 2 * length / v
            if special:  # a stop of up to 50 min, or a detour: leave ample room
                cycle = 2 * cycle + 3600
            # a truck starts a cycle only if it ends within the shift; a late off-hours truck
            # keeps going while it is before its late end
            if (track.t >= t_end) if late else (track.t + cycle > t_end):
                break
            track.go(track.t + dwell_load, *self.load_at[b], 1, 0.0)
            if special and kind == "forbidden_zone" and self.zone_routes:
                truth.append(self._drive_via_zone(track, truck, via, zone_id, v, v_kmh))
                self._drive(track, route[::-1], 0, v, v_kmh)
            elif special and kind == "dumping":
                truth.append(self._dump(track, truck, route, v, v_kmh, rng))
            else:
                self._drive(track, route, 1, v, v_kmh)
                track.go(track.t + dwell_unload, *route[-1], 0, 0.0)
                self._drive(track, route[::-1], 0, v, v_kmh)
            if special and kind == "silent":
                # silent from 10 min into the next leg, for 22-40 min, while it drives on
                s0 = track.t + 10 * 60
                track.silent = (s0, s0 + float(rng.uniform(22, 40)) * 60)
                truth.append(Planted(truck, kind, *track.silent))
            trip += 1
        if kind == "silent" and track.silent is not None and track.silent[1] > track.t:
            track.silent = None  # the shift ended first: nothing planted after all
            truth = [p for p in truth if p.kind != "silent"]
        if late:
            truth.append(Planted(truck, kind, end, track.t))
        if kind in ("dumping", "forbidden_zone") and trip <= planted_trip:
            truth = []  # too short a shift to carry it (cannot happen with 10-hour nights)
        return track, truth

    def _drive(
        self,
        track: _Track,
        way: list[tuple[float, float]],
        loaded: int,
        v: float,
        v_kmh: float,
    ) -> None:
        for p, q in zip(way, way[1:], strict=False):
            track.go(track.t + _metres_between(p, q) / v, *q, loaded, v_kmh)

    def _drive_via_zone(
        self,
        track: _Track,
        truck: str,
        via: list[tuple[float, float]],
        zone_id: str,
        v: float,
        v_kmh: float,
    ) -> Planted:
        """A loaded trip through a forbidden zone to the disposal site, then unload."""
        t_start = track.t
        # entry and exit along the route, measured in metres (a local metric plane)
        metric = (M_PER_DEG_LON, M_PER_DEG_LAT)
        line = shapely.transform(LineString(via), lambda c: c * metric)
        zone = shapely.transform(self.zones.geometry[zone_id], lambda c: c * metric)
        dists = [line.project(Point(c)) for c in shapely.get_coordinates(line.intersection(zone))]
        self._drive(track, via, 1, v, v_kmh)
        track.go(track.t + 6 * 60, *via[-1], 0, 0.0)  # unloading
        enter, leave = t_start + min(dists) / v, t_start + max(dists) / v
        zone_pt = via[1]
        return Planted(truck, "forbidden_zone", enter, leave, zone_pt[1], zone_pt[0], zone_id)

    def _dump(
        self,
        track: _Track,
        truck: str,
        route: list[tuple[float, float]],
        v: float,
        v_kmh: float,
        rng: np.random.Generator,
    ) -> Planted:
        """Drive loaded part of the way, stop 32-50 min outside every site, drive back empty."""
        line = LineString(route)
        stop = None
        for f in (*rng.uniform(0.3, 0.7, 8), 0.5):
            p = line.interpolate(float(f), normalized=True)
            if not self.sites.buffer(200 / M_PER_DEG_LAT).covers(p):
                stop, frac = p, float(f)
                break
        if stop is None:  # the whole route hugs sites: stop beside it instead
            stop, frac = line.interpolate(0.5, normalized=True), 0.5
        s = (stop.x, stop.y)
        # the part of the route up to the stop
        target = frac * line.length
        way: list[tuple[float, float]] = [route[0]]
        walked = 0.0
        for p, q in zip(route, route[1:], strict=False):
            seg = math.hypot(q[0] - p[0], q[1] - p[1])
            if walked + seg >= target:
                break
            way.append(q)
            walked += seg
        way.append(s)
        self._drive(track, way, 1, v, v_kmh)
        arrive = track.t
        track.go(arrive + float(rng.uniform(32, 50)) * 60, *s, 1, 0.0)
        leave = track.t
        self._drive(track, way[::-1], 0, v, v_kmh)
        return Planted(truck, "dumping", arrive, leave, s[1], s[0])

    def positions(self, t: float) -> list[dict[str, str]]:
        """A ping per active truck at ``t`` (meant to be called every 30 simulated seconds)."""
        tracks, _ = self._shift(self._shift_index(t))
        ts = str(int(t * 1000))
        out = []
        for truck, track in zip(self.trucks, tracks, strict=True):
            got = track.at(t)
            if got is None:
                continue
            x, y, loaded, speed = got
            if speed > 0:  # a little speedometer wobble, still a function of t
                speed += 2.0 * math.sin(t / 47.0 + self.trucks.index(truck))
            out.append(
                {
                    "truck": truck,
                    "ts": ts,
                    "lat": f"{y:.6f}",
                    "lon": f"{x:.6f}",
                    "speed_kmh": f"{max(speed, 0.0):.1f}",
                    "loaded": str(loaded),
                }
            )
        return out

    def planted_between(self, t0: float, t1: float) -> list[Planted]:
        """Ground truth: planted situations that overlap [t0, t1], by start time."""
        out = []
        for k in range(self._shift_index(t0), self._shift_index(t1) + 1):
            out.extend(p for p in self._shift(k)[1] if p.start_t <= t1 and p.end_t >= t0)
        return sorted(out, key=lambda p: (p.start_t, p.truck))

    @property
    def planted(self) -> list[Planted]:
        """Planted situations of every shift built so far (by the calls made), by start."""
        out = [p for _, truth in self._shifts.values() for p in truth]
        return sorted(out, key=lambda p: (p.start_t, p.truck))


def _xy(p: Point) -> tuple[float, float]:
    return float(p.x), float(p.y)


def _hm(text: str) -> float:
    hh, mm = text.split(":")
    return int(hh) + int(mm) / 60


# -- surveys ---------------------------------------------------------------------------------

SURVEY_PLANTED = 3  # communities clearly better, and as many clearly worse


class SurveySimulator:
    """Safety and satisfaction answers (1-5) with a bias per community; half of the answers
    give ``lat``/``lon`` (a point in the respondent's grid), half give ``grid``."""

    def __init__(self, geo: Geography, seed: int = 7) -> None:
        self.geo = geo
        self.seed = seed
        self.rng = np.random.default_rng([seed, 0x5B])
        self.seq = 0
        table = geo.areas.grid_ancestors_table().reindex(geo.grid_ids)
        self.grid_community = table["community"].to_numpy(dtype=object)
        communities = sorted(set(self.grid_community))
        bias = self.rng.normal(0, 0.25, len(communities))
        picks = self.rng.permutation(len(communities))[: 2 * SURVEY_PLANTED]
        bias[picks[:SURVEY_PLANTED]] = 1.0
        bias[picks[SURVEY_PLANTED:]] = -1.3
        self.community_bias: dict[str, float] = dict(zip(communities, bias.tolist(), strict=True))
        self.better: tuple[str, ...] = tuple(sorted(communities[k] for k in picks[:SURVEY_PLANTED]))
        self.worse: tuple[str, ...] = tuple(sorted(communities[k] for k in picks[SURVEY_PLANTED:]))
        self._grid_bias = np.array([self.community_bias[c] for c in self.grid_community])
        points = geo.areas.grids.geometry.representative_point()
        self.px, self.py = points.x.to_numpy(), points.y.to_numpy()

    def answers(self, n: int, t: float) -> list[dict[str, str]]:
        """``n`` survey answers at ``t``; deterministic for a seed and a sequence of calls."""
        rng = self.rng
        grid = rng.integers(0, len(self.px), n)
        bias = self._grid_bias[grid]
        safety = np.clip(np.rint(3.7 + bias + rng.normal(0, 0.7, n)), 1, 5).astype(int)
        satisfaction = np.clip(np.rint(3.5 + 0.9 * bias + rng.normal(0, 0.8, n)), 1, 5).astype(int)
        # a point near the grid's representative point, kept only if it stays in that grid
        lon = self.px[grid] + rng.normal(0, 0.0008, n)
        lat = self.py[grid] + rng.normal(0, 0.0008, n)
        moved = self.geo.locator.locate(lon, lat) != grid
        lon[moved], lat[moved] = self.px[grid[moved]], self.py[grid[moved]]
        ts = str(int(t * 1000))
        out = []
        for k in range(n):
            entry = {
                "id": f"sv-{self.seed}-{self.seq}",
                "ts": ts,
                "safety": str(safety[k]),
                "satisfaction": str(satisfaction[k]),
            }
            if self.seq % 2 == 0:
                entry["lat"], entry["lon"] = f"{lat[k]:.6f}", f"{lon[k]:.6f}"
            else:
                entry["grid"] = str(self.geo.grid_ids[grid[k]])
            out.append(entry)
            self.seq += 1
        return out


# -- writing to Redis ------------------------------------------------------------------------


def _xadd_all(client: redis.Redis, stream: str, entries: list[dict[str, str]]) -> None:
    if not entries:
        return
    with client.pipeline(transaction=False) as pipe:
        for entry in entries:
            pipe.xadd(stream, entry, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
        pipe.execute()


def run_simulator(
    client: redis.Redis,
    geo: Geography,
    rate: float,
    seed: int,
    stop: Callable[[], bool] = lambda: False,
    limit: int | None = None,
    reference: ReferenceData | None = None,
    feeds: frozenset[str] = ALL_FEEDS,
    speed: float = 1.0,
    start: float | None = None,
    n_trucks: int = 40,
) -> int:
    """Write the demo feeds until stopped; return the number of incident entries written.

    Incidents (new ones and status updates) at ``rate`` per real second, scaled by the daily
    cycle; surveys at ``rate / 20`` per real second; a reading per gauge every 60 simulated
    seconds and a ping per active truck every 30 simulated seconds. Gauges and trucks need
    ``reference`` and are skipped without it.

    Simulated time starts at ``start`` (epoch seconds; default now) and runs ``speed`` times as
    fast as the wall clock, but never ahead of it (so no entry is in the future): with
    ``speed > 1`` give a ``start`` in the past, and the feed replays up to now and then goes on
    in real time. ``limit`` stops after that many incident entries, or, when incidents are not
    among ``feeds``, after that many entries in all.
    """
    unknown = set(feeds) - ALL_FEEDS
    if unknown:
        raise ValueError(f"unknown feed(s) {sorted(unknown)}; expected some of {sorted(ALL_FEEDS)}")
    incidents = IncidentSimulator(geo, seed=seed) if "incidents" in feeds else None
    surveys = SurveySimulator(geo, seed=seed) if "surveys" in feeds else None
    have_ref = reference is not None
    gauges = GaugeSimulator(reference, seed=seed) if have_ref and "gauges" in feeds else None
    trucks = (
        TruckSimulator(reference, geo, seed=seed, n_trucks=n_trucks)
        if have_ref and "trucks" in feeds
        else None
    )
    wall0 = time.time()
    sim0 = wall0 if start is None else float(start)
    next_gauge = next_truck = sim0
    written = total = 0  # incident entries; entries of all feeds
    tick = 0.1
    next_at = time.monotonic()
    carry = carry_surveys = 0.0

    def capped(entries: list[dict[str, str]]) -> list[dict[str, str]]:
        # without incidents the limit counts entries of every feed
        if limit is None or incidents is not None:
            return entries
        return entries[: max(0, limit - total)]

    while not stop() and (limit is None or (written if incidents else total) < limit):
        now = time.time()
        t = min(sim0 + (now - wall0) * speed, now)
        if incidents is not None:
            carry += rate * tick * IncidentSimulator.daily_factor(local_hour(t))
            n = int(carry)
            carry -= n
            batch = incidents.emit(n, t)  # status updates due by t, then n new incidents
            if limit is not None:
                batch = batch[: limit - written]
            ts = int(t * 1000)
            _xadd_all(client, INCIDENTS, [inc.fields(ts) for inc in batch])
            written += len(batch)
            total += len(batch)
        if surveys is not None:
            carry_surveys += rate / 20 * tick
            m = int(carry_surveys)
            carry_surveys -= m
            answers = capped(surveys.answers(m, t)) if m else []
            _xadd_all(client, SURVEYS, answers)
            total += len(answers)
        while gauges is not None and next_gauge <= t:
            readings = capped(gauges.readings(next_gauge))
            _xadd_all(client, GAUGES, readings)
            total += len(readings)
            next_gauge += GAUGE_INTERVAL_S
        while trucks is not None and next_truck <= t:
            pings = capped(trucks.positions(next_truck))
            _xadd_all(client, TRUCKS, pings)
            total += len(pings)
            next_truck += TRUCK_INTERVAL_S
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    return written


def backfill_counts(rate: float, minutes: int, now: float) -> list[int]:
    """Incidents per past minute (oldest first) that a backfill writes."""
    return [
        int(rate * 60 * IncidentSimulator.daily_factor(((now - m * 60) / 3600 + 8) % 24))
        for m in range(minutes, 0, -1)
    ]


def backfill(
    client: redis.Redis,
    geo: Geography,
    rate: float,
    seed: int,
    minutes: int = 60,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the last ``minutes`` of a feed at ``rate``, so a new demo opens on a lived-in city
    rather than an empty one. Incident ids differ from the live feed's (prefix ``hist``)."""
    sim = IncidentSimulator(geo, seed=seed, id_prefix="hist")
    now = time.time()
    written = 0
    for minute, n in zip(range(minutes, 0, -1), backfill_counts(rate, minutes, now), strict=True):
        moment = now - minute * 60
        hour = (moment / 3600 + 8) % 24
        incidents = sim.batch(n, hour)
        ts = (moment + np.sort(sim.rng.uniform(0, 60, n))) * 1000
        with client.pipeline(transaction=False) as pipe:
            for inc, t in zip(incidents, ts, strict=True):
                pipe.xadd(INCIDENTS, inc.fields(int(t)), maxlen=STREAM_MAXLEN, approximate=True)
            pipe.execute()
        written += n
        if progress:
            progress(n)
    return written
