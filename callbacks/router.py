"""The router: the page for the URL, if the signed-in user's policy allows that view."""

from __future__ import annotations

import importlib

from dash import Input, Output, html

from cockpit import ids
from cockpit.guard import secure_callback
from cockpit.i18n import t
from cockpit.layout import VIEWS
from cockpit.policy import User, authorize
from cockpit.webapp import request_lang

MODULES = {"/": "operations", "/wall": "wall", "/officer": "officer", "/leader": "leader"}


@secure_callback(Output(ids.PAGE, "children"), Input(ids.URL, "pathname"), action="view_map")
def route(user: User, pathname: str | None):
    lang = request_lang(user)
    path = (pathname or "/").rstrip("/") or "/"
    if path not in VIEWS:
        return html.Div(t("not_found", lang), className="notice")
    _label, action = VIEWS[path]
    if not authorize(user, action):
        return html.Div(t("not_for_your_level", lang), className="notice")
    try:
        view = importlib.import_module(f"cockpit.views.{MODULES[path]}")
    except ModuleNotFoundError:
        return html.Div(t("not_found", lang), className="notice")
    return view.layout(user, lang)
