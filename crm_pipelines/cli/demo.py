"""``crm-pipelines demo | sandbox | dev``: the demo, the simulators and the development server.

Each provider's simulator starts with its real rate limits on a free local port; the
environment variables its plugin names point the Dagster resources at it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

#: Instance settings used when the command runs outside the project folder (see dagster.yaml).
DEFAULT_INSTANCE_YAML = "concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n"

#: Records per entity (contacts, companies, deals) each simulator starts with in the demo: sized
#: so every import takes seconds at the provider's real limits (Bling's lists need one read per
#: contact at 3 per second).
DEMO_SIZES: dict[str, tuple[int, int, int]] = {
    "hubspot": (10_000, 1_000, 2_000),
    "salesforce": (5_000, 1_000, 1_000),
    "pipedrive": (2_000, 300, 500),
    "shopify": (1_000, 100, 300),
    "bling": (60, 20, 30),
    "gestaoclick": (300, 60, 100),
}


SIZE_OPTIONS = (
    ("contacts", "persons", "customers", "clientes", "contatos"),
    ("companies", "organizations", "accounts"),
    ("deals", "orders", "opportunities", "vendas"),
)


def _selected(names: str) -> list:
    from crm_pipelines.providers.registry import PROVIDERS, plugin

    wanted = list(PROVIDERS) if names in ("all", "") else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in PROVIDERS]
    if unknown:
        raise ValueError(f"unknown provider(s) {', '.join(unknown)}; expected some of {', '.join(PROVIDERS)} or all")
    return [plugin(n) for n in wanted]


def start_simulator(name: str, *, sizes: tuple[int, int, int] | None = None, seed: int = 1, port: int = 0, extra: list[str] | None = None):
    """Start the simulator registered for ``name`` with its command-line defaults (and these sizes)."""
    from crm_pipelines.simulator.__main__ import add_common_arguments, fault_config_from_args, load_simulator_class

    simulator_class = load_simulator_class(name)
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    simulator_class.add_cli_arguments(parser)
    argv = ["--seed", str(seed), "--port", str(port), *(extra or [])]
    if sizes:
        # Each simulator names its sizes in its provider's words (--persons, --customers, ...).
        for size, words in zip(sizes, SIZE_OPTIONS):
            option = next((f"--{w}" for w in words if f"--{w}" in parser._option_string_actions), None)
            if option:
                argv += [option, str(size)]
    args = parser.parse_args(argv)
    args.faults = fault_config_from_args(args)
    simulator = simulator_class.from_cli_args(args)
    simulator.start()
    return simulator


def _dagster_home() -> str:
    """$DAGSTER_HOME, or ./.dagster_home seeded with the project's dagster.yaml (history survives restarts)."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    project_config = Path.cwd() / "dagster.yaml"
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(project_config.read_text() if project_config.exists() else DEFAULT_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return str(home)


def _print_table(rows: list[dict[str, object]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def _materializations(result) -> list[dict[str, object]]:
    rows = []
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        meta = {k: v.value for k, v in materialization.metadata.items()}
        rows.append({
            "asset": materialization.asset_key.to_user_string(), "processed": meta.get("fetched"), "created": meta.get("created"),
            "updated": meta.get("updated"), "linked": meta.get("linked"), "unchanged": meta.get("unchanged"), "errors": meta.get("failed"),
            "duration_s": meta.get("duration_s"), "api_calls": meta.get("api_calls"), "429s": meta.get("rate_limited_429"),
            "strategy": meta.get("strategy") or meta.get("skipped", ""),
        })
    return rows


def _run_and_report(instance, plugin, partition_key: str) -> bool:
    """Run the provider's import job for one partition and print its per-asset summary."""
    from crm_pipelines.dagster_defs.schedules import import_job_name
    from crm_pipelines.definitions import defs

    started = time.monotonic()
    job = defs.resolve_job_def(import_job_name(plugin.name))
    per_second = plugin.rate_limits.get("per_second")
    if per_second and per_second <= 5:
        print(f"({plugin.title} allows {per_second} requests per second: this run waits on that limit)", flush=True)
    result = job.execute_in_process(instance=instance, partition_key=partition_key, tags={"crm/trigger": "demo"}, raise_on_error=False,
                                    run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    _print_table(_materializations(result), ["asset", "processed", "created", "updated", "linked", "unchanged", "errors", "duration_s", "api_calls", "429s", "strategy"])
    print(f"run {result.run_id}: {'success' if result.success else 'FAILED'} in {time.monotonic() - started:.1f}s\n")
    return result.success


#: The second store of the demo: its own account at the first provider demonstrated.
SECOND_STORE = "loja_b"


def connection_from_env(plugin, env: dict[str, str]) -> dict[str, str]:
    """An integration's connection holding the values ``env`` gives the provider's resource fields.

    The provider's default resource is built with each variable set to a marker, so a field read
    from a variable (an ``EnvVar`` or a value read at build time) is found whichever way it is read.
    """
    from dagster import EnvVar

    markers = {name: f"@@{name}@@" for name in env}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(markers)
    try:
        template = plugin.default_resource()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    by_marker = {marker: name for name, marker in markers.items()}
    connection = {}
    for field in plugin.resource_type().model_fields:
        value = getattr(template, field, None)
        variable = value.env_var_name if isinstance(value, EnvVar) else by_marker.get(value) if isinstance(value, str) else None
        if variable in env:
            connection[field] = env[variable]
    return connection


def _add_second_store(plugin, simulator):
    """Register store ``loja_b`` with an integration on its own account (simulator) of ``plugin``."""
    from crm_pipelines.storage.store import LocalStore

    store = LocalStore.open()
    try:
        registry = store.integrations
        registry.ensure_store(SECOND_STORE, "Loja B")
        connection = connection_from_env(plugin, plugin.simulator_env(simulator))
        for field in plugin.secret_fields():
            if field in connection:
                # Secrets as references to this process's environment, as a deployment would
                # reference its secret store (no encryption key needed for the demo).
                variable = f"CRM_DEMO_{SECOND_STORE.upper()}_{plugin.name.upper()}_{field.upper()}"
                os.environ[variable] = connection[field]
                connection[field] = {"env": variable}
        existing = registry.list(store=SECOND_STORE, provider=plugin.name)
        if existing:
            return registry.update(existing[0], connection=connection)
        return registry.add(plugin.name, store=SECOND_STORE, key=SECOND_STORE, connection=connection)
    finally:
        store.dispose()


def _store_overlap() -> str:
    """How many e-mails both stores hold, and that each is a record of its own store."""
    from sqlalchemy import func, select

    from crm_pipelines.storage.schema import contacts
    from crm_pipelines.storage.store import LocalStore

    store = LocalStore.open()
    try:
        with store.engine.connect() as conn:
            per_store = dict(conn.execute(select(contacts.c.store_id, func.count()).where(contacts.c.email.is_not(None)).group_by(contacts.c.store_id)).all())
            shared = conn.execute(select(func.count()).select_from(
                select(contacts.c.email).where(contacts.c.email.is_not(None)).group_by(contacts.c.email)
                .having(func.count(func.distinct(contacts.c.store_id)) > 1).subquery())).scalar_one()
            names = {s.id: s.key for s in store.integrations.stores()}
        held = ", ".join(f"{names.get(store_id, store_id)} {n}" for store_id, n in sorted(per_store.items()))
        return f"Contacts with an e-mail per store ({held}); {shared} e-mails are in both stores, each a record of its own store"
    finally:
        store.dispose()


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the simulators, run each provider's full import as a real Dagster run, then an incremental one."""
    import dagster as dg

    from crm_pipelines.dagster_defs.partitions import integration_partitions_name
    from crm_pipelines.integrations.model import DEFAULT_INTEGRATION_KEY
    from crm_pipelines.storage.engine import database_url, safe_url
    from crm_pipelines.storage.store import LocalStore

    if args.database:
        os.environ["CRM_DATABASE_URL"] = args.database
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    # The tables below say what each run did; Dagster's own event lines (300 DEBUG lines a demo) would bury them.
    logging.getLogger("dagster").setLevel(logging.WARNING)
    dagster_home = _dagster_home()
    plugins = _selected(args.providers)
    simulators = {}
    try:
        for found in plugins:
            sizes = (args.records, args.records // 5, args.records // 4) if args.records else DEMO_SIZES.get(found.name, (500, 100, 200))
            simulators[found.name] = simulator = start_simulator(found.name, sizes=sizes, seed=args.seed)
            os.environ.update(found.simulator_env(simulator))
            print(f"{found.title} simulator at {simulator.base_url}: {sizes[0]} contacts, {sizes[1]} companies, {sizes[2]} deals, real rate limits")
        print(f"Local database {safe_url(database_url())}; Dagster home {dagster_home}\n")
        instance = dg.DagsterInstance.get()
        key = DEFAULT_INTEGRATION_KEY
        ok = True
        for found in plugins:
            instance.add_dynamic_partitions(integration_partitions_name(found.name), [key])
            print(f"== {found.title}: initial sync of integration {key} (its first run reads every record; linked: matched to a record already here)")
            ok &= _run_and_report(instance, found, key)
        second = None
        if args.second_store and plugins:
            # A second store with its own account at the first provider: the same people (the same
            # seed), so the same e-mails live in both stores as separate records.
            second = next((p for p in plugins if p.name == "hubspot"), plugins[0])
            sizes = (args.records, args.records // 5, args.records // 4) if args.records else DEMO_SIZES.get(second.name, (500, 100, 200))
            simulators[(second.name, SECOND_STORE)] = other = start_simulator(second.name, sizes=sizes, seed=args.seed)
            integration = _add_second_store(second, other)
            instance.add_dynamic_partitions(integration_partitions_name(second.name), [integration.key])
            print(f"== {second.title}: initial sync of store {SECOND_STORE}'s own account (integration {integration.key}, simulator {other.base_url})")
            ok &= _run_and_report(instance, second, integration.key)
        if args.changes:
            for found in plugins:
                simulator = simulators[found.name]
                for entity in found.entities:
                    simulator.modify(entity, n=min(args.changes, len(simulator.records(entity))))
                print(f"== {found.title}: {args.changes} records per entity changed; incremental run of integration {key}")
                print("(updated: a field kept here changed; unchanged: the provider reported a change to fields not kept here, or to the same values)")
                ok &= _run_and_report(instance, found, key)

        print("Reconciliation (simulator vs local database):")
        store = LocalStore.open()
        recon = []
        targets = [(found, DEFAULT_INTEGRATION_KEY, simulators[found.name]) for found in plugins]
        if second is not None:
            targets.insert(plugins.index(second) + 1, (second, SECOND_STORE, simulators[(second.name, SECOND_STORE)]))
        for found, key, simulator in targets:
            integration = store.integrations.get(found.name, key)
            for entity in found.entities:
                remote = set(simulator.records(entity))
                local = set(store.linked_records(integration, entity))
                recon.append({"provider": found.name, "integration": key, "entity": entity, "simulator": len(remote), "local": len(local),
                              "missing": len(remote - local), "extra": len(local - remote)})
        store.dispose()
        _print_table(recon, ["provider", "integration", "entity", "simulator", "local", "missing", "extra"])
        if second is not None:
            print(_store_overlap())
        for name, simulator in simulators.items():
            stats = simulator.stats
            label = name if isinstance(name, str) else f"{name[0]} ({name[1]})"
            print(f"{label}: {stats['total_requests']} API requests served, {stats['rate_limited_total']} of them rate limited")
        return 0 if ok and all(r["missing"] == 0 and r["extra"] == 0 for r in recon) else 1
    finally:
        for simulator in simulators.values():
            simulator.stop()


def _start_all(args: argparse.Namespace) -> tuple[dict, dict[str, str]]:
    simulators, env = {}, {}
    for offset, found in enumerate(_selected(args.providers)):
        port = args.port + offset if args.port else 0
        simulators[found.name] = simulator = start_simulator(found.name, seed=args.seed, port=port)
        env.update(found.simulator_env(simulator))
    return simulators, env


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Run the simulators in the foreground and print the environment to point Dagster at them."""
    simulators, env = _start_all(args)
    for name, simulator in simulators.items():
        print(f"{name} simulator at {simulator.base_url}")
    print("Point crm_pipelines at them with:")
    for name, value in env.items():
        print(f"  export {name}={value}")
    sys.stdout.flush()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for simulator in simulators.values():
        simulator.stop()
    return 0


#: The code location's name everywhere (workspace.yaml, pyproject's [tool.dagster] and [tool.dg]):
#: schedule and sensor state started under ``dev`` carries over to production.
CODE_LOCATION = "crm_pipelines"


def _workspace_file(home: str) -> str:
    """A workspace naming the code location as production does (``dagster dev -m`` would name it after the module)."""
    path = Path(home) / "workspace.yaml"
    path.write_text(f"load_from:\n  - python_module:\n      module_name: crm_pipelines.definitions\n      location_name: {CODE_LOCATION}\n")
    return str(path)


def cmd_dev(args: argparse.Namespace) -> int:
    """Start the simulators and ``dagster dev`` wired to them (UI on http://127.0.0.1:3000)."""
    simulators, env = _start_all(args)
    home = _dagster_home()
    settings = _write_dev_env(home, env)
    print(f"simulators: {', '.join(f'{n} {s.base_url}' for n, s in simulators.items())}; starting dagster dev ...")
    print(f"other shells (crm-pipelines sync --async ...): source {settings}")
    try:
        return _run_in_own_group([sys.executable, "-m", "dagster", "dev", "-w", _workspace_file(home), "-p", str(args.ui_port)], env=dict(os.environ, **env))
    finally:
        settings.unlink(missing_ok=True)
        for simulator in simulators.values():
            simulator.stop()


#: Seconds ``dagster dev`` gets to stop by itself after a forwarded signal before its group is stopped.
STOP_GRACE_S = 30.0


def _run_in_own_group(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` in its own process group, forward SIGTERM/SIGINT/SIGHUP to the whole group,
    and return once every process of it (``dagster dev``'s webserver, daemon, code servers) is gone."""
    from crm_pipelines.core.processes import signal_group, stop_group

    proc = subprocess.Popen(command, env=env, process_group=0)
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    asked: list[float] = []

    def forward(signum, _frame):
        asked.append(time.monotonic())
        signal_group(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in forwarded}
    try:
        while True:
            try:
                code = proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                # Asked to stop and still running after the grace period: stop the whole group.
                if asked and time.monotonic() - asked[0] > STOP_GRACE_S:
                    stop_group(proc.pid, timeout_s=5.0)
                    code = proc.wait()
                    break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_group(proc.pid, timeout_s=30.0)
        proc.wait()
    return 0 if asked or code in (-signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP) else code


def _write_dev_env(home: str, env: dict[str, str]) -> Path:
    """``$DAGSTER_HOME/dev.env``: the settings only dev's processes have (its Dagster home, the
    simulators' addresses and test credentials), for ``source`` in another shell. Your own
    variables stay in your shell."""
    from crm_pipelines.cli.async_checks import DEV_ENV_FILE

    values = {"DAGSTER_HOME": home, **env}
    path = Path(home) / DEV_ENV_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.writelines(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())
    return path


def add_parsers(sub) -> None:
    demo = sub.add_parser("demo", help="every provider's full and incremental import against its simulator, as Dagster runs, with a reconciliation")
    demo.add_argument("--providers", default="all", help="comma-separated providers, or all (default)")
    demo.add_argument("--records", type=int, default=0, help="contacts per simulator (companies and deals follow); default: sized per provider")
    demo.add_argument("--changes", type=int, default=25, help="records per entity to change before the incremental runs (0: skip them)")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--no-second-store", dest="second_store", action="store_false",
                      help=f"skip store {SECOND_STORE}, which has its own account at the first provider (HubSpot when selected)")
    demo.add_argument("--database", help="SQLAlchemy URL of the local database (default: $CRM_DATABASE_URL or ./crm_pipelines.db)")
    demo.set_defaults(func=cmd_demo)

    for name, func, text in (("sandbox", cmd_sandbox, "run the provider simulators in the foreground"), ("dev", cmd_dev, "simulators + dagster dev")):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("--providers", default="all", help="comma-separated providers, or all (default)")
        parser.add_argument("--port", type=int, default=8765 if name == "sandbox" else 0, help="first port (one per provider, consecutive); 0 picks free ports")
        parser.add_argument("--seed", type=int, default=1)
        if name == "dev":
            parser.add_argument("--ui-port", type=int, default=3000)
        parser.set_defaults(func=func)
