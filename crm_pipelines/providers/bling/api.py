"""Bling API v3: endpoints, limits, OAuth refresh, error handling and the HTTP client.

Facts (../shared/PROVIDERS.md §5, §8): OAuth 2.0 Bearer tokens (about 6 h), refreshed at
``POST /oauth/token`` with HTTP Basic client auth and ``grant_type=refresh_token``; each refresh
returns a new refresh token. Lists page with ``pagina``/``limite`` (100 at most) and answer
``{"data": [...]}`` only. ``dataAlteracaoInicial``/``dataAlteracaoFinal`` are local times
(America/Sao_Paulo) to the second. 3 requests per second and 120,000 per day per account; over
the limit, 429 ``{"error": {"type": "TOO_MANY_REQUESTS", ...}}``. Errors use the envelope
``{"error": {type, message, description, fields: [{code, msg, element, namespace}]}}``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from crm_pipelines.core.errors import ConfigurationError, ProviderError, QuotaExhausted, RetryableError
from crm_pipelines.core.http import ApiClient, CallStats, ResponsePolicy, safe_json, tls_context
from crm_pipelines.core.ratelimit import SlidingWindowLimiter, shared_limiter
from crm_pipelines.core.redact import register, register_basic

log = logging.getLogger(__name__)

PROVIDER = "bling"
BASE_URL = "https://api.bling.com.br/Api/v3"
TOKEN_PATH = "/oauth/token"
PAGE_MAX = 100
PER_SECOND = 3
DAILY_LIMIT = 120_000
#: On a 429 for the per-second limit, wait at least this long (§8).
RATE_LIMIT_WAIT_S = 1.0
#: A token refused within this many seconds of its refresh is not refreshed again: something
#: other than expiry is wrong, and Bling blocks clients that call /oauth/token >20 times a minute.
MIN_REFRESH_INTERVAL_S = 5.0
LOCAL_TZ = ZoneInfo("America/Sao_Paulo")
LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class EntitySpec:
    """Where a canonical entity lives in Bling."""

    path: str
    tipo: str | None = None  #: contatos' ``tipo`` (F/J) for contacts and companies
    tipo_pessoa: int | None = None  #: the list filter ``tipoPessoa`` (1 física, 2 jurídica)
    has_excluded: bool = False  #: excluded records are listed with ``criterio=2``


ENTITY_SPECS: dict[str, EntitySpec] = {
    "contacts": EntitySpec("contatos", "F", 1, True),
    "companies": EntitySpec("contatos", "J", 2, True),
    "deals": EntitySpec("pedidos/vendas"),
}


#: The module of Bling's custom fields (campos customizados) holding each entity.
CUSTOM_FIELD_MODULES = {"contacts": "Contatos", "companies": "Contatos", "deals": "Vendas"}


def to_local_text(moment: datetime) -> str:
    """An aware datetime as Bling's local ``YYYY-MM-DD HH:MM:SS`` (sub-seconds dropped)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(LOCAL_TZ).strftime(LOCAL_FORMAT)


def error_details(body: Any) -> tuple[str | None, str]:
    """(type, readable message with every per-field message) from Bling's error envelope."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None, ""
    parts = [str(error.get("message") or "").strip()]
    description = str(error.get("description") or "").strip()
    if description and description not in parts[0]:
        parts.append(description)
    fields = error.get("fields")
    if isinstance(fields, list):
        for item in fields:
            if not isinstance(item, Mapping):
                continue
            msg = str(item.get("msg") or "").strip()
            element = item.get("element")
            if msg:
                parts.append(f"{element}: {msg}" if element else msg)
            for sub in item.get("collection") or []:
                if isinstance(sub, Mapping) and sub.get("msg"):
                    parts.append(f"{sub.get('element') or element}[{sub.get('index')}]: {sub['msg']}")
    elif isinstance(fields, Mapping):  # {"nome": ["..."]} as some documentation examples show
        for element, msgs in fields.items():
            for msg in msgs if isinstance(msgs, list) else [msgs]:
                parts.append(f"{element}: {msg}")
    type_ = error.get("type")
    return (str(type_) if type_ else None), "; ".join(p for p in parts if p)


class BlingPolicy(ResponsePolicy):
    """Bling's 429s (per second: wait >= 1 s; per day: stop) and error envelope."""

    provider = PROVIDER

    def error_for(self, response: httpx.Response, request_line: str, limiter: SlidingWindowLimiter | None) -> ProviderError:
        status = response.status_code
        body = safe_json(response)
        type_, message = error_details(body)
        message = message or response.reason_phrase or "request failed"
        if status == 429:
            error = (body or {}).get("error") if isinstance(body, Mapping) else None
            period = str((error or {}).get("period") or "").lower() if isinstance(error, Mapping) else ""
            if period == "day" or "diári" in message.lower() or "dia " in message.lower():
                return QuotaExhausted(
                    PROVIDER,
                    f"{message} The account's daily allowance (120,000 requests) is spent; the sync stops here "
                    "and resumes after midnight (America/Sao_Paulo).",
                    status=status, category="DAILY_LIMIT", request=request_line, body=body,
                )
            if limiter is not None:
                limiter.saturate(RATE_LIMIT_WAIT_S)
            return RetryableError(PROVIDER, message, status=status, category=type_ or "TOO_MANY_REQUESTS", request=request_line, body=body,
                                  retry_after=RATE_LIMIT_WAIT_S, rate_limited=True)
        if status >= 500 or status == 408:
            return RetryableError(PROVIDER, message, status=status, category=type_, request=request_line, body=body)
        if status == 401:
            message += " (the access token was refreshed once and still refused; check the app's scopes and BLING_* credentials)"
        return ProviderError(PROVIDER, message, status=status, category=type_, request=request_line, body=body)


@dataclass
class _TokenState:
    access_token: str | None
    refresh_token: str
    expires_at: float = 0.0  #: time.monotonic() after which the access token is presumed expired
    refreshed_at: float = float("-inf")


class BlingAuth:
    """The account's OAuth tokens, shared by every client of the app in this process.

    A refresh returns a new refresh token and invalidates the old one, so the newest pair lives
    here (keyed by base URL and client id) for the life of the process, not in the resource that
    was configured with the original one. Refreshes happen once for all threads and never more
    often than :data:`MIN_REFRESH_INTERVAL_S`.
    """

    min_refresh_interval_s = MIN_REFRESH_INTERVAL_S
    _REGISTRY: dict[tuple[str, str, str], BlingAuth] = {}
    _REGISTRY_LOCK = threading.Lock()

    def __init__(self, *, base_url: str, client_id: str, client_secret: str, refresh_token: str, access_token: str | None = None,
                 transport: httpx.BaseTransport | None = None, timeout_s: float = 30.0, account: str = "", tokens: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.tokens = tokens  #: where rotated refresh tokens are kept (a TokenStore; None: the environment's database)
        self._client_id = client_id
        self._client_secret = client_secret
        self._state = _TokenState(access_token or None, refresh_token, expires_at=float("inf") if access_token else 0.0)
        self._lock = threading.Lock()
        self._transport = transport
        self._timeout_s = timeout_s
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"BlingAuth(base_url={self.base_url!r}, client_id=<hidden>)"

    @classmethod
    def shared(cls, *, base_url: str, client_id: str, client_secret: str, refresh_token: str, access_token: str | None = None,
               transport: httpx.BaseTransport | None = None, account: str = "", tokens: Any = None) -> BlingAuth:
        """One token holder per app and authorized account (an app serves many companies, each its own
        tokens); ``tokens`` is where its rotated refresh tokens are kept (the last one given wins)."""
        if not (client_id and client_secret and refresh_token):
            raise ConfigurationError("Bling needs BLING_CLIENT_ID, BLING_CLIENT_SECRET and BLING_REFRESH_TOKEN (OAuth app credentials and a refresh token)")
        key = (base_url.rstrip("/"), client_id, account)
        with cls._REGISTRY_LOCK:
            auth = cls._REGISTRY.get(key)
            if auth is None or auth._client_secret != client_secret:
                auth = cls._REGISTRY[key] = cls(base_url=base_url, client_id=client_id, client_secret=client_secret,
                                                 refresh_token=refresh_token, access_token=access_token, transport=transport, account=account)
            if tokens is not None:
                auth.tokens = tokens
            return auth

    @property
    def account_key(self) -> str:
        scope = f"{self.base_url}|{self._client_id}" + (f"|{self.account}" if self.account else "")
        return hashlib.sha256(scope.encode()).hexdigest()[:16]

    @property
    def refresh_token(self) -> str:
        """The newest refresh token (to persist elsewhere if the process is long-lived)."""
        return self._state.refresh_token

    def token(self) -> str:
        with self._lock:
            if self._state.access_token is None or time.monotonic() >= self._state.expires_at:
                self._refresh_locked()
            assert self._state.access_token
            return self._state.access_token

    def refresh_after_401(self, rejected: str) -> str:
        """A new access token after ``rejected`` got a 401 (shared when another thread already refreshed)."""
        with self._lock:
            if self._state.access_token and self._state.access_token != rejected:
                return self._state.access_token
            if time.monotonic() - self._state.refreshed_at < self.min_refresh_interval_s:
                raise ProviderError(PROVIDER, "a freshly refreshed access token was refused (401); not refreshing again so soon", status=401, category="UNAUTHORIZED")
            self._refresh_locked()
            assert self._state.access_token
            return self._state.access_token

    def _refresh_locked(self) -> None:
        from crm_pipelines.storage.tokens import TokenStore

        store = self.tokens or TokenStore.from_env()
        store.require_key()  # never spend the refresh token on a rotation that could not be kept
        stored = store.load(self.account_key)
        # The newest token another process saved, then the one this process knows; neither is
        # forgotten before a refresh with it went through (a 503 leaves both to try again).
        candidates = [t for t in dict.fromkeys([stored, self._state.refresh_token]) if t]
        for index, refresh_token in enumerate(candidates):
            try:
                self._refresh_with_locked(refresh_token)
                break
            except ProviderError as exc:
                if isinstance(exc, RetryableError) or index == len(candidates) - 1:
                    raise
        if self._state.refresh_token != stored:
            store.save(self.account_key, self._state.refresh_token)

    def _refresh_with_locked(self, refresh_token: str) -> None:
        basic = base64.b64encode(f"{self._client_id}:{self._client_secret}".encode()).decode()
        register_basic(self._client_id, self._client_secret)
        register(self._client_id, refresh_token, basic)
        self._state.refreshed_at = time.monotonic()
        try:
            with httpx.Client(transport=self._transport, timeout=self._timeout_s, verify=tls_context()) as http:
                response = http.post(
                    self.base_url + TOKEN_PATH,
                    data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                    headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise RetryableError(PROVIDER, f"token refresh failed: connection problem ({type(exc).__name__})", request=f"POST {TOKEN_PATH}") from None
        body = safe_json(response)
        if response.status_code != 200 or not isinstance(body, Mapping) or not body.get("access_token"):
            type_, message = error_details(body)
            if response.status_code == 429 or response.status_code >= 500:
                raise RetryableError(PROVIDER, f"token refresh failed: {message or response.reason_phrase}", status=response.status_code, request=f"POST {TOKEN_PATH}")
            raise ProviderError(
                PROVIDER,
                f"token refresh failed ({type_ or 'error'}: {message or response.reason_phrase}). The refresh token is invalid or "
                "expired (they last about 30 days and each refresh replaces it), or the client id/secret are wrong: authorize the "
                "app again and set BLING_REFRESH_TOKEN.",
                status=response.status_code, category=type_ or "TOKEN_REFRESH_FAILED", request=f"POST {TOKEN_PATH}",
            )
        self.refreshes += 1
        lifetime = float(body.get("expires_in") or 21_600)
        self._state.access_token = str(body["access_token"])
        self._state.refresh_token = str(body.get("refresh_token") or refresh_token)
        register(self._state.access_token, self._state.refresh_token)
        # Refresh a minute early rather than spend a request on a 401.
        self._state.expires_at = time.monotonic() + max(lifetime - 60.0, lifetime / 2)
        log.info("bling: access token refreshed (valid for %.0f s)", lifetime)


class _AuthTransport(httpx.BaseTransport):
    """Adds the Bearer token to each request; on 401 refreshes once and sends the request again."""

    def __init__(self, auth: BlingAuth, inner: httpx.BaseTransport) -> None:
        self.auth = auth
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        token = self.auth.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = self.inner.handle_request(request)
        if response.status_code != 401:
            return response
        response.read()
        response.close()
        request.headers["Authorization"] = f"Bearer {self.auth.refresh_after_401(token)}"
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class BlingClient:
    """Bling API v3 calls used by the sync, paced at 3 requests per second per account."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        access_token: str | None = None,
        base_url: str = BASE_URL,
        per_second: int = PER_SECOND,
        timeout_s: float = 30.0,
        max_attempts: int = 8,
        stats: CallStats | None = None,
        transport: httpx.BaseTransport | None = None,
        account: str = "",
        tokens: Any = None,
    ) -> None:
        self.auth = BlingAuth.shared(base_url=base_url, client_id=client_id, client_secret=client_secret,
                                     refresh_token=refresh_token, access_token=access_token, transport=transport, account=account, tokens=tokens)
        self.per_second = per_second
        limiter = shared_limiter((PROVIDER, self.auth.account_key, "per-second"), per_second, 1.0, name="bling per-second")
        self.api = ApiClient(
            provider=PROVIDER,
            base_url=base_url,
            headers={"Accept": "application/json"},
            policy=BlingPolicy(),
            limiters={"default": limiter},
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            stats=stats,
            transport=_AuthTransport(self.auth, transport or httpx.HTTPTransport()),
        )

    def __repr__(self) -> str:
        return f"BlingClient(base_url={self.auth.base_url!r})"

    @property
    def stats(self) -> CallStats:
        return self.api.stats

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> BlingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def list_page(self, entity: str, page: int, params: Mapping[str, Any] | None = None, *, limit: int = PAGE_MAX) -> list[dict[str, Any]]:
        """One page of a list (``{"data": [...]}``); filters as Bling names them."""
        spec = ENTITY_SPECS[entity]
        query: dict[str, Any] = {"pagina": page, "limite": min(limit, PAGE_MAX)}
        if spec.tipo_pessoa is not None:
            query["tipoPessoa"] = spec.tipo_pessoa
        query.update(params or {})
        body = self.api.request("GET", f"/{spec.path}", params=query, kind="list") or {}
        data = body.get("data") if isinstance(body, Mapping) else None
        return data if isinstance(data, list) else []

    def iter_pages(self, entity: str, params: Mapping[str, Any] | None = None, *, start_page: int = 1) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """``(page number, items)`` until a page has fewer than ``limite`` items."""
        page = start_page
        while True:
            items = self.list_page(entity, page, params)
            yield page, items
            if len(items) < PAGE_MAX:
                return
            page += 1

    def get_one(self, entity: str, record_id: str) -> dict[str, Any] | None:
        """One full record, or None when Bling answers 404."""
        try:
            body = self.api.request("GET", f"/{ENTITY_SPECS[entity].path}/{record_id}", kind="get")
        except ProviderError as exc:
            if exc.status == 404:
                return None
            raise
        data = body.get("data") if isinstance(body, Mapping) else None
        return data if isinstance(data, dict) else None

    def consumidor_final_id(self) -> str:
        body = self.api.request("GET", "/contatos/consumidor-final", kind="get") or {}
        return str((body.get("data") or {}).get("id"))

    def custom_field_list(self, entity: str) -> list[dict[str, Any]]:
        """The company's custom fields (campos customizados) of the module holding ``entity``."""
        modules = (self.api.request("GET", "/campos-customizados/modulos", kind="fields") or {}).get("data") or []
        wanted = CUSTOM_FIELD_MODULES[entity]
        module = next((m for m in modules if isinstance(m, dict) and str(m.get("nome")) == wanted), None)
        if module is None:
            return []
        found = (self.api.request("GET", f"/campos-customizados/modulos/{int(module['id'])}", kind="fields") or {}).get("data") or []
        return [f for f in found if isinstance(f, dict) and f.get("id") and f.get("nome")]

    # ------------------------------------------------------------------ writes

    def create(self, entity: str, payload: Mapping[str, Any]) -> str:
        body = self.api.request("POST", f"/{ENTITY_SPECS[entity].path}", json=dict(payload), kind="write", idempotent=False) or {}
        return str((body.get("data") or {}).get("id"))

    def update(self, entity: str, record_id: str, payload: Mapping[str, Any]) -> None:
        self.api.request("PUT", f"/{ENTITY_SPECS[entity].path}/{record_id}", json=dict(payload), kind="write")


def custom_fields(client: BlingClient, entity: str) -> list:
    """The company's custom fields of ``entity`` (``GET /campos-customizados/modulos/{id}``), named as
    a mapping file names them (``camposCustomizados.NAME``)."""
    from crm_pipelines.mapping.discovery import ProviderField

    return [ProviderField(f"camposCustomizados.{f['nome']}", str(f["nome"]), str((f.get("tipoCampo") or {}).get("nome") or "Texto"))
            for f in client.custom_field_list(entity)]


__all__ = ["BASE_URL", "BlingAuth", "BlingClient", "BlingPolicy", "ENTITY_SPECS", "PAGE_MAX", "PER_SECOND", "PROVIDER", "error_details", "to_local_text"]
