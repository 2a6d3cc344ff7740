"""Users and wall tokens in a real Redis: hashes only, verify, disable, tokens, demo users, CLI."""

from __future__ import annotations

import argparse

import pytest
from argon2 import PasswordHasher

from cockpit.cli_users import print_demo_sign_ins, register
from cockpit.settings import Settings
from cockpit.signin import user_loader
from cockpit.users import (
    HASHER,
    USER_KEY,
    USERS_SET,
    WALL_KEY,
    add_user,
    check_area_fits,
    create_wall_token,
    disable_user,
    enable_user,
    ensure_demo_users,
    list_users,
    list_wall_tokens,
    load_user,
    revoke_wall_token,
    set_password,
    token_id,
    verify,
    wall_user,
)

PASSWORD = "correct horse battery"


def all_bytes(r) -> bytes:
    """Every key and value in the database, for scanning for secrets."""
    out = []
    for key in r.scan_iter():
        out.append(key)
        kind = r.type(key)
        if kind == b"hash":
            for k, v in r.hgetall(key).items():
                out += [k, v]
        elif kind == b"set":
            out += list(r.smembers(key))
        elif kind == b"string":
            out.append(r.get(key))
    return b"\n".join(out)


def test_usr001_password_stored_only_as_argon2(r):
    add_user(r, "li.wei", PASSWORD, "street", "wx-hs-01", lang="zh-CN", display="李伟")
    stored = r.hgetall(USER_KEY.format(name="li.wei"))
    assert stored[b"password_hash"].startswith(b"$argon2id$")
    assert PASSWORD.encode() not in all_bytes(r)
    assert r.smembers(USERS_SET) == {b"li.wei"}
    assert stored[b"created"] and stored[b"created"] == stored[b"updated"]
    [listed] = list_users(r)
    assert (listed.name, listed.level, listed.area_id, listed.lang, listed.display) == (
        "li.wei", "street", "wx-hs-01", "zh-CN", "李伟",
    )  # fmt: skip
    assert not hasattr(listed, "password_hash")


def test_usr002_verify_right_and_wrong_password(r):
    add_user(r, "li.wei", PASSWORD, "street", "wx-hs-01")
    user = verify(r, "li.wei", PASSWORD)
    assert user is not None
    assert (user.name, user.level, user.area_id, user.is_wall) == (
        "li.wei", "street", "wx-hs-01", False,
    )  # fmt: skip
    assert verify(r, " Li.Wei ", PASSWORD) == user  # names are case-folded at sign-in
    assert verify(r, "li.wei", PASSWORD + "x") is None
    assert verify(r, "li.wei", "") is None
    assert verify(r, "nobody", PASSWORD) is None
    assert verify(r, "../../etc", PASSWORD) is None


def test_usr003_inputs_are_checked_with_the_field_named(r):
    cases = [
        (("Bad Name", PASSWORD, "grid", "g"), "name:"),
        (("ok", "short", "grid", "g"), "password: must have at least 10"),
        (("ok", PASSWORD, "mayor", "g"), "level: 'mayor'"),
        (("ok", PASSWORD, "grid", ""), "area_id:"),
    ]
    for args, needle in cases:
        with pytest.raises(ValueError, match=needle):
            add_user(r, *args)
    with pytest.raises(ValueError, match="lang:"):
        add_user(r, "ok", PASSWORD, "grid", "g", lang="fr")
    with pytest.raises(ValueError, match="display: must not contain control"):
        add_user(r, "ok", PASSWORD, "grid", "g", display="a\x1b[31mb")
    assert r.dbsize() == 0  # nothing half-stored
    add_user(r, "ok", PASSWORD, "grid", "g")
    with pytest.raises(ValueError, match="name: user 'ok' already exists"):
        add_user(r, "ok", PASSWORD, "city", "wx")
    assert load_user(r, "ok").level == "grid"
    with pytest.raises(ValueError, match="name: no user"):
        set_password(r, "ghost", PASSWORD)


def test_usr004_area_must_exist_and_fit_the_level(demo_areas):
    check_area_fits(demo_areas, "street", "wx-hs-01")
    check_area_fits(demo_areas, "grid", "wx-hs-01-001-01")
    check_area_fits(demo_areas, "grid", "wx-hs-sp-001")  # a special grid is a grid's scope
    check_area_fits(demo_areas, "city", demo_areas.root_id)
    with pytest.raises(ValueError, match="area_id: 'wx-hs-01' is a street, but the user's level"):
        check_area_fits(demo_areas, "grid", "wx-hs-01")
    with pytest.raises(ValueError, match="area_id: no area 'wx-nowhere'"):
        check_area_fits(demo_areas, "street", "wx-nowhere")


def test_usr005_disabled_user_cannot_sign_in_and_session_ends(r):
    add_user(r, "zhao", PASSWORD, "grid", "wx-hs-01-001-01")
    session_id = verify(r, "zhao", PASSWORD).get_id()
    assert user_loader(r, session_id).name == "zhao"
    disable_user(r, "zhao")
    assert verify(r, "zhao", PASSWORD) is None
    assert load_user(r, "zhao") is None
    assert user_loader(r, session_id) is None  # the open session stops at its next request
    enable_user(r, "zhao")
    assert verify(r, "zhao", PASSWORD) is not None
    assert user_loader(r, session_id) is None  # enabling does not revive old sessions


def test_usr006_new_password_ends_sessions_and_old_password(r):
    add_user(r, "zhao", PASSWORD, "grid", "wx-hs-01-001-01")
    old_session = verify(r, "zhao", PASSWORD).get_id()
    set_password(r, "zhao", "another long secret")
    assert verify(r, "zhao", PASSWORD) is None
    fresh = verify(r, "zhao", "another long secret")
    assert fresh is not None and fresh.get_id() != old_session
    assert user_loader(r, old_session) is None
    assert user_loader(r, fresh.get_id()).name == "zhao"
    # ids the server never issued get nobody
    for forged in ("zhao", "user:zhao", "user:zhao:99", "admin:zhao", "wall:zhao", ""):
        assert user_loader(r, forged) is None, forged


def test_usr007_weak_hash_parameters_are_rehashed_on_sign_in(r):
    add_user(r, "zhao", PASSWORD, "grid", "wx-hs-01-001-01")
    key = USER_KEY.format(name="zhao")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    r.hset(key, "password_hash", weak)
    assert verify(r, "zhao", PASSWORD) is not None
    renewed = r.hget(key, "password_hash").decode()
    assert renewed != weak and not HASHER.check_needs_rehash(renewed)
    assert verify(r, "zhao", PASSWORD) is not None


def test_usr008_wall_token_create_verify_revoke(r):
    token = create_wall_token(r, "wx-hs", "Huishan centre, left", lang="zh-CN")
    assert len(token) >= 40
    assert token.encode() not in all_bytes(r)  # only its SHA-256 is stored
    assert r.exists(WALL_KEY.format(token_id=token_id(token)))
    wall = wall_user(r, token)
    assert wall is not None
    assert (wall.level, wall.is_wall, wall.area_id, wall.lang) == ("wall", True, "wx-hs", "zh-CN")
    assert wall.get_id() == f"wall:{token_id(token)}" and token not in wall.get_id()
    assert user_loader(r, wall.get_id()) == wall
    assert wall_user(r, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert wall_user(r, "") is None

    other = create_wall_token(r, "wx-hs-01", "street screen")
    [first, second] = list_wall_tokens(r)
    assert {first.area_id, second.area_id} == {"wx-hs", "wx-hs-01"}
    assert not first.revoked and not second.revoked

    revoked = revoke_wall_token(r, token_id(token)[:8])
    assert revoked.revoked and revoked.area_id == "wx-hs"
    assert wall_user(r, token) is None
    assert user_loader(r, wall.get_id()) is None  # the display's session ends at once
    assert wall_user(r, other) is not None  # the other display is untouched
    with pytest.raises(ValueError, match="token_id: give at least 6"):
        revoke_wall_token(r, "ab")
    with pytest.raises(ValueError, match="token_id: no wall token"):
        revoke_wall_token(r, "ffffffffffff" if not token_id(other).startswith("f") else "000000")
    with pytest.raises(ValueError, match="label: must not be empty"):
        create_wall_token(r, "wx", "  ")


def test_usr009_demo_users_one_per_level(r, demo_areas, capsys):
    made = ensure_demo_users(r, demo_areas)
    assert [(n, lv, a) for n, _p, lv, a in made] == [
        ("demo-grid", "grid", "wx-hs-01-001-01"),
        ("demo-community", "community", "wx-hs-01-001"),
        ("demo-street", "street", "wx-hs-01"),
        ("demo-district", "district", "wx-hs"),
        ("demo-city", "city", "wx"),
    ]
    assert all(password and len(password) >= 10 for _n, password, _l, _a in made)
    assert len({password for _n, password, _l, _a in made}) == 5
    # Again, as the demo prints it: same users and areas, fresh passwords, old ones dead.
    disable_user(r, "demo-street")
    print_demo_sign_ins(r, demo_areas, "http://127.0.0.1:8050/")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Sign in at http://127.0.0.1:8050/login")
    rows = {row[1]: row for row in (line.split() for line in lines[1:])}
    assert [(row[0], name, row[-1]) for name, row in rows.items()] == [
        (lv, n, a) for n, _p, lv, a in made
    ]
    assert len(list_users(r)) == 5
    assert rows["demo-street"][2] == "(disabled"  # an operator disabled it: it stays disabled
    old = dict((n, p) for n, p, _l, _a in made)
    assert verify(r, "demo-street", old["demo-street"]) is None
    for name in ("demo-grid", "demo-city"):  # (two suffice; each check is an argon2 hash)
        new = rows[name][2]
        assert new != old[name] and verify(r, name, old[name]) is None
        assert verify(r, name, new).level == rows[name][0]


# -- the CLI handlers (in-process, against the same real Redis) ---------------------------------


def cli(redis_url: str, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="cockpit")
    sub = parser.add_subparsers()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--redis-url")
    register(sub, common)
    args = parser.parse_args(list(argv))
    return args.handler(args, Settings.from_env({"COCKPIT_REDIS_URL": redis_url}))


def test_usr010_cli_users_add_list_disable_passwd(r, redis_url, loaded_city, tmp_path, capsys):
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n", "utf-8")
    code = cli(redis_url, "users", "add", "wang", "--level", "community", "--area",
               "wx-hs-01-001", "--password-file", str(secret))  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert verify(r, "wang", PASSWORD).area_id == "wx-hs-01-001"  # trailing newline not kept

    code = cli(redis_url, "users", "add", "li", "--level", "grid", "--area", "wx-hs-01",
               "--password-file", str(secret))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "area_id: 'wx-hs-01' is a street, but the user's level is grid" in err
    code = cli(redis_url, "users", "add", "li", "--level", "grid", "--area", "nowhere",
               "--password-file", str(secret))  # fmt: skip
    assert code == 2 and "no area 'nowhere'" in capsys.readouterr().err
    assert load_user(r, "li") is None

    assert cli(redis_url, "users", "list") == 0
    out = capsys.readouterr().out
    assert "wang" in out and "community" in out and "argon2" not in out

    assert cli(redis_url, "users", "disable", "wang") == 0
    assert verify(r, "wang", PASSWORD) is None
    assert cli(redis_url, "users", "disable", "ghost") == 2
    assert "name: no user 'ghost'" in capsys.readouterr().err

    secret.write_text("a brand new secret", "utf-8")
    assert cli(redis_url, "users", "enable", "wang") == 0
    assert cli(redis_url, "users", "passwd", "wang", "--password-file", str(secret)) == 0
    assert verify(r, "wang", "a brand new secret") is not None
    secret.write_text("short", "utf-8")
    assert cli(redis_url, "users", "passwd", "wang", "--password-file", str(secret)) == 2
    assert "password: must have at least 10" in capsys.readouterr().err


def test_usr011_cli_password_never_a_plain_flag():
    with pytest.raises(SystemExit):
        cli("redis://unused", "users", "add", "x", "--level", "grid", "--area", "g",
            "--password", PASSWORD)  # fmt: skip


def test_usr012_cli_wall_tokens(r, redis_url, loaded_city, capsys):
    assert cli(redis_url, "wall-token", "create", "--area", "wx-hs", "--label", "centre") == 0
    out = capsys.readouterr().out
    token = out.split("/wall/")[1].split()[0]
    assert wall_user(r, token).area_id == "wx-hs"
    assert cli(redis_url, "wall-token", "create", "--area", "nowhere") == 2
    assert "no area 'nowhere'" in capsys.readouterr().err

    assert cli(redis_url, "wall-token", "list") == 0
    out = capsys.readouterr().out
    assert token_id(token)[:12] in out and token not in out and "active" in out
    assert cli(redis_url, "wall-token", "revoke", token_id(token)[:12]) == 0
    assert wall_user(r, token) is None
    cli(redis_url, "wall-token", "list")
    assert "revoked" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [["users"], ["users", "add"], ["users", "list"], ["users", "disable"], ["users", "enable"],
     ["users", "passwd"], ["wall-token"], ["wall-token", "create"], ["wall-token", "list"],
     ["wall-token", "revoke"]],
    ids=" ".join,
)  # fmt: skip
def test_usr013_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli("redis://unused", *command, "--help")
    assert done.value.code == 0
    assert "usage: cockpit " + " ".join(command) in capsys.readouterr().out


def test_usr014_password_from_stdin(r, redis_url, loaded_city, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\nignored\n"))
    code = cli(redis_url, "users", "add", "qian", "--level", "district", "--area", "wx-hs",
               "--password-stdin")  # fmt: skip
    assert code == 0
    assert verify(r, "qian", PASSWORD).level == "district"
