"""Dash entry point: ``gunicorn app:server`` serves the cockpit with settings from COCKPIT_*."""

import sys

from cockpit.settings import Settings, SettingsError
from cockpit.webapp import create_app

try:
    settings = Settings.from_env()
except SettingsError as exc:  # one line a person can act on, not a traceback
    print(f"cockpit: setting error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

app = create_app(settings)
server = app.server
