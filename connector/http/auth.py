"""Tokens from Entra ID with msal, cached on disk across processes.

One ``ConfidentialClientApplication`` per configured identity per process. Its
token cache is a ``SerializableTokenCache`` persisted in ``state_dir`` (mode
0600, written atomically, guarded by a file lock) so that separate CLI runs
within a token's lifetime reuse one token: N runs, one token request. msal
serves a cached token until five minutes before it expires.

An ``authority_url`` on a host msal does not know (a private sign-in host, the
simulator) works because instance discovery is turned off for it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from connector.config import Config, ensure_private_dir
from connector.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    NetworkError,
    TLSError,
    forget_secret,
    register_secret,
)
from connector.fsguard import atomic_write
from connector.http.cached_token import cache_problem, find_cached_token
from connector.http.transport import DeadlineExceeded, ResponseTooLarge, megabytes

log = logging.getLogger("connector.http.auth")
# msal logs a token response it cannot parse, body included, with a traceback.
# Without a handler of its own that record would reach stderr through
# logging's last-resort handler, unredacted; --verbose adds the CLI's
# redacting handler instead.
logging.getLogger("msal").addHandler(logging.NullHandler())

_KNOWN_LOGIN_HOSTS = {"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn"}

# AADSTS code -> what to do about it. The codes are Entra ID's documented ones.
_AADSTS_HINTS = {
    "7000215": "The client secret is wrong: use the secret's Value from the app registration, not its Secret ID.",
    "700024": "The certificate's signed assertion is outside its valid time range: check that this machine's "
    "clock is correct (it dates the assertion).",
    "7000222": "The client secret has expired: create a new one in the app registration.",
    "700016": "The client_id is not an application in this tenant: check client_id and tenant_id, "
    "and that an administrator consented to the app.",
    "90002": "The tenant was not found: check tenant_id and the cloud setting.",
    "900023": "The tenant_id is not a valid tenant id or domain.",
    "700027": "The certificate is not registered on the app: upload its public certificate to the app registration.",
    "1002012": "The token scope is invalid: check token_scope or the cloud setting.",
    "70011": "The token scope is invalid: check token_scope or the cloud setting.",
    "65001": "An administrator has not consented to the app's API permissions: grant admin consent.",
    "500011": "The API resource was not found in the tenant: check the cloud setting and token_scope, "
    "and that Defender for Endpoint is provisioned.",
    "7000112": "The application is disabled.",
}

_apps: dict[str, Any] = {}
_apps_lock = threading.Lock()
_last_response = threading.local()
# Access tokens handed out in this process, newest last, redacted like the
# configured secrets: an API or proxy that quotes a token back (an opaque one
# is not shaped like a JWT) cannot surface it. Only the last few are kept.
_recent_tokens: list[str] = []
_TOKENS_KEPT = 8


def _remember_token(token: str) -> None:
    with _apps_lock:
        if token in _recent_tokens:
            return
        register_secret(token)
        _recent_tokens.append(token)
        while len(_recent_tokens) > _TOKENS_KEPT:
            forget_secret(_recent_tokens.pop(0))


class _RecordingHttpClient:
    """The pinned session as msal's ``http_client``, remembering (per thread)
    the last response msal received, so that a token request that failed is
    explained by what Entra ID really answered: status, HTML or not JSON."""

    def __init__(self, session: requests.Session) -> None:
        self._session = session

    def post(self, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return self._record(self._session.post(url, *args, **kwargs))

    def get(self, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return self._record(self._session.get(url, *args, **kwargs))

    def close(self) -> None:
        self._session.close()

    @staticmethod
    def _record(response: requests.Response) -> requests.Response:
        _last_response.value = response
        return response


def _describe_answer(response: requests.Response | None) -> str:
    if response is None:
        return "a response msal could not use"
    ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if 300 <= response.status_code < 400:
        where = response.headers.get("Location") or "nowhere"
        return f"HTTP {response.status_code}, a redirect to {where[:120]} (not followed)"
    if "html" in ctype:
        return f"HTTP {response.status_code} and an HTML page (often a proxy or gateway error page)"
    try:
        response.json()
    except ValueError:
        return f"HTTP {response.status_code} and a body that is not JSON"
    return f"HTTP {response.status_code}"


def _load_certificate(config: Config) -> dict[str, str]:
    """msal's certificate credential from a PEM (key + certificate) or PFX file.

    Parsed here rather than by msal so that a wrong password or a file without
    a key gets a sentence naming the configuration key.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    path = config.certificate_path
    if path is None:
        raise ConfigError("Configuration key 'certificate_path' is required for certificate authentication.")
    data = path.read_bytes()
    password = config.certificate_password.encode() if config.certificate_password else None
    if path.suffix.lower() in {".pfx", ".p12"} or b"-----BEGIN" not in data:
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(data, password)
        except ValueError:
            raise ConfigError(
                f"The PFX file in 'certificate_path' ({path.name}) could not be opened; "
                "check 'certificate_password'.",
            ) from None
    else:
        try:
            key = serialization.load_pem_private_key(data, password)
        except TypeError:
            raise ConfigError(
                "The PEM private key in 'certificate_path' is encrypted; set 'certificate_password'.",
            ) from None
        except ValueError:
            raise ConfigError(
                "The PEM file in 'certificate_path' holds no readable private key, "
                "or 'certificate_password' is wrong.",
            ) from None
        match = re.search(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.S)
        cert = x509.load_pem_x509_certificate(match.group(0)) if match else None
    if key is None or cert is None:
        raise ConfigError("Configuration key 'certificate_path' must hold both the private key and its certificate.")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    register_secret(key_pem)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return {
        "private_key": key_pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - x5t is defined as SHA-1
        "public_certificate": cert_pem,
    }


class TokenProvider:
    """Gets access tokens for one configured identity.

    ``token()`` returns a bearer token, from the persisted cache when it is
    still valid; ``invalidate()`` drops it after the API answered 401 so the
    next ``token()`` fetches a new one. Tokens are never logged or returned in
    results.
    """

    def __init__(self, config: Config, session: requests.Session) -> None:
        self.config = config
        self.session = session
        self.cache_path = ensure_private_dir(config.state_dir) / "token_cache.json"
        self._lock_path = config.state_dir / "token_cache.lock"
        self.token_requests = 0  # how many times this process went to Entra ID
        self._app: Any = None
        self._cache: Any = None

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        # Several processes (CLI runs, the watcher) share one cache file: the
        # lock makes read-acquire-write atomic, so concurrent runs fetch one
        # token instead of one each.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self._lock_path, flags, 0o600)
        except OSError as exc:
            # A directory or a symlink in its place: set aside like the cache.
            self._set_aside(self._lock_path, f"it cannot be opened ({exc.strerror or exc.__class__.__name__})")
            fd = os.open(self._lock_path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _application(self) -> Any:
        if self._app is not None:
            return self._app
        credential = self._credential()
        cred_id = hashlib.sha256(json.dumps(credential, sort_keys=True).encode()).hexdigest()
        key = f"{self.config.fingerprint()}|{cred_id}|{self.cache_path}"
        with _apps_lock:
            existing = _apps.get(key)
        if existing is None:
            # Built outside the lock: building sends the OIDC discovery request.
            import msal

            cache = msal.SerializableTokenCache()
            built = (self._build_app(credential, cache), cache)
            with _apps_lock:
                existing = _apps.setdefault(key, built)
        self._app, self._cache = existing
        return self._app

    def _credential(self) -> Any:
        cfg = self.config
        credential: Any = cfg.client_secret if cfg.client_secret else _load_certificate(cfg)
        if isinstance(credential, str):
            register_secret(credential)
        return credential

    def _build_app(self, credential: Any, cache: Any) -> Any:
        """msal's application for this identity over ``cache`` (sends the
        authority's OIDC discovery request)."""
        import msal

        cfg = self.config
        host = cfg.login_host.split("://", 1)[1].split(":")[0]
        try:
            return msal.ConfidentialClientApplication(
                cfg.client_id,
                client_credential=credential,
                authority=cfg.authority_url,
                token_cache=cache,
                http_client=_RecordingHttpClient(self.session),
                # A host msal does not know (private authority, the
                # simulator) cannot be validated against Microsoft's list.
                instance_discovery=host in _KNOWN_LOGIN_HOSTS,
                app_name="mde-connector",
            )
        except (requests.RequestException, ValueError) as exc:
            raise self._authority_error(exc) from None

    def _authority_error(self, exc: Exception) -> Exception:
        if isinstance(exc, DeadlineExceeded):
            return NetworkError(
                f"The sign-in authority {self.config.login_host} did not send its whole answer within "
                f"timeout_seconds ({exc.seconds:g} s).",
                hint="Check the network, 'proxy' and 'authority_url', or raise 'timeout_seconds'.",
            )
        if isinstance(exc, ResponseTooLarge):
            return ApiError(
                f"The sign-in authority {self.config.login_host} sent an answer larger than max_response_mb "
                f"({megabytes(exc.limit)}) once decompressed, so the connector stopped reading it.",
                hint="Check 'authority_url' and 'proxy'; Entra ID's answers are a few kilobytes.",
            )
        if isinstance(exc, requests.exceptions.SSLError):
            from connector.http.transport import tls_reason

            host = urlsplit(self.config.login_host).hostname or self.config.login_host
            return TLSError(
                f"The TLS certificate of the sign-in authority {self.config.login_host} could not be verified: "
                f"{tls_reason(exc, host)}.",
                hint="If a private CA signs it, set 'ca_bundle' to that CA's PEM file.",
            )
        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            from connector.http.transport import connection_failure

            sentence, hint = connection_failure(exc, self.config.login_host, float(self.config.timeout_seconds))
            return NetworkError(f"The sign-in authority {self.config.login_host} could not be reached: "
                                f"{sentence[:1].lower()}{sentence[1:]}",
                                hint=f"{hint.rstrip('.')}; check 'authority_url' too.")
        if isinstance(exc, requests.RequestException):
            return NetworkError(
                f"The sign-in authority {self.config.login_host} could not be reached ({exc.__class__.__name__}).",
                hint="Check the network, 'proxy' and 'authority_url'.",
            )
        return AuthenticationError(
            f"Entra ID did not accept the authority {self.config.authority_url}.",
            hint="Check 'tenant_id', 'cloud' and 'authority_url'.",
        )

    def _read_cache(self) -> tuple[str | None, str | None]:
        """The cache file's text: ``(text, None)``; ``(None, None)`` when
        there is none; ``(None, why)`` when what is there cannot be read as
        one (a directory, a symlink, a FIFO, bytes that are not UTF-8)."""
        try:
            # O_NOFOLLOW: never read through a symlink; O_NONBLOCK: a FIFO
            # in its place must not hang the run.
            fd = os.open(self.cache_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"it cannot be opened ({exc.strerror or exc.__class__.__name__})"
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None, "it is not a regular file"
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
        except OSError as exc:
            return None, f"it cannot be read ({exc.strerror or exc.__class__.__name__})"
        finally:
            os.close(fd)
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            return None, "it is not UTF-8 text"

    def _set_aside(self, path: Path, why: str) -> None:
        """Move an unusable ``path`` out of the way (kept for a post-mortem,
        never read again) with one warning; the caller writes a new one."""
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}-{os.getpid()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return  # another process set it aside a moment ago
        except OSError as exc:
            raise ConfigError(
                f"The token cache {path} cannot be used ({why}) and cannot be moved aside "
                f"({exc.strerror or exc.__class__.__name__}).",
                hint=f"Remove {path}.",
            ) from None
        log.warning("The token cache %s could not be used (%s); it was moved to %s and a new one is written.",
                    path, why, aside.name)

    def _load_cache(self) -> None:
        """Load the cache file into msal's cache (under the file lock); an
        unusable one is set aside, and the cache in memory written in its place."""
        text, why = self._read_cache()
        if text is not None:
            why = cache_problem(text)
            if why is None:
                self._cache.deserialize(text)
                return
        if why is not None:
            self._set_aside(self.cache_path, why)
            self._cache.has_state_changed = True

    def _save_cache(self) -> None:
        if not self._cache.has_state_changed:
            return
        atomic_write(self.cache_path, self._cache.serialize().encode("utf-8"))
        self._cache.has_state_changed = False

    def token(self) -> str:
        """A valid access token for ``token_scope``. Raises AuthenticationError
        (with the AADSTS code, hint and correlation id), NetworkError or TLSError."""
        cached = self._cached_token()
        if cached is not None:
            _remember_token(cached)  # redacted like one from msal
            return cached
        app = self._application()
        # The cache file's lock is never held across the request to Entra ID:
        # a slow sign-in host must not stall every other run on this machine.
        # Two runs that miss the cache at once may each fetch a token; the
        # last one written stays cached.
        with self._file_lock():
            self._load_cache()
        result = self._acquire(app)
        if result and result.get("token_source") == "identity_provider":
            self.token_requests += 1
            with self._file_lock():
                self._save_cache()
        return self._access_token(result)

    def fresh_token(self) -> str:
        """A token just issued by Entra ID, never one from a cache: proves that
        the configured credential works now (test-connectivity). Raises like
        :meth:`token`."""
        import msal

        app = self._build_app(self._credential(), msal.SerializableTokenCache())
        result = self._acquire(app)
        self.token_requests += 1
        return self._access_token(result)

    def _acquire(self, app: Any) -> Any:
        scopes = [self.config.token_scope]
        _last_response.value = None
        try:
            return app.acquire_token_for_client(scopes=scopes)
        except requests.RequestException as exc:
            raise self._authority_error(exc) from None
        except (ValueError, RecursionError):
            # msal could not parse the token response (a proxy's page, a cut
            # body, JSON nested too deeply).
            raise self._unusable_answer(unavailable=False) from None
        except Exception as exc:  # noqa: BLE001 - msal's own exceptions, e.g. MsalServiceError on a 5xx
            if exc.__class__.__module__.startswith("msal"):
                raise self._unusable_answer(unavailable=True) from None
            raise

    def _access_token(self, result: Any) -> str:
        if not result or "access_token" not in result:
            if result and not (result.get("error") or result.get("error_description")):
                raise AuthenticationError(
                    f"Entra ID at {self.config.login_host} answered the token request without an access token.",
                    hint="Check 'authority_url'; a proxy or gateway may be answering in Entra ID's place.",
                )
            raise self._entra_error(result or {})
        token = str(result["access_token"])
        _remember_token(token)
        return token

    def _unusable_answer(self, *, unavailable: bool) -> AuthenticationError:
        answer = _describe_answer(getattr(_last_response, "value", None))
        if unavailable:
            return AuthenticationError(
                f"Entra ID at {self.config.login_host} could not issue a token: it answered {answer}.",
                hint="Entra ID may be unavailable; try again later and check its service health.",
            )
        return AuthenticationError(
            f"Entra ID at {self.config.login_host} answered the token request with {answer}, not a token.",
            hint="Check 'authority_url' and 'proxy'; a proxy or gateway may be answering in Entra ID's place.",
        )

    def _cached_token(self) -> str | None:
        """The token msal would serve from the persisted cache, read without
        msal (:mod:`connector.http.cached_token`): a run that finds one neither
        imports msal nor sends the OIDC discovery request that building msal's
        application costs. None: ask msal, the cache's only writer."""
        text, _ = self._read_cache()  # replaced atomically: never half-written
        if text is None:
            return None  # none, or unusable: msal's path sets an unusable one aside
        return find_cached_token(text, client_id=self.config.client_id, authority_url=self.config.authority_url,
                                 scope=self.config.token_scope)

    def invalidate(self) -> None:
        """Forget cached tokens (after a 401) so the next call gets a new one."""
        app = self._application()
        with self._file_lock():
            self._load_cache()
            app.remove_tokens_for_client()
            self._save_cache()

    def _entra_error(self, result: dict[str, Any]) -> AuthenticationError:
        description = str(result.get("error_description") or result.get("error") or "unknown error")
        first = description.split("\r\n")[0].split(" Trace ID:")[0].strip()
        codes = result.get("error_codes") or []
        match = re.match(r"AADSTS(\d+)", first)
        code = match.group(1) if match else (str(codes[0]) if codes else "")
        hint = _AADSTS_HINTS.get(code)
        if not match and code:
            first = f"AADSTS{code}: {first}"
        return AuthenticationError(
            f"Entra ID refused the token request: {first.rstrip('.')}.",
            hint=hint,
            code=f"AADSTS{code}" if code else str(result.get("error") or ""),
            correlation_id=result.get("correlation_id"),
        )


def token_roles(token: str) -> list[str]:
    """The ``roles`` claim of an access token (application permissions).

    Read without verifying the signature: the API verifies it; this is only to
    tell a user which permission is missing.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return []
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return [str(r) for r in roles] if isinstance(roles, list) else []


def cache_file(config: Config) -> Path:
    """Where the token cache of this configuration lives."""
    return config.state_dir / "token_cache.json"
