"""``cockpit alerts …``: run the alert engine, import CAP, list and export alerts."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cockpit.cli_common import Commands
from cockpit.settings import Settings

#: Exit codes: 0 done, 1 could not do it (refused input, missing alert), 2 usage.
EXIT_REFUSED = 1


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``alerts`` command and its subcommands to the ``cockpit`` subparsers."""
    commands = Commands(subparsers, common)
    alerts = commands.group(
        "alerts", help="run the alert engine, import CAP, list and export alerts",
        description="Alerts: flood gauges, muck trucks, disputes, rising risk and CAP 1.2 "
        "messages, escalated grid -> street -> district -> city until acknowledged.",
        title="alert commands",
    )  # fmt: skip

    run = alerts.add(
        "run", cmd_alerts_run, help="run the alert engine",
        description="Read gauges, trucks, incidents and cockpit:in:cap in the consumer group "
        "'alerts', run the rules and timers, and keep the alerts in Redis. Several may run: one "
        "leads (a lock in Redis), the others stand by and take over when it stops. Minutes come "
        "from COCKPIT_ALERT_STOP_MINUTES (default 15), COCKPIT_ALERT_OFFLINE_MINUTES (10) and "
        "COCKPIT_ALERT_TIMER_S (30).",
    )  # fmt: skip
    run.add_argument("--name", help="consumer name (default host-pid)")

    imp = alerts.add(
        "import-cap", cmd_alerts_import_cap, help="import a CAP 1.2 XML document",
        description="Apply one OASIS CAP 1.2 document: Alert creates an alert on the grids its "
        "area covers, Update and Cancel act on the alert they reference. Malformed or hostile "
        "XML (DTDs, entities) is refused with the reason; exit code 1.",
    )  # fmt: skip
    imp.add_argument("file", help="CAP XML file, or - for standard input")

    lst = alerts.add(
        "list", cmd_alerts_list, help="list open alerts (or all)",
        description="Open alerts, most severe first: id, severity, status, escalation level, "
        "grids and title.",
    )  # fmt: skip
    lst.add_argument("--all", action="store_true", help="include closed alerts (newest first)")
    lst.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")

    exp = alerts.add(
        "export", cmd_alerts_export, help="print an alert as CAP 1.2 XML",
        description="Write the alert with this id to standard output as a CAP 1.2 document.",
    )  # fmt: skip
    exp.add_argument("id", help="alert id (al-…)")


def _client(settings: Settings):  # type: ignore[no-untyped-def]
    from cockpit.cli import _client as client

    return client(settings)


def cmd_alerts_run(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from cockpit.alerts.engine import AlertEngine, EngineConfig
    from cockpit.cli import _stop_flag
    from cockpit.worker import wait_for_areas

    logging.basicConfig(level=logging.INFO, format="%(asctime)s alerts %(message)s")
    try:
        config = EngineConfig.from_env()
    except ValueError as exc:
        print(f"cockpit alerts run: {exc}", file=sys.stderr)
        return 2
    client, release = _client(settings)
    stop = _stop_flag()
    try:
        wait_for_areas(client, stop, timeout=float("inf"))
        engine = AlertEngine(client, name=args.name, config=config)
        stats = engine.run(stop)
        print(f"alert engine stopped: {stats.handled} entries, {stats.raised} alerts raised, "
              f"{stats.dead} dead letters", flush=True)  # fmt: skip
        return 0
    finally:
        release()


def read_cap_source(source: str) -> bytes:
    """The bytes of a CAP document from a path, or standard input for ``-``."""
    if source == "-":
        return sys.stdin.buffer.read()
    return Path(source).read_bytes()


def cmd_alerts_import_cap(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.alerts.cap import CapError
    from cockpit.alerts.engine import import_cap
    from cockpit.areastore import NoAreasError, load_geography

    try:
        data = read_cap_source(args.file)
    except OSError as exc:
        print(f"cockpit alerts import-cap: cannot read {args.file}: {exc.strerror}",
              file=sys.stderr)  # fmt: skip
        return EXIT_REFUSED
    client, release = _client(settings)
    try:
        geo = load_geography(client)
        changes = import_cap(client, data, geo, time.time())
    except CapError as exc:
        print(f"cockpit alerts import-cap: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except NoAreasError as exc:
        print(f"cockpit alerts import-cap: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        release()
    for change in changes:
        alert = change.alert
        what = f"{change.action}: {alert.id} on {len(alert.area_grids)} grids" if alert else (
            change.action)  # fmt: skip
        print(what + (f" ({change.reason})" if change.reason else ""))
    return 0


def cmd_alerts_list(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.alerts import store

    client, release = _client(settings)
    try:
        if args.all:
            alerts = store.all_alerts(client, args.limit)
        else:
            alerts = store.order_alerts(store.get_alerts(client, store.open_alert_ids(client)))
            alerts = alerts[: args.limit]
    finally:
        release()
    if not alerts:
        print("no alerts" if args.all else "no open alerts")
        return 0
    print(f"{'id':<24}{'severity':<10}{'status':<14}{'level':<10}{'grids':>6}  title")
    for a in alerts:
        raised = time.strftime("%m-%d %H:%M", time.localtime(a.raised_at))
        print(f"{a.id:<24}{a.severity:<10}{a.status:<14}{a.escalation_level:<10}"
              f"{len(a.area_grids):>6}  {raised} {a.title_en or a.kind}")  # fmt: skip
    return 0


def cmd_alerts_export(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.alerts import store
    from cockpit.alerts.cap import export_cap

    client, release = _client(settings)
    try:
        alert = store.get_alert(client, args.id)
    finally:
        release()
    if alert is None:
        print(f"cockpit alerts export: no alert {args.id!r}", file=sys.stderr)
        return EXIT_REFUSED
    sys.stdout.write(export_cap(alert))
    return 0
