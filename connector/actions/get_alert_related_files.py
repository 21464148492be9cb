"""Get Alert Related Files: the alert's files (the manifest's ``alert_files``
endpoint, or the alert's evidence from Graph) -> file artifacts."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from connector.artifacts import build_artifacts
from connector.manifest import load_manifest
from connector.sdk import ActionResult, Context, EvidenceClient

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


def handler(params: dict[str, Any], context: Context) -> ActionResult:
    """Fetch the alert's files (all pages) and map them to artifacts.

    ``data`` keeps each File exactly as the API sent it; artifacts are one per
    distinct file.
    """
    alert_id = params["alert_id"]
    client = context.client
    if getattr(client, "source", "defender") == "graph" and isinstance(client, EvidenceClient):
        return _from_graph(params, context, client)
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


def _from_graph(params: dict[str, Any], context: Context, client: EvidenceClient) -> ActionResult:
    """``source: graph``: the alert's evidence from ``alerts_v2`` -> the same
    artifacts. ``data`` is the evidence as Graph sent it; with
    ``enrich_files`` the Defender API fills what Graph lacks."""
    from connector.http.graph import enrich_files, evidence_files

    alert_id = params["alert_id"]
    context.progress(f"Fetching the evidence of alert {alert_id} from Microsoft Graph")
    evidence = client.alert_evidence(alert_id)
    files = evidence_files(evidence)
    extra: dict[str, Any] = {}
    if context.config is not None and context.config.get("enrich_files") and files:
        context.progress(f"Enriching {len(files)} files from the Defender API")
        defender = context.enrichment_client
        endpoint = load_manifest().endpoint("graph", "enrich_file")

        def lookup(sha1: str) -> Any:
            return defender.get_json(endpoint.path.format(sha1=quote(sha1, safe="")), resource=f"File {sha1}",
                                     permission=endpoint.permission)

        extra = enrich_files(files, lookup)
    mapped = build_artifacts(alert_id, files)
    summary = {**mapped.summary, **extra}
    message = _message(alert_id, summary)
    if "enriched_files" in extra:
        message += (f" {extra['enriched_files']} of {summary.get('distinct_files', len(files))} files were "
                    "enriched from the Defender API.")
    if "enrichment_error" in extra:
        message += " Enrichment stopped: " + str(extra["enrichment_error"])
    return ActionResult(
        action=ACTION,
        status="success",
        message=message,
        parameter=params,
        data=evidence,
        summary=summary,
        artifacts=mapped.artifacts,
    )
