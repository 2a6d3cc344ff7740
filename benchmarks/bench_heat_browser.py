"""The heatmap's updates in real headless Chromium, with 1,000,000 points in the window: the
main thread's long tasks that an update causes. Prints one JSON object.

    python benchmarks/bench_heat_browser.py                      # 1M points in 1 h, 60 s
    python benchmarks/bench_heat_browser.py --seconds 20 --points 200000

`cockpit demo` (whole demo city, its simulator feeding ``--rate`` incidents a second, so the
heatmap changes) gets ``--points`` extra incident points spread over the window's minutes, as
the worker stores them (bench_heatservice.synthetic_points). A city user opens the operations
map with only the heatmap overlay on, so nothing else on the page draws; each heat update is
timed in the page from the heat callback's response to the painted frame after the new image
loaded (``update_ms``). A long task (> 50 ms, PerformanceObserver) is charged to an update when
it overlaps that span (``long_tasks_in_updates``); ``long_tasks_elsewhere`` are the others. At the
end an 80 ms task is planted in the page, to show the observer sees long tasks
(``planted_long_task_observed_ms``; not counted above).
The raw figure, same run and browser: a bare page that swaps a same-sized PNG into an <img>
(``raw_img_swap_ms``: src set to painted frame), each swap's long tasks counted the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _browser import Demo, browser, load_average, percentiles, sign_in, wait_for  # noqa: E402
from bench_heatservice import synthetic_points  # noqa: E402

from cockpit import heatservice  # noqa: E402
from cockpit.aggregates import INCIDENT_POINTS  # noqa: E402
from cockpit.areastore import load_geography  # noqa: E402
from cockpit.i18n import t  # noqa: E402

WINDOW = "1h"  # the map's heatmap window when it opens

# Leave only the overlay named arguments[0] on (a click on each checkbox that must flip).
ONLY_OVERLAY_JS = """
for (const label of document.querySelectorAll(".leaflet-control-layers-overlays label")) {
  const input = label.querySelector("input");
  if (input.checked !== (label.textContent.trim() === arguments[0])) { input.click(); }
}
return true;
"""

# In the page: every heat callback response, every src the overlay gets, its load, the frame
# after; and the long tasks.
PROBE_JS = r"""
const probe = window.__heat = {responses: [], swaps: [], longtasks: []};
const origFetch = window.fetch;
window.fetch = function (url, init) {
  const body = (init && typeof init.body === "string") ? init.body : "";
  const p = origFetch.apply(this, arguments);
  if (String(url).includes("_dash-update-component") && body.includes("heat-layer.url")) {
    return p.then(res => { probe.responses.push(Date.now()); return res; });
  }
  return p;
};
function watch(img) {
  if (img.__watched) { return; }
  img.__watched = true;
  new MutationObserver(() => {
    const rec = {src: img.src, set: Date.now()};
    probe.swaps.push(rec);
    img.addEventListener("load", () => {
      rec.load = Date.now();
      requestAnimationFrame(() => setTimeout(() => { rec.paint = Date.now(); }, 0));
    }, {once: true});
  }).observe(img, {attributes: true, attributeFilter: ["src"]});
}
setInterval(() => document.querySelectorAll("img.heat-overlay").forEach(watch), 100);
new PerformanceObserver(list => {
  for (const e of list.getEntries()) {
    probe.longtasks.push({t: performance.timeOrigin + e.startTime, ms: e.duration});
  }
}).observe({type: "longtask", buffered: false});
return true;
"""

# The raw page: the same PNG bytes swapped into a bare <img> (a new object URL each time, so the
# browser decodes it again), timed and charged the same way.
RAW_JS = r"""
const done = arguments[arguments.length - 1];
const [src, swaps] = [arguments[0], arguments[1]];
const out = [], longtasks = [];
new PerformanceObserver(list => {
  for (const e of list.getEntries()) {
    longtasks.push({t: performance.timeOrigin + e.startTime, ms: e.duration});
  }
}).observe({type: "longtask", buffered: false});
fetch(src).then(res => {
  if (!res.ok || !(res.headers.get("Content-Type") || "").startsWith("image/png")) {
    throw new Error("not a PNG: " + res.status + " " + res.headers.get("Content-Type"));
  }
  return res.blob();
}).then(blob => {
  const img = document.createElement("img");
  img.style.cssText = "position:fixed;left:0;top:0;width:100%;height:100%;opacity:0.75";
  document.body.appendChild(img);
  let k = 0;
  function next() {
    if (k++ >= swaps) {
      setTimeout(() => done({swaps: out, longtasks: longtasks, bytes: blob.size}), 200);
      return;
    }
    const rec = {set: Date.now()};
    img.onload = () => {
      rec.load = Date.now();
      requestAnimationFrame(() => setTimeout(() => { rec.paint = Date.now(); out.push(rec);
                                                     setTimeout(next, 300); }, 0));
    };
    img.onerror = () => done({error: "the PNG did not load"});
    img.src = URL.createObjectURL(blob.slice(0, blob.size, "image/png"));
  }
  next();
}).catch(e => done({error: String(e)}));
"""


def seed_points(demo: Demo, window: str, points: int, seed: int) -> int:
    """``points`` incident points over the window's minutes, as the worker stores them."""
    r = demo.redis()
    geo = load_geography(r)
    rng = np.random.default_rng(seed)
    minutes = heatservice.WINDOWS[window]
    now_min = heatservice.redis_now_ms(r) // 60_000
    per_minute = points // minutes
    with r.pipeline(transaction=False) as pipe:
        for m in range(now_min - minutes + 1, now_min + 1):
            key = f"{INCIDENT_POINTS}{geo.version[:8]}:{m}"
            pipe.append(key, synthetic_points(geo, per_minute, rng).tobytes())
            pipe.expire(key, 26 * 3600)
        pipe.execute()
    return per_minute * minutes


def charge(spans: list[tuple[float, float]], longtasks: list[dict]) -> tuple[list, list]:
    """Long tasks overlapping any span, and the others."""
    inside, outside = [], []
    for task in longtasks:
        start, end = task["t"], task["t"] + task["ms"]
        hit = any(start < b and end > a for a, b in spans)
        (inside if hit else outside).append(round(task["ms"], 1))
    return inside, outside


def run(args: argparse.Namespace) -> dict:
    started = time.time()
    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-heat-") as tmp:
        demo = Demo.start(Path(tmp) / "demo", rate=args.rate, app_dir=args.app_dir)
        try:
            seeded = seed_points(demo, WINDOW, args.points, args.seed)
            with browser(args.width, args.height) as driver:
                sign_in(driver, demo, "demo-city", "/")
                wait_for(lambda: driver.execute_script(
                    "return !!document.querySelector('.leaflet-control-layers-overlays')"),
                    60, "the map")  # fmt: skip
                driver.execute_script(ONLY_OVERLAY_JS, t("layer_heat", "en"))
                driver.execute_script(PROBE_JS)
                time.sleep(args.seconds)  # the measuring time itself, not a wait for a result
                # the observer's own check: a planted 80 ms task must show up among them
                driver.execute_script("setTimeout(() => { const end = performance.now() + 80;"
                                      " while (performance.now() < end) {} }, 0);")  # fmt: skip
                wait_for(lambda: any(task["ms"] >= 80 for task in
                                     driver.execute_script("return window.__heat.longtasks")),
                         10, "the planted long task observed")  # fmt: skip
                probe = driver.execute_script("return window.__heat")
                planted = max(task["ms"] for task in probe["longtasks"])
                probe["longtasks"] = [task for task in probe["longtasks"] if task["ms"] != planted]
                done = [s for s in probe["swaps"] if s.get("paint")]
                if not done:
                    raise RuntimeError("no heat update was painted in the measuring time")
                # each update: the response before its swap (or the swap itself) to the paint
                spans = []
                for s in done:
                    before = [at for at in probe["responses"] if at <= s["set"]]
                    spans.append((before[-1] if before else s["set"], s["paint"]))
                inside, outside = charge(spans, probe["longtasks"])
                # the raw page: the last PNG the overlay showed, swapped in a bare page of the
                # same origin (so the session's cookie fetches it)
                driver.get(demo.base_url + "/healthz")
                driver.set_script_timeout(120)
                raw = driver.execute_async_script(RAW_JS, done[-1]["src"], args.raw_swaps)
                if raw.get("error"):
                    raise RuntimeError(f"raw page: {raw['error']}")
        finally:
            demo.stop()
    raw_spans = [(s["set"], s["paint"]) for s in raw["swaps"]]
    raw_inside, _ = charge(raw_spans, raw["longtasks"])
    return {
        "command": "python benchmarks/bench_heat_browser.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "setup": {"window": WINDOW, "points_seeded": seeded, "feed_per_s": args.rate,
                  "viewport": [args.width, args.height], "seconds": args.seconds,
                  "app_dir": str(args.app_dir) if args.app_dir else None},  # fmt: skip
        "updates": len(done),
        "update_ms": percentiles([s["paint"] - a for (a, _), s in zip(spans, done, strict=True)]),
        "image_load_ms": percentiles([s["load"] - s["set"] for s in done]),
        "png_bytes": raw["bytes"],
        "long_tasks_in_updates": {"n": len(inside), "max_ms": max(inside, default=None),
                                  "over_50_ms": len(inside)},  # fmt: skip
        "long_tasks_elsewhere": {"n": len(outside), "max_ms": max(outside, default=None)},
        "planted_long_task_observed_ms": round(planted, 1),
        "raw_img_swap_ms": percentiles([b - a for a, b in raw_spans]),
        "raw_long_tasks_in_swaps": {"n": len(raw_inside), "max_ms": max(raw_inside, default=None)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="measuring time (60)")
    parser.add_argument("--points", type=int, default=1_000_000,
                        help="points seeded into the window (1000000)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=1000, help="simulated incidents/s (1000)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--raw-swaps", type=int, default=20, help="swaps in the raw page (20)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--app-dir", type=Path, default=None,
                        help="run the cockpit from this copy of the source (git archive)")
    args = parser.parse_args()
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
