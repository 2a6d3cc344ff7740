"""Dash callbacks, grouped by view; importing this package registers them all."""

from callbacks import live_map  # noqa: F401
