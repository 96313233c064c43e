"""``crm-pipelines sync | export | status | rejects | conflicts | dedupe | budgets``: day-to-day operations.

``sync`` and ``export`` run in this process (with a progress bar) or, with ``--async``, are
launched through Dagster and return at once.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

from crm_pipelines.cli.async_checks import check_async_launch
from crm_pipelines.cli.integrations import add_target_arguments
from crm_pipelines.cli.tables import print_table as _print_table
from crm_pipelines.core.model import ENTITIES


def _store(args: argparse.Namespace):
    from crm_pipelines.storage.store import LocalStore

    return LocalStore.open(args.database)


def _entities(args: argparse.Namespace) -> list[str]:
    from crm_pipelines.sync.runner import provider_plugin

    found = provider_plugin(args.provider)
    return [args.entity] if args.entity else list(found.entities)


def _target(store, args: argparse.Namespace):
    """The integration a command names (``--integration``, else ``--store``'s, else the default store's)."""
    return store.integrations.resolve_target(args.provider, store=getattr(args, "store", None), key=getattr(args, "integration", None))


def _store_id(store, args: argparse.Namespace) -> int | None:
    return store.integrations.store(args.store).id if getattr(args, "store", None) else None


def _launch_async(args: argparse.Namespace, direction: str) -> int:
    """Start the job through the jobs API (``crm-pipelines serve``): answers at once with its id.
    Without the service, the run is launched with ``dagster job launch`` (tens of seconds)."""
    from crm_pipelines.cli.jobs import api_request

    body: dict = {"provider": args.provider, "kind": "sync" if direction == "import" else "export", "entity": args.entity,
                  "store": getattr(args, "store", None), "integration": getattr(args, "integration", None)}
    if direction == "import":
        body["full"] = args.full
    else:
        body.update(batch_size=args.batch_size, only_new=args.only_new, dry_run=args.dry_run)
    job = api_request("POST", "/api/jobs", {k: v for k, v in body.items() if v is not None})
    if job is None:
        print("note: the jobs service does not answer (start it with: crm-pipelines serve, and set CRM_API_TOKEN); launching with dagster job launch")
        return _launch_with_dagster_cli(args, direction)
    print(f"job {job['id']} {job['state']}: {job['kind']} {job['provider']}/{job['integration_key']}{'/' + job['entity'] if job['entity'] else ''}")
    print(f"follow it with: crm-pipelines jobs watch {job['id']}")
    return 0


def _launch_with_dagster_cli(args: argparse.Namespace, direction: str) -> int:
    """Queue the provider's Dagster job for the integration (the daemon runs it), with its job row."""
    import subprocess
    import sys

    from crm_pipelines.dagster_defs.schedules import export_job_name, import_job_name
    from crm_pipelines.jobs.store import JobStore
    from crm_pipelines.sync.runner import provider_plugin

    found = provider_plugin(args.provider, args.entity)
    check_async_launch(found.name)
    job = import_job_name(found.name) if direction == "import" else export_job_name(found.name)
    if args.entity:
        raise ValueError(f"without the jobs service --async runs the {job} job, which covers every entity of {found.title}; leave out {args.entity!r}")
    store = _store(args)
    try:
        integration = _target(store, args)
        row = JobStore(store.engine).create("sync" if direction == "import" else "export", found.name, integration, trigger="cli")
    finally:
        store.dispose()
    tags = {"crm/trigger": "cli", "crm/priority": args.priority, "dagster/partition": integration.key, "crm/integration": integration.key,
            "crm/job_id": str(row.id)}
    command = [sys.executable, "-m", "dagster", "job", "launch", "-m", "crm_pipelines.definitions", "-j", job, "--tags", json.dumps(tags)]
    ops = {}
    if direction == "export":
        config = {"batch_size": args.batch_size, "only_new": args.only_new, "dry_run": args.dry_run}
        ops = {f"{found.name}__{e}_export": {"config": config} for e in found.entities}
    elif args.full:
        ops = {f"{found.name}__{e}": {"config": {"full": True}} for e in found.entities}
    if ops:
        command += ["--config-json", json.dumps({"ops": ops})]
    launched = subprocess.run(command, capture_output=True, text=True)
    if launched.returncode != 0:
        lines = [line.strip() for line in launched.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "Error: " in line and not line.startswith("File ")]
        raise RuntimeError(f"could not launch {job}: {(errors or lines or ['dagster job launch failed'])[-1]}")
    print(f"job {row.id} queued: {job} for {integration.label}; it runs when the Dagster daemon picks it up.")
    print(f"follow it with: crm-pipelines jobs watch {row.id}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from crm_pipelines.cli.progress import ProgressBar
    from crm_pipelines.sync.runner import import_now

    if args.async_:
        return _launch_async(args, "import")
    store = _store(args)
    try:
        failed = 0
        integration = _target(store, args)
        for entity in _entities(args):
            bar = ProgressBar(f"{integration.label}/{entity} import")
            try:
                result = import_now(integration, entity, store, full=args.full, strategy=args.strategy, priority=args.priority,
                                    shared=not args.no_shared_budget, progress=bar.update)
            finally:
                bar.close()
            print(result.summary())
            failed += result.failed
        if failed:
            print(f"{failed} records could not be imported; list them with: crm-pipelines rejects list {args.provider}{_target_flags(integration)}")
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
        integration = _target(store, args)
        batch_size = min(args.batch_size, integration.settings.batch_size or args.batch_size)
        for entity in _entities(args):
            bar = ProgressBar(f"{integration.label}/{entity} export")
            try:
                result = export_now(integration, entity, store, batch_size=batch_size, only_new=args.only_new, dry_run=args.dry_run,
                                    priority=args.priority, shared=not args.no_shared_budget, progress=bar.update)
            finally:
                bar.close()
            print(result.summary())
            rejected += result.rejected
        if rejected:
            print(f"{rejected} records rejected; list them with: crm-pipelines rejects list {args.provider}{_target_flags(integration)}")
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
            integration = _target(store, args)
            for entity in _entities(args):
                for direction in ("import", "export"):
                    figures = retry_rejects(integration, entity, store, direction=direction, shared=not args.no_shared_budget)
                    if figures["retried"]:
                        print(f"{integration.label}/{entity} {direction}: retried {figures['retried']}, still rejected {figures['still_rejected']}")
            return 0
        labels = {i.id: i.label for i in store.integrations.list()}
        if args.provider:
            rows = store.open_rejects(_target(store, args), args.entity)
        else:
            rows = store.open_rejects(None, args.entity, store_id=_store_id(store, args))
        shown = [{"integration": labels.get(r["integration_id"], r["provider"]), "entity": r["entity"], "direction": r["direction"], "record": r["record_ref"],
                  "category": r["category"], "attempts": r["attempts"], "last seen": _ago(r["last_seen_at"]), "reason": str(r["message"])[:90]} for r in rows[: args.limit]]
        _print_table(shown, ["integration", "entity", "direction", "record", "category", "attempts", "last seen", "reason"])
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
        labels = {i.id: i.label for i in store.integrations.list()}
        scope = None
        if args.integration and args.provider:
            scope = [store.integrations.get(args.provider, args.integration).id]
        elif args.store:
            scope = [i.id for i in store.integrations.list(store=args.store)]
        rows = ledger.list(provider=args.provider, integration_ids=scope, include_resolved=args.all, limit=args.limit)
        shown = []
        for r in rows:
            changed = [n for n in r["local_fields"] if r["local_fields"].get(n) != r["remote_fields"].get(n)]
            diff = "; ".join(f"{n}: {r['local_fields'].get(n)!r} | {r['remote_fields'].get(n)!r}" for n in changed)
            shown.append({"id": r["id"], "integration": labels.get(r["integration_id"], r["provider"]), "entity": r["entity"], "local": r["local_id"],
                          "remote": r["external_id"], "decision": r["decision"] or "waiting", "differs (local | provider)": diff[:100]})
        _print_table(shown, ["id", "integration", "entity", "local", "remote", "decision", "differs (local | provider)"])
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
            for line in dedupe.run(entity, args.policy, dry_run=args.dry_run, store_id=_store_id(store, args)):
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
        plugins = {p.name: p for p in all_plugins()}
        if args.provider and args.provider not in plugins:
            raise ValueError(f"unknown provider {args.provider!r}; expected one of {', '.join(plugins)}")
        active = _active_jobs(store)
        targets = store.integrations.list(store=args.store, provider=args.provider)
        if not targets and not args.store:
            # A fresh set-up: the environment-configured integrations of the default store.
            targets = [store.integrations.default_for(name) for name in ([args.provider] if args.provider else plugins)]
        for integration in targets:
            if args.integration and integration.key != args.integration:
                continue
            for entity in plugins[integration.provider].entities:
                state = store.sync_state(integration, entity)
                metrics = state.last_metrics or {}
                rows.append({
                    "integration": integration.label, "store": integration.store_key, "entity": entity, "active": "yes" if integration.active else "no",
                    "last run": _ago(state.last_run_at), "status": active.get((integration.id, entity)) or state.last_status or "-",
                    "synced through": state.synced_through.isoformat(timespec="seconds") if state.synced_through else "-",
                    "fetched": metrics.get("fetched", "-"), "failed": metrics.get("failed", "-"),
                    "open rejects": len(store.open_rejects(integration, entity)), "local linked": store.linked_count(integration, entity),
                })
        if args.json:
            print(json.dumps(rows, default=str, indent=2))
        else:
            _print_table(rows, ["integration", "store", "entity", "active", "last run", "status", "synced through", "fetched", "failed", "open rejects", "local linked"])
        return 0
    finally:
        store.dispose()


def _active_jobs(store) -> dict[tuple[int, str], str]:
    """'running 45% (job 12)' per integration and entity a queued or running job is working on."""
    from crm_pipelines.jobs.store import JobStore

    found: dict[tuple[int, str], str] = {}
    for state in ("queued", "running"):
        for job in JobStore(store.engine).list(state=state, limit=500):
            for entity in [job.entity] if job.entity else ["contacts", "companies", "deals"]:
                done = (job.entities.get(entity) or {}) if job.entities else {}
                share = 100.0 if done.get("done") else (100 * done["processed"] / done["total"] if done.get("total") else None)
                text = f"{state}{f' {share:.0f}%' if share is not None and state == 'running' else ''} (job {job.id})"
                found.setdefault((job.integration_id, entity), text)
    return found


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


def _target_flags(integration) -> str:
    return "" if integration.from_env else f" --integration {integration.key}"


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", help="SQLAlchemy URL of the local database (default: $CRM_DATABASE_URL or ./crm_pipelines.db)")


_common = common_arguments


def _provider_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("provider", help="hubspot, salesforce, pipedrive, shopify, bling or gestaoclick")
    parser.add_argument("entity", nargs="?", choices=ENTITIES, help="one entity (default: all of the provider's)")
    add_target_arguments(parser)
    parser.add_argument("--priority", choices=("high", "normal", "low"), default="normal", help="place in the queue for the account's API budget")
    parser.add_argument("--no-shared-budget", action="store_true", help="pace this process alone instead of sharing the budget kept in the database")
    _common(parser)


def add_parsers(sub) -> None:
    sync = sub.add_parser("sync", help="import changes from a provider into the local database")
    _provider_target(sync)
    sync.add_argument("--full", action="store_true", help="read every record, not just what changed since the last sync")
    sync.add_argument("--strategy", default="auto", help="auto | list | search | bulk (providers with several read paths; bulk: Salesforce and Shopify bulk APIs)")
    sync.add_argument("--async", dest="async_", action="store_true", help="launch through Dagster and return at once")
    sync.set_defaults(func=cmd_sync)

    export = sub.add_parser("export", help="send local changes to a provider")
    _provider_target(export)
    export.add_argument("--batch-size", type=int, default=100, help="records per write request (capped by the provider's batch limit)")
    export.add_argument("--only-new", action="store_true", help="create records not yet at the provider; leave linked ones alone")
    export.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    export.add_argument("--async", dest="async_", action="store_true", help="launch through Dagster and return at once")
    export.set_defaults(func=cmd_export)

    status = sub.add_parser("status", help="last sync of every provider and entity")
    status.add_argument("provider", nargs="?")
    add_target_arguments(status)
    status.add_argument("--json", action="store_true")
    _common(status)
    status.set_defaults(func=cmd_status)

    rejects = sub.add_parser("rejects", help="records a provider or the local database refused, with the reason; retry them")
    rejects.add_argument("action", choices=("list", "retry"))
    rejects.add_argument("provider", nargs="?")
    rejects.add_argument("entity", nargs="?", choices=ENTITIES)
    add_target_arguments(rejects)
    rejects.add_argument("--limit", type=int, default=50)
    rejects.add_argument("--no-shared-budget", action="store_true")
    _common(rejects)
    rejects.set_defaults(func=cmd_rejects)

    conflicts = sub.add_parser("conflicts", help="records changed locally and at a provider: list, and resolve by hand")
    conflicts.add_argument("action", choices=("list", "resolve"))
    conflicts.add_argument("id", nargs="?", type=int, help="conflict id (resolve)")
    conflicts.add_argument("--provider")
    add_target_arguments(conflicts)
    conflicts.add_argument("--all", action="store_true", help="include resolved conflicts (every decision is kept)")
    conflicts.add_argument("--take", choices=("local", "provider", "merge"), help="which side wins (resolve)")
    conflicts.add_argument("--field", action="append", metavar="NAME=local|provider", help="merge field by field (repeatable)")
    conflicts.add_argument("--limit", type=int, default=50)
    _common(conflicts)
    conflicts.set_defaults(func=cmd_conflicts)

    dedupe = sub.add_parser("dedupe", help="find local duplicates (same e-mail, CPF/CNPJ or domain) and merge them")
    dedupe.add_argument("entity", nargs="?", choices=("contacts", "companies"))
    dedupe.add_argument("--store", "--loja", dest="store", help="only this store's records (duplicates are never looked for across stores)")
    dedupe.add_argument("--policy", choices=("keep_latest", "keep_provider", "manual"), default="manual")
    dedupe.add_argument("--dry-run", action="store_true", help="list what would be merged; change nothing")
    dedupe.add_argument("--merge", nargs="+", type=int, metavar="ID", help="merge these ids into the first one (after a manual review)")
    _common(dedupe)
    dedupe.set_defaults(func=cmd_dedupe)

    budgets = sub.add_parser("budgets", help="the shared API budgets as they stand now")
    _common(budgets)
    budgets.set_defaults(func=cmd_budgets)
