"""Local GestaoClick API simulator (clientes, vendas) served over real HTTP.

Reproduces what a sync client meets at ``api.beteltecnologia.com`` (../shared/PROVIDERS.md §6):
the ``access-token`` + ``secret-access-token`` headers (401 otherwise), ``/clientes`` and
``/vendas`` lists paged by ``pagina`` in the ``{code,status,meta,data}`` envelope, numbers and flags
as strings, nested arrays in the wrapper-object style (``enderecos:[{"endereco":{...}}]``),
single-record reads and writes (no bulk endpoint), ``DELETE``, the list filters integrators use
(``tipo_pessoa``, ``nome``, ``cpf_cnpj``, ``email``, ``telefone``, ``ativo``; ``data_inicio``,
``data_fim``, ``cliente_id``, ``codigo``, ``situacao_id``), ``ordenacao``/``direcao``, 422
validation errors with messages per field, and 3 requests per second plus 30,000 per day per
account, answered with 429.

Everything the reference marks as secondary or unconfirmed is a switch on
:class:`GestaoClickSimConfig`: default page size and whether ``limite`` is honoured (and its
maximum, clamped or rejected), the ``meta`` key variants (``total_da_pagina`` instead of
``total_registros_pagina``; ``total_paginas`` omitted), string- or number-typed values,
``cadastrado_em``/``modificado_em`` on records, the error body style (envelope, bare message or
empty), ``Retry-After`` on 429, whether the ``tipo_pessoa`` filter and sorting are honoured,
whether clientes keep ``observacoes``, and the fields a venda requires.

There is no modification-date filter and no webhook (none is known). Records are hard-deleted.
Each account has its own credential pairs (``access-token:secret-access-token``), records and
limits; the pairs of :attr:`GestaoClickSimConfig.credentials` share the default account.
Writes made by one request share one timestamp (the simulated now).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from crm_pipelines.providers.gestaoclick.api import RESOURCES
from crm_pipelines.simulator.clock import seeded_time
from crm_pipelines.simulator.config import AccountSpec, SimConfig, config_from_arguments
from crm_pipelines.simulator.datagen import FakeData, is_valid_cnpj, is_valid_cpf, only_digits
from crm_pipelines.simulator.formats import EMAIL_RE, local_text
from crm_pipelines.simulator.ratelimit import Quota, retry_after as retry_after_header
from crm_pipelines.simulator.server import Account, ApiError, Request, Response, Simulator, api, capped
from crm_pipelines.simulator.store import Record, RecordStore

DEFAULT_ACCESS_TOKEN = "sim-gestaoclick-access-token"
DEFAULT_SECRET_TOKEN = "sim-gestaoclick-secret-token"
FIRST_IDS = {"clientes": 1001, "vendas": 50001}
#: Each entity's seeded records come from its own generator: clientes PF, clientes PJ, vendas.
SOURCES = {"contacts": "PF", "companies": "PJ", "deals": "vendas"}
SITUACOES = (("3150", "Em aberto"), ("3151", "Em andamento"), ("3152", "Confirmado"), ("3153", "Concretizada"), ("3154", "Cancelada"))
VENDEDORES = (("401", "Marcos Araújo"), ("402", "Conceição Nunes"), ("403", "Júlia Simões"))
LOJAS = (("201", "Matriz São Paulo"), ("202", "Filial Niterói"))
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CENT = Decimal("0.01")

#: A record as the API shows it: ``id``, then these fields (the clientes' ``observacoes`` only with
#: ``clientes_observacoes``; vendas add ``servicos``, ``pagamentos`` and ``parcelas``). A POST or PUT
#: sets them (as strings; ``codigo`` on creation only) but for the ``CONSTANT`` ones, the same on
#: every record, and the names ``LOOKED_UP`` from their ids.
SHOWN = {
    "clientes": ("tipo_pessoa", "nome", "razao_social", "cnpj", "inscricao_estadual", "inscricao_municipal", "cpf", "rg", "data_nascimento",
                 "telefone", "celular", "fax", "email", "ativo", "usuario_id", "loja_id", "contatos", "enderecos", "observacoes"),
    "vendas": ("codigo", "cliente_id", "nome_cliente", "vendedor_id", "nome_vendedor", "data", "situacao_id", "nome_situacao", "valor_total",
               "valor_frete", "condicao_pagamento", "loja_id", "nome_loja", "observacoes", "produtos"),
}
CONSTANT = {"clientes": {"inscricao_municipal": "", "rg": "", "fax": "", "usuario_id": "12", "loja_id": LOJAS[0][0]}, "vendas": {}}
LOOKED_UP = ("nome_cliente", "nome_vendedor", "nome_loja")
#: Fields that are numbers: strings on the wire unless ``numbers_as_strings`` is off.
NUMERIC = frozenset(("codigo", "ativo", "usuario_id", "loja_id", "cliente_id", "vendedor_id", "situacao_id", "valor_total", "valor_frete"))
#: Nested arrays, each item in a wrapper object (``enderecos: [{"endereco": {...}}]``): field ->
#: (wrapper key, which keys of an item are numbers).
NESTED: dict[str, tuple[str, Callable[[str], bool]]] = {
    "contatos": ("contato", lambda key: False), "enderecos": ("endereco", lambda key: key == "cidade_id"),
    "produtos": ("produto", lambda key: key != "nome_produto"),
}
#: ``ordenacao`` values per collection.
SORTABLE = {"clientes": ("id", "nome", "email", "cadastrado_em", "modificado_em"), "vendas": ("id", "codigo", "data", "valor_total", "modificado_em")}


def _equals(field: str) -> Callable[[str, Record], bool]:
    return lambda wanted, row: str(row.get(field, "")) == wanted


#: The list filters: query parameter -> whether a record matches its (non-empty) value.
FILTERS: dict[str, dict[str, Callable[[str, Record], bool]]] = {
    "clientes": {
        "tipo_pessoa": lambda wanted, row: row["tipo_pessoa"] == wanted.upper(),
        "nome": lambda wanted, row: wanted.casefold() in str(row.get("nome", "")).casefold(),
        "cpf_cnpj": lambda wanted, row: only_digits(wanted) in (only_digits(row.get("cpf")), only_digits(row.get("cnpj"))),
        "email": lambda wanted, row: wanted.strip().casefold() == str(row.get("email", "")).strip().casefold(),
        "telefone": lambda wanted, row: only_digits(wanted) in (only_digits(row.get("telefone")), only_digits(row.get("celular"))),
        "ativo": lambda wanted, row: wanted == row.get("ativo"),
    },
    "vendas": {
        "data_inicio": lambda wanted, row: row.get("data", "") >= wanted, "data_fim": lambda wanted, row: row.get("data", "") <= wanted,
        **{field: _equals(field) for field in ("cliente_id", "codigo", "situacao_id", "loja_id")},
    },
}


@dataclass
class GestaoClickSimConfig(SimConfig):
    """Everything the GestaoClick simulator can be told (shared settings in :class:`SimConfig`).

    Data: ``seed``; ``contacts`` (clientes PF), ``companies`` (clientes PJ) and ``deals`` (vendas)
    counts; ``history_days`` before ``reference_time`` (``None`` = now) over which seeded records
    were created and modified. The clock starts at ``clock_start``, else ``reference_time``.
    ``credentials``: accepted (access-token, secret-access-token) pairs; each pair is an account.

    Limits: ``per_second`` requests per second and ``daily_limit`` per day (``None`` = off) per
    account, the day ending at midnight in ``account_timezone``; ``rate_limits_enabled=False``
    turns both off.

    Unconfirmed facts, as switches: ``page_size`` (20 in the only sample seen),
    ``limite_honoured``, ``limite_max`` and ``limite_oversize`` ("clamp" | "reject");
    ``meta_page_count_key`` ("total_registros_pagina" | "total_da_pagina"),
    ``meta_total_paginas``; ``numbers_as_strings``; ``record_timestamps`` (``cadastrado_em`` /
    ``modificado_em`` as ``YYYY-MM-DD HH:MM:SS`` in ``account_timezone``); ``error_style``
    ("envelope" ``{code,status:"error",data:{mensagem}}`` | "message" ``{"message"}`` | "empty");
    ``retry_after_on_429``; ``honour_tipo_pessoa_filter``; ``honour_sorting``;
    ``clientes_observacoes``; ``vendas_require_cliente``, ``vendas_require_produtos``;
    ``unique_documents`` (a second cliente with the same CPF/CNPJ is refused with 422).
    """

    COUNTS: ClassVar[tuple[str, ...]] = ("contacts", "companies", "deals")

    contacts: int = 100
    companies: int = 20
    deals: int = 40
    credentials: tuple[tuple[str, str], ...] = ((DEFAULT_ACCESS_TOKEN, DEFAULT_SECRET_TOKEN),)

    per_second: int = 3
    daily_limit: int | None = 30_000
    account_timezone: str = "America/Sao_Paulo"
    retry_after_on_429: bool = False

    page_size: int = 20
    limite_honoured: bool = False
    limite_max: int = 100
    limite_oversize: Literal["clamp", "reject"] = "clamp"
    meta_page_count_key: Literal["total_registros_pagina", "total_da_pagina"] = "total_registros_pagina"
    meta_total_paginas: bool = True
    numbers_as_strings: bool = True
    record_timestamps: bool = False
    error_style: Literal["envelope", "message", "empty"] = "envelope"
    honour_tipo_pessoa_filter: bool = True
    honour_sorting: bool = True
    clientes_observacoes: bool = True
    vendas_require_cliente: bool = True
    vendas_require_produtos: bool = True
    unique_documents: bool = False

    def check(self) -> None:
        if self.page_size < 1 or self.limite_max < 1 or self.per_second < 1:
            raise ValueError("page_size, limite_max and per_second must be >= 1")
        if not self.credentials or any(len(pair) != 2 or not all(pair) for pair in self.credentials):
            raise ValueError("credentials must be non-empty (access token, secret token) pairs")


def _both(method: str, suffix: str = "") -> Callable[[Callable], Callable]:
    """Declare a handler of ``method`` on ``/clientes`` and ``/vendas`` (plus ``suffix``), each route under its own name."""
    return lambda handler: api(method, f"/clientes{suffix}")(api(method, f"/vendas{suffix}")(handler))


def _unwrap(items: Any, wrapper: str) -> list[dict[str, Any]]:
    """``[{"endereco": {...}}]`` or plain ``[{...}]`` -> list of plain dicts of strings."""
    inner = (item.get(wrapper, item) for item in items or [] if isinstance(item, dict))
    return [{k: "" if v is None else str(v) for k, v in values.items()} for values in inner if isinstance(values, dict)]


def _sort_key(order: str, row: Record) -> tuple[Any, Any]:
    """Ids, codigos and times sort as numbers, the rest as case-folded text; ties by id."""
    value = row.created if order == "cadastrado_em" else row.updated if order == "modificado_em" else row.get(order, "")
    return int(value) if order in ("id", "codigo", "cadastrado_em", "modificado_em") and str(value).isdigit() else str(value).casefold(), row.id


class Store(Account):
    """A GestaoClick account: clientes and vendas (hard-deleted), and the per-second and daily
    limits of each access token."""

    def __init__(self, sim: GestaoClickSimulator, spec: AccountSpec) -> None:
        super().__init__(sim, spec)
        cfg, end = sim.config, sim.reference_ms
        self.quota = Quota(sim, "SECONDLY", cfg.per_second, 1.0, cfg.daily_limit, ZoneInfo(cfg.account_timezone))
        self.limiters = self.quota.limiters
        self.data = {source: FakeData(f"{self.seed}-{source.lower()}") for source in SOURCES.values()}
        self.stores = {kind: RecordStore(kind, first_id=first) for kind, first in FIRST_IDS.items()}
        for entity, source in SOURCES.items():
            rng, store = self.data[source].rng, self.stores[sim.ENTITIES[entity]]
            for _ in range(self.count_of(sim, entity)):
                created = seeded_time(rng, end - int(cfg.history_days * 86_400_000), end)
                store.touch(sim.write(store, None, sim.new_values(self, store, entity), created), seeded_time(rng, created, end))


class GestaoClickSimulator(Simulator):
    """GestaoClick over real HTTP. See the module docstring and :class:`GestaoClickSimConfig`.

    Python-side helpers for tests (``account=`` names another account): :meth:`records`,
    :meth:`count`, :meth:`create`, :meth:`modify`, :meth:`delete`, :meth:`set_fields`.
    """

    provider = "gestaoclick"
    server_name = "gestaoclick-simulator"
    config_class = GestaoClickSimConfig
    ANSWERS = {
        "unauthorized": (401, "Token de acesso inválido ou não informado"), "not_found": (404, "Rota não encontrada: {request.method} {request.path}"),
        "method_not_allowed": (405, "Método {request.method} não permitido"), "internal_error": (500, "Erro interno do servidor"),
        "invalid_json": (400, "JSON inválido: {error}"), "not_an_object": (400, "O corpo da requisição deve ser um objeto JSON"),
    }
    account_class = Store
    config: GestaoClickSimConfig
    ENTITIES = {entity: resource.path.strip("/") for entity, resource in RESOURCES.items()}
    CLI_DEFAULTS = {"contacts": 1000, "companies": 100, "deals": 200}

    def default_account_spec(self) -> AccountSpec:
        return AccountSpec("default", tuple(f"{access}:{secret}" for access, secret in self.config.credentials))

    clientes = property(lambda self: {r.id: r.values for r in self.account().stores["clientes"].select()}, doc="The default account's clientes.")
    vendas = property(lambda self: {r.id: r.values for r in self.account().stores["vendas"].select()}, doc="The default account's vendas.")

    def new_values(self, account: Account, store: RecordStore, entity: str) -> dict[str, Any]:
        """A generated cliente (PF or PJ) or venda, drawn from the entity's own generator."""
        data = account.data[SOURCES[entity]]
        if entity == "deals":
            clientes, first, deal = account.stores["clientes"], FIRST_IDS["clientes"], data.deal()
            span, amount = max(clientes.next_number - first, 1), deal["amount"] or "0.00"
            # ids are dense; a few tries find a live one without listing them all
            cliente = next(filter(None, (clientes.get(first + int(data.rng.random() * span)) for _ in range(5))), None)
            (situacao_id, situacao), (vendedor_id, vendedor), (loja_id, loja) = data.pick(SITUACOES), data.pick(VENDEDORES), data.pick(LOJAS)
            day = date.fromtimestamp(self.reference_ms / 1000 - data.rng.random() * 120 * 86400)
            produto = {"produto_id": str(data.below(700, 800)), "nome_produto": deal["name"].split(" - ")[0], "quantidade": "1.00",
                       "valor_venda": amount, "valor_desconto": "0.00", "valor_total": amount}
            return {"cliente_id": str(cliente["id"]) if cliente else "", "nome_cliente": cliente["nome"] if cliente else "",
                    "vendedor_id": vendedor_id, "nome_vendedor": vendedor, "data": day.isoformat(), "situacao_id": situacao_id,
                    "nome_situacao": situacao, "loja_id": loja_id, "nome_loja": loja, "valor_frete": "0.00", "condicao_pagamento": "a_vista",
                    "observacoes": deal["name"], "produtos": [produto], "valor_total": amount}
        if entity == "contacts":
            p = data.person()
            born = f"{data.below(1950, 2005)}-{data.below(1, 13):02d}-{data.below(1, 29):02d}" if data.rng.random() < 0.5 else ""
            values = {"tipo_pessoa": "PF", "nome": " ".join(x for x in (p["first_name"], p["last_name"]) if x), "cpf": p["document"] or "",
                      "email": p["email"] or "", "telefone": p["phone"] or "", "celular": p["mobile"] or "", "data_nascimento": born}
        else:
            p = data.organization()
            registration = str(data.below(10**8, 10**9)) if data.rng.random() < 0.5 else ""
            values = {"tipo_pessoa": "PJ", "nome": p["name"], "razao_social": p["name"], "cnpj": p["document"] or "",
                      "email": f"contato@{p['domain']}" if p["domain"] else "", "telefone": p["phone"] or "", "celular": "",
                      "inscricao_estadual": registration}
        values["enderecos"] = [{"cep": f"{data.below(10000, 99999)}-{data.below(0, 1000):03d}", "logradouro": "Rua das Flores",
                                "numero": str(data.below(1, 3000)), "complemento": "", "bairro": "Centro", "cidade_id": str(data.below(1000, 6000)),
                                "nome_cidade": p["city"], "estado": p["state"] or "", "pais": p["country"]}]
        has_contato = data.rng.random() < 0.3
        values["contatos"] = [{"nome": data.first_name(), "contato": data.phone(), "cargo": data.job_title() or "", "observacao": ""}] if has_contato else []
        values["ativo"] = "1" if data.rng.random() < 0.95 else "0"
        return values

    def random_changes(self, account: Account, store: RecordStore, row: Record) -> dict[str, Any]:
        if store.name == "vendas":
            (situacao_id, situacao), amount = SITUACOES[account.rng.randrange(len(SITUACOES))], account.data["vendas"].amount()
            repriced = {"valor_venda": amount, "valor_total": amount, "quantidade": "1.00", "valor_desconto": "0.00"}
            produtos = [row["produtos"][0] | repriced] if row["produtos"] else []
            return {"situacao_id": situacao_id, "nome_situacao": situacao, "produtos": produtos, "valor_total": amount}
        phone = account.data[row["tipo_pessoa"] if row["tipo_pessoa"] in account.data else "PF"].phone()
        changes = {"telefone": phone if phone != row["telefone"] else "(11) 3333-0000"}
        if account.rng.random() < 0.5:
            changes["nome"] = f"{row['nome']} Júnior" if not row["nome"].endswith("Júnior") else row["nome"][: -len(" Júnior")]
        return changes

    def write(self, store: RecordStore, record: Record | None, values: Mapping[str, Any], stamp: int) -> Record:
        """A new record gets its id, an empty ``observacoes`` if none and (vendas) the next ``codigo``."""
        if record is None:
            record_id = store.allocate_id()
            serial = {"codigo": values.get("codigo") or str(record_id - FIRST_IDS["vendas"] + 1)} if store.name == "vendas" else {}
            return store.insert({"id": record_id, **values, **serial, "observacoes": values.get("observacoes", "")}, stamp, record_id=record_id)
        return super().write(store, record, values, stamp)

    def remove(self, store: RecordStore, record: Record) -> None:
        store.delete(record, self.stamp(), hard=True)

    def error_response(self, status: int, message: str, errors: Mapping[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response:
        """The error body of ``error_style``: the envelope, a bare ``message`` or nothing."""
        if self.config.error_style == "empty":
            return Response(status, dict(headers or {}), b"")
        if self.config.error_style == "message":
            return Response.json(status, {"message": message, **({"errors": dict(errors)} if errors else {})}, headers)
        data = {"mensagem": message, **({"erros": dict(errors)} if errors else {})}
        return Response.json(status, {"code": status, "status": "error", "data": data}, headers)

    def fault_response(self, status: int, request: Request) -> Response:
        if status == 429:
            return self._too_many("SECONDLY", 1.0)
        messages = {502: "Bad Gateway", 503: "Serviço temporariamente indisponível", 504: "Gateway Timeout"}
        return self.error_response(status, messages.get(status, f"Erro {status}"))

    def _too_many(self, policy: str, retry_after: float) -> Response:
        message = "Limite diário de requisições excedido" if policy == "DAILY" else "Limite de requisições por segundo excedido"
        headers = retry_after_header(retry_after) if self.config.retry_after_on_429 else None
        return self.error_response(429, message, headers=headers)

    def credentials(self, request: Request) -> str | None:
        access, secret = (request.header("access-token") or "").strip(), (request.header("secret-access-token") or "").strip()
        return f"{access}:{secret}" if access else None

    def admit(self, request: Request) -> Response | None:
        """3 requests per second and 30,000 per day, per access token; the day is checked first."""
        if not self.config.rate_limits_enabled:
            return None
        key = request.token.partition(":")[0]
        policy, decision = request.account.quota.take(key, key)
        return None if policy is None else self._too_many(policy, decision.retry_after_s)

    def _num(self, value: Any) -> Any:
        """Numbers and flags as strings (observed), or as JSON numbers (switch)."""
        if self.config.numbers_as_strings or value in (None, ""):
            return value
        text = str(value)
        try:
            return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
        except ValueError:
            return value

    def _render(self, kind: str, row: Record) -> dict[str, Any]:
        """The record as the API shows it: :data:`SHOWN`, :data:`NUMERIC`, :data:`NESTED`."""
        n, cfg, values = self._num, self.config, row.values | CONSTANT[kind]
        out: dict[str, Any] = {"id": n(str(row["id"]))}
        for key in SHOWN[kind]:
            wrapper, numeric = NESTED.get(key, (None, None))
            value = values.get(key, [] if wrapper else "")
            if wrapper:
                value = [{wrapper: {k: n(v) if numeric(k) else v for k, v in item.items()}} for item in value]
            out[key] = n(value) if key in NUMERIC else value
        if kind == "vendas":
            parcela = {"data_vencimento": row.get("data", ""), "valor": n(row.get("valor_total", "0.00")), "forma_pagamento_id": n("1")}
            out |= {"servicos": [], "pagamentos": [], "parcelas": [{"parcela": parcela | {"situacao": "pendente"}}]}
        elif not cfg.clientes_observacoes:
            del out["observacoes"]
        if cfg.record_timestamps:  # YYYY-MM-DD HH:MM:SS in the account's time zone
            created, modified = (local_text(ms / 1000, ZoneInfo(cfg.account_timezone)) for ms in (row.created, row.updated))
            out |= {"cadastrado_em": created, "modificado_em": modified}
        return out

    @staticmethod
    def _ok(payload: Any) -> Response:
        return Response.json(200, {"code": 200, "status": "success", "data": payload})

    def _int_param(self, request: Request, name: str, default: int) -> int:
        raw = request.query_value(name)
        try:
            value = default if raw in (None, "") else int(raw)
        except ValueError:
            raise ApiError(self.error_response(400, f"Parâmetro {name} inválido: {raw!r}")) from None
        if value < 1:
            raise ApiError(self.error_response(400, f"Parâmetro {name} deve ser maior que zero"))
        return value

    @_both("GET")
    def _list(self, request: Request) -> Response:
        """One page (``pagina``; ``limite`` if honoured) of the records the filters keep, sorted by ``ordenacao``/``direcao``."""
        kind, cfg, q = request.path.split("/")[1], self.config, request.query_value
        pagina, size = self._int_param(request, "pagina", 1), cfg.page_size
        if cfg.limite_honoured and q("limite"):
            size = capped(self._int_param(request, "limite", cfg.page_size), cfg.limite_max, cfg.limite_oversize,
                          lambda: ApiError(self.error_response(400, f"O limite máximo por página é {cfg.limite_max}")))
        wanted = {name: value for name in FILTERS[kind] if (value := q(name)) and (name != "tipo_pessoa" or cfg.honour_tipo_pessoa_filter)}
        rows = [row for row in request.account.stores[kind].select() if all(FILTERS[kind][name](value, row) for name, value in wanted.items())]
        if cfg.honour_sorting and q("ordenacao") in SORTABLE[kind]:
            rows.sort(key=lambda row: _sort_key(q("ordenacao"), row), reverse=(q("direcao") or "asc").lower() == "desc")
        total, chunk, pages = len(rows), rows[(pagina - 1) * size : pagina * size], max(1, math.ceil(len(rows) / size))
        previous, following = pagina - 1 if pagina > 1 else None, pagina + 1 if pagina < pages else None
        query = {k: v[-1] for k, v in request.query.items() if k != "pagina"}
        back, forward = (f"{self.base_url}/{kind}?{urlencode({**query, 'pagina': page})}" if page else None for page in (previous, following))
        meta = {"total_registros": total, "total_paginas": pages, cfg.meta_page_count_key: len(chunk), "pagina_atual": pagina,
                "limite_por_pagina": size, "pagina_anterior": previous, "url_anterior": back, "proxima_pagina": following, "proxima_url": forward}
        meta = {k: self._num(str(v)) if isinstance(v, int) else v for k, v in meta.items() if k != "total_paginas" or cfg.meta_total_paginas}
        return Response.json(200, {"code": 200, "status": "success", "meta": meta, "data": [self._render(kind, r) for r in chunk]})

    @api("GET", "/situacoes_vendas")
    def _situacoes(self, request: Request) -> Response:
        return self._ok([{"id": self._num(i), "nome": name, "padrao": self._num("1" if i == SITUACOES[0][0] else "0")} for i, name in SITUACOES])

    @_both("GET", "/{id}")
    @_both("DELETE", "/{id}")
    @_both("POST")
    @_both("PUT", "/{id}")
    def _record(self, request: Request) -> Response:
        """Read, delete, create (POST) or change (PUT) one record. A write sets what the body may
        (:data:`SHOWN`) over the current values, checked per collection; 422 with the messages per field."""
        store, raw = request.account.stores[request.path.split("/")[1]], request.params.get("id")
        kind, row = store.name, store.get(int(raw)) if raw and raw.isdigit() else None
        if raw is not None and row is None:
            raise ApiError(self.error_response(404, "Registro não encontrado"))
        if request.method == "GET":
            return self._ok(self._render(kind, row))
        if request.method == "DELETE":
            self.remove(store, row)
            return self._ok({"mensagem": "Registro excluído com sucesso"})
        body, merged = self.body_object(request), dict(row.values if row else {})
        for key in (k for k in SHOWN[kind] if k in body and k not in CONSTANT[kind] and k not in LOOKED_UP and (k != "codigo" or row is None)):
            merged[key] = _unwrap(body[key], NESTED[key][0]) if key in NESTED else "" if body[key] is None else str(body[key])
        values = (self._cliente_values if kind == "clientes" else self._venda_values)(request.account.stores["clientes"], body, merged, row is None)
        return self._ok(self._render(kind, self.write(store, row, values, self.stamp())))

    def _cliente_values(self, clientes: RecordStore, body: Mapping[str, Any], merged: dict[str, Any], creating: bool) -> dict[str, Any]:
        if not self.config.clientes_observacoes:
            merged["observacoes"] = ""
        merged["tipo_pessoa"], email = str(merged.get("tipo_pessoa", "")).upper(), str(merged.get("email", "")).strip()
        taken = {key: self.config.unique_documents and (doc := only_digits(merged.get(key))) and any(
            only_digits(r.get(key)) == doc and r.id != merged.get("id") for r in clientes.select()) for key in ("cpf", "cnpj")}
        self._refuse((
            ("tipo_pessoa", merged["tipo_pessoa"] not in ("PF", "PJ", "ES"), "O campo tipo_pessoa é obrigatório e deve ser PF, PJ ou ES."),
            ("nome", not str(merged.get("nome", "")).strip(), "O campo nome é obrigatório."),
            ("ativo", creating and str(body.get("ativo", "")) not in ("0", "1"), "O campo ativo é obrigatório (1 ou 0)."),
            ("email", email and not EMAIL_RE.match(email), "O e-mail informado é inválido."),
            ("cpf", merged.get("cpf") and not is_valid_cpf(merged["cpf"]), "O CPF informado é inválido."),
            ("cnpj", merged.get("cnpj") and not is_valid_cnpj(merged["cnpj"]), "O CNPJ informado é inválido."),
            *((key, taken[key], f"Já existe um cliente cadastrado com este {key.upper()}.") for key in ("cpf", "cnpj")),
        ))
        return {"enderecos": [], "contatos": [], **merged}

    def _venda_values(self, clientes: RecordStore, body: Mapping[str, Any], merged: dict[str, Any], creating: bool) -> dict[str, Any]:
        """Checks, then the names of the cliente, situação, vendedor and loja, and the totals of the produtos."""
        cfg, situacoes = self.config, dict(SITUACOES)
        cliente_id, situacao_id, produtos = str(merged.get("cliente_id", "")), merged.get("situacao_id"), merged.get("produtos") or []
        cliente = clientes.get(int(cliente_id)) if cliente_id.isdigit() else None
        named = {name.casefold(): i for i, name in SITUACOES}.get(str(merged.get("nome_situacao") or "").casefold())
        checks = [
            ("data", not _DATE_RE.match(str(merged.get("data", ""))), "O campo data é obrigatório (AAAA-MM-DD)."),
            ("cliente_id", cliente is None and (cliente_id or cfg.vendas_require_cliente),
             "Cliente não encontrado." if cliente_id else "O campo cliente_id é obrigatório."),
            ("situacao_id", situacao_id and situacao_id not in situacoes, "Situação não encontrada."),
            ("nome_situacao", not situacao_id and merged.get("nome_situacao") and named is None, "Situação não encontrada."),
            ("produtos", not produtos and cfg.vendas_require_produtos, "Informe ao menos um produto."),
        ]
        total = Decimal(0)
        for position, produto in enumerate(produtos):
            try:
                valor = produto.get("valor_venda") or produto.get("valor_unitario") or "0"
                quantidade, valor, desconto = (Decimal(text) for text in (produto.get("quantidade") or "1", valor, produto.get("valor_desconto") or "0"))
            except InvalidOperation:
                checks.append((f"produtos.{position}", True, "Valores do produto inválidos."))
                continue
            line = (quantidade * valor - desconto).quantize(_CENT)
            produto["valor_total"], total = format(line, "f"), total + line
        try:
            merged["valor_total"] = format(Decimal(total if produtos else merged.get("valor_total") or "0").quantize(_CENT), "f")
        except InvalidOperation:
            checks.append(("valor_total", True, "Valor total inválido."))
        self._refuse(checks)
        situacao = (situacao_id, situacoes[situacao_id]) if situacao_id else (named, merged["nome_situacao"]) if named else SITUACOES[0]
        vendedor_id, loja_id = merged.get("vendedor_id") or VENDEDORES[0][0], merged.get("loja_id") or LOJAS[0][0]
        merged |= {"nome_cliente": cliente["nome"]} if cliente else {}
        merged |= {"situacao_id": situacao[0], "nome_situacao": situacao[1], "vendedor_id": vendedor_id,
                   "nome_vendedor": dict(VENDEDORES).get(vendedor_id, ""), "loja_id": loja_id, "nome_loja": dict(LOJAS).get(loja_id, "")}
        return {"valor_frete": "0.00", "condicao_pagamento": "a_vista", "observacoes": "", **merged}

    def _refuse(self, checks: Iterable[tuple[str, Any, str]]) -> None:
        """422 with the messages of the failed ``(field, failed, message)`` checks per field, if any."""
        failed = [(field, message) for field, wrong, message in checks if wrong]
        errors = {field: [message for name, message in failed if name == field] for field, _ in failed}
        if errors:
            raise ApiError(self.error_response(422, "Erro de validação: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), errors))

    def entity_filter(self, entity: str) -> Callable[[Record], bool] | None:
        tipos = RESOURCES[entity].tipos  # ES: estrangeiro
        return (lambda r: r["tipo_pessoa"] in tipos) if tipos else None

    def record_view(self, store: RecordStore, record: Record) -> dict[str, Any]:
        return self._render(store.name, record)

    def set_fields(self, entity: str, record_id: str | int, *, account: str | None = None, **values: Any) -> dict[str, Any]:
        """Overwrite raw stored values of one record (no validation): to plant bad data."""
        with self.lock:
            store = self.entity_store(entity, account)
            row = store.rows[int(record_id)]
            store.update(row, values, self.stamp())
            return dict(row.values) | {"_created": row.created, "_modified": row.updated}

    def describe(self) -> dict[str, Any]:
        with self.lock:
            counts = {entity: self.count(entity) for entity in SOURCES}
        shown = ("rate_limits_enabled", "per_second", "daily_limit", "page_size", "limite_honoured")
        return {"records": counts} | {key: getattr(self.config, key) for key in shown}

    @classmethod
    def add_cli_arguments(cls, parser: Any) -> None:
        super().add_cli_arguments(parser)
        parser.add_argument("--secret", action="append", help="secret-access-token paired with each --token")

    @classmethod
    def config_from_cli_args(cls, args: Any) -> SimConfig:
        tokens, secrets = args.token or [DEFAULT_ACCESS_TOKEN], args.secret or [DEFAULT_SECRET_TOKEN]
        if len(secrets) != len(tokens):
            raise SystemExit("give one --secret per --token")
        return config_from_arguments(cls.config_class, args, credentials=tuple(zip(tokens, secrets)))


__all__ = ["DEFAULT_ACCESS_TOKEN", "DEFAULT_SECRET_TOKEN", "GestaoClickSimConfig", "GestaoClickSimulator", "SITUACOES", "Store"]
