"""GestaoClick fields (Portuguese) <-> canonical fields, declared once per entity.

| entity    | canonical field  | GestaoClick field                         | notes                                          |
|-----------|------------------|-------------------------------------------|------------------------------------------------|
| contacts  | email            | clientes.email                            | lower-cased; invalid -> reject                 |
| contacts  | first_name       | clientes.nome (first word)                | written back as ``nome = first + " " + last``  |
| contacts  | last_name        | clientes.nome (the rest)                  |                                                |
| contacts  | phone            | clientes.telefone (else celular)          |                                                |
| contacts  | document         | clientes.cpf (else cnpj)                  | CPF digits, check digits verified -> reject    |
| contacts  | company_name     | observacoes tag ``company_name``          | no native field                                |
| contacts  | job_title        | observacoes tag ``job_title``             | no native field                                |
| contacts  | lifecycle_stage  | observacoes tag ``lifecycle_stage``       | no native field                                |
| companies | name             | clientes.nome (else razao_social)         | create also sets razao_social                  |
| companies | document         | clientes.cnpj (else cpf)                  | CNPJ digits, check digits verified -> reject   |
| companies | phone            | clientes.telefone (else celular)          |                                                |
| companies | city             | enderecos[0].endereco.nome_cidade         |                                                |
| companies | country          | enderecos[0].endereco.pais                |                                                |
| companies | domain           | observacoes tag ``domain``                | no native field                                |
| companies | industry         | observacoes tag ``industry``              | no native field                                |
| deals     | name             | vendas.observacoes (text without the tag) | a venda has no title                           |
| deals     | amount           | vendas.valor_total                        | exact decimal; written as one product line     |
| deals     | currency         | always ``BRL``                            | other currencies are refused before sending    |
| deals     | stage            | vendas.nome_situacao                      | written as situacao_id (from /situacoes_vendas)|
| deals     | close_date       | vendas.data (YYYY-MM-DD)                  | midnight UTC; today when missing on create     |
| deals     | pipeline         | observacoes tag ``pipeline``              | no native field                                |

Canonical fields without a GestaoClick field travel in one tag line appended to ``observacoes``:
``[crm_pipelines] {"key": "contacts:12", "job_title": "CEO"}`` (JSON, accents kept). The tag also
carries the idempotency key of records this project created. The rest of ``observacoes`` is
left as the user wrote it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import checked_email, clean_text, normalize_document, normalize_email
from crm_pipelines.providers.gestaoclick.api import ACCOUNT_TIMEZONE, RESOURCES

TAG_PREFIX = "[crm_pipelines]"
_TAG_LINE = re.compile(r"^\s*\[crm_pipelines\]\s*(\{.*\})\s*$", re.MULTILINE)
CURRENCY = "BRL"

#: Canonical fields carried in the observacoes tag, per entity (no native GestaoClick field).
TAGGED: dict[str, tuple[str, ...]] = {
    "contacts": ("company_name", "job_title", "lifecycle_stage"),
    "companies": ("domain", "industry"),
    "deals": ("pipeline",),
}


# ------------------------------------------------------------------------- small converters



def _amount(value: Any) -> Decimal | None:
    text = clean_text(value)
    if text is None:
        return None
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # "140,00"
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e16"):
        raise ValueError(f"{text!r} is out of range")
    return amount.quantize(Decimal("0.01"))


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


@dataclass(frozen=True)
class FieldMap:
    canonical: str
    remote: str
    to_local: Callable[[Mapping[str, Any]], Any]


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


FIELD_MAPS: dict[str, tuple[FieldMap, ...]] = {
    "contacts": (
        FieldMap("email", "email", lambda r: checked_email(r.get("email"))),
        FieldMap("first_name", "nome", lambda r: _nome_parts(r)[0]),
        FieldMap("last_name", "nome", lambda r: _nome_parts(r)[1]),
        FieldMap("phone", "telefone", _phone),
        FieldMap("document", "cpf", _document("cpf", "cnpj")),
    ),
    "companies": (
        FieldMap("name", "nome", lambda r: clean_text(r.get("nome")) or clean_text(r.get("razao_social"))),
        FieldMap("document", "cnpj", _document("cnpj", "cpf")),
        FieldMap("phone", "telefone", _phone),
        FieldMap("city", "enderecos[0].endereco.nome_cidade", lambda r: clean_text(first_of(r.get("enderecos"), "endereco").get("nome_cidade"))),
        FieldMap("country", "enderecos[0].endereco.pais", lambda r: clean_text(first_of(r.get("enderecos"), "endereco").get("pais"))),
    ),
    "deals": (
        FieldMap("name", "observacoes", lambda r: _one_line(split_notes(r.get("observacoes"))[0])),
        FieldMap("amount", "valor_total", lambda r: _amount(r.get("valor_total"))),
        FieldMap("currency", "(none)", lambda r: CURRENCY),
        FieldMap("stage", "nome_situacao", lambda r: clean_text(r.get("nome_situacao"))),
        FieldMap("close_date", "data", lambda r: parse_date(r.get("data"))),
    ),
}


def belongs_to(entity: str, record: Mapping[str, Any]) -> bool:
    """Whether a cliente is of the kind ``entity`` covers (the server may ignore the filter)."""
    tipos = RESOURCES[entity].tipos
    return not tipos or str(record.get("tipo_pessoa") or "").upper() in tipos


def to_remote_record(entity: str, record: Mapping[str, Any]) -> RemoteRecord | RecordError:
    """Map one GestaoClick record to a canonical record, or say why it cannot be."""
    external_id = str(record.get("id") or "").strip()
    if not external_id:
        return RecordError("(no id)", "MISSING_ID", f"a {entity} record came without an id: {str(dict(record))[:200]}")
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for field_map in FIELD_MAPS[entity]:
        try:
            fields[field_map.canonical] = field_map.to_local(record)
        except (ValueError, TypeError) as exc:
            problems.append(f"{field_map.remote}: {exc}")
    _, tag = split_notes(record.get("observacoes"))
    for name in TAGGED[entity]:
        fields[name] = clean_text(tag.get(name))
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


def to_payload(entity: str, fields: Mapping[str, Any], *, key: str | None, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Canonical fields as a GestaoClick body; ``current`` (the record as read) keeps what is not mapped.

    Raises ``ValueError`` naming the field when a value cannot be sent.
    """
    problem = check_outgoing(entity, fields)
    if problem:
        raise ValueError(problem)
    current = current or {}
    text, tag = split_notes(current.get("observacoes"))
    tag = {k: v for k, v in tag.items() if k not in TAGGED[entity]}
    for name in TAGGED[entity]:
        tag[name] = fields.get(name)
    if key and not tag.get("key"):
        tag["key"] = key
    if entity == "deals":
        return _venda_payload(fields, current, tag)
    document = normalize_document(fields.get("document"))
    payload: dict[str, Any] = {
        "tipo_pessoa": current.get("tipo_pessoa") or RESOURCES[entity].tipos[0],
        "email": normalize_email(fields.get("email")) or "",
        "telefone": fields.get("phone") or "",
        "observacoes": join_notes(text, tag),
    }
    if not current:
        payload["ativo"] = "1"
    if entity == "contacts":
        payload["nome"] = " ".join(p for p in (clean_text(fields.get("first_name")), clean_text(fields.get("last_name"))) if p)
        payload["cpf" if document is None or len(document) == 11 else "cnpj"] = document or ""
    else:
        payload["nome"] = clean_text(fields.get("name"))
        if not current.get("razao_social"):
            payload["razao_social"] = payload["nome"]
        payload["cnpj" if document is None or len(document) == 14 else "cpf"] = document or ""
        address = first_of(current.get("enderecos"), "endereco")
        if fields.get("city") is not None or fields.get("country") is not None or address:
            address.update({"nome_cidade": fields.get("city") or "", "pais": fields.get("country") or ""})
            others = [item for item in (current.get("enderecos") or [])[1:]]
            payload["enderecos"] = [{"endereco": address}, *others]
    return payload


def _venda_payload(fields: Mapping[str, Any], current: Mapping[str, Any], tag: Mapping[str, Any]) -> dict[str, Any]:
    amount: Decimal = fields["amount"]
    text = split_notes(current.get("observacoes"))[0]
    if _one_line(text) != _one_line(fields.get("name")):
        text = clean_text(fields.get("name"))  # the name changed: it replaces the notes' text
    payload: dict[str, Any] = {"observacoes": join_notes(text, tag)}
    day = format_date(fields.get("close_date")) or current.get("data") or datetime.now(ZoneInfo(ACCOUNT_TIMEZONE)).date().isoformat()
    payload["data"] = day
    produtos = current.get("produtos") or []
    try:
        current_total = _amount(current.get("valor_total"))
    except ValueError:
        current_total = None
    if not produtos or current_total != amount:
        # One line carrying the deal's value; a sale whose products already add up is left alone.
        payload["produtos"] = [{"produto": {"nome_produto": clean_text(fields.get("name")) or "Venda", "quantidade": "1",
                                            "valor_venda": format(amount, "f"), "valor_desconto": "0.00"}}]
    if current.get("cliente_id"):
        payload["cliente_id"] = str(current["cliente_id"])
    return payload
