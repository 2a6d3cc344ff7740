"""Pure geometry for the cockpit: area hierarchy, demo city, grid import, point-in-grid.

Imports neither Dash nor Redis, so every function here is testable without a server.
"""
