"""``crm-pipelines sync | export | status | budgets``: the day-to-day operations, run in this process."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

from crm_pipelines.core.model import ENTITIES


def _store(args: argparse.Namespace):
    from crm_pipelines.storage.store import LocalStore

    return LocalStore.open(args.database)


def _entities(args: argparse.Namespace) -> list[str]:
    from crm_pipelines.sync.runner import provider_plugin

    found = provider_plugin(args.provider)
    return [args.entity] if args.entity else list(found.entities)


def _print_table(rows: list[dict[str, object]], columns: list[str]) -> None:
    if not rows:
        print("(nothing)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def cmd_sync(args: argparse.Namespace) -> int:
    from crm_pipelines.sync.runner import import_now

    store = _store(args)
    try:
        failed = 0
        for entity in _entities(args):
            result = import_now(args.provider, entity, store, full=args.full, strategy=args.strategy, priority=args.priority, shared=not args.no_shared_budget)
            print(result.summary())
            failed += result.failed
        if failed:
            print(f"{failed} records could not be imported; list them with: crm-pipelines rejects list {args.provider}")
        return 0
    finally:
        store.dispose()


def cmd_export(args: argparse.Namespace) -> int:
    from crm_pipelines.sync.runner import export_now

    store = _store(args)
    try:
        rejected = 0
        for entity in _entities(args):
            result = export_now(args.provider, entity, store, batch_size=args.batch_size, only_new=args.only_new, dry_run=args.dry_run,
                                priority=args.priority, shared=not args.no_shared_budget)
            print(result.summary())
            rejected += result.rejected
        if rejected:
            print(f"{rejected} records rejected; list them with: crm-pipelines rejects list {args.provider}")
        return 0
    finally:
        store.dispose()


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = (datetime.now(timezone.utc) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def cmd_status(args: argparse.Namespace) -> int:
    from crm_pipelines.providers.registry import all_plugins

    store = _store(args)
    try:
        rows = []
        for found in all_plugins():
            if args.provider and found.name != args.provider:
                continue
            for entity in found.entities:
                state = store.sync_state(found.name, entity)
                metrics = state.last_metrics or {}
                rows.append({
                    "provider": found.name, "entity": entity, "last run": _ago(state.last_run_at), "status": state.last_status or "-",
                    "synced through": state.synced_through.isoformat(timespec="seconds") if state.synced_through else "-",
                    "fetched": metrics.get("fetched", "-"), "failed": metrics.get("failed", "-"),
                    "open rejects": len(store.open_rejects(found.name, entity)), "local linked": len(store.linked_records(found.name, entity)),
                })
        if args.json:
            print(json.dumps(rows, default=str, indent=2))
        else:
            _print_table(rows, ["provider", "entity", "last run", "status", "synced through", "fetched", "failed", "open rejects", "local linked"])
        return 0
    finally:
        store.dispose()


def cmd_budgets(args: argparse.Namespace) -> int:
    from crm_pipelines.storage.quota import QuotaBudgets

    store = _store(args)
    try:
        rows = QuotaBudgets(store.engine).snapshot()
        for row in rows:
            row["blocked_for_s"] = round(row["blocked_for_s"], 1)
        _print_table(rows, ["key", "max_calls", "period_s", "used_now", "blocked_for_s", "high_priority_active"])
        return 0
    finally:
        store.dispose()


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", help="SQLAlchemy URL of the local database (default: $CRM_DATABASE_URL or ./crm_pipelines.db)")


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("provider", help="hubspot, salesforce, pipedrive, shopify, bling or gestaoclick")
    parser.add_argument("entity", nargs="?", choices=ENTITIES, help="one entity (default: all of the provider's)")
    parser.add_argument("--priority", choices=("high", "normal", "low"), default="normal", help="place in the queue for the account's API budget")
    parser.add_argument("--no-shared-budget", action="store_true", help="pace this process alone instead of sharing the budget kept in the database")
    _common(parser)


def add_parsers(sub) -> None:
    sync = sub.add_parser("sync", help="import changes from a provider into the local database, now, in this process")
    _target(sync)
    sync.add_argument("--full", action="store_true", help="read every record, not just what changed since the last sync")
    sync.add_argument("--strategy", default="auto", help="auto | list | search (providers with several read paths)")
    sync.set_defaults(func=cmd_sync)

    export = sub.add_parser("export", help="send local changes to a provider, now, in this process")
    _target(export)
    export.add_argument("--batch-size", type=int, default=100, help="records per write request (capped by the provider's batch limit)")
    export.add_argument("--only-new", action="store_true", help="create records not yet at the provider; leave linked ones alone")
    export.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    export.set_defaults(func=cmd_export)

    status = sub.add_parser("status", help="last sync of every provider and entity")
    status.add_argument("provider", nargs="?")
    status.add_argument("--json", action="store_true")
    _common(status)
    status.set_defaults(func=cmd_status)

    budgets = sub.add_parser("budgets", help="the shared API budgets as they stand now")
    _common(budgets)
    budgets.set_defaults(func=cmd_budgets)
