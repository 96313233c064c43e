"""Salesforce fields <-> local columns: the value formats of Salesforce, and records read and
written through the loaded field mapping (built-in: ``crm_pipelines/mapping/defaults/salesforce.yaml``).

The org's own names of the CPF/CNPJ field (``CPF_CNPJ__c``) and currency field
(``CurrencyIsoCode``, absent in single-currency orgs) are connection settings; the mapping's
fields under those names follow them. Amounts are JSON numbers, dates ``YYYY-MM-DD``.

Every record also carries ``Id``, ``CreatedDate`` and ``SystemModstamp`` (the modification time the
sync uses: it also moves on system changes, and it is indexed).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.mapping.compiled import CompiledMapping, MappedField, default
from crm_pipelines.mapping.spec import MappingSpec
from crm_pipelines.mapping.types import Codec, decimal_in

PROVIDER = "salesforce"
DOCUMENT_FIELD = "CPF_CNPJ__c"
EXTERNAL_ID_FIELD = "Crm_Record_Id__c"
CURRENCY_FIELD = "CurrencyIsoCode"
MODIFIED_FIELD = "SystemModstamp"
SYSTEM_FIELDS = ("Id", "CreatedDate", MODIFIED_FIELD)


def parse_datetime(value: Any) -> datetime | None:
    """Salesforce datetimes: ``2025-02-01T09:30:11.000+0000`` (also ``Z`` / ``+00:00``)."""
    if value in (None, ""):
        return None
    text = str(value).strip().replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def soql_datetime(value: datetime, *, round_up: bool = False) -> str:
    """A SOQL dateTime literal (``2025-02-01T09:30:11Z``), whole seconds as documented.

    Lower bounds are rounded down and upper bounds up, so a window never loses a record to the
    missing fraction (reading one more second costs nothing: records are de-duplicated).
    """
    moment = value.astimezone(timezone.utc)
    if round_up and moment.microsecond:
        from datetime import timedelta

        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amount_out(value: Any) -> float | None:
    # Salesforce takes currency as a JSON number; two decimals survive a double exactly enough.
    return None if value is None else float(value)


#: Salesforce's formats of the value types whose wire form is its own.
CODECS: dict[str, Codec] = {
    "decimal": Codec(decimal_in, _amount_out),
    "datetime": Codec(lambda value: parse_datetime(value), lambda v: None if v is None else v.isoformat()),
}


@functools.lru_cache(maxsize=64)
def _org_mapping(document_field: str, currency_field: str | None, base: CompiledMapping) -> CompiledMapping:
    """``base`` with the org's names of the CPF/CNPJ and currency fields."""
    renamed = {DOCUMENT_FIELD: document_field, CURRENCY_FIELD: currency_field}
    entities = {}
    for entity, specs in base.spec.entities.items():
        kept = []
        for spec in specs:
            if spec.remote in renamed:
                if renamed[spec.remote] is None:
                    continue
                spec = spec.model_copy(update={"remote": renamed[spec.remote]})
            kept.append(spec)
        entities[entity] = tuple(kept)
    return CompiledMapping(MappingSpec(base.provider, entities, base.spec.sources), CODECS, region=base.region)


@dataclass(frozen=True)
class Mapping:
    """The field mapping of one org: the loaded mapping, with the org's names of its custom fields."""

    document_field: str = DOCUMENT_FIELD
    external_id_field: str = EXTERNAL_ID_FIELD
    currency_field: str | None = CURRENCY_FIELD
    loaded: CompiledMapping | None = None

    @property
    def compiled(self) -> CompiledMapping:
        return _org_mapping(self.document_field, self.currency_field, self.loaded or default(PROVIDER))

    def fields(self, entity: str) -> tuple[MappedField, ...]:
        """The fields written to ``entity``."""
        if entity not in ("contacts", "companies", "deals"):
            raise ValueError(f"unknown entity {entity!r}")
        return self.compiled.exported(entity)

    def select_fields(self, entity: str) -> list[str]:
        """Fields to SELECT for ``entity``: system fields, then the mapped ones."""
        return [*SYSTEM_FIELDS, *(name for name in self.compiled.remote_names(entity) if name not in SYSTEM_FIELDS)]

    def to_remote_record(self, entity: str, obj: dict[str, Any], *, archived: bool = False) -> RemoteRecord | RecordError:
        """Map one SOQL row to local values, or say why it cannot be."""
        external_id = str(obj.get("Id") or "")
        values, problems = self.compiled.read(entity, obj.get)
        if not external_id:
            return RecordError("", "MISSING_ID", "record without Id")
        if problems:
            return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
        try:
            updated_at = parse_datetime(obj.get(MODIFIED_FIELD))
            created_at = parse_datetime(obj.get("CreatedDate"))
        except ValueError as exc:
            return RecordError(external_id, "INVALID_TIMESTAMP", str(exc))
        return RemoteRecord(external_id, updated_at, values, archived=archived or bool(obj.get("IsDeleted")), created_at=created_at)

    def to_sobject(self, entity: str, values: dict[str, Any], *, clear_missing: bool = False) -> dict[str, Any]:
        """Local values as Salesforce fields for a write.

        Empty values are left out of creates; with ``clear_missing`` (updates) they are sent as
        ``null``, which clears the field in Salesforce. Raises ``ValueError`` naming the field when
        a value cannot be sent (an invalid CPF/CNPJ).
        """
        written = self.compiled.write(entity, values)
        return {name: value for name, value in written.items() if value is not None or clear_missing}
