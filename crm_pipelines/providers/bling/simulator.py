"""A local HTTP simulator of Bling API v3 (contatos and pedidos de venda).

Reproduces what ../shared/PROVIDERS.md §5 and §7 describe:

* OAuth 2.0: ``POST /Api/v3/oauth/token`` with HTTP Basic client auth and
  ``grant_type=refresh_token``; access tokens expire (6 h by default, simulated clock), refresh
  tokens rotate on every refresh; an expired or unknown token gets 401 ``invalid_token``.
* ``GET /Api/v3/contatos`` and ``GET /Api/v3/pedidos/vendas`` with ``pagina``/``limite`` (cap 100),
  answering ``{"data": [...]}`` only; ``dataAlteracaoInicial``/``dataAlteracaoFinal`` in local
  time (America/Sao_Paulo, ``YYYY-MM-DD HH:MM:SS`` or a date), inclusive, second precision;
  ``criterio=2`` lists excluded contatos; ``tipoPessoa``, ``numeroDocumento``, ``pesquisa``,
  ``idsContatos[]``, ``numerosLojas[]`` filters.
* Single-record ``GET``/``POST``/``PUT`` (``PATCH`` accepted too)/``DELETE``; no bulk writes.
* 3 requests per second and 120,000 per day per account; 429 with
  ``{"error": {"type": "TOO_MANY_REQUESTS", ...}}``; validation errors in the
  ``{"error": {type, message, description, fields: [...]}}`` envelope.
* Webhooks signed ``X-Bling-Signature-256: sha256=<hex HMAC-SHA256(client secret, raw body)>``,
  one event per delivery, retried.

Every unconfirmed fact ([?] in PROVIDERS.md) is a field of :class:`BlingSimConfig`.
"""

from __future__ import annotations

import argparse
import base64
import random
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from crm_pipelines.simulator.datagen import FakeData, format_cnpj, format_cpf, is_valid_cnpj, is_valid_cpf
from crm_pipelines.simulator.ratelimit import DailyCounter, SlidingWindowLimiter
from crm_pipelines.simulator.server import FaultConfig, Request, Response, Router, SimClock, SimulatorBase, json_dumps
from crm_pipelines.simulator.webhooks import WebhookEmitter

PREFIX = "/Api/v3"
DEFAULT_CLIENT_ID = "sim-bling-client"
DEFAULT_CLIENT_SECRET = "sim-bling-secret"
DEFAULT_REFRESH_TOKEN = "sim-bling-refresh-0"
LOCAL_TZ = ZoneInfo("America/Sao_Paulo")
LIST_ORDERS = ("id", "id_desc", "updated")
PAGE_CAP_MODES = ("clamp", "reject")
LIST_SHAPES = ("summary", "full")
ORDER_SITUATIONS = ((6, "Em aberto"), (9, "Atendido"), (12, "Cancelado"), (15, "Em andamento"))
CONTACT_TYPES = ((1, "Cliente"), (2, "Fornecedor"), (3, "Técnico"), (4, "Transportador"))
CONSUMIDOR_FINAL_ID = 1
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_DATE_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?$")


@dataclass
class BlingSimConfig:
    """Data, credentials, limits and the switches for unconfirmed behaviour."""

    seed: int = 1
    contacts: int = 100  #: contatos of tipo F
    companies: int = 20  #: contatos of tipo J
    deals: int = 30  #: pedidos de venda
    invalid_documents: int = 0  #: seeded contatos whose CPF/CNPJ has wrong check digits
    reference_time: datetime | None = None  #: seeded modification times end here (default: now)
    history_days: float = 365.0
    clock_start: datetime | None = None
    freeze_clock: bool = False
    #: OAuth app credentials and the tokens valid at start.
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    refresh_token: str = DEFAULT_REFRESH_TOKEN
    access_tokens: tuple[str, ...] = ()
    token_lifetime_s: float = 21_600.0  #: [?] 6 h
    rotate_refresh_token: bool = True  #: [S] each refresh returns a new refresh token, the old one dies
    token_calls_per_minute: int = 20  #: [S] more calls to /oauth/token in 60 s are refused
    #: Limits [S]: 3 per second, 120,000 per day (None disables the daily one).
    per_second: int = 3
    daily_limit: int | None = 120_000
    #: [?] 429 body ``limit``/``period`` keys present.
    limit_period_in_body: bool = True
    #: [?] ``limite`` above 100: "clamp" to 100 or "reject" with 400.
    page_max: int = 100
    page_cap_mode: str = "clamp"
    #: [?] order of list results: "id" (ascending), "id_desc", or "updated" (last change first).
    list_order: str = "id"
    #: [V SDK] list items are summaries; "full" answers complete records in lists [?].
    list_shape: str = "summary"
    #: [?] a deleted (excluded) contato gets a new dataAlteracao.
    delete_touches_modified: bool = True
    #: [S] date ranges wider than this are refused with 400.
    max_range_days: int = 366
    #: Webhooks: deliveries to this URL, one event per POST, retried.
    webhook_url: str | None = None
    webhook_company_id: str = "sim-company-1"
    webhook_max_attempts: int = 6
    webhook_retry_base_s: float = 0.2
    faults: FaultConfig = field(default_factory=FaultConfig)

    def validate(self) -> None:
        for name in ("contacts", "companies", "deals", "invalid_documents"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.list_order not in LIST_ORDERS:
            raise ValueError(f"list_order must be one of {LIST_ORDERS}")
        if self.page_cap_mode not in PAGE_CAP_MODES:
            raise ValueError(f"page_cap_mode must be one of {PAGE_CAP_MODES}")
        if self.list_shape not in LIST_SHAPES:
            raise ValueError(f"list_shape must be one of {LIST_SHAPES}")
        if self.per_second < 1 or self.page_max < 1:
            raise ValueError("per_second and page_max must be >= 1")
        self.faults.validate()


class _ApiError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def error_body(type_: str, message: str, description: str = "", fields: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type_, "message": message, "description": description}
    if fields is not None:
        body["fields"] = fields
    body.update(extra)
    return {"error": body}


def _error(status: int, type_: str, message: str, description: str = "", **kw: Any) -> _ApiError:
    return _ApiError(Response.json(status, error_body(type_, message, description, **kw)))


def local_text(epoch_s: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in America/Sao_Paulo."""
    return datetime.fromtimestamp(epoch_s, LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


def parse_local(text: str, *, end: bool) -> int:
    """A local date or date-time filter value as epoch seconds (a bare date covers its whole day)."""
    found = _DATE_RE.match(text.strip())
    if not found:
        raise ValueError(text)
    y, m, d, hh, mm, ss = found.groups()
    if hh is None:
        moment = datetime(int(y), int(m), int(d), 23 if end else 0, 59 if end else 0, 59 if end else 0, tzinfo=LOCAL_TZ)
    else:
        moment = datetime(int(y), int(m), int(d), int(hh), int(mm), int(ss or 0), tzinfo=LOCAL_TZ)
    return int(moment.timestamp())


class _Record:
    __slots__ = ("id", "kind", "body", "created_s", "updated_s", "deleted")

    def __init__(self, id_: int, kind: str, body: dict[str, Any], created_s: int, updated_s: int) -> None:
        self.id = id_
        self.kind = kind  # "contato" or "pedido"
        self.body = body
        self.created_s = created_s
        self.updated_s = updated_s
        self.deleted = False


class BlingSimulator(SimulatorBase):
    """Bling API v3 over real HTTP. Python-side helpers for tests: :meth:`records`, :meth:`count`,
    :meth:`create`, :meth:`modify`, :meth:`delete`, :meth:`insert_contato`, plus the base class's
    ``clock``, ``faults``, ``stats``, :meth:`fail_next` and :meth:`reset_rate_limits`."""

    provider = "bling"
    server_name = "bling-simulator"

    def __init__(self, config: BlingSimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or BlingSimConfig()
        self.config.validate()
        cfg = self.config
        clock = SimClock(cfg.clock_start or cfg.reference_time, frozen=cfg.freeze_clock)
        self._lock = threading.RLock()
        self._per_second = SlidingWindowLimiter(cfg.per_second, 1.0)
        self._daily = DailyCounter(cfg.daily_limit, clock.now, tz=LOCAL_TZ)
        self._token_calls = SlidingWindowLimiter(cfg.token_calls_per_minute, 60.0)
        super().__init__(host=host, port=port, clock=clock, faults=cfg.faults)
        self._access: dict[str, float] = {t: float("inf") for t in cfg.access_tokens}  # token -> expiry (sim epoch s)
        self._refresh = {cfg.refresh_token}
        self._token_serial = 0
        self.token_refreshes = 0
        self._rng = random.Random(f"{cfg.seed}-mutations")
        self._contatos: dict[int, _Record] = {}
        self._pedidos: dict[int, _Record] = {}
        self._next_id = {"contato": 17_000_000_001, "pedido": 21_000_000_001}
        self.webhooks: WebhookEmitter | None = None
        if cfg.webhook_url:
            self.webhooks = WebhookEmitter(
                cfg.webhook_url,
                sign=self._sign,
                build_body=lambda events: [(json_dumps(e), {}) for e in events],
                batch_max=1,
                max_attempts=cfg.webhook_max_attempts,
                retry_base_s=cfg.webhook_retry_base_s,
            )
        self._generate()

    # ---- data ----------------------------------------------------------------------------

    def _generate(self) -> None:
        cfg = self.config
        reference = cfg.reference_time or self.clock.now()
        end_s = int(reference.timestamp())
        start_s = end_s - int(cfg.history_days * 86400)
        data = FakeData(f"{cfg.seed}-bling")
        rng = data.rng
        cf = self._new_id("contato")
        self._contatos[cf] = _Record(cf, "contato", {"id": cf, "nome": "Consumidor Final", "codigo": "", "situacao": "A", "numeroDocumento": "", "tipo": "F",
                                                     "email": "", "telefone": "", "celular": "", "fantasia": "", "endereco": _address(None, None), "pais": {"nome": "Brasil"},
                                                     "tiposContato": [], "pessoasContato": [], "vendedor": {"id": 0}}, start_s, start_s)
        self.consumidor_final_id = cf
        bad = cfg.invalid_documents
        for kind, count in (("F", cfg.contacts), ("J", cfg.companies)):
            for _ in range(count):
                created = start_s + int(rng.random() * (end_s - start_s + 1))
                updated = created + int(rng.random() * (end_s - created + 1))
                body = self._seed_contato(data, kind)
                if bad > 0 and body["numeroDocumento"]:
                    digits = re.sub(r"\D", "", body["numeroDocumento"])
                    wrong = digits[:-1] + str((int(digits[-1]) + 1) % 10)
                    body["numeroDocumento"] = format_cpf(wrong) if kind == "F" else format_cnpj(wrong)
                    bad -= 1
                record_id = self._new_id("contato")
                body["id"] = record_id
                self._contatos[record_id] = _Record(record_id, "contato", body, created, updated)
        ids = [i for i in self._contatos if i != cf]
        for n in range(cfg.deals):
            created = start_s + int(rng.random() * (end_s - start_s + 1))
            updated = created + int(rng.random() * (end_s - created + 1))
            record_id = self._new_id("pedido")
            contato_id = ids[int(rng.random() * len(ids))] if ids else cf
            deal = data.deal()
            body = self._pedido_body(record_id, n + 1, contato_id, {
                "observacoes": deal["name"], "total": float(deal["amount"] or 0),
                "dataPrevista": (reference - timedelta(days=int(rng.random() * 200) - 100)).astimezone(LOCAL_TZ).strftime("%Y-%m-%d"),
                "situacao": {"id": data.pick(ORDER_SITUATIONS)[0]},
            })
            self._pedidos[record_id] = _Record(record_id, "pedido", body, created, updated)

    def _new_id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] += 1 + int(self._rng.random() * 3)
        return value

    @staticmethod
    def _seed_contato(data: FakeData, tipo: str) -> dict[str, Any]:
        if tipo == "F":
            p = data.person()
            nome = " ".join(x for x in (p["first_name"], p["last_name"]) if x)
            city, state, country = p["city"], p["state"], p["country"]
            doc, email, phone, mobile = p["document"] or "", p["email"] or "", p["phone"] or "", p["mobile"] or ""
            fantasia = ""
        else:
            o = data.organization()
            nome = o["name"]
            city, state, country = o["city"], o["state"], o["country"]
            doc, phone, mobile = o["document"] or "", o["phone"] or "", ""
            email = f"contato@{o['domain']}" if o["domain"] else ""
            fantasia = nome.split(" ")[0]
        return {
            "nome": nome, "codigo": "", "situacao": "A", "numeroDocumento": doc, "telefone": phone, "celular": mobile,
            "fantasia": fantasia, "tipo": tipo, "indicadorIe": 9, "ie": "", "rg": "", "orgaoEmissor": "", "email": email,
            "endereco": _address(city, state), "vendedor": {"id": 0},
            "dadosAdicionais": {"dataNascimento": "", "sexo": "", "naturalidade": ""},
            "financeiro": {"limiteCredito": 0, "condicaoPagamento": "", "categoria": {"id": 0}},
            "pais": {"nome": "Brasil" if country == "Brazil" else (country or "")},
            "tiposContato": [{"id": 1, "descricao": "Cliente"}], "pessoasContato": [],
        }

    @staticmethod
    def _pedido_body(record_id: int, numero: int, contato_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
        total = round(float(values.get("total") or 0), 2)
        return {
            "id": record_id, "numero": numero, "numeroLoja": values.get("numeroLoja") or "",
            "data": values.get("data") or values.get("dataPrevista") or "", "dataSaida": "", "dataPrevista": values.get("dataPrevista") or "",
            "totalProdutos": total, "total": total,
            "contato": {"id": contato_id, "nome": "", "tipoPessoa": "F", "numeroDocumento": ""},
            "situacao": {"id": int((values.get("situacao") or {}).get("id") or 6), "valor": 0},
            "loja": {"id": int((values.get("loja") or {}).get("id") or 0)},
            "itens": values.get("itens") or [{"id": 1, "codigo": "", "unidade": "UN", "quantidade": 1, "desconto": 0, "valor": total, "descricao": values.get("observacoes") or "", "produto": {"id": 0}}],
            "parcelas": [], "vendedor": {"id": 0}, "desconto": {"valor": 0}, "observacoes": values.get("observacoes") or "", "observacoesInternas": "",
        }

    # ---- routes --------------------------------------------------------------------------

    def build_routes(self, router: Router) -> None:
        add = router.add
        add("POST", PREFIX + r"/oauth/token", self._token, name="oauth token")
        add("GET", PREFIX + r"/contatos", self._api(self._list_contatos), name="list contatos")
        add("POST", PREFIX + r"/contatos", self._api(self._create_contato), name="create contato")
        add("GET", PREFIX + r"/contatos/consumidor-final", self._api(self._consumidor_final), name="consumidor final")
        add("GET", PREFIX + r"/contatos/(?P<id>\d+)", self._api(self._get_contato), name="get contato")
        add("PUT", PREFIX + r"/contatos/(?P<id>\d+)", self._api(self._update_contato), name="update contato")
        add("PATCH", PREFIX + r"/contatos/(?P<id>\d+)", self._api(self._update_contato), name="update contato (patch)")
        add("DELETE", PREFIX + r"/contatos/(?P<id>\d+)", self._api(self._delete_contato), name="delete contato")
        add("GET", PREFIX + r"/pedidos/vendas", self._api(self._list_pedidos), name="list pedidos")
        add("POST", PREFIX + r"/pedidos/vendas", self._api(self._create_pedido), name="create pedido")
        add("GET", PREFIX + r"/pedidos/vendas/(?P<id>\d+)", self._api(self._get_pedido), name="get pedido")
        add("PUT", PREFIX + r"/pedidos/vendas/(?P<id>\d+)", self._api(self._update_pedido), name="update pedido")
        add("PATCH", PREFIX + r"/pedidos/vendas/(?P<id>\d+)", self._api(self._update_pedido), name="update pedido (patch)")
        add("DELETE", PREFIX + r"/pedidos/vendas/(?P<id>\d+)", self._api(self._delete_pedido), name="delete pedido")

    def not_found_response(self, request: Request) -> Response:
        return Response.json(404, error_body("RESOURCE_NOT_FOUND", "Recurso não encontrado", f"O caminho {request.path} não existe."))

    def method_not_allowed_response(self, request: Request) -> Response:
        return Response.json(405, error_body("METHOD_NOT_ALLOWED", "Método não permitido", request.method))

    def internal_error_response(self, request: Request) -> Response:
        return Response.json(500, error_body("SERVER_ERROR", "Erro interno", "Tente novamente mais tarde."))

    def fault_response(self, status: int, request: Request) -> Response:
        if status == 429:
            return self._too_many("second")
        return Response.json(status, error_body("SERVER_ERROR", "Erro interno", "Serviço temporariamente indisponível."))

    def _too_many(self, period: str) -> Response:
        description = (
            "Limite de requisições por segundo atingido, tente novamente mais tarde." if period == "second"
            else "Limite de requisições diárias atingido, tente novamente amanhã."
        )
        extra = {"limit": self.config.per_second if period == "second" else self.config.daily_limit, "period": period} if self.config.limit_period_in_body else {}
        return Response.json(429, error_body("TOO_MANY_REQUESTS", "Limite de requisições atingido.", description, **extra))

    def _api(self, handler: Any) -> Any:
        def wrapped(request: Request) -> Response:
            unauthorized = self._authenticate(request)
            if unauthorized is not None:
                return unauthorized
            if not self._per_second.try_acquire("account").allowed:
                self.stats_recorder.record_rate_limited("second")
                return self._too_many("second")
            if not self._daily.try_acquire("account").allowed:
                self.stats_recorder.record_rate_limited("day")
                return self._too_many("day")
            try:
                with self._lock:
                    return handler(request)
            except _ApiError as exc:
                return exc.response

        return wrapped

    def _authenticate(self, request: Request) -> Response | None:
        header = request.header("Authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        expiry = self._access.get(token)
        if expiry is None or expiry <= self.clock.timestamp():
            return Response.json(401, error_body("invalid_token", "invalid_token", "The access token provided is invalid" if expiry is None else "The access token provided has expired"))
        return None

    def reset_rate_limits(self) -> None:
        self._per_second.reset()
        self._daily.reset()
        self._token_calls.reset()

    def describe(self) -> dict[str, Any]:
        return {"contatos": len(self._contatos), "pedidos": len(self._pedidos), "list_order": self.config.list_order, "list_shape": self.config.list_shape}

    # ---- OAuth ---------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        if not self._token_calls.try_acquire("token").allowed:
            return self._too_many("second")
        header = request.header("Authorization") or ""
        try:
            client_id, _, secret = base64.b64decode(header[6:].strip()).decode().partition(":") if header.lower().startswith("basic ") else ("", "", "")
        except ValueError:
            client_id, secret = "", ""
        if client_id != self.config.client_id or secret != self.config.client_secret:
            return Response.json(401, error_body("invalid_client", "invalid_client", "Client authentication failed"))
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "refresh_token":
            return Response.json(400, error_body("unsupported_grant_type", "unsupported_grant_type", "Only refresh_token is simulated"))
        with self._lock:
            if form.get("refresh_token") not in self._refresh:
                return Response.json(400, error_body("invalid_grant", "invalid_grant", "Invalid refresh token"))
            self._token_serial += 1
            self.token_refreshes += 1
            access = f"sim-bling-access-{self._token_serial}-{uuid.uuid4().hex[:8]}"
            self._access[access] = self.clock.timestamp() + self.config.token_lifetime_s
            refresh = form["refresh_token"]
            if self.config.rotate_refresh_token:
                self._refresh.discard(refresh)
                refresh = f"sim-bling-refresh-{self._token_serial}-{uuid.uuid4().hex[:8]}"
                self._refresh.add(refresh)
        return Response.json(200, {"access_token": access, "expires_in": int(self.config.token_lifetime_s), "token_type": "Bearer", "scope": "98309 5990556", "refresh_token": refresh})

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired (as after 6 h)."""
        with self._lock:
            now = self.clock.timestamp()
            for token in self._access:
                self._access[token] = now - 1

    @property
    def current_refresh_tokens(self) -> set[str]:
        return set(self._refresh)

    # ---- list helpers --------------------------------------------------------------------

    def _page_params(self, request: Request) -> tuple[int, int]:
        try:
            page = int(request.query_value("pagina", "1"))
            limit = int(request.query_value("limite", "100"))
        except ValueError:
            raise _error(400, "VALIDATION_ERROR", "Parâmetros inválidos", "pagina e limite devem ser números inteiros") from None
        if page < 1 or limit < 1:
            raise _error(400, "VALIDATION_ERROR", "Parâmetros inválidos", "pagina e limite devem ser maiores que zero")
        if limit > self.config.page_max:
            if self.config.page_cap_mode == "reject":
                raise _error(400, "VALIDATION_ERROR", "Parâmetros inválidos", f"O limite máximo por página é {self.config.page_max}",
                             fields=[{"code": 1, "msg": f"limite deve ser no máximo {self.config.page_max}", "element": "limite", "namespace": "PAGINACAO"}])
            limit = self.config.page_max
        return page, limit

    def _date_window(self, request: Request) -> tuple[int | None, int | None]:
        lo_text, hi_text = request.query_value("dataAlteracaoInicial"), request.query_value("dataAlteracaoFinal")
        try:
            lo = parse_local(lo_text, end=False) if lo_text else None
            hi = parse_local(hi_text, end=True) if hi_text else None
        except ValueError as exc:
            raise _error(400, "VALIDATION_ERROR", "Data inválida", f"Formato de data inválido: {exc}") from None
        if lo is not None and hi is not None and hi - lo > self.config.max_range_days * 86400:
            raise _error(400, "VALIDATION_ERROR", "Intervalo de datas inválido", "O intervalo entre as datas não pode ser maior que um ano")
        return lo, hi

    def _ordered_page(self, records: list[_Record], page: int, limit: int) -> list[_Record]:
        order = self.config.list_order
        if order == "id":
            records.sort(key=lambda r: r.id)
        elif order == "id_desc":
            records.sort(key=lambda r: -r.id)
        else:
            records.sort(key=lambda r: (-r.updated_s, -r.id))
        return records[(page - 1) * limit : page * limit]

    def _list_contatos(self, request: Request) -> Response:
        page, limit = self._page_params(request)
        lo, hi = self._date_window(request)
        criterio = request.query_value("criterio", "1")
        tipo = {"1": "F", "2": "J", "3": "E"}.get(request.query_value("tipoPessoa", "") or "")
        documento = re.sub(r"\D", "", request.query_value("numeroDocumento", "") or "")
        pesquisa = (request.query_value("pesquisa", "") or "").strip().lower()
        ids = {int(v) for v in request.query.get("idsContatos[]", []) if v.isdigit()}
        out = []
        for r in self._contatos.values():
            b = r.body
            if r.id == self.consumidor_final_id:
                continue
            if (criterio == "2") != (b["situacao"] == "E"):
                continue
            if tipo and b["tipo"] != tipo:
                continue
            if lo is not None and r.updated_s < lo or hi is not None and r.updated_s > hi:
                continue
            if documento and re.sub(r"\D", "", b["numeroDocumento"]) != documento:
                continue
            if ids and r.id not in ids:
                continue
            if pesquisa and not any(pesquisa in str(b.get(k) or "").lower() for k in ("nome", "fantasia", "email", "codigo", "numeroDocumento")) and pesquisa not in re.sub(r"\D", "", b["numeroDocumento"]):
                continue
            out.append(r)
        return Response.json(200, {"data": [self._contato_view(r, full=self.config.list_shape == "full") for r in self._ordered_page(out, page, limit)]})

    def _contato_view(self, r: _Record, *, full: bool) -> dict[str, Any]:
        b = r.body
        if full:
            return dict(b)
        return {k: b.get(k) for k in ("id", "nome", "codigo", "situacao", "numeroDocumento", "telefone", "celular")}

    def _list_pedidos(self, request: Request) -> Response:
        page, limit = self._page_params(request)
        lo, hi = self._date_window(request)
        lojas = set(request.query.get("numerosLojas[]", []))
        contato = request.query_value("idContato")
        out = []
        for r in self._pedidos.values():
            if r.deleted:
                continue
            if lo is not None and r.updated_s < lo or hi is not None and r.updated_s > hi:
                continue
            if lojas and r.body["numeroLoja"] not in lojas:
                continue
            if contato and str(r.body["contato"]["id"]) != contato:
                continue
            out.append(r)
        full = self.config.list_shape == "full"
        keys = ("id", "numero", "numeroLoja", "data", "dataSaida", "dataPrevista", "totalProdutos", "total", "contato", "situacao", "loja")
        return Response.json(200, {"data": [dict(r.body) if full else {k: r.body[k] for k in keys} for r in self._ordered_page(out, page, limit)]})

    # ---- single records ------------------------------------------------------------------

    def _contato(self, request: Request) -> _Record:
        record = self._contatos.get(int(request.params["id"]))
        if record is None:
            raise _error(404, "RESOURCE_NOT_FOUND", "Recurso não encontrado", "O contato não foi encontrado.")
        return record

    def _get_contato(self, request: Request) -> Response:
        return Response.json(200, {"data": dict(self._contato(request).body)})

    def _consumidor_final(self, request: Request) -> Response:
        return Response.json(200, {"data": dict(self._contatos[self.consumidor_final_id].body)})

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise _error(400, "VALIDATION_ERROR", "JSON inválido", "O corpo da requisição não é um JSON válido") from None
        if not isinstance(body, dict):
            raise _error(400, "VALIDATION_ERROR", "JSON inválido", "O corpo da requisição deve ser um objeto")
        return body

    def _validate_contato(self, body: Mapping[str, Any]) -> None:
        problems = []
        tipo = body.get("tipo") or "F"
        if not str(body.get("nome") or "").strip():
            problems.append({"code": 1, "msg": "O campo nome é obrigatório", "element": "nome", "namespace": "CONTATO"})
        if tipo not in ("F", "J", "E"):
            problems.append({"code": 2, "msg": "Tipo de pessoa inválido", "element": "tipo", "namespace": "CONTATO"})
        doc = re.sub(r"\D", "", str(body.get("numeroDocumento") or ""))
        if doc and tipo == "F" and not is_valid_cpf(doc):
            problems.append({"code": 3, "msg": f"O CPF {body.get('numeroDocumento')} é inválido", "element": "numeroDocumento", "namespace": "CONTATO"})
        if doc and tipo == "J" and not is_valid_cnpj(doc):
            problems.append({"code": 3, "msg": f"O CNPJ {body.get('numeroDocumento')} é inválido", "element": "numeroDocumento", "namespace": "CONTATO"})
        email = str(body.get("email") or "")
        if email and not _EMAIL_RE.match(email):
            problems.append({"code": 4, "msg": f"O e-mail {email} é inválido", "element": "email", "namespace": "CONTATO"})
        if problems:
            raise _error(400, "VALIDATION_ERROR", "Não foi possível salvar o contato", "Verifique os campos informados.", fields=problems)

    def _merge_contato(self, base: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        merged = dict(base)
        for key in ("nome", "codigo", "numeroDocumento", "telefone", "celular", "fantasia", "tipo", "email", "ie", "rg"):
            if key in body:
                merged[key] = "" if body[key] is None else str(body[key])
        for key in ("endereco", "pais", "tiposContato", "vendedor", "dadosAdicionais", "financeiro"):
            if key in body and body[key] is not None:
                merged[key] = body[key]
        if body.get("situacao") in ("A", "I", "S"):
            merged["situacao"] = body["situacao"]
        return merged

    def _create_contato(self, request: Request) -> Response:
        body = self._body(request)
        self._validate_contato(body)
        record = self.insert_contato(body)
        return Response.json(201, {"data": {"id": record.id}})

    def _update_contato(self, request: Request) -> Response:
        record = self._contato(request)
        body = self._body(request)
        merged = self._merge_contato(record.body, body)
        self._validate_contato(merged)
        record.body = merged
        self._touch(record, "updated")
        return Response.empty(204) if request.method == "PUT" else Response.json(200, {"data": {"id": record.id}})

    def _delete_contato(self, request: Request) -> Response:
        self.delete("contatos", [self._contato(request).id])
        return Response.empty(204)

    def _pedido(self, request: Request) -> _Record:
        record = self._pedidos.get(int(request.params["id"]))
        if record is None or record.deleted:
            raise _error(404, "RESOURCE_NOT_FOUND", "Recurso não encontrado", "O pedido de venda não foi encontrado.")
        return record

    def _get_pedido(self, request: Request) -> Response:
        return Response.json(200, {"data": dict(self._pedido(request).body)})

    def _validate_pedido(self, body: Mapping[str, Any]) -> None:
        problems = []
        contato = (body.get("contato") or {}).get("id")
        if not contato or int(contato) not in self._contatos:
            problems.append({"code": 10, "msg": "O contato do pedido é obrigatório", "element": "contato", "namespace": "VENDAS"})
        itens = body.get("itens")
        if not isinstance(itens, list) or not itens:
            problems.append({"code": 11, "msg": "O pedido deve ter ao menos um item", "element": "itens", "namespace": "VENDAS"})
        else:
            for index, item in enumerate(itens):
                try:
                    if float(item.get("valor", 0)) < 0:
                        raise ValueError
                except (TypeError, ValueError, AttributeError):
                    problems.append({"code": 12, "msg": "Valor do item inválido", "element": "valor", "namespace": "VENDAS",
                                     "collection": [{"index": index, "code": 12, "msg": "O valor deve ser um número não negativo", "element": "valor", "namespace": "ITENS"}]})
        if problems:
            raise _error(400, "VALIDATION_ERROR", "Não foi possível salvar a venda", "Verifique os campos informados.", fields=problems)

    def _pedido_values(self, body: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(body)
        itens = body.get("itens") or []
        values["total"] = sum(float(i.get("valor", 0)) * float(i.get("quantidade", 1)) for i in itens)
        return values

    def _create_pedido(self, request: Request) -> Response:
        body = self._body(request)
        self._validate_pedido(body)
        record = self.insert_pedido(body)
        return Response.json(201, {"data": {"id": record.id}})

    def insert_pedido(self, body: Mapping[str, Any]) -> _Record:
        with self._lock:
            now = int(self.clock.timestamp())
            record_id = self._new_id("pedido")
            numero = len(self._pedidos) + 1
            record = _Record(record_id, "pedido", self._pedido_body(record_id, numero, int(body["contato"]["id"]), self._pedido_values(body)), now, now)
            self._pedidos[record_id] = record
            self._emit("order", "created", record)
            return record

    def _update_pedido(self, request: Request) -> Response:
        record = self._pedido(request)
        body = self._body(request)
        merged = {**record.body, **body}
        self._validate_pedido(merged)
        record.body = self._pedido_body(record.id, record.body["numero"], int(merged["contato"]["id"]), self._pedido_values(merged))
        self._touch(record, "updated")
        return Response.empty(204) if request.method == "PUT" else Response.json(200, {"data": {"id": record.id}})

    def _delete_pedido(self, request: Request) -> Response:
        self.delete("deals", [self._pedido(request).id])
        return Response.empty(204)

    # ---- changes and webhooks ------------------------------------------------------------

    def _touch(self, record: _Record, action: str) -> None:
        record.updated_s = int(self.clock.timestamp())
        self._emit("contact" if record.kind == "contato" else "order", action, record)

    def _emit(self, resource: str, action: str, record: _Record) -> None:
        if self.webhooks is None:
            return
        if action == "deleted":
            data: dict[str, Any] = {"id": record.id}
        elif record.kind == "contato":
            data = {k: record.body.get(k) for k in ("id", "nome", "codigo", "situacao", "numeroDocumento", "tipo")}
        else:
            data = {k: record.body.get(k) for k in ("id", "numero", "numeroLoja", "total")}
        self.webhooks.enqueue({
            "eventId": str(uuid.uuid4()),
            "date": datetime.fromtimestamp(self.clock.timestamp(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "version": "v1",
            "event": f"{resource}.{action}",
            "companyId": self.config.webhook_company_id,
            "data": data,
        })

    def _sign(self, body: bytes, url: str) -> dict[str, str]:
        from crm_pipelines.webhooks.signatures import sign_bling

        return {"X-Bling-Signature-256": sign_bling(self.config.client_secret, body)}

    def stop(self) -> None:
        if self.webhooks is not None:
            self.webhooks.flush(timeout_s=5)
        super().stop()
        if self.webhooks is not None:
            self.webhooks.stop()

    # ---- Python-side helpers for tests -----------------------------------------------------

    def insert_contato(self, body: Mapping[str, Any], *, updated: datetime | None = None) -> _Record:
        """Create a contato directly (as a user of Bling's UI would)."""
        with self._lock:
            now = int(updated.timestamp()) if updated else int(self.clock.timestamp())
            record_id = self._new_id("contato")
            base = self._seed_contato(FakeData(f"blank-{record_id}"), body.get("tipo") or "F")
            base.update({"nome": "", "email": "", "numeroDocumento": "", "telefone": "", "celular": "", "fantasia": "", "codigo": ""})
            merged = self._merge_contato(base, body)
            merged["id"] = record_id
            merged["situacao"] = "A"
            record = _Record(record_id, "contato", merged, now, now)
            self._contatos[record_id] = record
            self._emit("contact", "created", record)
            return record

    def _entity_records(self, entity: str) -> list[_Record]:
        if entity == "deals":
            return [r for r in self._pedidos.values() if not r.deleted]
        tipo = {"contacts": "F", "companies": "J"}[entity]
        return [r for r in self._contatos.values() if r.body["tipo"] == tipo and r.id != self.consumidor_final_id]

    def records(self, entity: str, *, deleted: bool = False) -> dict[str, dict[str, Any]]:
        """Full bodies of live (or excluded) records of ``entity`` by id."""
        with self._lock:
            rows = self._entity_records(entity)
            if entity != "deals":
                rows = [r for r in rows if (r.body["situacao"] == "E") == deleted]
            return {str(r.id): dict(r.body) for r in rows}

    def count(self, entity: str) -> int:
        return len(self.records(entity))

    def updated_at(self, entity: str, record_id: str) -> int:
        """Epoch seconds of a record's dataAlteracao."""
        store = self._pedidos if entity == "deals" else self._contatos
        return store[int(record_id)].updated_s

    def modify(self, entity: str, n: int = 1, *, ids: list[str] | None = None, changes: Mapping[str, Any] | None = None, at: datetime | None = None) -> list[str]:
        """Change ``n`` random live records (or ``ids``); all get the same modification second."""
        with self._lock:
            pool = [r for r in self._entity_records(entity) if entity == "deals" or r.body["situacao"] != "E"]
            chosen = [r for r in pool if str(r.id) in set(ids)] if ids else self._rng.sample(pool, min(n, len(pool)))
            stamp = int(at.timestamp()) if at else int(self.clock.timestamp())
            for r in chosen:
                if changes:
                    r.body.update(changes)
                elif entity == "deals":
                    r.body["total"] = r.body["totalProdutos"] = round(r.body["total"] + 10.5, 2)
                else:
                    r.body["telefone"] = f"(11) 9{self._rng.randrange(1000, 9999)}-{self._rng.randrange(1000, 9999)}"
                r.updated_s = stamp
                self._emit("contact" if r.kind == "contato" else "order", "updated", r)
            return [str(r.id) for r in chosen]

    def create(self, entity: str, n: int = 1) -> list[str]:
        data = FakeData(f"{self.config.seed}-extra-{self._rng.random()}")
        out = []
        for _ in range(n):
            if entity == "deals":
                deal = data.deal()
                rec = self.insert_pedido({"contato": {"id": self.consumidor_final_id}, "observacoes": deal["name"],
                                          "itens": [{"descricao": deal["name"], "quantidade": 1, "valor": float(deal["amount"] or 0)}]})
            else:
                rec = self.insert_contato(self._seed_contato(data, "F" if entity == "contacts" else "J"))
            out.append(str(rec.id))
        return out

    def delete(self, entity: str, ids: list[int | str]) -> None:
        """Exclude contatos (situação E) or delete pedidos."""
        with self._lock:
            for raw in ids:
                if entity == "deals":
                    record = self._pedidos.get(int(raw))
                    if record is not None and not record.deleted:
                        record.deleted = True
                        self._emit("order", "deleted", record)
                    continue
                record = self._contatos.get(int(raw))
                if record is None or record.body["situacao"] == "E":
                    continue
                record.body["situacao"] = "E"
                if self.config.delete_touches_modified:
                    record.updated_s = int(self.clock.timestamp())
                self._emit("contact", "deleted", record)

    def mutate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        op, entity = spec.get("op"), spec.get("entity", "contacts")
        if op == "create":
            return {"ids": self.create(entity, int(spec.get("n", 1)))}
        if op == "modify":
            return {"ids": self.modify(entity, int(spec.get("n", 1)), ids=spec.get("ids"))}
        if op == "delete":
            self.delete(entity, list(spec.get("ids") or []))
            return {"deleted": list(spec.get("ids") or [])}
        if op == "expire_tokens":
            self.expire_access_tokens()
            return {"expired": True}
        raise ValueError("op must be create, modify, delete or expire_tokens")

    # ---- command line ------------------------------------------------------------------------

    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--contacts", type=int, default=100)
        parser.add_argument("--companies", type=int, default=20)
        parser.add_argument("--deals", type=int, default=30)
        parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
        parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
        parser.add_argument("--refresh-token", default=DEFAULT_REFRESH_TOKEN)
        parser.add_argument("--per-second", type=int, default=3)
        parser.add_argument("--daily-limit", type=int, default=120_000)
        parser.add_argument("--page-cap-mode", choices=PAGE_CAP_MODES, default="clamp")
        parser.add_argument("--list-order", choices=LIST_ORDERS, default="id")
        parser.add_argument("--list-shape", choices=LIST_SHAPES, default="summary")
        parser.add_argument("--webhook-url")

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> BlingSimulator:
        config = BlingSimConfig(
            seed=args.seed, contacts=args.contacts, companies=args.companies, deals=args.deals,
            client_id=args.client_id, client_secret=args.client_secret, refresh_token=args.refresh_token,
            access_tokens=tuple(args.token or ()), per_second=args.per_second, daily_limit=args.daily_limit,
            page_cap_mode=args.page_cap_mode, list_order=args.list_order, list_shape=args.list_shape,
            webhook_url=args.webhook_url, faults=args.faults,
        )
        return cls(config, host=args.host, port=args.port)


def _address(city: str | None, state: str | None) -> dict[str, Any]:
    geral = {"endereco": "", "cep": "", "bairro": "", "municipio": city or "", "uf": state or "", "numero": "", "complemento": ""}
    return {"geral": geral, "cobranca": dict(geral)}


__all__ = ["BlingSimConfig", "BlingSimulator", "LOCAL_TZ", "error_body", "local_text", "parse_local"]
