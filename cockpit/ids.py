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
# the grid colours (values, breaks, colours): restyled in place by cockpitMap.paintGrids
GRID_VALUES = "grid-values"
GRID_PAINTED = "grid-painted"
GRID_PUSH = "grid-push"  # where the page opens its push stream (None: it polls)
GRID_PUSH_ON = "grid-push-on"  # set by the page while the stream delivers
GRID_POLL = "grid-poll"  # the tick, passed on only while no stream delivers
GRID_BREAKS = "grid-breaks"  # class breaks a stream delivered, for the legend
# What drives the view's other live parts: the tick while nothing is pushed, else the
# versions the stream's view events carry (cockpit/push.py), so they run only on a change.
TICK_ALERTS = "tick-alerts"
TICK_FLEET = "tick-fleet"
TICK_SLOW = "tick-slow"
BOUNDARY_LAYER = "boundary-layer"
LEGEND = "legend"
LIVE_STORE = "live-store"
DATA_AGE = "data-age"
KPI_INCIDENTS = "kpi-incidents"
KPI_OPEN = "kpi-open"
METRIC = "metric"
CATEGORY = "category"
GAUGE_LAYER = "gauge-layer"
TRUCK_LAYER = "truck-layer"
TRAIL_LAYER = "trail-layer"
SITES_LAYER = "sites-layer"
FLEET_STORE = "fleet-store"
AGE_GAUGES = "age-gauges"
AGE_TRUCKS = "age-trucks"
GAUGE_PANEL = "gauge-panel"
GAUGE_TREND = "gauge-trend"
LEGENDS = "legends"
INCIDENT_LAYER = "incident-layer"  # incident points (layers/incidents.py)
INCIDENT_LEGEND = "incident-legend"
INCIDENT_STORE = "incident-store"  # Store: what the point layer shows (digest), send on change

# officer view (/officer)
OFFICER_MAP = "officer-map"
OFFICER_GRIDS = "officer-grids"
OFFICER_POINTS = "officer-points"
OFFICER_LEGEND = "officer-legend"
OFFICER_KPI = "officer-kpi"
OFFICER_CATEGORY = "officer-category"
OFFICER_STATUS = "officer-status"
OFFICER_RANGE = "officer-range"
OFFICER_TEXT = "officer-text"
OFFICER_COUNT = "officer-count"
OFFICER_LIST = "officer-list"
OFFICER_ROWS = "officer-rows"  # the list's rows as data; assets/officer.js draws them
OFFICER_ROWS_DRAWN = "officer-rows-drawn"  # how many rows the page drew (nothing reads it)
OFFICER_ROW_CLICK = "officer-row-click"  # {"id": incident id, "at": ms}: the row clicked
OFFICER_LIST_STORE = "officer-list-store"
OFFICER_SELECTED = "officer-selected"
OFFICER_DETAIL = "officer-detail"
OFFICER_DETAIL_BODY = "officer-detail-body"
OFFICER_DETAIL_STORE = "officer-detail-store"
OFFICER_CLOSE = "officer-close"
OFFICER_ALERTS = "officer-alerts"
OFFICER_ALERTS_STORE = "officer-alerts-store"
OFFICER_ALERT_ACTION = "officer-alert-action"  # pattern type: {"type", "alert", "action"}
OFFICER_ALERT_COMMENT = "officer-alert-comment"  # pattern type: {"type", "alert"}
OFFICER_ALERT_MESSAGE = "officer-alert-message"

# heatmap (layers/heat.py, cockpit/heat_routes.py)
HEAT_LAYER = "heat-layer"
HEAT_LEGEND = "heat-legend"
HEAT_WINDOW = "heat-window"

# leader view (/leader)
LEADER_AREA = "leader-area"  # Store: the area drilled into (a hint; re-checked on the server)
LEADER_TOGGLED = "leader-toggled"  # Store: tree nodes opened or closed by hand
LEADER_TREE = "leader-tree"
LEADER_NODE = "leader-node"  # pattern type: {"type": LEADER_NODE, "area": area id} drills
LEADER_TOGGLE = "leader-toggle"  # pattern type: {"type": LEADER_TOGGLE, "area": area id}
LEADER_CRUMBS = "leader-crumbs"
LEADER_CRUMB = "leader-crumb"  # pattern type: {"type": LEADER_CRUMB, "area": area id}
LEADER_UP = "leader-up"
LEADER_RANGE = "leader-range"
LEADER_METRIC = "leader-metric"
LEADER_COMPARE = "leader-compare"
LEADER_KPIS = "leader-kpis"
LEADER_MAP = "leader-map"
LEADER_LAYER = "leader-layer"
LEADER_LEGEND = "leader-legend"
LEADER_CHART_INCIDENTS = "leader-chart-incidents"
LEADER_CHART_RATE = "leader-chart-rate"
LEADER_CHART_INDEX = "leader-chart-index"
LEADER_RANKING = "leader-ranking"
LEADER_TABLE = "leader-table"
LEADER_EXPORT = "leader-export"
LEADER_DOWNLOAD = "leader-download"
LEADER_REFRESH = "leader-refresh"

# wall (/wall)
WALL_AREA = "wall-area"
WALL_CLOCK = "wall-clock"
WALL_ALERTS = "wall-alerts"
WALL_RESOLUTION = "wall-resolution"
WALL_SSI = "wall-ssi"
WALL_TICKER = "wall-ticker"
WALL_TARGETS = "wall-targets"
WALL_FOCUS = "wall-focus"
WALL_SHOWN = "wall-shown"  # fingerprint of what the wall's tiles and ticker show
WALL_MAP = "wall-map"

# alerts on screen (layers/alerts.py, cockpit/views/alert_list.py)
ALERT_LAYER = "alert-layer"  # on the operations map and the wall
ALERT_LAYER_KEY = "alert-layer-key"  # Store: digest of what the layer shows (send on change)
LEADER_ALERT_LAYER = "leader-alert-layer"
LEADER_ALERT_LAYER_KEY = "leader-alert-layer-key"
ALERT_LIST = "alert-list"  # pattern type: {"type": ALERT_LIST, "view": "ops" | "leader"}
ALERT_LIST_STORE = "alert-list-store"  # pattern type as ALERT_LIST: digest and zoom bounds
ALERT_LIST_MESSAGE = "alert-list-message"  # pattern type as ALERT_LIST
ALERT_ROW = "alert-row"  # pattern type: {"type", "view", "alert": alert id}; keys the row
ALERT_ZOOM = "alert-zoom"  # pattern type: {"type", "view", "alert": alert id}
ALERT_ACT = "alert-act"  # pattern type: {"type", "view", "alert": alert id, "action"}
