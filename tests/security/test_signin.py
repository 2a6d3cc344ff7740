"""The sign-in blueprint on a minimal Flask app, with flask-login and the real guard and Redis."""

from __future__ import annotations

import re

import flask
import flask_login
import pytest

from cockpit.guard import ACTION_ATTR, PUBLIC, secure_route
from cockpit.signin import (
    FAIL_WINDOW_S,
    PUBLIC_ENDPOINTS,
    safe_next,
    signin_blueprint,
    user_loader,
)
from cockpit.users import add_user, create_wall_token, disable_user, revoke_wall_token, token_id

PASSWORD = "correct horse battery"
COOKIE = "cockpit_session"


def make_app(r, **limits) -> flask.Flask:
    app = flask.Flask("signin-test")
    app.config.update(
        SECRET_KEY="test-secret",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME=COOKIE,
    )
    login = flask_login.LoginManager(app)
    login.session_protection = "strong"
    login.user_loader(lambda user_id: user_loader(r, user_id))
    app.register_blueprint(signin_blueprint(lambda: r, **limits))

    @app.route("/me")
    @secure_route("view_map")
    def me(user):
        return user.get_id()

    return app


@pytest.fixture
def app(r):
    add_user(r, "li.wei", PASSWORD, "street", "wx-hs-01")
    return make_app(r)


def csrf(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, name="li.wei", password=PASSWORD, token=None, **extra):
    form = {"name": name, "password": password, **extra}
    form["csrf_token"] = csrf(client) if token is None else token
    return client.post("/login", data=form)


def signed_in_as(client) -> str | None:
    resp = client.get("/me")
    return resp.get_data(as_text=True) if resp.status_code == 200 else None


def test_sgn001_right_password_starts_a_session(app):
    client = app.test_client()
    assert signed_in_as(client) is None
    resp = sign_in(client)
    assert resp.status_code == 303 and resp.headers["Location"] == "/"
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert signed_in_as(client).startswith("user:li.wei:")


def test_sgn002_wrong_password_gets_401_and_no_session(app):
    client = app.test_client()
    resp = sign_in(client, password="wrong password!")
    assert resp.status_code == 401
    assert "Wrong user name or password" in resp.get_data(as_text=True)
    assert signed_in_as(client) is None
    with client.session_transaction() as sess:
        assert "_user_id" not in sess
    assert sign_in(client, name="nobody").status_code == 401


def test_sgn003_sixth_failure_gets_429_even_with_the_right_password(app, r):
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, password="wrong password!").status_code == 401
    resp = sign_in(client)  # the right password, but the name is throttled
    assert resp.status_code == 429
    assert 0 < int(resp.headers["Retry-After"]) <= FAIL_WINDOW_S
    assert "Too many failed sign-ins" in resp.get_data(as_text=True)
    assert signed_in_as(client) is None
    assert int(r.get("cockpit:signin:fail:name:li.wei")) == 5  # refused attempts aren't counted
    # another name from the same address is still let through (the address limit is higher)
    add_user(r, "zhao", PASSWORD, "grid", "wx-hs-01-001-01")
    assert sign_in(client, name="zhao").status_code == 303
    # the window ends when the count's key expires (deleted here instead of waiting 15 min)
    assert 0 < r.ttl("cockpit:signin:fail:name:li.wei") <= FAIL_WINDOW_S
    r.delete("cockpit:signin:fail:name:li.wei")
    assert sign_in(client).status_code == 303


def test_sgn004_failures_are_also_limited_per_address(r):
    app = make_app(r, max_failures_per_address=3)
    client = app.test_client()
    for name in ("a1", "a2", "a3"):
        assert sign_in(client, name=name).status_code == 401
    assert sign_in(client, name="a4").status_code == 429
    other = app.test_client()
    resp = sign_in(other, name="a5")
    assert resp.status_code == 429  # same address, fresh cookies: still throttled
    client_elsewhere = app.test_client()
    token = csrf(client_elsewhere)
    resp = client_elsewhere.post(
        "/login",
        data={"name": "a6", "password": PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert resp.status_code == 401  # another address is judged on its own


def test_sgn005_missing_or_wrong_csrf_token_gets_400(app, r):
    client = app.test_client()
    resp = client.post("/login", data={"name": "li.wei", "password": PASSWORD})
    assert resp.status_code == 400
    assert sign_in(client, token="forged-token").status_code == 400
    fresh = app.test_client()  # a token from another session is no good either
    assert sign_in(fresh, token=csrf(client)).status_code == 400
    assert signed_in_as(client) is None and signed_in_as(fresh) is None
    assert r.get("cockpit:signin:fail:name:li.wei") is None  # not counted as password failures


NEXT_TARGETS = [
    ("/officer?grid=wx-hs-01-001-01", "/officer?grid=wx-hs-01-001-01"),
    ("/leader", "/leader"),
    ("http://evil.example/", "/"),
    ("//evil.example/", "/"),
    ("/\\evil.example/", "/"),
    ("javascript:alert(1)", "/"),
    ("https:evil.example", "/"),
    ("/\r\nSet-Cookie: x=1", "/"),
    ("", "/"),
    (None, "/"),
]


def test_sgn006_next_only_to_local_paths(app):
    for target, expected in NEXT_TARGETS:
        assert safe_next(target) == expected, target
    for target, expected in (("http://evil.example/", "/"), ("/leader?x=1", "/leader?x=1")):
        client = app.test_client()
        resp = sign_in(client, next=target)
        assert resp.status_code == 303
        assert resp.headers["Location"] == expected


def test_sgn007_logout_clears_the_session(app):
    client = app.test_client()
    sign_in(client)
    assert signed_in_as(client)
    assert client.get("/logout").status_code == 405  # a link or <img> cannot sign anyone out
    assert signed_in_as(client)
    resp = client.post("/logout")
    assert resp.status_code == 303 and resp.headers["Location"] == "/login"
    assert signed_in_as(client) is None
    with client.session_transaction() as sess:
        assert dict(sess) == {}


def test_sgn008_no_session_fixation(app):
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    sign_in(client)
    with client.session_transaction() as sess:
        assert "planted" not in sess


def test_sgn009_disabled_user_session_stops_at_once(app, r):
    client = app.test_client()
    sign_in(client)
    assert signed_in_as(client)
    disable_user(r, "li.wei")
    assert signed_in_as(client) is None
    assert sign_in(client).status_code == 401


def test_sgn010_wall_token_signs_a_display_in_until_revoked(app, r):
    token = create_wall_token(r, "wx-hs", "Huishan centre")
    wall = app.test_client()
    resp = wall.get(f"/wall/{token}")
    assert resp.status_code == 303 and resp.headers["Location"] == "/wall"
    assert signed_in_as(wall) == f"wall:{token_id(token)}"
    # the session cookie goes (browser restart): the remember cookie signs the wall in again
    wall.delete_cookie(COOKIE)
    assert signed_in_as(wall) == f"wall:{token_id(token)}"

    revoke_wall_token(r, token_id(token))
    assert signed_in_as(wall) is None  # at its next request
    wall.delete_cookie(COOKIE)
    assert signed_in_as(wall) is None  # nor through the remember cookie

    again = app.test_client()
    resp = again.get(f"/wall/{token}")
    assert resp.status_code == 404
    assert signed_in_as(again) is None
    with again.session_transaction() as sess:
        assert "_user_id" not in sess
    assert app.test_client().get("/wall/not-a-token").status_code == 404


def test_sgn011_typed_text_comes_back_as_text(app):
    client = app.test_client()
    page = sign_in(client, name="<script>alert(1)</script>").get_data(as_text=True)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_sgn012_every_signin_route_has_a_public_decision(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()} - {"static", "me"}
    assert endpoints == PUBLIC_ENDPOINTS
    for endpoint in endpoints:
        assert getattr(app.view_functions[endpoint], ACTION_ATTR) == PUBLIC


def test_sgn013_login_page_is_bilingual_and_not_cached(app):
    resp = app.test_client().get("/login?next=/leader")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert "User name" in page and "用户名" in page and "密码" in page
    assert 'name="next" value="/leader"' in page
