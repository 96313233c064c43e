"""The simulator toolkit: what every provider simulator shares.

A simulator is a real HTTP/1.1 server (uvicorn, in a background thread) answering like one
provider's API. :class:`Simulator` owns the plumbing; a provider subclass declares its routes with
:func:`api` (path templates in Starlette's syntax, ``/crm/v3/objects/{obj}``), its accounts (an
:class:`Account` subclass holding the account's records and limits) and the provider-shaped
answers for unknown paths, injected faults and failed authentication.

Every API request goes through the same pipeline: route match (404/405 in the provider's words),
fault injection (:mod:`.faults`), authentication (the account is found by its token, and by host
for providers whose URL names the account), the provider's limits (:meth:`Simulator.admit`), then
the handler under the simulator's lock; :class:`ApiError` carries a ready error answer. Admin
routes under ``/_simulator/`` (health, stats, faults, clock, mutations, accounts) are never
faulted nor counted as API traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import random
import re
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.datastructures import Headers
from starlette.routing import compile_path

from crm_pipelines.simulator.clock import SimClock, parse_datetime, seeded_time, utc_iso_ms
from crm_pipelines.simulator.config import AccountSpec, SimConfig, add_config_arguments, config_from_arguments
from crm_pipelines.simulator.faults import Fault, FaultConfig, FaultInjector
from crm_pipelines.simulator.store import Record, RecordStore
from crm_pipelines.simulator.webhooks import WebhookEmitter

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_simulator/"
_NO_BODY = (204, 304)


json_dumps: Callable[[Any], bytes] = orjson.dumps
json_loads: Callable[[bytes | str], Any] = orjson.loads


class InvalidJSONBody(ValueError):
    """The request body is not valid JSON."""


class ApiError(Exception):
    """Raised inside a handler to answer with a ready (provider-shaped) error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class Request:
    """One parsed HTTP request. ``params`` are the path parameters; ``account`` is the account the
    credentials named; ``response_headers`` are added to whatever the handler answers."""

    __slots__ = ("method", "path", "query", "headers", "body", "raw_target", "params", "account", "token", "route", "response_headers")

    def __init__(self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes, raw_target: str = "") -> None:
        self.method, self.path, self.query, self.headers, self.body, self.raw_target = method, path, query, headers, body, raw_target
        self.params: dict[str, str] = {}
        self.account: Any = None
        self.token: str | None = None
        self.route: Route | None = None
        self.response_headers: dict[str, str] = {}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def host(self) -> str:
        return (self.header("host") or "").rsplit(":", 1)[0].lower()

    def query_value(self, name: str, default: str | None = None) -> str | None:
        """The last value of query parameter ``name`` (or ``default``)."""
        values = self.query.get(name)
        return values[-1] if values else default

    def query_list(self, name: str) -> list[str]:
        """Every value of ``name``; comma-separated values are split (``a,b&c`` -> a, b, c)."""
        return [part.strip() for value in self.query.get(name, []) for part in value.split(",") if part.strip()]

    def json(self) -> Any:
        """The body parsed as JSON; an empty body is ``None``; raises :class:`InvalidJSONBody`."""
        if not self.body.strip():
            return None
        try:
            return json_loads(self.body)
        except ValueError as exc:
            raise InvalidJSONBody(str(exc)) from exc


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, {"Content-Type": "application/json;charset=utf-8", **(headers or {})}, json_dumps(payload))

    @classmethod
    def empty(cls, status: int = 204, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, dict(headers or {}), b"")


@dataclass(frozen=True)
class Route:
    """A method and path template bound to a handler. ``api`` routes are faulted, authenticated
    (unless ``auth=False``) and counted under ``name``; ``meta`` is free for the provider."""

    method: str
    path: str
    handler: Callable[[Request], Response]
    name: str
    api: bool = True
    auth: bool = True
    meta: Mapping[str, Any] = field(default_factory=dict)


def api(method: str, path: str, *, name: str | None = None, auth: bool = True, **meta: Any) -> Callable:
    """Declare a simulator method as the handler of ``method path`` (a template ending in ``/?``
    also matches with a trailing slash). Stack several to serve several routes."""
    return _declare(method.upper(), path, name, True, auth, meta)


def admin(method: str, path: str) -> Callable:
    """Declare an admin route (under ``/_simulator/``; no faults, no token)."""
    return _declare(method.upper(), ADMIN_PREFIX + path, f"admin {path}", False, False, {})


def _declare(*route: Any) -> Callable:
    """A decorator noting ``route`` (the fields of :class:`Route` but the handler) on the handler."""

    def mark(handler: Callable) -> Callable:
        handler.__dict__.setdefault("_routes", []).insert(0, route)
        return handler

    return mark


class RequestStats:
    """Thread-safe counters of API traffic (admin routes are counted separately)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._total = self._admin = 0
            self._by_route: Counter[str] = Counter()
            self._by_status: Counter[int] = Counter()
            self._rate_limited: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()
            self._since = time.time()
            self._arrivals: deque[float] = deque(maxlen=1_000_000)

    def record_response(self, route: str, status: int | None) -> None:
        """Count one API request and its status (``None`` when the connection was reset)."""
        with self._lock:
            self._total += 1
            self._arrivals.append(time.time())
            self._by_route[route] += 1
            if status is not None:
                self._by_status[status] += 1

    def arrival_times(self) -> list[float]:
        """Wall-clock times of the API requests answered (the last million), for rate figures."""
        with self._lock:
            return list(self._arrivals)

    def record_admin(self) -> None:
        with self._lock:
            self._admin += 1

    def record_rate_limited(self, policy: str) -> None:
        """Count one 429 (or 403) served by the provider's own rate-limit policy ``policy``."""
        with self._lock:
            self._rate_limited[policy] += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total_requests": self._total, "admin_requests": self._admin, "by_route": dict(self._by_route),
                "by_status": {str(code): count for code, count in sorted(self._by_status.items())},
                "rate_limited": dict(self._rate_limited), "rate_limited_total": sum(self._rate_limited.values()),
                "faults": dict(self._faults), "faults_total": sum(self._faults.values()),
                "since": datetime.fromtimestamp(self._since, tz=timezone.utc).isoformat(),
            }


class Account:
    """One account of a simulator: its id, the tokens it accepts, the host that names it (if the
    provider's URL does), its record stores and a seeded RNG for test mutations. Providers subclass
    it to add the account's limits and seed its records in ``__init__``."""

    #: The account's rate-limit windows and counters (``POST /_simulator/reset-rate-limits`` empties them).
    limiters: tuple[Any, ...] = ()

    def __init__(self, sim: Simulator, spec: AccountSpec, *, host: str | None = None) -> None:
        self.id, self.spec, self.host = spec.id, spec, host
        self.stores: dict[str, RecordStore] = {}
        self.default = not sim.accounts
        self.seed = str(sim.config.seed) if self.default else f"{sim.config.seed}-{spec.id}"
        self.rng = random.Random(f"{self.seed}-mutations")

    def count_of(self, sim: Simulator, entity: str) -> int:
        return sim.config.count_of(entity, None if self.default else self.spec)


class Simulator:
    """Base class of every provider simulator. See the module docstring.

    Subclasses set :attr:`config_class`, :attr:`account_class` and :attr:`ENTITIES` (names the
    Python-side helpers accept -> store names), declare routes with :func:`api`, and implement
    :meth:`default_account_spec`, :meth:`credentials`, :meth:`admit` and the provider-shaped
    answers; :meth:`record_view`, :meth:`new_values` and :meth:`random_changes` serve the
    Python-side helpers used by tests (:meth:`records`, :meth:`count`, :meth:`create`,
    :meth:`modify`, :meth:`delete`).

    Usage::

        with MySimulator(MySimConfig(...)) as sim:   # started, stopped on exit
            httpx.get(sim.base_url + "/...")
    """

    provider = "generic"
    server_name = "crm-pipelines-simulator"
    config_class: ClassVar[type[SimConfig]] = SimConfig
    account_class: ClassVar[type[Account]] = Account
    ENTITIES: ClassVar[Mapping[str, str]] = {}
    #: The configuration field ``--token`` fills; old option names -> new ones; command-line defaults.
    TOKEN_FIELD: ClassVar[str] = "tokens"
    CLI_ALIASES: ClassVar[Mapping[str, str]] = {}
    CLI_DEFAULTS: ClassVar[Mapping[str, Any]] = {}
    #: Whether :meth:`modify` stamps records a time unit apart (else all with one stamp).
    SPREAD_MODIFICATIONS: ClassVar[bool] = False

    def __init__(self, config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = cfg = config or self.config_class()
        cfg.validate()
        self.host, self.port = host, port
        self.clock = SimClock(cfg.clock_start or cfg.reference_time, frozen=cfg.freeze_clock)
        self.reference = cfg.reference_time or self.clock.now()
        self.lock = self._lock = threading.RLock()
        self.in_api = False  #: True while an API handler runs (changes come from the API, not the app)
        self.event_ids = itertools.count(1)  #: serial numbers of webhook events
        self._injector = FaultInjector(cfg.faults)
        self._late_pending: list[tuple[Route, Request]] = []  # requests held back by a ``late`` fault
        self._stats = RequestStats()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._started_at: float | None = None
        self.accounts: dict[str, Account] = {}
        self._by_token: dict[Any, Account] = {}
        self.webhooks = WebhookEmitter(cfg.webhook_url, sign=self.sign_delivery, build_body=self.delivery_bodies, on_retry=self.on_retry,
                                       batch_max=getattr(cfg, "webhook_batch_max", 1), max_attempts=cfg.webhook_max_attempts,
                                       retry_base_s=cfg.webhook_retry_base_s,
                                       retry_max_s=max(30.0, cfg.webhook_retry_base_s * 50)) if cfg.webhook_url else None
        self._routes = [Route(method, path, getattr(self, handler.__name__), name or f"{method} {path}", is_api, auth, meta)
                        for handler in self._declared() for method, path, name, is_api, auth, meta in handler._routes]
        compiled = [(route, *_compile(route.path)) for route in sorted(self._routes, key=lambda r: not r.api)]  # API routes first
        self._by_method: dict[str, list[tuple[Route, Any, dict[str, Any]]]] = {}
        for entry in compiled:
            self._by_method.setdefault(entry[0].method, []).append(entry)
        self._compiled = compiled
        self.add_account(self.default_account_spec())
        for spec in cfg.accounts:
            self.add_account(spec)

    @classmethod
    def _declared(cls) -> Iterator[Callable]:
        seen: set[str] = set()
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if hasattr(value, "_routes") and name not in seen:
                    seen.add(name)
                    yield value

    def default_account_spec(self) -> AccountSpec:
        return AccountSpec("default", tuple(getattr(self.config, self.TOKEN_FIELD, ())))

    def add_account(self, spec: AccountSpec) -> Account:
        """Create an account (its records seeded) and accept its tokens."""
        with self.lock:
            if spec.id in self.accounts:
                raise ValueError(f"account {spec.id} exists")
            account = self.account_class(self, spec)
            self.accounts[account.id] = account
            for token in spec.tokens:
                self.bind_token(token, account)
            for store in account.stores.values():
                store.on_change = self._change_listener(account, store)
            return account

    def account(self, account_id: str | None = None) -> Account:
        """The account ``account_id`` (default: the first one)."""
        if account_id is None:
            return next(iter(self.accounts.values()))
        try:
            return self.accounts[str(account_id)]
        except KeyError:
            raise ValueError(f"unknown account {account_id!r}") from None

    def bind_token(self, token: Any, account: Account) -> None:
        self._by_token[token] = account

    def unbind_token(self, token: Any) -> None:
        self._by_token.pop(token, None)

    def authenticate(self, request: Request) -> Account | Response | None:
        """The account the request's credentials (and host, for providers whose URL names the
        account) designate; ``None`` answers :meth:`unauthorized_response`."""
        token = self.credentials(request)
        account = self._by_token.get(token) if token else None
        if account is not None and account.host and request.host.endswith(self.account_hosts) and request.host != account.host:
            return None
        request.token = token
        return account

    account_hosts: ClassVar[tuple[str, ...]] = ()

    def credentials(self, request: Request) -> Any:
        """The token the request carries (the key of :meth:`bind_token`)."""
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def admit(self, request: Request) -> Response | None:
        """The provider's limits for an authenticated request: a rejection, or ``None`` (and
        ``request.response_headers`` for the answer)."""
        return None

    #: The provider's own answers: kind -> (status, arguments of :meth:`error_response`); strings
    #: are formatted with ``request`` and ``error`` (the JSON parse error).
    ANSWERS: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "unauthorized": (401, "unauthorized"), "not_found": (404, "not found"), "method_not_allowed": (405, "method not allowed"),
        "internal_error": (500, "internal error"), "invalid_json": (400, "invalid JSON: {error}"),
        "not_an_object": (400, "the body must be a JSON object"),
    }

    def error_response(self, status: int, *args: Any) -> Response:
        """The provider's error body."""
        return Response.json(status, {"error": args[0]})

    def answer(self, kind: str, request: Request, error: Exception | None = None) -> Response:
        status, *args = self.ANSWERS[kind]
        return self.error_response(status, *(a.format(request=request, error=error) if isinstance(a, str) else a for a in args))

    def unauthorized_response(self, request: Request) -> Response:
        return self.answer("unauthorized", request)

    def not_found_response(self, request: Request) -> Response:
        return self.answer("not_found", request)

    def fault_response(self, status: int, request: Request) -> Response:
        """Provider-shaped answer for an injected ``status`` (429 or 5xx, or any 4xx)."""
        return Response.json(status, {"error": f"HTTP {status}"})

    def describe(self) -> dict[str, Any]:
        """Extra provider facts for ``GET /_simulator/health``."""
        return {}

    def reset_rate_limits(self) -> None:
        """Forget rate-limit usage (``POST /_simulator/reset-rate-limits``): every account's :attr:`Account.limiters`."""
        for account in self.accounts.values():
            for limiter in account.limiters:
                limiter.reset()

    def over_limit(self, key: Any, *limits: tuple[str, Any]) -> str | None:
        """Take one unit from each ``(policy, limiter)`` in turn under ``key``; the policy of the
        first that refuses (counted in the statistics), else ``None``."""
        for policy, limiter in limits:
            if not limiter.try_acquire(key).allowed:
                self._stats.record_rate_limited(policy)
                return policy
        return None

    @property
    def reference_ms(self) -> int:
        return int(self.reference.timestamp() * 1000)

    def seeded_history(self, rng: random.Random) -> tuple[int, int]:
        """A seeded (created, modified) pair within ``history_days`` before the reference time, in
        the provider's time unit (:attr:`stamps_per_second`)."""
        end = int(self.reference.timestamp() * self.stamps_per_second)
        created = seeded_time(rng, end - int(self.config.history_days * 86_400 * self.stamps_per_second), end)
        return created, seeded_time(rng, created, end)

    def owner_of(self, store: RecordStore) -> Account:
        """The account holding ``store``."""
        return next(a for a in self.accounts.values() if store in a.stores.values())

    def body_object(self, request: Request) -> dict[str, Any]:
        """The request body, a JSON object; else the provider's ``not_an_object`` answer."""
        body = request.json()
        if not isinstance(body, dict):
            raise ApiError(self.answer("not_an_object", request))
        return body

    def on_change(self, account: Account, store: RecordStore, action: str, record: Record, previous: Mapping[str, Any]) -> None:
        """A record of ``account`` was created, updated or deleted (through the API or a helper)."""

    def _change_listener(self, account: Account, store: RecordStore) -> Callable[[str, Record, Mapping[str, Any]], None]:
        return lambda action, record, previous: self.on_change(account, store, action, record, previous)

    def emit(self, event: dict[str, Any]) -> None:
        if self.webhooks is not None:
            self.webhooks.enqueue(event)

    def sign_delivery(self, body: bytes, url: str) -> dict[str, str]:
        return {}

    def delivery_bodies(self, events: list[dict[str, Any]]) -> list[tuple[bytes, dict[str, str]]]:
        """One POST per event by default; HubSpot sends arrays."""
        return [(json_dumps(event), {}) for event in events]

    def on_retry(self, events: list[dict[str, Any]], attempt: int) -> None:
        """Update events before a retry (attempt counters)."""

    def stamp(self) -> int:
        """Now, in the unit of the provider's record times."""
        return self.clock.now_ms()

    def entity_store(self, entity: str, account: str | None = None) -> RecordStore:
        name = self.ENTITIES.get(entity)
        if name is None:
            raise ValueError(f"unknown entity {entity!r}; expected one of {sorted(self.ENTITIES)}")
        return self.account(account).stores[name]

    def entity_filter(self, entity: str) -> Callable[[Record], bool] | None:
        """Which records of the entity's store belong to ``entity`` (``None``: all)."""
        return None

    def record_key(self, store: RecordStore, record: Record) -> str:
        return str(record.id)

    def record_view(self, store: RecordStore, record: Record) -> dict[str, Any]:
        """The record as the API shows it."""
        return dict(record.values)

    def new_values(self, account: Account, store: RecordStore, entity: str) -> dict[str, Any]:
        """Values of one generated record of ``entity``."""
        raise NotImplementedError

    def random_changes(self, account: Account, store: RecordStore, record: Record) -> dict[str, Any]:
        raise NotImplementedError

    def write(self, store: RecordStore, record: Record | None, values: Mapping[str, Any], stamp: int) -> Record:
        """Create (``record`` None) or change a record; providers add their system fields."""
        if record is None:
            return store.insert(dict(values), stamp)
        store.update(record, values, stamp)
        return record

    def remove(self, store: RecordStore, record: Record) -> None:
        """Delete a record as the provider does (soft by default)."""
        store.delete(record, self.stamp())

    def _selected(self, entity: str, deleted: bool, account: str | None) -> tuple[RecordStore, list[Record]]:
        store, keep = self.entity_store(entity, account), self.entity_filter(entity)
        return store, [r for r in store.select(deleted) if keep is None or keep(r)]

    def records(self, entity: str, deleted: bool = False, *, account: str | None = None) -> dict[str, dict[str, Any]]:
        """key -> API-shaped record, for live (or deleted) records of ``entity``."""
        with self.lock:
            store, chosen = self._selected(entity, deleted, account)
            return {self.record_key(store, r): self.record_view(store, r) for r in chosen}

    def count(self, entity: str, deleted: bool = False, *, account: str | None = None) -> int:
        with self.lock:
            return len(self._selected(entity, deleted, account)[1])

    def _pick(self, entity: str, n: int | None, ids: Iterable[Any] | None, account: str | None) -> tuple[RecordStore, list[Record]]:
        store, live = self._selected(entity, False, account)
        if ids is None:
            return store, self.account(account).rng.sample(live, min(1 if n is None else n, len(live)))
        keys = self._keyed(store, live)
        missing = [i for i in ids if str(i) not in keys]
        if missing:
            raise KeyError(f"{entity} {missing[0]} does not exist or is deleted")
        return store, [keys[str(i)] for i in ids]

    def _keyed(self, store: RecordStore, records: list[Record]) -> dict[str, Record]:
        """Records by key and by bare id (both name a record in the helpers)."""
        return {str(r.id): r for r in records} | {self.record_key(store, r): r for r in records}

    def create(self, entity: str, n: int = 1, *, account: str | None = None) -> list[str]:
        """Create ``n`` generated records stamped with the simulated now; returns their keys."""
        with self.lock:
            store = self.entity_store(entity, account)
            new = (self.write(store, None, self.new_values(self.account(account), store, entity), self.stamp()) for _ in range(n))
            return [self.record_key(store, record) for record in new]

    def modify(self, entity: str, n: int | None = None, ids: Iterable[Any] | None = None, *, same_timestamp: bool | None = None,
               changes: Mapping[str, Any] | None = None, at: datetime | None = None, account: str | None = None) -> list[str]:
        """Change a few values of ``n`` seeded-random live records (or of ``ids``), stamped now (or
        ``at``). With spread modifications the records get consecutive stamps and the clock moves
        on so that none lies in the future."""
        with self.lock:
            store, chosen = self._pick(entity, n, ids, account)
            spread = self.SPREAD_MODIFICATIONS if same_timestamp is None else not same_timestamp
            start = self.stamp() if at is None else self.stamp_of(at)
            for position, record in enumerate(chosen):
                self.write(store, record, changes or self.random_changes(self.account(account), store, record), start + (position if spread else 0))
            lag = start + len(chosen) - 1 - self.stamp() if spread else 0
            if lag > 0:
                self.clock.advance(lag / self.stamps_per_second)
            return [self.record_key(store, r) for r in chosen]

    stamps_per_second = 1000

    def stamp_of(self, moment: datetime) -> int:
        return int(moment.timestamp() * self.stamps_per_second)

    def delete(self, entity: str, target: int | Iterable[Any], *, account: str | None = None) -> list[str]:
        """Delete ``target`` keys, or ``target`` seeded-random live records when it is an int."""
        with self.lock:
            if isinstance(target, int):
                store, chosen = self._pick(entity, target, None, account)
            else:
                store, live = self._selected(entity, False, account)
                keys = self._keyed(store, live)
                chosen = list({id(r): r for t in ([target] if isinstance(target, str) else target) if (r := keys.get(str(t)))}.values())
            for record in chosen:
                self.remove(store, record)
            return [self.record_key(store, r) for r in chosen]

    #: The word admin mutations use for deletions (``archive`` at HubSpot): the key and, past tense, the result.
    DELETE_WORD: ClassVar[tuple[str, str]] = ("delete", "deleted")

    def mutation_time(self) -> str:
        return self.clock.now().isoformat()

    def mutate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Admin mutation ``{"entity", "modify", "create", "delete", "ids", "same_timestamp", "account"}``."""
        word, done = self.DELETE_WORD
        unknown = set(spec) - {"entity", "modify", "create", word, "ids", "same_timestamp", "account"}
        if unknown:
            raise ValueError(f"unknown mutation keys: {sorted(unknown)}")
        entity, account, same = str(spec.get("entity", "")), spec.get("account"), spec.get("same_timestamp")
        self.entity_store(entity, account)
        result: dict[str, Any] = {"entity": entity, "modified": [], "created": [], done: []}
        if spec.get("ids") or int(spec.get("modify") or 0) > 0:
            result["modified"] = self.modify(entity, int(spec.get("modify") or 0), ids=spec.get("ids") or None,
                                             same_timestamp=None if same is None else bool(same), account=account)
        if int(spec.get("create") or 0) > 0:
            result["created"] = self.create(entity, int(spec["create"]), account=account)
        if int(spec.get(word) or 0) > 0:
            result[done] = self.delete(entity, int(spec[word]), account=account)
        return result | {"now": self.mutation_time()}

    def start(self) -> Simulator:
        """Bind the socket and serve from a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(self._asgi, log_config=None, log_level="warning", access_log=False, server_header=False,
                                               lifespan="off", interface="asgi3", proxy_headers=False,
                                               timeout_keep_alive=120, timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"{self.provider}-simulator:{self.port}", daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                sock.close()
                raise RuntimeError(f"{self.provider} simulator did not start on {self.host}:{self.port}")
            time.sleep(0.002)
        self._server, self._thread, self._started_at = server, thread, time.monotonic()
        sock.close()
        return self

    def stop(self) -> None:
        """Deliver pending webhooks, stop serving, close the port and open connections."""
        if self.webhooks is not None:
            self.webhooks.flush(timeout_s=5)
        server, self._server = self._server, None
        if server is not None:
            server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=10)
                self._thread = None
        if self.webhooks is not None:
            self.webhooks.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Start the server and yield its base URL; stop on exit."""
        with self:
            yield self.base_url

    @property
    def faults(self) -> FaultConfig:
        """The live fault configuration; mutate its fields or assign a new one."""
        return self._injector.config

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        self._injector.config = value

    def fail_next(self, n: int = 1, status: int = 503, *, kind: str = "status", delay_s: float = 1.0, route: str | None = None) -> None:
        """Make the next ``n`` API requests fail (see :meth:`FaultInjector.fail_next`)."""
        self._injector.fail_next(n, status, kind=kind, delay_s=delay_s, route=route)

    @property
    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot() | {"fail_next_pending": self._injector.pending()}

    def reset_stats(self) -> None:
        self._stats.reset()

    @property
    def stats_recorder(self) -> RequestStats:
        return self._stats

    async def _asgi(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        query = scope["query_string"].decode("latin-1")
        raw_target = scope["raw_path"].decode("latin-1") + ("?" + query if query else "")
        request = Request(scope["method"], scope["path"], parse_qs(query, keep_blank_values=True) if query else {}, Headers(raw=scope["headers"]),
                          b"".join(chunks), raw_target)
        response = await self._dispatch(request)
        if response is None:  # a reset: close the connection with RST, unanswered
            cycle = getattr(send, "__self__", None)
            transport = getattr(cycle, "transport", None)
            if transport is not None:
                with contextlib.suppress(OSError, AttributeError):
                    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                cycle.disconnected = True
                return
            response = Response(500)
        has_body = response.status not in _NO_BODY
        headers = [(b"Server", self.server_name.encode())]
        headers += [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in response.headers.items() if k.lower() != "content-length"]
        if has_body:
            headers.append((b"Content-Length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body if has_body and request.method != "HEAD" else b""})

    def _match(self, request: Request) -> tuple[Route | None, bool]:
        """The route for the request's method and path; else whether another method has the path."""
        path = request.path
        for route, regex, convertors in self._by_method.get(request.method, ()):
            found = regex.match(path)
            if found is not None:
                request.params = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
                return route, True
        return None, any(regex.match(path) for _, regex, _ in self._compiled)

    async def _dispatch(self, request: Request) -> Response | None:
        """Route one request through faults, authentication, limits, the handler and statistics;
        ``None`` when the connection must be reset without an answer."""
        route, path_matched = self._match(request)
        if route is None:
            if request.path.startswith(ADMIN_PREFIX):
                self._stats.record_admin()
                return Response.json(404, {"error": "unknown admin route", "path": request.path})
            response = self.answer("method_not_allowed", request) if path_matched else self.not_found_response(request)
            self._stats.record_response("(unmatched)", response.status)
            return response
        request.route = route
        if not route.api:
            self._stats.record_admin()
            return self._call(route, request)
        fault: Fault | None = self._injector.decide(route.name)
        if fault is not None:
            self._stats.record_fault(str(fault.status) if fault.kind == "status" else fault.kind)
            if fault.kind == "late":
                self._apply_late(route, request, fault.delay_s)
            if fault.kind in ("reset", "late"):
                self._stats.record_response(route.name, None)
                return None
            if fault.kind == "status":
                response = self.fault_response(int(fault.status or 503), request)
                self._stats.record_response(route.name, response.status)
                return response
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay_s)
        response = self._call(route, request)
        if fault is not None and fault.kind == "truncate" and response.body:
            response = Response(response.status, dict(response.headers), response.body[: max(1, len(response.body) // 2)])
        self._stats.record_response(route.name, response.status)
        return response

    def _apply_late(self, route: Route, request: Request, delay_s: float) -> None:
        """Hold ``request`` back and apply it ``delay_s`` from now (or at :meth:`land_late_writes`),
        its answer lost: the client already gave up on it."""
        entry = (route, request)
        with self.lock:
            self._late_pending.append(entry)
        asyncio.get_running_loop().call_later(delay_s, self._land, entry)

    def _land(self, entry: tuple[Route, Request]) -> bool:
        with self.lock:
            if not any(held is entry for held in self._late_pending):
                return False
            self._late_pending = [held for held in self._late_pending if held is not entry]
        response = self._call(*entry)
        log.info("%s applied late: %s", entry[0].name, response.status)
        return True

    def land_late_writes(self) -> int:
        """Apply now every request held back by a ``late`` fault; returns how many."""
        with self.lock:
            pending = list(self._late_pending)
        return sum(self._land(entry) for entry in pending)

    def late_writes_pending(self) -> int:
        with self.lock:
            return len(self._late_pending)

    def _call(self, route: Route, request: Request) -> Response:
        try:
            if route.auth:
                account = self.authenticate(request)
                if not isinstance(account, Account):
                    return account if isinstance(account, Response) else self.unauthorized_response(request)
                request.account = account
                rejection = self.admit(request)
                if rejection is not None:
                    return rejection
            with self.lock:
                self.in_api = route.api
                try:
                    response = route.handler(request)
                finally:
                    self.in_api = False
        except ApiError as exc:
            response = exc.response
        except InvalidJSONBody as exc:
            response = self.answer("invalid_json", request, exc)
        except Exception:  # a simulator bug must answer, not kill the connection silently
            log.exception("simulator handler %s failed", route.name)
            response = self.answer("internal_error", request)
        if request.response_headers:
            response.headers.update(request.response_headers)
        return response

    @admin("GET", "health")
    def _admin_health(self, _request: Request) -> Response:
        uptime = 0.0 if self._started_at is None else time.monotonic() - self._started_at
        facts = {"status": "ok", "provider": self.provider, "uptime_s": round(uptime, 3), "clock": self.clock.describe()}
        return Response.json(200, facts | self.describe())

    @admin("GET", "stats")
    def _admin_stats(self, _request: Request) -> Response:
        return Response.json(200, self.stats)

    @admin("POST", "reset-stats")
    def _admin_reset_stats(self, _request: Request) -> Response:
        self.reset_stats()
        return Response.json(200, {"status": "ok"})

    @admin("GET", "faults")
    def _admin_faults(self, _request: Request) -> Response:
        return Response.json(200, {"faults": self.faults.to_dict(), "fail_next_pending": self._injector.pending()})

    @admin("POST", "faults")
    def _admin_set_faults(self, request: Request) -> Response:
        """Replace the fault config (absent keys take defaults); optional ``fail_next``."""
        return admin_answer(lambda body: self._set_faults(body) or self._admin_faults(request), request)

    def _set_faults(self, body: dict[str, Any]) -> None:
        fail_next = body.pop("fail_next", None)
        self.faults = FaultConfig.from_dict(body)
        self._injector.clear()
        if fail_next:
            self.fail_next(int(fail_next.get("n", 1)), int(fail_next.get("status", 503)), kind=str(fail_next.get("kind", "status")),
                           delay_s=float(fail_next.get("delay_s", 1.0)), route=fail_next.get("route"))

    @admin("POST", "mutate")
    def _admin_mutate(self, request: Request) -> Response:
        return admin_answer(lambda body: Response.json(200, self.mutate(body)), request)

    @admin("GET", "clock")
    def _admin_clock(self, _request: Request) -> Response:
        return Response.json(200, self.clock.describe())

    @admin("POST", "clock")
    def _admin_set_clock(self, request: Request) -> Response:
        """Body: any of ``{"set": iso-or-ms, "advance": seconds, "freeze": bool}``."""
        return admin_answer(lambda body: self._set_clock(body) or Response.json(200, self.clock.describe()), request)

    def _set_clock(self, body: dict[str, Any]) -> None:
        if body.get("freeze") is False:
            self.clock.unfreeze()
        if "set" in body:
            self.clock.set(parse_datetime(str(body["set"])))
        if "advance" in body:
            self.clock.advance(float(body["advance"]))
        if body.get("freeze") is True:
            self.clock.freeze()

    @admin("POST", "reset-rate-limits")
    def _admin_reset_limits(self, _request: Request) -> Response:
        self.reset_rate_limits()
        return Response.json(200, {"status": "ok"})

    @admin("GET", "accounts")
    def _admin_accounts(self, _request: Request) -> Response:
        with self.lock:
            return Response.json(200, {"accounts": [self._account_summary(a) for a in self.accounts.values()]})

    @admin("POST", "accounts")
    def _admin_add_account(self, request: Request) -> Response:
        """Body: ``{"id", "tokens", "refresh_tokens", "records": {entity: n}}``; answers the account."""
        return admin_answer(lambda body: Response.json(201, self._account_summary(self.add_account(AccountSpec.from_dict(body)))), request)

    def _account_summary(self, account: Account) -> dict[str, Any]:
        return {"id": account.id, "host": account.host, "records": {name: store.count() for name, store in account.stores.items()}}

    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Options of ``python -m crm_pipelines.simulator <provider>``: one per configuration field."""
        parser.add_argument("--account", dest="accounts", action="append", type=AccountSpec.parse, metavar="ID=TOKEN[,TOKEN]",
                            help="another account (repeatable); refresh:TOKEN for an OAuth refresh token")
        add_config_arguments(parser, cls.config_class, cls.CLI_DEFAULTS, {"--no-rate-limits": "--no-rate-limits-enabled", **cls.CLI_ALIASES})

    @classmethod
    def config_from_cli_args(cls, args: argparse.Namespace) -> SimConfig:
        return config_from_arguments(cls.config_class, args, **({cls.TOKEN_FIELD: tuple(args.token)} if getattr(args, "token", None) else {}))

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> Simulator:
        return cls(cls.config_from_cli_args(args), host=args.host, port=args.port)


SimulatorBase = Simulator


def _compile(path: str) -> tuple[Any, dict[str, Any]]:
    """Starlette's template syntax, plus ``{name:a|b|c}`` for a segment that is one of a few words
    and a trailing ``/?`` for an optional slash."""
    choices = dict(re.findall(r"\{(\w+):(\w+(?:\|\w+)+)\}", path))
    optional_slash = path.endswith("/?")
    regex, _, convertors = compile_path(re.sub(r"\{(\w+):\w+(?:\|\w+)+\}", r"{\1}", path[:-2] if optional_slash else path))
    pattern = regex.pattern[:-1] + ("/?$" if optional_slash else "$")
    for name, words in choices.items():
        pattern = pattern.replace(f"(?P<{name}>[^/]+)", f"(?P<{name}>{words})")
    return re.compile(pattern), convertors


def capped(limit: int, maximum: int, oversize: str, refusal: Callable[[], ApiError]) -> int:
    """A page size above ``maximum``: clamped to it, or refused (``oversize == "reject"``) with ``refusal()``."""
    if limit <= maximum:
        return limit
    if oversize == "reject":
        raise refusal()
    return maximum


def admin_answer(action: Callable[[dict[str, Any]], Response], request: Request) -> Response:
    try:
        body = request.json() or {}
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        return action(body)
    except (ValueError, TypeError, KeyError) as exc:
        return Response.json(400, {"error": str(exc)})


__all__ = ["Account", "AccountSpec", "ApiError", "Fault", "FaultConfig", "InvalidJSONBody", "Request", "Response", "Route", "SimClock",
           "Simulator", "SimulatorBase", "admin", "admin_answer", "api", "capped", "json_dumps", "json_loads", "parse_datetime", "utc_iso_ms"]
