"""Bling fields (Portuguese names) <-> canonical fields, declared once per entity.

Contacts are contatos of ``tipo`` "F" (pessoa física), companies contatos of ``tipo`` "J"
(pessoa jurídica), deals are pedidos de venda. A dotted name is a nested key
(``endereco.geral.municipio``). ``list`` says whether Bling's list item carries the field; when a
mapped field is missing from list items (the summary shape of GET /contatos and
GET /pedidos/vendas), the reader reads the record by id.

| entity    | canonical field  | Bling field                  | in list | notes                                         |
|-----------|------------------|------------------------------|---------|-----------------------------------------------|
| contacts  | first_name       | nome (first word)            | yes     | accents kept                                  |
| contacts  | last_name        | nome (the rest)              | yes     | written back as "first last"                  |
| contacts  | email            | email                        | no      | lower-cased; invalid -> reject                |
| contacts  | phone            | telefone                     | yes     |                                               |
| contacts  | document         | numeroDocumento              | yes     | CPF, digits only; invalid check digits -> reject |
| contacts  | company_name     | (none)                       |         | Bling keeps no employer for a pessoa física   |
| contacts  | job_title        | (none)                       |         |                                               |
| contacts  | lifecycle_stage  | (none)                       |         |                                               |
| companies | name             | nome                         | yes     |                                               |
| companies | document         | numeroDocumento              | yes     | CNPJ, digits only; invalid -> reject          |
| companies | phone            | telefone                     | yes     |                                               |
| companies | city             | endereco.geral.municipio     | no      |                                               |
| companies | country          | pais.nome                    | no      |                                               |
| companies | domain           | (none)                       |         | Bling has no web-site field                   |
| companies | industry         | (none)                       |         |                                               |
| deals     | name             | observacoes                  | no      | also the item description on create           |
| deals     | amount           | total                        | yes     | exact decimal, 2 places; sent as one item     |
| deals     | currency         | (always BRL)                 |         | other currencies are rejected before sending  |
| deals     | stage            | situacao.id                  | yes     | the account's situação id                     |
| deals     | close_date       | dataPrevista                 | yes     | a local date (America/Sao_Paulo)              |
| deals     | pipeline         | (none)                       |         |                                               |

Fields Bling cannot hold are not sent and come back empty on import. Every contato and pedido
written by this project carries its idempotency key ``<entity>:<local id>`` in ``codigo``
(contatos) or ``numeroLoja`` (pedidos).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import checked_email, clean_text, normalize_document
from crm_pipelines.providers.bling.api import ENTITY_SPECS, LOCAL_TZ

KEY_FIELD = {"contacts": "codigo", "companies": "codigo", "deals": "numeroLoja"}
CURRENCY = "BRL"


def document(value: Any, *, kind: str | None = None) -> str | None:
    """CPF/CNPJ digits, or ``ValueError`` such as "CPF 123.456.789-00 has invalid check digits"."""
    text = clean_text(value)
    if text is None:
        return None
    try:
        digits = normalize_document(text)
    except ValueError:
        count = sum(ch.isdigit() for ch in text)
        label = "CPF" if count == 11 else "CNPJ" if count == 14 else "CPF/CNPJ"
        reason = "has invalid check digits" if label != "CPF/CNPJ" else f"has {count} digits (a CPF has 11, a CNPJ 14)"
        raise ValueError(f"{label} {text} {reason}") from None
    if kind == "F" and digits is not None and len(digits) != 11:
        raise ValueError(f"a pessoa física needs a CPF (11 digits), not CNPJ {text}")
    if kind == "J" and digits is not None and len(digits) != 14:
        raise ValueError(f"a pessoa jurídica needs a CNPJ (14 digits), not CPF {text}")
    return digits



def _amount(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"amount {value!r} is not a number") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e16"):
        raise ValueError(f"amount {value!r} is out of range")
    return amount.quantize(Decimal("0.01"))


def _local_date(value: Any) -> datetime | None:
    text = clean_text(value)
    if text is None or text.startswith("0000"):
        return None
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"date {text!r} is not YYYY-MM-DD") from None
    return datetime.combine(day, time(0, 0), tzinfo=LOCAL_TZ)


def _date_out(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=LOCAL_TZ)).astimezone(LOCAL_TZ).strftime("%Y-%m-%d")
    return str(value)[:10]



def _get(obj: dict[str, Any], dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True)
class FieldMap:
    canonical: str
    remote: str  #: dotted Bling path
    to_local: Callable[[Any], Any]
    in_list: bool


FIELD_MAPS: dict[str, tuple[FieldMap, ...]] = {
    "contacts": (
        FieldMap("email", "email", checked_email, False),
        FieldMap("phone", "telefone", clean_text, True),
        FieldMap("document", "numeroDocumento", lambda v: document(v, kind="F"), True),
    ),
    "companies": (
        FieldMap("name", "nome", clean_text, True),
        FieldMap("document", "numeroDocumento", lambda v: document(v, kind="J"), True),
        FieldMap("phone", "telefone", clean_text, True),
        FieldMap("city", "endereco.geral.municipio", clean_text, False),
        FieldMap("country", "pais.nome", clean_text, False),
    ),
    "deals": (
        FieldMap("name", "observacoes", clean_text, False),
        FieldMap("amount", "total", _amount, True),
        FieldMap("stage", "situacao.id", lambda v: None if v in (None, "", 0) else str(v), True),
        FieldMap("close_date", "dataPrevista", _local_date, True),
    ),
}

#: Canonical fields Bling has a place for; the others (a contact's company or job title, a
#: company's domain, a deal's pipeline...) are left alone locally and never sent.
HELD_FIELDS: dict[str, tuple[str, ...]] = {
    entity: tuple(m.canonical for m in maps) + {"contacts": ("first_name", "last_name"), "deals": ("currency",)}.get(entity, ())
    for entity, maps in FIELD_MAPS.items()
}

#: Keys a list item must carry to be mapped without reading the record by id.
DETAIL_KEYS: dict[str, tuple[str, ...]] = {
    entity: tuple(sorted({m.remote.split(".")[0] for m in maps if not m.in_list})) for entity, maps in FIELD_MAPS.items()
}


def needs_detail(entity: str, item: dict[str, Any]) -> bool:
    return any(key not in item for key in DETAIL_KEYS[entity])


def split_name(nome: Any) -> tuple[str | None, str | None]:
    text = clean_text(nome)
    if text is None:
        return None, None
    first, _, rest = text.partition(" ")
    return first, (rest.strip() or None)


def to_remote_record(entity: str, obj: dict[str, Any]) -> RemoteRecord | RecordError:
    """Map one Bling record (full or list shape) to a canonical record, or say why it cannot be."""
    external_id = str(obj.get("id", ""))
    tipo = ENTITY_SPECS[entity].tipo
    if tipo and obj.get("tipo") not in (None, tipo):
        return RecordError(external_id, "WRONG_TIPO", f"contato {external_id} is tipo {obj.get('tipo')!r}, not {tipo!r}")
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for m in FIELD_MAPS[entity]:
        try:
            fields[m.canonical] = m.to_local(_get(obj, m.remote))
        except (ValueError, TypeError) as exc:
            problems.append(f"{m.remote}: {exc}")
    if problems:
        return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
    if entity == "contacts":
        fields["first_name"], fields["last_name"] = split_name(obj.get("nome"))
    if entity == "deals":
        fields["currency"] = CURRENCY
    archived = str(obj.get("situacao") or "") == "E"
    return RemoteRecord(external_id, None, fields, archived=archived)


def to_payload(entity: str, fields: dict[str, Any], *, key: str | None = None, default_contato_id: str | None = None) -> dict[str, Any]:
    """Canonical fields as a Bling create/update body. Raises ``ValueError`` naming the field."""
    if entity in ("contacts", "companies"):
        tipo = ENTITY_SPECS[entity].tipo
        if entity == "contacts":
            nome = " ".join(p for p in (clean_text(fields.get("first_name")), clean_text(fields.get("last_name"))) if p) or checked_email(fields.get("email"))
        else:
            nome = clean_text(fields.get("name"))
        if not nome:
            raise ValueError("nome: a Bling contato needs a name" + (" (first/last name or e-mail)" if entity == "contacts" else ""))
        body: dict[str, Any] = {"nome": nome, "tipo": tipo, "situacao": "A"}
        doc = document(fields.get("document"), kind=tipo)
        body["numeroDocumento"] = doc or ""
        body["telefone"] = clean_text(fields.get("phone")) or ""
        if entity == "contacts":
            body["email"] = checked_email(fields.get("email")) or ""
        else:
            body["endereco"] = {"geral": {"municipio": clean_text(fields.get("city")) or ""}}
            body["pais"] = {"nome": clean_text(fields.get("country")) or ""}
        if key:
            body["codigo"] = key
        return body
    currency = clean_text(fields.get("currency"))
    if currency and currency.upper() != CURRENCY:
        raise ValueError(f"currency: Bling sales orders are in {CURRENCY}, not {currency}")
    amount = _amount(fields.get("amount")) or Decimal("0.00")
    name = clean_text(fields.get("name")) or ""
    body = {
        "observacoes": name,
        "itens": [{"descricao": name or "Pedido", "quantidade": 1, "valor": float(amount), "unidade": "UN"}],
    }
    if default_contato_id:
        body["contato"] = {"id": int(default_contato_id)}
    close = _date_out(fields.get("close_date"))
    if close:
        body["dataPrevista"] = close
        body["data"] = close
    if fields.get("stage"):
        try:
            body["situacao"] = {"id": int(str(fields["stage"]))}
        except ValueError:
            raise ValueError(f"stage: Bling situações are numeric ids, not {fields['stage']!r}") from None
    if key:
        body["numeroLoja"] = key
    return body


def mapping_table() -> str:
    """The table in this module's docstring (for the README)."""
    lines = (__doc__ or "").splitlines()
    return "\n".join(line for line in lines if line.startswith("|"))
