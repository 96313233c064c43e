"""What the mapping round trips share: the test mappings of each provider, local records, and the comparison."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import insert, select

from crm_pipelines.storage.schema import contacts

@dataclass(frozen=True)
class TestFields:
    """The provider fields one provider's test mapping names."""

    color: str
    tier: str
    defaulted: tuple[str, str]  # provider field, local column
    constant: str
    lifecycle: str
    stages: tuple[str, str, str]  # the provider's values of prospect, lead and client


FIELDS_OF: dict[str, TestFields] = {
    "hubspot": TestFields("favorite_color", "loyalty_tier", ("jobtitle", "job_title"), "lead_channel", "lifecyclestage", ("subscriber", "lead", "customer")),
    "salesforce": TestFields("Favorite_Color__c", "Loyalty_Tier__c", ("LastName", "last_name"), "Lead_Channel__c", "Lifecycle_Stage__c",
                             ("Subscriber", "Lead", "Customer")),
    "pipedrive": TestFields("custom_fields.Favorite color", "custom_fields.Loyalty tier", ("custom_fields.Job title", "job_title"),
                            "custom_fields.Lead channel", "custom_fields.Lifecycle stage", ("subscriber", "lead", "customer")),
}


def mapping_text(provider: str) -> str:
    """The provider's test mapping: two custom fields, a default, a constant and a value map (contacts)."""
    f = FIELDS_OF[provider]
    stages = ", ".join(f"{remote}: {local}" for remote, local in zip(f.stages, STAGES))
    return f"""version: 1
provider: {provider}
entities:
  contacts:
    - {{remote: {f.color}, local: custom.favorite_color, transforms: [trim, lower]}}
    - {{remote: {f.tier}, local: custom.loyalty_tier}}
    - {{remote: {f.defaulted[0]}, local: {f.defaulted[1]}, transforms: [{{default: Unknown}}]}}
    - {{remote: {f.constant}, constant: crm_pipelines}}
    - {{remote: {f.lifecycle}, local: lifecycle_stage, transforms: [{{value_map: {{{stages}}}}}]}}
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
