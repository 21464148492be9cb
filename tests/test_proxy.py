"""The ``proxy`` setting carries both Entra ID and API traffic (HTTPS CONNECT),
and wins over an ``HTTPS_PROXY`` in the environment."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from connector.actions import run_action
from connector.http import auth
from tests.conftest import NoSleep, make_config, make_context


class _ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.tunnels: list[str] = []


class _Tunnel(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline().decode("latin-1")
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        method, target, _ = line.split(" ", 2)
        if method != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, port = target.rsplit(":", 1)
        self.server.tunnels.append(target)  # type: ignore[attr-defined]
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while chunk := src.recv(65536):
                    dst.sendall(chunk)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=pump, args=(upstream, self.connection), daemon=True)
        back.start()
        pump(self.connection, upstream)
        back.join(5)
        upstream.close()


@pytest.fixture
def proxy() -> Iterator[_ConnectProxy]:
    server = _ConnectProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_configured_proxy_carries_token_and_api_calls(simulator, proxy, tmp_path, monkeypatch) -> None:
    auth._apps.clear()
    # An environment proxy that does not exist: if it were used, the call would fail.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    port = proxy.server_address[1]
    config = make_config(simulator.connector_config(proxy=f"http://127.0.0.1:{port}"), tmp_path)
    result = run_action("get_alert_related_files", {"alert_id": "636688558380765161_2136280442"},
                        make_context(config, sleeper=NoSleep()))
    assert result.ok, result.message
    target = simulator.base_url.split("://", 1)[1]
    # Sign-in and API both went through the tunnel (connections are reused).
    assert proxy.tunnels and set(proxy.tunnels) == {target}
