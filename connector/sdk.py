"""The action result model (fixed contract: ``--output json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.errors import EXIT_FAILED, EXIT_OK, ConnectorError


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
