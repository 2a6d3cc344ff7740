"""Alert store on a real Redis: SET NX dedup, compare-and-set, scope indexes, streams, states."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import redis

from cockpit.alerts import store
from cockpit.alerts.model import Alert, alert_id
from cockpit.areastore import Geography
from cockpit.policy import User

T0 = 1_781_000_000.0


def make_alert(key: str, grids: list[str], severity: str = "moderate", at: float = T0) -> Alert:
    return Alert(
        id=alert_id(key), kind="flood_warning", severity=severity, status="new", dedup_key=key,
        raised_at=at, updated_at=at, area_grids=grids, title_en=key,
    )  # fmt: skip


def two_streets(geo: Geography) -> tuple[dict[str, str], dict[str, str]]:
    """A grid with its community and street in each of two different streets."""
    table = geo.areas.grid_ancestors_table()
    streets = sorted(table["street"].unique())
    out = []
    for street in streets[:2]:
        row = table[table["street"] == street].iloc[0]
        out.append({"grid": row.name, "community": row["community"], "street": street,
                    "district": row["district"]})  # fmt: skip
    return out[0], out[1]


def user(level: str, area: str) -> User:
    return User(id=f"user:{level}:1", name=f"{level}-officer", level=level, area_id=area)


def test_st001_raising_twice_creates_one_alert_and_one_entry(
    r: redis.Redis, loaded_city: Geography
) -> None:
    a, _ = two_streets(loaded_city)
    alert = make_alert("flood:g1:1", [a["grid"]])
    assert store.create_alert(r, alert, loaded_city) is True
    assert store.create_alert(r, replace(alert, severity="extreme"), loaded_city) is False
    assert store.get_alert(r, alert.id) == alert  # the first one stays
    assert [f["action"] for _i, f in store.recent_changes(r)] == ["create"]


def test_st002_concurrent_raises_of_one_situation_give_one_alert(
    r: redis.Redis, loaded_city: Geography, redis_url: str
) -> None:
    a, _ = two_streets(loaded_city)
    alert = make_alert("truck:T1:5", [a["grid"]])
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def raise_it() -> None:
        client = redis.Redis.from_url(redis_url)
        barrier.wait()
        results.append(store.create_alert(client, alert, loaded_city))

    threads = [threading.Thread(target=raise_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert r.zcard(store.OPEN) == 1 and r.xlen(store.STREAM) == 1


def test_st003_stale_compare_and_set_is_refused_and_changes_nothing(
    r: redis.Redis, loaded_city: Geography
) -> None:
    a, _ = two_streets(loaded_city)
    alert = make_alert("flood:g1:2", [a["grid"]])
    store.create_alert(r, alert, loaded_city)
    first = replace(alert, severity="severe", updated_at=T0 + 10)
    store.update_alert(r, alert, first, loaded_city, action="update")
    before = store.get_alert_raw(r, alert.id)
    stale = replace(alert, severity="minor", updated_at=T0 + 20)  # based on the old version
    with pytest.raises(store.Conflict):
        store.update_alert(r, alert, stale, loaded_city, action="update")
    assert store.get_alert_raw(r, alert.id) == before
    assert r.xlen(store.STREAM) == 2


def test_st004_scope_index_by_area_and_order_by_severity_then_newest(
    r: redis.Redis, loaded_city: Geography
) -> None:
    a, b = two_streets(loaded_city)
    in_a_old = make_alert("a-old", [a["grid"]], "severe", T0)
    in_a_new = make_alert("a-new", [a["grid"]], "minor", T0 + 60)
    in_a_newer = make_alert("a-newer", [a["grid"]], "severe", T0 + 120)
    both = make_alert("both", [a["grid"], b["grid"]], "extreme", T0 + 30)
    in_b = make_alert("b", [b["grid"]], "moderate", T0 + 90)
    outside = make_alert("cap-usa", [], "extreme", T0 + 200)
    for alert in (in_a_old, in_a_new, in_a_newer, both, in_b, outside):
        store.create_alert(r, alert, loaded_city)
    ids = lambda u: [x.title_en for x in store.open_alerts(r, u, loaded_city)]  # noqa: E731
    expected_a = ["both", "a-newer", "a-old", "a-new"]
    assert ids(user("grid", a["grid"])) == expected_a
    assert ids(user("community", a["community"])) == expected_a
    assert ids(user("street", a["street"])) == expected_a
    assert ids(user("street", b["street"])) == ["both", "b"]
    # the grid-less alert only at city level
    city = user("city", loaded_city.areas.root_id)
    assert ids(city) == ["cap-usa", "both", "a-newer", "a-old", "b", "a-new"]
    assert "cap-usa" not in ids(user("district", a["district"]))
    assert store.open_alerts(r, city, loaded_city, limit=2)[1].title_en == "both"
    # closing removes it from every index; a user without view_alerts sees nothing
    cleared = replace(in_a_newer, status="cleared", cleared_at=T0 + 300, updated_at=T0 + 300)
    store.update_alert(r, in_a_newer, cleared, loaded_city, action="clear")
    assert ids(user("grid", a["grid"])) == ["both", "a-old", "a-new"]
    assert "a-newer" not in ids(city)
    assert 0 < r.ttl(store.ALERT_PREFIX + in_a_newer.id) <= store.CLOSED_TTL_S
    assert store.open_alerts(r, user("nobody", a["grid"]), loaded_city) == []
    assert [x.title_en for x in store.all_alerts(r)][0] == "cap-usa"


def test_st005_changing_grids_moves_the_alert_between_scopes(
    r: redis.Redis, loaded_city: Geography
) -> None:
    a, b = two_streets(loaded_city)
    alert = make_alert("cap:x:1", [a["grid"]])
    store.create_alert(r, alert, loaded_city)
    moved = replace(alert, area_grids=[b["grid"]], updated_at=T0 + 5)
    store.update_alert(r, alert, moved, loaded_city, action="update")
    assert store.open_alerts(r, user("street", a["street"]), loaded_city) == []
    assert store.open_alerts(r, user("street", b["street"]), loaded_city) == [moved]


def test_st006_recent_changes_since_an_entry(r: redis.Redis, loaded_city: Geography) -> None:
    a, _ = two_streets(loaded_city)
    first = make_alert("one", [a["grid"]])
    store.create_alert(r, first, loaded_city)
    ((mark, fields),) = store.recent_changes(r)
    assert fields["id"] == first.id and fields["status"] == "new" and fields["level"] == "grid"
    second = make_alert("two", [a["grid"]])
    store.create_alert(r, second, loaded_city)
    assert [f["id"] for _i, f in store.recent_changes(r, mark)] == [second.id]


def test_st007_rule_states_round_trip_in_one_hash(r: redis.Redis) -> None:
    store.save_states(r, "flood", {"g1": {"level": "warning", "readings": [[1.0, 2.5]]}})
    store.save_states(r, "flood", {"g2": {"level": "normal"}})
    assert store.load_states(r, "flood", ["g1", "missing"]) == {
        "g1": {"level": "warning", "readings": [[1.0, 2.5]]}
    }
    assert set(store.load_states(r, "flood")) == {"g1", "g2"}
    store.delete_states(r, "flood", ["g1"])
    assert set(store.load_states(r, "flood")) == {"g2"}
    with pytest.raises(ValueError, match="unknown rule"):
        store.load_states(r, "nonsense")


def test_st008_open_alerts_read_once_per_area_until_an_alert_changes(
    r: redis.Redis, loaded_city: Geography
) -> None:
    """Viewers of one area share one read per version of the alerts; any write is seen at
    once."""
    a, _ = two_streets(loaded_city)
    alert = make_alert("flood:g8:1", [a["grid"]])
    store.create_alert(r, alert, loaded_city)
    street = user("street", a["street"])

    def mgets() -> int:
        return int(r.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))

    assert store.open_alerts(r, street, loaded_city) == [alert]
    before = mgets()
    for _ in range(5):
        assert store.open_alerts(r, street, loaded_city) == [alert]
    assert mgets() == before  # served from the process's cache
    cleared = replace(alert, status="cleared", cleared_at=T0 + 9, updated_at=T0 + 9)
    store.update_alert(r, alert, cleared, loaded_city, action="clear")
    assert store.open_alerts(r, street, loaded_city) == []  # the index is empty: no MGET
    second = make_alert("flood:g8:2", [a["grid"]], at=T0 + 10)
    store.create_alert(r, second, loaded_city)
    assert store.open_alerts(r, street, loaded_city) == [second]
    assert mgets() == before + 1


def test_st009_a_new_version_rereads_only_the_alerts_written_since(
    r: redis.Redis, loaded_city: Geography, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a write, the process reads again only the alerts the stream names since the
    version it holds; what it then serves equals a full read, through creates, severity
    changes, clearing and an alert moving out of the area."""
    a, b = two_streets(loaded_city)
    street = user("street", a["street"])
    alerts = [make_alert(f"flood:g8:{k}", [a["grid"]], at=T0 + k) for k in range(30)]
    for alert in alerts:
        store.create_alert(r, alert, loaded_city)
    assert len(store.open_alerts(r, street, loaded_city)) == 30
    read: list[list[str]] = []
    real = store.get_alerts
    monkeypatch.setattr(store, "get_alerts", lambda c, ids: read.append(list(ids)) or real(c, ids))

    def full() -> list[Alert]:
        return store._read_open(r, store.AREA_PREFIX + a["street"], "", None)

    worse = replace(alerts[3], severity="extreme", updated_at=T0 + 50)
    store.update_alert(r, alerts[3], worse, loaded_city, action="escalate")
    served = store.open_alerts(r, street, loaded_city)
    assert read == [[alerts[3].id]]
    assert served == full() and served[0].severity == "extreme"
    cleared = replace(alerts[5], status="cleared", cleared_at=T0 + 60, updated_at=T0 + 60)
    store.update_alert(r, alerts[5], cleared, loaded_city, action="clear")
    moved = replace(alerts[7], area_grids=[b["grid"]], updated_at=T0 + 61)
    store.update_alert(r, alerts[7], moved, loaded_city, action="update")
    new = make_alert("flood:g8:new", [a["grid"]], at=T0 + 62)
    store.create_alert(r, new, loaded_city)
    read.clear()
    served = store.open_alerts(r, street, loaded_city)
    assert sorted(i for ids in read for i in ids) == [new.id]  # the cleared and moved are gone
    assert served == full() and len(served) == 29
    assert alerts[5].id not in {x.id for x in served} and alerts[7].id not in {x.id for x in served}


def test_st010_threads_asking_for_one_new_version_share_one_read(
    r: redis.Redis, loaded_city: Geography
) -> None:
    a, _ = two_streets(loaded_city)
    street = user("street", a["street"])
    for k in range(200):
        store.create_alert(r, make_alert(f"flood:g9:{k}", [a["grid"]], at=T0 + k), loaded_city)

    def mgets() -> int:
        return int(r.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))

    before = mgets()
    start = threading.Barrier(8)
    results: list[int] = []

    def viewer() -> None:
        start.wait()
        results.append(len(store.open_alerts(r, street, loaded_city, limit=500)))

    threads = [threading.Thread(target=viewer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [200] * 8
    assert mgets() == before + 1  # one thread read; the seven others waited for its result
