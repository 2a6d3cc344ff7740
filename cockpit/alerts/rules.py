"""Flood gauge and muck-truck rules: pure state machines with an explicit clock.

Each rule is a frozen config with ``evaluate(state, ..., now) -> (state, events)``. The state is
a small dataclass with ``to_dict``/``from_dict`` (JSON types only) that the caller stores, e.g.
one Redis hash field per gauge or truck, and passes back with the next reading. Durations are
measured on the readings' own timestamps (the data's clock, so a replayed backlog gives the same
answer); ``now`` stamps the events. Readings that are not newer than the last one are ignored,
so out-of-order or redelivered entries change nothing.

Flood (per gauge)
    A situation starts when the level reaches ``warning_m`` (alert ``flood_warning``, moderate)
    and is upgraded in place when it reaches ``danger_m`` (``flood_danger``, severe; same dedup
    key, same alert). It steps down only after the level has stayed below
    ``threshold - hysteresis_m`` for ``hold_s`` seconds, and clears when it steps below warning,
    so a level hovering at a line neither flaps nor re-raises. Rate of rise is a separate
    situation (``flood_rise``): the least-squares slope of the readings in the last
    ``rise_window_s`` (at least 3 readings spanning ``rise_min_span_s``) at or above
    ``rise_m_per_h``; it clears once the slope has stayed below half of that for ``hold_s``.

Muck trucks (per truck)
    - dumping_suspected: loaded and stopped for ``stop_minutes`` outside every building site
      and approved disposal site. Stopped means every ping stays within ``stop_radius_m`` of
      where the stop began; a ping reporting speed < ``stop_speed_kmh`` also counts as stopped
      (GPS drift moves a parked truck's fix). The stop's anchor is its first stopped ping: a
      candidate that began at a ping at driving speed moves to the first slow ping (30 s of
      driving is ~250 m, often another grid), and later slow pings never move it. One alert
      per stop, at the anchor; it does not clear when the truck leaves (the waste stays), an
      officer resolves it.
    - truck_forbidden_zone: one alert per entry into a zone. An exit counts only after the
      truck has been outside the zone for ``zone_exit_s``, so GPS jitter along the edge does not
      make a new entry per ping.
    - truck_hours: moving outside the permitted hours (local time of ``timezone``): one alert
      per forbidden period (e.g. per day from 06:00 to 20:00), not per ping.
    - truck_offline: ``check_offline`` raises one notice when the truck has been silent for
      ``offline_minutes``; the next ping clears it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from shapely.geometry import Point, mapping

from cockpit.alerts.area import distance_m
from cockpit.alerts.model import AlertEvent

_S = TypeVar("_S")
#: Readings further ahead of ``now`` than this are a producer clock fault and are ignored.
MAX_FUTURE_S = 300.0
#: At most this many readings are kept for the rate of rise (keeps the stored state small).
MAX_RISE_READINGS = 240


def _state_from_dict(cls: type[_S], doc: dict[str, Any]) -> _S:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in doc.items() if k in known})


# -- flood ------------------------------------------------------------------------------------

_FLOOD_LEVELS = ("normal", "warning", "danger")
_FLOOD_KIND = {"warning": "flood_warning", "danger": "flood_danger"}
_FLOOD_SEVERITY = {"warning": "moderate", "danger": "severe"}
_FLOOD_ZH = {"warning": "超警戒水位", "danger": "超保证水位"}


@dataclass
class FloodState:
    """What one gauge's rule remembers between readings (JSON types only)."""

    gauge: str
    last_ts: float | None = None
    last_level: float | None = None
    level: str = "normal"
    situation_key: str | None = None
    below_since: float | None = None
    readings: list[list[float]] = field(default_factory=list)
    rise_key: str | None = None
    rise_below_since: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for storage."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> FloodState:
        """Inverse of :meth:`to_dict`."""
        return _state_from_dict(cls, doc)


@dataclass(frozen=True)
class FloodRule:
    """Thresholds of one gauge. ``area`` (GeoJSON, e.g. the catchment) is copied into events."""

    gauge: str
    warning_m: float
    danger_m: float
    rise_m_per_h: float = 0.3
    hysteresis_m: float = 0.05
    hold_s: float = 1800.0
    rise_window_s: float = 3600.0
    rise_min_span_s: float = 900.0
    area: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.danger_m > self.warning_m:
            raise ValueError(
                f"gauge {self.gauge}: danger level {self.danger_m} must be above warning "
                f"level {self.warning_m}"
            )
        if self.hysteresis_m < 0 or self.hold_s < 0 or self.rise_m_per_h <= 0:
            raise ValueError(f"gauge {self.gauge}: hysteresis, hold and rise must be positive")

    def _threshold(self, level: str) -> float:
        return self.danger_m if level == "danger" else self.warning_m

    def _classify(self, level_m: float) -> str:
        if level_m >= self.danger_m:
            return "danger"
        return "warning" if level_m >= self.warning_m else "normal"

    def _event(self, action: str, level: str, key: str, level_m: float, now: float) -> AlertEvent:
        shown = level if level != "normal" else "warning"
        return AlertEvent(
            action=action,
            kind=_FLOOD_KIND[shown],
            severity=_FLOOD_SEVERITY[shown],
            dedup_key=key,
            source_ref=self.gauge,
            at=now,
            title_en=f"Gauge {self.gauge}: water at {level_m:.2f} m "
            + ("(back below warning)" if level == "normal" else f"(above {shown} level)"),
            title_zh=f"水位站 {self.gauge}: 水位 {level_m:.2f} 米"
            + ("(已回落)" if level == "normal" else f"({_FLOOD_ZH[shown]})"),
            geometry=self.area,
            data={"level_m": level_m, "warning_m": self.warning_m, "danger_m": self.danger_m},
        )

    def evaluate(
        self, state: FloodState | None, level_m: float, reading_ts: float, now: float
    ) -> tuple[FloodState, list[AlertEvent]]:
        """Fold one reading into the gauge's state; returns the new state and its events."""
        st = replace(state) if state is not None else FloodState(gauge=self.gauge)
        st.readings = [list(r) for r in st.readings]
        if st.last_ts is not None and reading_ts <= st.last_ts:
            return st, []  # out of order or redelivered: the newer reading already counted
        if reading_ts > now + MAX_FUTURE_S or not np.isfinite(level_m):
            return st, []
        st.last_ts, st.last_level = reading_ts, level_m
        events = self._levels(st, level_m, reading_ts, now)
        events += self._rise(st, level_m, reading_ts, now)
        return st, events

    def _levels(self, st: FloodState, level_m: float, ts: float, now: float) -> list[AlertEvent]:
        target = self._classify(level_m)
        rank = _FLOOD_LEVELS.index
        if st.level == "normal":
            if target == "normal":
                return []
            st.level, st.below_since = target, None
            st.situation_key = f"flood:{self.gauge}:{ts:.0f}"
            return [self._event("raise", target, st.situation_key, level_m, now)]
        key = st.situation_key or f"flood:{self.gauge}:{ts:.0f}"
        if rank(target) > rank(st.level):
            st.level, st.below_since = target, None
            return [self._event("update", target, key, level_m, now)]
        if level_m >= self._threshold(st.level) - self.hysteresis_m:
            st.below_since = None  # back inside the band: the hold starts again
            return []
        if st.below_since is None:
            st.below_since = ts
        if ts - st.below_since < self.hold_s:
            return []
        # held below the line long enough: step down to where the level is now
        st.level, st.below_since = target, None
        if target == "normal":
            st.situation_key = None
            return [self._event("clear", "normal", key, level_m, now)]
        return [self._event("update", target, key, level_m, now)]

    def _rise(self, st: FloodState, level_m: float, ts: float, now: float) -> list[AlertEvent]:
        st.readings.append([ts, level_m])
        st.readings = [r for r in st.readings if r[0] > ts - self.rise_window_s]
        st.readings = st.readings[-MAX_RISE_READINGS:]
        slope = _slope_per_h(st.readings, self.rise_min_span_s)
        if slope is None:
            return []
        data = {"rise_m_per_h": round(slope, 4), "level_m": level_m}
        if st.rise_key is None:
            if slope < self.rise_m_per_h:
                return []
            st.rise_key, st.rise_below_since = f"flood_rise:{self.gauge}:{ts:.0f}", None
            return [self._rise_event("raise", st.rise_key, slope, now, data)]
        if slope >= self.rise_m_per_h / 2:
            st.rise_below_since = None
            return []
        if st.rise_below_since is None:
            st.rise_below_since = ts
        if ts - st.rise_below_since < self.hold_s:
            return []
        key, st.rise_key, st.rise_below_since = st.rise_key, None, None
        return [self._rise_event("clear", key, slope, now, data)]

    def _rise_event(
        self, action: str, key: str, slope: float, now: float, data: dict[str, Any]
    ) -> AlertEvent:
        return AlertEvent(
            action=action,
            kind="flood_rise",
            severity="moderate",
            dedup_key=key,
            source_ref=self.gauge,
            at=now,
            title_en=f"Gauge {self.gauge}: water rising {slope:.2f} m/h",
            title_zh=f"水位站 {self.gauge}: 水位每小时上涨 {slope:.2f} 米",
            geometry=self.area,
            data=data,
        )


def _slope_per_h(readings: list[list[float]], min_span_s: float) -> float | None:
    """Least-squares slope (m/h) of the readings, or None when too few or too close in time."""
    if len(readings) < 3:
        return None
    arr = np.asarray(readings, dtype=np.float64)
    t = arr[:, 0] - arr[0, 0]
    if t[-1] < min_span_s:
        return None
    tc = t - t.mean()
    return float((tc * (arr[:, 1] - arr[:, 1].mean())).sum() / (tc * tc).sum() * 3600.0)


# -- muck trucks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TruckPing:
    """One position report of a truck (``speed_kmh`` None when the feed has none)."""

    truck: str
    ts: float
    lon: float
    lat: float
    speed_kmh: float | None = None
    loaded: bool = False


@dataclass
class TruckState:
    """What one truck's rule remembers between pings (JSON types only)."""

    truck: str
    last_ts: float | None = None
    last_lon: float | None = None
    last_lat: float | None = None
    stop_since: float | None = None
    stop_lon: float | None = None
    stop_lat: float | None = None
    #: the anchor is a ping at driving speed (or of unknown speed): a slow ping replaces it
    anchor_moving: bool = False
    dumping_key: str | None = None
    #: zone id -> [entered_ts, outside_since_ts or None]
    zones: dict[str, list[float | None]] = field(default_factory=dict)
    hours_period: str | None = None
    offline_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for storage."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TruckState:
        """Inverse of :meth:`to_dict`."""
        return _state_from_dict(cls, doc)


def _parse_hhmm(text: str) -> time:
    try:
        hour, minute = text.split(":")
        return time(int(hour), int(minute))
    except ValueError:
        raise ValueError(f"permitted hours need HH:MM, got {text!r}") from None


@dataclass(frozen=True)
class TruckRule:
    """Muck-truck rules shared by all trucks; sites and zones are lon/lat shapely geometries.

    ``sites`` are building sites and approved disposal sites (stopping there is normal);
    ``forbidden_zones`` maps a zone id to its polygon. ``permitted_hours`` is (start, end) in
    local time; a window across midnight such as ("20:00", "06:00") is allowed.
    """

    stop_minutes: float = 15.0
    offline_minutes: float = 10.0
    permitted_hours: tuple[str, str] = ("20:00", "06:00")
    timezone: str = "Asia/Shanghai"
    sites: tuple[shapely.Geometry, ...] = ()
    forbidden_zones: dict[str, shapely.Geometry] = field(default_factory=dict)
    stop_speed_kmh: float = 3.0
    stop_radius_m: float = 50.0
    zone_exit_s: float = 120.0

    def __post_init__(self) -> None:
        start, end = (_parse_hhmm(t) for t in self.permitted_hours)
        if start == end:
            raise ValueError("permitted hours must not start and end at the same time")
        object.__setattr__(self, "_start", start)
        object.__setattr__(self, "_end", end)
        object.__setattr__(self, "_tz", ZoneInfo(self.timezone))
        sites = np.asarray(list(self.sites), dtype=object)
        object.__setattr__(self, "_site_tree", shapely.STRtree(sites) if len(sites) else None)

    # -- helpers --------------------------------------------------------------------------

    def _at_site(self, lon: float, lat: float) -> bool:
        tree = self._site_tree  # type: ignore[attr-defined]
        return tree is not None and len(tree.query(Point(lon, lat), predicate="intersects")) > 0

    def forbidden_period(self, ts: float) -> str | None:
        """Key of the forbidden period containing ``ts`` (its local start), None if permitted.

        A forbidden period runs from the end of one permitted window to the start of the
        next, so it always begins at the most recent local ``end`` time.
        """
        local = datetime.fromtimestamp(ts, self._tz)  # type: ignore[attr-defined]
        start, end = self._start, self._end  # type: ignore[attr-defined]
        now_t = local.time().replace(tzinfo=None)
        # a window across midnight (start > end) is permitted outside [end, start)
        permitted = start <= now_t < end if start < end else not end <= now_t < start
        if permitted:
            return None
        began = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        if began > local:
            began -= timedelta(days=1)
        return began.strftime("%Y-%m-%dT%H:%M%z")

    def _event(
        self,
        action: str,
        kind: str,
        severity: str,
        key: str,
        truck: str,
        now: float,
        lon: float,
        lat: float,
        en: str,
        zh: str,
        data: dict[str, Any] | None = None,
    ) -> AlertEvent:
        return AlertEvent(
            action=action,
            kind=kind,
            severity=severity,
            dedup_key=key,
            source_ref=truck,
            at=now,
            title_en=en,
            title_zh=zh,
            geometry=mapping(Point(lon, lat)),
            data=data or {},
        )

    # -- rules ----------------------------------------------------------------------------

    def evaluate(
        self, state: TruckState | None, ping: TruckPing, now: float
    ) -> tuple[TruckState, list[AlertEvent]]:
        """Fold one ping into the truck's state; returns the new state and its events."""
        st = replace(state) if state is not None else TruckState(truck=ping.truck)
        st.zones = {z: list(v) for z, v in st.zones.items()}
        if st.last_ts is not None and ping.ts <= st.last_ts:
            return st, []
        if ping.ts > now + MAX_FUTURE_S:
            return st, []
        events: list[AlertEvent] = []
        if st.offline_key is not None:
            events.append(
                self._event(
                    "clear",
                    "truck_offline",
                    "info",
                    st.offline_key,
                    ping.truck,
                    now,
                    ping.lon,
                    ping.lat,
                    f"Truck {ping.truck} is reporting again",
                    f"渣土车 {ping.truck} 已恢复上线",
                )
            )
            st.offline_key = None
        moved = (
            st.last_lon is not None
            and distance_m(st.last_lon, st.last_lat, ping.lon, ping.lat) >= self.stop_radius_m
        )
        slow = ping.speed_kmh is not None and ping.speed_kmh < self.stop_speed_kmh
        events += self._stop(st, ping, slow, now)
        events += self._zones(st, ping, now)
        moving = (ping.speed_kmh is not None and ping.speed_kmh >= self.stop_speed_kmh) or (
            ping.speed_kmh is None and moved
        )
        events += self._hours(st, ping, moving, now)
        st.last_ts, st.last_lon, st.last_lat = ping.ts, ping.lon, ping.lat
        return st, events

    def _stop(self, st: TruckState, ping: TruckPing, slow: bool, now: float) -> list[AlertEvent]:
        if not ping.loaded:
            st.stop_since = st.stop_lon = st.stop_lat = st.dumping_key = None
            st.anchor_moving = False
            return []
        near = st.stop_lon is not None and (
            distance_m(st.stop_lon, st.stop_lat, ping.lon, ping.lat) < self.stop_radius_m
        )
        restart = st.stop_since is None or not (near or slow)
        if restart or (slow and st.anchor_moving and st.dumping_key is None):
            # a new stop candidate begins here; or the truck has just slowed down, and the stop
            # is where it stands now, not where the last ping at driving speed was
            st.stop_since, st.stop_lon, st.stop_lat, st.dumping_key = (
                ping.ts,
                ping.lon,
                ping.lat,
                None,
            )
            st.anchor_moving = not slow
            return []
        if st.dumping_key is not None or ping.ts - st.stop_since < self.stop_minutes * 60:
            return []
        if self._at_site(st.stop_lon, st.stop_lat):
            return []
        st.dumping_key = f"dumping_suspected:{ping.truck}:{st.stop_since:.0f}"
        minutes = (ping.ts - st.stop_since) / 60
        return [
            self._event(
                "raise",
                "dumping_suspected",
                "moderate",
                st.dumping_key,
                ping.truck,
                now,
                st.stop_lon,
                st.stop_lat,
                f"Loaded truck {ping.truck} stopped {minutes:.0f} min outside any site",
                f"重载渣土车 {ping.truck} 在场外停留 {minutes:.0f} 分钟, 疑似偷倒",
                {"stop_since": st.stop_since},
            )
        ]

    def _zones(self, st: TruckState, ping: TruckPing, now: float) -> list[AlertEvent]:
        events = []
        here = Point(ping.lon, ping.lat)
        for zone_id, zone in self.forbidden_zones.items():
            inside = zone.intersects(here)
            mark = st.zones.get(zone_id)
            if inside:
                if mark is None:
                    st.zones[zone_id] = [ping.ts, None]
                    key = f"truck_forbidden_zone:{ping.truck}:{zone_id}:{ping.ts:.0f}"
                    events.append(
                        self._event(
                            "raise",
                            "truck_forbidden_zone",
                            "moderate",
                            key,
                            ping.truck,
                            now,
                            ping.lon,
                            ping.lat,
                            f"Truck {ping.truck} entered forbidden zone {zone_id}",
                            f"渣土车 {ping.truck} 驶入禁行区 {zone_id}",
                            {"zone": zone_id},
                        )
                    )
                else:
                    mark[1] = None
            elif mark is not None:
                if mark[1] is None:
                    mark[1] = ping.ts
                elif ping.ts - mark[1] >= self.zone_exit_s:
                    del st.zones[zone_id]  # truly left: the next entry is a new one
        return events

    def _hours(self, st: TruckState, ping: TruckPing, moving: bool, now: float) -> list[AlertEvent]:
        if not moving:
            return []
        period = self.forbidden_period(ping.ts)
        if period is None or period == st.hours_period:
            return []
        st.hours_period = period
        key = f"truck_hours:{ping.truck}:{period}"
        start, end = self.permitted_hours
        return [
            self._event(
                "raise",
                "truck_hours",
                "minor",
                key,
                ping.truck,
                now,
                ping.lon,
                ping.lat,
                f"Truck {ping.truck} moving outside permitted hours {start}-{end}",
                f"渣土车 {ping.truck} 在允许时段 {start}-{end} 外行驶",
                {"period": period},
            )
        ]

    def check_offline(self, state: TruckState, now: float) -> tuple[TruckState, list[AlertEvent]]:
        """One offline notice when the truck has been silent for ``offline_minutes``."""
        st = replace(state)
        if st.last_ts is None or st.offline_key is not None:
            return st, []
        if now - st.last_ts < self.offline_minutes * 60:
            return st, []
        st.offline_key = f"truck_offline:{st.truck}:{st.last_ts:.0f}"
        minutes = (now - st.last_ts) / 60
        return st, [
            self._event(
                "raise",
                "truck_offline",
                "info",
                st.offline_key,
                st.truck,
                now,
                st.last_lon,
                st.last_lat,
                f"Truck {st.truck} silent for {minutes:.0f} min",
                f"渣土车 {st.truck} 已离线 {minutes:.0f} 分钟",
            )
        ]
