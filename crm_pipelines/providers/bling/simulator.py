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

Each company (account) has its own OAuth tokens, records and limits; webhooks name it in
``companyId``. Every unconfirmed fact ([?] in PROVIDERS.md) is a field of :class:`BlingSimConfig`.
"""

from __future__ import annotations

import uuid
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, ClassVar, Literal

from crm_pipelines.providers.bling.api import ENTITY_SPECS, LOCAL_TZ
from crm_pipelines.simulator import formats
from crm_pipelines.simulator.config import AccountSpec, SimConfig
from crm_pipelines.simulator.datagen import FakeData, format_cnpj, format_cpf, is_valid_cnpj, is_valid_cpf, only_digits
from crm_pipelines.simulator.oauth import refresh_grant
from crm_pipelines.simulator.ratelimit import DailyCounter, SlidingWindowLimiter
from crm_pipelines.simulator.server import Account, ApiError, Request, Response, Simulator, api, capped
from crm_pipelines.simulator.store import Record, RecordStore

PREFIX = "/Api/v3"
DEFAULT_CLIENT_ID = "sim-bling-client"
DEFAULT_CLIENT_SECRET = "sim-bling-secret"
DEFAULT_REFRESH_TOKEN = "sim-bling-refresh-0"
ORDER_SITUATIONS = ((6, "Em aberto"), (9, "Atendido"), (12, "Cancelado"), (15, "Em andamento"))


#: Custom fields (campos customizados) configured in every simulated company: module -> (module id,
#: (field id, name, type)). Contatos carry their values as ``camposCustomizados`` (full shape only).
CUSTOM_FIELDS: dict[str, tuple[int, tuple[tuple[int, str, str], ...]]] = {
    "Contatos": (1, ((101, "Cor favorita", "Texto"), (102, "Nível de fidelidade", "Lista"), (103, "Canal de origem", "Texto"))),
    "Vendas": (2, ((201, "Origem do pedido", "Texto"), (202, "Prioridade", "Lista"))),
}


@dataclass
class BlingSimConfig(SimConfig):
    """Data, credentials, limits and the switches for unconfirmed behaviour (shared settings in
    :class:`SimConfig`)."""

    COUNTS: ClassVar[tuple[str, ...]] = ("contacts", "companies", "deals", "invalid_documents")

    contacts: int = 100  #: contatos of tipo F
    companies: int = 20  #: contatos of tipo J
    deals: int = 30  #: pedidos de venda
    invalid_documents: int = 0  #: seeded contatos whose CPF/CNPJ has wrong check digits
    history_days: float = 365.0
    #: OAuth app credentials and the default company's tokens valid at start.
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
    page_cap_mode: Literal["clamp", "reject"] = "clamp"
    #: [?] order of list results: "id" (ascending), "id_desc", or "updated" (last change first).
    list_order: Literal["id", "id_desc", "updated"] = "id"
    #: [V SDK] list items are summaries; "full" answers complete records in lists [?].
    list_shape: Literal["summary", "full"] = "summary"
    #: [?] a deleted (excluded) contato gets a new dataAlteracao.
    delete_touches_modified: bool = True
    #: [S] date ranges wider than this are refused with 400.
    max_range_days: int = 366
    #: Webhooks: one event per POST, retried; ``companyId`` of the default company.
    webhook_company_id: str = "sim-company-1"
    webhook_max_attempts: int = 6
    webhook_retry_base_s: float = 0.2

    def check(self) -> None:
        if self.per_second < 1 or self.page_max < 1:
            raise ValueError("per_second and page_max must be >= 1")


#: One record family of the API: its store (and first id), the fields list items summarise it with, its
#: words in 404s and validation errors, and its webhook resource with the event's fields.
Resource = namedtuple("Resource", "store first_id summary not_found namespace refusal event event_fields")
RESOURCES = {r.store: r for r in (
    Resource("contatos", 17_000_000_001, ("id", "nome", "codigo", "situacao", "numeroDocumento", "telefone", "celular"),
             "O contato não foi encontrado.", "CONTATO", "Não foi possível salvar o contato",
             "contact", ("id", "nome", "codigo", "situacao", "numeroDocumento", "tipo")),
    Resource("pedidos", 21_000_000_001,
             ("id", "numero", "numeroLoja", "data", "dataSaida", "dataPrevista", "totalProdutos", "total", "contato", "situacao", "loja"),
             "O pedido de venda não foi encontrado.", "VENDAS", "Não foi possível salvar a venda", "order", ("id", "numero", "numeroLoja", "total")),
)}
#: The token endpoint's answer to each failed check of a refresh-token grant, in the order they are made.
TOKEN_ERRORS = {"client": (401, "invalid_client", "Client authentication failed"),
                "grant_type": (400, "unsupported_grant_type", "Only refresh_token is simulated"),
                "refresh_token": (400, "invalid_grant", "Invalid refresh token")}
#: What a 429 says for each limit's period.
TOO_MANY = {"second": "Limite de requisições por segundo atingido, tente novamente mais tarde.",
            "day": "Limite de requisições diárias atingido, tente novamente amanhã."}
#: The order of list results for each ``list_order`` (None: the store's own, by id).
LIST_ORDERS = {"id": None, "id_desc": lambda r: -r.id, "updated": lambda r: (-r.updated, -r.id)}
#: What ``pesquisa`` searches in a contato (and the digits of its document).
SEARCHED = ("nome", "fantasia", "email", "codigo", "numeroDocumento")
#: Contato values a body may set: as text, and as given (objects and lists).
TEXT_FIELDS = ("nome", "codigo", "numeroDocumento", "telefone", "celular", "fantasia", "tipo", "email", "ie", "rg")
OBJECT_FIELDS = ("endereco", "pais", "tiposContato", "vendedor", "dadosAdicionais", "financeiro")
#: The fields of a contato created through the API that it does not set start blank.
BLANK_CONTATO = dict.fromkeys(("nome", "email", "numeroDocumento", "telefone", "celular", "fantasia", "codigo"), "")


def _address(city: str | None, state: str | None) -> dict[str, Any]:
    geral = {"endereco": "", "cep": "", "bairro": "", "municipio": city or "", "uf": state or "", "numero": "", "complemento": ""}
    return {"geral": geral, "cobranca": dict(geral)}


#: The special contato every company has (``GET /contatos/consumidor-final``; never listed).
CONSUMIDOR_FINAL = {"nome": "Consumidor Final", "codigo": "", "situacao": "A", "numeroDocumento": "", "tipo": "F", "email": "", "telefone": "",
                    "celular": "", "fantasia": "", "endereco": _address(None, None), "pais": {"nome": "Brasil"}, "tiposContato": [],
                    "pessoasContato": [], "vendedor": {"id": 0}}


def error_body(type_: str, message: str, description: str = "", fields: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type_, "message": message, "description": description}
    if fields is not None:
        body["fields"] = fields
    body.update(extra)
    return {"error": body}


def _error(status: int, type_: str, message: str, description: str = "", **kw: Any) -> ApiError:
    return ApiError(Response.json(status, error_body(type_, message, description, **kw)))


#: ``YYYY-MM-DD HH:MM:SS`` in America/Sao_Paulo; a local date or date-time filter value as epoch seconds.
local_text = partial(formats.local_text, tz=LOCAL_TZ)
parse_local = partial(formats.parse_local, tz=LOCAL_TZ)


def priced(body: Mapping[str, Any]) -> dict[str, Any]:
    """A pedido body with its total: the sum of its itens (valor times quantidade)."""
    return {**body, "total": sum(float(i.get("valor", 0)) * float(i.get("quantidade", 1)) for i in body.get("itens") or [])}


def _valid_valor(item: Any) -> bool:
    try:
        return not float(item.get("valor", 0)) < 0
    except (TypeError, ValueError, AttributeError):
        return False


class Company(Account):
    """A Bling company: its contatos (soft-deleted as situação E) and pedidos, its OAuth tokens
    (access token -> expiry in simulated epoch seconds) and its per-second and daily limits."""

    def __init__(self, sim: BlingSimulator, spec: AccountSpec) -> None:
        super().__init__(sim, spec)
        cfg = sim.config
        self.per_second = SlidingWindowLimiter(cfg.per_second, 1.0)
        self.daily = DailyCounter(cfg.daily_limit, sim.clock.now, tz=LOCAL_TZ)
        self.limiters = (self.per_second, self.daily)
        self.access: dict[str, float] = dict.fromkeys(spec.tokens, float("inf"))
        self.refresh = set(spec.refresh_tokens)
        self.stores = {name: RecordStore(name, first_id=r.first_id, gaps=self.rng) for name, r in RESOURCES.items()}
        self.extra = FakeData(f"{self.seed}-extra")
        start_s = int(sim.reference.timestamp()) - int(cfg.history_days * 86400)
        self.consumidor_final_id = cf = self.stores["contatos"].allocate_id()
        self.stores["contatos"].seed([Record(cf, start_s, start_s, {"id": cf, **CONSUMIDOR_FINAL})])
        data, self.bad_documents = FakeData(f"{self.seed}-bling"), self.count_of(sim, "invalid_documents")
        contatos = [self._seeded_contato(sim, data, kind)
                    for kind, entity in (("F", "contacts"), ("J", "companies")) for _ in range(self.count_of(sim, entity))]
        self.stores["contatos"].seed(contatos)
        contato_ids = [r.id for r in contatos]
        self.stores["pedidos"].seed([self._seeded_pedido(sim, data, n, contato_ids) for n in range(1, self.count_of(sim, "deals") + 1)])

    def _seeded_contato(self, sim: BlingSimulator, data: FakeData, kind: str) -> Record:
        """A generated contato; the first ``invalid_documents`` with a document get wrong check digits."""
        created, updated = sim.seeded_history(data.rng)
        body = sim._seed_contato(data, kind)
        if self.bad_documents > 0 and body["numeroDocumento"]:
            digits = only_digits(body["numeroDocumento"])
            wrong = digits[:-1] + str((int(digits[-1]) + 1) % 10)
            body["numeroDocumento"] = format_cpf(wrong) if kind == "F" else format_cnpj(wrong)
            self.bad_documents -= 1
        body["id"] = self.stores["contatos"].allocate_id()
        return Record(body["id"], created, updated, body)

    def _seeded_pedido(self, sim: BlingSimulator, data: FakeData, numero: int, contato_ids: list[int]) -> Record:
        created, updated = sim.seeded_history(data.rng)
        record_id = self.stores["pedidos"].allocate_id()
        contato_id = contato_ids[int(data.rng.random() * len(contato_ids))] if contato_ids else self.consumidor_final_id
        deal = data.deal()
        return Record(record_id, created, updated, sim._pedido_body(record_id, numero, {
            "contato": {"id": contato_id}, "observacoes": deal["name"], "total": float(deal["amount"] or 0),
            "dataPrevista": (sim.reference - timedelta(days=int(data.rng.random() * 200) - 100)).astimezone(LOCAL_TZ).strftime("%Y-%m-%d"),
            "situacao": {"id": data.pick(ORDER_SITUATIONS)[0]},
        }))


class BlingSimulator(Simulator):
    """Bling API v3 over real HTTP. Python-side helpers for tests (``account=`` names another
    company): :meth:`records`, :meth:`count`, :meth:`create`, :meth:`modify`, :meth:`delete`,
    :meth:`insert_contato`, :meth:`insert_pedido`, :meth:`expire_access_tokens`."""

    provider = "bling"
    server_name = "bling-simulator"
    config_class = BlingSimConfig
    ANSWERS = {
        "unauthorized": (401, "invalid_token", "invalid_token", "The access token provided is invalid"),
        "not_found": (404, "RESOURCE_NOT_FOUND", "Recurso não encontrado", "O caminho {request.path} não existe."),
        "method_not_allowed": (405, "METHOD_NOT_ALLOWED", "Método não permitido", "{request.method}"),
        "internal_error": (500, "SERVER_ERROR", "Erro interno", "Tente novamente mais tarde."),
        "invalid_json": (400, "VALIDATION_ERROR", "JSON inválido", "O corpo da requisição não é um JSON válido"),
        "not_an_object": (400, "VALIDATION_ERROR", "JSON inválido", "O corpo da requisição deve ser um objeto"),
    }
    account_class = Company
    config: BlingSimConfig
    ENTITIES = {"contacts": "contatos", "companies": "contatos", "deals": "pedidos"}
    TOKEN_FIELD = "access_tokens"
    stamps_per_second = 1

    def __init__(self, config: BlingSimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(config, host=host, port=port)
        self._token_calls = SlidingWindowLimiter(self.config.token_calls_per_minute, 60.0)
        self.token_refreshes = 0  #: also numbers the tokens issued

    def default_account_spec(self) -> AccountSpec:
        return AccountSpec(self.config.webhook_company_id, self.config.access_tokens, (self.config.refresh_token,))

    def stamp(self) -> int:
        return int(self.clock.timestamp())

    @property
    def consumidor_final_id(self) -> int:
        return self.account().consumidor_final_id

    @property
    def _per_second(self) -> SlidingWindowLimiter:
        """The default company's per-second window (tests empty it between bursts)."""
        return self.account().per_second

    @staticmethod
    def _seed_contato(data: FakeData, tipo: str) -> dict[str, Any]:
        """A generated contato: a person for tipo F, else an organisation."""
        if tipo == "F":
            p = data.person()
            nome, email, mobile, fantasia = " ".join(x for x in (p["first_name"], p["last_name"]) if x), p["email"] or "", p["mobile"] or "", ""
        else:
            p = data.organization()
            nome, email, mobile = p["name"], f"contato@{p['domain']}" if p["domain"] else "", ""
            fantasia = nome.split(" ")[0]
        return {
            "nome": nome, "codigo": "", "situacao": "A", "numeroDocumento": p["document"] or "", "telefone": p["phone"] or "", "celular": mobile,
            "fantasia": fantasia, "tipo": tipo, "indicadorIe": 9, "ie": "", "rg": "", "orgaoEmissor": "", "email": email,
            "endereco": _address(p["city"], p["state"]), "vendedor": {"id": 0},
            "dadosAdicionais": {"dataNascimento": "", "sexo": "", "naturalidade": ""},
            "financeiro": {"limiteCredito": 0, "condicaoPagamento": "", "categoria": {"id": 0}},
            "pais": {"nome": "Brasil" if p["country"] == "Brazil" else (p["country"] or "")},
            "tiposContato": [{"id": 1, "descricao": "Cliente"}], "pessoasContato": [],
        }

    @staticmethod
    def _pedido_body(record_id: int, numero: int, values: Mapping[str, Any]) -> dict[str, Any]:
        """A pedido as stored and shown, from the values a body (or the seeding) gives."""
        total = round(float(values.get("total") or 0), 2)
        return {
            "id": record_id, "numero": numero, "numeroLoja": values.get("numeroLoja") or "",
            "data": values.get("data") or values.get("dataPrevista") or "", "dataSaida": "", "dataPrevista": values.get("dataPrevista") or "",
            "totalProdutos": total, "total": total,
            "contato": {"id": int(values["contato"]["id"]), "nome": "", "tipoPessoa": "F", "numeroDocumento": ""},
            "situacao": {"id": int((values.get("situacao") or {}).get("id") or 6), "valor": 0},
            "loja": {"id": int((values.get("loja") or {}).get("id") or 0)},
            "itens": values.get("itens") or [{"id": 1, "codigo": "", "unidade": "UN", "quantidade": 1, "desconto": 0, "valor": total, "descricao": values.get("observacoes") or "", "produto": {"id": 0}}],
            "parcelas": [], "vendedor": {"id": 0}, "desconto": {"valor": 0}, "observacoes": values.get("observacoes") or "", "observacoesInternas": "",
        }

    def error_response(self, status: int, type_: str, message: str, description: str = "") -> Response:
        return Response.json(status, error_body(type_, message, description))

    def fault_response(self, status: int, request: Request) -> Response:
        return self._too_many("second") if status == 429 else Response.json(
            status, error_body("SERVER_ERROR", "Erro interno", "Serviço temporariamente indisponível."))

    def _too_many(self, period: str) -> Response:
        extra = {"limit": self.config.per_second if period == "second" else self.config.daily_limit, "period": period} if self.config.limit_period_in_body else {}
        return Response.json(429, error_body("TOO_MANY_REQUESTS", "Limite de requisições atingido.", TOO_MANY[period], **extra))

    def authenticate(self, request: Request) -> Company | Response | None:
        company = super().authenticate(request)
        if isinstance(company, Company) and company.access.get(request.token, 0) <= self.clock.timestamp():
            return Response.json(401, error_body("invalid_token", "invalid_token", "The access token provided has expired"))
        return company

    def admit(self, request: Request) -> Response | None:
        """3 requests per second, then the daily count, per company."""
        policy = self.over_limit("account", ("second", request.account.per_second), ("day", request.account.daily))
        return None if policy is None else self._too_many(policy)

    def reset_rate_limits(self) -> None:
        super().reset_rate_limits()
        self._token_calls.reset()

    def describe(self) -> dict[str, Any]:
        stores = self.account().stores
        return {"contatos": stores["contatos"].count(), "pedidos": stores["pedidos"].count() + stores["pedidos"].count(deleted=True),
                "list_order": self.config.list_order, "list_shape": self.config.list_shape}

    @api("POST", PREFIX + "/oauth/token", name="oauth token", auth=False)
    def _token(self, request: Request) -> Response:
        if not self._token_calls.try_acquire("token").allowed:
            return self._too_many("second")
        client = (self.config.client_id, self.config.client_secret)
        failed, company, refresh = refresh_grant(self, request, lambda c: c.refresh, client, TOKEN_ERRORS, basic=True)
        if failed is not None:
            status, error, description = TOKEN_ERRORS[failed]
            return Response.json(status, error_body(error, error, description))
        self.token_refreshes += 1
        access = f"sim-bling-access-{self.token_refreshes}-{uuid.uuid4().hex[:8]}"
        company.access[access] = self.clock.timestamp() + self.config.token_lifetime_s
        self.bind_token(access, company)
        if self.config.rotate_refresh_token:
            company.refresh.discard(refresh)
            refresh = f"sim-bling-refresh-{self.token_refreshes}-{uuid.uuid4().hex[:8]}"
            company.refresh.add(refresh)
        return Response.json(200, {"access_token": access, "expires_in": int(self.config.token_lifetime_s), "token_type": "Bearer", "scope": "98309 5990556", "refresh_token": refresh})

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired (as after 6 h)."""
        with self.lock:
            now = self.clock.timestamp()
            for company in self.accounts.values():
                company.access = dict.fromkeys(company.access, now - 1)

    @property
    def current_refresh_tokens(self) -> set[str]:
        return set(self.account().refresh)

    def _page_params(self, request: Request) -> tuple[int, int]:
        try:
            page, limit = int(request.query_value("pagina", "1")), int(request.query_value("limite", "100"))
        except ValueError:
            raise _error(400, "VALIDATION_ERROR", "Parâmetros inválidos", "pagina e limite devem ser números inteiros") from None
        if page < 1 or limit < 1:
            raise _error(400, "VALIDATION_ERROR", "Parâmetros inválidos", "pagina e limite devem ser maiores que zero")
        maximum = self.config.page_max
        return page, capped(limit, maximum, self.config.page_cap_mode, lambda: _error(
            400, "VALIDATION_ERROR", "Parâmetros inválidos", f"O limite máximo por página é {maximum}",
            fields=[{"code": 1, "msg": f"limite deve ser no máximo {maximum}", "element": "limite", "namespace": "PAGINACAO"}]))

    def _date_window(self, request: Request) -> Iterator[Callable[[Record], bool]]:
        """Whether a record's dataAlteracao lies in ``dataAlteracaoInicial``..``dataAlteracaoFinal`` (local time, inclusive), if given."""
        lo_text, hi_text = request.query_value("dataAlteracaoInicial"), request.query_value("dataAlteracaoFinal")
        try:
            lo = parse_local(lo_text, end=False) if lo_text else None
            hi = parse_local(hi_text, end=True) if hi_text else None
        except ValueError as exc:
            raise _error(400, "VALIDATION_ERROR", "Data inválida", f"Formato de data inválido: {exc}") from None
        if lo is not None and hi is not None and hi - lo > self.config.max_range_days * 86400:
            raise _error(400, "VALIDATION_ERROR", "Intervalo de datas inválido", "O intervalo entre as datas não pode ser maior que um ano")
        if lo is not None or hi is not None:
            yield lambda r: (lo is None or r.updated >= lo) and (hi is None or r.updated <= hi)

    def _contatos_wanted(self, request: Request) -> Iterator[Callable[[Record], bool]]:
        """The contato list filters: ``criterio`` (2: the excluded ones), ``tipoPessoa``, ``numeroDocumento``, ``pesquisa``, ``idsContatos[]``."""
        excluded, cf = request.query_value("criterio", "1") == "2", request.account.consumidor_final_id
        yield lambda r: (r.values["situacao"] == "E") == excluded and r.id != cf
        if tipo := {"1": "F", "2": "J", "3": "E"}.get(request.query_value("tipoPessoa", "") or ""):
            yield lambda r: r["tipo"] == tipo
        if documento := only_digits(request.query_value("numeroDocumento")):
            yield lambda r: only_digits(r["numeroDocumento"]) == documento
        if pesquisa := (request.query_value("pesquisa", "") or "").strip().lower():
            yield lambda r: any(pesquisa in str(r.get(k) or "").lower() for k in SEARCHED) or pesquisa in only_digits(r["numeroDocumento"])
        if ids := {int(v) for v in request.query.get("idsContatos[]", []) if v.isdigit()}:
            yield lambda r: r.id in ids

    def _pedidos_wanted(self, request: Request) -> Iterator[Callable[[Record], bool]]:
        """The pedido list filters: ``numerosLojas[]``, ``idContato``."""
        if lojas := set(request.query.get("numerosLojas[]", [])):
            yield lambda r: r["numeroLoja"] in lojas
        if contato := request.query_value("idContato"):
            yield lambda r: str(r["contato"]["id"]) == contato

    @api("GET", PREFIX + "/campos-customizados/modulos", name="list custom field modules")
    def _custom_modules(self, request: Request) -> Response:
        return Response.json(200, {"data": [{"id": module_id, "nome": name, "modulo": name} for name, (module_id, _) in CUSTOM_FIELDS.items()]})

    @api("GET", PREFIX + "/campos-customizados/modulos/{id:int}", name="list custom fields")
    def _custom_fields(self, request: Request) -> Response:
        module_id = int(request.params["id"])
        found = next((fields for _, (mid, fields) in CUSTOM_FIELDS.items() if mid == module_id), None)
        if found is None:
            raise _error(404, "RESOURCE_NOT_FOUND", "Recurso não encontrado", "O módulo não foi encontrado.")
        return Response.json(200, {"data": [{"id": fid, "nome": name, "situacao": 1, "tipoCampo": {"id": 1, "nome": kind}, "modulo": {"id": module_id}}
                                            for fid, name, kind in found]})

    @api("GET", PREFIX + "/contatos", name="list contatos", store="contatos")
    @api("GET", PREFIX + "/pedidos/vendas", name="list pedidos", store="pedidos")
    def _list(self, request: Request) -> Response:
        """One page (``pagina``/``limite``) of the records changed in the date window that pass the resource's filters."""
        store = request.route.meta["store"]
        page, limit = self._page_params(request)
        found = list(request.account.stores[store].select())
        for keep in (*self._date_window(request), *(self._contatos_wanted if store == "contatos" else self._pedidos_wanted)(request)):
            found = list(filter(keep, found))
        if (order := LIST_ORDERS[self.config.list_order]) is not None:
            found.sort(key=order)
        keys = () if self.config.list_shape == "full" else RESOURCES[store].summary
        return Response.json(200, {"data": [{k: r[k] for k in keys} if keys else dict(r.values) for r in found[(page - 1) * limit : page * limit]]})

    def _record(self, request: Request) -> Record:
        store = request.route.meta["store"]
        record = request.account.stores[store].live(int(request.params["id"]))
        if record is None:
            raise _error(404, "RESOURCE_NOT_FOUND", "Recurso não encontrado", RESOURCES[store].not_found)
        return record

    @api("GET", PREFIX + "/contatos/consumidor-final", name="consumidor final")
    def _consumidor_final(self, request: Request) -> Response:
        return Response.json(200, {"data": dict(request.account.stores["contatos"].rows[request.account.consumidor_final_id].values)})

    @api("GET", PREFIX + "/contatos/{id:int}", name="get contato", store="contatos")
    @api("GET", PREFIX + "/pedidos/vendas/{id:int}", name="get pedido", store="pedidos")
    def _get(self, request: Request) -> Response:
        return Response.json(200, {"data": dict(self._record(request).values)})

    @api("POST", PREFIX + "/contatos", name="create contato", store="contatos")
    @api("POST", PREFIX + "/pedidos/vendas", name="create pedido", store="pedidos")
    def _create(self, request: Request) -> Response:
        store, body = request.account.stores[request.route.meta["store"]], self.body_object(request)
        self._validate(store.name, request.account, body)
        return Response.json(201, {"data": {"id": self.write(store, None, self._new_values(store, body), self.stamp()).id}})

    @api("PUT", PREFIX + "/contatos/{id:int}", name="update contato", store="contatos")
    @api("PATCH", PREFIX + "/contatos/{id:int}", name="update contato (patch)", store="contatos")
    @api("PUT", PREFIX + "/pedidos/vendas/{id:int}", name="update pedido", store="pedidos")
    @api("PATCH", PREFIX + "/pedidos/vendas/{id:int}", name="update pedido (patch)", store="pedidos")
    def _update(self, request: Request) -> Response:
        """Contatos take the fields a body may set; a pedido is rebuilt from its values and the body's."""
        store, record = request.account.stores[request.route.meta["store"]], self._record(request)
        contato = store.name == "contatos"
        merged = self._merge_contato(record.values, self.body_object(request)) if contato else {**record.values, **self.body_object(request)}
        self._validate(store.name, request.account, merged)
        self.write(store, record, merged if contato else self._pedido_body(record.id, record["numero"], priced(merged)), self.stamp())
        return Response.empty(204) if request.method == "PUT" else Response.json(200, {"data": {"id": record.id}})

    @api("DELETE", PREFIX + "/contatos/{id:int}", name="delete contato", store="contatos")
    @api("DELETE", PREFIX + "/pedidos/vendas/{id:int}", name="delete pedido", store="pedidos")
    def _delete(self, request: Request) -> Response:
        self.remove(request.account.stores[request.route.meta["store"]], self._record(request))
        return Response.empty(204)

    def _validate(self, store: str, company: Company, body: Mapping[str, Any]) -> None:
        """Every failed check of the body in one ``VALIDATION_ERROR`` envelope."""
        resource = RESOURCES[store]
        checks = self._contato_checks(body) if store == "contatos" else self._pedido_checks(company, body)
        problems = [{"code": code, "msg": msg, "element": element, "namespace": resource.namespace, **dict(*extra)}
                    for code, element, failed, msg, *extra in checks if failed]
        if problems:
            raise _error(400, "VALIDATION_ERROR", resource.refusal, "Verifique os campos informados.", fields=problems)

    @staticmethod
    def _contato_checks(body: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
        """(code, element, failed, message) of each contato check."""
        tipo, doc, email = body.get("tipo") or "F", only_digits(body.get("numeroDocumento")), str(body.get("email") or "")
        yield 1, "nome", not str(body.get("nome") or "").strip(), "O campo nome é obrigatório"
        yield 2, "tipo", tipo not in ("F", "J", "E"), "Tipo de pessoa inválido"
        yield 3, "numeroDocumento", doc and tipo == "F" and not is_valid_cpf(doc), f"O CPF {body.get('numeroDocumento')} é inválido"
        yield 3, "numeroDocumento", doc and tipo == "J" and not is_valid_cnpj(doc), f"O CNPJ {body.get('numeroDocumento')} é inválido"
        yield 4, "email", email and not formats.EMAIL_RE.match(email), f"O e-mail {email} é inválido"

    @staticmethod
    def _pedido_checks(company: Company, body: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
        """(code, element, failed, message[, details]) of each pedido check; one per item with a bad valor."""
        contato = (body.get("contato") or {}).get("id")
        yield 10, "contato", not contato or int(contato) not in company.stores["contatos"].rows, "O contato do pedido é obrigatório"
        itens = body.get("itens")
        yield 11, "itens", not isinstance(itens, list) or not itens, "O pedido deve ter ao menos um item"
        for index, item in enumerate(itens if isinstance(itens, list) else ()):
            yield 12, "valor", not _valid_valor(item), "Valor do item inválido", {"collection": [
                {"index": index, "code": 12, "msg": "O valor deve ser um número não negativo", "element": "valor", "namespace": "ITENS"}]}

    @staticmethod
    def _merge_contato(base: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        """``base`` with what the body sets; custom field values merge by field (known fields only, blanks dropped)."""
        merged = dict(base)
        merged.update({key: "" if body[key] is None else str(body[key]) for key in TEXT_FIELDS if key in body})
        merged.update({key: body[key] for key in OBJECT_FIELDS if body.get(key) is not None})
        if body.get("situacao") in ("A", "I", "S"):
            merged["situacao"] = body["situacao"]
        if isinstance(body.get("camposCustomizados"), list):
            values = {int(v["idCampoCustomizado"]): v.get("valor") for v in merged.get("camposCustomizados") or []}
            known = {fid for fid, _, _ in CUSTOM_FIELDS["Contatos"][1]}
            for item in body["camposCustomizados"]:
                if isinstance(item, dict) and int(item.get("idCampoCustomizado") or 0) in known:
                    values[int(item["idCampoCustomizado"])] = "" if item.get("valor") is None else str(item["valor"])
            merged["camposCustomizados"] = [{"idCampoCustomizado": fid, "valor": value} for fid, value in sorted(values.items()) if value not in (None, "")]
        return merged

    def _new_values(self, store: RecordStore, body: Mapping[str, Any]) -> dict[str, Any]:
        """A new contato (blank where the body says nothing) or pedido (numbered in sequence, priced from its itens)."""
        record_id = store.allocate_id()
        if store.name == "pedidos":
            return self._pedido_body(record_id, store.count() + store.count(deleted=True) + 1, priced(body))
        base = self._seed_contato(FakeData(f"blank-{record_id}"), body.get("tipo") or "F") | BLANK_CONTATO
        return self._merge_contato(base, body) | {"id": record_id, "situacao": "A"}

    def write(self, store: RecordStore, record: Record | None, values: Mapping[str, Any], stamp: int) -> Record:
        if record is None:
            return store.insert(dict(values), stamp, record_id=values["id"])
        store.update(record, values, stamp)
        return record

    def remove(self, store: RecordStore, record: Record) -> None:
        """Contatos are excluded (situação E, a new dataAlteracao if so configured); pedidos deleted."""
        if store.name == "pedidos":
            store.delete(record, self.stamp())
        elif record["situacao"] != "E":
            record.values["situacao"] = "E"
            if self.config.delete_touches_modified:
                store.touch(record, self.stamp())
            self._emit(self.owner_of(store), store, "deleted", record)

    def on_change(self, company: Account, store: RecordStore, action: str, record: Record, previous: Mapping[str, Any]) -> None:
        self._emit(company, store, {"create": "created", "update": "updated", "delete": "deleted"}[action], record)

    def _emit(self, company: Account, store: RecordStore, action: str, record: Record) -> None:
        resource = RESOURCES[store.name]
        data = {"id": record.id} if action == "deleted" else {k: record[k] for k in resource.event_fields}
        self.emit({"eventId": str(uuid.uuid4()), "date": datetime.fromtimestamp(self.clock.timestamp(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "version": "v1", "event": f"{resource.event}.{action}", "companyId": company.id, "data": data})

    def sign_delivery(self, body: bytes, url: str) -> dict[str, str]:
        from crm_pipelines.webhooks.signatures import sign_bling

        return {"X-Bling-Signature-256": sign_bling(self.config.client_secret, body)}

    def insert_contato(self, body: Mapping[str, Any], *, updated: datetime | None = None, account: str | None = None) -> Record:
        """Create a contato directly (as a user of Bling's UI would)."""
        return self._insert("contatos", body, int(updated.timestamp()) if updated else None, account)

    def insert_pedido(self, body: Mapping[str, Any], *, account: str | None = None) -> Record:
        return self._insert("pedidos", body, None, account)

    def _insert(self, store_name: str, body: Mapping[str, Any], stamp: int | None, account: str | None) -> Record:
        with self.lock:
            store = self.account(account).stores[store_name]
            return self.write(store, None, self._new_values(store, body), self.stamp() if stamp is None else stamp)

    def new_values(self, company: Account, store: RecordStore, entity: str) -> dict[str, Any]:
        """A generated contato of the entity's tipo, or a pedido of Consumidor Final with one item."""
        if entity != "deals":
            return self._new_values(store, self._seed_contato(company.extra, ENTITY_SPECS[entity].tipo))
        deal = company.extra.deal()
        return self._new_values(store, {"contato": {"id": company.consumidor_final_id}, "observacoes": deal["name"],
                                        "itens": [{"descricao": deal["name"], "quantidade": 1, "valor": float(deal["amount"] or 0)}]})

    def _selected(self, entity: str, deleted: bool, account: str | None) -> tuple[RecordStore, list[Record]]:
        store = self.entity_store(entity, account)
        if entity == "deals":
            return store, list(store.select(deleted))
        tipo, cf = ENTITY_SPECS[entity].tipo, self.account(account).consumidor_final_id
        return store, [r for r in store.select() if r["tipo"] == tipo and r.id != cf and (r["situacao"] == "E") == deleted]

    def updated_at(self, entity: str, record_id: str, *, account: str | None = None) -> int:
        """Epoch seconds of a record's dataAlteracao."""
        return self.entity_store(entity, account).rows[int(record_id)].updated

    def random_changes(self, company: Account, store: RecordStore, record: Record) -> dict[str, Any]:
        if store.name == "pedidos":
            total = round(record["total"] + 10.5, 2)
            return {"total": total, "totalProdutos": total}
        return {"telefone": f"(11) 9{company.rng.randrange(1000, 9999)}-{company.rng.randrange(1000, 9999)}"}

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


__all__ = ["BlingSimConfig", "BlingSimulator", "Company", "LOCAL_TZ", "error_body", "local_text", "parse_local"]
