"""Sign-in, sign-out and wall links: a Flask blueprint, plain server-rendered HTML (no Dash).

- ``GET /login`` shows a bilingual form (English and 简体中文 side by side) with a CSRF token kept
  in the session; ``POST /login`` checks the token (400 without it), the throttle, then the
  password. Success starts a fresh session (no fixation) and redirects to ``next`` when that is a
  local path, else to ``/``; a wrong name or password answers 401 and starts no session.
- Throttle: failed sign-ins are counted in Redis per user name (5) and per client address (20,
  higher because a command centre's officers may share one address behind NAT) over a fixed
  15-minute window that starts at the first failure. While a count is at its limit every attempt,
  even a right one, gets 429 with ``Retry-After`` (seconds until the window ends) and is not
  counted again. A success clears the name's count, not the address's.
- ``POST /logout`` ends the session. It needs no token: the session cookie is SameSite=Strict,
  so another site cannot make the browser send it.
- ``GET /wall/<token>`` signs a wall display in with its token (remembered for 90 days, so an
  unattended screen comes back after restarts) and redirects to ``/wall``; an unknown or revoked
  token gets 404 and no session.
- :func:`user_loader` is flask-login's loader: it re-reads the user or wall token from Redis on
  every request, so disabling a user, changing a password or revoking a token takes effect at once.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import flask
import flask_login
import redis

from cockpit.guard import PUBLIC, secure_route
from cockpit.policy import User
from cockpit.users import MAX_PASSWORD, load_user, load_wall, verify, wall_user

CSRF_KEY = "_csrf"
FAIL_KEY = "cockpit:signin:fail:{kind}:{who}"
FAIL_WINDOW_S = 15 * 60
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDRESS = 20
WALL_REMEMBER = timedelta(days=90)
WALL_HOME = "/wall"
#: Endpoints of this blueprint; all are public (they show nothing of the city).
PUBLIC_ENDPOINTS = frozenset({"signin.login", "signin.logout", "signin.wall"})


def user_loader(r: redis.Redis, user_id: str) -> User | None:
    """flask-login's user loader: "user:NAME:GENERATION" or "wall:TOKEN_ID", checked afresh.

    A disabled user, a changed password (new generation) or a revoked token gives None, so the
    session is anonymous from the next request on. Redis errors propagate (the caller decides
    between 503 and signing out).
    """
    if not isinstance(user_id, str):
        return None
    kind, _, rest = user_id.partition(":")
    if kind == "user":
        name, _, _generation = rest.rpartition(":")
        user = load_user(r, name)
        return user if user is not None and user.id == user_id else None
    if kind == "wall":
        return load_wall(r, rest)
    return None


def csrf_token() -> str:
    """This session's CSRF token (created on first use); put it in every form that POSTs."""
    token = flask.session.get(CSRF_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = flask.session[CSRF_KEY] = secrets.token_urlsafe(32)
    return token


def _csrf_ok() -> bool:
    sent = flask.request.form.get("csrf_token", "")
    kept = flask.session.get(CSRF_KEY)
    return isinstance(kept, str) and bool(sent) and hmac.compare_digest(sent, kept)


def safe_next(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site ("/officer?x=1"), else ``default``.

    Refuses absolute and scheme-relative URLs ("http://evil", "//evil", "/\\evil") and
    anything with control characters, so a sign-in link cannot send the user elsewhere.
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 32 or ch == "\\" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


class Throttle:
    """Failed sign-ins per user name and per client address, in Redis with expiry."""

    def __init__(
        self,
        r: redis.Redis,
        max_per_name: int = MAX_FAILURES_PER_NAME,
        max_per_address: int = MAX_FAILURES_PER_ADDRESS,
        window_s: int = FAIL_WINDOW_S,
    ) -> None:
        self.r = r
        self.limits = {"name": max_per_name, "addr": max_per_address}
        self.window_s = window_s

    def _keys(self, name: str, address: str) -> dict[str, str]:
        # Names are capped so a hostile form cannot make huge keys; they expire anyway.
        return {
            "name": FAIL_KEY.format(kind="name", who=name[:64]),
            "addr": FAIL_KEY.format(kind="addr", who=address[:64]),
        }

    def retry_after(self, name: str, address: str) -> int:
        """Seconds until an attempt is allowed again; 0 when it is allowed now."""
        keys = self._keys(name, address)
        with self.r.pipeline(transaction=False) as pipe:
            for kind in ("name", "addr"):
                pipe.get(keys[kind])
                pipe.ttl(keys[kind])
            name_count, name_ttl, addr_count, addr_ttl = pipe.execute()
        wait = 0
        for count, ttl, kind in ((name_count, name_ttl, "name"), (addr_count, addr_ttl, "addr")):
            if count is not None and int(count) >= self.limits[kind]:
                wait = max(wait, ttl if ttl > 0 else self.window_s)
        return wait

    def failed(self, name: str, address: str) -> None:
        """Count one failure; the window starts at a key's first failure (SET NX EX)."""
        with self.r.pipeline(transaction=True) as pipe:
            for key in self._keys(name, address).values():
                pipe.set(key, 0, ex=self.window_s, nx=True)
                pipe.incr(key)
            pipe.execute()

    def succeeded(self, name: str, address: str) -> None:
        self.r.delete(self._keys(name, address)["name"])


_LABELS = {
    "title": ("Sign in", "登录"),
    "name": ("User name", "用户名"),
    "password": ("Password", "密码"),
    "submit": ("Sign in", "登录"),
    "wrong": ("Wrong user name or password.", "用户名或密码错误。"),
    "throttled": (
        "Too many failed sign-ins. Try again in {m} min.",
        "登录失败次数过多，请 {m} 分钟后再试。",
    ),
    "bad_form": ("The form expired. Please sign in again.", "表单已过期，请重新登录。"),
    "bad_wall": (
        "This wall link is not valid (revoked or mistyped).",
        "此大屏链接无效（已撤销或有误）。",
    ),
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Cockpit · {{ labels.title[0] }} · 城市运行驾驶舱 · {{ labels.title[1] }}</title>
<link rel="stylesheet" href="/assets/signin.css">
</head>
<body class="signin">
<main class="signin-card">
<h1>City operations cockpit <span lang="zh-CN">城市运行驾驶舱</span></h1>
{% if message %}<p class="signin-error" role="alert">{{ message[0] }}
<span lang="zh-CN">{{ message[1] }}</span></p>{% endif %}
{% if form %}
<form method="post" action="{{ action }}" autocomplete="on">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next_url }}">
<label for="name">{{ labels.name[0] }} <span lang="zh-CN">{{ labels.name[1] }}</span></label>
<input id="name" name="name" value="{{ name }}" autocomplete="username" required
 autocapitalize="none" spellcheck="false" maxlength="64" autofocus>
<label for="password">{{ labels.password[0] }}
<span lang="zh-CN">{{ labels.password[1] }}</span></label>
<input id="password" name="password" type="password" autocomplete="current-password" required
 maxlength="{{ max_password }}">
<button type="submit">{{ labels.submit[0] }} · <span lang="zh-CN">{{ labels.submit[1] }}</span>
</button>
</form>
{% endif %}
</main>
</body>
</html>
"""


def _page(status: int, *, message: tuple[str, str] | None = None, name: str = "",
          next_url: str = "/", form: bool = True) -> flask.Response:  # fmt: skip
    # render_template_string autoescapes, so a name typed into the form comes back as text.
    body = flask.render_template_string(
        _PAGE,
        labels=_LABELS,
        message=message,
        form=form,
        action=flask.url_for("signin.login"),
        csrf=csrf_token() if form else "",
        next_url=next_url,
        name=name,
        max_password=MAX_PASSWORD,
    )
    resp = flask.Response(body, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def signin_blueprint(
    get_redis: Callable[[], redis.Redis],
    *,
    max_failures_per_name: int = MAX_FAILURES_PER_NAME,
    max_failures_per_address: int = MAX_FAILURES_PER_ADDRESS,
    window_s: int = FAIL_WINDOW_S,
) -> flask.Blueprint:
    """The sign-in routes (``/login``, ``/logout``, ``/wall/<token>``), all public.

    ``get_redis`` is called per request (the app's client is made lazily); the limits are
    parameters so a test can lower them.
    """
    bp = flask.Blueprint("signin", __name__)

    def throttle() -> Throttle:
        return Throttle(get_redis(), max_failures_per_name, max_failures_per_address, window_s)

    @bp.route("/login", methods=["GET", "POST"], endpoint="login")
    @secure_route(PUBLIC)
    def login() -> flask.Response:
        next_url = safe_next(flask.request.values.get("next"))
        if flask.request.method == "GET":
            return _page(200, next_url=next_url)
        if not _csrf_ok():
            return _page(400, message=_LABELS["bad_form"], next_url=next_url)
        name = flask.request.form.get("name", "").strip().lower()[:64]
        password = flask.request.form.get("password", "")
        address = flask.request.remote_addr or "unknown"
        limiter = throttle()
        wait = limiter.retry_after(name, address)
        if wait:
            minutes = max(1, -(-wait // 60))
            message = (_LABELS["throttled"][0].format(m=minutes),
                       _LABELS["throttled"][1].format(m=minutes))  # fmt: skip
            resp = _page(429, message=message, name=name, next_url=next_url)
            resp.headers["Retry-After"] = str(wait)
            return resp
        user = verify(get_redis(), name, password)
        if user is None:
            limiter.failed(name, address)
            return _page(401, message=_LABELS["wrong"], name=name, next_url=next_url)
        limiter.succeeded(name, address)
        flask.session.clear()  # a fresh session: nothing from before sign-in carries over
        flask_login.login_user(user)
        return flask.redirect(next_url, code=303)

    @bp.route("/logout", methods=["POST"], endpoint="logout")
    @secure_route(PUBLIC)
    def logout() -> flask.Response:
        flask_login.logout_user()
        flask.session.clear()
        return flask.redirect(flask.url_for("signin.login"), code=303)

    @bp.route("/wall/<token>", methods=["GET"], endpoint="wall")
    @secure_route(PUBLIC)
    def wall(token: str) -> flask.Response:
        user = wall_user(get_redis(), token)
        if user is None:
            flask_login.logout_user()
            flask.session.clear()
            return _page(404, message=_LABELS["bad_wall"], form=False)
        flask.session.clear()
        flask_login.login_user(user, remember=True, duration=WALL_REMEMBER)
        resp = flask.redirect(WALL_HOME, code=303)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return bp
