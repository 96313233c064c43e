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
from collections.abc import Mapping
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
ENTITIES = ("contacts", "companies", "deals")
TIPOS = {"contacts": "PF", "companies": "PJ"}
TIPOS_PESSOA = ("PF", "PJ", "ES")
DAY_MS = 86_400_000
FIRST_CLIENTE_ID = 1001
FIRST_VENDA_ID = 50001

SITUACOES = (
    ("3150", "Em aberto"),
    ("3151", "Em andamento"),
    ("3152", "Confirmado"),
    ("3153", "Concretizada"),
    ("3154", "Cancelada"),
)
VENDEDORES = (("401", "Marcos Araújo"), ("402", "Conceição Nunes"), ("403", "Júlia Simões"))
LOJAS = (("201", "Matriz São Paulo"), ("202", "Filial Niterói"))
SORTABLE = {"clientes": ("id", "nome", "email", "cadastrado_em", "modificado_em"), "vendas": ("id", "codigo", "data", "valor_total", "modificado_em")}
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", str(value or ""))


class Store(Account):
    """A GestaoClick account: clientes and vendas (hard-deleted), and the per-second and daily
    limits of each access token."""

    def __init__(self, sim: GestaoClickSimulator, spec: AccountSpec) -> None:
        super().__init__(sim, spec)
        cfg = sim.config
        tz = ZoneInfo(cfg.account_timezone)
        self.second = SlidingWindowLimiter(cfg.per_second, 1.0)
        self.daily = DailyCounter(cfg.daily_limit, sim.clock.now, tz=tz)
        self.limiters = (self.second, self.daily)
        self.data = {"PF": FakeData(f"{self.seed}-pf"), "PJ": FakeData(f"{self.seed}-pj"), "vendas": FakeData(f"{self.seed}-vendas")}
        self.stores = {"clientes": RecordStore("clientes", first_id=FIRST_CLIENTE_ID), "vendas": RecordStore("vendas", first_id=FIRST_VENDA_ID)}
        self.next_codigo = 1
        end = int(sim.reference.timestamp() * 1000)
        start = end - int(cfg.history_days * DAY_MS)
        for tipo, entity in (("PF", "contacts"), ("PJ", "companies")):
            rng = self.data[tipo].rng
            for _ in range(self.count_of(sim, entity)):
                created = seeded_time(rng, start, end)
                sim.insert(self, "clientes", sim.seed_cliente(self, tipo), created, seeded_time(rng, created, end))
        rng = self.data["vendas"].rng
        for _ in range(self.count_of(sim, "deals")):
            created = seeded_time(rng, start, end)
            sim.insert(self, "vendas", sim.seed_venda(self), created, seeded_time(rng, created, end))


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

    @property
    def clientes(self) -> dict[int, dict[str, Any]]:
        """The default account's clientes as stored (id -> values)."""
        return {r.id: r.values for r in self.account().stores["clientes"].select()}

    @property
    def vendas(self) -> dict[int, dict[str, Any]]:
        return {r.id: r.values for r in self.account().stores["vendas"].select()}

    def seed_cliente(self, store: Store, tipo: str) -> dict[str, Any]:
        data = store.data[tipo]
        if tipo == "PF":
            p = data.person()
            city, state, country = p["city"], p["state"], p["country"]
            values = {
                "tipo_pessoa": "PF",
                "nome": " ".join(x for x in (p["first_name"], p["last_name"]) if x),
                "cpf": p["document"] or "",
                "email": p["email"] or "",
                "telefone": p["phone"] or "",
                "celular": p["mobile"] or "",
                "data_nascimento": f"{data.below(1950, 2005)}-{data.below(1, 13):02d}-{data.below(1, 29):02d}" if data.rng.random() < 0.5 else "",
            }
        else:
            o = data.organization()
            city, state, country = o["city"], o["state"], o["country"]
            values = {
                "tipo_pessoa": "PJ",
                "nome": o["name"],
                "razao_social": o["name"],
                "cnpj": o["document"] or "",
                "email": f"contato@{o['domain']}" if o["domain"] else "",
                "telefone": o["phone"] or "",
                "celular": "",
                "inscricao_estadual": str(data.below(10**8, 10**9)) if data.rng.random() < 0.5 else "",
            }
        values["enderecos"] = [{"cep": f"{data.below(10000, 99999)}-{data.below(0, 1000):03d}", "logradouro": "Rua das Flores", "numero": str(data.below(1, 3000)),
                                "complemento": "", "bairro": "Centro", "cidade_id": str(data.below(1000, 6000)), "nome_cidade": city, "estado": state or "", "pais": country}]
        values["contatos"] = [{"nome": data.first_name(), "contato": data.phone(), "cargo": data.job_title() or "", "observacao": ""}] if data.rng.random() < 0.3 else []
        values["ativo"] = "1" if data.rng.random() < 0.95 else "0"
        return values

    def seed_venda(self, store: Store) -> dict[str, Any]:
        data, clientes = store.data["vendas"], store.stores["clientes"]
        rng = data.rng
        deal = data.deal()
        amount = deal["amount"] or "0.00"
        cliente = None
        for _ in range(5):  # ids are dense; a few tries find a live one without listing them all
            cliente = clientes.get(FIRST_CLIENTE_ID + int(rng.random() * max(clientes.next_number - FIRST_CLIENTE_ID, 1)))
            if cliente is not None:
                break
        situacao = data.pick(SITUACOES)
        vendedor = data.pick(VENDEDORES)
        loja = data.pick(LOJAS)
        day = date.fromtimestamp(self.reference_ms / 1000 - rng.random() * 120 * 86400)
        return {
            "cliente_id": str(cliente["id"]) if cliente else "",
            "nome_cliente": cliente["nome"] if cliente else "",
            "vendedor_id": vendedor[0], "nome_vendedor": vendedor[1],
            "data": day.isoformat(),
            "situacao_id": situacao[0], "nome_situacao": situacao[1],
            "loja_id": loja[0], "nome_loja": loja[1],
            "valor_frete": "0.00",
            "condicao_pagamento": "a_vista",
            "observacoes": deal["name"],
            "produtos": [{"produto_id": str(data.below(700, 800)), "nome_produto": deal["name"].split(" - ")[0], "quantidade": "1.00",
                          "valor_venda": amount, "valor_desconto": "0.00", "valor_total": amount}],
            "valor_total": amount,
        }

    def insert(self, account: Store, kind: str, values: dict[str, Any], created_ms: int, modified_ms: int) -> Record:
        store = account.stores[kind]
        record_id = store.allocate_id()
        if kind == "clientes":
            return store.insert({"id": record_id, **values, "observacoes": values.get("observacoes", "")}, created_ms, modified_ms, record_id=record_id)
        codigo = values.get("codigo") or str(account.next_codigo)
        account.next_codigo += 1
        return store.insert({"id": record_id, **values, "codigo": codigo}, created_ms, modified_ms, record_id=record_id)

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
        data: dict[str, Any] = {"mensagem": message}
        if extra:
            data["erros"] = dict(extra)
        return Response.json(status, {"code": status, "status": "error", "data": data}, headers)

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

    def _render_cliente(self, row: Record) -> dict[str, Any]:
        n = self._num
        out: dict[str, Any] = {
            "id": n(str(row["id"])),
            "tipo_pessoa": row["tipo_pessoa"],
            "nome": row.get("nome", ""),
            "razao_social": row.get("razao_social", ""),
            "cnpj": row.get("cnpj", ""),
            "inscricao_estadual": row.get("inscricao_estadual", ""),
            "inscricao_municipal": "",
            "cpf": row.get("cpf", ""),
            "rg": "",
            "data_nascimento": row.get("data_nascimento", ""),
            "telefone": row.get("telefone", ""),
            "celular": row.get("celular", ""),
            "fax": "",
            "email": row.get("email", ""),
            "ativo": n(row.get("ativo", "1")),
            "usuario_id": n("12"),
            "loja_id": n(LOJAS[0][0]),
            "contatos": [{"contato": dict(c)} for c in row.get("contatos", [])],
            "enderecos": [{"endereco": {k: (n(v) if k == "cidade_id" else v) for k, v in e.items()}} for e in row.get("enderecos", [])],
        }
        if self.config.clientes_observacoes:
            out["observacoes"] = row.get("observacoes", "")
        return out

    def _render_venda(self, row: Record) -> dict[str, Any]:
        n = self._num
        out: dict[str, Any] = {"id": n(str(row["id"])), "codigo": n(row["codigo"])}
        for key in ("cliente_id", "nome_cliente", "vendedor_id", "nome_vendedor", "data", "situacao_id", "nome_situacao",
                    "valor_total", "valor_frete", "condicao_pagamento", "loja_id", "nome_loja", "observacoes"):
            value = row.get(key, "")
            out[key] = n(value) if key in ("cliente_id", "vendedor_id", "situacao_id", "valor_total", "valor_frete", "loja_id") else value
        out["produtos"] = [{"produto": {k: (n(v) if k != "nome_produto" else v) for k, v in p.items()}} for p in row.get("produtos", [])]
        out["servicos"] = []
        out["pagamentos"] = []
        out["parcelas"] = [{"parcela": {"data_vencimento": row.get("data", ""), "valor": n(row.get("valor_total", "0.00")), "forma_pagamento_id": n("1"), "situacao": "pendente"}}]
        return out

    def _render(self, kind: str, row: Record) -> dict[str, Any]:
        out = self._render_cliente(row) if kind == "clientes" else self._render_venda(row)
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

    def _matches(self, kind: str, row: Record, request: Request) -> bool:
        q = request.query_value
        if kind == "clientes":
            tipo = q("tipo_pessoa")
            if tipo and self.config.honour_tipo_pessoa_filter and row["tipo_pessoa"] != tipo.upper():
                return False
            if q("nome") and q("nome").casefold() not in str(row.get("nome", "")).casefold():
                return False
            if q("cpf_cnpj") and _digits(q("cpf_cnpj")) not in (_digits(row.get("cpf")), _digits(row.get("cnpj"))):
                return False
            if q("email") and q("email").strip().casefold() != str(row.get("email", "")).strip().casefold():
                return False
            if q("telefone") and _digits(q("telefone")) not in (_digits(row.get("telefone")), _digits(row.get("celular"))):
                return False
            if q("ativo") not in (None, "") and q("ativo") != row.get("ativo"):
                return False
            return True
        if q("data_inicio") and row.get("data", "") < q("data_inicio"):
            return False
        if q("data_fim") and row.get("data", "") > q("data_fim"):
            return False
        for name in ("cliente_id", "codigo", "situacao_id", "loja_id"):
            if q(name) not in (None, "") and str(row.get(name, "")) != q(name):
                return False
        return True

    @api("GET", "/clientes", name="GET /clientes")
    @api("GET", "/vendas", name="GET /vendas")
    def _list(self, request: Request) -> Response:
        kind = _kind(request)
        cfg = self.config
        pagina = self._int_param(request, "pagina", 1)
        size = cfg.page_size
        if cfg.limite_honoured and request.query_value("limite"):
            size = capped(self._int_param(request, "limite", cfg.page_size), cfg.limite_max, cfg.limite_oversize,
                          lambda: ApiError(self._error(400, f"O limite máximo por página é {cfg.limite_max}")))
        rows = [row for row in request.account.stores[kind].select() if self._matches(kind, row, request)]
        order = request.query_value("ordenacao")
        descending = (request.query_value("direcao") or "asc").lower() == "desc"
        if cfg.honour_sorting and order in SORTABLE[kind]:
            key = {"cadastrado_em": "_created", "modificado_em": "_modified"}.get(order, order)
            numeric = key in ("id", "_created", "_modified", "codigo")
            def field(r: Record) -> Any:
                return r.created if key == "_created" else r.updated if key == "_modified" else r.get(key, "")

            rows.sort(key=lambda r: (int(field(r)) if numeric and str(field(r)).isdigit() else str(field(r)).casefold(), r.id), reverse=descending)
        total = len(rows)
        pages = max(1, math.ceil(total / size))
        chunk = rows[(pagina - 1) * size : pagina * size]
        query = {k: v[-1] for k, v in request.query.items() if k != "pagina"}

        def url(page: int | None) -> str | None:
            return None if page is None else f"{self.base_url}/{kind}?{urlencode({**query, 'pagina': page})}"

        next_page = pagina + 1 if pagina < pages else None
        previous = pagina - 1 if pagina > 1 else None
        n = self._num
        meta: dict[str, Any] = {"total_registros": n(str(total))}
        if cfg.meta_total_paginas:
            meta["total_paginas"] = n(str(pages))
        meta[cfg.meta_page_count_key] = n(str(len(chunk)))
        meta.update({
            "pagina_atual": n(str(pagina)),
            "limite_por_pagina": n(str(size)),
            "pagina_anterior": n(str(previous)) if previous else None,
            "url_anterior": url(previous),
            "proxima_pagina": n(str(next_page)) if next_page else None,
            "proxima_url": url(next_page),
        })
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
    def _create(self, request: Request) -> Response:
        kind, body = _kind(request), self.body_object(request)
        values = self._cliente_values(request.account, body, None) if kind == "clientes" else self._venda_values(request.account, body, None)
        return self._ok(self._render(kind, self.write(request.account.stores[kind], None, values, self.clock.now_ms())), 200)

    @api("PUT", "/clientes/{id}", name="PUT /clientes/{id}")
    @api("PUT", "/vendas/{id}", name="PUT /vendas/{id}")
    def _update(self, request: Request) -> Response:
        kind, row, body = _kind(request), self._row(request), self.body_object(request)
        values = self._cliente_values(request.account, body, row) if kind == "clientes" else self._venda_values(request.account, body, row)
        self.write(request.account.stores[kind], row, values, self.clock.now_ms())
        return self._ok(self._render(kind, row))

    @staticmethod
    def _unwrap(items: Any, wrapper: str) -> list[dict[str, Any]]:
        """``[{"endereco": {...}}]`` or plain ``[{...}]`` -> list of plain dicts."""
        out = []
        for item in items or []:
            if isinstance(item, dict):
                inner = item.get(wrapper, item)
                if isinstance(inner, dict):
                    out.append({k: "" if v is None else str(v) for k, v in inner.items()})
        return out

    def _cliente_values(self, account: Store, body: Mapping[str, Any], current: Record | None) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        merged = dict(current.values if current else {})
        for key in ("tipo_pessoa", "nome", "razao_social", "cnpj", "cpf", "email", "telefone", "celular", "data_nascimento",
                    "inscricao_estadual", "ativo", "observacoes"):
            if key in body:
                merged[key] = "" if body[key] is None else str(body[key])
        if "enderecos" in body:
            merged["enderecos"] = self._unwrap(body["enderecos"], "endereco")
        if "contatos" in body:
            merged["contatos"] = self._unwrap(body["contatos"], "contato")
        if not self.config.clientes_observacoes:
            merged["observacoes"] = ""
        merged["tipo_pessoa"] = str(merged.get("tipo_pessoa", "")).upper()
        if merged["tipo_pessoa"] not in TIPOS_PESSOA:
            errors.setdefault("tipo_pessoa", []).append("O campo tipo_pessoa é obrigatório e deve ser PF, PJ ou ES.")
        if not str(merged.get("nome", "")).strip():
            errors.setdefault("nome", []).append("O campo nome é obrigatório.")
        if current is None and str(body.get("ativo", "")) not in ("0", "1"):
            errors.setdefault("ativo", []).append("O campo ativo é obrigatório (1 ou 0).")
        email = str(merged.get("email", "")).strip()
        if email and not _EMAIL_RE.match(email):
            errors.setdefault("email", []).append("O e-mail informado é inválido.")
        if merged.get("cpf") and not is_valid_cpf(merged["cpf"]):
            errors.setdefault("cpf", []).append("O CPF informado é inválido.")
        if merged.get("cnpj") and not is_valid_cnpj(merged["cnpj"]):
            errors.setdefault("cnpj", []).append("O CNPJ informado é inválido.")
        if self.config.unique_documents:
            for key in ("cpf", "cnpj"):
                doc = _digits(merged.get(key))
                if doc and any(_digits(r.get(key)) == doc and r.id != merged.get("id") for r in account.stores["clientes"].select()):
                    errors.setdefault(key, []).append(f"Já existe um cliente cadastrado com este {key.upper()}.")
        return self._checked(merged, errors, enderecos=[], contatos=[])

    def _venda_values(self, account: Store, body: Mapping[str, Any], current: Record | None) -> dict[str, Any]:
        cfg = self.config
        errors: dict[str, list[str]] = {}
        merged = dict(current.values if current else {})
        for key in ("cliente_id", "vendedor_id", "data", "situacao_id", "nome_situacao", "valor_frete", "condicao_pagamento", "loja_id", "observacoes", "valor_total", "codigo"):
            if key in body and (key != "codigo" or current is None):
                merged[key] = "" if body[key] is None else str(body[key])
        if "produtos" in body:
            merged["produtos"] = self._unwrap(body["produtos"], "produto")
        if not _DATE_RE.match(str(merged.get("data", ""))):
            errors.setdefault("data", []).append("O campo data é obrigatório (AAAA-MM-DD).")
        cliente_id = str(merged.get("cliente_id", ""))
        if cliente_id:
            cliente = account.stores["clientes"].get(int(cliente_id)) if cliente_id.isdigit() else None
            if cliente is None:
                errors.setdefault("cliente_id", []).append("Cliente não encontrado.")
            else:
                merged["nome_cliente"] = cliente["nome"]
        elif cfg.vendas_require_cliente:
            errors.setdefault("cliente_id", []).append("O campo cliente_id é obrigatório.")
        situacoes = dict(SITUACOES)
        if merged.get("situacao_id"):
            if merged["situacao_id"] not in situacoes:
                errors.setdefault("situacao_id", []).append("Situação não encontrada.")
            else:
                merged["nome_situacao"] = situacoes[merged["situacao_id"]]
        elif merged.get("nome_situacao"):
            by_name = {name.casefold(): i for i, name in SITUACOES}
            found = by_name.get(str(merged["nome_situacao"]).casefold())
            if found is None:
                errors.setdefault("nome_situacao", []).append("Situação não encontrada.")
            else:
                merged["situacao_id"] = found
        else:
            merged["situacao_id"], merged["nome_situacao"] = SITUACOES[0]
        vendedores = dict(VENDEDORES)
        merged["vendedor_id"] = merged.get("vendedor_id") or VENDEDORES[0][0]
        merged["nome_vendedor"] = vendedores.get(merged["vendedor_id"], "")
        merged["loja_id"] = merged.get("loja_id") or LOJAS[0][0]
        merged["nome_loja"] = dict(LOJAS).get(merged["loja_id"], "")
        produtos = merged.get("produtos") or []
        if not produtos and cfg.vendas_require_produtos:
            errors.setdefault("produtos", []).append("Informe ao menos um produto.")
        total = Decimal(0)
        for position, produto in enumerate(produtos):
            try:
                quantidade = Decimal(produto.get("quantidade") or "1")
                valor = Decimal(produto.get("valor_venda") or produto.get("valor_unitario") or "0")
                desconto = Decimal(produto.get("valor_desconto") or "0")
            except InvalidOperation:
                errors.setdefault(f"produtos.{position}", []).append("Valores do produto inválidos.")
                continue
            line = (quantidade * valor - desconto).quantize(Decimal("0.01"))
            produto["valor_total"] = format(line, "f")
            total += line
        if produtos:
            merged["valor_total"] = format(total.quantize(Decimal("0.01")), "f")
        else:
            try:
                merged["valor_total"] = format(Decimal(merged.get("valor_total") or "0").quantize(Decimal("0.01")), "f")
            except InvalidOperation:
                errors.setdefault("valor_total", []).append("Valor total inválido.")
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

    def new_values(self, account: Account, store: RecordStore, entity: str) -> dict[str, Any]:
        return self.seed_venda(account) if entity == "deals" else self.seed_cliente(account, TIPOS[entity])

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
            counts = {entity: self.count(entity) for entity in ENTITIES}
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
