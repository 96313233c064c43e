"""``crm-pipelines sync | export | status | rejects | conflicts | dedupe | budgets``: day-to-day operations.

``sync`` and ``export`` run in this process (with a progress bar) or, with ``--async``, are
launched through Dagster and return at once.
"""

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


def _launch_async(args: argparse.Namespace, direction: str) -> int:
    """Queue the provider's Dagster job (the daemon runs it) and say how to follow it."""
    import subprocess
    import sys

    from crm_pipelines.dagster_defs.partitions import partition_key_for
    from crm_pipelines.dagster_defs.schedules import export_job_name, import_job_name
    from crm_pipelines.sync.runner import provider_plugin

    found = provider_plugin(args.provider, args.entity)
    job = import_job_name(found.name) if direction == "import" else export_job_name(found.name)
    tags = {"crm/trigger": "cli", "crm/priority": args.priority}
    if direction == "import":
        tags["dagster/partition"] = partition_key_for(datetime.now(timezone.utc))
    command = [sys.executable, "-m", "dagster", "job", "launch", "-m", "crm_pipelines.definitions", "-j", job, "--tags", json.dumps(tags)]
    if direction == "export":
        if args.entity:
            raise ValueError(f"--async runs the {job} job, which exports every entity of {found.title}; leave out {args.entity!r} or drop --async")
        config = {"batch_size": args.batch_size, "only_new": args.only_new, "dry_run": args.dry_run}
        ops = {f"{found.name}__{e}_export": {"config": config} for e in found.entities}
        command += ["--config-json", json.dumps({"ops": ops})]
    launched = subprocess.run(command, capture_output=True, text=True)
    if launched.returncode != 0:
        last = (launched.stderr.strip().splitlines() or ["dagster job launch failed"])[-1]
        raise RuntimeError(f"could not launch {job}: {last}")
    print(f"launched {job} through Dagster ({', '.join(f'{k}={v}' for k, v in tags.items())}); it runs when the daemon picks it up.")
    print("Follow it in the Dagster UI (Runs) or with: crm-pipelines status " + found.name)
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from crm_pipelines.cli.progress import ProgressBar
    from crm_pipelines.sync.runner import import_now

    if args.async_:
        if args.entity:
            print("note: --async imports every entity of the provider (one run per window)")
        return _launch_async(args, "import")
    store = _store(args)
    try:
        failed = 0
        for entity in _entities(args):
            bar = ProgressBar(f"{args.provider}/{entity} import")
            try:
                result = import_now(args.provider, entity, store, full=args.full, strategy=args.strategy, priority=args.priority,
                                    shared=not args.no_shared_budget, progress=bar.update)
            finally:
                bar.close()
            print(result.summary())
            failed += result.failed
        if failed:
            print(f"{failed} records could not be imported; list them with: crm-pipelines rejects list {args.provider}")
        return 0
    finally:
        store.dispose()


def cmd_export(args: argparse.Namespace) -> int:
    from crm_pipelines.cli.progress import ProgressBar
    from crm_pipelines.sync.runner import export_now

    if args.async_:
        return _launch_async(args, "export")
    store = _store(args)
    try:
        rejected = 0
        for entity in _entities(args):
            bar = ProgressBar(f"{args.provider}/{entity} export")
            try:
                result = export_now(args.provider, entity, store, batch_size=args.batch_size, only_new=args.only_new, dry_run=args.dry_run,
                                    priority=args.priority, shared=not args.no_shared_budget, progress=bar.update)
            finally:
                bar.close()
            print(result.summary())
            rejected += result.rejected
        if rejected:
            print(f"{rejected} records rejected; list them with: crm-pipelines rejects list {args.provider}")
        return 0
    finally:
        store.dispose()


def cmd_rejects(args: argparse.Namespace) -> int:
    from crm_pipelines.sync.runner import retry_rejects

    store = _store(args)
    try:
        if args.action == "retry":
            if not args.provider:
                raise ValueError("rejects retry needs a provider (and optionally an entity)")
            for entity in _entities(args):
                for direction in ("import", "export"):
                    figures = retry_rejects(args.provider, entity, store, direction=direction, shared=not args.no_shared_budget)
                    if figures["retried"]:
                        print(f"{args.provider}/{entity} {direction}: retried {figures['retried']}, still rejected {figures['still_rejected']}")
            return 0
        rows = store.open_rejects(args.provider, args.entity)
        shown = [{"provider": r["provider"], "entity": r["entity"], "direction": r["direction"], "record": r["record_ref"], "category": r["category"],
                  "attempts": r["attempts"], "last seen": _ago(r["last_seen_at"]), "reason": str(r["message"])[:90]} for r in rows[: args.limit]]
        _print_table(shown, ["provider", "entity", "direction", "record", "category", "attempts", "last seen", "reason"])
        if len(rows) > args.limit:
            print(f"... {len(rows) - args.limit} more (use --limit)")
        return 0
    finally:
        store.dispose()


def cmd_conflicts(args: argparse.Namespace) -> int:
    from crm_pipelines.storage.conflicts import ConflictLedger

    store = _store(args)
    try:
        ledger = ConflictLedger(store.engine)
        if args.action == "resolve":
            fields = dict(pair.split("=", 1) for pair in args.field or [])
            take = "merge" if fields and args.take is None else (args.take or "")
            result = ledger.resolve(args.id, take, fields=fields or None)
            print(f"conflict {result['id']} resolved: {result['decision']} (local {result['entity']} {result['local_id']})"
                  + ("; the next export sends it" if result["decision"] != "provider" else ""))
            return 0
        rows = ledger.list(provider=args.provider, include_resolved=args.all, limit=args.limit)
        shown = []
        for r in rows:
            changed = [n for n in r["local_fields"] if r["local_fields"].get(n) != r["remote_fields"].get(n)]
            diff = "; ".join(f"{n}: {r['local_fields'].get(n)!r} | {r['remote_fields'].get(n)!r}" for n in changed)
            shown.append({"id": r["id"], "provider": r["provider"], "entity": r["entity"], "local": r["local_id"], "remote": r["external_id"],
                          "decision": r["decision"] or "waiting", "differs (local | provider)": diff[:100]})
        _print_table(shown, ["id", "provider", "entity", "local", "remote", "decision", "differs (local | provider)"])
        return 0
    finally:
        store.dispose()


def cmd_dedupe(args: argparse.Namespace) -> int:
    from crm_pipelines.storage.dedupe import Deduplicator

    store = _store(args)
    try:
        dedupe = Deduplicator(store.engine)
        if args.merge:
            survivor, *others = args.merge
            done = dedupe.merge(args.entity, survivor, others)
            print(f"kept {args.entity} {done['survivor']}, merged {done['merged']}, filled {done['filled'] or 'nothing'}, moved {done['links_moved']} links")
            return 0
        rows = []
        for entity in ([args.entity] if args.entity else ["contacts", "companies"]):
            for line in dedupe.run(entity, args.policy, dry_run=args.dry_run):
                rows.append({"entity": line["entity"], "records": ",".join(map(str, line["ids"])), "shared": ", ".join(f"{k}={v}" for k, v in line["keys"].items()),
                             "action": line["action"]})
        _print_table(rows, ["entity", "records", "shared", "action"])
        print(f"{len(rows)} groups of duplicates" + (" (dry run: nothing changed)" if args.dry_run else ""))
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
    sync = sub.add_parser("sync", help="import changes from a provider into the local database")
    _target(sync)
    sync.add_argument("--full", action="store_true", help="read every record, not just what changed since the last sync")
    sync.add_argument("--strategy", default="auto", help="auto | list | search (providers with several read paths)")
    sync.add_argument("--async", dest="async_", action="store_true", help="launch through Dagster and return at once")
    sync.set_defaults(func=cmd_sync)

    export = sub.add_parser("export", help="send local changes to a provider")
    _target(export)
    export.add_argument("--batch-size", type=int, default=100, help="records per write request (capped by the provider's batch limit)")
    export.add_argument("--only-new", action="store_true", help="create records not yet at the provider; leave linked ones alone")
    export.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    export.add_argument("--async", dest="async_", action="store_true", help="launch through Dagster and return at once")
    export.set_defaults(func=cmd_export)

    status = sub.add_parser("status", help="last sync of every provider and entity")
    status.add_argument("provider", nargs="?")
    status.add_argument("--json", action="store_true")
    _common(status)
    status.set_defaults(func=cmd_status)

    rejects = sub.add_parser("rejects", help="records a provider or the local database refused, with the reason; retry them")
    rejects.add_argument("action", choices=("list", "retry"))
    rejects.add_argument("provider", nargs="?")
    rejects.add_argument("entity", nargs="?", choices=ENTITIES)
    rejects.add_argument("--limit", type=int, default=50)
    rejects.add_argument("--no-shared-budget", action="store_true")
    _common(rejects)
    rejects.set_defaults(func=cmd_rejects)

    conflicts = sub.add_parser("conflicts", help="records changed locally and at a provider: list, and resolve by hand")
    conflicts.add_argument("action", choices=("list", "resolve"))
    conflicts.add_argument("id", nargs="?", type=int, help="conflict id (resolve)")
    conflicts.add_argument("--provider")
    conflicts.add_argument("--all", action="store_true", help="include resolved conflicts (every decision is kept)")
    conflicts.add_argument("--take", choices=("local", "provider", "merge"), help="which side wins (resolve)")
    conflicts.add_argument("--field", action="append", metavar="NAME=local|provider", help="merge field by field (repeatable)")
    conflicts.add_argument("--limit", type=int, default=50)
    _common(conflicts)
    conflicts.set_defaults(func=cmd_conflicts)

    dedupe = sub.add_parser("dedupe", help="find local duplicates (same e-mail, CPF/CNPJ or domain) and merge them")
    dedupe.add_argument("entity", nargs="?", choices=("contacts", "companies"))
    dedupe.add_argument("--policy", choices=("keep_latest", "keep_provider", "manual"), default="manual")
    dedupe.add_argument("--dry-run", action="store_true", help="list what would be merged; change nothing")
    dedupe.add_argument("--merge", nargs="+", type=int, metavar="ID", help="merge these ids into the first one (after a manual review)")
    _common(dedupe)
    dedupe.set_defaults(func=cmd_dedupe)

    budgets = sub.add_parser("budgets", help="the shared API budgets as they stand now")
    _common(budgets)
    budgets.set_defaults(func=cmd_budgets)
