"""``cockpit reference …``: load flood gauges, catchments, sites, forbidden zones and the trucks'
permitted hours from files, write them back out, or go back to the generated demo set.

The file format and what the alert rules read from it: docs/reference.md. Exit codes of
``import`` are those of :mod:`geo.reference_import` (2-9); 1 means it could not be done here
(no grids loaded, nothing stored to export).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cockpit.cli_common import Commands
from cockpit.settings import Settings

EXIT_REFUSED = 1


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``reference`` command and its subcommands to the ``cockpit`` subparsers."""
    commands = Commands(subparsers, common)
    ref = commands.group(
        "reference", help="load flood gauges, sites, forbidden zones and truck hours",
        description="Reference data the feeds and alert rules use: flood gauges with warning "
        "and danger levels and a rate-of-rise alarm, their catchments, building sites, approved "
        "disposal sites (消纳场), forbidden zones for muck trucks and the trucks' permitted "
        "hours. Format: docs/reference.md.", title="reference commands",
    )  # fmt: skip
    imp = ref.add(
        "import", cmd_reference_import,
        help="import reference data from GeoJSON or GeoPackage files",
        description="Read one or more files (every layer of a GeoPackage), check them against "
        "the loaded grids, repair what can be repaired, reproject to EPSG:4326 and make them "
        "the cockpit's reference data, replacing all of it in one step. A file it cannot use "
        "stops the import with one line naming the file, feature and field; the exit code "
        "says which problem (docs/reference.md).",
    )  # fmt: skip
    imp.add_argument("files", nargs="+", metavar="FILE", help="reference file(s): .geojson, .gpkg")
    imp.add_argument(
        "--truck-hours", metavar="HH:MM-HH:MM",
        help="permitted hours of muck trucks, e.g. 20:00-06:00 (overrides the files; default "
        "20:00-06:00 when neither gives them)",
    )  # fmt: skip
    imp.add_argument("--dry-run", action="store_true", help="check the files, store nothing")

    exp = ref.add(
        "export", cmd_reference_export, help="write the stored reference data to a file",
        description="Write the stored reference data in the import format: GeoJSON for "
        ".geojson/.json, GeoPackage (layer 'reference') for .gpkg. Importing that file gives "
        "the same data back.",
    )  # fmt: skip
    exp.add_argument("file", help="file to write (.geojson or .gpkg; replaced if it exists)")

    demo = ref.add(
        "demo", cmd_reference_demo, help="generate the demo reference data for the loaded grids",
        description="Generate the demo city's reference data (deterministic for a seed) over "
        "the loaded grids and store it, replacing what is there. Meant for the demo city.",
    )  # fmt: skip
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")


def _client(settings: Settings):  # type: ignore[no-untyped-def]
    from cockpit.cli import _client as client

    return client(settings)


def cmd_reference_import(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from cockpit.areastore import NoAreasError, load_geography, save_reference
    from geo.reference_import import ReferenceFileError, check_paths, read_reference_files

    name = "cockpit reference import"
    try:
        check_paths(args.files)  # before starting anything
    except ReferenceFileError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.exit_code
    bars: dict[str, tqdm] = {}

    def progress(step: str, done: int, total: int) -> None:
        bar = bars.get(step)
        if bar is None:
            bar = bars[step] = tqdm(total=total, desc=step, leave=False, disable=None)
        bar.n = done
        bar.refresh()

    client, release = _client(settings)
    try:
        try:
            areas = load_geography(client).areas
        except NoAreasError as exc:
            print(f"{name}: {exc}; reference data is checked against the grids", file=sys.stderr)
            return EXIT_REFUSED
        try:
            reference, report = read_reference_files(
                [Path(f) for f in args.files], areas, truck_hours=args.truck_hours,
                progress=progress,
            )  # fmt: skip
        except ReferenceFileError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return exc.exit_code
        finally:
            for bar in bars.values():
                bar.close()
        kinds = ", ".join(f"{n} {kind}" for kind, n in report.kinds.items())
        files = "file" if report.files == 1 else "files"
        print(f"Read {report.files} {files}, {report.features} features: {kinds}")
        for source in report.reprojected:
            print(f"  reprojected to EPSG:4326: {source}")
        print(f"  repaired invalid polygons: {report.repaired}")
        print(f"  gauges outside every grid: {report.gauges_outside}")
        print(f"  truck permitted hours: {'-'.join(report.truck_hours)}")
        for warning in report.warnings:
            print(f"  warning: {warning}")
        if args.dry_run:
            print("Dry run: nothing stored.")
            return 0
        version = save_reference(client, reference)
    finally:
        release()
    print(f"Stored as reference version {version[:12]}; the app and the alert engine use it "
          "from their next read.")  # fmt: skip
    return 0


def cmd_reference_export(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.areastore import load_reference
    from geo.reference_import import ReferenceFileError, write_reference_file

    client, release = _client(settings)
    try:
        reference = load_reference(client)
    finally:
        release()
    if reference is None:
        print("cockpit reference export: no reference data stored; run `cockpit reference "
              "import FILE` or `cockpit grids demo` first", file=sys.stderr)  # fmt: skip
        return EXIT_REFUSED
    try:
        written = write_reference_file(reference, args.file)
    except ReferenceFileError as exc:
        print(f"cockpit reference export: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"cockpit reference export: cannot write {args.file}: {exc.strerror}",
              file=sys.stderr)  # fmt: skip
        return EXIT_REFUSED
    print(f"Wrote {written} features (reference version {reference.version[:12]}) to {args.file}")
    return 0


def cmd_reference_demo(args: argparse.Namespace, settings: Settings) -> int:
    from cockpit.areastore import NoAreasError, load_geography, save_reference
    from geo.reference import generate_reference

    client, release = _client(settings)
    try:
        try:
            areas = load_geography(client).areas
        except NoAreasError as exc:
            print(f"cockpit reference demo: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        try:
            reference = generate_reference(areas, seed=args.seed)
        except Exception as exc:  # noqa: BLE001 - the generator assumes the demo city's shape
            print(f"cockpit reference demo: cannot generate demo data for these grids ({exc}); "
                  "use `cockpit reference import FILE`", file=sys.stderr)  # fmt: skip
            return EXIT_REFUSED
        version = save_reference(client, reference)
    finally:
        release()
    print(f"Stored the demo reference data (seed {args.seed}): {len(reference.gauges)} gauges, "
          f"{len(reference.building_sites)} building sites, {len(reference.disposal_sites)} "
          f"disposal sites, {len(reference.forbidden_zones)} forbidden zones; version "
          f"{version[:12]}")  # fmt: skip
    return 0
