"""What the mapping round trips share: the test mappings of each provider, local records, and the comparison."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import insert, select

from crm_pipelines.storage.schema import contacts
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity
from crm_pipelines.sync.importer import plan_incremental, run_import

@dataclass(frozen=True)
class TestFields:
    """The provider fields one provider's test mapping names."""

    color: str
    tier: str
    defaulted: tuple[str, str]  # provider field, local column
    constant: str
    lifecycle: str | None  # None: the provider holds no lifecycle stage; the value map goes on the tier
    stages: tuple[str, str, str]  # the provider's values of prospect, lead and client (or of bronze, silver, gold)


FIELDS_OF: dict[str, TestFields] = {
    "hubspot": TestFields("favorite_color", "loyalty_tier", ("jobtitle", "job_title"), "lead_channel", "lifecyclestage", ("subscriber", "lead", "customer")),
    "salesforce": TestFields("Favorite_Color__c", "Loyalty_Tier__c", ("LastName", "last_name"), "Lead_Channel__c", "Lifecycle_Stage__c",
                             ("Subscriber", "Lead", "Customer")),
    "bling": TestFields("camposCustomizados.Cor favorita", "camposCustomizados.Nível de fidelidade", ("nome:rest", "last_name"),
                        "camposCustomizados.Canal de origem", None, ("Bronze", "Prata", "Ouro")),
    "gestaoclick": TestFields("tag.favorite_color", "tag.loyalty_tier", ("tag.job_title", "job_title"), "tag.lead_channel", "tag.lifecycle_stage",
                              ("subscriber", "lead", "customer")),
    "shopify": TestFields("metafields.custom.favorite_color", "metafields.custom.loyalty_tier", ("lastName", "last_name"), "metafields.custom.lead_channel",
                          None, ("Bronze", "Silver", "Gold")),
    "pipedrive": TestFields("custom_fields.Favorite color", "custom_fields.Loyalty tier", ("custom_fields.Job title", "job_title"),
                            "custom_fields.Lead channel", "custom_fields.Lifecycle stage", ("subscriber", "lead", "customer")),
}


def mapping_text(provider: str) -> str:
    """The provider's test mapping: two custom fields, a default, a constant and a value map (contacts)."""
    f = FIELDS_OF[provider]
    values = ", ".join(f"{remote}: {local}" for remote, local in zip(f.stages, STAGES if f.lifecycle else TIERS))
    value_map = f"transforms: [{{value_map: {{{values}}}}}]"
    lifecycle = f"\n    - {{remote: {f.lifecycle}, local: lifecycle_stage, {value_map}}}" if f.lifecycle else ""
    return f"""version: 1
provider: {provider}
entities:
  contacts:
    - {{remote: {f.color}, local: custom.favorite_color, transforms: [trim, lower]}}
    - {{remote: {f.tier}, local: custom.loyalty_tier{"" if f.lifecycle else ", " + value_map}}}
    - {{remote: {f.defaulted[0]}, local: {f.defaulted[1]}, transforms: [{{default: Unknown}}]}}
    - {{remote: {f.constant}, constant: crm_pipelines}}{lifecycle}
"""


COLORS = ("blue", "green", "red", "amber")
TIERS = ("bronze", "silver", "gold")
STAGES = ("prospect", "lead", "client")


@dataclass(frozen=True)
class LocalContact:
    id: int
    values: dict[str, Any]


def add_contacts(store, count: int, defaulted: str) -> None:
    """``count`` contacts with custom values; every seventh lacks the field the mapping defaults."""
    now = datetime.now(timezone.utc)
    rows = []
    for i in range(count):
        rows.append({
            "store_id": 1, "email": f"person{i}@example.com", "first_name": f"Ana{i}", "last_name": f"Souza {i}",
            "phone": f"+551198765{i:04d}", "company_name": None, "job_title": f"Analyst {i % 5}", "lifecycle_stage": STAGES[i % 3],
            "custom": {"favorite_color": COLORS[i % 4], "loyalty_tier": TIERS[i % 3], "unrelated": "kept"},
            "created_at": now, "updated_at": now,
        })
        if i % 7 == 0:
            rows[-1][defaulted] = None
    with store.engine.begin() as conn:
        conn.execute(insert(contacts), rows)


def local_contacts(store, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The store's contacts by e-mail: their ``names`` values (``custom.KEY`` read from the custom column)."""
    plain = [n for n in names if not n.startswith("custom.")]
    with store.engine.connect() as conn:
        rows = conn.execute(select(contacts.c.email, contacts.c.custom, *[contacts.c[n] for n in plain])).all()
    out = {}
    for row in rows:
        custom = row.custom or {}
        out[row.email] = {n: (custom.get(n[7:]) if n.startswith("custom.") else getattr(row, n)) for n in names}
    return out


def differences(expected: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]]) -> list[str]:
    """Every field that differs, as ``email field: expected != found`` (and records missing either side)."""
    out = [f"{email}: missing" for email in expected.keys() - found.keys()]
    out += [f"{email}: unexpected" for email in found.keys() - expected.keys()]
    for email in expected.keys() & found.keys():
        out += [f"{email} {name}: {value!r} != {found[email].get(name)!r}" for name, value in expected[email].items() if found[email].get(name) != value]
    return out


def simulator(provider: str):
    if provider == "hubspot":
        from crm_pipelines.providers.hubspot.simulator import HubSpotSimConfig, HubSpotSimulator

        return HubSpotSimulator(HubSpotSimConfig(seed=16, contacts=0, companies=0, deals=0, burst_limit=10_000)), {"HUBSPOT_BURST_LIMIT": "10000"}
    if provider == "bling":
        from datetime import datetime, timedelta, timezone

        from crm_pipelines.providers.bling.simulator import BlingSimConfig, BlingSimulator

        now = datetime.now(timezone.utc)
        return BlingSimulator(BlingSimConfig(seed=16, contacts=0, companies=0, deals=0, per_second=100_000, daily_limit=None, rotate_refresh_token=False,
                                             reference_time=now - timedelta(hours=1), clock_start=now)), {}
    if provider == "gestaoclick":
        from crm_pipelines.providers.gestaoclick.simulator import GestaoClickSimConfig, GestaoClickSimulator

        return GestaoClickSimulator(GestaoClickSimConfig(seed=16, contacts=0, companies=0, deals=0, per_second=100_000, daily_limit=None,
                                                         limite_honoured=True)), {}
    if provider == "shopify":
        from crm_pipelines.providers.shopify.simulator import ShopifySimConfig, ShopifySimulator

        return ShopifySimulator(ShopifySimConfig(seed=16, customers=0, orders=0, companies=0, plan="plus")), {}
    if provider == "salesforce":
        from crm_pipelines.providers.salesforce.simulator import SalesforceSimConfig, SalesforceSimulator

        return SalesforceSimulator(SalesforceSimConfig(seed=16, contacts=0, companies=0, deals=0)), {}
    from crm_pipelines.providers.pipedrive.simulator import PipedriveSimConfig, PipedriveSimulator

    return PipedriveSimulator(PipedriveSimConfig(seed=16, persons=0, organizations=0, deals=0, burst_limit=100_000, search_burst_limit=100_000)), \
        {"PIPEDRIVE_BURST_LIMIT": "100000"}


#: Resource settings a test may raise past the published limits (the simulator's are raised too).
RESOURCE_LIMITS = {"bling": {"per_second": 100_000}, "gestaoclick": {"per_second": 100_000, "page_size": 100}}


def export_contacts(store: LocalStore, provider: str):
    integration = store.integrations.default_for(provider)
    resource = store.integrations.resource(integration).model_copy(update=RESOURCE_LIMITS.get(provider, {}))
    with resource.open_writer(mapping=store.mapping_for(integration)) as (writer, stats):
        return export_entity(writer, store, integration, "contacts", stats=stats)


def import_contacts(store: LocalStore, provider: str):
    integration = store.integrations.default_for(provider)
    resource = store.integrations.resource(integration).model_copy(update=RESOURCE_LIMITS.get(provider, {}))
    window = plan_incremental(store.sync_state(integration, "contacts"), full=True)
    with resource.open_reader(mapping=store.mapping_for(integration)) as (reader, stats):
        return run_import(reader, store, integration, "contacts", window, stats=stats, sweep_archived=True)


def store_with_mapping(url: str, provider: str, path: str) -> LocalStore:
    store = LocalStore.open(url)
    integration = store.integrations.default_for(provider)
    store.integrations.update(integration, settings={"mapping_file": path})
    return store


@dataclass
class RoundTrip:
    """One round trip: local -> export -> provider -> import into another database."""

    source: LocalStore
    target: LocalStore
    sent: Any
    got: Any
    export_s: float
    import_s: float
    differences: list[str]

    def dispose(self) -> None:
        self.source.dispose()
        self.target.dispose()


def round_trip(provider: str, count: int, folder: Path, target_url: str) -> RoundTrip:
    """Send ``count`` local contacts to the provider (its simulator's variables set) with the test
    mapping, import them into ``target_url``, and compare (the default filling the blanks it should)."""
    from crm_pipelines.mapping import compiled

    path = folder / f"{provider}.yaml"
    path.write_text(mapping_text(provider))
    defaulted = FIELDS_OF[provider].defaulted[1]
    source = store_with_mapping(f"sqlite:///{folder / 'source.db'}", provider, str(path))
    add_contacts(source, count, defaulted)
    started = time.monotonic()
    sent = export_contacts(source, provider)
    export_s = time.monotonic() - started
    target = store_with_mapping(target_url, provider, str(path))
    started = time.monotonic()
    got = import_contacts(target, provider)
    import_s = time.monotonic() - started
    names = compiled(provider, path).local_names("contacts")
    expected = local_contacts(source, names)
    for values in expected.values():
        values[defaulted] = "Unknown" if values[defaulted] is None else values[defaulted]
    return RoundTrip(source, target, sent, got, export_s, import_s, differences(expected, local_contacts(target, names)))
