"""The console's HTTP server: standard library only, loopback by default.

Security model (every request, in this order):

1. **Host check** (DNS rebinding): the ``Host`` header must name the address
   the console listens on (``127.0.0.1:PORT``, ``localhost:PORT``,
   ``[::1]:PORT`` or an ``--allow-host``); anything else gets 403.
2. **Access token**: a random ``secrets.token_urlsafe(32)`` per start, printed
   in the URL like a notebook server's. ``GET /?token=...`` exchanges it for
   an HttpOnly, SameSite=Strict cookie and redirects to drop it from the
   address bar. Every other request needs that cookie (403 without it).
3. **State-changing requests** (POST, PUT, DELETE) also need the per-start
   CSRF value (served by ``GET /api/session`` to the page) in
   ``X-CSRF-Token``, an ``Origin`` equal to ``http://<Host>``, and a JSON body.

Every response carries a strict Content-Security-Policy (no inline script,
nothing from other origins), ``nosniff`` and ``frame-ancestors 'none'``.
Secrets compare with :func:`hmac.compare_digest`. Request lines are not
logged (the first one carries the token).
"""

from __future__ import annotations

import hmac
import json
import logging
import mimetypes
import secrets
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from connector.console.app import ConsoleApp, Reply
from connector.text import dumps_output

log = logging.getLogger("connector.console")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY = 2 * 1024 * 1024
_STATE_CHANGING = {"POST", "PUT", "DELETE", "PATCH"}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


class ConsoleServer:
    """The console on ``host:port`` (port 0: any free port) serving ``app``.

    ``url`` is the address to open (with the access token). ``start()`` serves
    in a background thread (tests); ``serve_forever()`` in the caller's.
    """

    def __init__(self, app: ConsoleApp, host: str = "127.0.0.1", port: int = 0,
                 allow_hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.token = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        server_class = _HTTPServer6 if ":" in host else _HTTPServer
        self.httpd = server_class((host, port), _Handler)
        self.httpd.console = self
        self.host = host
        self.port = int(self.httpd.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        names = {shown, *allow_hosts}
        if host in ("127.0.0.1", "::1", "localhost"):
            names |= {"127.0.0.1", "localhost", "[::1]"}
        self.allowed_hosts = frozenset(f"{n}:{self.port}".lower() for n in names)
        self.cookie_name = f"mde_console_{self.port}"
        self.base_url = f"http://{shown}:{self.port}"
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The URL to open: the base URL with the access token."""
        return f"{self.base_url}/?token={self.token}"

    def start(self) -> ConsoleServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="console-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve until interrupted."""
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    console: ConsoleServer


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8"))


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "mde-connector-console"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    # -- plumbing -------------------------------------------------------------

    @property
    def console(self) -> ConsoleServer:
        return self.server.console

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        # The request line may carry the access token: log the path only.
        log.debug("%s %s", self.command, urlsplit(self.path).path)

    def _headers(self, status: int, content_type: str, length: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self._headers(status, content_type, len(body), extra)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, dumps_output(payload, indent=None).encode("utf-8"), "application/json; charset=utf-8")

    def _refuse(self, message: str) -> None:
        self._json(HTTPStatus.FORBIDDEN, {"error": message})

    def _cookie(self) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.console.cookie_name:
                return value
        return None

    def _body(self) -> dict[str, Any]:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise _BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Send the request body as application/json.")
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "The Content-Length header is not a number.") from None
        if length < 0 or length > MAX_BODY:
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"The request body is larger than {MAX_BODY // (1024 * 1024)} MB.")
        raw = self.rfile.read(length)
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "The request body must be a JSON object.")
        return data

    # -- checks -----------------------------------------------------------------

    def _host_ok(self) -> bool:
        return (self.headers.get("Host") or "").strip().lower() in self.console.allowed_hosts

    def _authorised(self) -> bool:
        return _same(self._cookie(), self.console.token)

    def _state_change_ok(self) -> str | None:
        """None when a state-changing request may proceed, else why not."""
        if not _same(self.headers.get("X-CSRF-Token"), self.console.csrf):
            return "The request lacks the console's CSRF token; reload the page."
        origin = self.headers.get("Origin")
        if origin is None or origin.lower() != f"http://{(self.headers.get('Host') or '').strip().lower()}":
            return "The request comes from another origin."
        return None

    # -- dispatch ---------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            self._route()
        except _BadRequest as exc:
            self._json(exc.status, {"error": exc.message})
        except BrokenPipeError:
            pass
        except Exception as exc:  # noqa: BLE001 - one sentence, never a traceback to the page
            log.exception("console request failed")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                       {"error": f"The console failed to answer ({exc.__class__.__name__})."})

    def _route(self) -> None:
        if not self._host_ok():
            self._refuse("The Host header does not name this console; open the URL it printed.")
            return
        parts = urlsplit(self.path)
        path = parts.path
        if path == "/" and self.command in ("GET", "HEAD"):
            tokens = parse_qs(parts.query).get("token")
            if tokens:
                token = tokens[0]
                if not _same(token, self.console.token):
                    self._refuse("The access token is wrong; open the URL the console printed.")
                    return
                cookie = f"{self.console.cookie_name}={self.console.token}; HttpOnly; SameSite=Strict; Path=/"
                self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})
                return
        if not self._authorised():
            if path.startswith("/api/"):
                self._refuse("The console needs its access token; open the URL it printed.")
            else:
                self._send(HTTPStatus.FORBIDDEN,
                           b"Open the URL that 'mde-connector console' printed (it holds the access token).\n",
                           "text/plain; charset=utf-8")
            return
        if self.command in _STATE_CHANGING:
            why = self._state_change_ok()
            if why is not None:
                self._refuse(why)
                return
        if path == "/" or path == "/index.html":
            self._static("index.html")
            return
        if path.startswith("/static/"):
            self._static(path[len("/static/"):])
            return
        if path.startswith("/api/"):
            status, payload = self._api(self.command, [unquote(p) for p in path[len("/api/"):].split("/")],
                                        parts.query)
            self._json(status, payload)
            return
        self._json(HTTPStatus.NOT_FOUND, {"error": "There is no such page."})

    def _static(self, name: str) -> None:
        files = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
        if name not in files or self.command not in ("GET", "HEAD"):
            self._json(HTTPStatus.NOT_FOUND, {"error": "There is no such file."})
            return
        path = files[name]
        ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, path.read_bytes(), ctype)

    def _api(self, method: str, seg: list[str], query: str) -> Reply:
        app = self.console.app
        get = method in ("GET", "HEAD")
        if get and seg == ["session"]:
            return 200, {"csrf": self.console.csrf, "actions_enabled": app.actions_enabled,
                         "config_problem": app.config_problem, "playbook_dir": str(app.playbook_dir)}
        given = parse_qs(query).get("since")
        since = given[0] if given else None
        if get and seg == ["containers"]:
            return app.containers(since)
        if get and len(seg) == 2 and seg[0] == "containers":
            return app.container(seg[1], since)
        if get and seg == ["manifest"]:
            return app.manifest_info()
        if get and seg == ["playbooks"]:
            return app.playbooks()
        if get and len(seg) == 3 and seg[0] == "playbooks":
            return app.playbook(f"{seg[1]}/{seg[2]}")
        if get and len(seg) == 2 and seg[0] == "jobs":
            return app.job(seg[1])
        if method == "POST" and len(seg) == 3 and seg[0] == "actions" and seg[2] in ("validate", "run"):
            body = self._body()
            return app.validate_action(seg[1], body) if seg[2] == "validate" else app.run_action(seg[1], body)
        if method == "POST" and seg == ["playbooks", "validate"]:
            return app.validate_playbook(self._body())
        if method == "POST" and seg == ["playbooks", "paths"]:
            return app.data_paths(self._body())
        if method == "POST" and seg == ["playbooks", "run"]:
            return app.run_playbook(self._body())
        if method == "PUT" and len(seg) == 3 and seg[0] == "playbooks":
            return app.save_playbook(f"{seg[1]}/{seg[2]}", self._body())
        return 404, {"error": "There is no such API endpoint."}
