"""One error taxonomy for the whole connector.

Every failure a user can cause or meet is a :class:`ConnectorError` subclass.
Each carries one analyst-readable sentence (``str(err)``), a stable ``kind``
used in the action result's ``error`` object, the CLI ``exit_code`` and, when
Microsoft sent one, the API ``code`` and ``correlation_id`` (``error.target``)
that Microsoft support asks for.

Exit codes (fixed contract): 0 success, 1 the action failed, 2 invalid input or
configuration.

Messages never contain secrets: callers build them from identifiers and
server-sent text only, and :func:`redact` is applied once more on the way out.
"""

from __future__ import annotations

import re
from typing import Any

from connector.text import escape_text

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


class ConnectorError(Exception):
    """Base of every error the connector reports to a user.

    ``message`` is one sentence; ``hint`` is an optional second sentence that
    says what to do about it. ``str(err)`` joins both.
    """

    kind = "error"
    exit_code = EXIT_FAILED

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        correlation_id: str | None = None,
        status: int | None = None,
    ) -> None:
        self.message = _one_line(redact(message))
        self.hint = _one_line(redact(hint)) if hint else None
        self.code = code
        self.correlation_id = correlation_id
        self.status = status
        super().__init__(self.sentence())

    def sentence(self) -> str:
        """The message, its hint and the correlation id, as shown to a user."""
        text = self.message
        if self.correlation_id and self.correlation_id not in text:
            text = f"{text.rstrip('.')} (correlation id {self.correlation_id})."
        if self.hint:
            text = f"{text} {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of an action result."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.code:
            out["code"] = self.code
        if self.correlation_id:
            out["correlation_id"] = self.correlation_id
        if self.status is not None:
            out["http_status"] = self.status
        return out


class InputError(ConnectorError):
    """An action parameter is invalid; nothing was sent to the network."""

    kind = "invalid_input"
    exit_code = EXIT_INVALID


class ConfigError(ConnectorError):
    """The instance configuration is missing, malformed or contradictory."""

    kind = "invalid_config"
    exit_code = EXIT_INVALID


class ManifestError(ConfigError):
    """``manifest.json`` does not satisfy the manifest schema."""

    kind = "invalid_manifest"


class PlaybookError(ConnectorError):
    """A playbook file is malformed or does not validate."""

    kind = "invalid_playbook"
    exit_code = EXIT_INVALID


class AuthenticationError(ConnectorError):
    """Entra ID refused to issue a token (AADSTS error)."""

    kind = "authentication"


class UnauthorizedError(ConnectorError):
    """The API answered 401 even with a fresh token."""

    kind = "unauthorized"


class ForbiddenError(ConnectorError):
    """The API answered 403: the token lacks a permission or role."""

    kind = "forbidden"


class NotFoundError(ConnectorError):
    """The API answered 404."""

    kind = "not_found"


class RateLimitedError(ConnectorError):
    """429s outlasted the retry time budget, or the client-side budget ran out."""

    kind = "rate_limited"


class ApiError(ConnectorError):
    """The API failed (5xx after retries, 4xx not covered above) or sent a
    body that is not the documented JSON."""

    kind = "api_error"


class NetworkError(ConnectorError):
    """Connection refused, DNS failure, timeout or a dropped connection."""

    kind = "network"


class TLSError(NetworkError):
    """The server's certificate could not be verified."""

    kind = "tls"


class StoreError(ConnectorError):
    """The local SQLite store could not be read or written."""

    kind = "store"


class Interrupted(ConnectorError):
    """SIGTERM or SIGINT asked the process to stop while it was waiting."""

    kind = "interrupted"


# Patterns that look like credentials. Applied to every user-facing string as a
# last line of defence; the first line is never putting secrets in messages.
_SECRET_PATTERNS = [
    # JWTs (access tokens, client assertions): three base64url parts.
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[REDACTED-JWT]"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[REDACTED]"),
    (
        re.compile(
            r"(?i)((?:client_secret|client_assertion|access_token|refresh_token|password)"
            r"[\"']?\s*[=:]\s*[\"']?)[^&\"'\s,}]+"
        ),
        r"\1[REDACTED]",
    ),
]

_registered_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a configured secret so that :func:`redact` removes it verbatim
    wherever it might surface (server echo, exception text, logs)."""
    if value and len(value) >= 4:
        _registered_secrets.add(value)


def _one_line(text: str) -> str:
    # A sentence quotes values a user or a server chose (a path, a link, an
    # id): control characters are shown escaped, so it stays on one line and
    # cannot move the cursor or fake another line.
    return escape_text(text)


def forget_secret(value: str | None) -> None:
    """Stop redacting ``value`` (a token that has been replaced)."""
    _registered_secrets.discard(value or "")


def redact(text: str) -> str:
    """Remove registered secrets and anything shaped like a token from text."""
    if not text:
        return text
    for secret in _registered_secrets:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text
