"""``crm-pipelines report``: the data-quality reports of a store's integrations, printed or written as files.

The same reports the Dagster assets ``<provider>/<entity>_quality`` record, read from the local
database only. ``--csv DIR`` or ``--parquet DIR`` writes one file per integration, entity and
finding, plus ``summary`` with every figure (parquet needs pyarrow: ``pip install pyarrow``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crm_pipelines.cli.tables import print_table
from crm_pipelines.core.model import ENTITIES


def _targets(store, args: argparse.Namespace) -> list:
    from crm_pipelines.providers.registry import PROVIDERS

    if args.provider and args.provider not in PROVIDERS:
        raise ValueError(f"unknown provider {args.provider!r}; expected one of {', '.join(PROVIDERS)}")
    found = store.integrations.list(store=args.store, provider=args.provider)
    if args.integration:
        found = [i for i in found if i.key == args.integration]
    if not found:
        where = " ".join(filter(None, [args.provider, args.integration and f"integration {args.integration}", args.store and f"in store {args.store}"]))
        raise ValueError(f"no integration {where or 'registered'}; list them with: crm-pipelines integrations list")
    return found


def _writer(args: argparse.Namespace):
    """(directory, suffix, write(frame, path)) for --csv / --parquet, or None to print."""
    if args.csv:
        return Path(args.csv), "csv", lambda frame, path: frame.to_csv(path, index=False)
    if args.parquet:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError("--parquet needs pyarrow (pip install pyarrow, or pip install 'crm_pipelines[parquet]'); --csv needs nothing more") from None
        return Path(args.parquet), "parquet", lambda frame, path: frame.astype({c: str for c in frame.columns if frame[c].dtype == object}).to_parquet(path, index=False)
    return None


def _print(report, outcomes) -> None:
    print(f"\n== {report.integration} {report.entity} (store {report.store}): {report.records} records, reported in {report.seconds:.1f} s")
    print_table([{"figure": k, "value": v} for k, v in report.figures().items()], ["figure", "value"])
    for kind, frame in report.frames().items():
        if frame.empty:
            continue
        print(f"\n-- {kind}")
        print_table(frame.to_dict("records"), [str(c) for c in frame.columns])
    print("\n-- checks")
    print_table([{"check": o.name, "result": "pass" if o.passed else "FAIL", "found": o.description} for o in outcomes], ["check", "result", "found"])


def cmd_report(args: argparse.Namespace) -> int:
    import pandas as pd

    from crm_pipelines.quality.checks import evaluate
    from crm_pipelines.quality.reports import QualityReporter
    from crm_pipelines.storage.store import LocalStore

    writer = _writer(args)
    store = LocalStore.open(args.database)
    try:
        reporter = QualityReporter(store)
        summary, failed = [], 0
        for integration in _targets(store, args):
            overrides = {k: v for k, v in (("stale_after_hours", args.stale_hours), ("examples", args.examples)) if v is not None}
            thresholds = integration.settings.quality.model_copy(update=overrides)
            for entity in [args.entity] if args.entity else list(ENTITIES):
                report = reporter.report(integration, entity, thresholds)
                outcomes = evaluate(report, thresholds)
                failed += sum(not o.passed for o in outcomes)
                summary.append({"integration": report.integration, "store": report.store, "entity": entity, **report.figures(),
                                **{f"check/{o.name}": "pass" if o.passed else "fail" for o in outcomes}})
                if writer is None:
                    _print(report, outcomes)
                    continue
                directory, suffix, write = writer
                directory.mkdir(parents=True, exist_ok=True)
                stem = f"{integration.provider}_{integration.key}_{entity}"
                for kind, frame in report.frames().items():
                    write(frame, directory / f"{stem}_{kind}.{suffix}")
        if writer is not None:
            directory, suffix, write = writer
            write(pd.DataFrame(summary, dtype=object), directory / f"summary.{suffix}")
            print(f"{len(summary)} reports written to {directory} (summary.{suffix} and one file per finding)")
        if failed:
            print(f"{failed} quality checks failed", file=sys.stderr)
            return 2 if args.fail_on_check else 0
        return 0
    finally:
        store.dispose()


def add_parsers(sub, common) -> None:
    report = sub.add_parser("report", help="data-quality reports of a store's integrations (local database only): print them, or write CSV/Parquet")
    report.add_argument("provider", nargs="?", help="only this provider's integrations")
    report.add_argument("entity", nargs="?", choices=ENTITIES, help="only this entity (default: all)")
    report.add_argument("--store", "--loja", dest="store", help="only this store's integrations (records are never compared across stores)")
    report.add_argument("--integration", help="only the integration with this key")
    out = report.add_mutually_exclusive_group()
    out.add_argument("--csv", metavar="DIR", help="write the tables as CSV files into DIR instead of printing them")
    out.add_argument("--parquet", metavar="DIR", help="write the tables as Parquet files into DIR (needs pyarrow)")
    report.add_argument("--stale-hours", type=float, help="report local changes not synced for longer than this (default: the integration's setting, else 24)")
    report.add_argument("--examples", type=int, help="example records per finding (default: the integration's setting, else 10)")
    report.add_argument("--fail-on-check", action="store_true", help="exit with status 2 when a quality check fails (for CI)")
    common(report)
    report.set_defaults(func=cmd_report)
