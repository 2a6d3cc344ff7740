"""The web application: a Flask server we create (login, headers, the deny-by-default gate and
geometry routes live here) handed to Dash, whose callbacks register from ``callbacks/``."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import dash
import flask
import flask_login
import redis
from dash.exceptions import DependencyException

from cockpit import ids, served_geo
from cockpit.areastore import Geography, load_geography, load_reference
from cockpit.embedded_redis import resolve_redis_url
from cockpit.guard import ACTION_ATTR, PUBLIC, secure_route
from cockpit.policy import User, policy
from cockpit.settings import LANGUAGES, Settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"
LANG_COOKIE = "cockpit_lang"
# Our endpoints that need no session (they show nothing of the city).
PUBLIC_ENDPOINTS = {"healthz", "set_lang"}


class Runtime:
    """Per-process handles: settings and the Redis client (state itself lives in Redis)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: redis.Redis | None = None

    @property
    def redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                resolve_redis_url(self.settings),
                socket_timeout=5,
                socket_connect_timeout=2,
                health_check_interval=10,
            )
        return self._client

    def geography(self) -> Geography:
        return load_geography(self.redis)


def runtime() -> Runtime:
    return flask.current_app.extensions["cockpit"]


def request_lang(user: User | None) -> str:
    lang = flask.request.cookies.get(LANG_COOKIE)
    if lang in LANGUAGES:
        return lang
    return user.lang if user else runtime().settings.lang


class CallbackRegistry:
    """Every callback of ``callbacks/``, kept for the process so each app gets them all.

    Callback modules register through ``dash.callback`` on import (they never import the app),
    into Dash's process-wide lists; Dash *moves* those into the first app that serves a request,
    so a second app in the same process (tests, a server built twice) would get none. Here they
    are taken out of Dash's lists and copied into every app we create. A module registering
    again later (a reload) replaces its earlier entries, as it would in a fresh process.
    """

    def __init__(self) -> None:
        self.callback_map: dict[str, dict] = {}
        self.specs: dict[str, dict] = {}  # callback id -> what /_dash-dependencies lists
        self.inline_scripts: list[str] = []

    def collect(self) -> None:
        """Move what ``dash.callback`` registered since the last call into this registry."""
        from dash import _callback as registered

        import callbacks  # noqa: F401  (importing the package registers every module once)

        self.callback_map.update(registered.GLOBAL_CALLBACK_MAP)
        self.specs.update((spec["output"], spec) for spec in registered.GLOBAL_CALLBACK_LIST)
        self.inline_scripts += [
            s for s in registered.GLOBAL_INLINE_SCRIPTS if s not in self.inline_scripts
        ]
        registered.GLOBAL_CALLBACK_MAP.clear()
        registered.GLOBAL_CALLBACK_LIST.clear()
        registered.GLOBAL_INLINE_SCRIPTS.clear()

    def install(self, app: dash.Dash) -> None:
        """Give ``app`` its own copies of every registered callback (before its first request)."""
        self.collect()
        app.callback_map.update({k: dict(v) for k, v in self.callback_map.items()})
        app._callback_list.extend(dict(spec) for spec in self.specs.values())
        app._inline_scripts.extend(self.inline_scripts)


_CALLBACKS = CallbackRegistry()


def create_app(settings: Settings) -> dash.Dash:
    server = flask.Flask("cockpit")
    server.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME="cockpit_session",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Strict",
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=12 * 3600,
    )
    server.extensions["cockpit"] = Runtime(settings)
    policy()  # a broken policy file stops start-up here, with one line
    _init_login(server)
    _add_routes(server)
    from cockpit.heat_routes import heat_blueprint

    server.register_blueprint(heat_blueprint())
    if settings.push == "sse":
        from cockpit.push import PushLimits, push_blueprint

        limits = PushLimits(max_streams=settings.push_streams)
        server.register_blueprint(
            push_blueprint(
                lambda: runtime().redis,
                lambda: runtime().geography(),
                limits,
                {f: settings.stale_after_ms(f) for f in ("incidents", "gauges", "trucks")},
            )
        )

    app = dash.Dash(
        __name__,
        server=server,
        assets_folder=str(ASSETS),
        title="Cockpit",
        update_title=None,
        serve_locally=True,
        suppress_callback_exceptions=True,
    )
    _CALLBACKS.install(app)
    _add_headers(server, settings, app.csp_hashes())

    from cockpit.layout import serve_layout

    app.layout = serve_layout
    # Dash prepares itself on the first request, and threads of one gunicorn worker can race
    # through that (a script request then 500s). One warm-up request, before any traffic, ends it.
    server.test_client().get("/_favicon.ico")
    return app


def _init_login(server: flask.Flask) -> None:
    from cockpit import signin

    login = flask_login.LoginManager(server)
    login.session_protection = "strong"

    @login.user_loader
    def load_user(user_id: str) -> User | None:
        return signin.user_loader(runtime().redis, user_id)

    server.register_blueprint(signin.signin_blueprint(lambda: runtime().redis))

    @server.before_request
    def gate() -> flask.Response | None:
        """Deny by default: every request but the public ones needs a session user."""
        endpoint = flask.request.endpoint or ""
        rule = flask.request.url_rule.rule if flask.request.url_rule else ""
        if (
            endpoint in PUBLIC_ENDPOINTS
            or endpoint in signin.PUBLIC_ENDPOINTS
            or DASH_ROUTES.get(rule) == PUBLIC
        ):
            return None
        try:
            if flask_login.current_user.is_authenticated:
                return None
        except redis.RedisError as exc:  # keep the page's last state (stale badge), no sign-out
            return flask.Response(f"cockpit is reconnecting: {exc}", 503, mimetype="text/plain")
        if flask.request.method == "GET" and not flask.request.path.startswith("/_"):
            target = flask.request.full_path.rstrip("?")
            return flask.redirect(flask.url_for("signin.login", next=target))
        return flask.Response("sign in first", status=401, mimetype="text/plain")


def _add_routes(server: flask.Flask) -> None:
    @server.errorhandler(DependencyException)
    def unknown_script(_exc: DependencyException) -> flask.Response:
        """Dash raises for a script path it does not serve; that is a 404, not a 500."""
        return flask.Response("not found", 404, mimetype="text/plain")

    @server.route("/healthz")
    @secure_route(PUBLIC)
    def healthz() -> flask.Response:
        try:
            runtime().redis.ping()
            return flask.jsonify(ok=True)
        except redis.RedisError:
            return flask.jsonify(ok=False, reason="redis unreachable"), 503

    @server.route("/lang/<code>")
    @secure_route(PUBLIC)
    def set_lang(code: str) -> flask.Response:
        resp = flask.redirect("/")
        if code in LANGUAGES:
            resp.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="Strict")
        return resp

    @server.route("/geo/<level>.geojson")
    @secure_route("view_map")
    def geojson(user: User, level: str) -> flask.Response:
        """Area shapes of one level inside the user's scope; immutable per grid version, built
        once for all processes and sent gzip'd to every browser that takes gzip."""
        if level not in served_geo.LEVELS:
            flask.abort(404)
        rt = runtime()
        served = served_geo.served_geojson(rt.redis, rt.geography(), level, user.area_id)
        headers = {
            "Cache-Control": "private, max-age=86400, immutable",
            "ETag": served.etag,
            "Vary": "Accept-Encoding, Cookie",
        }
        if served.etag in flask.request.headers.get("If-None-Match", ""):
            return flask.Response(status=304, headers=headers)
        if flask.request.accept_encodings["gzip"]:
            resp = flask.Response(served.gz, mimetype="application/geo+json", headers=headers)
            resp.headers["Content-Encoding"] = "gzip"
            return resp
        return flask.Response(served.body(), mimetype="application/geo+json", headers=headers)

    @server.route("/geo/reference.geojson")
    @secure_route("view_map")
    def reference_geojson(user: User) -> flask.Response:
        """Gauges (with thresholds) or sites and zones that touch the user's area."""
        layer = flask.request.args.get("layer", "")
        if layer not in ("gauges", "sites"):
            flask.abort(404)
        rt = runtime()
        reference = load_reference(rt.redis)
        if reference is None:
            return flask.jsonify(type="FeatureCollection", features=[])
        body = _reference_geojson(rt.geography(), reference.version, layer, user.area_id)
        resp = flask.Response(body, mimetype="application/geo+json")
        resp.headers["Cache-Control"] = "private, max-age=3600"
        return resp


@lru_cache(maxsize=64)
def _reference_geojson(geo: Geography, version: str, layer: str, area_id: str) -> bytes:
    """Immutable per (grids, reference version, layer, area): cached per process."""
    import json

    import shapely

    reference = load_reference(runtime().redis)
    assert reference is not None and reference.version == version

    scope = geo.areas.frame.geometry.loc[area_id]
    features = []
    if layer == "gauges":
        frame = reference.gauges
        for gid, row in frame[frame.intersects(scope)].iterrows():
            x, y = shapely.get_coordinates(row.geometry)[0]
            features.append({
                "type": "Feature", "id": gid,
                "geometry": {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]},
                "properties": {"id": gid, "name_zh": row.name_zh, "name_en": row.name_en,
                               "warning": row.warning_m, "danger": row.danger_m},
            })  # fmt: skip
    else:
        for kind, frame in (("building", reference.building_sites),
                            ("disposal", reference.disposal_sites),
                            ("forbidden", reference.forbidden_zones)):  # fmt: skip
            for sid, row in frame[frame.intersects(scope)].iterrows():
                features.append({
                    "type": "Feature", "id": sid,
                    "geometry": json.loads(shapely.to_geojson(shapely.set_precision(
                        row.geometry, 1e-6))),
                    "properties": {"id": sid, "kind": kind, "name_zh": row.name_zh,
                                   "name_en": row.name_en},
                })  # fmt: skip
    collection = {"type": "FeatureCollection", "features": features}
    return json.dumps(collection, ensure_ascii=False, separators=(",", ":")).encode()


def warm_up(server: flask.Flask) -> bool:
    """Load the grids and build (or fetch) the root area's served geometry in this process.

    Best effort, for a new web process before its first viewer: with no grids loaded yet or
    Redis away it does nothing (a request then does the same work). True when it warmed.
    """
    import logging

    try:
        with server.app_context():
            rt = runtime()
            geo = rt.geography()
            for level in served_geo.LEVELS:
                served_geo.served_geojson(rt.redis, geo, level, geo.areas.root_id)
        return True
    except Exception as exc:  # noqa: BLE001 - a warm-up never stops a web process
        logging.getLogger("cockpit").info("warm-up skipped: %s", exc)
        return False


def _add_headers(server: flask.Flask, settings: Settings, script_hashes: list[str]) -> None:
    tile_origin = ""
    if settings.tile_url and settings.tile_url.startswith("http"):
        parsed = urlparse(settings.tile_url.replace("{s}", "a"))
        tile_origin = f" {parsed.scheme}://{parsed.netloc}"

    hashes = " ".join(script_hashes)  # Dash gives them quoted

    @server.after_request
    def headers(resp: flask.Response) -> flask.Response:
        # Nothing loads from outside unless a tile server is configured; the only inline
        # script allowed is Dash's own renderer bootstrap (by hash), so injected HTML cannot run.
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; "
            f"script-src 'self' {hashes} 'unsafe-eval'; "
            "style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob:{tile_origin}; "
            "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
        )
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers["X-Cockpit-Time"] = str(int(time.time() * 1000))
        return resp


# Dash's own routes and the decision each one has (the gate below applies to all of them).
DASH_ROUTES: dict[str, str] = {
    "/static/<path:filename>": PUBLIC,  # Flask's static folder (unused, empty)
    "/assets/<path:filename>": PUBLIC,  # our CSS and JS, no data
    "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>": PUBLIC,
    "/_favicon.ico": PUBLIC,
    "/_dash-layout": "session user; serve_layout builds the page for that user's scope",
    "/_dash-dependencies": "session user; the callback graph holds no city data",
    "/_dash-update-component": "session user; each callback authorised by secure_callback",
    "/_reload-hash": "session user; hot reload, off outside debug",
    "/": "session user; the page shell, no data",
    "/<path:path>": "session user; the page shell, no data",
}


def unguarded_routes(server: flask.Flask) -> list[str]:
    """Routes with no authorisation decision (a test keeps this list empty)."""
    missing = []
    for rule in server.url_map.iter_rules():
        if rule.rule in DASH_ROUTES:
            continue
        if not hasattr(server.view_functions.get(rule.endpoint), ACTION_ATTR):
            missing.append(rule.rule)
    return missing


__all__ = ["create_app", "ids", "unguarded_routes"]
