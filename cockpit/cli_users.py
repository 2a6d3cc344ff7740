"""``cockpit users …`` and ``cockpit wall-token …``: who may sign in, and wall display links.

Passwords never come as a plain flag (it would sit in shell history and ``ps``): they are read
from ``--password-file``, from standard input with ``--password-stdin``, or asked for twice.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cockpit.cli_common import Commands
from cockpit.settings import LANGUAGES, Settings
from cockpit.users import USER_LEVELS

if TYPE_CHECKING:
    import redis

    from geo.areas import AreaSet


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``users`` and ``wall-token`` commands to the ``cockpit`` subparsers."""
    commands = Commands(subparsers, common)
    users = commands.group(
        "users", help="add, list, disable users and set passwords",
        description="People who may sign in: each has a level, an area (their scope) and a "
        "language. Passwords are stored as argon2id hashes only.", title="user commands",
    )  # fmt: skip
    add = users.add(
        "add", cmd_users_add, help="add a user",
        description="Add a user. The area must exist in the loaded grids and be of the user's "
        "level (a grid user may also have a special grid). The password (at least 10 "
        "characters) comes from --password-file, --password-stdin or a prompt.",
    )  # fmt: skip
    add.add_argument("name", help="user name: 2-64 of a-z 0-9 . _ -")
    add.add_argument("--level", required=True, choices=USER_LEVELS, help="the user's level")
    add.add_argument("--area", required=True, help="id of the user's area (their scope)")
    add.add_argument("--lang", default="en", choices=LANGUAGES, help="language (default en)")
    add.add_argument("--display", help="display name (default: the user name)")
    _password_flags(add)

    users.add("list", cmd_users_list, help="list users",
              description="List users (never their password hashes).")  # fmt: skip

    dis = users.add(
        "disable", cmd_users_disable, help="disable a user",
        description="Disable a user: no more sign-ins, and open sessions end at once.",
    )  # fmt: skip
    dis.add_argument("name", help="user name")

    ena = users.add("enable", cmd_users_enable, help="enable a disabled user",
                    description="Allow a disabled user to sign in again.")  # fmt: skip
    ena.add_argument("name", help="user name")

    pw = users.add(
        "passwd", cmd_users_passwd, help="set a user's password",
        description="Set a new password (at least 10 characters); the user's open sessions end.",
    )  # fmt: skip
    pw.add_argument("name", help="user name")
    _password_flags(pw)

    walls = commands.group(
        "wall-token", help="create, list and revoke wall display links",
        description="A wall token is a revocable, read-only link (/wall/TOKEN) that signs a "
        "display in for one area. It never shows personal data. Only a hash is stored: the "
        "token is shown once, when it is created.", title="wall-token commands",
    )  # fmt: skip
    create = walls.add("create", cmd_wall_create, help="create a wall link for an area",
                       description="Create a wall token and print its link.")  # fmt: skip
    create.add_argument("--area", required=True, help="id of the area the wall shows")
    create.add_argument("--label", help="what the display is, e.g. 'Huishan centre, left'")
    create.add_argument("--lang", default="en", choices=LANGUAGES, help="language (default en)")
    walls.add("list", cmd_wall_list, help="list wall tokens",
              description="List wall tokens by id (never the token).")  # fmt: skip
    revoke = walls.add(
        "revoke", cmd_wall_revoke, help="revoke a wall token",
        description="Revoke a wall token by its id or the first characters of it (from "
        "`cockpit wall-token list`); the display is signed out at its next request.",
    )  # fmt: skip
    revoke.add_argument("token_id", help="token id, or at least its first 6 characters")


def _password_flags(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--password-file", help="read the password from the first line of a file")
    src.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")  # fmt: skip


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            text = Path(args.password_file).read_text("utf-8")
        except OSError as exc:
            raise ValueError(f"password-file: cannot read {args.password_file} ({exc})") from exc
        return text.splitlines()[0] if text else ""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Same password again: ") != first:
        raise ValueError("password: the two entries differ")
    return first


def _fail(command: str, message: object, code: int = 2) -> int:
    print(f"cockpit {command}: {message}", file=sys.stderr)
    return code


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.areastore import NoAreasError, load_geography
    from cockpit.cli import _client
    from cockpit.users import add_user, check_area_fits, check_password

    try:
        password = check_password(_read_password(args))
    except ValueError as exc:
        return _fail("users add", exc)
    client, release = _client(settings)
    try:
        check_area_fits(load_geography(client).areas, args.level, args.area)
        user = add_user(client, args.name, password, args.level, args.area, args.lang,
                        args.display)  # fmt: skip
    except NoAreasError as exc:
        return _fail("users add", exc, 1)
    except ValueError as exc:
        return _fail("users add", exc)
    finally:
        release()
    print(f"Added {user.name} ({user.level}, area {user.area_id}, {user.lang}).")
    return 0


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.cli import _client
    from cockpit.users import list_users

    client, release = _client(settings)
    try:
        users = list_users(client)
    finally:
        release()
    if not users:
        print("No users. Add one with `cockpit users add NAME --level L --area AREA`.")
        return 0
    print(f"{'name':<20}{'level':<11}{'area':<22}{'lang':<7}{'state':<10}{'updated':<22}display")
    for u in users:
        state = "disabled" if u.disabled else "active"
        print(f"{u.name:<20}{u.level:<11}{u.area_id:<22}{u.lang:<7}{state:<10}{u.updated:<22}"
              f"{u.display}")  # fmt: skip
    return 0


def _user_change(command: str, args: argparse.Namespace, settings: Settings, change) -> int:
    from cockpit.cli import _client

    client, release = _client(settings)
    try:
        change(client)
    except ValueError as exc:
        return _fail(command, exc)
    finally:
        release()
    return 0


def cmd_users_disable(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.users import disable_user

    code = _user_change("users disable", args, settings, lambda c: disable_user(c, args.name))
    if code == 0:
        print(f"Disabled {args.name}; their open sessions have ended.")
    return code


def cmd_users_enable(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.users import enable_user

    code = _user_change("users enable", args, settings, lambda c: enable_user(c, args.name))
    if code == 0:
        print(f"Enabled {args.name}.")
    return code


def cmd_users_passwd(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.users import check_password, set_password

    try:
        password = check_password(_read_password(args))
    except ValueError as exc:
        return _fail("users passwd", exc)
    code = _user_change("users passwd", args, settings,
                        lambda c: set_password(c, args.name, password))  # fmt: skip
    if code == 0:
        print(f"Password of {args.name} set; their open sessions have ended.")
    return code


def cmd_wall_create(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.areastore import NoAreasError, load_geography
    from cockpit.cli import _client
    from cockpit.users import create_wall_token

    client, release = _client(settings)
    try:
        areas = load_geography(client).areas
        if args.area not in areas:
            return _fail("wall-token create", f"area: no area {args.area!r} in the loaded grids")
        label = args.label or f"wall {args.area}"
        token = create_wall_token(client, args.area, label, args.lang)
    except NoAreasError as exc:
        return _fail("wall-token create", exc, 1)
    except ValueError as exc:
        return _fail("wall-token create", exc)
    finally:
        release()
    print(f"Wall link for {args.area} ({label}); shown only now, keep it like a password:")
    print(f"  http://{settings.host}:{settings.port}/wall/{token}")
    print("Revoke it with `cockpit wall-token revoke ID` (ids: `cockpit wall-token list`).")
    return 0


def cmd_wall_list(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.cli import _client
    from cockpit.users import list_wall_tokens

    client, release = _client(settings)
    try:
        walls = list_wall_tokens(client)
    finally:
        release()
    if not walls:
        print("No wall tokens. Create one with `cockpit wall-token create --area AREA`.")
        return 0
    print(f"{'id':<14}{'area':<22}{'state':<9}{'created':<22}label")
    for w in walls:
        state = "revoked" if w.revoked else "active"
        print(f"{w.token_id[:12]:<14}{w.area_id:<22}{state:<9}{w.created:<22}{w.label}")
    return 0


def cmd_wall_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.cli import _client
    from cockpit.users import revoke_wall_token

    client, release = _client(settings)
    try:
        wall = revoke_wall_token(client, args.token_id)
    except ValueError as exc:
        return _fail("wall-token revoke", exc)
    finally:
        release()
    print(f"Revoked {wall.token_id[:12]} ({wall.area_id}, {wall.label}); display signed out.")
    return 0


def print_demo_sign_ins(client: redis.Redis, areas: AreaSet, url: str) -> None:
    """Create (or refresh) the demo users, one per level, and print how to sign in as each.

    For ``cockpit demo``: every start prints fresh passwords (sessions of the last run end).
    """
    from cockpit.users import ensure_demo_users

    print(f"Sign in at {url.rstrip('/')}/login as one of (new passwords on each start):")
    for name, password, level, area_id in ensure_demo_users(client, areas):
        shown = password if password is not None else "(disabled by an operator)"
        print(f"  {level:<10} {name:<16} {shown:<18} area {area_id}")
