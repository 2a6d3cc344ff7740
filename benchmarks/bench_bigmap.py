"""20,000 grid polygons on one map in real headless Chromium: first paint and colour update,
with 1,000 incidents a second flowing. Prints one JSON object.

    python benchmarks/bench_bigmap.py                       # 20,000 grids, city wall, 60 s
    python benchmarks/bench_bigmap.py --grids 5000 --seconds 20

The demo city is generated at the scale that gives ``--grids`` grids
(geo.demo_city.scale_for_grids; `cockpit demo --scale`), and a wall token for the whole city
(area wx) is opened at 3840x2160. Everything else is bench_screen.py's run (same probe, feed,
markers and network log), so its JSON has the same parts. The figures this benchmark is for:

- ``first_paint_wall_cold``: a fresh browser (empty cache) from navigation start
  (performance.timeOrigin) to the first painted frame with every grid polygon on the map
  (``navigation_to_painted_ms``), and to the first painted frame with the grids coloured
  (``navigation_to_coloured_ms``); ``first_paint_wall_warm``: the same on reloads (the GeoJSON
  comes from the browser cache: it is immutable per grid version).
- ``restyle.colour_update_response_to_painted_ms``: colour update, defined as the time from the
  grid callback's response being read in the page (Dash's fetch resolved and its body read) to
  the painted frame after the restyle that response caused.
- raw counterparts, same run, same browser: ``raw_canvas`` fetches and parses the same GeoJSON
  and fills all polygons with bare Canvas2D (first paint), then recolours all of them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_screen  # noqa: E402

from geo.demo_city import scale_for_grids  # noqa: E402


def main() -> int:
    parser = bench_screen.build_parser(__doc__)
    parser.add_argument("--grids", type=int, default=20_000, help="grids in the city (20000)")
    parser.set_defaults(area="wx", seconds=60)
    args = parser.parse_args()
    args.scale = scale_for_grids(args.grids)
    out = bench_screen.run(args, "bench_bigmap.py")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
