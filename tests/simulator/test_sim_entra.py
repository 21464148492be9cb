"""Simulated Entra ID: msal with a secret, a PEM certificate and a PFX; AADSTS
errors in Entra's shape; the issued access token."""

from __future__ import annotations

import re
import time
import uuid

import jwt
import msal
import pytest
from cryptography.hazmat.primitives import serialization

from mde_simulator import (
    LEGACY_TOKEN_SCOPE,
    Simulator,
    make_client_certificate,
    pem_bundle,
)
from tests.simulator.sim_helpers import PinnedSession, acquire, msal_app

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _post_token(sim: Simulator, form: dict[str, str], tenant: str | None = None) -> tuple[int, dict]:
    session = PinnedSession(sim.ca_bundle)
    url = f"{sim.base_url}/{tenant or sim.tenant_id}/oauth2/v2.0/token"
    response = session.post(url, data=form)
    return response.status_code, response.json()


def _assert_entra_error(body: dict, error: str, code: int) -> None:
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert UUID_RE.match(body["trace_id"]) and UUID_RE.match(body["correlation_id"])
    assert f"Trace ID: {body['trace_id']}" in body["error_description"]
    assert f"Correlation ID: {body['correlation_id']}" in body["error_description"]
    assert body["timestamp"]


def test_msal_secret_gets_a_bearer_token(sim: Simulator) -> None:
    result = acquire(sim, sim.client_secret)
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://api.securitycenter.microsoft.com"
    assert claims["iss"] == f"https://sts.windows.net/{sim.tenant_id}/"
    assert claims["tid"] == sim.tenant_id
    assert claims["appid"] == sim.client_id
    assert sorted(claims["roles"]) == ["Alert.Read.All", "File.Read.All"]
    assert claims["nbf"] <= time.time() < claims["exp"] <= time.time() + 3600


def test_token_signature_verifies_with_the_published_jwks(sim: Simulator, token: str) -> None:
    session = PinnedSession(sim.ca_bundle)
    config = session.get(f"{sim.authority_url}/v2.0/.well-known/openid-configuration").json()
    assert config["token_endpoint"] == f"{sim.authority_url}/oauth2/v2.0/token"
    keys = session.get(config["jwks_uri"]).json()["keys"]
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in keys if k["kid"] == header["kid"])
    key = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, key, algorithms=["RS256"], audience="https://api.securitycenter.microsoft.com")
    assert claims["appid"] == sim.client_id


def test_msal_certificate_pem_with_thumbprint(sim: Simulator) -> None:
    credential = {"private_key": sim.client_cert_pem.read_text(), "thumbprint": sim.client_cert_thumbprint}
    result = acquire(sim, credential)
    assert "access_token" in result, result.get("error_description")
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["appidacr"] == "2"


def test_msal_certificate_pfx_with_passphrase(sim: Simulator) -> None:
    credential = {"private_key_pfx_path": str(sim.client_cert_pfx), "passphrase": sim.client_cert_pfx_password}
    result = acquire(sim, credential)  # msal signs PS256 with an x5t#S256 header here
    assert "access_token" in result, result.get("error_description")


def test_msal_certificate_not_registered_is_aadsts700027(sim: Simulator) -> None:
    key, cert = make_client_certificate("someone else")
    pem = pem_bundle(key, cert).decode()
    result = acquire(sim, {"private_key": pem, "public_certificate": pem})
    assert result["error"] == "invalid_client"
    assert 700027 in result["error_codes"]


def test_assertion_signed_with_another_key_is_rejected(sim: Simulator) -> None:
    other_key, _ = make_client_certificate("attacker")
    sim_cert = sim.client_cert_pem.read_bytes()
    now = int(time.time())
    assertion = jwt.encode(
        {"aud": f"{sim.authority_url}/oauth2/v2.0/token", "iss": sim.client_id, "sub": sim.client_id,
         "exp": now + 600, "nbf": now, "jti": str(uuid.uuid4())},
        other_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()),
        algorithm="RS256",
    )
    assert b"CERTIFICATE" in sim_cert
    status, body = _post_token(sim, {
        "grant_type": "client_credentials", "client_id": sim.client_id, "scope": sim.token_scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    })
    assert status == 401
    _assert_entra_error(body, "invalid_client", 700027)


def test_wrong_secret_is_aadsts7000215_in_entras_shape(sim: Simulator) -> None:
    before = sim.token_requests
    result = acquire(sim, "not-the-secret")
    assert "access_token" not in result
    _assert_entra_error(result, "invalid_client", 7000215)
    assert "Invalid client secret provided" in result["error_description"]
    status, body = _post_token(sim, {"grant_type": "client_credentials", "client_id": sim.client_id,
                                     "client_secret": "nope", "scope": sim.token_scope})
    assert status == 401
    _assert_entra_error(body, "invalid_client", 7000215)
    assert "nope" not in body["error_description"]
    assert sim.token_requests >= before + 2


def test_unknown_client_is_aadsts700016(sim: Simulator) -> None:
    status, body = _post_token(sim, {"grant_type": "client_credentials", "client_id": str(uuid.uuid4()),
                                     "client_secret": "x", "scope": sim.token_scope})
    assert status == 400
    _assert_entra_error(body, "unauthorized_client", 700016)


def test_unknown_tenant_is_aadsts90002_for_token_and_discovery(sim: Simulator) -> None:
    other = str(uuid.uuid4())
    status, body = _post_token(sim, {"grant_type": "client_credentials", "client_id": sim.client_id,
                                     "client_secret": sim.client_secret, "scope": sim.token_scope}, tenant=other)
    assert status == 400
    _assert_entra_error(body, "invalid_request", 90002)
    response = PinnedSession(sim.ca_bundle).get(f"{sim.base_url}/{other}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    _assert_entra_error(response.json(), "invalid_request", 90002)
    with pytest.raises(ValueError):
        msal.ConfidentialClientApplication(
            sim.client_id, client_credential=sim.client_secret, authority=f"{sim.base_url}/{other}",
            instance_discovery=False, http_client=PinnedSession(sim.ca_bundle),
        )


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        ("https://api.securitycenter.microsoft.com/Alert.Read.All", 1002012),
        ("https://graph.microsoft.com/.default https://api.securitycenter.microsoft.com/.default", 1002012),
        ("https://example.invalid/.default", 70011),
    ],
)
def test_bad_scope_is_invalid_scope(sim: Simulator, scope: str, code: int) -> None:
    status, body = _post_token(sim, {"grant_type": "client_credentials", "client_id": sim.client_id,
                                     "client_secret": sim.client_secret, "scope": scope})
    assert status == 400
    _assert_entra_error(body, "invalid_scope", code)


def test_legacy_scope_is_accepted_and_its_token_works(sim: Simulator) -> None:
    app = msal_app(sim, sim.client_secret)
    result = app.acquire_token_for_client([LEGACY_TOKEN_SCOPE])
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://securitycenter.onmicrosoft.com/windowsatpservice"
    response = PinnedSession(sim.ca_bundle).get(
        f"{sim.api_base_url}/api/alerts", params={"$top": "1"},
        headers={"Authorization": f"Bearer {result['access_token']}"},
    )
    assert response.status_code == 200


def test_msal_caches_the_token(sim: Simulator) -> None:
    app = msal_app(sim, sim.client_secret)
    before = sim.token_requests
    first = app.acquire_token_for_client([sim.token_scope])
    second = app.acquire_token_for_client([sim.token_scope])
    assert first["access_token"] == second["access_token"]
    assert second["token_source"] == "cache"
    assert sim.token_requests == before + 1


def test_token_requests_are_logged_without_secrets(sim: Simulator) -> None:
    acquire(sim, sim.client_secret)
    records = [r for r in sim.requests if r.path.endswith("/oauth2/v2.0/token")]
    assert records and records[-1].status == 200 and records[-1].client_id == sim.client_id
    assert sim.client_secret not in repr(sim.requests)

