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
Writes made by one request share one timestamp (the simulated now).
"""

from __future__ import annotations

import argparse
import math
import random
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from crm_pipelines.simulator.datagen import FakeData, is_valid_cnpj, is_valid_cpf
from crm_pipelines.simulator.ratelimit import DailyCounter, SlidingWindowLimiter
from crm_pipelines.simulator.server import (
    FaultConfig,
    InvalidJSONBody,
    Request,
    Response,
    Router,
    SimClock,
    SimulatorBase,
    parse_datetime,
)

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
class GestaoClickSimConfig:
    """Everything the GestaoClick simulator can be told; every field has a working default.

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

    seed: int = 1
    contacts: int = 100
    companies: int = 20
    deals: int = 40
    history_days: float = 30.0
    reference_time: datetime | None = None
    clock_start: datetime | None = None
    freeze_clock: bool = False
    credentials: tuple[tuple[str, str], ...] = ((DEFAULT_ACCESS_TOKEN, DEFAULT_SECRET_TOKEN),)

    rate_limits_enabled: bool = True
    per_second: int = 3
    daily_limit: int | None = 30_000
    account_timezone: str = "America/Sao_Paulo"
    retry_after_on_429: bool = False

    page_size: int = 20
    limite_honoured: bool = False
    limite_max: int = 100
    limite_oversize: str = "clamp"
    meta_page_count_key: str = "total_registros_pagina"
    meta_total_paginas: bool = True
    numbers_as_strings: bool = True
    record_timestamps: bool = False
    error_style: str = "envelope"
    honour_tipo_pessoa_filter: bool = True
    honour_sorting: bool = True
    clientes_observacoes: bool = True
    vendas_require_cliente: bool = True
    vendas_require_produtos: bool = True
    unique_documents: bool = False
    faults: FaultConfig = field(default_factory=FaultConfig)

    def validate(self) -> None:
        for name in ("contacts", "companies", "deals"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.page_size < 1 or self.limite_max < 1 or self.per_second < 1:
            raise ValueError("page_size, limite_max and per_second must be >= 1")
        if self.limite_oversize not in ("clamp", "reject"):
            raise ValueError("limite_oversize must be 'clamp' or 'reject'")
        if self.meta_page_count_key not in ("total_registros_pagina", "total_da_pagina"):
            raise ValueError("meta_page_count_key must be 'total_registros_pagina' or 'total_da_pagina'")
        if self.error_style not in ("envelope", "message", "empty"):
            raise ValueError("error_style must be 'envelope', 'message' or 'empty'")
        if not self.credentials or any(len(pair) != 2 or not all(pair) for pair in self.credentials):
            raise ValueError("credentials must be non-empty (access token, secret token) pairs")
        self.faults.validate()


class _ApiError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", str(value or ""))


class GestaoClickSimulator(SimulatorBase):
    """GestaoClick over real HTTP. See the module docstring and :class:`GestaoClickSimConfig`.

    Python-side API for tests: :meth:`records`, :meth:`count`, :meth:`create`, :meth:`modify`,
    :meth:`delete`, :meth:`set_fields`, plus ``clock``, ``faults``, ``stats``,
    :meth:`reset_stats`, :meth:`fail_next` and :meth:`reset_rate_limits` from the base class.
    """

    provider = "gestaoclick"
    server_name = "gestaoclick-simulator"

    def __init__(self, config: GestaoClickSimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or GestaoClickSimConfig()
        self.config.validate()
        cfg = self.config
        clock = SimClock(cfg.clock_start or cfg.reference_time, frozen=cfg.freeze_clock)
        self._tz = ZoneInfo(cfg.account_timezone)
        self._lock = threading.RLock()
        self._limit_lock = threading.Lock()
        self._accounts = {access: secret for access, secret in cfg.credentials}
        self._second = SlidingWindowLimiter(cfg.per_second, 1.0)
        self._daily = DailyCounter(cfg.daily_limit, clock.now, tz=self._tz)
        self._mutation_rng = random.Random(f"{cfg.seed}-mutations")
        super().__init__(host=host, port=port, clock=clock, faults=cfg.faults)
        reference = cfg.reference_time or clock.now()
        self.reference_ms = int(reference.timestamp() * 1000)
        self._data = {"PF": FakeData(f"{cfg.seed}-pf"), "PJ": FakeData(f"{cfg.seed}-pj"), "vendas": FakeData(f"{cfg.seed}-vendas")}
        self.clientes: dict[int, dict[str, Any]] = {}
        self.vendas: dict[int, dict[str, Any]] = {}
        self._next_cliente = FIRST_CLIENTE_ID
        self._next_venda = FIRST_VENDA_ID
        self._next_codigo = 1
        start_ms = self.reference_ms - int(cfg.history_days * DAY_MS)
        for tipo, count in (("PF", cfg.contacts), ("PJ", cfg.companies)):
            rng = self._data[tipo].rng
            for _ in range(count):
                created = start_ms + int(rng.random() * (self.reference_ms - start_ms + 1))
                self._insert_cliente(self._seed_cliente(tipo), created, created + int(rng.random() * (self.reference_ms - created + 1)))
        rng = self._data["vendas"].rng
        for _ in range(cfg.deals):
            created = start_ms + int(rng.random() * (self.reference_ms - start_ms + 1))
            self._insert_venda(self._seed_venda(), created, created + int(rng.random() * (self.reference_ms - created + 1)))

    # ---- data generation ------------------------------------------------------------------

    def _seed_cliente(self, tipo: str) -> dict[str, Any]:
        data = self._data[tipo]
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

    def _seed_venda(self) -> dict[str, Any]:
        data = self._data["vendas"]
        rng = data.rng
        deal = data.deal()
        amount = deal["amount"] or "0.00"
        cliente = None
        for _ in range(5):  # ids are dense; a few tries find a live one without listing them all
            cliente = self.clientes.get(FIRST_CLIENTE_ID + int(rng.random() * max(self._next_cliente - FIRST_CLIENTE_ID, 1)))
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

    def _insert_cliente(self, values: dict[str, Any], created_ms: int, modified_ms: int) -> dict[str, Any]:
        row = {"id": self._next_cliente, **values, "_created": created_ms, "_modified": modified_ms}
        self._next_cliente += 1
        row.setdefault("observacoes", "")
        self.clientes[row["id"]] = row
        return row

    def _insert_venda(self, values: dict[str, Any], created_ms: int, modified_ms: int) -> dict[str, Any]:
        codigo = values.get("codigo") or str(self._next_codigo)
        self._next_codigo += 1
        row = {"id": self._next_venda, **values, "codigo": codigo, "_created": created_ms, "_modified": modified_ms}
        self._next_venda += 1
        self.vendas[row["id"]] = row
        return row

    # ---- routes ---------------------------------------------------------------------------

    def build_routes(self, router: Router) -> None:
        for kind in ("clientes", "vendas"):
            router.add("GET", rf"/{kind}", self._api(lambda r, k=kind: self._list(k, r)), name=f"GET /{kind}")
            router.add("POST", rf"/{kind}", self._api(lambda r, k=kind: self._create(k, r)), name=f"POST /{kind}")
            item = rf"/{kind}/(?P<id>[^/]+)"
            router.add("GET", item, self._api(lambda r, k=kind: self._get(k, r)), name=f"GET /{kind}/{{id}}")
            router.add("PUT", item, self._api(lambda r, k=kind: self._update(k, r)), name=f"PUT /{kind}/{{id}}")
            router.add("DELETE", item, self._api(lambda r, k=kind: self._delete(k, r)), name=f"DELETE /{kind}/{{id}}")
        router.add("GET", r"/situacoes_vendas", self._api(self._situacoes), name="GET /situacoes_vendas")

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

    def not_found_response(self, request: Request) -> Response:
        return self._error(404, f"Rota não encontrada: {request.method} {request.path}")

    def method_not_allowed_response(self, request: Request) -> Response:
        return self._error(405, f"Método {request.method} não permitido")

    def internal_error_response(self, request: Request) -> Response:
        return self._error(500, "Erro interno do servidor")

    def fault_response(self, status: int, request: Request) -> Response:
        if status == 429:
            return self._too_many("SECONDLY", 1.0)
        return self._error(status, {502: "Bad Gateway", 503: "Serviço temporariamente indisponível", 504: "Gateway Timeout"}.get(status, f"Erro {status}"))

    def _too_many(self, policy: str, retry_after: float) -> Response:
        message = "Limite diário de requisições excedido" if policy == "DAILY" else "Limite de requisições por segundo excedido"
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if self.config.retry_after_on_429 else None
        return self._error(429, message, headers=headers)

    def _api(self, handler: Any) -> Any:
        def wrapped(request: Request) -> Response:
            account = self._authenticate(request)
            if account is None:
                return self._error(401, "Token de acesso inválido ou não informado")
            rejection = self._gate(account)
            if rejection is not None:
                return rejection
            try:
                with self._lock:
                    return handler(request)
            except _ApiError as exc:
                return exc.response
            except InvalidJSONBody as exc:
                return self._error(400, f"JSON inválido: {exc}")

        return wrapped

    def _authenticate(self, request: Request) -> str | None:
        access = (request.header("access-token") or "").strip()
        secret = (request.header("secret-access-token") or "").strip()
        if not access or self._accounts.get(access) != secret:
            return None
        return access

    def _gate(self, account: str) -> Response | None:
        if not self.config.rate_limits_enabled:
            return None
        with self._limit_lock:
            if self._daily.remaining(account) == 0:
                self.stats_recorder.record_rate_limited("DAILY")
                return self._too_many("DAILY", self._daily.seconds_until_reset())
            decision = self._second.try_acquire(account)
            if not decision.allowed:
                self.stats_recorder.record_rate_limited("SECONDLY")
                return self._too_many("SECONDLY", decision.retry_after_s)
            self._daily.try_acquire(account)
        return None

    def reset_rate_limits(self) -> None:
        self._second.reset()
        self._daily.reset()

    # ---- rendering ------------------------------------------------------------------------

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
        return datetime.fromtimestamp(ms / 1000, tz=self._tz).strftime("%Y-%m-%d %H:%M:%S")

    def _render_cliente(self, row: Mapping[str, Any]) -> dict[str, Any]:
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
        if self.config.record_timestamps:
            out["cadastrado_em"] = self._stamp(row["_created"])
            out["modificado_em"] = self._stamp(row["_modified"])
        return out

    def _render_venda(self, row: Mapping[str, Any]) -> dict[str, Any]:
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
        if self.config.record_timestamps:
            out["cadastrado_em"] = self._stamp(row["_created"])
            out["modificado_em"] = self._stamp(row["_modified"])
        return out

    def _render(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
        return self._render_cliente(row) if kind == "clientes" else self._render_venda(row)

    @staticmethod
    def _ok(payload: Any, status: int = 200) -> Response:
        return Response.json(status, {"code": status, "status": "success", "data": payload})

    # ---- lists ----------------------------------------------------------------------------

    def _int_param(self, request: Request, name: str, default: int) -> int:
        raw = request.query_value(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _ApiError(self._error(400, f"Parâmetro {name} inválido: {raw!r}")) from None
        if value < 1:
            raise _ApiError(self._error(400, f"Parâmetro {name} deve ser maior que zero"))
        return value

    def _matches(self, kind: str, row: Mapping[str, Any], request: Request) -> bool:
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

    def _list(self, kind: str, request: Request) -> Response:
        cfg = self.config
        pagina = self._int_param(request, "pagina", 1)
        size = cfg.page_size
        if cfg.limite_honoured and request.query_value("limite"):
            size = self._int_param(request, "limite", cfg.page_size)
            if size > cfg.limite_max:
                if cfg.limite_oversize == "reject":
                    raise _ApiError(self._error(400, f"O limite máximo por página é {cfg.limite_max}"))
                size = cfg.limite_max
        table = self.clientes if kind == "clientes" else self.vendas
        rows = [row for row in table.values() if self._matches(kind, row, request)]
        order = request.query_value("ordenacao")
        descending = (request.query_value("direcao") or "asc").lower() == "desc"
        if cfg.honour_sorting and order in SORTABLE[kind]:
            key = {"cadastrado_em": "_created", "modificado_em": "_modified"}.get(order, order)
            numeric = key in ("id", "_created", "_modified", "codigo")
            rows.sort(key=lambda r: (int(r[key]) if numeric and str(r[key]).isdigit() else str(r.get(key, "")).casefold(), r["id"]), reverse=descending)
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

    def _situacoes(self, request: Request) -> Response:
        return self._ok([{"id": self._num(i), "nome": name, "padrao": self._num("1" if i == SITUACOES[0][0] else "0")} for i, name in SITUACOES])

    # ---- single records -------------------------------------------------------------------

    def _row(self, kind: str, request: Request) -> dict[str, Any]:
        raw = request.params["id"]
        table = self.clientes if kind == "clientes" else self.vendas
        row = table.get(int(raw)) if raw.isdigit() else None
        if row is None:
            raise _ApiError(self._error(404, "Registro não encontrado"))
        return row

    def _get(self, kind: str, request: Request) -> Response:
        return self._ok(self._render(kind, self._row(kind, request)))

    def _delete(self, kind: str, request: Request) -> Response:
        row = self._row(kind, request)
        (self.clientes if kind == "clientes" else self.vendas).pop(row["id"])
        return self._ok({"mensagem": "Registro excluído com sucesso"})

    def _body(self, request: Request) -> dict[str, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise _ApiError(self._error(400, "O corpo da requisição deve ser um objeto JSON"))
        return body

    def _create(self, kind: str, request: Request) -> Response:
        body = self._body(request)
        now = self.clock.now_ms()
        if kind == "clientes":
            values = self._cliente_values(body, None)
            row = self._insert_cliente(values, now, now)
        else:
            values = self._venda_values(body, None)
            row = self._insert_venda(values, now, now)
        return self._ok(self._render(kind, row), 200)

    def _update(self, kind: str, request: Request) -> Response:
        row = self._row(kind, request)
        body = self._body(request)
        values = self._cliente_values(body, row) if kind == "clientes" else self._venda_values(body, row)
        row.update(values)
        row["_modified"] = self.clock.now_ms()
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

    def _cliente_values(self, body: Mapping[str, Any], current: Mapping[str, Any] | None) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        merged = dict(current or {})
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
                if doc and any(_digits(r.get(key)) == doc and r["id"] != merged.get("id") for r in self.clientes.values()):
                    errors.setdefault(key, []).append(f"Já existe um cliente cadastrado com este {key.upper()}.")
        if errors:
            raise _ApiError(self._error(422, "Erro de validação: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), errors))
        merged.setdefault("enderecos", [])
        merged.setdefault("contatos", [])
        return {k: v for k, v in merged.items() if k not in ("id", "_created", "_modified")}

    def _venda_values(self, body: Mapping[str, Any], current: Mapping[str, Any] | None) -> dict[str, Any]:
        cfg = self.config
        errors: dict[str, list[str]] = {}
        merged = dict(current or {})
        for key in ("cliente_id", "vendedor_id", "data", "situacao_id", "nome_situacao", "valor_frete", "condicao_pagamento", "loja_id", "observacoes", "valor_total", "codigo"):
            if key in body and (key != "codigo" or current is None):
                merged[key] = "" if body[key] is None else str(body[key])
        if "produtos" in body:
            merged["produtos"] = self._unwrap(body["produtos"], "produto")
        if not _DATE_RE.match(str(merged.get("data", ""))):
            errors.setdefault("data", []).append("O campo data é obrigatório (AAAA-MM-DD).")
        cliente_id = str(merged.get("cliente_id", ""))
        if cliente_id:
            cliente = self.clientes.get(int(cliente_id)) if cliente_id.isdigit() else None
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
        if errors:
            raise _ApiError(self._error(422, "Erro de validação: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), errors))
        merged.setdefault("valor_frete", "0.00")
        merged.setdefault("condicao_pagamento", "a_vista")
        merged.setdefault("observacoes", "")
        return {k: v for k, v in merged.items() if k not in ("id", "_created", "_modified")}

    # ---- Python-side API for tests ----------------------------------------------------------

    def _rows(self, entity: str) -> dict[int, dict[str, Any]]:
        if entity == "deals":
            return self.vendas
        if entity not in TIPOS:
            raise ValueError(f"unknown entity {entity!r}; expected one of {ENTITIES}")
        tipos = ("PF", "ES") if entity == "contacts" else ("PJ",)
        return {i: r for i, r in self.clientes.items() if r["tipo_pessoa"] in tipos}

    def records(self, entity: str) -> dict[str, dict[str, Any]]:
        """id -> API-shaped record, for ``contacts`` (clientes PF/ES), ``companies`` (PJ) or ``deals``."""
        kind = "vendas" if entity == "deals" else "clientes"
        with self._lock:
            return {str(i): self._render(kind, r) for i, r in self._rows(entity).items()}

    def count(self, entity: str) -> int:
        with self._lock:
            return len(self._rows(entity))

    def create(self, entity: str, n: int = 1) -> list[str]:
        """Create ``n`` generated records stamped with the simulated now; returns their ids."""
        with self._lock:
            now = self.clock.now_ms()
            if entity == "deals":
                return [str(self._insert_venda(self._seed_venda(), now, now)["id"]) for _ in range(n)]
            self._rows(entity)
            return [str(self._insert_cliente(self._seed_cliente(TIPOS[entity]), now, now)["id"]) for _ in range(n)]

    def modify(self, entity: str, n: int | None = None, ids: Iterable[str | int] | None = None, same_timestamp: bool = True) -> list[str]:
        """Change a field or two of ``n`` seeded-random records (or of ``ids``); one shared timestamp by default."""
        with self._lock:
            rows = self._rows(entity)
            chosen = [int(i) for i in ids] if ids is not None else self._mutation_rng.sample(sorted(rows), min(n or 1, len(rows)))
            now = self.clock.now_ms()
            for position, row_id in enumerate(chosen):
                row = rows.get(row_id)
                if row is None:
                    raise KeyError(f"{entity} {row_id} does not exist")
                self._change(entity, row)
                row["_modified"] = now if same_timestamp else now + position
            return [str(i) for i in chosen]

    def _change(self, entity: str, row: dict[str, Any]) -> None:
        rng = self._mutation_rng
        if entity == "deals":
            situacao = SITUACOES[rng.randrange(len(SITUACOES))]
            row["situacao_id"], row["nome_situacao"] = situacao
            amount = self._data["vendas"].amount()
            row["produtos"] = [dict(row["produtos"][0], valor_venda=amount, valor_total=amount, quantidade="1.00", valor_desconto="0.00")] if row.get("produtos") else []
            row["valor_total"] = amount
            return
        data = self._data[row["tipo_pessoa"] if row["tipo_pessoa"] in self._data else "PF"]
        phone = data.phone()
        row["telefone"] = phone if phone != row.get("telefone") else "(11) 3333-0000"
        if rng.random() < 0.5:
            row["nome"] = f"{row['nome']} Júnior" if not row["nome"].endswith("Júnior") else row["nome"][: -len(" Júnior")]

    def delete(self, entity: str, target: int | Iterable[str | int]) -> list[str]:
        """Delete ``target`` ids, or ``target`` seeded-random records when it is an int."""
        with self._lock:
            rows = self._rows(entity)
            chosen = self._mutation_rng.sample(sorted(rows), min(target, len(rows))) if isinstance(target, int) else [int(i) for i in target]
            table = self.vendas if entity == "deals" else self.clientes
            return [str(i) for i in chosen if table.pop(i, None) is not None]

    def set_fields(self, entity: str, record_id: str | int, **values: Any) -> dict[str, Any]:
        """Overwrite raw stored values of one record (no validation): to plant bad data."""
        with self._lock:
            table = self.vendas if entity == "deals" else self.clientes
            row = table[int(record_id)]
            row.update(values)
            row["_modified"] = self.clock.now_ms()
            return dict(row)

    def mutate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self.apply_mutation(spec, check_entity=self._rows)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            counts = {entity: len(self._rows(entity)) for entity in ENTITIES}
        cfg = self.config
        return {"records": counts, "rate_limits_enabled": cfg.rate_limits_enabled, "per_second": cfg.per_second,
                "daily_limit": cfg.daily_limit, "page_size": cfg.page_size, "limite_honoured": cfg.limite_honoured}

    # ---- command line ---------------------------------------------------------------------

    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--contacts", type=int, default=1000, help="clientes PF")
        parser.add_argument("--companies", type=int, default=100, help="clientes PJ")
        parser.add_argument("--deals", type=int, default=200, help="vendas")
        parser.add_argument("--secret", action="append", help="secret-access-token paired with each --token")
        parser.add_argument("--reference-time", default=None, help="ISO-8601 instant the seeded data ends at")
        parser.add_argument("--per-second", type=int, default=3)
        parser.add_argument("--daily-limit", type=int, default=30_000, help="0 disables the daily limit")
        parser.add_argument("--no-rate-limits", action="store_true")
        parser.add_argument("--page-size", type=int, default=20)
        parser.add_argument("--limite-honoured", action="store_true", help="honour the limite parameter (up to --limite-max)")
        parser.add_argument("--limite-max", type=int, default=100)
        parser.add_argument("--record-timestamps", action="store_true", help="add cadastrado_em/modificado_em to records")

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> GestaoClickSimulator:
        tokens = args.token or [DEFAULT_ACCESS_TOKEN]
        secrets = args.secret or [DEFAULT_SECRET_TOKEN]
        if len(secrets) != len(tokens):
            raise SystemExit("give one --secret per --token")
        config = GestaoClickSimConfig(
            seed=args.seed, contacts=args.contacts, companies=args.companies, deals=args.deals,
            reference_time=parse_datetime(args.reference_time) if args.reference_time else None,
            credentials=tuple(zip(tokens, secrets)),
            per_second=args.per_second, daily_limit=args.daily_limit or None, rate_limits_enabled=not args.no_rate_limits,
            page_size=args.page_size, limite_honoured=args.limite_honoured, limite_max=args.limite_max,
            record_timestamps=args.record_timestamps, faults=args.faults,
        )
        return cls(config, host=args.host, port=args.port)


__all__ = ["DEFAULT_ACCESS_TOKEN", "DEFAULT_SECRET_TOKEN", "GestaoClickSimConfig", "GestaoClickSimulator", "SITUACOES"]
