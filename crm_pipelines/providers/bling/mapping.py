"""Bling fields (Portuguese names) <-> local columns: the shape of Bling's contatos and pedidos,
read and written through the loaded field mapping (built-in: ``crm_pipelines/mapping/defaults/bling.yaml``).

Contacts are contatos of ``tipo`` "F" (pessoa física), companies contatos of ``tipo`` "J"
(pessoa jurídica), deals are pedidos de venda. A dotted name is a nested key
(``endereco.geral.municipio``); ``nome:first``/``nome:rest`` split a person's ``nome`` (written
back as "first rest"); ``moeda`` is the pedidos' currency (always BRL);
``camposCustomizados.NAME`` a custom field by its name (its id is read from
``/campos-customizados/modulos`` when a reader or writer starts). When a mapped field is missing
from list items (the summary shape of GET /contatos and GET /pedidos/vendas), the reader reads
the record by id.

Fields Bling cannot hold are not sent and come back empty on import. Every contato and pedido
written by this project carries its idempotency key ``<entity>:<local id>`` in ``codigo``
(contatos) or ``numeroLoja`` (pedidos).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from crm_pipelines.core.model import RecordError, RemoteRecord
from crm_pipelines.core.normalize import checked_email, clean_text, normalize_document
from crm_pipelines.mapping.compiled import CompiledMapping, default
from crm_pipelines.mapping.spec import builtin
from crm_pipelines.mapping.types import Codec, amount_from
from crm_pipelines.providers.bling.api import ENTITY_SPECS, LOCAL_TZ, PROVIDER

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
    return amount_from(str(value), shown=value, label="amount ")


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


#: Keys every list item carries (the summary shapes); a record mapped from other keys is read by id.
LIST_KEYS: dict[str, frozenset[str]] = {
    "contacts": frozenset({"id", "nome", "codigo", "situacao", "numeroDocumento", "telefone", "celular"}),
    "companies": frozenset({"id", "nome", "codigo", "situacao", "numeroDocumento", "telefone", "celular"}),
    "deals": frozenset({"id", "numero", "numeroLoja", "data", "dataSaida", "dataPrevista", "totalProdutos", "total", "contato", "situacao", "loja"}),
}
NAME_PARTS = ("nome:first", "nome:rest")
CURRENCY_FIELD = "moeda"
CUSTOM_PREFIX = "camposCustomizados."


def _id_in(value: Any) -> str | None:
    return None if value in (None, "", 0) else str(value)


#: Bling's formats of the value types whose wire form is its own.
CODECS: dict[str, Codec] = {
    "decimal": Codec(lambda value: _amount(value), lambda v: v),
    "date": Codec(lambda value: _local_date(value), _date_out),
    "document": Codec(lambda value: document(value), lambda v: v),
    "id": Codec(_id_in, lambda v: None if v in (None, "") else str(v)),
    "email": Codec(lambda value: checked_email(value), checked_email),
}

#: Local columns Bling has a place for (its built-in mapping's); the others (a contact's company or
#: job title, a company's domain, a deal's pipeline...) are left alone locally and never sent.
HELD_FIELDS: dict[str, tuple[str, ...]] = {
    entity: tuple(f.local for f in builtin(PROVIDER).fields(entity) if f.local) for entity in ("contacts", "companies", "deals")
}


def _mapping(mapping: CompiledMapping | None) -> CompiledMapping:
    return mapping or default(PROVIDER)


def detail_keys(entity: str, mapping: CompiledMapping | None = None) -> frozenset[str]:
    """The top-level keys the mapping reads that list items lack (the record is then read by id)."""
    keys = {f.remote.split(":")[0].split(".")[0] for f in _mapping(mapping).imported(entity) if f.remote != CURRENCY_FIELD}
    return frozenset(keys - LIST_KEYS[entity])


def needs_detail(entity: str, item: dict[str, Any], mapping: CompiledMapping | None = None) -> bool:
    return any(key not in item for key in detail_keys(entity, mapping))


def custom_names(entity: str, mapping: CompiledMapping | None = None) -> set[str]:
    """The custom fields (campos customizados) the mapping names for ``entity``."""
    return {f.remote[len(CUSTOM_PREFIX):] for f in _mapping(mapping).fields(entity) if f.remote.startswith(CUSTOM_PREFIX)}


def custom_ids(client: Any, entity: str, mapping: CompiledMapping | None = None) -> dict[str, int]:
    """The ids of the custom fields the mapping names for ``entity`` (no call when it names none)."""
    wanted = custom_names(entity, mapping)
    if not wanted:
        return {}
    return {str(f["nome"]): int(f["id"]) for f in client.custom_field_list(entity) if str(f["nome"]) in wanted}


def split_name(nome: Any) -> tuple[str | None, str | None]:
    text = clean_text(nome)
    if text is None:
        return None, None
    first, _, rest = text.partition(" ")
    return first, (rest.strip() or None)


def _value_reader(entity: str, obj: dict[str, Any], custom_ids: dict[str, int]) -> Callable[[str], Any]:
    """``remote name -> raw value`` of one Bling record."""
    tipo = ENTITY_SPECS[entity].tipo

    def value_of(remote: str) -> Any:
        if remote in NAME_PARTS:
            return split_name(obj.get("nome"))[NAME_PARTS.index(remote)]
        if remote == CURRENCY_FIELD:
            return CURRENCY
        if remote == "numeroDocumento" and tipo:
            return document(obj.get("numeroDocumento"), kind=tipo)
        if remote.startswith(CUSTOM_PREFIX):
            wanted = custom_ids.get(remote[len(CUSTOM_PREFIX):])
            values = obj.get("camposCustomizados") or []
            if not isinstance(values, list):
                raise TypeError(f"camposCustomizados is {type(values).__name__}, expected a list")
            return next((v.get("valor") for v in values if isinstance(v, dict) and wanted is not None and int(v.get("idCampoCustomizado") or 0) == wanted), None)
        return _get(obj, remote)

    return value_of


def to_remote_record(entity: str, obj: dict[str, Any], mapping: CompiledMapping | None = None, custom_ids: dict[str, int] | None = None) -> RemoteRecord | RecordError:
    """Map one Bling record (full or list shape) to local values, or say why it cannot be."""
    external_id = str(obj.get("id", ""))
    tipo = ENTITY_SPECS[entity].tipo
    if tipo and obj.get("tipo") not in (None, tipo):
        return RecordError(external_id, "WRONG_TIPO", f"contato {external_id} is tipo {obj.get('tipo')!r}, not {tipo!r}")
    fields, problems = _mapping(mapping).read(entity, _value_reader(entity, obj, custom_ids or {}))
    if problems:
        return RecordError(external_id, "INVALID_FIELD", "; ".join(problems))
    archived = str(obj.get("situacao") or "") == "E"
    return RemoteRecord(external_id, None, fields, archived=archived)


def _place(body: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a nested key (``endereco.geral.municipio``); a blank is sent as "" (Bling's empty value)."""
    *parents, last = dotted.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = "" if value is None else value


def _contato_payload(entity: str, written: dict[str, Any], custom_ids: dict[str, int], key: str | None) -> dict[str, Any]:
    tipo = ENTITY_SPECS[entity].tipo
    if entity == "contacts":
        first, rest = (clean_text(written.pop(part, None)) for part in NAME_PARTS)
        nome = " ".join(p for p in (first, rest) if p) or checked_email(written.get("email"))
    else:
        nome = clean_text(written.pop("nome", None))
    if not nome:
        raise ValueError("nome: a Bling contato needs a name" + (" (first/last name or e-mail)" if entity == "contacts" else ""))
    body: dict[str, Any] = {"nome": nome, "tipo": tipo, "situacao": "A"}
    if "numeroDocumento" in written:
        body["numeroDocumento"] = document(written.pop("numeroDocumento"), kind=tipo) or ""
    custom = []
    for remote, value in written.items():
        if remote.startswith(CUSTOM_PREFIX):
            name = remote[len(CUSTOM_PREFIX):]
            if name not in custom_ids:
                if value is not None:
                    raise ValueError(f"{remote}: Bling has no custom field named {name!r} to hold it")
                continue
            custom.append({"idCampoCustomizado": custom_ids[name], "valor": "" if value is None else value})
        else:
            _place(body, remote, value)
    if custom:
        body["camposCustomizados"] = custom
    if key:
        body["codigo"] = key
    return body


def _pedido_payload(written: dict[str, Any], key: str | None, default_contato_id: str | None) -> dict[str, Any]:
    currency = clean_text(written.pop(CURRENCY_FIELD, None))
    if currency and currency.upper() != CURRENCY:
        raise ValueError(f"currency: Bling sales orders are in {CURRENCY}, not {currency}")
    amount = _amount(written.pop("total", None)) or Decimal("0.00")
    name = clean_text(written.pop("observacoes", None)) or ""
    body: dict[str, Any] = {
        "observacoes": name,
        "itens": [{"descricao": name or "Pedido", "quantidade": 1, "valor": float(amount), "unidade": "UN"}],
    }
    if default_contato_id:
        body["contato"] = {"id": int(default_contato_id)}
    close = written.pop("dataPrevista", None)
    if close:
        body["dataPrevista"] = close
        body["data"] = close
    stage = written.pop("situacao.id", None)
    if stage:
        try:
            body["situacao"] = {"id": int(str(stage))}
        except ValueError:
            raise ValueError(f"stage: Bling situações are numeric ids, not {stage!r}") from None
    for remote, value in written.items():
        if value is not None and not remote.startswith(CUSTOM_PREFIX):
            _place(body, remote, value)
    if key:
        body["numeroLoja"] = key
    return body


def to_payload(entity: str, fields: dict[str, Any], *, key: str | None = None, default_contato_id: str | None = None,
               mapping: CompiledMapping | None = None, custom_ids: dict[str, int] | None = None) -> dict[str, Any]:
    """Local values as a Bling create/update body. Raises ``ValueError`` naming the field."""
    written = _mapping(mapping).write(entity, fields)
    if entity in ("contacts", "companies"):
        return _contato_payload(entity, written, custom_ids or {}, key)
    return _pedido_payload(written, key, default_contato_id)
