"""Acting on alerts: only in scope, only with the right, audited; a forged act changes nothing."""

from __future__ import annotations

import threading

import pytest
import redis

from cockpit.alerts import store
from cockpit.alerts.actions import act
from cockpit.alerts.model import Alert, IllegalTransition, alert_id
from cockpit.areastore import Geography
from cockpit.policy import User

T0 = 1_781_000_000.0


def grid_in_street(geo: Geography, k: int) -> dict[str, str]:
    """The first grid of the k-th street, with its community, street and district."""
    table = geo.areas.grid_ancestors_table()
    street = sorted(table["street"].unique())[k]
    row = table[table["street"] == street].iloc[0]
    return {"grid": row.name, "community": row["community"], "street": street,
            "district": row["district"]}  # fmt: skip


def person(name: str, level: str, area: str) -> User:
    return User(id=f"user:{name}:1", name=name, level=level, area_id=area)


def stored(r: redis.Redis, geo: Geography, grids: list[str], key: str = "flood:g:1") -> Alert:
    alert = Alert(
        id=alert_id(key), kind="flood_warning", severity="moderate", status="new", dedup_key=key,
        raised_at=T0, updated_at=T0, area_grids=grids,
    )  # fmt: skip
    assert store.create_alert(r, alert, geo)
    return alert


def snapshot(r: redis.Redis, alert_id_: str) -> tuple[bytes | None, int, int]:
    return (
        store.get_alert_raw(r, alert_id_),
        r.xlen(store.AUDIT) if r.exists(store.AUDIT) else 0,
        r.xlen(store.STREAM),
    )


def test_act001_in_scope_acknowledge_works_and_is_audited(
    r: redis.Redis, loaded_city: Geography
) -> None:
    here = grid_in_street(loaded_city, 0)
    alert = stored(r, loaded_city, [here["grid"]])
    officer = person("wang", "grid", here["grid"])
    done = act(r, officer, alert.id, "acknowledge", "on my way", loaded_city, T0 + 120)
    assert (done.status, done.acknowledged_by, done.acknowledged_at) == ("acknowledged", "wang",
                                                                         T0 + 120)  # fmt: skip
    assert store.get_alert(r, alert.id) == done
    ((_eid, audit),) = store.audit_entries(r)
    assert audit == {
        "who": "wang",
        "at_ms": str(int((T0 + 120) * 1000)),
        "action": "acknowledge",
        "alert_id": alert.id,
        "comment": "on my way",
        "status": "acknowledged",
    }
    assert [f["action"] for _i, f in store.recent_changes(r)] == ["create", "acknowledge"]
    # the street resolves it; that is audited too
    street = person("li", "street", here["street"])
    act(r, street, alert.id, "resolve", "water pumped out", loaded_city, T0 + 900)
    final = store.get_alert(r, alert.id)
    assert final is not None and (final.status, final.resolved_by) == ("resolved", "li")
    assert [a["action"] for _i, a in store.audit_entries(r)] == ["acknowledge", "resolve"]
    assert store.open_alerts(r, street, loaded_city) == []


def test_act002_forged_acknowledgement_outside_scope_is_refused_and_changes_nothing(
    r: redis.Redis, loaded_city: Geography
) -> None:
    here, there = grid_in_street(loaded_city, 0), grid_in_street(loaded_city, 1)
    alert = stored(r, loaded_city, [there["grid"]])
    before = snapshot(r, alert.id)
    for intruder in (
        person("zhao", "grid", here["grid"]),
        person("qian", "community", here["community"]),
        person("sun", "street", here["street"]),
    ):
        for action in ("acknowledge", "resolve"):
            with pytest.raises(PermissionError):
                act(r, intruder, alert.id, action, "forged", loaded_city, T0 + 60)
    assert snapshot(r, alert.id) == before  # byte-identical record, no audit, no change entry
    # the wall may view alerts but never act, even on its own area
    wall = User(id="wall:t1", name="wall", level="wall", area_id=there["street"], is_wall=True)
    with pytest.raises(PermissionError):
        act(r, wall, alert.id, "acknowledge", "", loaded_city, T0 + 60)
    assert snapshot(r, alert.id) == before


def test_act003_grid_less_alert_only_at_city_level(r: redis.Redis, loaded_city: Geography) -> None:
    here = grid_in_street(loaded_city, 0)
    alert = stored(r, loaded_city, [], key="cap:usgs:quake-1")
    before = snapshot(r, alert.id)
    for u in (person("a", "grid", here["grid"]), person("b", "street", here["street"]),
              person("c", "district", here["district"])):  # fmt: skip
        with pytest.raises(PermissionError):
            act(r, u, alert.id, "acknowledge", "", loaded_city, T0 + 1)
    assert snapshot(r, alert.id) == before
    city = person("mayor", "city", loaded_city.areas.root_id)
    assert act(r, city, alert.id, "acknowledge", "noted", loaded_city, T0 + 2).status == (
        "acknowledged"
    )


def test_act004_rights_transitions_and_unknown_ids(r: redis.Redis, loaded_city: Geography) -> None:
    here = grid_in_street(loaded_city, 0)
    alert = stored(r, loaded_city, [here["grid"]])
    street = person("li", "street", here["street"])
    before = snapshot(r, alert.id)
    with pytest.raises(IllegalTransition, match="acknowledge it first"):
        act(r, street, alert.id, "resolve", "", loaded_city, T0 + 5)
    assert snapshot(r, alert.id) == before
    # leaders acknowledge but do not resolve (policy)
    district = person("boss", "district", here["district"])
    act(r, district, alert.id, "acknowledge", "", loaded_city, T0 + 6)
    with pytest.raises(PermissionError, match="may not resolve"):
        act(r, district, alert.id, "resolve", "", loaded_city, T0 + 7)
    with pytest.raises(IllegalTransition, match="already acknowledged"):
        act(r, street, alert.id, "acknowledge", "", loaded_city, T0 + 8)
    # an id that does not exist gets the same answer as one outside the scope
    with pytest.raises(PermissionError, match="not in your scope"):
        act(r, street, "al-00000000000000000000", "acknowledge", "", loaded_city, T0 + 9)
    with pytest.raises(IllegalTransition, match="unknown action"):
        act(r, street, alert.id, "delete", "", loaded_city, T0 + 9)
    with pytest.raises(ValueError, match="at most"):
        act(r, street, alert.id, "resolve", "x" * 1001, loaded_city, T0 + 9)


def test_act005_two_officers_acknowledging_at_once_one_wins(
    r: redis.Redis, loaded_city: Geography, redis_url: str
) -> None:
    here = grid_in_street(loaded_city, 0)
    alert = stored(r, loaded_city, [here["grid"]])
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def ack(name: str) -> None:
        client = redis.Redis.from_url(redis_url)
        barrier.wait()
        try:
            act(client, person(name, "grid", here["grid"]), alert.id, "acknowledge", name,
                loaded_city, T0 + 30)  # fmt: skip
            outcomes.append("ok:" + name)
        except IllegalTransition:
            outcomes.append("refused")

    threads = [threading.Thread(target=ack, args=(f"o{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("ok:")]
    assert len(winners) == 1 and outcomes.count("refused") == 5
    final = store.get_alert(r, alert.id)
    assert final is not None and final.acknowledged_by == winners[0][3:]
    assert len(store.audit_entries(r)) == 1
