"""OASIS Common Alerting Protocol 1.2: read, apply to the alert store, and write.

Reading goes through defusedxml with DTDs forbidden, so entity expansion ("billion laughs"),
external entities and external DTDs are refused before anything is expanded or fetched; every
refusal is a :class:`CapError` whose message says why. CAP writes coordinates as ``lat,lon``;
geometry leaves this module in lon/lat (GeoJSON order). Circles (``lat,lon radius_km``) become
polygons of geodesic points (see :func:`cockpit.alerts.area.circle_polygon`); radius 0 is the
point itself.

:func:`apply_cap` turns a message into alert changes: ``Alert`` creates one alert per message
(id from ``cap:<sender>:<identifier>``, so a redelivered message creates nothing), ``Update``
replaces the referenced alert's text, severity and area, ``Cancel`` clears it. References that
match no alert are reported, never raised. Only ``status`` Actual changes alerts; Exercise,
System, Test and Draft are reported as ignored.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - only to *build* XML; parsing is defusedxml
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import shapely
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as _safe_fromstring
from shapely.geometry import Polygon, mapping

from cockpit.alerts.area import as_geometry, circle_polygon, grids_for_area
from cockpit.alerts.model import Alert, alert_id, severity_rank, transition
from geo.areas import AreaSet

NS = "urn:oasis:names:tc:emergency:cap:1.2"
_Q = "{" + NS + "}"
#: A CAP message larger than this is refused before parsing.
MAX_CAP_BYTES = 1_000_000
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
CAP_SEVERITY = {
    "Extreme": "extreme",
    "Severe": "severe",
    "Moderate": "moderate",
    "Minor": "minor",
    "Unknown": "info",
}
_TO_CAP_SEVERITY = {v: k for k, v in CAP_SEVERITY.items()}
#: CAP category -> cockpit category (for escalation times); flood words win over this.
CAP_CATEGORY = {
    "Fire": "fire_hazard",
    "Env": "environment",
    "Transport": "traffic",
    "Security": "public_security",
    "Safety": "public_security",
}
_TO_CAP_CATEGORY = {
    "flood": "Met",
    "fire_hazard": "Fire",
    "environment": "Env",
    "traffic": "Transport",
    "public_security": "Security",
    "dumping": "Env",
}
_FLOOD_WORDS = ("flood", "洪", "涝", "汛")
_TZ = ZoneInfo("Asia/Shanghai")
_HOSTILE = {
    "DTDForbidden": "a document type declaration (DTD) is not allowed in CAP; DTDs carry "
    "entity expansion (billion laughs) and external entities or files",
    "EntitiesForbidden": "entity declarations are not allowed (entity expansion)",
    "ExternalReferenceForbidden": "external references (files, URLs) are not allowed",
    "NotSupportedError": "the document uses an XML feature that is not supported",
}


class CapError(ValueError):
    """A CAP message that cannot be used; the message says why."""


@dataclass(frozen=True)
class CapReference:
    """One entry of ``<references>``: the message it points at."""

    sender: str
    identifier: str
    sent: str


@dataclass
class CapArea:
    """One ``<area>``: polygons as [(lat, lon), ...], circles as (lat, lon, radius_km)."""

    area_desc: str
    polygons: list[list[tuple[float, float]]] = field(default_factory=list)
    circles: list[tuple[float, float, float]] = field(default_factory=list)
    geocodes: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class CapInfo:
    """One ``<info>`` block (one language)."""

    language: str
    categories: list[str]
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str = ""
    description: str = ""
    instruction: str = ""
    sender_name: str = ""
    expires: str | None = None
    parameters: list[tuple[str, str]] = field(default_factory=list)
    areas: list[CapArea] = field(default_factory=list)


@dataclass
class CapMessage:
    """A parsed CAP 1.2 ``<alert>``."""

    identifier: str
    sender: str
    sent: str
    status: str
    msg_type: str
    scope: str
    references: list[CapReference] = field(default_factory=list)
    note: str = ""
    infos: list[CapInfo] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Dedup key of the alert this message creates."""
        return f"cap:{self.sender}:{self.identifier}"


# -- parsing ----------------------------------------------------------------------------------


def _text(el: ET.Element, name: str, required: bool = False, where: str = "alert") -> str:
    child = el.find(_Q + name)
    value = (child.text or "").strip() if child is not None else ""
    if required and not value:
        raise CapError(f"not a usable CAP 1.2 message: <{where}> lacks <{name}>")
    return value


def _pairs(el: ET.Element, name: str) -> list[tuple[str, str]]:
    return [(_text(p, "valueName"), _text(p, "value")) for p in el.findall(_Q + name)]


def _coord(pair: str, what: str) -> tuple[float, float]:
    try:
        lat_s, lon_s = pair.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise CapError(f"bad {what} coordinate {pair!r}: expected 'lat,lon'") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise CapError(f"bad {what} coordinate {pair!r}: outside lat -90..90, lon -180..180")
    return lat, lon


def _polygon(text: str) -> list[tuple[float, float]]:
    points = [_coord(p, "polygon") for p in text.split()]
    if points and points[0] != points[-1]:
        points.append(points[0])  # the spec says closed; close it rather than drop the area
    if len(points) < 4:
        raise CapError(f"polygon needs at least 4 points (closed ring), got {len(points)}")
    return points


def _circle(text: str) -> tuple[float, float, float]:
    parts = text.split()
    if len(parts) != 2:
        raise CapError(f"bad circle {text!r}: expected 'lat,lon radius_km'")
    lat, lon = _coord(parts[0], "circle")
    try:
        radius = float(parts[1])
    except ValueError:
        raise CapError(f"bad circle radius {parts[1]!r}") from None
    if not 0 <= radius < 20_000:
        raise CapError(f"bad circle radius {radius} km")
    return lat, lon, radius


def _area(el: ET.Element) -> CapArea:
    return CapArea(
        area_desc=_text(el, "areaDesc", required=True, where="area"),
        polygons=[_polygon(p.text or "") for p in el.findall(_Q + "polygon")],
        circles=[_circle(c.text or "") for c in el.findall(_Q + "circle")],
        geocodes=_pairs(el, "geocode"),
    )


def _info(el: ET.Element) -> CapInfo:
    return CapInfo(
        language=_text(el, "language") or "en-US",
        categories=[(c.text or "").strip() for c in el.findall(_Q + "category")],
        event=_text(el, "event", required=True, where="info"),
        urgency=_text(el, "urgency", required=True, where="info"),
        severity=_text(el, "severity", required=True, where="info"),
        certainty=_text(el, "certainty", required=True, where="info"),
        headline=_text(el, "headline"),
        description=_text(el, "description"),
        instruction=_text(el, "instruction"),
        sender_name=_text(el, "senderName"),
        expires=_text(el, "expires") or None,
        parameters=_pairs(el, "parameter"),
        areas=[_area(a) for a in el.findall(_Q + "area")],
    )


def _references(text: str) -> list[CapReference]:
    refs = []
    for item in text.split():
        parts = item.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapError(f"bad reference {item!r}: expected 'sender,identifier,sent'")
        refs.append(CapReference(*parts))
    return refs


def parse_cap(data: str | bytes) -> CapMessage:
    """Parse a CAP 1.2 document; :class:`CapError` says why one is refused."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_CAP_BYTES:
        raise CapError(f"CAP message too large: {len(raw)} bytes (limit {MAX_CAP_BYTES})")
    if not raw.strip():
        raise CapError("empty CAP message")
    try:
        # forbid_dtd refuses any DTD, which covers entity expansion and external entities too
        root = _safe_fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        why = _HOSTILE.get(type(exc).__name__, "it uses a forbidden XML feature")
        raise CapError(f"refused hostile XML: {why} ({type(exc).__name__})") from None
    except ParseError as exc:
        raise CapError(f"malformed XML: {exc}") from None
    if root.tag != _Q + "alert":
        raise CapError(
            f"not a CAP 1.2 message: root element is {root.tag!r}, expected "
            f"<alert> in namespace {NS}"
        )
    msg = CapMessage(
        identifier=_text(root, "identifier", required=True),
        sender=_text(root, "sender", required=True),
        sent=_text(root, "sent", required=True),
        status=_text(root, "status", required=True),
        msg_type=_text(root, "msgType", required=True),
        scope=_text(root, "scope", required=True),
        references=_references(_text(root, "references")),
        note=_text(root, "note"),
        infos=[_info(i) for i in root.findall(_Q + "info")],
    )
    if msg.msg_type not in MSG_TYPES:
        raise CapError(f"unknown msgType {msg.msg_type!r}; expected one of {MSG_TYPES}")
    if msg.status not in STATUSES:
        raise CapError(f"unknown status {msg.status!r}; expected one of {STATUSES}")
    if msg.msg_type in ("Update", "Cancel", "Ack", "Error") and not msg.references:
        raise CapError(f"a {msg.msg_type} message needs <references>")
    for info in msg.infos:
        if info.severity not in CAP_SEVERITY:
            raise CapError(f"unknown severity {info.severity!r}; expected {list(CAP_SEVERITY)}")
    _parse_time(msg.sent)
    return msg


def _parse_time(text: str) -> float:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise CapError(f"bad time {text!r}: expected e.g. 2003-06-17T14:57:00-07:00") from None
    if stamp.tzinfo is None:
        raise CapError(f"bad time {text!r}: CAP times need a UTC offset")
    return stamp.timestamp()


def cap_area_geometry(info: CapInfo) -> shapely.Geometry | None:
    """Union of the info's polygons and circles in lon/lat; None when it has neither."""
    parts: list[shapely.Geometry] = []
    for area in info.areas:
        for ring in area.polygons:
            poly = Polygon([(lon, lat) for lat, lon in ring])
            parts.append(poly if poly.is_valid else shapely.make_valid(poly))
        for lat, lon, radius_km in area.circles:
            parts.append(circle_polygon(lon, lat, radius_km * 1000.0))
    if not parts:
        return None
    return shapely.union_all(parts)


# -- applying to the alert store --------------------------------------------------------------


@dataclass
class CapChange:
    """What a CAP message did: ``create``, ``update``, ``cancel``, or a report that it did
    nothing (``duplicate``, ``unknown_reference``, ``already_closed``, ``ignored``)."""

    action: str
    alert: Alert | None
    reason: str = ""
    reference: CapReference | None = None


def _pick_info(msg: CapMessage, prefix: str) -> CapInfo | None:
    return next((i for i in msg.infos if i.language.lower().startswith(prefix)), None)


def _category(msg: CapMessage) -> str:
    for info in msg.infos:
        words = f"{info.event} {info.headline}".lower()
        if any(w in words for w in _FLOOD_WORDS):
            return "flood"
    for info in msg.infos:
        for cat in info.categories:
            if cat in CAP_CATEGORY:
                return CAP_CATEGORY[cat]
    return "other"


def _alert_fields(msg: CapMessage, areas: AreaSet | gpd.GeoDataFrame) -> dict[str, Any]:
    """Alert fields that a message's infos and areas determine (shared by Alert and Update)."""
    if not msg.infos:
        raise CapError(f"CAP {msg.identifier}: an {msg.msg_type} message needs an <info>")
    en = _pick_info(msg, "en") or msg.infos[0]
    zh = _pick_info(msg, "zh") or en
    geoms = [g for g in (cap_area_geometry(i) for i in msg.infos) if g is not None]
    geom = shapely.union_all(geoms) if geoms else None
    expires = [_parse_time(i.expires) for i in msg.infos if i.expires]
    return {
        "severity": max((CAP_SEVERITY[i.severity] for i in msg.infos), key=severity_rank),
        "category": _category(msg),
        "title_en": en.headline or en.event,
        "title_zh": zh.headline or zh.event,
        "text": en.description,
        "geometry": mapping(geom) if geom is not None else None,
        "area_grids": grids_for_area(geom, areas),
        "expires_at": min(expires) if expires else None,
        "source_ref": f"{msg.sender},{msg.identifier},{msg.sent}",
    }


def _find(existing: dict[str, Alert], ref: CapReference) -> Alert | None:
    """The alert a reference points at: the one it created, or the one it last updated."""
    found = existing.get(alert_id(f"cap:{ref.sender}:{ref.identifier}"))
    if found is not None:
        return found
    prefix = f"{ref.sender},{ref.identifier},"
    return next((a for a in existing.values() if a.source_ref.startswith(prefix)), None)


def apply_cap(
    existing: dict[str, Alert],
    message: CapMessage | str | bytes,
    areas: AreaSet | gpd.GeoDataFrame,
    now: float,
) -> list[CapChange]:
    """Changes a CAP message makes to ``existing`` (alerts by id); ``existing`` is not modified.

    The caller stores each change's alert. A text message is parsed first, so a malformed or
    hostile one raises :class:`CapError` before anything changes.
    """
    msg = message if isinstance(message, CapMessage) else parse_cap(message)
    if msg.status != "Actual":
        return [CapChange("ignored", None, f"status {msg.status} does not change alerts")]
    if msg.msg_type in ("Ack", "Error"):
        return [CapChange("ignored", None, f"msgType {msg.msg_type} does not change alerts")]
    if msg.msg_type == "Alert":
        new_id = alert_id(msg.key)
        if new_id in existing:
            return [CapChange("duplicate", existing[new_id], f"{msg.key} already applied")]
        alert = Alert(
            id=new_id,
            kind="cap",
            status="new",
            dedup_key=msg.key,
            raised_at=now,
            updated_at=now,
            **_alert_fields(msg, areas),
        )
        return [CapChange("create", alert)]
    changes: list[CapChange] = []
    fields_ = _alert_fields(msg, areas) if msg.msg_type == "Update" else None
    for ref in msg.references:
        target = _find(existing, ref)
        if target is None:
            changes.append(
                CapChange(
                    "unknown_reference", None, f"no alert for {ref.sender},{ref.identifier}", ref
                )
            )
        elif not target.is_open:
            changes.append(CapChange("already_closed", target, f"alert is {target.status}", ref))
        elif fields_ is not None:
            changes.append(
                CapChange("update", replace(target, updated_at=now, **fields_), reference=ref)
            )
        else:
            note = msg.note or f"cancelled by {msg.sender} ({msg.identifier})"
            changes.append(
                CapChange(
                    "cancel", transition(target, "clear", msg.sender, now, note), reference=ref
                )
            )
    return changes


# -- export -----------------------------------------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(_TZ).isoformat(timespec="seconds")


def _rings(geometry: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """CAP polygon and circle strings for a GeoJSON geometry (exteriors only: CAP has no
    holes)."""
    geom = as_geometry(geometry)
    polygons: list[str] = []
    circles: list[str] = []
    if geom is None or geom.is_empty:
        return polygons, circles
    for part in getattr(geom, "geoms", [geom]):
        if part.geom_type == "Polygon":
            polygons.append(" ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in part.exterior.coords))
        elif part.geom_type == "Point":
            circles.append(f"{part.y:.6f},{part.x:.6f} 0")
        elif part.geom_type == "MultiPolygon":
            p, c = _rings(mapping(part))
            polygons += p
            circles += c
    return polygons, circles


def export_cap(
    alert: Alert,
    sender: str = "cockpit@localhost",
    msg_type: str = "Alert",
    references: list[CapReference] | None = None,
) -> str:
    """The alert as a CAP 1.2 document (UTF-8 XML text) that :func:`parse_cap` reads back.

    Two ``<info>`` blocks (en-US and zh-CN titles); one ``<area>`` with the alert's polygon
    exteriors (lat,lon order) and a ``cockpit:grid`` geocode per affected grid.
    """
    if msg_type not in MSG_TYPES:
        raise ValueError(f"unknown msgType {msg_type!r}")
    ET.register_namespace("", NS)

    def sub(parent: ET.Element, name: str, text: str) -> ET.Element:
        el = ET.SubElement(parent, _Q + name)
        el.text = text
        return el

    root = ET.Element(_Q + "alert")
    sub(root, "identifier", alert.id)
    sub(root, "sender", sender)
    sub(root, "sent", _iso(alert.updated_at))
    sub(root, "status", "Actual")
    sub(root, "msgType", msg_type)
    sub(root, "scope", "Restricted")
    sub(root, "restriction", "cockpit users whose scope covers the area")
    if references:
        sub(root, "references", " ".join(f"{r.sender},{r.identifier},{r.sent}" for r in references))
    polygons, circles = _rings(alert.geometry)
    urgent = severity_rank(alert.severity) >= severity_rank("severe")
    for language, title in (("en-US", alert.title_en), ("zh-CN", alert.title_zh)):
        info = ET.SubElement(root, _Q + "info")
        sub(info, "language", language)
        sub(info, "category", _TO_CAP_CATEGORY.get(alert.category, "Other"))
        sub(info, "event", alert.kind)
        sub(info, "urgency", "Immediate" if urgent else "Expected")
        sub(info, "severity", _TO_CAP_SEVERITY[alert.severity])
        sub(info, "certainty", "Observed" if alert.kind.startswith("flood") else "Likely")
        if alert.expires_at is not None:
            sub(info, "expires", _iso(alert.expires_at))
        sub(info, "headline", title or alert.kind)
        if alert.text:
            sub(info, "description", alert.text)
        param = ET.SubElement(info, _Q + "parameter")
        sub(param, "valueName", "cockpit:escalation_level")
        sub(param, "value", alert.escalation_level)
        area = ET.SubElement(info, _Q + "area")
        sub(area, "areaDesc", ", ".join(alert.area_grids) or "outside the cockpit's grids")
        for ring in polygons:
            sub(area, "polygon", ring)
        for circle in circles:
            sub(area, "circle", circle)
        for grid in alert.area_grids:
            code = ET.SubElement(area, _Q + "geocode")
            sub(code, "valueName", "cockpit:grid")
            sub(code, "value", grid)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
