"""The ``cockpit`` command: demo, serve, worker, simulate, grids, status."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from cockpit.cli_common import Commands
from cockpit.contract import INCIDENTS
from cockpit.settings import Settings, SettingsError

if TYPE_CHECKING:
    from cockpit.areastore import Geography

DESCRIPTION = """Real-time city-operations cockpit: management grids, live incidents and alerts
from Redis Streams. Settings come from COCKPIT_* environment variables or a TOML file
(--config); flags given here win."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        settings = _settings(args)
        return int(args.handler(args, settings) or 0)
    except SettingsError as exc:
        print(f"cockpit: setting error: {exc}", file=sys.stderr)
        return 2
    except redis.ConnectionError as exc:
        print(
            f"cockpit: cannot reach Redis ({exc}). Check COCKPIT_REDIS_URL, or unset it to use "
            "the embedded Redis.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML settings file (default: $COCKPIT_CONFIG)")
    common.add_argument("--data-dir", help="data directory (default: $COCKPIT_DATA_DIR or ./data)")
    common.add_argument(
        "--redis-url", help="Redis URL (default: $COCKPIT_REDIS_URL, else the embedded Redis)"
    )

    parser = argparse.ArgumentParser(prog="cockpit", description=DESCRIPTION)
    commands = Commands(parser.add_subparsers(title="commands", metavar="COMMAND"), common)

    demo = commands.add(
        "demo", cmd_demo, help="start Redis, the demo city, a feed, a worker and the app",
        description="Start everything a first look needs: the embedded Redis (unless "
        "COCKPIT_REDIS_URL is set), the demo city, an incident simulator, a worker and the web "
        "app; prints the URL. Ctrl-C stops it all.",
    )  # fmt: skip
    _add_serve_flags(demo)
    demo.add_argument("--rate", type=float, default=20.0, help="incidents per second (default 20)")
    demo.add_argument("--seed", type=int, default=None, help="seed of city and feed (default 7)")
    demo.add_argument("--scale", type=float, default=1.0, help="demo city size factor (default 1)")
    demo.add_argument(
        "--backfill", type=int, default=60, metavar="MINUTES",
        help="on a fresh start, write this many minutes of past feed first (default 60; 0: none)",
    )  # fmt: skip
    demo.add_argument(
        "--no-simulator", dest="simulator", action="store_false",
        help="start no live feed: the map shows only what is written to the input streams",
    )  # fmt: skip

    serve = commands.add(
        "serve", cmd_serve, help="serve the web app with gunicorn",
        description="Serve the web app (several gunicorn worker processes; all state in Redis).",
    )  # fmt: skip
    _add_serve_flags(serve)

    worker = commands.add(
        "worker", cmd_worker, help="consume the input streams and keep the aggregates",
        description="Join the consumer group 'cockpit' and apply incidents to the aggregates. "
        "Run several for more throughput; each entry counts once.",
    )  # fmt: skip
    worker.add_argument("--name", help="consumer name (default host-pid)")
    worker.add_argument("--batch", type=int, default=5000, help="entries per read (default 5000)")
    worker.add_argument(
        "--claim-idle-ms", type=int, default=30_000,
        help="take over another consumer's unacknowledged entries after this idle time "
        "(default 30000)",
    )  # fmt: skip
    worker.add_argument(
        "--retention-hours", type=float, default=24.0,
        help="trim raw input streams to this age; never past unprocessed entries (default 24)",
    )  # fmt: skip

    sim = commands.add(
        "simulate", cmd_simulate, help="write a realistic demo feed",
        description="Write demo incidents to cockpit:in:incidents. Same seed, same feed.",
    )  # fmt: skip
    sim.add_argument("--rate", type=float, default=20.0, help="incidents per second (default 20)")
    sim.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    sim.add_argument("--limit", type=int, help="stop after this many incidents")
    sim.add_argument(
        "--speed", type=float, default=1.0,
        help="simulated seconds per real second (with --start in the past)",
    )  # fmt: skip
    sim.add_argument("--start", type=float, help="simulated start time, epoch seconds")
    sim.add_argument(
        "--feeds", default="incidents,gauges,trucks,surveys",
        help="comma-separated feeds to write (default all four)",
    )  # fmt: skip

    grids = commands.group("grids", help="load management grids", description="Load grids.",
                           title="grid commands")  # fmt: skip
    imp = grids.add(
        "import", cmd_grids_import, help="import a GeoJSON, GeoPackage or Shapefile of grids",
        description="Read a grid file, check and repair it, reproject to EPSG:4326 and make it "
        "the cockpit's grids. Columns are found by their usual names or mapped with the flags.",
    )  # fmt: skip
    imp.add_argument("file", help="grid file (.geojson, .gpkg, .shp …)")
    imp.add_argument("--id-col", help="column with the area id")
    imp.add_argument("--name-col", help="column with the (Chinese) name")
    imp.add_argument("--name-en-col", help="column with the English name")
    imp.add_argument("--parent-col", help="column with the parent area's id")
    imp.add_argument("--level-col", help="column with the level (city … grid)")
    imp.add_argument("--dry-run", action="store_true", help="check the file, store nothing")
    gdemo = grids.add(
        "demo", cmd_grids_demo, help="load the generated demo city",
        description="Generate the demo city (deterministic for a seed) and make it the grids.",
    )  # fmt: skip
    gdemo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    gdemo.add_argument("--scale", type=float, default=1.0, help="size factor (default 1)")

    commands.add(
        "status", cmd_status, help="show streams, lag and dead letters",
        description="Per input stream: length, pending entries, dead letters, applied entries.",
    )  # fmt: skip

    # not a Commands.group: ``cockpit bench`` alone has no handler of its own
    bench = commands.sub.add_parser(
        "bench", help="measure throughput (prints JSON)",
        description="Benchmarks; results go to BENCHMARKS.md.",
    )  # fmt: skip
    benchmarks = Commands(bench.add_subparsers(title="benchmarks", metavar="BENCHMARK"), common)
    ingest = benchmarks.add(
        "ingest", lambda a, s: _bench_ingest(a), shared=False,
        help="worker events/s, raw XRANGE and STRtree rates, freshness",
        description="Worker throughput for demo cities of the given grid counts, with the raw "
        "XRANGE read rate and shapely STRtree rate measured in the same run, and the p95 time "
        "from XADD to aggregates at 1,000 events/s. Uses its own embedded Redis.",
    )  # fmt: skip
    ingest.add_argument(
        "--grids", type=int, nargs="+", default=[557, 50_000],
        help="grid counts (default 557 50000; up to 757 means the demo city)",
    )  # fmt: skip
    ingest.add_argument("--events", type=int, default=200_000, help="events per run")
    ingest.add_argument("--batch", type=int, default=20_000, help="worker batch size")
    ingest.add_argument(
        "--workers", type=int, nargs="+", default=[2],
        help="also measure this many worker processes side by side in one group (default 2)",
    )  # fmt: skip

    from cockpit.cli_users import register as register_user_commands

    register_user_commands(commands.sub, common)
    from cockpit.cli_alerts import register as register_alert_commands

    register_alert_commands(commands.sub, common)
    from cockpit.cli_reference import register as register_reference_commands

    register_reference_commands(commands.sub, common)
    return parser


def _bench_ingest(args: argparse.Namespace) -> int:
    from cockpit import bench

    return bench.main(args)


def _add_serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default $COCKPIT_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default $COCKPIT_PORT or 8050)")
    p.add_argument("--web-workers", type=int, default=2, help="gunicorn processes (default 2)")


def _settings(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    for flag, name in (("data_dir", "DATA_DIR"), ("redis_url", "REDIS_URL"), ("host", "HOST"),
                       ("port", "PORT")):  # fmt: skip
        value = getattr(args, flag, None)
        if value is not None:
            env["COCKPIT_" + name] = str(value)
    settings = Settings.from_env(env, config_file=getattr(args, "config", None))
    if args.handler in (cmd_demo, cmd_serve):
        settings = settings.with_persistent_secret()  # sessions survive a restart
    return settings


def _connect(settings: Settings) -> tuple[redis.Redis, str, Callable[[], None]]:
    """A Redis client, its URL, and a function that stops what was started for it."""
    from cockpit.embedded_redis import EmbeddedRedis

    if settings.redis_url:
        client = redis.Redis.from_url(settings.redis_url)
        client.ping()
        return client, settings.redis_url, lambda: None
    embedded = EmbeddedRedis(settings.data_dir)
    url = embedded.ensure()
    return redis.Redis.from_url(url), url, embedded.stop


def _client(settings: Settings) -> tuple[redis.Redis, Callable[[], None]]:
    client, _url, release = _connect(settings)
    return client, release


def _stop_flag() -> Callable[[], bool]:
    stopping = threading.Event()

    def handle(_sig: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stopping.is_set


# -- commands -------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    seed = settings.demo_seed if args.seed is None else args.seed
    _client_, redis_url, release = _connect(settings)
    children: list[subprocess.Popen[bytes]] = []
    try:
        # In a child process: gunicorn forks the web processes from this one, and each would
        # start with this process's heap from generating the city in its RSS (shared pages
        # count): ~270 MB at 20,000 grids, before it loads anything of its own.
        failed = run_in_child(_demo_setup, redis_url, seed, args.scale, args.backfill, args.rate,
                              f"http://{settings.host}:{settings.port}/")  # fmt: skip
        if failed:
            return failed
        env = dict(os.environ, COCKPIT_REDIS_URL=redis_url, COCKPIT_SECRET_KEY=settings.secret_key)
        env["COCKPIT_DATA_DIR"] = str(settings.data_dir)
        py = [sys.executable, "-m", "cockpit"]
        children.append(subprocess.Popen([*py, "worker"], env=env))
        children.append(subprocess.Popen([*py, "alerts", "run"], env=env))
        if args.simulator:
            children.append(
                subprocess.Popen(
                    [*py, "simulate", "--rate", str(args.rate), "--seed", str(seed)], env=env
                )  # fmt: skip
            )
        os.environ.update(COCKPIT_REDIS_URL=redis_url, COCKPIT_SECRET_KEY=settings.secret_key)
        return _serve(settings, args.web_workers)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        release()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    _client_, redis_url, release = _connect(settings)
    try:
        os.environ["COCKPIT_REDIS_URL"] = redis_url
        # gunicorn workers must sign sessions with one key
        os.environ["COCKPIT_SECRET_KEY"] = settings.secret_key
        return _serve(settings, args.web_workers)
    finally:
        release()


def _serve(settings: Settings, workers: int) -> int:
    from gunicorn.app.base import BaseApplication

    from cockpit.gunicorn_conf import post_worker_init

    class CockpitServer(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", max(1, workers))
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", settings.web_threads)
            self.cfg.set("timeout", 60)
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", "warning")
            self.cfg.set("post_worker_init", post_worker_init)

        def load(self):  # type: ignore[no-untyped-def]
            from cockpit.webapp import create_app

            return create_app(Settings.from_env()).server

    print(f"Cockpit is running at http://{settings.host}:{settings.port}/  (Ctrl-C stops it)",
          flush=True)  # fmt: skip
    tune_malloc()
    CockpitServer().run()
    return 0


def tune_malloc(arenas: int = 2, mmap_threshold: int = 1 << 20,
                trim_threshold: int = 4 << 20) -> None:  # fmt: skip
    """Set glibc's malloc up before gunicorn forks (the forked workers inherit it).

    - At most ``arenas`` arenas: each of a gthread worker's threads otherwise gets one, and
      freed memory stays in them: with 8 threads a web process sat ~40 % above its live heap
      (benchmarks/bench_bigmap.py, BENCHMARKS.md). Same as MALLOC_ARENA_MAX=2.
    - Blocks over ``mmap_threshold`` always mapped on their own, and the heap's free top given
      back past ``trim_threshold``: glibc otherwise raises its mmap threshold to the size of
      each mapped block freed (up to 32 MB), so the heat raster's few-MB arrays and large
      responses then came from the heap and stayed in it; the 20,000-grid wall's web process
      grew to 311 MB in 60 s, 242 MB with this (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_).
    """
    import contextlib
    import ctypes
    import ctypes.util

    libc = ctypes.util.find_library("c")
    if libc is None:  # not glibc (musl, macOS): nothing to tune
        return
    with contextlib.suppress(OSError, AttributeError):
        mallopt = ctypes.CDLL(libc).mallopt
        mallopt(-8, arenas)  # M_ARENA_MAX
        mallopt(-3, mmap_threshold)  # M_MMAP_THRESHOLD
        mallopt(-1, trim_threshold)  # M_TRIM_THRESHOLD


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from cockpit.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    client, release = _client(settings)
    try:
        worker = Worker(
            client, name=args.name, batch_size=args.batch, claim_idle_ms=args.claim_idle_ms,
            retention_ms=int(args.retention_hours * 3600 * 1000), overlap=True,
        )  # fmt: skip
        stats = worker.run(_stop_flag())
        print(f"worker stopped: {stats.applied} applied, {stats.dead} dead letters", flush=True)
        return 0
    finally:
        release()


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.areastore import load_geography, load_reference
    from cockpit.simulator import run_simulator
    from cockpit.worker import wait_for_areas

    client, release = _client(settings)
    stop = _stop_flag()
    try:
        wait_for_areas(client, stop)
        feeds = frozenset(f.strip() for f in args.feeds.split(",") if f.strip())
        written = run_simulator(
            client, load_geography(client), args.rate, args.seed, stop=stop, limit=args.limit,
            reference=load_reference(client), feeds=feeds, speed=args.speed, start=args.start,
        )  # fmt: skip
        print(f"simulator stopped: {written} incidents written", flush=True)
        return 0
    finally:
        release()


def _backfill(client: redis.Redis, geo: Geography, rate: float, seed: int, minutes: int) -> None:
    from tqdm import tqdm

    from cockpit.simulator import backfill, backfill_counts

    total = sum(backfill_counts(rate, minutes, time.time()))
    desc = f"Writing the last {minutes} min of feed"
    with tqdm(total=total, desc=desc, unit="incidents", disable=None) as bar:
        backfill(client, geo, rate, seed, minutes, progress=bar.update)


def run_in_child(target: Callable[..., object], *args: object) -> int:
    """Run ``target(*args)`` in a forked child process and wait for it: what it allocates
    goes when it exits. Its exit code: 0 when it returned, non-zero when it raised (the
    traceback is printed) or was killed."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=target, args=args)
    child.start()
    child.join()
    return 0 if child.exitcode == 0 else max(1, child.exitcode or 1)


def _demo_setup(redis_url: str, seed: int, scale: float, backfill_minutes: int, rate: float,
                url: str) -> None:  # fmt: skip
    """The demo's data: the city and its reference data, the past hour of feed when the
    stream is new, and the demo users (printed)."""
    from cockpit.cli_users import print_demo_sign_ins

    client = redis.Redis.from_url(redis_url)
    geo = _load_demo_city(client, seed, scale)
    if backfill_minutes and not client.exists(INCIDENTS):
        _backfill(client, geo, rate, seed, backfill_minutes)
    print_demo_sign_ins(client, geo.areas, url)
    sys.stdout.flush()
    client.close()


def _load_demo_city(client: redis.Redis, seed: int, scale: float) -> Geography:
    from cockpit.areastore import VERSION_KEY, Geography, save_areas, save_reference
    from geo.demo_city import generate_demo_city
    from geo.reference import generate_reference

    started = time.monotonic()
    print(f"Generating the demo city (seed {seed}, scale {scale}) …", flush=True)
    areas = generate_demo_city(seed=seed, scale=scale)
    current = client.get(VERSION_KEY)
    if current is None or current.decode() != areas.version:
        save_areas(client, areas)
    save_reference(client, generate_reference(areas, seed=seed))
    print(f"  {len(areas.grids)} grids ready in {time.monotonic() - started:.1f} s", flush=True)
    return Geography(areas)


def cmd_grids_demo(args: argparse.Namespace, settings: Settings) -> int:
    client, release = _client(settings)
    try:
        _load_demo_city(client, args.seed, args.scale)
        return 0
    finally:
        release()


def cmd_grids_import(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from geo.grid_import import GridFileError, read_grid_file

    bars: dict[str, tqdm] = {}

    def progress(step: str, done: int, total: int) -> None:
        bar = bars.get(step)
        if bar is None:
            bar = bars[step] = tqdm(total=total, desc=step, unit="rows", leave=False, disable=None)
        bar.n = done
        bar.refresh()

    try:
        areas, report = read_grid_file(
            Path(args.file),
            id_col=args.id_col,
            name_col=args.name_col,
            name_en_col=args.name_en_col,
            parent_col=args.parent_col,
            level_col=args.level_col,
            progress=progress,
        )
    except GridFileError as exc:
        print(f"cockpit grids import: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        for bar in bars.values():
            bar.close()
    levels = ", ".join(f"{n} {lv}" for lv, n in report.levels.items())
    print(f"Read {report.rows} rows: {levels}")
    if report.reprojected_from:
        print(f"  reprojected from {report.reprojected_from} to EPSG:4326")
    print(f"  repaired invalid polygons: {report.repaired}")
    print(f"  overlapping grid pairs: {report.overlaps} ({report.overlap_area_m2:,.0f} m²)")
    print(f"  gaps between grids: {report.gaps} ({report.gap_area_m2:,.0f} m²)")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    if args.dry_run:
        print("Dry run: nothing stored.")
        return 0
    from cockpit.areastore import save_areas

    client, release = _client(settings)
    try:
        version = save_areas(client, areas)
    finally:
        release()
    print(f"Stored as grid version {version[:12]}; running apps pick it up on their next load.")
    return 0


def _clock(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.apply import HEALTH, HEALTH_RATE
    from cockpit.contract import DEADLETTER, GAUGES, GROUP, INCIDENTS, SURVEYS, TRUCKS
    from cockpit.worker import GAPS

    client, release = _client(settings)
    try:
        health = {k.decode(): int(v) for k, v in client.hgetall(HEALTH).items()}
        print(f"{'stream':<24}{'length':>10}{'pending':>10}{'lag':>10}{'applied':>12}{'dead':>8}")
        for stream in (INCIDENTS, GAUGES, TRUCKS, SURVEYS):
            length = client.xlen(stream) if client.exists(stream) else 0
            pending = lag = 0
            if length:
                for group in client.xinfo_groups(stream):
                    if group["name"].decode() == GROUP:
                        pending = group["pending"]
                        lag = group.get("lag") or 0
            dead = sum(v for k, v in health.items() if k.startswith(stream + "|dead|"))
            applied = health.get(stream + "|applied", 0)
            print(f"{stream:<24}{length:>10}{pending:>10}{lag:>10}{applied:>12}{dead:>8}")
        print(f"dead letters kept: {client.xlen(DEADLETTER) if client.exists(DEADLETTER) else 0}")
        minute = int(client.time()[0]) // 60 - 1  # the last whole minute
        rates = {k.decode(): int(v) for k, v in client.hgetall(f"{HEALTH_RATE}{minute}").items()}
        per_s = ", ".join(f"{s.split(':')[-1]} {rates.get(s, 0) / 60:.1f}" for s in
                          (INCIDENTS, GAUGES, TRUCKS, SURVEYS))  # fmt: skip
        print(f"events/s over the last minute: {per_s}")
        for _id, gap in client.xrange(GAPS) if client.exists(GAPS) else []:
            since = _clock(int(gap[b"last_ok_ms"]))
            found = _clock(int(gap[b"detected_ms"]))
            print(f"GAP: data lost between {since} and {found}: {gap[b'reason'].decode()}")
        return 0
    finally:
        release()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
