"""``crm-pipelines mapping``: show, validate and try an integration's field mapping; list a provider's custom fields."""

from __future__ import annotations

import argparse
from typing import Any

from crm_pipelines.cli.integrations import add_target_arguments
from crm_pipelines.cli.tables import print_table
from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.model import ENTITIES

SHOW_COLUMNS = ["remote", "local", "direction", "type", "transforms", "line"]
TEST_COLUMNS = ["remote", "local", "direction", "imported", "exported"]


def _store(args: argparse.Namespace):
    from crm_pipelines.storage.store import LocalStore

    return LocalStore.open(args.database)


def _integration(store, args: argparse.Namespace):
    return store.integrations.resolve_target(args.provider, store=args.store, key=args.integration)


def _loaded(args: argparse.Namespace):
    """The mapping a command looks at (``--file`` over the defaults, else the integration's) and the integration, if opened."""
    from crm_pipelines.mapping import compiled
    from crm_pipelines.providers.registry import plugin

    plugin(args.provider)
    if getattr(args, "file", None):
        return compiled(args.provider, args.file), None, None
    store = _store(args)
    integration = _integration(store, args)
    mapping = store.mapping_for(integration)
    if mapping is None:
        raise ConfigurationError(f"{args.provider} maps its fields in code; it has no mapping file yet")
    return mapping, store, integration


def _value(value: Any) -> str:
    return "" if value is None else (value.isoformat() if hasattr(value, "isoformat") else str(value))


def cmd_show(args: argparse.Namespace) -> int:
    from crm_pipelines.mapping.compiled import field_type

    mapping, store, _ = _loaded(args)
    print(f"{args.provider} {args.entity}: {' + '.join(mapping.spec.sources)}")
    rows = []
    for mapped in mapping.fields(args.entity):
        spec = mapped.spec
        transforms = spec.describe_transforms()
        if spec.has_constant:
            transforms = f"constant({spec.constant})"
        rows.append({"remote": spec.remote, "local": spec.local or "", "direction": spec.direction, "type": field_type(args.entity, spec),
                     "transforms": transforms, "line": spec.line})
    print_table(rows, SHOW_COLUMNS)
    if store is not None:
        store.dispose()
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from crm_pipelines.mapping import load

    if args.file:
        spec = load(args.provider, args.file)
    else:
        store = _store(args)
        integration = _integration(store, args)
        spec = load(integration.provider, integration.settings.mapping_file)
        store.dispose()
    counts = ", ".join(f"{entity} {len(fields)}" for entity, fields in spec.entities.items())
    print(f"valid: {' + '.join(spec.sources)} ({counts} fields)")
    return 0


def _first_record(reader, entity: str, record_id: str | None):
    pages = reader.by_ids(entity, [record_id]) if record_id else reader.changes(entity, None, None)
    for page in pages:
        if page.errors:
            return page, page.errors[0]
        if page.records:
            return page, page.records[0]
    raise ConfigurationError(f"no {entity} record {record_id or ''} found at the provider".replace("  ", " "))


def cmd_test(args: argparse.Namespace) -> int:
    from crm_pipelines.core.model import Page, RecordError

    mapping, store, integration = _loaded(args)
    resource = store.integrations.resource(integration)
    with resource.open_reader(logger=None, mapping=mapping) as (reader, _stats):
        _page, found = _first_record(reader, args.entity, args.record)
        effective = getattr(getattr(reader, "mapping", None), "compiled", None) or mapping
    if isinstance(found, RecordError):
        print(f"{args.provider} {args.entity} {found.external_id}: cannot be imported: {found.message}")
        store.dispose()
        return 1
    record = store.tidy_page(integration, args.entity, Page([found])).records
    fields = record[0].fields if record else found.fields
    written = effective.write(args.entity, fields)
    print(f"{args.provider} {args.entity} {found.external_id}: provider -> local row -> provider body")
    rows = [{"remote": m.remote, "local": m.local or "", "direction": m.spec.direction,
             "imported": _value(fields.get(m.local)) if m.spec.imports else "", "exported": _value(written.get(m.remote)) if m.spec.exports else ""}
            for m in effective.fields(args.entity)]
    print_table(rows, TEST_COLUMNS)
    store.dispose()
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    from crm_pipelines.mapping.discovery import discover

    store = _store(args)
    integration = _integration(store, args)
    client = store.integrations.resource(integration).client()
    try:
        found = discover(integration.provider, client, args.entity)
    except NotImplementedError as exc:
        raise ConfigurationError(str(exc)) from None
    finally:
        client.close()
        store.dispose()
    print(f"{integration.label} {args.entity}: {len(found)} custom fields")
    print_table([f.row() for f in found], ["remote", "label", "type", "options"])
    return 0


def add_parsers(sub, common) -> None:
    mapping = sub.add_parser("mapping", help="an integration's field mapping: show, validate, test it; list the provider's custom fields")
    actions = mapping.add_subparsers(dest="action", required=True)
    for name, func, text in (
        ("show", cmd_show, "print the mapping of one entity as a table"),
        ("validate", cmd_validate, "check a mapping file (--file) or the integration's (its mapping_file setting)"),
        ("test", cmd_test, "read one record from the provider and show how it maps both ways"),
        ("fields", cmd_fields, "list the provider's custom fields of an entity with their types"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("provider", help="hubspot, salesforce, pipedrive, shopify, bling or gestaoclick")
        action.add_argument("entity", choices=ENTITIES, nargs="?" if name == "validate" else None)
        add_target_arguments(action)
        if name in ("show", "validate"):
            action.add_argument("--file", help="a mapping file (read over the provider's built-in mapping)")
        if name == "test":
            action.add_argument("--record", help="the provider's id of the record (default: the first one listed)")
        common(action)
        action.set_defaults(func=func)


__all__ = ["add_parsers"]
