"""Get Alert Related Files: ``GET /api/alerts/{id}/files`` -> file artifacts."""

from __future__ import annotations

from typing import Any

from connector.artifacts import build_artifacts
from connector.runtime.result import ActionResult

ACTION = "get_alert_related_files"


def _message(alert_id: str, summary: dict[str, Any]) -> str:
    total = summary.get("distinct_files", summary.get("total_files", 0))
    if not total:
        return f"Alert {alert_id} has no related files."
    findings = [f"{summary[k]} {label}" for k, label in (
        ("malware", "malware"), ("pua", "PUA"), ("invalid_certificate", "with an invalid certificate"),
        ("unsigned", "unsigned"), ("rare", "rare")) if summary.get(k)]
    noun = "file" if total == 1 else "files"
    tail = f": {', '.join(findings)}." if findings else "; none is unsigned, invalidly signed, rare, PUA or malware."
    return f"Alert {alert_id} has {total} related {noun}{tail}"


def handler(params: dict[str, Any], context: Any) -> ActionResult:
    """Fetch the alert's files (all pages) and map them to artifacts.

    ``data`` keeps each File exactly as the API sent it; artifacts are one per
    distinct file.
    """
    alert_id = params["alert_id"]
    context.progress(f"Fetching the files of alert {alert_id}")
    files = context.client.alert_files(alert_id, progress=lambda n: context.progress(f"{n} files received"))
    mapped = build_artifacts(alert_id, files)
    return ActionResult(
        action=ACTION,
        status="success",
        message=_message(alert_id, mapped.summary),
        parameter=params,
        data=files,
        summary=mapped.summary,
        artifacts=mapped.artifacts,
    )
