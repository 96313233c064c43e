"""Provider-neutral plumbing for the local provider simulators.

A simulator is a real HTTP/1.1 server on 127.0.0.1 that answers like a provider's API. This module
holds everything that is not specific to one provider:

* :class:`Request` / :class:`Response` and a small regex :class:`Router`;
* :class:`SimClock`, the simulated wall clock (offset from real time, settable, freezable);
* :class:`FaultConfig` / :class:`FaultInjector`, seeded injection of 429s, 5xx answers, slow
  answers, connection resets and truncated bodies, plus ``fail_next``;
* :class:`RequestStats`, thread-safe counters;
* :class:`SimulatorBase`, which owns the ``ThreadingHTTPServer``, its background thread, the
  fault/stat pipeline and the admin routes under ``/_simulator/``.

A provider subclass registers its API routes in :meth:`SimulatorBase.build_routes` and supplies
provider-shaped bodies for not-found, injected 429 and injected 5xx answers.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import random
import re
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:  # orjson is faster and stricter; the standard library is the fallback.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only where orjson is missing
    _orjson = None

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_simulator/"


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def json_dumps(value: Any) -> bytes:
    """Serialize ``value`` to compact UTF-8 JSON bytes."""
    if _orjson is not None:
        return _orjson.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_loads(data: bytes | str) -> Any:
    """Parse JSON bytes or text; raises ``ValueError`` on malformed input."""
    if _orjson is not None:
        return _orjson.loads(data)
    return json.loads(data)


class InvalidJSONBody(ValueError):
    """The request body is not valid JSON."""


# --------------------------------------------------------------------------------------------
# Requests, responses, routing
# --------------------------------------------------------------------------------------------


@dataclass
class Request:
    """One parsed HTTP request, as handed to route handlers."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    raw_target: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header lookup."""
        value = self.headers.get(name)
        return default if value is None else value

    def query_value(self, name: str, default: str | None = None) -> str | None:
        """The last value of query parameter ``name`` (or ``default``)."""
        values = self.query.get(name)
        return values[-1] if values else default

    def query_list(self, name: str) -> list[str]:
        """Every value of ``name``; comma-separated values are split (``a,b&c`` -> a, b, c)."""
        out: list[str] = []
        for value in self.query.get(name, []):
            out.extend(part.strip() for part in value.split(",") if part.strip())
        return out

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
    """A complete HTTP answer: status, headers and body bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        """A JSON answer with ``Content-Type: application/json``."""
        merged = {"Content-Type": "application/json;charset=utf-8"}
        if headers:
            merged.update(headers)
        return cls(status, merged, json_dumps(payload))

    @classmethod
    def empty(cls, status: int = 204, headers: Mapping[str, str] | None = None) -> Response:
        """A body-less answer (e.g. 204 No Content)."""
        return cls(status, dict(headers or {}), b"")


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """A method + full-match path regex bound to a handler.

    ``name`` labels the route in statistics; ``api`` routes get faults and are counted, admin
    routes (``api=False``) never are.
    """

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str
    api: bool = True


class Router:
    """Ordered list of routes; the first route whose method and regex match wins."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, name: str | None = None, api: bool = True) -> None:
        """Register ``handler`` for ``method`` and the full-match regex ``pattern``."""
        self._routes.append(
            Route(method.upper(), re.compile(pattern), handler, name or f"{method.upper()} {pattern}", api)
        )

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Return ``(route, path params, path_matched_some_route)``."""
        path_matched = False
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            path_matched = True
            if route.method == method:
                return route, found.groupdict(), True
        return None, {}, path_matched

    @property
    def routes(self) -> list[Route]:
        """The registered routes, in matching order."""
        return list(self._routes)


# --------------------------------------------------------------------------------------------
# Simulated clock
# --------------------------------------------------------------------------------------------


class SimClock:
    """The simulator's notion of "now": wall clock plus an offset, or a frozen instant.

    ``advance`` and ``set`` move it; ``freeze``/``unfreeze`` stop and restart it. All datetimes
    are timezone-aware UTC. Thread-safe.
    """

    def __init__(
        self,
        start: datetime | None = None,
        *,
        frozen: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = None
        start_ts = _to_utc(start).timestamp() if start is not None else wall()
        if frozen:
            self._frozen_at = start_ts
        else:
            self._offset = 0.0 if start is None else start_ts - wall()

    def timestamp(self) -> float:
        """Seconds since the epoch, simulated."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return self._wall() + self._offset

    def now(self) -> datetime:
        """Simulated now as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp(), tz=timezone.utc)

    def now_ms(self) -> int:
        """Simulated now in epoch milliseconds."""
        return int(self.timestamp() * 1000)

    @property
    def frozen(self) -> bool:
        """Whether the clock is currently stopped."""
        return self._frozen_at is not None

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, with a negative value)."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (naive datetimes are taken as UTC); a frozen clock stays frozen."""
        target = _to_utc(moment).timestamp()
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = target
            else:
                self._offset = target - self._wall()

    def freeze(self, at: datetime | None = None) -> None:
        """Stop the clock at ``at`` (default: the current simulated time)."""
        with self._lock:
            current = self._frozen_at if self._frozen_at is not None else self._wall() + self._offset
            self._frozen_at = _to_utc(at).timestamp() if at is not None else current

    def unfreeze(self) -> None:
        """Let a frozen clock run again from where it stopped."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - self._wall()
                self._frozen_at = None

    def describe(self) -> dict[str, Any]:
        """JSON-friendly state, used by the admin route."""
        now = self.now()
        return {"now": now.isoformat(), "now_ms": int(now.timestamp() * 1000), "frozen": self.frozen}


def _to_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def parse_datetime(text: str) -> datetime:
    """Parse ISO-8601 (``Z`` allowed) or epoch milliseconds into an aware UTC datetime."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return datetime.fromtimestamp(int(text) / 1000, tz=timezone.utc)
    return _to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------

FAULT_KINDS = ("status", "reset", "truncate", "slow")


@dataclass
class FaultConfig:
    """Probabilities (0..1) of injected faults per API request, drawn from a seeded RNG.

    One uniform draw per API request picks at most one of: an injected 429 (``rate_429``), a 5xx
    (``rate_5xx``, status chosen from ``statuses_5xx``), a connection reset (``rate_reset``), a
    truncated JSON body (``rate_truncated``) or a slow answer (``rate_slow``, ``slow_seconds``).
    """

    seed: int = 0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 1.0
    rate_reset: float = 0.0
    rate_truncated: float = 0.0
    statuses_5xx: tuple[int, ...] = (502, 503, 504)

    def validate(self) -> None:
        """Raise ``ValueError`` for impossible settings."""
        rates = [self.rate_429, self.rate_5xx, self.rate_slow, self.rate_reset, self.rate_truncated]
        if any(rate < 0 or rate > 1 for rate in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must each be within 0..1 and sum to at most 1")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must be >= 0")
        if not self.statuses_5xx or any(not 500 <= code <= 599 for code in self.statuses_5xx):
            raise ValueError("statuses_5xx must be non-empty 5xx codes")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy."""
        data = dataclasses.asdict(self)
        data["statuses_5xx"] = list(self.statuses_5xx)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from a JSON object; unknown keys raise ``ValueError``; missing keys default."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        values = dict(data)
        if "statuses_5xx" in values:
            values["statuses_5xx"] = tuple(int(code) for code in values["statuses_5xx"])
        config = cls(**values)
        config.validate()
        return config


@dataclass(frozen=True)
class Fault:
    """One fault to apply to one request.

    ``kind`` is ``status`` (answer ``status`` with the provider's body for it), ``reset`` (close
    the connection without answering), ``truncate`` (cut the body short) or ``slow`` (delay).
    """

    kind: str
    status: int | None = None
    delay_s: float = 0.0
    source: str = "random"


class FaultInjector:
    """Decides, per API request, whether and how to misbehave.

    Queued ``fail_next`` faults go first, then one draw from the seeded RNG against the rates of
    the current :class:`FaultConfig` (which may be mutated in place at any time).
    """

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._rng = random.Random(self._config.seed)
        self._queue: list[Fault] = []

    @property
    def config(self) -> FaultConfig:
        """The live configuration object (mutations take effect on the next request)."""
        return self._config

    @config.setter
    def config(self, value: FaultConfig) -> None:
        value.validate()
        with self._lock:
            self._config = value
            self._rng = random.Random(value.seed)

    def fail_next(self, n: int = 1, status: int = 503, *, kind: str = "status", delay_s: float = 1.0) -> None:
        """Make the next ``n`` API requests fail (``kind`` as in :class:`Fault`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        if kind == "status" and not 400 <= status <= 599:
            raise ValueError("status must be a 4xx or 5xx code")
        fault = Fault(kind, status if kind == "status" else None, delay_s if kind == "slow" else 0.0, "fail_next")
        with self._lock:
            self._queue.extend([fault] * n)

    def pending(self) -> int:
        """How many ``fail_next`` faults are still queued."""
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        """Drop queued ``fail_next`` faults."""
        with self._lock:
            self._queue.clear()

    def decide(self) -> Fault | None:
        """The fault for the current request, or ``None``."""
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            config = self._config
            total = config.rate_429 + config.rate_5xx + config.rate_reset + config.rate_truncated + config.rate_slow
            if total <= 0:
                return None
            draw = self._rng.random()
            if draw < config.rate_429:
                return Fault("status", 429)
            draw -= config.rate_429
            if draw < config.rate_5xx:
                return Fault("status", self._rng.choice(config.statuses_5xx))
            draw -= config.rate_5xx
            if draw < config.rate_reset:
                return Fault("reset")
            draw -= config.rate_reset
            if draw < config.rate_truncated:
                return Fault("truncate")
            draw -= config.rate_truncated
            if draw < config.rate_slow:
                return Fault("slow", delay_s=config.slow_seconds)
            return None


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


class RequestStats:
    """Thread-safe counters of API traffic (admin routes are counted separately)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._total = 0
            self._admin = 0
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
        """Count one admin request."""
        with self._lock:
            self._admin += 1

    def record_rate_limited(self, policy: str) -> None:
        """Count one 429 served by the provider's own rate-limit policy ``policy``."""
        with self._lock:
            self._rate_limited[policy] += 1

    def record_fault(self, kind: str) -> None:
        """Count one injected fault of ``kind`` (e.g. ``429``, ``503``, ``reset``)."""
        with self._lock:
            self._faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-friendly copy of all counters."""
        with self._lock:
            return {
                "total_requests": self._total,
                "admin_requests": self._admin,
                "by_route": dict(self._by_route),
                "by_status": {str(code): count for code, count in sorted(self._by_status.items())},
                "rate_limited": dict(self._rate_limited),
                "rate_limited_total": sum(self._rate_limited.values()),
                "faults": dict(self._faults),
                "faults_total": sum(self._faults.values()),
                "since": datetime.fromtimestamp(self._since, tz=timezone.utc).isoformat(),
            }


# --------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], simulator: SimulatorBase) -> None:
        self.simulator = simulator
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # idle keep-alive connections are closed after this many seconds

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        target = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=target.path,
            query=parse_qs(target.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            raw_target=self.path,
        )
        response = self.server.simulator.dispatch(request)
        if response is None:
            self._reset_connection()
            return
        try:
            self._send(response)
        except OSError:  # the client went away mid-answer
            self.close_connection = True

    def _send(self, response: Response) -> None:
        """Write status line, headers and body with a single send (no Nagle/delayed-ACK stall)."""
        status = response.status
        lines = [
            f"{self.protocol_version} {status} {_status_phrase(status)}",
            f"Date: {self.date_time_string()}",
            f"Server: {self.server.simulator.server_name}",
        ]
        lines.extend(f"{name}: {value}" for name, value in response.headers.items() if name.lower() != "content-length")
        has_body = status not in (204, 304) and not 100 <= status < 200
        if has_body:
            lines.append(f"Content-Length: {len(response.body)}")
        if self.close_connection:
            lines.append("Connection: close")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if has_body and self.command != "HEAD":
            payload += response.body
        self.log_request(status, len(response.body))
        self.wfile.write(payload)

    def _reset_connection(self) -> None:
        """Close the TCP connection without answering (RST thanks to a zero linger)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.wfile.close()
        with contextlib.suppress(OSError):
            self.connection.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class SimulatorBase:
    """Base class of every provider simulator.

    Subclasses implement :meth:`build_routes` and the provider-shaped answers
    (:meth:`not_found_response`, :meth:`fault_response`, :meth:`internal_error_response`), and
    may implement :meth:`mutate` (behind ``POST /_simulator/mutate``), :meth:`describe` and
    :meth:`reset_rate_limits`.

    Usage::

        with MySimulator(...) as sim:          # started, stopped on exit
            httpx.get(sim.base_url + "/...")

        with sim.serve() as base_url:          # same, yields the base URL
            ...
    """

    provider = "generic"
    server_name = "crm-pipelines-simulator"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SimClock | None = None,
        faults: FaultConfig | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.clock = clock or SimClock()
        self._injector = FaultInjector(faults)
        self._stats = RequestStats()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._started_at: float | None = None
        self.router = Router()
        self._add_admin_routes()
        self.build_routes(self.router)

    # ---- hooks for providers -------------------------------------------------------------

    def build_routes(self, router: Router) -> None:
        """Register the provider's API routes (``api=True``)."""

    def not_found_response(self, request: Request) -> Response:
        """Answer for a path no route knows."""
        return Response.json(404, {"error": "not found", "path": request.path})

    def method_not_allowed_response(self, request: Request) -> Response:
        """Answer for a known path with an unsupported method."""
        return Response.json(405, {"error": "method not allowed", "method": request.method})

    def fault_response(self, status: int, request: Request) -> Response:
        """Provider-shaped answer for an injected ``status`` (429 or 5xx, or any 4xx)."""
        return Response.json(status, {"error": _status_phrase(status)})

    def internal_error_response(self, request: Request) -> Response:
        """Provider-shaped 500 for an unexpected exception in a handler."""
        return Response.json(500, {"error": "internal error"})

    def mutate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a provider-specific data mutation requested through the admin API."""
        raise ValueError(f"{self.provider} simulator does not support mutations")

    def apply_mutation(self, spec: Mapping[str, Any], *, check_entity: Callable[[str], Any]) -> dict[str, Any]:
        """The admin mutation ``{"entity", "modify", "create", "delete", "ids"}``, through the
        simulator's own ``modify(entity, n=, ids=)``, ``create(entity, n)`` and ``delete(entity, n)``."""
        unknown = set(spec) - {"entity", "modify", "create", "delete", "ids"}
        if unknown:
            raise ValueError(f"unknown mutation keys: {sorted(unknown)}")
        entity = str(spec.get("entity", ""))
        check_entity(entity)
        result: dict[str, Any] = {"entity": entity, "modified": [], "created": [], "deleted": []}
        if spec.get("ids"):
            result["modified"] = self.modify(entity, ids=spec["ids"])  # type: ignore[attr-defined]
        elif int(spec.get("modify") or 0) > 0:
            result["modified"] = self.modify(entity, n=int(spec["modify"]))  # type: ignore[attr-defined]
        if int(spec.get("create") or 0) > 0:
            result["created"] = self.create(entity, int(spec["create"]))  # type: ignore[attr-defined]
        if int(spec.get("delete") or 0) > 0:
            result["deleted"] = self.delete(entity, int(spec["delete"]))  # type: ignore[attr-defined]
        result["now"] = self.clock.now().isoformat()
        return result

    def describe(self) -> dict[str, Any]:
        """Extra provider facts for ``GET /_simulator/health``."""
        return {}

    def reset_rate_limits(self) -> None:
        """Forget rate-limit usage (``POST /_simulator/reset-rate-limits``)."""

    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add provider options to ``python -m crm_pipelines.simulator <provider>``."""

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> SimulatorBase:
        """Build the simulator from parsed options (common ones: host, port, seed, token, faults)."""
        raise NotImplementedError(f"{cls.__name__} cannot be started from the command line")

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> SimulatorBase:
        """Bind the socket and serve from a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self)
        self._server = server
        self.port = server.server_address[1]
        self._started_at = time.monotonic()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"{self.provider}-simulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket and open keep-alive connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.connections_lock:
            connections = list(server.open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server is not None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._server is None:
            raise RuntimeError("simulator is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> SimulatorBase:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Context manager that starts the server and yields its base URL."""
        self.start()
        try:
            yield self.base_url
        finally:
            self.stop()

    # ---- faults and stats ----------------------------------------------------------------

    @property
    def faults(self) -> FaultConfig:
        """The live fault configuration; mutate its fields or assign a new one."""
        return self._injector.config

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        self._injector.config = value

    def fail_next(self, n: int = 1, status: int = 503, *, kind: str = "status", delay_s: float = 1.0) -> None:
        """Make the next ``n`` API requests fail (see :meth:`FaultInjector.fail_next`)."""
        self._injector.fail_next(n, status, kind=kind, delay_s=delay_s)

    @property
    def stats(self) -> dict[str, Any]:
        """Snapshot of the request statistics."""
        snapshot = self._stats.snapshot()
        snapshot["fail_next_pending"] = self._injector.pending()
        return snapshot

    def reset_stats(self) -> None:
        """Zero the request statistics."""
        self._stats.reset()

    @property
    def stats_recorder(self) -> RequestStats:
        """The live counters, for providers that report their own rate-limit rejections."""
        return self._stats

    # ---- dispatch ------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response | None:
        """Route one request through faults, the handler and statistics.

        Returns ``None`` when the connection must be reset without an answer.
        """
        route, params, path_matched = self.router.match(request.method, request.path)
        if route is None:
            if request.path.startswith(ADMIN_PREFIX):
                self._stats.record_admin()
                return Response.json(404, {"error": "unknown admin route", "path": request.path})
            response = (
                self.method_not_allowed_response(request) if path_matched else self.not_found_response(request)
            )
            self._stats.record_response("(unmatched)", response.status)
            return response
        request.params = params
        if not route.api:
            self._stats.record_admin()
            return self._call(route, request)

        fault = self._injector.decide()
        if fault is not None:
            if fault.kind == "reset":
                self._stats.record_fault("reset")
                self._stats.record_response(route.name, None)
                return None
            if fault.kind == "status":
                assert fault.status is not None
                self._stats.record_fault(str(fault.status))
                response = self.fault_response(fault.status, request)
                self._stats.record_response(route.name, response.status)
                return response
            if fault.kind == "slow":
                self._stats.record_fault("slow")
                time.sleep(fault.delay_s)

        response = self._call(route, request)
        if fault is not None and fault.kind == "truncate" and response.body:
            self._stats.record_fault("truncate")
            response = Response(response.status, dict(response.headers), response.body[: max(1, len(response.body) // 2)])
        self._stats.record_response(route.name, response.status)
        return response

    def _call(self, route: Route, request: Request) -> Response:
        try:
            return route.handler(request)
        except Exception:  # a simulator bug must not kill the connection thread silently
            log.exception("simulator handler %s failed", route.name)
            return self.internal_error_response(request)

    # ---- admin routes --------------------------------------------------------------------

    def _add_admin_routes(self) -> None:
        add = self.router.add
        add("GET", r"/_simulator/health", self._admin_health, name="admin health", api=False)
        add("GET", r"/_simulator/stats", lambda _r: Response.json(200, self.stats), name="admin stats", api=False)
        add("POST", r"/_simulator/reset-stats", self._admin_reset_stats, name="admin reset-stats", api=False)
        add("GET", r"/_simulator/faults", self._admin_get_faults, name="admin faults", api=False)
        add("POST", r"/_simulator/faults", self._admin_set_faults, name="admin set faults", api=False)
        add("POST", r"/_simulator/mutate", self._admin_mutate, name="admin mutate", api=False)
        add("GET", r"/_simulator/clock", lambda _r: Response.json(200, self.clock.describe()), name="admin clock", api=False)
        add("POST", r"/_simulator/clock", self._admin_set_clock, name="admin set clock", api=False)
        add("POST", r"/_simulator/reset-rate-limits", self._admin_reset_limits, name="admin reset limits", api=False)

    def _admin_health(self, _request: Request) -> Response:
        uptime = 0.0 if self._started_at is None else time.monotonic() - self._started_at
        payload = {"status": "ok", "provider": self.provider, "uptime_s": round(uptime, 3), "clock": self.clock.describe()}
        payload.update(self.describe())
        return Response.json(200, payload)

    def _admin_reset_stats(self, _request: Request) -> Response:
        self.reset_stats()
        return Response.json(200, {"status": "ok"})

    def _admin_get_faults(self, _request: Request) -> Response:
        return Response.json(200, {"faults": self.faults.to_dict(), "fail_next_pending": self._injector.pending()})

    def _admin_set_faults(self, request: Request) -> Response:
        """Replace the fault config (absent keys take defaults); optional ``fail_next``."""
        try:
            body = request.json() or {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            fail_next = body.pop("fail_next", None)
            self.faults = FaultConfig.from_dict(body)
            self._injector.clear()
            if fail_next:
                self.fail_next(
                    int(fail_next.get("n", 1)),
                    int(fail_next.get("status", 503)),
                    kind=str(fail_next.get("kind", "status")),
                    delay_s=float(fail_next.get("delay_s", 1.0)),
                )
        except (ValueError, TypeError) as exc:
            return Response.json(400, {"error": str(exc)})
        return self._admin_get_faults(request)

    def _admin_mutate(self, request: Request) -> Response:
        try:
            body = request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            return Response.json(200, self.mutate(body))
        except (ValueError, TypeError, KeyError) as exc:
            return Response.json(400, {"error": str(exc)})

    def _admin_set_clock(self, request: Request) -> Response:
        """Body: any of ``{"set": iso-or-ms, "advance": seconds, "freeze": bool}``."""
        try:
            body = request.json() or {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            if body.get("freeze") is False:
                self.clock.unfreeze()
            if "set" in body:
                self.clock.set(parse_datetime(str(body["set"])))
            if "advance" in body:
                self.clock.advance(float(body["advance"]))
            if body.get("freeze") is True:
                self.clock.freeze()
        except (ValueError, TypeError) as exc:
            return Response.json(400, {"error": str(exc)})
        return Response.json(200, self.clock.describe())

    def _admin_reset_limits(self, _request: Request) -> Response:
        self.reset_rate_limits()
        return Response.json(200, {"status": "ok"})


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def utc_iso_ms(epoch_ms: int) -> str:
    """``2025-02-01T09:30:11.123Z`` for an epoch-milliseconds value."""
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=epoch_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
