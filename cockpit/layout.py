"""The page shell, built per request for the signed-in user (a function, so every load starts
from fresh state and nothing mutable lives at module level). The router callback fills the
page for the URL; see callbacks/router.py and cockpit/views/."""

from __future__ import annotations

from dash import dcc, html

from cockpit import ids
from cockpit.guard import session_user
from cockpit.i18n import badge_labels, t
from cockpit.policy import authorize
from cockpit.webapp import request_lang, runtime

# path -> (label key, action the view needs)
VIEWS: dict[str, tuple[str, str]] = {
    "/": ("view_operations", "view_map"),
    "/wall": ("view_wall", "view_map"),
    "/officer": ("view_officer", "view_incidents"),
    "/leader": ("view_leader", "view_trends"),
}


def serve_layout() -> html.Div:
    user = session_user()
    if user is None:
        return html.Div("Not signed in.", className="signed-out")
    lang = request_lang(user)
    refresh_ms = runtime().settings.refresh_ms
    nav = [
        dcc.Link(t(label, lang), href=path, className="nav-link")
        for path, (label, action) in VIEWS.items()
        if authorize(user, action)
    ]
    return html.Div(
        className="cockpit",
        lang=lang,
        children=[
            dcc.Location(id=ids.URL),
            html.Header(
                className="topbar",
                children=[
                    html.H1(t("app_title", lang)),
                    html.Nav(nav, className="nav"),
                    html.Span(f"{t('user', lang)}: {user.display or user.name}", className="who"),
                    html.A(
                        t("language", lang),
                        href="/lang/" + ("en" if lang == "zh-CN" else "zh-CN"),
                        className="lang-switch",
                    ),
                    html.Form(
                        html.Button(t("sign_out", lang), type="submit", className="sign-out"),
                        method="POST",
                        action="/logout",
                    ),
                ],
            ),
            html.Main(id=ids.PAGE, className="page"),
            dcc.Interval(id=ids.TICK, interval=refresh_ms),
            dcc.Interval(id=ids.CLOCK, interval=1000),
            dcc.Store(id=ids.LABELS, data=badge_labels(lang)),
        ],
    )
