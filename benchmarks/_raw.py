"""Raw counterparts for the browser benchmarks, measured in the same run as the cockpit.

- ``RawPollPage``: the least a 1 Hz polling screen can do. A bare page (no Dash, no Leaflet)
  fetches one Redis value from a bare HTTP handler every second (or at the app's interval)
  and writes it into a div; the
  benchmark SETs the value when it XADDs a marker, and the page timestamps the painted frame
  exactly as the cockpit probe does. Its latency is the floor of "poll once a second, then paint".
- ``RawPushPage``: the same for a pushing screen: the bare page holds an EventSource whose
  handler reads the value every 50 ms (the cockpit's push watcher reads its sequence number as
  often) and writes an event when it changed. Its latency is the floor of "push, then paint".
- ``app``: a Flask "hello" app, served by gunicorn with the cockpit's own worker settings, for
  the raw request rate the viewer benchmark compares with.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import flask
import redis

RAW_KEY = "bench:raw:value"

PAGE = b"""<!doctype html><html><body><div id="v" style="font: 96px sans-serif">-</div>
<script>
window.__raw = [];
let last = null;
setInterval(async () => {
  const text = await (await fetch("/v", {cache: "no-store"})).text();
  if (text === last) { return; }
  last = text;
  document.getElementById("v").textContent = text;
  const rec = {value: text, t: Date.now()};
  window.__raw.push(rec);
  requestAnimationFrame(() => setTimeout(() => { rec.paint = Date.now(); }, 0));
}, INTERVAL_MS);
</script></body></html>"""


class RawPollPage:
    """Serves PAGE and ``/v`` (GET of RAW_KEY) on 127.0.0.1 from a thread of this process."""

    def __init__(self, redis_url: str, interval_ms: int = 1000) -> None:
        client = redis.Redis.from_url(redis_url)
        page = PAGE.replace(b"INTERVAL_MS", str(int(interval_ms)).encode())

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/v":
                    body = client.get(RAW_KEY) or b"-"
                    kind = "text/plain"
                else:
                    body, kind = page, "text/html"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RawPollPage:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


PUSH_PAGE = b"""<!doctype html><html><body><div id="v" style="font: 96px sans-serif">-</div>
<script>
window.__raw = [];
new EventSource("/s").onmessage = (event) => {
  document.getElementById("v").textContent = event.data;
  const rec = {value: event.data, t: Date.now()};
  window.__raw.push(rec);
  requestAnimationFrame(() => setTimeout(() => { rec.paint = Date.now(); }, 0));
};
</script></body></html>"""
POLL_S = 0.05


class RawPushPage(RawPollPage):
    """Serves PUSH_PAGE and ``/s``, an event stream of RAW_KEY's changes."""

    def __init__(self, redis_url: str, interval_ms: int = 1000) -> None:
        client = redis.Redis.from_url(redis_url)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != "/s":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(PUSH_PAGE)))
                    self.end_headers()
                    self.wfile.write(PUSH_PAGE)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                last = None
                while True:
                    try:
                        value = client.get(RAW_KEY)
                    except redis.RedisError:
                        return  # the run is over: its Redis stopped
                    if value != last and value is not None:
                        last = value
                        try:
                            self.wfile.write(b"data: " + value + b"\n\n")
                            self.wfile.flush()
                        except OSError:
                            return
                    time.sleep(POLL_S)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


# The raw counterpart of the grid layer, run with execute_async_script in a same-origin tab:
# fetch the same scoped GeoJSON the map loads (no cache), parse it, and fill every polygon on a
# bare canvas of the viewport size with Canvas2D (no Leaflet, no Dash, no React); then recolour
# every polygon ``recolours`` times. Times are to the frame after the drawing (as the probe).
RAW_CANVAS_JS = r"""
const [url, width, height, recolours, done] = arguments;
const frame = () => new Promise(ok => requestAnimationFrame(() => setTimeout(ok, 0)));
(async () => {
  const t0 = performance.now();
  const geo = await (await fetch(url, {cache: "no-store"})).json();
  const t1 = performance.now();
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  document.body.replaceChildren(canvas);
  const ctx = canvas.getContext("2d");
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const rings = [];
  for (const f of geo.features) {
    const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
    const own = [];
    for (const p of polys) { for (const ring of p) {
      own.push(ring);
      for (const [x, y] of ring) {
        if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
    } }
    rings.push(own);
  }
  const k = Math.min(width / (x1 - x0), height / (y1 - y0));
  const paths = rings.map(own => {
    const path = new Path2D();
    for (const ring of own) {
      ring.forEach(([x, y], i) => {
        const px = (x - x0) * k, py = height - (y - y0) * k;
        if (i) { path.lineTo(px, py); } else { path.moveTo(px, py); }
      });
      path.closePath();
    }
    return path;
  });
  const colours = ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"];
  function draw(shift) {
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = "#6b7785"; ctx.lineWidth = 0.6;
    paths.forEach((path, i) => {
      ctx.fillStyle = colours[(i + shift) % colours.length];
      ctx.fill(path); ctx.stroke(path);
    });
  }
  draw(0);
  await frame();
  const t2 = performance.now();
  const recolour = [];
  for (let r = 1; r <= recolours; r++) {
    const s = performance.now();
    draw(r);
    await frame();
    recolour.push(performance.now() - s);
  }
  done({features: geo.features.length, fetch_parse_ms: t1 - t0, first_paint_ms: t2 - t0,
        recolour_ms: recolour});
})().catch(e => done({error: String(e)}));
"""


app = flask.Flask("raw-hello")


@app.route("/", methods=["GET", "POST"])
def hello() -> str:
    return "hello"
