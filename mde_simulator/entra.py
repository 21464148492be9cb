"""Simulated Entra ID (Azure AD) v2.0 endpoints for the client-credentials flow.

Covers what msal's ``ConfidentialClientApplication`` uses with
``instance_discovery=False``: the tenant's OpenID configuration, its signing
keys, and the token endpoint with a client secret or a certificate
(``client_assertion`` JWT signed RS256 or PS256). Errors carry Entra's body
shape and AADSTS codes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .tls import b64url, key_id

ROLE_FILES = "File.Read.All"
ROLE_ALERTS = "Alert.Read.All"
DEFAULT_ROLES = (ROLE_FILES, ROLE_ALERTS)
#: Microsoft Graph application permissions: only tokens for the Graph audience carry them.
GRAPH_ROLES = frozenset({"SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"})
GRAPH_AUDIENCE = "https://graph.microsoft.com"

#: scope -> audience of the issued token
ACCEPTED_SCOPES = {
    "https://api.securitycenter.microsoft.com/.default": "https://api.securitycenter.microsoft.com",
    "https://securitycenter.onmicrosoft.com/windowsatpservice/.default": (
        "https://securitycenter.onmicrosoft.com/windowsatpservice"
    ),
    "https://graph.microsoft.com/.default": "https://graph.microsoft.com",
}
ACCEPTED_AUDIENCES = tuple(ACCEPTED_SCOPES.values())
DEFAULT_SCOPE = "https://api.securitycenter.microsoft.com/.default"

# Object id of the "WindowsDefenderATP" first-party application: what a real
# token's resource principal is.
_WDATP_APP_ID = "fc780465-2017-40d4-a0c5-307022471b92"


@dataclass
class App:
    """A registered application (service principal) of the simulated tenant."""

    client_id: str
    secret: str | None
    roles: tuple[str, ...]
    certificates: list[x509.Certificate] = field(default_factory=list)
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def thumbprints(self) -> dict[str, x509.Certificate]:
        """x5t (base64url SHA-1) and x5t#S256 values -> certificate."""
        out: dict[str, x509.Certificate] = {}
        for cert in self.certificates:
            out[b64url(cert.fingerprint(hashes.SHA1()))] = cert  # noqa: S303 - x5t is SHA-1 by spec
            out[b64url(cert.fingerprint(hashes.SHA256()))] = cert
        return out


class TokenError(Exception):
    """An Entra ID error response."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def body(self) -> dict[str, Any]:
        """Entra's JSON error body, with fresh trace and correlation ids."""
        trace_id = str(uuid.uuid4())
        correlation_id = str(uuid.uuid4())
        stamp = dt.datetime.now(dt.timezone.utc)
        text_stamp = stamp.strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} "
                f"Correlation ID: {correlation_id} Timestamp: {text_stamp}"
            ),
            "error_codes": [self.code],
            "timestamp": text_stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }


def unknown_tenant(tenant: str) -> TokenError:
    """AADSTS90002: the tenant in the URL does not exist."""
    return TokenError(
        400,
        "invalid_request",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud. Check with your subscription administrator, this "
        "may happen if there are no active subscriptions for the tenant.",
    )


class TokenAuthority:
    """Issues and verifies the simulated tenant's access tokens."""

    def __init__(
        self,
        tenant_id: str,
        signing_key: rsa.RSAPrivateKey,
        token_lifetime: int,
    ) -> None:
        self.tenant_id = tenant_id
        self.token_lifetime = token_lifetime
        self._key = signing_key
        self._public = signing_key.public_key()
        der = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = key_id(der)
        self.issuer = f"https://sts.windows.net/{tenant_id}/"
        self.apps: dict[str, App] = {}
        self._apps_lock = threading.Lock()
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._verified_lock = threading.Lock()

    # -- apps -----------------------------------------------------------------
    def add_app(self, app: App) -> None:
        """Register or replace an application."""
        with self._apps_lock:
            self.apps[app.client_id.lower()] = app

    def app(self, client_id: str) -> App | None:
        """The registered app with this client id (case-insensitive)."""
        return self.apps.get(client_id.lower())

    # -- discovery --------------------------------------------------------------
    def openid_configuration(self, base_url: str) -> dict[str, Any]:
        """The v2.0 OpenID Provider metadata of the tenant."""
        root = f"{base_url}/{self.tenant_id}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base_url}/{self.tenant_id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base_url}/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver",
            ],
            "kerberos_endpoint": f"{root}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def jwks(self) -> dict[str, Any]:
        """The tenant's token-signing keys (JWK set)."""
        numbers = self._public.public_numbers()

        def _int(value: int) -> str:
            return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "x5t": self.kid,
                    "n": _int(numbers.n),
                    "e": _int(numbers.e),
                    "issuer": f"https://login.microsoftonline.com/{self.tenant_id}/v2.0",
                }
            ]
        }

    # -- token endpoint ---------------------------------------------------------
    def token(
        self, form: dict[str, str], token_endpoint_urls: Iterable[str]
    ) -> tuple[dict[str, Any], str]:
        """Handle a POSTed token request; returns (response body, client id).

        Raises :class:`TokenError` with the AADSTS code Entra would send.
        """
        grant_type = form.get("grant_type")
        if not grant_type:
            raise TokenError(
                400, "invalid_request", 900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        if grant_type != "client_credentials":
            raise TokenError(
                400, "unsupported_grant_type", 70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id", "")
        assertion = form.get("client_assertion")
        if not client_id and assertion:
            try:
                client_id = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
            except jwt.PyJWTError:
                client_id = ""
        if not client_id:
            raise TokenError(
                400, "invalid_request", 900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        scope = form.get("scope")
        if not scope:
            raise TokenError(
                400, "invalid_request", 900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        app = self.app(client_id)
        if app is None:
            raise TokenError(
                400, "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant. "
                "You may have sent your authentication request to the wrong tenant.",
            )
        audience = self._audience_for(scope)
        secret = form.get("client_secret")
        if assertion is not None:
            if form.get("client_assertion_type") != (
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            ):
                raise TokenError(
                    400, "invalid_request", 900144,
                    "The request body must contain the following parameter: "
                    "'client_assertion_type'.",
                )
            self._check_assertion(app, assertion, token_endpoint_urls)
            credential_type = "2"
        elif secret is not None:
            if app.secret is None or not hmac.compare_digest(
                secret.encode("utf-8"), app.secret.encode("utf-8")
            ):
                raise TokenError(
                    401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{app.client_id}'.",
                )
            credential_type = "1"
        else:
            raise TokenError(
                401, "invalid_client", 7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        access_token = self.mint(app, audience=audience, appidacr=credential_type)
        body = {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": access_token,
        }
        return body, app.client_id

    def _audience_for(self, scope: str) -> str:
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise TokenError(
                400, "invalid_scope", 1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        for accepted, audience in ACCEPTED_SCOPES.items():
            if scopes[0].lower() == accepted.lower():
                return audience
        resource = scopes[0][: -len("/.default")]
        raise TokenError(
            400, "invalid_scope", 70011,
            f"The provided request must include a 'scope' input parameter. The provided value "
            f"for the input parameter 'scope' is not valid: the resource principal named "
            f"{resource} was not found in the tenant named {self.tenant_id}.",
        )

    def _check_assertion(
        self, app: App, assertion: str, token_endpoint_urls: Iterable[str]
    ) -> None:
        def bad(reason: str) -> TokenError:
            return TokenError(401, "invalid_client", 700027, reason)

        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise bad("Client assertion failed signature validation: the assertion is not a "
                      "well-formed JWT.") from None
        alg = header.get("alg")
        if alg not in ("RS256", "PS256"):
            raise bad(f"Client assertion failed signature validation: algorithm '{alg}' is not "
                      "supported.")
        thumbs = app.thumbprints()
        hint = header.get("x5t#S256") or header.get("x5t")
        if isinstance(hint, str):
            # msal pads its base64url thumbprints; tolerate padding and plain base64.
            hint = hint.rstrip("=").replace("+", "-").replace("/", "_")
        if not app.certificates:
            raise bad(f"Client assertion failed signature validation: no certificate is "
                      f"registered on application '{app.client_id}'.")
        if hint is not None and hint not in thumbs:
            raise bad(f"The certificate with identifier used to sign the client assertion is not "
                      f"registered on application. [Reason - The key was not found., Thumbprint "
                      f"of key used by client: '{_hex_thumbprint(hint)}']")
        candidates = [thumbs[hint]] if hint is not None else app.certificates
        audiences = [u for u in token_endpoint_urls]
        last_error: Exception | None = None
        for cert in candidates:
            try:
                claims = jwt.decode(
                    assertion,
                    cert.public_key(),  # type: ignore[arg-type]
                    algorithms=["RS256", "PS256"],
                    audience=audiences,
                    options={"require": ["exp", "aud", "iss", "sub"]},
                )
            except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
                # Entra ID's answer to an assertion from a clock that is
                # behind (expired) or ahead (not valid yet).
                raise TokenError(
                    401, "invalid_client", 700024,
                    "Client assertion is not within its valid time range.",
                ) from None
            except jwt.InvalidAudienceError:
                raise bad("Client assertion audience claim does not match Realm issuer: the "
                          "'aud' claim must be the token endpoint.") from None
            except jwt.PyJWTError as exc:
                last_error = exc
                continue
            if claims.get("iss") != claims.get("sub") or str(claims.get("iss")).lower() != (
                app.client_id.lower()
            ):
                raise bad("Client assertion contains an invalid 'iss' or 'sub' claim: both must "
                          "be the application's client id.")
            return
        raise bad(f"Client assertion failed signature validation. ({type(last_error).__name__})")

    # -- access tokens -------------------------------------------------------------
    @staticmethod
    def _roles_for(app: App, audience: str) -> list[str]:
        # An app's roles belong to one resource each: a Graph token carries
        # the Graph permissions, a Defender token the Defender ones.
        graph = audience == GRAPH_AUDIENCE
        return [r for r in app.roles if (r in GRAPH_ROLES) == graph]

    def mint(
        self,
        app: App,
        *,
        audience: str = ACCEPTED_AUDIENCES[0],
        lifetime: int | None = None,
        roles: Iterable[str] | None = None,
        appidacr: str = "1",
    ) -> str:
        """An RS256 access token for ``app`` as Entra would issue it."""
        now = int(time.time())
        life = self.token_lifetime if lifetime is None else lifetime
        claims = {
            "aud": audience,
            "iss": self.issuer,
            "iat": now - 0,
            "nbf": now - 0,
            "exp": now + life,
            "aio": b64url(uuid.uuid4().bytes),
            "app_displayname": f"mde-connector ({app.client_id[:8]})",
            "appid": app.client_id,
            "appidacr": appidacr,
            "idp": self.issuer,
            "oid": app.object_id,
            "rh": b64url(uuid.uuid4().bytes),
            "roles": list(self._roles_for(app, audience) if roles is None else roles),
            "sub": app.object_id,
            "tid": self.tenant_id,
            "uti": b64url(uuid.uuid4().bytes)[:22],
            "ver": "1.0",
            "xms_rp": _WDATP_APP_ID,
        }
        return jwt.encode(
            claims, self._key, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid}
        )

    def verify(self, token: str) -> tuple[dict[str, Any] | None, str]:
        """Check an API bearer token: (claims, "") or (None, reason)."""
        with self._verified_lock:
            claims = self._verified.get(token)
        if claims is None:
            try:
                claims = jwt.decode(
                    token,
                    self._public,
                    algorithms=["RS256"],
                    audience=list(ACCEPTED_AUDIENCES),
                    issuer=self.issuer,
                    options={"require": ["exp", "aud", "iss"], "verify_exp": False},
                )
            except jwt.InvalidAudienceError:
                return None, "The access token's audience is not valid for this API."
            except jwt.PyJWTError:
                return None, "The access token is invalid or its signature does not verify."
            with self._verified_lock:
                self._verified[token] = claims
                if len(self._verified) > 4096:
                    self._verified.popitem(last=False)
        if claims.get("exp", 0) <= time.time():
            return None, "The access token has expired."
        if claims.get("tid") != self.tenant_id:
            return None, "The access token was issued for another tenant."
        return claims, ""


def _hex_thumbprint(b64: str) -> str:
    try:
        padded = b64 + "=" * (-len(b64) % 4)
        return base64.urlsafe_b64decode(padded).hex().upper()
    except (ValueError, TypeError):
        return b64
