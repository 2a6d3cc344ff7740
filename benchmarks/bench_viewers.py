"""Many viewers of one cockpit at once, one update a second each, with 1,000 incidents a second
flowing; the event-to-screen, payload and memory goals measured meanwhile. Prints one JSON object.

    python benchmarks/bench_viewers.py                          # 100 viewers, 120 s
    python benchmarks/bench_viewers.py --viewers 30 --seconds 30   # a quick look

100 headless Chromium pages at 3840x2160 do not fit on a 2-core machine beside the server, so:

- ``--pages`` (default 2) real Chromium wall pages measure exactly as bench_screen.py does
  (event to screen, bytes per update, long tasks);
- the other ``--viewers`` minus ``--pages`` are synthetic viewers (benchmarks/_viewers.py): each
  signs in with the wall token (its own session), fetches the Dash layout once, then sends the
  exact callback requests the real page sent (captured from its network log), with its own
  State values from its previous responses, so the server does a browser's work for it. With
  push (the default) each holds its own stream and sends a live part's callbacks when the
  stream's view event says that part changed, as the page does; with ``--push poll`` (or a
  stream refused) it sends every live part's callback once a second. They draw nothing.

The goal's figure is ``viewers.updates_per_viewer_per_s``: the share of seconds in which a
viewer got an update (a pushed grid event, or a polled tick answered); 1.0 is every second.
``viewers.callback_ms`` is, with push, the time from a view event's arrival to its part's
callback answered.

After the measuring time, with the browsers closed and a fresh feed at the same rate running,
the capacity of the same server is measured: ``--capacity-clients`` clients replaying the tick
callbacks back to back (each keeping a state about one second old, as a 1 Hz viewer does),
and, as the raw figure, the same clients against a Flask "hello" app served by gunicorn with
the cockpit's settings (2 gthread workers, 8 threads).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_screen  # noqa: E402
from _browser import Demo, MachineCpu, free_port, load_average, wait_for  # noqa: E402
from _feed import Feed  # noqa: E402
from _viewers import Hello, SyntheticViewers, Viewer, closed_loop  # noqa: E402

HERE = Path(__file__).resolve().parent


def build_parser() -> argparse.ArgumentParser:
    p = bench_screen.build_parser(__doc__)
    p.set_defaults(pages=2)
    p.add_argument("--viewers", type=int, default=100, help="viewers in all, real pages included")
    p.add_argument("--capacity-seconds", type=float, default=10, help="each capacity phase (10)")
    p.add_argument("--capacity-clients", type=int, default=16, help="closed-loop clients (16)")
    p.add_argument("--no-viewer-streams", action="store_true",
                   help="synthetic viewers replay the callbacks without holding push streams "
                        "(to tell the streams' cost from the callbacks')")  # fmt: skip
    return p


def replay_tick(templates: dict[str, str]):  # type: ignore[no-untyped-def]
    """One closed-loop step: every tick callback once; state renewed about once a second."""

    def step(viewer: Viewer) -> int:
        now = time.monotonic()
        remember = now - getattr(viewer, "renewed", 0.0) >= 1.0
        if remember:
            viewer.renewed = now  # type: ignore[attr-defined]
        viewer.tick = getattr(viewer, "tick", 0) + 1  # type: ignore[attr-defined]
        for outputs in templates:
            viewer.call(outputs, viewer.tick, remember=remember)  # type: ignore[attr-defined]
        return len(templates)

    return step


def capacity(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    def measure(demo: Demo, token: str, templates: dict[str, str]) -> dict:
        clients = [Viewer(demo.base_url, token, templates) for _ in range(args.capacity_clients)]
        cpu = MachineCpu(demo)
        with Feed(demo.redis_url, [], args.rate):  # the data keeps changing, as in the run
            cpu.start()
            cockpit_rps = closed_loop(clients, replay_tick(templates), args.capacity_seconds)
            cockpit_cpu = cpu.stop()
            hello_rps = raw_hello_rate(args)
        per_viewer = len(templates)
        return {
            "cockpit_callbacks_per_s": cockpit_rps,
            "raw_flask_hello_per_s": hello_rps,
            "ratio_cockpit_over_hello": round(cockpit_rps / hello_rps, 3) if hello_rps else None,
            "callbacks_per_viewer_tick": per_viewer,
            "viewers_at_1hz_this_capacity_serves": round(cockpit_rps / per_viewer),
            "cpu_by_process_group_during_cockpit_capacity": cockpit_cpu,
            "load_average": load_average(),
        }

    return measure


def raw_hello_rate(args: argparse.Namespace) -> float:
    """Closed-loop GET / against the hello app under gunicorn (2 gthread workers, 8 threads)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "gthread",
         "--threads", "8", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
         "--chdir", str(HERE), "_raw:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            with contextlib.suppress(OSError):
                return Hello(base)() == 1
            return False

        wait_for(up, 30, "hello app up")
        clients = [Hello(base) for _ in range(args.capacity_clients)]
        return closed_loop(clients, lambda c: c(), args.capacity_seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    args = build_parser().parse_args()
    synthetic = max(0, args.viewers - args.pages)

    def during(demo: Demo, token: str, templates: dict[str, str]) -> SyntheticViewers:
        # each synthetic page holds its own push stream, as the real one does
        streams = args.push == "sse" and not args.no_viewer_streams
        query = "?metric=incidents&category=all" if streams else None
        return SyntheticViewers(demo.base_url, token, templates, synthetic, args.seconds,
                                push_query=query)  # fmt: skip

    out = bench_screen.run(args, "bench_viewers.py", during=during, after=capacity(args))
    out["viewers_in_all"] = {"real_chromium_pages": args.pages, "synthetic": synthetic}
    rate = (out.get("viewers") or {}).get("callbacks_per_viewer_per_s")
    after = out.get("after") or {}
    if rate and after.get("cockpit_callbacks_per_s"):
        # with push a viewer sends callbacks only when a part of its view changes: the
        # capacity in viewers at the rate the steady phase measured
        after["viewers_at_the_measured_callback_rate"] = round(
            after["cockpit_callbacks_per_s"] / rate)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
