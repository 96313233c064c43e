"""Data hygiene applied to records in both directions: phones in E.164, names tidied.

Imports tidy every provider record before it reaches the local database, exports tidy every local
record before it is compared and sent, with the store's phone region for numbers written without a
country code. A value that cannot be normalized is never changed silently: on import the record is
rejected (its reason in the reject ledger names the value as received, like an invalid e-mail),
on export it is not sent and its reason names the value as stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm_pipelines.core.model import Page, RecordError, RemoteRecord
from crm_pipelines.core.normalize import clean_name, normalize_phone

#: Phone fields per entity, written in E.164.
PHONE_FIELDS: dict[str, tuple[str, ...]] = {"contacts": ("phone",), "companies": ("phone",), "deals": ()}
#: Name fields per entity: control characters removed, whitespace runs made one space.
NAME_FIELDS: dict[str, tuple[str, ...]] = {
    "contacts": ("first_name", "last_name", "company_name"),
    "companies": ("name",),
    "deals": ("name",),
}


@dataclass(frozen=True)
class Tidied:
    """A record's fields after hygiene, and why a value could not be normalized (kept as it was)."""

    fields: dict[str, Any]
    problems: tuple[str, ...] = ()

    @property
    def problem(self) -> str | None:
        return "; ".join(self.problems) or None


def tidy(entity: str, fields: dict[str, Any], region: str) -> Tidied:
    """``fields`` with phones in E.164 and names tidied; a phone that cannot be read stays as it was."""
    out = dict(fields)
    problems: list[str] = []
    for name in NAME_FIELDS[entity]:
        if out.get(name) is not None:
            out[name] = clean_name(out[name])
    for name in PHONE_FIELDS[entity]:
        if name not in out:
            continue
        try:
            out[name] = normalize_phone(out.get(name), region)
        except ValueError as exc:
            out[name] = fields.get(name)
            problems.append(f"{name}: {exc}")
    return Tidied(out, tuple(problems))


def tidy_page(entity: str, page: Page, region: str) -> Page:
    """The page's records tidied; those holding a value that cannot be normalized become rejects."""
    records: list[RemoteRecord] = []
    errors = list(page.errors)
    for record in page.records:
        if record.archived:
            records.append(record)
            continue
        tidied = tidy(entity, record.fields, region)
        if tidied.problems:
            errors.append(RecordError(record.external_id, "INVALID_FIELD", tidied.problem))
        else:
            records.append(RemoteRecord(record.external_id, record.updated_at, tidied.fields, record.archived, record.created_at))
    return Page(records, errors, page.resume)


__all__ = ["NAME_FIELDS", "PHONE_FIELDS", "Tidied", "tidy", "tidy_page"]
