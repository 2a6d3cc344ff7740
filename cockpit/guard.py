"""The one authorisation wrapper every Dash callback and Flask route goes through.

The user always comes from the server session (flask-login), never from callback inputs.
A callback registered with :func:`secure_callback` gets that user as its first argument; when
the user is missing or not allowed the action, nothing is returned (PreventUpdate) so nothing
leaks; so too when browser input of the wrong shape makes the callback fail. Each wrapped
function carries its decision in ``__cockpit_action__`` so a test can prove no callback or
route lacks one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import dash
import flask
import flask_login
from dash.exceptions import PreventUpdate

from cockpit.policy import User, authorize

ACTION_ATTR = "__cockpit_action__"
# What a callback raises when a browser sends a value of the wrong shape.
MALFORMED = (TypeError, AttributeError, LookupError, ValueError)
log = logging.getLogger(__name__)
PUBLIC = "public"  # the decision for routes that show nothing of the city (health, sign-in)


def session_user() -> User | None:
    """The signed-in user of this request, or None."""
    # the object itself, not flask-login's proxy: a streamed response reads it after the
    # request's context is gone, where the proxy would be None
    user = flask_login.current_user
    return user._get_current_object() if isinstance(user, User) else None  # type: ignore[attr-defined]


def secure_callback(*dependencies: Any, action: str, **kwargs: Any) -> Callable:
    """``dash.callback`` plus authorisation: ``fn(user, *inputs)`` runs only if allowed."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(*args: Any) -> Any:
            user = session_user()
            if not authorize(user, action):
                raise PreventUpdate
            try:
                return fn(user, *args)
            except MALFORMED:
                # Inputs come from the browser and may be forged (a dict where a string was
                # sent): answer nothing, as for a refusal, instead of a 500; log it for us.
                log.warning("callback %s: malformed input", fn.__name__, exc_info=True)
                raise PreventUpdate from None

        setattr(guarded, ACTION_ATTR, action)
        return dash.callback(*dependencies, **kwargs)(guarded)

    return decorate


def secure_route(action: str) -> Callable:
    """Mark a Flask view with its decision; non-public views need an allowed session user."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if action != PUBLIC:
                user = session_user()
                if not authorize(user, action):
                    flask.abort(401 if user is None else 403)
                return view(user, *args, **kwargs)
            return view(*args, **kwargs)

        setattr(guarded, ACTION_ATTR, action)
        return guarded

    return decorate
