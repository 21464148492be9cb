"""msal authentication against the simulator's Entra ID: secret, PEM and PFX
certificates, the persisted token cache, and Entra errors with hints."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from connector.errors import AuthenticationError, ConfigError
from connector.http import auth
from connector.http.auth import TokenProvider, token_roles
from connector.http.transport import build_session
from tests.conftest import make_config


@pytest.fixture(autouse=True)
def fresh_apps():
    auth._apps.clear()
    yield
    auth._apps.clear()


def provider(config) -> TokenProvider:
    return TokenProvider(config, build_session(config))


def test_client_secret_gets_a_token_with_the_roles(simulator, tmp_path) -> None:
    cfg = make_config(simulator.connector_config(), tmp_path)
    token = provider(cfg).token()
    assert set(token_roles(token)) == {"File.Read.All", "Alert.Read.All"}


def test_pem_certificate_credential(simulator, tmp_path) -> None:
    cfg = make_config(simulator.connector_config(client_secret=None, certificate_path=str(simulator.client_cert_pem)),
                      tmp_path)
    assert "File.Read.All" in token_roles(provider(cfg).token())


def test_pfx_certificate_credential_with_password(simulator, tmp_path) -> None:
    cfg = make_config(simulator.connector_config(client_secret=None, certificate_path=str(simulator.client_cert_pfx),
                                                 certificate_password=simulator.client_cert_pfx_password), tmp_path)
    assert "File.Read.All" in token_roles(provider(cfg).token())


def test_pfx_with_a_wrong_password_names_the_key(simulator, tmp_path) -> None:
    cfg = make_config(simulator.connector_config(client_secret=None, certificate_path=str(simulator.client_cert_pfx),
                                                 certificate_password="not-the-password"), tmp_path)
    with pytest.raises(ConfigError) as info:
        provider(cfg).token()
    assert "certificate_password" in str(info.value) and "not-the-password" not in str(info.value)


def test_encrypted_pem_without_password_names_the_key(simulator, tmp_path) -> None:
    data = simulator.client_cert_pem.read_bytes()
    key = serialization.load_pem_private_key(data, None)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"Pem-Passw0rd"))
    cert = data[data.index(b"-----BEGIN CERTIFICATE-----"):]
    pem = tmp_path / "encrypted.pem"
    pem.write_bytes(encrypted + cert)
    values = simulator.connector_config(client_secret=None, certificate_path=str(pem))
    with pytest.raises(ConfigError, match="certificate_password"):
        provider(make_config(values, tmp_path / "a")).token()
    values["certificate_password"] = "Pem-Passw0rd"
    auth._apps.clear()
    assert token_roles(provider(make_config(values, tmp_path / "b")).token())


def test_pem_without_a_certificate_is_refused(simulator, tmp_path) -> None:
    data = simulator.client_cert_pem.read_bytes()
    key_only = tmp_path / "key.pem"
    key_only.write_bytes(data[: data.index(b"-----BEGIN CERTIFICATE-----")])
    cfg = make_config(simulator.connector_config(client_secret=None, certificate_path=str(key_only)), tmp_path)
    with pytest.raises(ConfigError, match="both the private key and its certificate"):
        provider(cfg).token()


def test_token_cache_is_private_and_reused_across_providers(simulator, tmp_path) -> None:
    cfg = make_config(simulator.connector_config(), tmp_path / "state")
    before = simulator.token_requests
    first = provider(cfg)
    token = first.token()
    auth._apps.clear()  # a new process
    second = provider(cfg)
    assert second.token() == token
    assert simulator.token_requests - before == 1
    assert first.token_requests == 1 and second.token_requests == 0
    assert stat.S_IMODE(os.stat(first.cache_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cfg.state_dir).st_mode) == 0o700
    assert simulator.client_secret not in first.cache_path.read_text()


def test_invalidate_forces_a_new_token(simulator, tmp_path) -> None:
    cfg = make_config(simulator.connector_config(), tmp_path)
    p = provider(cfg)
    p.token()
    p.invalidate()
    p.token()
    assert p.token_requests == 2


def test_corrupt_token_cache_is_replaced(simulator, tmp_path) -> None:
    cfg = make_config(simulator.connector_config(), tmp_path)
    p = provider(cfg)
    p.cache_path.parent.mkdir(parents=True, exist_ok=True)
    p.cache_path.write_text("{not json", encoding="utf-8")
    assert p.token()
    import json

    assert "AccessToken" in json.loads(p.cache_path.read_text())


@pytest.mark.parametrize(
    ("override", "code", "hint"),
    [
        ({"client_secret": "Wrong~secret-value-0123456789"}, "AADSTS7000215", "Secret ID"),
        ({"client_id": "99999999-8888-4777-8666-555555555555"}, "AADSTS700016", "client_id"),
        ({"token_scope": "https://management.azure.com/.default"}, None, "token_scope"),
    ],
)
def test_entra_errors_carry_code_hint_and_correlation_id(simulator, tmp_path, override, code, hint) -> None:
    cfg = make_config(simulator.connector_config(**override), tmp_path)
    with pytest.raises(AuthenticationError) as info:
        provider(cfg).token()
    err = info.value
    text = str(err)
    if code:
        assert err.code == code and code in text
    assert err.code and err.code.startswith("AADSTS")
    assert hint in text
    assert err.correlation_id and err.correlation_id in text
    assert "\n" not in text and "Wrong~secret" not in text


def test_unknown_tenant_is_reported_not_crashed(simulator, tmp_path) -> None:
    tenant = "abcdefab-0000-4000-8000-000000000000"
    cfg = make_config(simulator.connector_config(tenant_id=tenant,
                                                 authority_url=f"{simulator.base_url}/{tenant}"), tmp_path)
    with pytest.raises(AuthenticationError) as info:
        provider(cfg).token()
    assert "tenant" in str(info.value).lower()


def test_unreachable_authority_is_a_network_error(tmp_path) -> None:
    from connector.errors import NetworkError

    cfg = make_config({"tenant_id": "t", "client_id": "c", "client_secret": "s3cret-value",
                       "authority_url": "https://127.0.0.1:9/t", "api_base_url": "https://127.0.0.1:9",
                       "timeout_seconds": 2}, tmp_path)
    with pytest.raises(NetworkError) as info:
        provider(cfg).token()
    assert "127.0.0.1:9" in str(info.value)


def test_roles_of_a_malformed_token_are_empty() -> None:
    assert token_roles("not-a-jwt") == []
    assert token_roles("a.%%%.c") == []


def test_ca_bundle_adds_to_the_public_roots(simulator, tmp_path: Path) -> None:
    import certifi

    cfg = make_config(simulator.connector_config(), tmp_path)
    session = build_session(cfg)
    bundle = Path(session.verify)
    text = bundle.read_text()
    assert simulator.ca_bundle.read_text().strip() in text
    assert Path(certifi.where()).read_text().strip()[:200] in text


def test_entra_unavailable_is_one_sentence(simulator, tmp_path) -> None:
    from mde_simulator import ScriptedResponse

    cfg = make_config(simulator.connector_config(), tmp_path)
    simulator.script(ScriptedResponse(503, path_contains="/oauth2/v2.0/token", times=5))
    try:
        with pytest.raises(AuthenticationError) as info:
            provider(cfg).token()
    finally:
        simulator.clear_script()
    assert "could not issue a token" in str(info.value) and "\n" not in str(info.value)
