"""The pinned session reads the environment's proxy settings once per origin
(requests would read them on every request), with the same answer."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connector.http.transport import PinnedSession

API = "https://api.example.test/api/alerts/x/files"
LOGIN = "https://login.example.test/tenant/oauth2/v2.0/token"


@pytest.fixture
def env_proxy(monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    monkeypatch.setenv("NO_PROXY", "login.example.test")
    return "http://proxy.example.test:3128"


def reference(url: str, verify: str) -> dict[str, Any]:
    return dict(requests.Session().merge_environment_settings(url, {}, None, verify, None))


def test_same_answer_as_requests(env_proxy: str) -> None:
    session = PinnedSession("/ca.pem", None, 30)
    for url in (API, LOGIN, API, LOGIN):
        assert session.merge_environment_settings(url, {}, None, "/ca.pem", None) == reference(url, "/ca.pem")
    assert session.merge_environment_settings(API, {}, None, "/ca.pem", None)["proxies"]["https"] == env_proxy
    assert "https" not in session.merge_environment_settings(LOGIN, {}, None, "/ca.pem", None)["proxies"]


def test_the_environment_is_read_once_per_origin(env_proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = requests.Session.merge_environment_settings

    def counting(self: Any, url: Any, *args: Any) -> Any:
        reads.append(url)
        return real(self, url, *args)

    monkeypatch.setattr(requests.Session, "merge_environment_settings", counting)
    session = PinnedSession("/ca.pem", None, 30)
    for path in ("/a", "/b", "/c"):
        session.merge_environment_settings(f"https://api.example.test{path}", {}, None, "/ca.pem", None)
    session.merge_environment_settings(LOGIN, {}, None, "/ca.pem", None)
    assert reads == ["https://api.example.test/a", LOGIN]


def test_callers_get_copies(env_proxy: str) -> None:
    session = PinnedSession("/ca.pem", None, 30)
    first = session.merge_environment_settings(API, {}, None, "/ca.pem", None)
    first["proxies"]["https"] = "http://elsewhere:1"
    first["verify"] = False
    again = session.merge_environment_settings(API, {}, None, "/ca.pem", None)
    assert again["proxies"]["https"] == env_proxy and again["verify"] == "/ca.pem"


def test_a_configured_proxy_still_wins(env_proxy: str) -> None:
    configured = {"http": "http://configured:8080", "https": "http://configured:8080"}
    session = PinnedSession("/ca.pem", "http://configured:8080", 30)
    merged = session.merge_environment_settings(API, configured, None, "/ca.pem", None)
    assert merged["proxies"]["https"] == "http://configured:8080"
