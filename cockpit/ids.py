"""Component ids, built in one place so no id string is typed twice."""

# shell
URL = "url"
PAGE = "page"
TICK = "tick"
CLOCK = "clock"
LABELS = "labels"

# operations map (/)
MAP = "map"
GRID_LAYER = "grid-layer"
BOUNDARY_LAYER = "boundary-layer"
LEGEND = "legend"
LIVE_STORE = "live-store"
DATA_AGE = "data-age"
KPI_INCIDENTS = "kpi-incidents"
