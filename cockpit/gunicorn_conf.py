"""gunicorn settings hooks for the cockpit's web processes. `cockpit serve` uses them; with
gunicorn run directly, name this module as its config:

    gunicorn -c python:cockpit.gunicorn_conf -k gthread --threads 64 -w 4 app:server
"""

from __future__ import annotations

import signal
import threading


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """In each new web process: load the grids and the whole area's served
    geometry in the background, so the first wall to open does not wait for them; and end
    the push streams when the process is told to stop."""
    from cockpit.webapp import warm_up

    threading.Thread(target=warm_up, args=(worker.wsgi,), name="cockpit-warm-up",
                     daemon=True).start()  # fmt: skip
    _end_streams_on_stop()


def _end_streams_on_stop() -> None:
    """Before gunicorn's own handlers (installed before this hook runs) see a stop signal,
    end the push streams (cockpit.push.stop_streams), which would hold the process open."""
    from cockpit.push import stop_streams

    quitting: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        then = signal.getsignal(sig)

        def handler(signum, frame, then=then):  # type: ignore[no-untyped-def]
            # woken from a thread: the handler runs on the main thread, which may not block
            threading.Thread(target=stop_streams, name="cockpit-stop-streams", daemon=True).start()
            if signum != signal.SIGTERM:
                if quitting:
                    # Ctrl-C reaches the process twice (from the terminal and from gunicorn's
                    # master); a second quick exit, raised while the first one tears the
                    # process down, only printed "Exception ignored ... SystemExit"
                    return
                quitting.append(signum)
            if callable(then):
                then(signum, frame)

        signal.signal(sig, handler)
