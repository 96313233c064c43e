"""``crm-pipelines stores | integrations | secret-key``: tenants and their provider accounts, as data.

Adding a store or an integration is a row in the local database: the schedule syncs it from its
next tick and the Dagster UI shows it as a partition of the provider's assets (at once when
``DAGSTER_HOME`` points at the instance, else within a minute through a sensor).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from crm_pipelines.cli.tables import print_table


def _registry(args: argparse.Namespace):
    from crm_pipelines.storage.store import LocalStore

    store = LocalStore.open(args.database)
    return store, store.integrations


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{what} {item!r} must look like NAME=VALUE")
        pairs[name.strip()] = value
    return pairs


def _secret_value(name: str, value: str) -> Any:
    """``env:VARIABLE`` is a reference; ``-`` reads the value from standard input; anything else is encrypted."""
    if value.startswith("env:"):
        variable = value[4:].strip()
        if not variable:
            raise ValueError(f"--secret {name}=env: needs a variable name")
        return {"env": variable}
    if value == "-":
        return sys.stdin.readline().rstrip("\n")
    return value


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if getattr(args, "batch_size", None) is not None:
        settings["batch_size"] = args.batch_size
    if getattr(args, "cadence_minutes", None) is not None:
        settings["cadence_minutes"] = args.cadence_minutes
    if getattr(args, "bulk_threshold", None) is not None:
        settings["bulk_threshold"] = args.bulk_threshold or None
    if getattr(args, "conflict", None):
        settings["conflict_strategies"] = _pairs(args.conflict, "--conflict")
    if getattr(args, "no_export", False):
        settings["export_enabled"] = False
    if getattr(args, "quality", None):
        settings["quality"] = {name: _setting_value(value) for name, value in _pairs(args.quality, "--quality").items()}
    if getattr(args, "mapping_file", None) is not None:
        if args.mapping_file:
            from crm_pipelines.mapping import load

            load(args.provider, args.mapping_file)  # a file that cannot be used is refused here, with its line and field
        settings["mapping_file"] = args.mapping_file or None
    if getattr(args, "match_by_phone", None) is not None:
        settings["match_by_phone"] = args.match_by_phone == "on"
    return settings


def _setting_value(text: str) -> Any:
    """A number, true/false, null or a JSON object as such; anything else as text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _register_partition(integration) -> str:
    """Add the integration's partition to the Dagster instance, when one is configured (else the sensor does it)."""
    import os

    if not os.environ.get("DAGSTER_HOME"):
        return "its Dagster partition appears within a minute (sensor crm_integration_partitions)"
    try:
        import dagster as dg

        from crm_pipelines.dagster_defs.partitions import integration_partitions_name

        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(integration_partitions_name(integration.provider), [integration.key])
        return "its Dagster partition is registered"
    except Exception as exc:  # noqa: BLE001 - the sensor registers it later
        return f"its Dagster partition will be added by the sensor ({type(exc).__name__})"


def _row(integration, registry) -> dict[str, Any]:
    from crm_pipelines.integrations.secrets import describe

    secrets = set(registry_plugin(integration.provider).secret_fields())
    connection = "from environment variables" if integration.from_env else ", ".join(
        f"{name}={describe(value) if name in secrets or isinstance(value, dict) else value}" for name, value in sorted(integration.connection.items())
    )
    return {
        "provider": integration.provider, "integration": integration.key, "store": integration.store_key, "id": integration.id,
        "account": integration.account_id or "-", "active": "yes" if integration.active else "no",
        "cadence": f"{integration.settings.cadence_minutes} min", "connection": connection,
    }


def registry_plugin(provider: str):
    from crm_pipelines.providers.registry import plugin

    return plugin(provider)


def cmd_stores(args: argparse.Namespace) -> int:
    store, registry = _registry(args)
    try:
        if args.action == "add":
            if not args.key:
                raise ValueError("stores add needs a key, e.g. crm-pipelines stores add loja_centro --name 'Loja Centro'")
            created = registry.add_store(args.key, args.name, phone_region=args.phone_region)
            print(f"store {created.key} added (id {created.id}); add its accounts with: crm-pipelines integrations add PROVIDER --store {created.key} ...")
            return 0
        rows = [{"store": s.key, "id": s.id, "name": s.name, "phone region": s.phone_region,
                 "integrations": ", ".join(i.label for i in registry.list(store=s.key)) or "-"} for s in registry.stores()]
        print_table(rows, ["store", "id", "name", "phone region", "integrations"])
        return 0
    finally:
        store.dispose()


def cmd_integrations(args: argparse.Namespace) -> int:
    store, registry = _registry(args)
    try:
        if args.action == "list":
            rows = [_row(i, registry) for i in registry.list(store=args.store, provider=args.provider)]
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print_table(rows, ["provider", "integration", "store", "id", "account", "active", "cadence", "connection"])
            return 0
        if not args.provider:
            raise ValueError(f"integrations {args.action} needs a provider")
        if args.action == "add":
            connection = {name: value for name, value in _pairs(args.set, "--set").items()}
            connection |= {name: _secret_value(name, value) for name, value in _pairs(args.secret, "--secret").items()}
            added = registry.add(args.provider, store=args.store or "default", key=args.key, account_id=args.account,
                                 connection=connection, settings=_settings(args), active=not args.disabled)
            print(f"integration {added.label} added for store {added.store_key} (id {added.id}); {_register_partition(added)}.")
            print(f"Try it safely first: crm-pipelines export {added.provider} --integration {added.key} --dry-run")
            return 0
        if not args.key:
            raise ValueError(f"integrations {args.action} needs the integration key: crm-pipelines integrations {args.action} {args.provider} KEY")
        found = registry.get(args.provider, args.key)
        if args.action in ("disable", "enable"):
            changed = registry.update(found, active=args.action == "enable")
            print(f"integration {changed.label} {'enabled' if changed.active else 'disabled: the schedule skips it and its runs refuse to start'}")
            return 0
        if args.action == "set":
            connection = _pairs(args.set, "--set") | {n: _secret_value(n, v) for n, v in _pairs(args.secret, "--secret").items()}
            settings = _settings(args)
            if "quality" in settings:
                settings["quality"] = found.settings.quality.model_dump(exclude_defaults=True) | settings["quality"]
            changed = registry.update(found, settings=settings or None, connection=connection or None, account_id=args.account)
            print(f"integration {changed.label} updated")
            return 0
        if args.action == "show":
            print(json.dumps(_row(found, registry) | {"settings": found.settings.model_dump()}, indent=2))
            return 0
        if args.action == "remove":
            if not args.yes:
                raise ValueError(f"removing {found.label} deletes its links, sync state, rejects and inbox rows (the store's records stay); add --yes")
            removed = registry.remove(found)
            print(f"integration {found.label} removed ({', '.join(f'{n} {t}' for t, n in removed.items() if n) or 'nothing synced yet'})")
            return 0
        raise ValueError(f"unknown action {args.action}")
    finally:
        store.dispose()


def cmd_secret_key(args: argparse.Namespace) -> int:
    from crm_pipelines.integrations.secrets import SECRET_KEY_ENV, new_key

    print(new_key())
    print(f"# set it as {SECRET_KEY_ENV} for every process of the deployment; keep it out of the repository", file=sys.stderr)
    return 0


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """``--store``/``--loja`` and ``--integration``: which store's account a command works on."""
    parser.add_argument("--store", "--loja", dest="store", help="the store (tenant) whose integration to use (default: the default store)")
    parser.add_argument("--integration", help="the integration key, when a store has several accounts at the provider")


def add_parsers(sub, common) -> None:
    stores = sub.add_parser("stores", help="the stores (tenants, lojas) the database serves: add and list")
    stores.add_argument("action", choices=("add", "list"))
    stores.add_argument("key", nargs="?", help="store key: lower-case letters, digits, underscores")
    stores.add_argument("--name", help="display name")
    stores.add_argument("--phone-region", default="BR", help="country whose phone numbers need no +country prefix (default BR)")
    common(stores)
    stores.set_defaults(func=cmd_stores)

    integrations = sub.add_parser("integrations", help="each store's provider accounts: add, list, show, set, disable, enable, remove")
    integrations.add_argument("action", choices=("add", "list", "show", "set", "disable", "enable", "remove"))
    integrations.add_argument("provider", nargs="?")
    integrations.add_argument("key", nargs="?", help="integration key (default for add: the store's key)")
    integrations.add_argument("--store", "--loja", dest="store", help="the store the integration belongs to (add), or to list")
    integrations.add_argument("--key", dest="key_option", help=argparse.SUPPRESS)
    integrations.add_argument("--account", help="the provider's account id (HubSpot portal id, Shopify shop domain, Pipedrive company id, Bling company id): routes webhooks and shares API budgets")
    integrations.add_argument("--secret", action="append", metavar="NAME=env:VAR|NAME=-|NAME=VALUE",
                              help="a credential: a reference to an environment variable, - to read it from standard input, or a value stored encrypted (needs CRM_SECRET_KEY)")
    integrations.add_argument("--set", action="append", metavar="NAME=VALUE", help="a connection setting (base_url, burst_limit within the published limit, ...)")
    integrations.add_argument("--batch-size", type=int, help="records per bulk write (at most the provider's maximum)")
    integrations.add_argument("--cadence-minutes", type=int, help="how often the schedule syncs it (default 30)")
    integrations.add_argument("--bulk-threshold", type=int, help="records above which a full sync, backfill or export takes the provider's bulk API (default 10000; 0: never)")
    integrations.add_argument("--conflict", action="append", metavar="ENTITY=STRATEGY", help="conflict strategy per entity or * (provider_wins, local_wins, last_modified, manual)")
    integrations.add_argument("--no-export", action="store_true", help="never send local changes to this account")
    integrations.add_argument("--quality", action="append", metavar="NAME=VALUE",
                              help="a data-quality threshold: stale_after_hours, max_invalid_share, max_duplicate_share, max_orphans, max_stale, "
                                   "max_provider_differences, examples, min_completeness='{\"email\": 0.95}'")
    integrations.add_argument("--mapping-file", metavar="PATH", help="a field mapping file over the provider's built-in one (docs/mapping.md); empty: the built-in one")
    integrations.add_argument("--match-by-phone", choices=("on", "off"), help="also link provider records to local ones with the same phone (E.164)")
    integrations.add_argument("--disabled", action="store_true", help="add it switched off")
    integrations.add_argument("--yes", action="store_true", help="confirm remove")
    integrations.add_argument("--json", action="store_true")
    common(integrations)
    integrations.set_defaults(func=_with_key_option(cmd_integrations))

    secret_key = sub.add_parser("secret-key", help="print a new key for CRM_SECRET_KEY (encrypts stored credentials)")
    secret_key.set_defaults(func=cmd_secret_key)


def _with_key_option(func):
    def run(args: argparse.Namespace) -> int:
        if args.key_option:
            args.key = args.key_option
        return func(args)

    return run
