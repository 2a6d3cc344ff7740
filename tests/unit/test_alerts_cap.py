"""CAP 1.2: the specification's examples, a flood polygon over the demo city, Update and Cancel,
refusal of malformed and hostile XML, and export -> parse round trip."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import shapely
from pyproj import Geod

from cockpit.alerts.cap import (
    NS,
    CapError,
    CapReference,
    apply_cap,
    cap_area_geometry,
    export_cap,
    parse_cap,
)
from cockpit.alerts.model import Alert, alert_id
from geo.areas import AreaSet

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cap"
T0 = 1_781_000_000.0
#: A quadrilateral over Huishan, written the CAP way: "lat,lon" pairs.
FLOOD_RING = "31.65,120.20 31.66,120.30 31.72,120.28 31.71,120.19 31.65,120.20"


def cap_xml(
    identifier: str = "wx-flood-1",
    msg_type: str = "Alert",
    severity: str = "Severe",
    polygon: str | None = FLOOD_RING,
    circle: str | None = None,
    references: str | None = None,
    status: str = "Actual",
    headline: str = "Flood warning: Luoshe",
) -> str:
    """A CAP 1.2 message as the city's hydrology bureau might send it."""
    refs = f"<references>{references}</references>" if references else ""
    shapes = (f"<polygon>{polygon}</polygon>" if polygon else "") + (
        f"<circle>{circle}</circle>" if circle else ""
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{NS}">
  <identifier>{identifier}</identifier>
  <sender>hydro@wuxi.example</sender>
  <sent>2026-06-15T10:00:00+08:00</sent>
  <status>{status}</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>
  {refs}
  <info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>洪水预警</event>
    <urgency>Immediate</urgency>
    <severity>{severity}</severity>
    <certainty>Likely</certainty>
    <headline>洪水预警: 洛社</headline>
    <area><areaDesc>洛社镇沿河</areaDesc>{shapes}</area>
  </info>
  <info>
    <language>en-US</language>
    <category>Met</category>
    <event>Flood</event>
    <urgency>Immediate</urgency>
    <severity>{severity}</severity>
    <certainty>Likely</certainty>
    <expires>2026-06-15T22:00:00+08:00</expires>
    <headline>{headline}</headline>
    <description>River above warning level.</description>
    <area><areaDesc>Luoshe riverside</areaDesc>{shapes}</area>
  </info>
</alert>"""


def brute_force(geom: shapely.Geometry, areas: AreaSet) -> list[str]:
    return sorted(str(i) for i, g in areas.grids.geometry.items() if g.intersects(geom))


def test_cap001_the_four_specification_examples_parse(demo_areas: AreaSet) -> None:
    files = sorted(FIXTURES.glob("*.xml"))
    assert len(files) == 4
    msgs = {f.name.split("-")[1]: parse_cap(f.read_bytes()) for f in files}
    one, two, three, four = (msgs[k] for k in ("example1", "example2", "example3", "example4"))
    assert (one.identifier, one.sender, one.msg_type) == ("43b080713727", "hsas@dhs.gov", "Alert")
    assert one.infos[0].areas[0].area_desc == "U.S. nationwide and interests worldwide"
    assert cap_area_geometry(one.infos[0]) is None  # a description only
    # example 2: CAP's lat,lon polygon comes out as lon/lat geometry
    poly = two.infos[0].areas[0].polygons[0]
    assert poly[0] == (38.47, -120.14) and two.infos[0].areas[0].geocodes[0] == ("SAME", "006109")
    geom2 = cap_area_geometry(two.infos[0])
    assert geom2 is not None and geom2.bounds == pytest.approx((-120.14, 38.34, -119.74, 38.62))
    assert (two.infos[0].severity, two.infos[0].expires) == ("Severe", "2003-06-17T16:00:00-07:00")
    # example 3: an Update with a reference and a zero-radius circle (the epicentre)
    assert three.msg_type == "Update" and three.references == [
        CapReference("trinet@caltech.edu", "TRI13970876.1", "2003-06-11T20:30:00-07:00")
    ]
    geom3 = cap_area_geometry(three.infos[0])
    assert geom3 is not None and geom3.geom_type == "Point"
    assert (geom3.x, geom3.y) == (-115.5527, 32.9525)
    # example 4: two languages
    assert [i.language for i in four.infos] == ["en-US", "es-US"]
    assert four.infos[1].event == "Abducción de Niño"
    # applied to the demo city: kept as alerts, but they cover no grid
    for msg in (one, two, four):
        (change,) = apply_cap({}, msg, demo_areas, T0)
        assert change.action == "create" and change.alert is not None
        assert change.alert.area_grids == [] and change.alert.kind == "cap"
    (change,) = apply_cap({}, three, demo_areas, T0)
    assert change.action == "unknown_reference" and "TRI13970876.1" in change.reason


def test_cap002_flood_polygon_marks_exactly_the_grids_it_intersects(demo_areas: AreaSet) -> None:
    (change,) = apply_cap({}, cap_xml(), demo_areas, T0)
    alert = change.alert
    assert change.action == "create" and alert is not None
    geom = shapely.geometry.shape(alert.geometry)
    expected = brute_force(geom, demo_areas)
    assert alert.area_grids == expected
    assert 20 < len(expected) < len(demo_areas.grids)  # some grids, not all of them
    # the polygon really was read as lat,lon: its lon/lat bounds are where Huishan is
    assert geom.bounds == pytest.approx((120.19, 31.65, 120.30, 31.72))
    assert (alert.severity, alert.category, alert.status) == ("severe", "flood", "new")
    assert (alert.title_en, alert.title_zh) == ("Flood warning: Luoshe", "洪水预警: 洛社")
    assert alert.id == alert_id("cap:hydro@wuxi.example:wx-flood-1")
    expires = datetime(2026, 6, 15, 22, tzinfo=timezone(timedelta(hours=8))).timestamp()
    assert alert.expires_at == expires


def test_cap003_update_and_cancel_act_on_their_reference(demo_areas: AreaSet) -> None:
    (created,) = apply_cap({}, cap_xml(), demo_areas, T0)
    assert created.alert is not None
    store: dict[str, Alert] = {created.alert.id: created.alert}
    ref = "hydro@wuxi.example,wx-flood-1,2026-06-15T10:00:00+08:00"
    # Update: a smaller circle and a higher severity replace the area and severity in place
    update = cap_xml(
        "wx-flood-2",
        "Update",
        "Extreme",
        polygon=None,
        circle="31.70,120.25 2.5",
        references=ref,
        headline="Flood: upgraded",
    )
    (upd,) = apply_cap(store, update, demo_areas, T0 + 600)
    assert upd.action == "update" and upd.alert is not None
    assert upd.alert.id == created.alert.id and upd.alert.raised_at == T0
    assert (upd.alert.severity, upd.alert.title_en, upd.alert.updated_at) == (
        "extreme",
        "Flood: upgraded",
        T0 + 600,
    )
    assert upd.alert.area_grids == brute_force(
        shapely.geometry.shape(upd.alert.geometry), demo_areas
    )
    assert upd.alert.area_grids != created.alert.area_grids
    store[upd.alert.id] = upd.alert
    # Cancel, referencing the Update (as a chain would): the same alert is cleared
    cancel = cap_xml(
        "wx-flood-3",
        "Cancel",
        references=("hydro@wuxi.example,wx-flood-2,2026-06-15T10:10:00+08:00"),
    )
    (cnl,) = apply_cap(store, cancel, demo_areas, T0 + 1200)
    assert cnl.action == "cancel" and cnl.alert is not None
    assert (cnl.alert.id, cnl.alert.status, cnl.alert.cleared_at) == (
        created.alert.id,
        "cleared",
        T0 + 1200,
    )
    store[cnl.alert.id] = cnl.alert
    # cancelling again, or referencing what we never saw: reported, not raised
    (again,) = apply_cap(store, cancel, demo_areas, T0 + 1300)
    assert again.action == "already_closed"
    stranger = cap_xml("x-9", "Cancel", references="someone@else,nope,2026-06-15T10:00:00+08:00")
    (unknown,) = apply_cap(store, stranger, demo_areas, T0 + 1300)
    assert unknown.action == "unknown_reference" and unknown.alert is None


def test_cap004_redelivered_alerts_and_test_messages_change_nothing(demo_areas: AreaSet) -> None:
    (created,) = apply_cap({}, cap_xml(), demo_areas, T0)
    assert created.alert is not None
    (dup,) = apply_cap({created.alert.id: created.alert}, cap_xml(), demo_areas, T0 + 5)
    assert dup.action == "duplicate" and dup.alert == created.alert
    (test,) = apply_cap({}, cap_xml(status="Test"), demo_areas, T0)
    assert test.action == "ignored" and "Test" in test.reason


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ("", "empty"),
        ("<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x", "malformed XML"),
        ("<html><body>hello</body></html>", "not a CAP 1.2 message"),
        ("<alert xmlns='urn:oasis:names:tc:emergency:cap:1.1'/>", "not a CAP 1.2 message"),
        (cap_xml().replace("<identifier>wx-flood-1</identifier>", ""), "lacks <identifier>"),
        (
            cap_xml().replace("<msgType>Alert</msgType>", "<msgType>Panic</msgType>"),
            "unknown msgType",
        ),
        (
            cap_xml(polygon="31.65;120.20 31.66,120.30 31.72,120.28 31.65,120.20"),
            "bad polygon coordinate",
        ),
        (cap_xml(polygon="131.65,120.20 31.66,120.30 31.72,120.28 31.65,120.20"), "outside lat"),
        (cap_xml(polygon="31.65,120.20 31.66,120.30"), "at least 4 points"),
        (cap_xml(circle="31.7,120.2 far"), "bad circle radius"),
        (cap_xml(msg_type="Cancel"), "needs <references>"),
        (cap_xml().replace("2026-06-15T10:00:00+08:00", "yesterday"), "bad time"),
        ("x" * 1_000_001, "too large"),
    ],
)
def test_cap005_malformed_xml_is_refused_with_a_reason(xml: str, reason: str) -> None:
    with pytest.raises(CapError, match=reason):
        parse_cap(xml)


BILLION_LAUGHS = f"""<?xml version="1.0"?>
<!DOCTYPE alert [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alert xmlns="{NS}"><identifier>&lol9;</identifier></alert>"""

EXTERNAL_ENTITY = f"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="{NS}"><identifier>&xxe;</identifier></alert>"""

EXTERNAL_DTD = f"""<?xml version="1.0"?>
<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/evil.dtd">
<alert xmlns="{NS}"><identifier>x</identifier></alert>"""


@pytest.mark.parametrize(
    "xml",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
    ids=["billion-laughs", "external-entity", "external-dtd"],
)
def test_cap006_hostile_xml_is_refused_before_expansion(xml: str) -> None:
    with pytest.raises(CapError, match="refused hostile XML: a document type declaration") as info:
        parse_cap(xml)
    assert "root:" not in str(info.value)  # nothing of /etc/passwd leaked into the message
    assert len(str(info.value)) < 500  # and no expanded entity either


def test_cap007_export_then_parse_gives_the_same_alert_back(demo_areas: AreaSet) -> None:
    (created,) = apply_cap({}, cap_xml(), demo_areas, T0)
    assert created.alert is not None
    xml = export_cap(created.alert, sender="cockpit@wx")
    assert f'xmlns="{NS}"' in xml
    msg = parse_cap(xml)
    assert (msg.identifier, msg.sender, msg.msg_type) == (created.alert.id, "cockpit@wx", "Alert")
    assert [i.language for i in msg.infos] == ["en-US", "zh-CN"]
    assert ("cockpit:grid", created.alert.area_grids[0]) in msg.infos[0].areas[0].geocodes
    (back,) = apply_cap({}, msg, demo_areas, T0 + 1)
    assert back.alert is not None
    for name in (
        "severity",
        "title_en",
        "title_zh",
        "text",
        "area_grids",
        "category",
        "expires_at",
    ):
        assert getattr(back.alert, name) == getattr(created.alert, name), name
    a = shapely.geometry.shape(created.alert.geometry)
    b = shapely.geometry.shape(back.alert.geometry)
    assert a.symmetric_difference(b).area < 1e-9


def test_cap008_circles_are_geodesic_and_points_export_as_zero_circles(demo_areas: AreaSet) -> None:
    (created,) = apply_cap({}, cap_xml(polygon=None, circle="31.70,120.25 1.0"), demo_areas, T0)
    assert created.alert is not None
    circle = shapely.geometry.shape(created.alert.geometry)
    area_m2, _ = Geod(ellps="WGS84").geometry_area_perimeter(circle)
    assert abs(area_m2) == pytest.approx(math.pi * 1000**2, rel=0.01)  # 64-gon of a 1 km circle
    point = Alert(
        id="al-p",
        kind="dumping_suspected",
        severity="moderate",
        status="new",
        dedup_key="p",
        raised_at=T0,
        updated_at=T0,
        geometry={"type": "Point", "coordinates": [120.25, 31.70]},
    )
    msg = parse_cap(export_cap(point))
    assert msg.infos[0].areas[0].circles == [(31.70, 120.25, 0.0)]
