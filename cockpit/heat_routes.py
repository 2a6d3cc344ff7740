"""HTTP routes of the live heatmap: the PNG for a ``dl.ImageOverlay`` and its small metadata.

    GET /heat/<window>.png?area=&category=&v=   image/png; ETag, X-Heat-Points, X-Heat-Scale
    GET /heat/<window>.json?area=&category=     {version, bounds, scale_per_km2, points, url}

``window`` is 15m, 1h or 24h. ``area`` defaults to the user's area and must be in the user's
scope (403 otherwise); ``category`` (one id, or "all") must be visible to the user's level (403
otherwise); without it the heatmap counts every category the level may see. ``v`` names a
version from the JSON: that exact render is served while Redis keeps it (10 s), so the overlay
URL a Dash callback set always shows what its legend said. Both need ``view_map``.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import flask
import redis

from cockpit import heatservice
from cockpit.areastore import Geography
from cockpit.contract import CATEGORIES
from cockpit.guard import secure_route
from cockpit.policy import User, authorize, visible_categories

CACHE_CONTROL = "private, max-age=1"


def _default_redis() -> redis.Redis:
    from cockpit.webapp import runtime  # late: webapp may import this module

    return runtime().redis


def _default_geography() -> Geography:
    from cockpit.webapp import runtime

    return runtime().geography()


def heat_blueprint(
    redis_of: Callable[[], redis.Redis] | None = None,
    geography_of: Callable[[], Geography] | None = None,
) -> flask.Blueprint:
    """The heatmap routes; by default Redis and the geography come from the app's runtime."""
    get_redis = redis_of or _default_redis
    get_geo = geography_of or _default_geography
    bp = flask.Blueprint("heat", __name__)

    @bp.route("/heat/<window>.png")
    @secure_route("view_map")
    def heat_png(user: User, window: str) -> flask.Response:
        r, geo = get_redis(), get_geo()
        area_id, categories = heat_request(user, window, geo)
        version = flask.request.args.get("v", "")
        served = None
        if version:
            served = heatservice.heat_by_version(r, area_id, window, categories, version)
        if served is None:
            served = heatservice.cached_heat(r, geo, area_id, window, categories)
        resp = flask.Response(served.png, mimetype="image/png")
        resp.headers["Cache-Control"] = CACHE_CONTROL
        resp.headers["X-Heat-Points"] = str(served.points)
        resp.headers["X-Heat-Scale"] = f"{served.scale_per_km2:.6g}"
        resp.set_etag(served.version)
        return resp.make_conditional(flask.request)

    @bp.route("/heat/<window>.json")
    @secure_route("view_map")
    def heat_json(user: User, window: str) -> flask.Response:
        r, geo = get_redis(), get_geo()
        area_id, categories = heat_request(user, window, geo)
        served = heatservice.cached_heat(r, geo, area_id, window, categories, with_png=False)
        body = {
            "window": window, "area": area_id, "version": served.version,
            "bounds": served.bounds, "scale_per_km2": served.scale_per_km2,
            "points": served.points, "rendered_ms": served.rendered_ms,
            "url": overlay_url(window, area_id, served.version, flask.request.args.get("category")),
        }  # fmt: skip
        resp = flask.jsonify(body)
        resp.headers["Cache-Control"] = "private, no-store"
        return resp

    return bp


def heat_request(user: User, window: str, geo: Geography) -> tuple[str, frozenset[str]]:
    """The area and categories this request's heatmap may show ``user``; aborts 404/400/403."""
    args = flask.request.args
    if window not in heatservice.WINDOWS:
        flask.abort(404)
    category = args.get("category") or heatservice.ALL
    if category != heatservice.ALL and category not in CATEGORIES:
        flask.abort(400)
    allowed = heat_scope(user, args.get("area") or user.area_id, category, geo)
    if allowed is None:
        flask.abort(403)
    return allowed


def heat_scope(
    user: User | None, area_id: str, category: str | None, geo: Geography
) -> tuple[str, frozenset[str]] | None:
    """``(area_id, categories)`` when ``user`` may see that area's heatmap, else None.

    ``category`` None or "all" means every category the level may see (a grid officer's heatmap
    leaves out petitions, as their lists do); one id must be visible to the level. Dash
    callbacks use this too, so the route and the overlay decide alike.
    """
    if user is None or not authorize(user, "view_map", area_id, geo):
        return None
    visible = frozenset(visible_categories(user))
    if category is None or category == heatservice.ALL:
        chosen = visible
    else:
        chosen = frozenset([category]) & visible
    return (area_id, chosen) if chosen else None


def overlay_url(window: str, area_id: str, version: str, category: str | None = None) -> str:
    """The PNG URL an ImageOverlay shows: changes exactly when the render's version changes."""
    query = {"area": area_id, "v": version}
    if category and category != heatservice.ALL:
        query["category"] = category
    return f"/heat/{window}.png?{urlencode(query)}"
