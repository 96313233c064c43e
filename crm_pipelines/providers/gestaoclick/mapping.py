"""GestaoClick fields (Portuguese) <-> local columns: the shape of clientes and vendas, read and
written through the loaded field mapping (built-in: ``crm_pipelines/mapping/defaults/gestaoclick.yaml``).

Names that are not plain fields: ``nome:first``/``nome:rest`` (a person's ``nome``, split at the
first space, written back as "first rest"); ``telefone`` (read from ``celular`` when empty);
``cpf``/``cnpj`` (each read from the other when empty; a document is written to the field its
length says); ``endereco.X`` (a key of the first of ``enderecos``); ``moeda`` (vendas are in BRL);
``observacoes`` of vendas (the notes' text without the tag, on one line); ``tag.KEY``.

Fields without a GestaoClick field (and custom ones) travel in one tag line appended to
``observacoes``: ``[crm_pipelines] {"key": "contacts:12", "job_title": "CEO"}`` (JSON, accents
kept). The tag also carries the idempotency key of records this project created. The rest of
``observacoes`` is left as the user wrote it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import clean_text, normalize_document, normalize_email
from crm_pipelines.mapping.compiled import CompiledMapping, default
from crm_pipelines.mapping.spec import builtin
from crm_pipelines.mapping.types import Codec, amount_from
from crm_pipelines.providers.gestaoclick.api import ACCOUNT_TIMEZONE, PROVIDER, RESOURCES

TAG_PREFIX = "[crm_pipelines]"
_TAG_LINE = re.compile(r"^\s*\[crm_pipelines\]\s*(\{.*\})\s*$", re.MULTILINE)
CURRENCY = "BRL"

TAG_PREFIX_REMOTE = "tag."
ADDRESS_PREFIX = "endereco."
NAME_PARTS = ("nome:first", "nome:rest")
CURRENCY_FIELD = "moeda"
DOCUMENT_FIELDS = ("cpf", "cnpj")


# ------------------------------------------------------------------------- small converters



def _amount(value: Any) -> Decimal | None:
    text = clean_text(value)
    if text is None:
        return None
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # "140,00"
    return amount_from(text, shown=text)


def parse_date(value: Any) -> datetime | None:
    """``YYYY-MM-DD`` (or a longer ISO value) -> midnight UTC of that day."""
    text = clean_text(value)
    if text is None or text.startswith("0000-00-00"):
        return None
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def format_date(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).date().isoformat()


def parse_timestamp(value: Any, tz: str = ACCOUNT_TIMEZONE) -> datetime | None:
    """``modificado_em``: ``YYYY-MM-DD HH:MM:SS`` in the account's zone, or ISO-8601 with an offset."""
    text = clean_text(value)
    if text is None or text.startswith("0000-00-00"):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed.astimezone(timezone.utc)


def first_of(wrapped: Any, wrapper: str) -> dict[str, Any]:
    """The first element of a wrapper-object list (``[{"endereco": {...}}]``), plain lists tolerated."""
    if isinstance(wrapped, Mapping):  # a single object instead of a list
        wrapped = [wrapped]
    for item in wrapped or []:
        if isinstance(item, Mapping):
            inner = item.get(wrapper, item)
            if isinstance(inner, Mapping):
                return dict(inner)
    return {}


# ------------------------------------------------------------------------- the observacoes tag


def split_notes(value: Any) -> tuple[str | None, dict[str, Any]]:
    """``observacoes`` -> (the user's text without the tag, the tag's values)."""
    text = "" if value is None else str(value)
    tag: dict[str, Any] = {}
    for match in _TAG_LINE.finditer(text):
        try:
            parsed = json.loads(match.group(1))
        except ValueError:
            continue
        if isinstance(parsed, dict):
            tag = parsed
    rest = _TAG_LINE.sub("", text).strip()  # line breaks inside the user's text are kept as written
    return rest or None, tag


def join_notes(text: str | None, tag: Mapping[str, Any]) -> str:
    """The user's text plus one tag line (values that are None are left out)."""
    values = {k: v for k, v in tag.items() if v is not None}
    line = f"{TAG_PREFIX} {json.dumps(values, ensure_ascii=False, sort_keys=True)}" if values else ""
    return "\n".join(part for part in (text or "", line) if part)


def tag_key(record: Mapping[str, Any]) -> str | None:
    """The idempotency key a record carries in its tag, if any."""
    key = split_notes(record.get("observacoes"))[1].get("key")
    return key if isinstance(key, str) else None


# ------------------------------------------------------------------------- to canonical


def _nome_parts(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    nome = clean_text(record.get("nome"))
    if nome is None:
        return None, None
    first, _, rest = nome.partition(" ")
    return clean_text(first), clean_text(rest)


def _document(primary: str, other: str) -> Callable[[Mapping[str, Any]], str | None]:
    def read(record: Mapping[str, Any]) -> str | None:
        value = record.get(primary) if clean_text(record.get(primary)) else record.get(other)
        return normalize_document(value)

    return read


def _one_line(text: str | None) -> str | None:
    return clean_text(" ".join((text or "").split()))


def _phone(record: Mapping[str, Any]) -> str | None:
    return clean_text(record.get("telefone")) or clean_text(record.get("celular"))


#: GestaoClick's formats of the value types whose wire form is its own.
CODECS: dict[str, Codec] = {
    "decimal": Codec(lambda value: _amount(value), lambda v: v),
    "date": Codec(lambda value: parse_date(value), format_date),
    "document": Codec(lambda value: normalize_document(value), lambda v: v),
}

#: Local columns GestaoClick has a place for (its built-in mapping's).
HELD_FIELDS: dict[str, tuple[str, ...]] = {
    entity: tuple(f.local for f in builtin(PROVIDER).fields(entity) if f.local) for entity in ("contacts", "companies", "deals")
}


def _mapping(mapping: CompiledMapping | None) -> CompiledMapping:
    return mapping or default(PROVIDER)


def _value_reader(record: Mapping[str, Any], tag: Mapping[str, Any], entity: str) -> Callable[[str], Any]:
    """``remote name -> raw value`` of one cliente or venda."""

    def value_of(remote: str) -> Any:
        if remote in NAME_PARTS:
            return _nome_parts(record)[NAME_PARTS.index(remote)]
        if remote == "telefone":
            return _phone(record)
        if remote in DOCUMENT_FIELDS:
            other = DOCUMENT_FIELDS[1 - DOCUMENT_FIELDS.index(remote)]
            return record.get(remote) if clean_text(record.get(remote)) else record.get(other)
        if remote == "nome" and entity == "companies":
            return clean_text(record.get("nome")) or clean_text(record.get("razao_social"))
        if remote == "observacoes" and entity == "deals":
            return _one_line(split_notes(record.get("observacoes"))[0])
        if remote == CURRENCY_FIELD:
            return CURRENCY
        if remote.startswith(ADDRESS_PREFIX):
            return first_of(record.get("enderecos"), "endereco").get(remote[len(ADDRESS_PREFIX):])
        if remote.startswith(TAG_PREFIX_REMOTE):
            return tag.get(remote[len(TAG_PREFIX_REMOTE):])
        return record.get(remote)

    return value_of


def belongs_to(entity: str, record: Mapping[str, Any]) -> bool:
    """Whether a cliente is of the kind ``entity`` covers (the server may ignore the filter)."""
    tipos = RESOURCES[entity].tipos
    return not tipos or str(record.get("tipo_pessoa") or "").upper() in tipos


def to_remote_record(entity: str, record: Mapping[str, Any], mapping: CompiledMapping | None = None) -> RemoteRecord | RecordError:
    """Map one GestaoClick record to local values, or say why it cannot be."""
    external_id = str(record.get("id") or "").strip()
    if not external_id:
        return RecordError("(no id)", "MISSING_ID", f"a {entity} record came without an id: {str(dict(record))[:200]}")
    _, tag = split_notes(record.get("observacoes"))
    fields, problems = _mapping(mapping).read(entity, _value_reader(record, tag, entity))
    if problems:
        return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
    try:
        updated_at = parse_timestamp(record.get("modificado_em"))
        created_at = parse_timestamp(record.get("cadastrado_em"))
    except ValueError as exc:
        return RecordError(external_id, "INVALID_TIMESTAMP", str(exc))
    return RemoteRecord(external_id, updated_at, fields, created_at=created_at)


# ------------------------------------------------------------------------- to GestaoClick


def check_outgoing(entity: str, fields: Mapping[str, Any]) -> str | None:
    """Why a local record cannot be written to GestaoClick (checked before any call), or None."""
    problems = []
    if entity in ("contacts", "companies"):
        try:
            normalize_document(fields.get("document"))
        except ValueError as exc:
            problems.append(f"document: {exc}")
        if fields.get("email") is not None and normalize_email(fields.get("email")) is None:
            problems.append(f"email: invalid e-mail {fields.get('email')!r}")
    if entity == "contacts" and not (clean_text(fields.get("first_name")) or clean_text(fields.get("last_name"))):
        problems.append("first_name/last_name: GestaoClick requires a nome; the contact has no name")
    if entity == "companies" and not clean_text(fields.get("name")):
        problems.append("name: GestaoClick requires a nome; the company has no name")
    if entity == "deals":
        currency = clean_text(fields.get("currency"))
        if currency is not None and currency.upper() != CURRENCY:
            problems.append(f"currency: GestaoClick records sales in BRL only, not {currency!r}")
        if fields.get("amount") is None:
            problems.append("amount: a venda needs a value (valor_total)")
    return "; ".join(problems) or None


def to_payload(entity: str, fields: Mapping[str, Any], *, key: str | None, current: Mapping[str, Any] | None = None,
               mapping: CompiledMapping | None = None) -> dict[str, Any]:
    """Local values as a GestaoClick body; ``current`` (the record as read) keeps what is not mapped.

    Raises ``ValueError`` naming the field when a value cannot be sent.
    """
    problem = check_outgoing(entity, fields)
    if problem:
        raise ValueError(problem)
    current = current or {}
    written = _mapping(mapping).write(entity, fields)
    text, tag = split_notes(current.get("observacoes"))
    for remote in [r for r in written if r.startswith(TAG_PREFIX_REMOTE)]:
        tag[remote[len(TAG_PREFIX_REMOTE):]] = written.pop(remote)
    if key and not tag.get("key"):
        tag["key"] = key
    if entity == "deals":
        return _venda_payload(written, current, tag)
    payload: dict[str, Any] = {"tipo_pessoa": current.get("tipo_pessoa") or RESOURCES[entity].tipos[0], "observacoes": join_notes(text, tag)}
    if "email" in written:
        payload["email"] = normalize_email(written.pop("email")) or ""
    if "telefone" in written:
        payload["telefone"] = written.pop("telefone") or ""
    if not current:
        payload["ativo"] = "1"
    if entity == "contacts":
        payload["nome"] = " ".join(p for p in (clean_text(written.pop(part, None)) for part in NAME_PARTS) if p)
    else:
        payload["nome"] = clean_text(written.pop("nome", None))
        if not current.get("razao_social"):
            payload["razao_social"] = payload["nome"]
    for remote in DOCUMENT_FIELDS:
        if remote in written:
            document = normalize_document(written.pop(remote))
            natural = remote if document is None else "cpf" if len(document) == 11 else "cnpj"
            payload[natural] = document or ""
    address = {k[len(ADDRESS_PREFIX):]: written.pop(k) for k in [r for r in written if r.startswith(ADDRESS_PREFIX)]}
    current_address = first_of(current.get("enderecos"), "endereco")
    if any(v is not None for v in address.values()) or (address and current_address):
        current_address.update({k: v or "" for k, v in address.items()})
        payload["enderecos"] = [{"endereco": current_address}, *(current.get("enderecos") or [])[1:]]
    for remote, value in written.items():
        if remote not in (CURRENCY_FIELD,) and value is not None:
            payload[remote] = value
    return payload


def _venda_payload(written: dict[str, Any], current: Mapping[str, Any], tag: Mapping[str, Any]) -> dict[str, Any]:
    amount: Decimal | None = written.pop("valor_total", None)
    if amount is None:
        raise ValueError("amount: a venda needs a value (valor_total)")
    name = written.pop("observacoes", None)
    text = split_notes(current.get("observacoes"))[0]
    if _one_line(text) != _one_line(name):
        text = clean_text(name)  # the name changed: it replaces the notes' text
    payload: dict[str, Any] = {"observacoes": join_notes(text, tag)}
    day = written.pop("data", None) or current.get("data") or datetime.now(ZoneInfo(ACCOUNT_TIMEZONE)).date().isoformat()
    payload["data"] = day
    produtos = current.get("produtos") or []
    try:
        current_total = _amount(current.get("valor_total"))
    except ValueError:
        current_total = None
    if not produtos or current_total != amount:
        # One line carrying the deal's value; a sale whose products already add up is left alone.
        payload["produtos"] = [{"produto": {"nome_produto": clean_text(name) or "Venda", "quantidade": "1",
                                            "valor_venda": format(amount, "f"), "valor_desconto": "0.00"}}]
    if current.get("cliente_id"):
        payload["cliente_id"] = str(current["cliente_id"])
    return payload
