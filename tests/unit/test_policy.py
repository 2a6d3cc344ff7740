"""The policy: default deny, per-level rules as the policy file says, area scope, safe records."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from cockpit.contract import CATEGORIES
from cockpit.policy import (
    POLICY_LEVELS,
    LevelRules,
    PolicyError,
    User,
    authorize,
    in_scope,
    load_policy,
    may_compare,
    may_see_personal_data,
    parse_policy,
    policy,
    scope_filter,
    visible_categories,
)

PEOPLE = ("grid", "community", "street", "district", "city")
RAW = tomllib.loads(resources.files("cockpit").joinpath("policy.toml").read_text("utf-8"))


def person(level: str, area_id: str) -> User:
    return User(id=f"user:{level}:1", name=f"u-{level}", level=level, area_id=area_id)


WALL = User(id="wall:" + "0" * 64, name="wall", level="wall", area_id="wx", is_wall=True)


def test_pol001_unknown_actions_levels_and_no_user_are_denied():
    for level in POLICY_LEVELS:
        assert not authorize(person(level, "wx"), "launch_missiles")
        assert not authorize(person(level, "wx"), "")
    assert not authorize(person("mayor", "wx"), "view_map")
    assert not authorize(None, "view_map")
    assert visible_categories(person("mayor", "wx")) == set()
    assert not may_see_personal_data(person("mayor", "wx"))
    assert not may_compare(person("mayor", "wx"))
    assert visible_categories(None) == set() and not may_compare(None)


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_pol002_each_level_follows_the_policy_file(level):
    table = RAW["levels"][level]
    user = WALL if level == "wall" else person(level, "wx")
    expected = set(CATEGORIES) if table["categories"] == "*" else set(table["categories"])
    assert visible_categories(user) == expected
    assert may_see_personal_data(user) is table["personal_data"]
    assert may_compare(user) is table["compare_areas"]
    for action in RAW["actions"]:
        assert authorize(user, action) is (action in table["actions"]), action


def test_pol003_the_chosen_defaults():
    """Information widens with the level; petitions and reporters stay above the community."""
    grid, community, street = person("grid", "g"), person("community", "c"), person("street", "s")
    for low in (grid, community):
        assert "petition" not in visible_categories(low)
        assert not may_see_personal_data(low) and not may_compare(low)
    for high in (street, person("district", "d"), person("city", "wx")):
        assert visible_categories(high) == set(CATEGORIES)
        assert may_see_personal_data(high) and may_compare(high)
    chain = [person(level, "x") for level in PEOPLE]
    for lower, higher in zip(chain, chain[1:], strict=False):
        assert visible_categories(lower) <= visible_categories(higher)
        assert may_see_personal_data(lower) <= may_see_personal_data(higher)
        assert may_compare(lower) <= may_compare(higher)
    assert authorize(grid, "resolve_alert") and not authorize(grid, "export")
    assert not may_see_personal_data(WALL)
    for action in ("view_incidents", "ack_alert", "resolve_alert", "export"):
        assert not authorize(WALL, action), action


def test_pol004_a_missing_key_denies():
    rules = parse_policy({"actions": ["view_map", "export"], "levels": {"street": {}}})
    assert rules.rules("street") == LevelRules()
    street = person("street", "s")
    assert not authorize(street, "view_map", rules=rules)
    assert visible_categories(street, rules=rules) == set()
    assert not may_see_personal_data(street, rules=rules)
    assert not may_compare(street, rules=rules)
    only_actions = parse_policy(
        {"actions": ["view_map"], "levels": {"city": {"actions": ["view_map"]}}}
    )
    assert authorize(person("city", "wx"), "view_map", rules=only_actions)
    assert not may_see_personal_data(person("city", "wx"), rules=only_actions)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("actions = [\n", "not valid TOML"),
        ('colour = "red"', "unknown key 'colour'"),
        ("[levels.mayor]\nactions = []", "unknown level 'mayor'"),
        ("[levels.grid]\npersonal-data = false", "levels.grid: unknown key 'personal-data'"),
        ('[levels.grid]\ncategories = ["riot"]', "unknown category 'riot'"),
        ('actions = ["view_map"]\n[levels.grid]\nactions = ["veiw_map"]', "'veiw_map' is not decl"),
        ('[levels.grid]\ncompare_areas = "yes"', "compare_areas must be true or false"),
        ("[levels.wall]\npersonal_data = true", "a wall never shows personal data"),
        ("[levels.grid]\ncategories = 3", "categories must be a list"),
    ],
)
def test_pol005_a_malformed_policy_fails_with_one_line(tmp_path, text, needle):
    path = tmp_path / "policy.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert needle in message
    assert "\n" not in message and str(path) in message


def test_pol006_missing_policy_file_fails_loudly(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.toml")


def test_pol007_the_packaged_policy_loads_once():
    assert policy() is policy()
    assert load_policy() == policy()


def test_pol008_area_scope(demo_areas):
    street = person("street", "wx-hs-01")
    assert authorize(street, "view_map", "wx-hs-01")  # own area, no geography needed
    assert not authorize(street, "view_map", "wx-hs-01-001")  # below, but unprovable without geo
    assert authorize(street, "view_map", "wx-hs-01-001", demo_areas)
    assert authorize(street, "view_map", "wx-hs-01-001-01", demo_areas)
    assert not authorize(street, "view_map", "wx-hs-02", demo_areas)  # another street
    assert not authorize(street, "view_map", "wx-hs-02-001-01", demo_areas)  # its grid
    assert not authorize(street, "view_map", "wx-hs", demo_areas)  # the district above
    assert not authorize(street, "view_map", "no-such-area", demo_areas)
    assert not authorize(street, "launch", "wx-hs-01", demo_areas)  # in scope, action unknown
    grid = person("grid", "wx-hs-01-001-01")
    assert not authorize(grid, "view_map", "wx-hs-01-001-02", demo_areas)  # the neighbour
    city = person("city", demo_areas.root_id)
    assert all(authorize(city, "view_map", a, demo_areas) for a in demo_areas.frame.index[:50])
    ancestors = demo_areas.ancestors("wx-hs-01-001-01")
    assert in_scope(street, "wx-hs-01-001-01", ancestors)
    assert not in_scope(person("street", "wx-hs-02"), "wx-hs-01-001-01", ancestors)


def test_pol009_scope_filter_keeps_scope_and_strips_personal_data(demo_areas):
    records = [
        {"id": "a", "grid": "wx-hs-01-001-01", "category": "dispute", "reporter": "张三",
         "reporter_phone": "13800000000", "text": "noise"},
        {"id": "b", "grid": "wx-hs-01-001-02", "category": "petition", "reporter": "李四"},
        {"id": "c", "grid": "wx-hs-02-001-01", "category": "dispute", "reporter": "王五"},
        {"id": "d", "grid": "forged-area", "category": "dispute"},
        {"id": "e", "category": "dispute"},
    ]  # fmt: skip
    street = person("street", "wx-hs-01")
    kept = scope_filter(street, records, "grid", demo_areas)
    assert [r["id"] for r in kept] == ["a", "b"]
    assert kept[0]["reporter_phone"] == "13800000000"  # streets may see reporters

    community = person("community", "wx-hs-01-001")
    kept = scope_filter(community, records, "grid", demo_areas)
    # the petition in its own grid is dropped, and so are the reporter fields
    assert kept == [{"id": "a", "grid": "wx-hs-01-001-01", "category": "dispute", "text": "noise"}]
    assert records[0]["reporter"] == "张三"  # inputs untouched

    wall = User(id="wall:x", name="w", level="wall", area_id="wx", is_wall=True)
    kept = scope_filter(wall, records, "grid", demo_areas)
    assert [r["id"] for r in kept] == ["a", "b", "c"]
    assert not any("reporter" in r or "reporter_phone" in r for r in kept)
    assert scope_filter(None, records, "grid", demo_areas) == []
