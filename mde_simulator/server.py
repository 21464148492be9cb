"""The simulator: Entra ID + Defender for Endpoint over real TLS on loopback.

See :class:`Simulator` for the public API. One ``ThreadingHTTPServer`` serves
both the sign-in endpoints (``/{tenant}/...``) and the API (``/api/...``), so
a client uses the same base URL for ``authority_url`` and ``api_base_url``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import email.utils
import functools
import hashlib
import json
import os
import pathlib
import random
import socket
import socketserver
import ssl
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote

from cryptography import x509

from . import data, graph
from .entra import (
    ACCEPTED_SCOPES,
    DEFAULT_ROLES,
    DEFAULT_SCOPE,
    ROLE_ALERTS,
    ROLE_FILES,
    App,
    TokenAuthority,
    TokenError,
    unknown_tenant,
)
from .odata import ODataError, compile_filter, now_ticks, parse_orderby, sort_alerts
from .ratelimit import RateLimiter, format_retry_after
from .responses import _API_CONTENT_TYPE, _JSON, _api_error, _link, _next_link, _Response
from .store import AlertStore, dumps
from .tls import TlsMaterial, ensure_material, sha1_thumbprint

Action = Literal["respond", "drop", "truncate", "slow", "html", "trickle", "endless", "gzip_bomb", "loop"]

MAX_TOP = 10_000


_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

_MALFORMED_BODIES = (
    b'{"@odata.context":"$metadata#Files","value":[{"sha1":"f2a00fd2f2de1be0214b85',
    b"<html><body><h1>Service temporarily unavailable</h1></body></html>",
    b"\xef\xbb\xbf{value: [undefined]}",
    b"",
)


@dataclass(frozen=True)
class Faults:
    """Random faults, all off by default; decided by an RNG seeded from the
    simulator's seed, so a run with the same requests is repeatable.

    ``latency_ms`` delays every affected response. Then one draw picks at most
    one of: drop (close the socket, no response), error (a status from
    ``error_statuses`` with Microsoft's error body), malformed (200 whose body
    is not JSON) or truncated (200 whose Content-Length promises more than is
    sent). ``slow_body_ms`` trickles every affected body in small chunks over
    about that many milliseconds. Faults hit ``/api/`` only, unless
    ``token_endpoint`` is true, then the Entra endpoints as well.
    """

    latency_ms: int = 0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 503)
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    truncated_rate: float = 0.0
    slow_body_ms: int = 0
    token_endpoint: bool = False


@dataclass(frozen=True)
class ScriptedResponse:
    """A deterministic response served to the next request(s) whose raw
    request target (path and query, still percent-encoded) contains
    ``path_contains``, before any normal handling, rate limiting or faults.

    ``action``:

    * ``respond``: ``status`` with ``body`` (bytes as is, a dict as JSON) and
      ``headers``. A status >= 400 without body gets Microsoft's error body
      (Entra's shape on sign-in paths).
    * ``drop``: close the connection without any response.
    * ``truncate``: send a Content-Length larger than the body actually sent,
      then close. Without ``body`` the normal response is truncated.
    * ``slow``: send the headers, then trickle the body over ``delay``
      seconds. Without ``body`` the normal response is trickled.
    * ``html``: a proxy's ``text/html`` error page, status 502 (or ``status``
      if set to something other than the default 500).

    * ``trickle``: status 200, the headers at once, then the body (the
      normal one without ``body``) one byte every ``delay`` seconds (0.2
      when 0), for as long as the client keeps reading.
    * ``endless``: status 200 with a chunked body that never ends: the start
      of a Files page, then one small chunk of File objects every ``delay``
      seconds (none: as fast as the client reads).
    * ``gzip_bomb``: status 200, ``Content-Encoding: gzip``, a body of about
      ``size`` / 1000 bytes that decompresses to ``size`` bytes of JSON
      whitespace (1 GiB by default).
    * ``loop``: the normal response, but its ``@odata.nextLink`` points back
      to the first page of the same listing (the request without ``$skip``):
      scripted on a later page (``path_contains="$skip="``) the listing goes
      1, 2, 1, ...; on the first page it points to itself.

    ``delay`` seconds are waited before anything is sent (for ``slow``,
    ``trickle`` and ``endless`` they pace the body instead). ``times`` is how
    many matching requests this entry serves.
    """

    status: int = 500
    body: bytes | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] | None = None
    path_contains: str = "/api/"
    action: Action = "respond"
    delay: float = 0.0
    times: int = 1
    size: int = 1 << 30


@dataclass(frozen=True)
class SimulatorOptions:
    """How a :class:`Simulator` behaves. See the module docs of
    :mod:`mde_simulator` for each option."""

    seed: int = 7
    rate_per_minute: int = 100
    rate_per_hour: int = 1500
    time_scale: float = 1.0
    token_lifetime: int = 3599
    faults: Faults = field(default_factory=Faults)
    files_page_size: int | None = None
    live_interval: float | None = None
    #: when > 0, one more alert (``data.HUGE_ALERT_ID``) with this many
    #: generated files, made lazily at its first request (or ``warm()``)
    huge_alert_files: int = 0
    host: str = "127.0.0.1"
    port: int = 0


@dataclass(frozen=True)
class RequestRecord:
    """One request as the simulator saw it. Never holds header values,
    tokens, secrets or request bodies.

    A request is recorded just before its response is sent, so ``duration``
    is the time to a ready response (injected latency included, sending
    excluded) and a client that holds a response finds its record.
    ``status`` is 0 for a dropped connection; ``fault`` names the injected
    fault or scripted action (``"drop"``, ``"error"``, ``"malformed"``,
    ``"truncate"``, ``"slow"``, ``"html"``, ``"scripted"``), else None.
    ``client_id`` comes from the verified token (API) or the form (token
    endpoint).
    """

    method: str
    path: str
    query: dict[str, str]
    status: int
    client_id: str | None
    started: float
    duration: float
    authorization_present: bool
    fault: str | None = None




def _derived(seed: int, label: str) -> bytes:
    return hashlib.sha256(f"mde-sim:{seed}:{label}".encode()).digest()


def _derived_uuid(seed: int, label: str) -> str:
    return str(uuid.UUID(bytes=_derived(seed, label)[:16], version=4))


def seeded_identity(seed: int = 7) -> tuple[str, str]:
    """``(tenant_id, client_id)`` of a simulator built with ``seed``, known
    without building one (recorded tests replay against these)."""
    return _derived_uuid(seed, "tenant"), _derived_uuid(seed, "client")


def _derived_secret(seed: int) -> str:
    # Shaped like an Entra client secret value: 3 chars, a digit, "Q~", 34 chars.
    text = base64.b64encode(_derived(seed, "secret") * 2).decode()
    text = text.replace("+", "_").replace("/", "-").replace("=", "")
    return f"{text[:3]}8Q~{text[3:37]}"




def _entra_error(err: TokenError) -> _Response:
    return _Response(
        err.status,
        dumps(err.body()),
        [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")],
    )


_ENTRA_GENERIC = {
    400: "invalid_request",
    401: "invalid_client",
    403: "unauthorized_client",
}


class Simulator:
    """Microsoft Defender for Endpoint and Entra ID, simulated on loopback TLS.

    Construct with a state directory (keys, certificates and the connector
    config file live there) and optional :class:`SimulatorOptions`, then
    :meth:`start` it (or use it as a context manager). Everything that
    identifies the tenant and the default app is derived from ``seed``;
    ``base_url`` is known once started.

    The default app (``client_id``) has the roles File.Read.All and
    Alert.Read.All (and SecurityAlert.Read.All in its Microsoft Graph
    tokens) and both credentials: ``client_secret`` and the
    certificate in ``client_cert_pem`` / ``client_cert_pfx``.
    """

    def __init__(self, state_dir: pathlib.Path, options: SimulatorOptions | None = None) -> None:
        self.options = options or SimulatorOptions()
        self.state_dir = pathlib.Path(state_dir)
        seed = self.options.seed
        self.tenant_id = _derived_uuid(seed, "tenant")
        self.client_id = _derived_uuid(seed, "client")
        self.client_secret = _derived_secret(seed)
        self.token_scope = DEFAULT_SCOPE
        self._material: TlsMaterial = ensure_material(self.state_dir)
        self._tokens = TokenAuthority(
            self.tenant_id, self._material.signing_key, self.options.token_lifetime
        )
        self._tokens.add_app(
            App(
                client_id=self.client_id,
                secret=self.client_secret,
                roles=(*DEFAULT_ROLES, "SecurityAlert.Read.All"),  # the Graph permission too
                certificates=[self._material.client_certificate],
                object_id=_derived_uuid(seed, "client-object"),
            )
        )
        self._limiter = RateLimiter(
            self.options.rate_per_minute, self.options.rate_per_hour, self.options.time_scale
        )
        self._created_ticks = now_ticks()
        self._store = AlertStore(self._created_ticks)
        for spec in data.build_dataset(seed, self.tenant_id, self._created_ticks):
            self._store.put_spec(spec)
        if self.options.huge_alert_files > 0:
            self._store.put_spec(data.huge_alert_spec(self.options.huge_alert_files, seed, self.tenant_id,
                                                      self._created_ticks))
        self._lock = threading.Lock()
        self._faults = self.options.faults
        self._fault_rng = random.Random(f"mde-sim:{seed}:faults")  # noqa: S311 - repeatable faults
        self._live_rng = random.Random(f"mde-sim:{seed}:live")  # noqa: S311 - fake data
        self._scripts: list[list[Any]] = []  # [ScriptedResponse, remaining]
        self._requests: list[RequestRecord] = []
        self._token_requests = 0
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._base_url: str | None = None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> Simulator:
        """Bind, and serve in background threads. Returns ``self``."""
        if self._server is not None:
            return self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._material.server_cert, self._material.server_key)
        host = self.options.host
        server_cls = _Server6 if ":" in host else _Server
        handler = type("Handler", (_Handler,), {"sim": self})
        self._stop.clear()
        server = server_cls((host, self.options.port), handler, context)
        self._server = server
        port = server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self._base_url = f"https://{shown}:{port}"
        serve = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"mde-simulator:{port}", daemon=True,
        )
        serve.start()
        self._threads = [serve]
        if self.options.live_interval:
            live = threading.Thread(
                target=self._live_loop, name=f"mde-simulator-live:{port}", daemon=True
            )
            live.start()
            self._threads.append(live)
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join all threads."""
        server = self._server
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        server.join_handlers(timeout=5)
        self._threads = []
        self._server = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- connection settings -------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT`` (only once started)."""
        if self._base_url is None:
            raise RuntimeError("the simulator is not started")
        return self._base_url

    @property
    def api_base_url(self) -> str:
        """Same as :attr:`base_url`; the API is served under ``/api/``."""
        return self.base_url

    @property
    def authority_url(self) -> str:
        """``{base_url}/{tenant_id}``, for msal with ``instance_discovery=False``."""
        return f"{self.base_url}/{self.tenant_id}"

    @property
    def ca_bundle(self) -> pathlib.Path:
        """The throwaway CA certificate (public part only) clients must trust."""
        return self._material.ca_cert

    @property
    def client_cert_pem(self) -> pathlib.Path:
        """Unencrypted private key + certificate of the default app's credential."""
        return self._material.client_cert_pem

    @property
    def client_cert_pfx(self) -> pathlib.Path:
        """The same credential as PKCS#12, protected by :attr:`client_cert_pfx_password`."""
        return self._material.client_cert_pfx

    @property
    def client_cert_pfx_password(self) -> str:
        """Password of :attr:`client_cert_pfx`."""
        return self._material.client_cert_pfx_password

    @property
    def client_cert_thumbprint(self) -> str:
        """SHA-1 thumbprint (hex) of the default app's certificate, for msal's
        ``{"private_key": ..., "thumbprint": ...}`` credential."""
        return sha1_thumbprint(self._material.client_certificate)

    def connector_config(self, **overrides: Any) -> dict[str, Any]:
        """A connector instance configuration for the default app.

        Keys: tenant_id, client_id, client_secret, api_base_url, authority_url,
        ca_bundle (paths as str), then ``overrides``; an override of None
        removes the key (e.g. ``client_secret=None,
        certificate_path=str(sim.client_cert_pem)``).
        """
        config: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "api_base_url": self.api_base_url,
            "authority_url": self.authority_url,
            "ca_bundle": str(self.ca_bundle),
        }
        for key, value in overrides.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = str(value) if isinstance(value, pathlib.PurePath) else value
        return config

    def write_config(self, path: pathlib.Path, **overrides: Any) -> pathlib.Path:
        """Write :meth:`connector_config` as JSON to ``path`` (mode 0600)."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.connector_config(**overrides), indent=2) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, 0o600)
        return path

    # -- apps and tokens -------------------------------------------------------------
    def add_app(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        roles: Iterable[str] = DEFAULT_ROLES,
        certificate_pem: bytes | None = None,
    ) -> None:
        """Register another app in the tenant (replacing one with the same id).

        ``roles`` are the application permissions its tokens carry (e.g. only
        ``["Alert.Read.All"]`` to provoke 403 on files); ``certificate_pem``
        is its public certificate (a PEM that also holds a key is fine).
        """
        certs = []
        if certificate_pem:
            certs = x509.load_pem_x509_certificates(certificate_pem)
        self._tokens.add_app(
            App(client_id=client_id, secret=secret, roles=tuple(roles), certificates=list(certs))
        )

    def issue_token(
        self,
        client_id: str | None = None,
        *,
        lifetime: int | None = None,
        roles: Iterable[str] | None = None,
        audience: str | None = None,
    ) -> str:
        """Mint an access token directly (tests: expired tokens with a negative
        ``lifetime``, other roles or audiences). Not counted as a token request."""
        app = self._tokens.app(client_id or self.client_id)
        if app is None:
            raise KeyError(f"unknown app {client_id!r}")
        return self._tokens.mint(
            app,
            audience=audience or ACCEPTED_SCOPES[DEFAULT_SCOPE],
            lifetime=lifetime,
            roles=roles,
        )

    # -- data ---------------------------------------------------------------------
    def add_alert(self, **fields: Any) -> dict[str, Any]:
        """Add (or replace, same ``id``) an alert and return a copy of it.

        Missing fields get realistic values; ``id`` is generated in MDE's
        ``da<ticks>_<n>`` shape and times default to now. ``files=[...]``
        sets its related files (default: none).
        """
        files = fields.pop("files", None)
        created = fields.get("alertCreationTime")
        with self._lock:
            rng = random.Random(self._live_rng.getrandbits(64))  # noqa: S311 - fake data
        ticks = now_ticks()
        alert_id = fields.get("id") or data.new_alert_id(rng, ticks)
        spec = data.make_alert(
            rng,
            alert_id=alert_id,
            created_ticks=ticks,
            updated_ticks=ticks,
            recipe="mixed:0",
            files_seed="",
            tenant_id=self.tenant_id,
            now_ticks=ticks,
        )
        alert = spec.alert
        if created and "lastUpdateTime" not in fields:
            alert["lastUpdateTime"] = created
        alert.update(fields)
        alert["id"] = alert_id
        self._store.put(alert, list(files) if files is not None else [])
        return copy.deepcopy(alert)

    def set_files(self, alert_id: str, files: list[dict[str, Any]]) -> None:
        """Replace an alert's related files. Raises KeyError for an unknown id."""
        self._store.set_files(alert_id, list(files))

    def files_of(self, alert_id: str) -> list[dict[str, Any]]:
        """A copy of the related files the API serves for ``alert_id``
        (KeyError for an unknown id)."""
        files = self._store.files(alert_id)
        if files is None:
            raise KeyError(alert_id)
        return files

    def warm(self, *alert_ids: str) -> None:
        """Generate and serialise alerts' files now rather than on first request
        (default: the 5,000- and 10,000-file alerts), e.g. before a benchmark."""
        for alert_id in alert_ids or (data.LARGE_ALERT_5K, data.LARGE_ALERT_10K):
            self._store.files_joined(alert_id)

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Copies of every alert (evidence included), in insertion order."""
        return self._store.snapshot()

    # -- behaviour ----------------------------------------------------------------
    def set_faults(self, faults: Faults) -> None:
        """Replace the random faults at runtime."""
        with self._lock:
            self._faults = faults

    def script(self, *responses: ScriptedResponse) -> None:
        """Queue responses for the next matching requests, in order."""
        with self._lock:
            for response in responses:
                if response.times > 0:
                    self._scripts.append([response, response.times])

    def clear_script(self) -> None:
        """Drop every queued scripted response not yet served."""
        with self._lock:
            self._scripts.clear()

    def reset_rate_limits(self) -> None:
        """Forget the calls counted toward every app's rate limits."""
        self._limiter.reset()

    # -- observation --------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request served since start or :meth:`reset_log`."""
        with self._lock:
            return list(self._requests)

    @property
    def token_requests(self) -> int:
        """POSTs to the token endpoints (successful or not) since the last reset."""
        with self._lock:
            return self._token_requests

    def reset_log(self) -> None:
        """Clear :attr:`requests` and :attr:`token_requests`."""
        with self._lock:
            self._requests.clear()
            self._token_requests = 0

    # -- internals used by the handler ---------------------------------------------
    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _count_token_request(self) -> None:
        with self._lock:
            self._token_requests += 1

    def _take_script(self, target: str) -> ScriptedResponse | None:
        with self._lock:
            for entry in self._scripts:
                response: ScriptedResponse = entry[0]
                if response.path_contains in target:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self._scripts.remove(entry)
                    return response
        return None

    def _roll_faults(self, is_api: bool) -> tuple[Faults, str | None, int]:
        """The faults in force for this request and the random outcome."""
        with self._lock:
            faults = self._faults
            if not is_api and not faults.token_endpoint:
                return Faults(), None, 0
            roll = self._fault_rng.random()
            status = self._fault_rng.choice(faults.error_statuses) if faults.error_statuses else 500
            pick = self._fault_rng.randrange(len(_MALFORMED_BODIES))
        threshold = 0.0
        for name, rate in (
            ("drop", faults.drop_rate),
            ("error", faults.error_rate),
            ("malformed", faults.malformed_rate),
            ("truncate", faults.truncated_rate),
        ):
            threshold += rate
            if roll < threshold:
                return faults, name, status if name == "error" else pick
        return faults, None, 0

    def _live_loop(self) -> None:
        interval = float(self.options.live_interval or 0)
        while not self._stop.wait(interval):
            with self._lock:
                seed = self._live_rng.getrandbits(64)
            rng = random.Random(seed)  # noqa: S311 - fake data
            ticks = now_ticks()
            alert_id = data.new_alert_id(rng, ticks)
            spec = data.make_alert(
                rng,
                alert_id=alert_id,
                created_ticks=ticks,
                updated_ticks=ticks,
                recipe=f"mixed:{rng.randint(1, 8)}",
                files_seed=f"mde-sim:{self.options.seed}:live-files:{seed}",
                tenant_id=self.tenant_id,
                now_ticks=ticks,
            )
            self._store.put_spec(spec)

    def _base_for(self, host_header: str | None) -> str:
        """The absolute base for links: the host the client used, if it is
        one of ours, else :attr:`base_url`."""
        if host_header:
            host = host_header.strip()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.strip("[]") in ("127.0.0.1", "localhost", "::1") and (
                host.rsplit(":", 1)[-1] == str(self._server_port())
            ):
                return f"https://{host}"
        return self.base_url

    def _server_port(self) -> int:
        server = self._server
        return server.server_address[1] if server else 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext) -> None:
        self.ssl_context = context
        self._conn_lock = threading.Lock()
        self._conns: dict[threading.Thread, socket.socket] = {}
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn (a DNS lookup).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._conn_lock:
            self._conns[thread] = request
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(threading.current_thread(), None)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request.settimeout(10)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            return
        with self._conn_lock:
            self._conns[threading.current_thread()] = tls
        try:
            # A client that goes away mid-request is not worth reporting.
            with contextlib.suppress(Exception):
                self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # quiet: no tracebacks on stderr for clients that hang up

    def close_connections(self) -> None:
        with self._conn_lock:
            sockets = list(self._conns.values())
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._conn_lock:
            threads = list(self._conns)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this
    sim: Simulator

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    # -- request flow ---------------------------------------------------------
    def _dispatch(self) -> None:
        sim = self.sim
        started = time.monotonic()
        target = self.path
        raw_path, _, query_string = target.partition("?")
        query_string = query_string.partition("#")[0]
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        auth_present = "Authorization" in self.headers
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            body = b""
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            body = self.rfile.read(length) if length > 0 else b""
        is_api = raw_path == "/api" or raw_path.startswith("/api/") or raw_path.startswith("/v1.0/")
        segments = raw_path.split("/")[1:]
        is_token = (
            self.command == "POST"
            and len(segments) >= 3
            and segments[1] == "oauth2"
            and segments[-1] == "token"
        )
        if is_token:
            sim._count_token_request()

        def record(status: int, client_id: str | None, fault: str | None) -> None:
            sim._record(
                RequestRecord(
                    method=self.command,
                    path=raw_path,
                    query=query,
                    status=status,
                    client_id=client_id,
                    started=started,
                    duration=time.monotonic() - started,
                    authorization_present=auth_present,
                    fault=fault,
                )
            )

        # Each request is recorded *before* its response goes out, so a client
        # that has its response always finds the request in ``sim.requests``.
        scripted = sim._take_script(target)
        if scripted is not None:
            response, mode, trickle = self._plan_scripted(scripted, is_api, raw_path, query, body)
            record(response.status if response else 0, None, mode)
            self._deliver(response, mode, trickle)
            return

        faults, fault, detail = sim._roll_faults(is_api)
        if faults.latency_ms:
            sim._stop.wait(faults.latency_ms / 1000)
        if fault == "drop":
            record(0, None, fault)
            self._drop()
            return
        if fault == "error":
            response = _api_error(detail) if is_api else self._entra_generic(detail)
        elif fault == "malformed":
            response = _Response(200, _MALFORMED_BODIES[detail], content_type=_API_CONTENT_TYPE)
        else:
            response = self._handle(is_api, raw_path, query, body)
        if fault is None and faults.slow_body_ms:
            fault = "slow"
        record(response.status, response.client_id, fault)
        if fault == "truncate":
            self._send(response, truncate=True)
        else:
            self._send(response, trickle=faults.slow_body_ms / 1000)

    def _plan_scripted(
        self,
        scripted: ScriptedResponse,
        is_api: bool,
        raw_path: str,
        query: dict[str, str],
        body: bytes,
    ) -> tuple[_Response | None, str, float]:
        """(response or None for a drop, the action's name, trickle seconds)."""
        action = scripted.action
        if scripted.delay and action not in ("slow", "trickle", "endless"):
            self.sim._stop.wait(scripted.delay)
        if action == "drop":
            return None, "drop", 0.0
        if action == "html":
            status = 502 if scripted.status == 500 else scripted.status
            page = scripted.body if isinstance(scripted.body, bytes) else _HTML_502
            return _Response(status, page, content_type="text/html"), "html", 0.0
        if action == "endless":
            return _Response(200, content_type=_API_CONTENT_TYPE), "endless", max(scripted.delay, 0.0)
        if action == "gzip_bomb":
            return (_Response(200, _gzip_bomb(scripted.size), [("Content-Encoding", "gzip")],
                              content_type=_API_CONTENT_TYPE), "gzip_bomb", 0.0)
        if action == "loop":
            response = self._handle(is_api, raw_path, query, body)
            return self._looped(response, raw_path, query), "loop", 0.0
        if scripted.body is None and action in ("truncate", "slow", "trickle"):
            response = self._handle(is_api, raw_path, query, body)
        else:
            response = self._scripted_response(scripted, is_api)
        if action == "truncate":
            return response, "truncate", 0.0
        if action == "slow":
            return response, "slow", max(scripted.delay, 0.0)
        if action == "trickle":
            response.status = 200
            return response, "trickle", scripted.delay if scripted.delay > 0 else 0.2
        return response, "scripted", 0.0

    def _looped(self, response: _Response, raw_path: str, query: dict[str, str]) -> _Response:
        """``response`` with its nextLink pointing to the listing's first page."""
        try:
            page = json.loads(response.body)
        except ValueError:
            return response
        if not isinstance(page, dict):
            return response
        first = {k: v for k, v in query.items() if k != "$skip"}
        base = self.sim._base_for(self.headers.get("Host"))
        page["@odata.nextLink"] = _link(base, raw_path, first)
        response.body = dumps(page)
        return response

    def _deliver(self, response: _Response | None, mode: str, trickle: float) -> None:
        if response is None:
            self._drop()
        elif mode == "truncate":
            self._send(response, truncate=True)
        elif mode == "trickle":
            self._send_trickle(response, trickle)
        elif mode == "endless":
            self._send_endless(response, trickle)
        else:
            self._send(response, trickle=trickle)

    def _scripted_response(self, scripted: ScriptedResponse, is_api: bool) -> _Response:
        headers = list((scripted.headers or {}).items())
        content_type = _JSON
        for name, value in list(headers):
            if name.lower() == "content-type":
                content_type = value
                headers.remove((name, value))
        if isinstance(scripted.body, bytes):
            body = scripted.body
        elif scripted.body is not None:
            body = dumps(scripted.body)
        elif scripted.status >= 400:
            generic = _api_error(scripted.status) if is_api else self._entra_generic(scripted.status)
            body = generic.body
        else:
            body = b"{}"
        return _Response(scripted.status, body, headers, content_type)

    @staticmethod
    def _entra_generic(status: int) -> _Response:
        error = _ENTRA_GENERIC.get(status, "temporarily_unavailable" if status in (429, 503)
                                   else "server_error")
        return _entra_error(
            TokenError(
                status, error, 50000,
                "There was an error issuing a token or an issue with our sign-in service.",
            )
        )

    def _handle(self, is_api: bool, raw_path: str, query: dict[str, str], body: bytes) -> _Response:
        try:
            if is_api:
                return self._handle_api(raw_path, query)
            return self._handle_entra(raw_path, body)
        except Exception as exc:  # a simulator bug must still look like a server error
            return _api_error(500, "InternalServerError", f"Simulator error: {type(exc).__name__}")

    # -- Entra ID ---------------------------------------------------------------
    def _handle_entra(self, raw_path: str, body: bytes) -> _Response:
        sim = self.sim
        parts = [unquote(p) for p in raw_path.split("/")[1:]]
        if not parts or not parts[0]:
            return _api_error(404)
        tenant, rest = parts[0], parts[1:]
        method = self.command
        known = tenant.lower() == sim.tenant_id.lower()
        base = sim._base_for(self.headers.get("Host"))
        if rest == ["v2.0", ".well-known", "openid-configuration"] and method == "GET":
            if not known:
                return _entra_error(unknown_tenant(tenant))
            return _Response(200, dumps(sim._tokens.openid_configuration(base)))
        if rest in (["discovery", "v2.0", "keys"], ["discovery", "keys"]) and method == "GET":
            if not known:
                return _entra_error(unknown_tenant(tenant))
            return _Response(200, dumps(sim._tokens.jwks()))
        if rest in (["oauth2", "v2.0", "token"], ["oauth2", "token"]) and method == "POST":
            v1 = rest == ["oauth2", "token"]
            if not known:
                return _entra_error(unknown_tenant(tenant))
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            self._basic_credentials(form)
            if v1 and "resource" in form and "scope" not in form:
                form["scope"] = form["resource"].rstrip("/") + "/.default"
            hosts = {base, sim.base_url}
            tenants = {tenant, sim.tenant_id}
            endpoints = [
                f"{h}/{t}/oauth2/{'v2.0/' if not v1_path else ''}token"
                for h in hosts | {"https://login.microsoftonline.com"}
                for t in tenants
                for v1_path in (False, True)
            ]
            try:
                token_body, client_id = sim._tokens.token(form, endpoints)
            except TokenError as err:
                response = _entra_error(err)
                response.client_id = form.get("client_id") or None
                return response
            if v1:
                token_body = self._v1_body(token_body, form["scope"])
            response = _Response(
                200, dumps(token_body),
                [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")],
            )
            response.client_id = client_id
            return response
        return _api_error(404, "NotFound", f"The path '{raw_path}' was not found.")

    def _basic_credentials(self, form: dict[str, str]) -> None:
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value:
            return
        try:
            decoded = base64.b64decode(value.strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return
        client_id, _, secret = decoded.partition(":")
        form.setdefault("client_id", unquote(client_id))
        form.setdefault("client_secret", unquote(secret))

    @staticmethod
    def _v1_body(body: dict[str, Any], scope: str) -> dict[str, Any]:
        now = int(time.time())
        return {
            "token_type": "Bearer",
            "expires_in": str(body["expires_in"]),
            "ext_expires_in": str(body["ext_expires_in"]),
            "expires_on": str(now + int(body["expires_in"])),
            "not_before": str(now),
            "resource": scope[: -len("/.default")],
            "access_token": body["access_token"],
        }

    # -- Defender API ---------------------------------------------------------------
    def _handle_api(self, raw_path: str, query: dict[str, str]) -> _Response:
        sim = self.sim
        header = self.headers.get("Authorization")
        if not header:
            return _api_error(401, "Unauthorized", "Authorization header is missing or empty.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _api_error(401, "Unauthorized", "The authorization header must be a Bearer token.")
        claims, reason = sim._tokens.verify(token.strip())
        if claims is None:
            return _api_error(401, "Unauthorized", reason)
        client_id = str(claims.get("appid"))
        if raw_path.startswith("/v1.0/"):  # Microsoft Graph: its own routes and limit
            response = graph.handle(self, raw_path, query, claims)
            response.client_id = client_id
            return response
        wait = sim._limiter.acquire(client_id)
        if wait > 0:
            response = _api_error(
                429, "TooManyRequests",
                "API calls quota exceeded! Maximum allowed calls are "
                f"{sim.options.rate_per_minute} per minute and {sim.options.rate_per_hour} per hour.",
            )
            response.headers.append(
                ("Retry-After", format_retry_after(wait, sim.options.time_scale))
            )
            response.client_id = client_id
            return response
        response = self._route_api(raw_path, query, claims)
        response.client_id = client_id
        return response

    def _route_api(self, raw_path: str, query: dict[str, str], claims: dict[str, Any]) -> _Response:
        segments = [unquote(s) for s in raw_path.split("/")[1:]]
        roles = set(claims.get("roles") or ())
        if len(segments) == 3 and segments[1] == "files" and self.command == "GET":  # enrich_files
            if ROLE_FILES not in roles:
                return _api_error(403, "Forbidden", f"The application does not have {ROLE_FILES}.")
            return graph.file_by_sha1(self.sim, segments[2])
        if len(segments) < 2 or segments[1] != "alerts" or len(segments) > 4:
            return _api_error(404, "NotFound", f"The path '{raw_path}' was not found.")
        if len(segments) == 4 and segments[3] != "files":
            return _api_error(404, "NotFound", f"The path '{raw_path}' was not found.")
        if self.command != "GET":
            return _api_error(405, "MethodNotAllowed",
                              f"The HTTP method '{self.command}' is not supported here.")
        needed = ROLE_FILES if len(segments) == 4 else ROLE_ALERTS
        if needed not in roles and not (needed == ROLE_ALERTS and "Alert.ReadWrite.All" in roles):
            return _api_error(
                403, "Forbidden",
                "The application does not have any of the required application permissions "
                f"({needed}) to access the resource.",
            )
        base = self.sim._base_for(self.headers.get("Host"))
        if len(segments) == 2:
            return self._list_alerts(query, base)
        alert_id = segments[2]
        if len(segments) == 3:
            expand = self._expand(query)
            if isinstance(expand, _Response):
                return expand
            body = self.sim._store.alert_json(alert_id, expand=expand)
            if body is None:
                return _api_error(404, "ResourceNotFound", f"Alert {alert_id} was not found.")
            context = f'{{"@odata.context":"{base}/api/$metadata#Alerts/$entity",'.encode()
            return _Response(200, context + body[1:], content_type=_API_CONTENT_TYPE)
        return self._files(alert_id, query, base)

    @staticmethod
    def _expand(query: dict[str, str]) -> bool | _Response:
        value = query.get("$expand")
        if value is None or not value.strip():
            return False
        if value.strip().lower() == "evidence":
            return True
        return _api_error(
            400, "ODataError",
            f"Could not find a property named '{value}' on type "
            "'microsoft.windowsDefenderATP.api.PublicAlertV2Entity'.",
        )

    @staticmethod
    def _int_option(query: dict[str, str], name: str) -> int | None:
        value = query.get(name)
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit():
            raise ODataError(
                f"Invalid value '{value}' for {name} query option found. The {name} query "
                "option requires a non-negative integer value."
            )
        return int(value)

    def _list_alerts(self, query: dict[str, str], base: str) -> _Response:
        store = self.sim._store
        try:
            top = self._int_option(query, "$top")
            skip = self._int_option(query, "$skip") or 0
            if top is not None and top > MAX_TOP:
                raise ODataError(
                    f"The limit of '{MAX_TOP}' for Top query has been exceeded. The value from "
                    f"the incoming request is '{top}'."
                )
            predicate = compile_filter(query["$filter"], store.ticks) if query.get("$filter") else None
            order = parse_orderby(query["$orderby"]) if query.get("$orderby") else None
        except ODataError as exc:
            return _api_error(400, "ODataError", str(exc))
        expand = self._expand(query)
        if isinstance(expand, _Response):
            return expand
        page_size = MAX_TOP if top is None else top
        alerts = store.alert_dicts()
        if predicate is not None:
            alerts = [a for a in alerts if predicate(a)]
        if order:
            alerts = sort_alerts(alerts, order, store.ticks)
        page = alerts[skip : skip + page_size]
        items = [store.alert_json(a["id"], expand=expand) for a in page]
        out = [f'{{"@odata.context":"{base}/api/$metadata#Alerts","value":['.encode()]
        out.append(b",".join(i for i in items if i is not None))
        out.append(b"]")
        if skip + page_size < len(alerts) and page_size > 0:
            out.append(b',"@odata.nextLink":' + dumps(_next_link(base, "/api/alerts", query, skip + page_size)))
        out.append(b"}")
        return _Response(200, b"".join(out), content_type=_API_CONTENT_TYPE)

    def _files(self, alert_id: str, query: dict[str, str], base: str) -> _Response:
        sim = self.sim
        store = sim._store
        try:
            top = self._int_option(query, "$top")
            skip = self._int_option(query, "$skip") or 0
        except ODataError as exc:
            return _api_error(400, "ODataError", str(exc))
        prefix = f'{{"@odata.context":"{base}/api/$metadata#Files","value":['.encode()
        page_size = sim.options.files_page_size
        if top is None and skip == 0 and not page_size:
            joined = store.files_joined(alert_id)
            if joined is None:
                return _api_error(404, "ResourceNotFound", f"Alert {alert_id} was not found.")
            return _Response(200, prefix + joined + b"]}", content_type=_API_CONTENT_TYPE)
        items = store.file_items(alert_id)
        if items is None:
            return _api_error(404, "ResourceNotFound", f"Alert {alert_id} was not found.")
        remaining = max(0, len(items) - skip)
        wanted = remaining if top is None else min(top, remaining)
        count = wanted if not page_size else min(wanted, page_size)
        body = prefix + b",".join(items[skip : skip + count]) + b"]"
        if count < wanted:
            next_query = dict(query)
            if top is not None:
                next_query["$top"] = str(top - count)
            link = _next_link(base, f"/api/alerts/{quote(alert_id, safe='')}/files", next_query,
                              skip + count)
            body += b',"@odata.nextLink":' + dumps(link)
        return _Response(200, body + b"}", content_type=_API_CONTENT_TYPE)

    # -- sending ------------------------------------------------------------------
    def _head(self, response: _Response, length: int) -> bytes:
        reason = self.responses.get(response.status, ("Unknown",))[0]
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {length}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
        ]
        for name, value in response.headers:
            lines.append(f"{name}: {value}")
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, response: _Response, *, truncate: bool = False, trickle: float = 0.0) -> None:
        body = response.body
        head = self._head(response, len(body))
        try:
            if truncate:
                self.wfile.write(head + body[: len(body) // 2])
                self._drop()
                return
            if trickle > 0 and body:
                self.wfile.write(head)
                chunks = 10
                size = max(1, -(-len(body) // chunks))
                pause = trickle / chunks
                for start in range(0, len(body), size):
                    if self.sim._stop.wait(pause):
                        self._drop()
                        return
                    self.wfile.write(body[start : start + size])
                return
            self.wfile.write(head + body)
        except OSError:
            self.close_connection = True

    def _send_trickle(self, response: _Response, pause: float) -> None:
        """The headers, then the body one byte per ``pause`` seconds."""
        body = response.body
        try:
            self.wfile.write(self._head(response, len(body)))
            for i in range(len(body)):
                if self.sim._stop.wait(pause):
                    break
                self.wfile.write(body[i : i + 1])
        except OSError:
            pass  # the client gave up, as it should
        self._drop()

    def _send_endless(self, response: _Response, pause: float) -> None:
        """A chunked Files page that never ends, one chunk per ``pause``."""
        reason = self.responses.get(200, ("OK",))[0]
        head = (f"HTTP/1.1 200 {reason}\r\nContent-Type: {response.content_type}\r\n"
                f"Transfer-Encoding: chunked\r\nDate: {email.utils.formatdate(usegmt=True)}\r\n\r\n")
        item = b'{"sha1":"f2a00fd2f2de1be0214b8594e0e1a5b8a5b3e4c1","fileName":"endless.exe"},'
        chunk = item * 50
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        start = b'{"value":['
        try:
            self.wfile.write(head.encode("latin-1") + f"{len(start):x}\r\n".encode() + start + b"\r\n")
            while not self.sim._stop.is_set():
                self.wfile.write(frame)
                if pause and self.sim._stop.wait(pause):
                    break
        except OSError:
            pass  # the client gave up, as it should
        self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass


_BOMB_BLOCK = 1 << 20


@functools.lru_cache(maxsize=4)
def _gzip_bomb(size: int) -> bytes:
    """A gzip member that decompresses to ``size`` spaces (``size`` rounded
    up to MiB), built without compressing ``size`` bytes: after a full flush
    deflate starts afresh, so every MiB of spaces compresses to the same bytes."""
    blocks = max(1, -(-size // _BOMB_BLOCK))
    chunk = b" " * _BOMB_BLOCK
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflate.compress(chunk)
    deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()
    crc = zlib.crc32(chunk)
    for _ in range(blocks - 1):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    total = blocks * _BOMB_BLOCK
    return header + block * blocks + tail + struct.pack("<II", crc, total & 0xFFFFFFFF)




__all__ = ["Faults", "RequestRecord", "ScriptedResponse", "Simulator", "SimulatorOptions"]
