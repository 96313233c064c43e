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

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from crm_pipelines.simulator.clock import seeded_time
from crm_pipelines.simulator.config import AccountSpec, SimConfig, config_from_arguments
from crm_pipelines.simulator.datagen import FakeData, is_valid_cnpj, is_valid_cpf
from crm_pipelines.simulator.ratelimit import DailyCounter, SlidingWindowLimiter
from crm_pipelines.simulator.server import Account, ApiError, Request, Response, Simulator, api, capped
from crm_pipelines.simulator.store import Record, RecordStore

DEFAULT_ACCESS_TOKEN = "sim-gestaoclick-access-token"
DEFAULT_SECRET_TOKEN = "sim-gestaoclick-secret-token"
FIRST_IDS = {"clientes": 1001, "vendas": 50001}
#: The seeded data of each entity comes from its own generator: clientes PF, clientes PJ, vendas.
SOURCES = {"contacts": "PF", "companies": "PJ", "deals": "vendas"}
TIPOS_PESSOA = ("PF", "PJ", "ES")
SITUACOES = (("3150", "Em aberto"), ("3151", "Em andamento"), ("3152", "Confirmado"), ("3153", "Concretizada"), ("3154", "Cancelada"))
VENDEDORES = (("401", "Marcos Araújo"), ("402", "Conceição Nunes"), ("403", "Júlia Simões"))
LOJAS = (("201", "Matriz São Paulo"), ("202", "Filial Niterói"))
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CENT = Decimal("0.01")

#: A record as the API shows it: ``id``, these fields (``CONSTANT`` ones are the same on every
#: record), the nested arrays of :data:`NESTED`, then what :meth:`GestaoClickSimulator._render` adds.
SHOWN = {
    "clientes": ("tipo_pessoa", "nome", "razao_social", "cnpj", "inscricao_estadual", "inscricao_municipal", "cpf", "rg", "data_nascimento",
                 "telefone", "celular", "fax", "email", "ativo", "usuario_id", "loja_id"),
    "vendas": ("codigo", "cliente_id", "nome_cliente", "vendedor_id", "nome_vendedor", "data", "situacao_id", "nome_situacao", "valor_total",
               "valor_frete", "condicao_pagamento", "loja_id", "nome_loja", "observacoes"),
}
CONSTANT = {"clientes": {"inscricao_municipal": "", "rg": "", "fax": "", "usuario_id": "12", "loja_id": LOJAS[0][0]}, "vendas": {}}
#: Fields that are numbers: strings on the wire unless ``numbers_as_strings`` is off.
NUMERIC = frozenset(("codigo", "ativo", "usuario_id", "loja_id", "cliente_id", "vendedor_id", "situacao_id", "valor_total", "valor_frete"))
#: Nested arrays, each item in a wrapper object (``enderecos: [{"endereco": {...}}]``): field ->
#: (wrapper key, which keys of an item are numbers).
NESTED: dict[str, dict[str, tuple[str, Callable[[str], bool]]]] = {
    "clientes": {"contatos": ("contato", lambda key: False), "enderecos": ("endereco", lambda key: key == "cidade_id")},
    "vendas": {"produtos": ("produto", lambda key: key != "nome_produto")},
}
#: The plain fields a POST or PUT may set (``codigo`` on creation only), kept as strings.
WRITABLE = {
    "clientes": ("tipo_pessoa", "nome", "razao_social", "cnpj", "cpf", "email", "telefone", "celular", "data_nascimento", "inscricao_estadual",
                 "ativo", "observacoes"),
    "vendas": ("cliente_id", "vendedor_id", "data", "situacao_id", "nome_situacao", "valor_frete", "condicao_pagamento", "loja_id", "observacoes",
               "valor_total", "codigo"),
}
SORTABLE = {"clientes": ("id", "nome", "email", "cadastrado_em", "modificado_em"), "vendas": ("id", "codigo", "data", "valor_total", "modificado_em")}


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", str(value or ""))


def _equals(field: str) -> Callable[[str, Record], bool]:
    return lambda wanted, row: str(row.get(field, "")) == wanted


def _digits_in(*fields: str) -> Callable[[str, Record], bool]:
    return lambda wanted, row: _digits(wanted) in tuple(_digits(row.get(field)) for field in fields)


#: The list filters: query parameter -> whether a record matches its (non-empty) value.
FILTERS: dict[str, dict[str, Callable[[str, Record], bool]]] = {
    "clientes": {
        "tipo_pessoa": lambda wanted, row: row["tipo_pessoa"] == wanted.upper(),
        "nome": lambda wanted, row: wanted.casefold() in str(row.get("nome", "")).casefold(),
        "cpf_cnpj": _digits_in("cpf", "cnpj"),
        "email": lambda wanted, row: wanted.strip().casefold() == str(row.get("email", "")).strip().casefold(),
        "telefone": _digits_in("telefone", "celular"),
        "ativo": lambda wanted, row: wanted == row.get("ativo"),
    },
    "vendas": {
        "data_inicio": lambda wanted, row: row.get("data", "") >= wanted,
        "data_fim": lambda wanted, row: row.get("data", "") <= wanted,
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


def _kind(request: Request) -> str:
    """``clientes`` or ``vendas``: the collection a path names."""
    return request.path.split("/")[1]


def _unwrap(items: Any, wrapper: str) -> list[dict[str, Any]]:
    """``[{"endereco": {...}}]`` or plain ``[{...}]`` -> list of plain dicts of strings."""
    inner = (item.get(wrapper, item) for item in items or [] if isinstance(item, dict))
    return [{k: "" if v is None else str(v) for k, v in values.items()} for values in inner if isinstance(values, dict)]


def _money(value: Any) -> str:
    return format(Decimal(value).quantize(_CENT), "f")


class Store(Account):
    """A GestaoClick account: clientes and vendas (hard-deleted), and the per-second and daily
    limits of each access token."""

    def __init__(self, sim: GestaoClickSimulator, spec: AccountSpec) -> None:
        super().__init__(sim, spec)
        cfg = sim.config
        self.second = SlidingWindowLimiter(cfg.per_second, 1.0)
        self.daily = DailyCounter(cfg.daily_limit, sim.clock.now, tz=ZoneInfo(cfg.account_timezone))
        self.limiters = (self.second, self.daily)
        self.data = {source: FakeData(f"{self.seed}-{source.lower()}") for source in SOURCES.values()}
        self.stores = {kind: RecordStore(kind, first_id=first) for kind, first in FIRST_IDS.items()}
        self.codigos = itertools.count(1)
        end = sim.reference_ms
        start = end - int(cfg.history_days * 86_400_000)
        for entity, source in SOURCES.items():
            rng = self.data[source].rng
            for _ in range(self.count_of(sim, entity)):
                created = seeded_time(rng, start, end)
                sim.insert(self, sim.ENTITIES[entity], sim.new_values(self, None, entity), created, seeded_time(rng, created, end))


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
    ENTITIES = {"contacts": "clientes", "companies": "clientes", "deals": "vendas"}
    CLI_DEFAULTS = {"contacts": 1000, "companies": 100, "deals": 200}

    def default_account_spec(self) -> AccountSpec:
        return AccountSpec("default", tuple(f"{access}:{secret}" for access, secret in self.config.credentials))

    def _stored(self, kind: str) -> dict[int, dict[str, Any]]:
        return {r.id: r.values for r in self.account().stores[kind].select()}

    clientes = property(lambda self: self._stored("clientes"), doc="The default account's clientes as stored (id -> values).")
    vendas = property(lambda self: self._stored("vendas"), doc="The default account's vendas as stored (id -> values).")

    def seed_cliente(self, store: Store, tipo: str) -> dict[str, Any]:
        data = store.data[tipo]
        if tipo == "PF":
            p = data.person()
            born = f"{data.below(1950, 2005)}-{data.below(1, 13):02d}-{data.below(1, 29):02d}" if data.rng.random() < 0.5 else ""
            values = {"tipo_pessoa": "PF", "nome": " ".join(x for x in (p["first_name"], p["last_name"]) if x), "cpf": p["document"] or "",
                      "email": p["email"] or "", "telefone": p["phone"] or "", "celular": p["mobile"] or "", "data_nascimento": born}
        else:
            p = data.organization()
            registration = str(data.below(10**8, 10**9)) if data.rng.random() < 0.5 else ""
            values = {"tipo_pessoa": "PJ", "nome": p["name"], "razao_social": p["name"], "cnpj": p["document"] or "",
                      "email": f"contato@{p['domain']}" if p["domain"] else "", "telefone": p["phone"] or "", "celular": "", "inscricao_estadual": registration}
        values["enderecos"] = [{"cep": f"{data.below(10000, 99999)}-{data.below(0, 1000):03d}", "logradouro": "Rua das Flores", "numero": str(data.below(1, 3000)),
                                "complemento": "", "bairro": "Centro", "cidade_id": str(data.below(1000, 6000)), "nome_cidade": p["city"], "estado": p["state"] or "",
                                "pais": p["country"]}]
        values["contatos"] = [{"nome": data.first_name(), "contato": data.phone(), "cargo": data.job_title() or "", "observacao": ""}] if data.rng.random() < 0.3 else []
        values["ativo"] = "1" if data.rng.random() < 0.95 else "0"
        return values

    def seed_venda(self, store: Store) -> dict[str, Any]:
        data, clientes, first = store.data["vendas"], store.stores["clientes"], FIRST_IDS["clientes"]
        deal, span = data.deal(), max(clientes.next_number - first, 1)
        amount = deal["amount"] or "0.00"
        # ids are dense; a few tries find a live one without listing them all
        cliente = next(filter(None, (clientes.get(first + int(data.rng.random() * span)) for _ in range(5))), None)
        (situacao_id, situacao), (vendedor_id, vendedor), (loja_id, loja) = data.pick(SITUACOES), data.pick(VENDEDORES), data.pick(LOJAS)
        day = date.fromtimestamp(self.reference_ms / 1000 - data.rng.random() * 120 * 86400)
        return {"cliente_id": str(cliente["id"]) if cliente else "", "nome_cliente": cliente["nome"] if cliente else "", "vendedor_id": vendedor_id,
                "nome_vendedor": vendedor, "data": day.isoformat(), "situacao_id": situacao_id, "nome_situacao": situacao, "loja_id": loja_id, "nome_loja": loja,
                "valor_frete": "0.00", "condicao_pagamento": "a_vista", "observacoes": deal["name"],
                "produtos": [{"produto_id": str(data.below(700, 800)), "nome_produto": deal["name"].split(" - ")[0], "quantidade": "1.00",
                              "valor_venda": amount, "valor_desconto": "0.00", "valor_total": amount}],
                "valor_total": amount}

    def insert(self, account: Store, kind: str, values: dict[str, Any], created_ms: int, modified_ms: int) -> Record:
        """Store a new record: clientes without ``observacoes`` get an empty one, vendas their ``codigo``."""
        store = account.stores[kind]
        record_id = store.allocate_id()
        if kind == "vendas":
            serial = str(next(account.codigos))
            values = {**values, "codigo": values.get("codigo") or serial}
        return store.insert({"id": record_id, **values, "observacoes": values.get("observacoes", "")}, created_ms, modified_ms, record_id=record_id)

    def write(self, store: RecordStore, record: Record | None, values: Mapping[str, Any], stamp: int) -> Record:
        if record is None:
            return self.insert(self.owner_of(store), store.name, dict(values), stamp, stamp)
        store.update(record, values, stamp)
        return record

    def remove(self, store: RecordStore, record: Record) -> None:
        store.delete(record, self.stamp(), hard=True)

    def _error(self, status: int, message: str, extra: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Response:
        style = self.config.error_style
        if style == "empty":
            return Response(status, dict(headers or {}), b"")
        if style == "message":
            return Response.json(status, {"message": message, **({"errors": dict(extra)} if extra else {})}, headers)
        return Response.json(status, {"code": status, "status": "error", "data": {"mensagem": message, **({"erros": dict(extra)} if extra else {})}}, headers)

    def error_response(self, status: int, message: str) -> Response:
        return self._error(status, message)

    def fault_response(self, status: int, request: Request) -> Response:
        if status == 429:
            return self._too_many("SECONDLY", 1.0)
        return self._error(status, {502: "Bad Gateway", 503: "Serviço temporariamente indisponível", 504: "Gateway Timeout"}.get(status, f"Erro {status}"))

    def _too_many(self, policy: str, retry_after: float) -> Response:
        message = "Limite diário de requisições excedido" if policy == "DAILY" else "Limite de requisições por segundo excedido"
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if self.config.retry_after_on_429 else None
        return self._error(429, message, headers=headers)

    def credentials(self, request: Request) -> str | None:
        access, secret = (request.header("access-token") or "").strip(), (request.header("secret-access-token") or "").strip()
        return f"{access}:{secret}" if access else None

    def admit(self, request: Request) -> Response | None:
        """3 requests per second and 30,000 per day, per access token."""
        if not self.config.rate_limits_enabled:
            return None
        account, key = request.account, request.token.partition(":")[0]
        if account.daily.remaining(key) == 0:
            self.stats_recorder.record_rate_limited("DAILY")
            return self._too_many("DAILY", account.daily.seconds_until_reset())
        decision = account.second.try_acquire(key)
        if not decision.allowed:
            self.stats_recorder.record_rate_limited("SECONDLY")
            return self._too_many("SECONDLY", decision.retry_after_s)
        account.daily.try_acquire(key)
        return None

    def _num(self, value: Any) -> Any:
        """Numbers and flags as strings (observed), or as JSON numbers (switch)."""
        if self.config.numbers_as_strings or value in (None, ""):
            return value
        text = str(value)
        try:
            return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
        except ValueError:
            return value

    def _stamp(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(self.config.account_timezone)).strftime("%Y-%m-%d %H:%M:%S")

    def _render(self, kind: str, row: Record) -> dict[str, Any]:
        """The record as the API shows it (:data:`SHOWN`, :data:`NESTED`), plus each collection's extras."""
        n, constant = self._num, CONSTANT[kind]
        out: dict[str, Any] = {"id": n(str(row["id"]))}
        for key in SHOWN[kind]:
            value = constant[key] if key in constant else row.get(key, "")
            out[key] = n(value) if key in NUMERIC else value
        for key, (wrapper, numeric) in NESTED[kind].items():
            out[key] = [{wrapper: {k: n(v) if numeric(k) else v for k, v in item.items()}} for item in row.get(key, [])]
        if kind == "vendas":
            parcela = {"data_vencimento": row.get("data", ""), "valor": n(row.get("valor_total", "0.00")), "forma_pagamento_id": n("1"), "situacao": "pendente"}
            out |= {"servicos": [], "pagamentos": [], "parcelas": [{"parcela": parcela}]}
        elif self.config.clientes_observacoes:
            out["observacoes"] = row.get("observacoes", "")
        if self.config.record_timestamps:
            out["cadastrado_em"], out["modificado_em"] = self._stamp(row.created), self._stamp(row.updated)
        return out

    @staticmethod
    def _ok(payload: Any, status: int = 200) -> Response:
        return Response.json(status, {"code": status, "status": "success", "data": payload})

    def _int_param(self, request: Request, name: str, default: int) -> int:
        raw = request.query_value(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(self._error(400, f"Parâmetro {name} inválido: {raw!r}")) from None
        if value < 1:
            raise ApiError(self._error(400, f"Parâmetro {name} deve ser maior que zero"))
        return value

    @staticmethod
    def _sort_key(order: str) -> Callable[[Record], tuple[Any, Any]]:
        """Numbers (ids, codigos, times) sort as numbers, the rest as case-folded text; ties by id."""
        def key(row: Record) -> tuple[Any, Any]:
            value = row.created if order == "cadastrado_em" else row.updated if order == "modificado_em" else row.get(order, "")
            numeric = order in ("id", "codigo", "cadastrado_em", "modificado_em") and str(value).isdigit()
            return int(value) if numeric else str(value).casefold(), row.id

        return key

    @api("GET", "/clientes", name="GET /clientes")
    @api("GET", "/vendas", name="GET /vendas")
    def _list(self, request: Request) -> Response:
        kind, cfg, q = _kind(request), self.config, request.query_value
        pagina, size = self._int_param(request, "pagina", 1), cfg.page_size
        if cfg.limite_honoured and q("limite"):
            size = capped(self._int_param(request, "limite", cfg.page_size), cfg.limite_max, cfg.limite_oversize,
                          lambda: ApiError(self._error(400, f"O limite máximo por página é {cfg.limite_max}")))
        wanted = {name: value for name, value in ((name, q(name)) for name in FILTERS[kind]) if value}
        if not cfg.honour_tipo_pessoa_filter:
            wanted.pop("tipo_pessoa", None)
        rows = [row for row in request.account.stores[kind].select() if all(FILTERS[kind][name](value, row) for name, value in wanted.items())]
        if cfg.honour_sorting and q("ordenacao") in SORTABLE[kind]:
            rows.sort(key=self._sort_key(q("ordenacao")), reverse=(q("direcao") or "asc").lower() == "desc")
        total, chunk = len(rows), rows[(pagina - 1) * size : pagina * size]
        pages = max(1, math.ceil(total / size))
        previous, following = pagina - 1 if pagina > 1 else None, pagina + 1 if pagina < pages else None
        query = {k: v[-1] for k, v in request.query.items() if k != "pagina"}

        def url(page: int | None) -> str | None:
            return None if page is None else f"{self.base_url}/{kind}?{urlencode({**query, 'pagina': page})}"

        meta = {"total_registros": total, "total_paginas": pages, cfg.meta_page_count_key: len(chunk), "pagina_atual": pagina, "limite_por_pagina": size,
                "pagina_anterior": previous, "url_anterior": url(previous), "proxima_pagina": following, "proxima_url": url(following)}
        if not cfg.meta_total_paginas:
            del meta["total_paginas"]
        meta = {key: self._num(str(value)) if isinstance(value, int) else value for key, value in meta.items()}
        return Response.json(200, {"code": 200, "status": "success", "meta": meta, "data": [self._render(kind, r) for r in chunk]})

    @api("GET", "/situacoes_vendas")
    def _situacoes(self, request: Request) -> Response:
        return self._ok([{"id": self._num(i), "nome": name, "padrao": self._num("1" if i == SITUACOES[0][0] else "0")} for i, name in SITUACOES])

    def _row(self, request: Request) -> Record:
        raw = request.params["id"]
        row = request.account.stores[_kind(request)].get(int(raw)) if raw.isdigit() else None
        if row is None:
            raise ApiError(self._error(404, "Registro não encontrado"))
        return row

    @api("GET", "/clientes/{id}", name="GET /clientes/{id}")
    @api("GET", "/vendas/{id}", name="GET /vendas/{id}")
    def _get(self, request: Request) -> Response:
        return self._ok(self._render(_kind(request), self._row(request)))

    @api("DELETE", "/clientes/{id}", name="DELETE /clientes/{id}")
    @api("DELETE", "/vendas/{id}", name="DELETE /vendas/{id}")
    def _delete(self, request: Request) -> Response:
        self.remove(request.account.stores[_kind(request)], self._row(request))
        return self._ok({"mensagem": "Registro excluído com sucesso"})

    @api("POST", "/clientes", name="POST /clientes")
    @api("POST", "/vendas", name="POST /vendas")
    @api("PUT", "/clientes/{id}", name="PUT /clientes/{id}")
    @api("PUT", "/vendas/{id}", name="PUT /vendas/{id}")
    def _save(self, request: Request) -> Response:
        """Create (POST) or change (PUT) one record; 422 with the messages per field."""
        kind = _kind(request)
        row = self._row(request) if "id" in request.params else None
        validate = self._cliente_values if kind == "clientes" else self._venda_values
        values = validate(request.account, self.body_object(request), row)
        return self._ok(self._render(kind, self.write(request.account.stores[kind], row, values, self.clock.now_ms())))

    @staticmethod
    def _merged(kind: str, body: Mapping[str, Any], current: Record | None) -> dict[str, Any]:
        """The current values with what ``body`` may set (:data:`WRITABLE`, :data:`NESTED`)."""
        merged = dict(current.values if current else {})
        for key in WRITABLE[kind]:
            if key in body and (key != "codigo" or current is None):
                merged[key] = "" if body[key] is None else str(body[key])
        for key, (wrapper, _) in NESTED[kind].items():
            if key in body:
                merged[key] = _unwrap(body[key], wrapper)
        return merged

    def _cliente_values(self, account: Store, body: Mapping[str, Any], current: Record | None) -> dict[str, Any]:
        merged, errors = self._merged("clientes", body, current), defaultdict(list)
        if not self.config.clientes_observacoes:
            merged["observacoes"] = ""
        merged["tipo_pessoa"] = str(merged.get("tipo_pessoa", "")).upper()
        email = str(merged.get("email", "")).strip()
        for field, wrong, message in (
            ("tipo_pessoa", merged["tipo_pessoa"] not in TIPOS_PESSOA, "O campo tipo_pessoa é obrigatório e deve ser PF, PJ ou ES."),
            ("nome", not str(merged.get("nome", "")).strip(), "O campo nome é obrigatório."),
            ("ativo", current is None and str(body.get("ativo", "")) not in ("0", "1"), "O campo ativo é obrigatório (1 ou 0)."),
            ("email", email and not _EMAIL_RE.match(email), "O e-mail informado é inválido."),
            ("cpf", merged.get("cpf") and not is_valid_cpf(merged["cpf"]), "O CPF informado é inválido."),
            ("cnpj", merged.get("cnpj") and not is_valid_cnpj(merged["cnpj"]), "O CNPJ informado é inválido."),
        ):
            if wrong:
                errors[field].append(message)
        for key in ("cpf", "cnpj") if self.config.unique_documents else ():
            doc = _digits(merged.get(key))
            if doc and any(_digits(r.get(key)) == doc and r.id != merged.get("id") for r in account.stores["clientes"].select()):
                errors[key].append(f"Já existe um cliente cadastrado com este {key.upper()}.")
        return self._checked(merged, errors, enderecos=[], contatos=[])

    def _venda_values(self, account: Store, body: Mapping[str, Any], current: Record | None) -> dict[str, Any]:
        cfg, merged, errors = self.config, self._merged("vendas", body, current), defaultdict(list)
        if not _DATE_RE.match(str(merged.get("data", ""))):
            errors["data"].append("O campo data é obrigatório (AAAA-MM-DD).")
        cliente_id = str(merged.get("cliente_id", ""))
        cliente = account.stores["clientes"].get(int(cliente_id)) if cliente_id.isdigit() else None
        if cliente is not None:
            merged["nome_cliente"] = cliente["nome"]
        elif cliente_id or cfg.vendas_require_cliente:
            errors["cliente_id"].append("Cliente não encontrado." if cliente_id else "O campo cliente_id é obrigatório.")
        if merged.get("situacao_id"):
            if merged["situacao_id"] in dict(SITUACOES):
                merged["nome_situacao"] = dict(SITUACOES)[merged["situacao_id"]]
            else:
                errors["situacao_id"].append("Situação não encontrada.")
        elif merged.get("nome_situacao"):
            found = {name.casefold(): i for i, name in SITUACOES}.get(str(merged["nome_situacao"]).casefold())
            if found is None:
                errors["nome_situacao"].append("Situação não encontrada.")
            else:
                merged["situacao_id"] = found
        else:
            merged["situacao_id"], merged["nome_situacao"] = SITUACOES[0]
        for key, name, options in (("vendedor_id", "nome_vendedor", VENDEDORES), ("loja_id", "nome_loja", LOJAS)):
            merged[key] = merged.get(key) or options[0][0]
            merged[name] = dict(options).get(merged[key], "")
        produtos = merged.get("produtos") or []
        if not produtos and cfg.vendas_require_produtos:
            errors["produtos"].append("Informe ao menos um produto.")
        total = Decimal(0)
        for position, produto in enumerate(produtos):
            try:
                quantidade = Decimal(produto.get("quantidade") or "1")
                valor = Decimal(produto.get("valor_venda") or produto.get("valor_unitario") or "0")
                desconto = Decimal(produto.get("valor_desconto") or "0")
            except InvalidOperation:
                errors[f"produtos.{position}"].append("Valores do produto inválidos.")
                continue
            line = (quantidade * valor - desconto).quantize(_CENT)
            produto["valor_total"] = format(line, "f")
            total += line
        try:
            merged["valor_total"] = _money(total if produtos else merged.get("valor_total") or "0")
        except InvalidOperation:
            errors["valor_total"].append("Valor total inválido.")
        return self._checked(merged, errors, valor_frete="0.00", condicao_pagamento="a_vista", observacoes="")

    def _checked(self, merged: dict[str, Any], errors: dict[str, list[str]], **defaults: Any) -> dict[str, Any]:
        """The values to store (``defaults`` for those unset), or 422 with the messages per field."""
        if errors:
            raise ApiError(self._error(422, "Erro de validação: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), errors))
        merged |= {k: v for k, v in defaults.items() if k not in merged}
        return {k: v for k, v in merged.items() if k not in ("id", "_created", "_modified")}

    def entity_filter(self, entity: str) -> Any:
        if entity == "deals":
            return None
        tipos = ("PF", "ES") if entity == "contacts" else ("PJ",)
        return lambda r: r["tipo_pessoa"] in tipos

    def record_view(self, store: RecordStore, record: Record) -> dict[str, Any]:
        return self._render(store.name, record)

    def new_values(self, account: Account, store: RecordStore | None, entity: str) -> dict[str, Any]:
        return self.seed_venda(account) if entity == "deals" else self.seed_cliente(account, SOURCES[entity])

    def random_changes(self, account: Account, store: RecordStore, row: Record) -> dict[str, Any]:
        rng = account.rng
        if store.name == "vendas":
            situacao = SITUACOES[rng.randrange(len(SITUACOES))]
            amount = account.data["vendas"].amount()
            produtos = [dict(row["produtos"][0], valor_venda=amount, valor_total=amount, quantidade="1.00", valor_desconto="0.00")] if row["produtos"] else []
            return {"situacao_id": situacao[0], "nome_situacao": situacao[1], "produtos": produtos, "valor_total": amount}
        data = account.data[row["tipo_pessoa"] if row["tipo_pessoa"] in account.data else "PF"]
        phone = data.phone()
        changes = {"telefone": phone if phone != row["telefone"] else "(11) 3333-0000"}
        if rng.random() < 0.5:
            changes["nome"] = f"{row['nome']} Júnior" if not row["nome"].endswith("Júnior") else row["nome"][: -len(" Júnior")]
        return changes

    def set_fields(self, entity: str, record_id: str | int, *, account: str | None = None, **values: Any) -> dict[str, Any]:
        """Overwrite raw stored values of one record (no validation): to plant bad data."""
        with self.lock:
            store = self.entity_store(entity, account)
            row = store.rows[int(record_id)]
            store.update(row, values, self.clock.now_ms())
            return dict(row.values) | {"_created": row.created, "_modified": row.updated}

    def describe(self) -> dict[str, Any]:
        with self.lock:
            counts = {entity: self.count(entity) for entity in SOURCES}
        cfg = self.config
        return {"records": counts, "rate_limits_enabled": cfg.rate_limits_enabled, "per_second": cfg.per_second,
                "daily_limit": cfg.daily_limit, "page_size": cfg.page_size, "limite_honoured": cfg.limite_honoured}

    @classmethod
    def add_cli_arguments(cls, parser: Any) -> None:
        super().add_cli_arguments(parser)
        parser.add_argument("--secret", action="append", help="secret-access-token paired with each --token")

    @classmethod
    def config_from_cli_args(cls, args: Any) -> SimConfig:
        tokens, secrets = args.token or [DEFAULT_ACCESS_TOKEN], args.secret or [DEFAULT_SECRET_TOKEN]
        if len(secrets) != len(tokens):
            raise SystemExit("give one --secret per --token")
        args.token = None
        return config_from_arguments(cls.config_class, args, credentials=tuple(zip(tokens, secrets)))


__all__ = ["DEFAULT_ACCESS_TOKEN", "DEFAULT_SECRET_TOKEN", "GestaoClickSimConfig", "GestaoClickSimulator", "SITUACOES", "Store"]
