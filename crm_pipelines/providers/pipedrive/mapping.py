"""Pipedrive API v2 objects <-> local columns: the shape of Pipedrive's objects, read and written
through the loaded field mapping (built-in: ``crm_pipelines/mapping/defaults/pipedrive.yaml``).

The mapping names v2 fields; three kinds of names reach inside an object:

* ``emails`` and ``phones``: the primary entry of the array (else the first); written as a
  one-entry array;
* ``address.locality`` (any part of ``address``): written with ``address.value`` made of them;
* ``custom_fields.NAME``: a custom field by its name; its 40-character key differs per company and
  is read from ``/v1/personFields`` (etc.) when a reader or writer starts (:class:`FieldKeys`).

A person's ``name`` is written as first and last name (else the e-mail), an organization and a
deal need a name; ``stage_id``/``pipeline_id`` are numeric ids. Every entity also carries the
custom field "crm_record_id" (``<entity>:<local id>``), the idempotency key of records this
project created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from crm_pipelines.core.errors import ConfigurationError
from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import clean_text
from crm_pipelines.mapping.compiled import CompiledMapping, default
from crm_pipelines.mapping.spec import MappingSpec, builtin
from crm_pipelines.mapping.types import Codec, decimal_in

PROVIDER = "pipedrive"
IDEMPOTENCY_FIELD = "crm_record_id"

CUSTOM_PREFIX = "custom_fields."
ADDRESS_PREFIX = "address."


def custom_field_names(entity: str, mapping: CompiledMapping | MappingSpec) -> dict[str, str]:
    """The custom fields the mapping names for ``entity``: local column (the provider field for constants) -> name."""
    return {(f.local or f.remote): f.remote[len(CUSTOM_PREFIX):] for f in mapping.fields(entity) if f.remote.startswith(CUSTOM_PREFIX)}


#: Custom fields by entity: local column (or the idempotency key) -> field name in Pipedrive (built-in mapping).
CUSTOM_FIELD_NAMES: dict[str, dict[str, str]] = {
    entity: {**custom_field_names(entity, builtin(PROVIDER)), IDEMPOTENCY_FIELD: IDEMPOTENCY_FIELD} for entity in ("contacts", "companies", "deals")
}


def parse_timestamp(value: Any) -> datetime | None:
    """v2 timestamps (``2025-02-01T09:30:11Z``); v1 ``2025-02-01 09:30:11`` (UTC) is read too."""
    if value in (None, ""):
        return None
    text = str(value).strip().replace(" ", "T", 1)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)



def _id_text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _id_out(value: Any) -> int | None:
    text = clean_text(value)
    if text is None:
        return None
    if not text.isdigit():
        raise ValueError(f"Pipedrive takes a numeric id here, not {text!r}")
    return int(text)


#: Pipedrive's formats of the value types whose wire form is its own.
CODECS: dict[str, Codec] = {
    "decimal": Codec(decimal_in, lambda v: None if v is None else float(v)),
    "id": Codec(_id_text, _id_out),
}


def _primary(values: Any) -> Any:
    """The primary entry's value of a v2 ``emails``/``phones`` array (else the first one)."""
    if not isinstance(values, list) or not values:
        return None
    chosen = next((v for v in values if isinstance(v, dict) and v.get("primary")), values[0])
    return chosen.get("value") if isinstance(chosen, dict) else chosen


@dataclass(frozen=True)
class FieldKeys:
    """The 40-character keys of this company's custom fields, by local column (and by name)."""

    entity: str
    keys: dict[str, str]
    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(cls, entity: str, by_name: dict[str, str], mapping: CompiledMapping | None = None) -> FieldKeys:
        """Pick the mapped custom fields out of ``name -> key``; the idempotency field is required."""
        wanted = CUSTOM_FIELD_NAMES[entity] if mapping is None else {**custom_field_names(entity, mapping), IDEMPOTENCY_FIELD: CUSTOM_FIELD_NAMES[entity][IDEMPOTENCY_FIELD]}
        keys = {}
        for label, name in wanted.items():
            key = by_name.get(name.casefold())
            if key:
                keys[label] = key
        if IDEMPOTENCY_FIELD not in keys:
            from crm_pipelines.providers.pipedrive.api import ENTITY_SPECS

            raise ConfigurationError(
                f"Pipedrive has no custom field named {IDEMPOTENCY_FIELD!r} on {ENTITY_SPECS[entity].path}; create a text field "
                f"with that name (Settings > Data fields) so records created by the sync can be recognised after a crash"
            )
        return cls(entity, keys, dict(wanted))

    def key_of(self, name: str) -> str | None:
        """The key of the custom field called ``name``."""
        for label, known in self.names.items():
            if known == name:
                return self.keys.get(label)
        return None

    def custom(self, obj: dict[str, Any], label: str) -> Any:
        return self._value(obj, self.keys.get(label))

    def custom_named(self, obj: dict[str, Any], name: str) -> Any:
        return self._value(obj, self.key_of(name))

    @staticmethod
    def _value(obj: dict[str, Any], key: str | None) -> Any:
        custom = obj.get("custom_fields") or {}
        if not isinstance(custom, dict):
            raise TypeError(f"custom_fields is {type(custom).__name__}, expected an object")
        value = custom.get(key) if key else None
        if isinstance(value, dict):  # monetary/address-like custom values
            value = value.get("value")
        return value


def _value_reader(obj: dict[str, Any], keys: FieldKeys) -> Callable[[str], Any]:
    """``remote name -> raw value`` of one v2 object."""

    def value_of(remote: str) -> Any:
        if remote in ("emails", "phones"):
            return _primary(obj.get(remote))
        if remote.startswith(ADDRESS_PREFIX):
            address = obj.get("address")
            return address.get(remote[len(ADDRESS_PREFIX):]) if isinstance(address, dict) else None
        if remote.startswith(CUSTOM_PREFIX):
            return keys.custom_named(obj, remote[len(CUSTOM_PREFIX):])
        return obj.get(remote)

    return value_of


def is_deleted(entity: str, obj: dict[str, Any]) -> bool:
    return bool(obj.get("is_deleted")) or (entity == "deals" and obj.get("status") == "deleted")


def to_remote_record(entity: str, obj: dict[str, Any], keys: FieldKeys, mapping: CompiledMapping | None = None) -> RemoteRecord | RecordError:
    """Map one v2 object to local values, or say why it cannot be."""
    external_id = str(obj.get("id", ""))
    try:
        updated_at = parse_timestamp(obj.get("update_time"))
        created_at = parse_timestamp(obj.get("add_time"))
    except ValueError as exc:
        return RecordError(external_id, "INVALID_TIMESTAMP", str(exc))
    if is_deleted(entity, obj):
        return RemoteRecord(external_id, updated_at, {}, archived=True, created_at=created_at)
    fields, problems = (mapping or default(PROVIDER)).read(entity, _value_reader(obj, keys))
    if problems:
        return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
    return RemoteRecord(external_id, updated_at, fields, created_at=created_at)


def _entry(value: Any) -> list[dict[str, Any]]:
    return [{"value": value, "primary": True, "label": "work"}] if value not in (None, "") else []


def _required_name(entity: str, written: dict[str, Any]) -> dict[str, Any]:
    """The name fields Pipedrive requires, from the written values."""
    if entity == "contacts":
        first, last = clean_text(written.get("first_name")), clean_text(written.get("last_name"))
        name = " ".join(p for p in (first, last) if p) or clean_text(written.get("emails"))
        if not name:
            raise ValueError("name: a person needs a first name, a last name or an e-mail")
        return {"name": name}
    if entity == "companies":
        if not clean_text(written.get("name")):
            raise ValueError("name: an organization needs a name")
        return {}
    if not clean_text(written.get("title")):
        raise ValueError("name: a deal needs a title")
    return {}


def to_body(entity: str, fields: dict[str, Any], keys: FieldKeys, *, creating: bool, mapping: CompiledMapping | None = None) -> dict[str, Any]:
    """Local values as a v2 create/update body.

    Raises ``ValueError`` naming the field when a value cannot be sent (an invalid CPF/CNPJ, a
    missing required name). Empty values are sent as null on updates, so clearing a field locally
    clears it in Pipedrive; creates leave them out.
    """
    written = (mapping or default(PROVIDER)).write(entity, fields)
    body: dict[str, Any] = _required_name(entity, written)
    address: dict[str, Any] = {}
    for remote, value in written.items():
        if remote in ("emails", "phones"):
            body[remote] = _entry(value)
        elif remote.startswith(ADDRESS_PREFIX):
            address[remote[len(ADDRESS_PREFIX):]] = value
        elif remote.startswith(CUSTOM_PREFIX):
            name = remote[len(CUSTOM_PREFIX):]
            key = keys.key_of(name)
            if key is None:
                if value is not None:
                    raise ValueError(f"{remote}: Pipedrive has no custom field named {name!r} to hold it")
                continue
            body.setdefault("custom_fields", {})[key] = value
        else:
            body[remote] = value
    if address:
        parts = [str(v) for v in address.values() if v not in (None, "")]
        body["address"] = {"value": ", ".join(parts), **address} if parts else None
    if creating:
        body = {k: v for k, v in body.items() if v not in (None, [], {})}
        if "custom_fields" in body:
            body["custom_fields"] = {k: v for k, v in body["custom_fields"].items() if v is not None}
    return body
