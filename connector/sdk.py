"""What an action is given and what it returns: the result model (fixed
contract: ``--output json``) and the typed Protocols of its collaborators.

::

    def handler(params: JSONObject, context: Context) -> ActionResult:
        files = context.client.alert_files(params["alert_id"])
        ...

The Protocols name what each room needs from the room above it without
importing it: :class:`Context` is satisfied by
``connector.actions.ActionContext``, :class:`AlertClient` by
``connector.http.client.DefenderClient`` and ``GraphClient`` (which is also
an :class:`EvidenceClient`), :class:`ResultStore` by
``connector.runtime.store.Store``. ``tests/test_sdk_protocols.py`` checks that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from connector.errors import EXIT_FAILED, EXIT_OK, ConnectorError

if TYPE_CHECKING:
    from connector.config import Config

__all__ = [
    "JSON",
    "ActionResult",
    "AlertClient",
    "Context",
    "EvidenceClient",
    "JSONObject",
    "ResultStore",
    "TokenSource",
]

#: A value decoded from JSON whose shape nobody promises (API entities, the
#: result's ``data``): the one place ``Any`` is the honest type.
JSON: TypeAlias = Any
#: A decoded JSON object.
JSONObject: TypeAlias = dict[str, Any]


@dataclass
class ActionResult:
    """What an action returns: status, one-sentence message, the validated
    parameters, the API's data unchanged, a summary and the artifacts.

    ``exit_code`` is the CLI's exit status for this result and is not part of
    the JSON.
    """

    action: str
    status: str = "success"
    message: str = ""
    parameter: dict[str, Any] = field(default_factory=dict)
    data: list[Any] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    exit_code: int = EXIT_OK

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @classmethod
    def failure(cls, action: str, err: ConnectorError, parameter: dict[str, Any] | None = None) -> ActionResult:
        """A failed result carrying the error's sentence, kind and exit code."""
        return cls(
            action=action,
            status="failed",
            message=err.sentence(),
            parameter=dict(parameter or {}),
            error=err.to_dict(),
            exit_code=getattr(err, "exit_code", EXIT_FAILED),
        )

    def to_dict(self) -> dict[str, Any]:
        """The result JSON; ``error`` only on failure."""
        out: dict[str, Any] = {
            "action": self.action,
            "status": self.status,
            "message": self.message,
            "parameter": self.parameter,
            "data": self.data,
            "summary": self.summary,
            "artifacts": self.artifacts,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@runtime_checkable
class TokenSource(Protocol):
    """Gives bearer tokens (``connector.http.auth.TokenProvider``)."""

    def token(self) -> str:
        """A valid access token, fetched or from the cache."""
        ...


@runtime_checkable
class AlertClient(Protocol):
    """What actions and the poller use of an alert API client."""

    @property
    def config(self) -> Config:
        """The instance configuration the client was built from."""
        ...

    @property
    def tokens(self) -> TokenSource:
        """Where the client's tokens come from."""
        ...

    def alert_files(self, alert_id: str, progress: Callable[[int], None] | None = None) -> list[JSONObject]:
        """Every file related to the alert (all pages)."""
        ...

    def list_alerts(self, params: Mapping[str, str]) -> Iterator[list[JSONObject]]:
        """The alert list, one page of alerts at a time."""
        ...

    def get_json(self, path: str, *, resource: str, permission: str,
                 params: Mapping[str, str] | None = None) -> JSONObject:
        """One GET of ``path`` (below the API base) returning a JSON object."""
        ...

    def use_token(self, token: str) -> None:
        """Send ``token`` with the following requests."""
        ...


@runtime_checkable
class EvidenceClient(Protocol):
    """A client whose alerts carry their files as evidence (Microsoft Graph's
    ``GraphClient``, whose ``source`` is ``graph``)."""

    def alert_evidence(self, alert_id: str) -> list[JSONObject]:
        """The alert's evidence entities."""
        ...


@runtime_checkable
class ResultStore(Protocol):
    """Where :func:`connector.actions.run_action` saves a result."""

    def save_action_result(self, result: ActionResult, *, container: str | None, started: float,
                           container_fields: dict[str, Any] | None = None) -> int:
        """Save the result, its artifacts and container in one transaction; the run id."""
        ...


@runtime_checkable
class Context(Protocol):
    """What a handler may use (``connector.actions.ActionContext``)."""

    @property
    def config(self) -> Config | None:
        """The instance configuration (None only where no action reaches the API)."""
        ...

    @property
    def store(self) -> ResultStore | None:
        """The local store, or None when results are not kept."""
        ...

    @property
    def progress(self) -> Callable[[str], None]:
        """Report a step as one line of text."""
        ...

    @property
    def client(self) -> AlertClient:
        """The API client of the configured source, built on first use."""
        ...

    @property
    def enrichment_client(self) -> AlertClient:
        """A Defender API client for ``enrich_files`` with ``source: graph``."""
        ...
