"""Microsoft Graph security API (``alerts_v2``) routes of the simulator.

``GET /v1.0/security/alerts_v2`` and ``GET /v1.0/security/alerts_v2/{id}``
serve the simulator's seeded alerts (the same ids as ``/api/alerts``) in
Graph's shape, with evidence built from each alert's files: file evidence,
process evidence whose image file repeats a file (a duplicate across
evidence kinds), device, user and IP evidence, nulls as Graph sends them and
the non-ASCII paths of the seeded data. Tokens need the Graph audience and
the ``SecurityAlert.Read.All`` role; Graph has its own limit of 150 requests
a minute, and its error body (``error.innerError.request-id``).

``GET /api/files/{sha1}`` (the Defender File, for ``enrich_files``) is
served here too, from the same seeded files.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any
from urllib.parse import quote, unquote

from . import data
from .entra import GRAPH_AUDIENCE
from .odata import ODataError, compile_filter, parse_orderby, sort_alerts
from .ratelimit import RateLimiter, format_retry_after
from .responses import _API_CONTENT_TYPE, _api_error, _next_link, _Response

GRAPH_SCOPE = GRAPH_AUDIENCE + "/.default"
ROLE_GRAPH_ALERTS = "SecurityAlert.Read.All"
GRAPH_RATE_PER_MINUTE = 150
ALERTS_PATH = "/v1.0/security/alerts_v2"
MAX_TOP = 2000
_EVIDENCE_FILES = 4

_FIELD_NAMES = {"createdDateTime": "alertCreationTime", "lastUpdateDateTime": "lastUpdateTime"}
_SERVICE = re.compile(r"\s*(?:and\s+)?serviceSource\s+eq\s+'([^']*)'\s*", re.IGNORECASE)
_STATUS = {"New": "new", "InProgress": "inProgress", "Resolved": "resolved"}
_lock = threading.Lock()


def graph_error(status: int, code: str, message: str) -> _Response:
    """A Graph-shaped error response."""
    request_id = str(uuid.uuid4())
    body = {"error": {"code": code, "message": message,
                      "innerError": {"date": "2026-12-01T00:00:00", "request-id": request_id,
                                     "client-request-id": request_id}}}
    return _Response(status, json.dumps(body).encode(), [("request-id", request_id)])


def _file_details(entity: dict[str, Any], name: str, folder: str) -> dict[str, Any]:
    return {
        "sha1": entity.get("sha1"),
        "sha256": entity.get("sha256"),
        "md5": entity.get("md5"),
        "sha256Ac": None,
        "fileName": name or None,
        "filePath": folder or None,
        "fileSize": entity.get("size"),
        "filePublisher": entity.get("filePublisher"),
        "signer": entity.get("signer"),
        "issuer": entity.get("issuer"),
    }


def graph_alert(alert: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    """A Defender alert and its files in the ``alerts_v2`` shape."""
    created = alert.get("alertCreationTime")
    evidence: list[dict[str, Any]] = []
    device_id = alert.get("machineId")
    for entity in files[:_EVIDENCE_FILES]:
        name = entity.get("fileName") or entity.get("_fileName") or ""
        folder = entity.get("filePath") or entity.get("_filePath") or ""
        evidence.append({
            "@odata.type": "#microsoft.graph.security.fileEvidence",
            "createdDateTime": created,
            "verdict": "suspicious" if entity.get("determinationType") else "unknown",
            "remediationStatus": "none",
            "remediationStatusDetails": None,
            "roles": [],
            "tags": [],
            "detectionStatus": "detected",
            "mdeDeviceId": device_id,
            "fileDetails": _file_details(entity, name, folder),
        })
    if files:
        first = files[0]
        evidence.append({
            "@odata.type": "#microsoft.graph.security.processEvidence",
            "createdDateTime": created,
            "verdict": "suspicious",
            "remediationStatus": "none",
            "roles": [],
            "tags": [],
            "processId": 4242,
            "parentProcessId": 668,
            "processCommandLine": None,
            "processCreationDateTime": created,
            "parentProcessCreationDateTime": None,
            "detectionStatus": "detected",
            "mdeDeviceId": device_id,
            "userAccount": None,
            "imageFile": _file_details(first, first.get("fileName") or "", first.get("filePath") or ""),
            "parentProcessImageFile": {"sha1": None, "sha256": None, "md5": None, "fileName": "explorer.exe",
                                       "filePath": "C:\\Windows", "fileSize": None, "filePublisher": None,
                                       "signer": None, "issuer": None},
        })
    evidence.append({
        "@odata.type": "#microsoft.graph.security.deviceEvidence",
        "createdDateTime": created, "verdict": "unknown", "remediationStatus": "none", "roles": [], "tags": [],
        "mdeDeviceId": device_id, "deviceDnsName": alert.get("computerDnsName"), "osPlatform": "Windows10",
        "healthStatus": "active", "riskScore": "high", "ipInterfaces": ["10.1.2.3", None],
    })
    evidence.append({
        "@odata.type": "#microsoft.graph.security.userEvidence",
        "createdDateTime": created, "verdict": "unknown", "remediationStatus": "none", "roles": [], "tags": [],
        "userAccount": {"accountName": "m.müller", "domainName": "CONTOSO", "userSid": None, "azureAdUserId": None,
                        "userPrincipalName": None},
    })
    evidence.append({
        "@odata.type": "#microsoft.graph.security.ipEvidence",
        "createdDateTime": created, "verdict": "unknown", "remediationStatus": "none", "roles": [], "tags": [],
        "ipAddress": "203.0.113.7", "countryLetterCode": None,
    })
    return {
        "id": alert["id"],
        "providerAlertId": alert["id"],
        "incidentId": str(alert.get("incidentId") or ""),
        "status": _STATUS.get(str(alert.get("status")), "new"),
        "severity": str(alert.get("severity") or "unknown").lower(),
        "classification": None,
        "determination": None,
        "serviceSource": "microsoftDefenderForEndpoint",
        "detectionSource": "antivirus" if alert.get("detectionSource") == "WindowsDefenderAv" else "custom",
        "detectorId": alert.get("detectorId"),
        "tenantId": alert.get("aadTenantId"),
        "title": alert.get("title"),
        "description": alert.get("description"),
        "category": alert.get("category"),
        "createdDateTime": created,
        "lastUpdateDateTime": alert.get("lastUpdateTime"),
        "firstActivityDateTime": alert.get("firstEventTime"),
        "lastActivityDateTime": alert.get("lastEventTime"),
        "evidence": evidence,
    }


def _files_with_names(sim: Any, alert_id: str) -> list[dict[str, Any]]:
    store = sim._store
    entry = store._entries.get(alert_id)
    if entry is None:
        return []
    if entry.explicit_files is not None:
        return list(entry.explicit_files)
    if entry.recipe is None or entry.files_seed is None:
        return []
    records = data.generate_files(entry.recipe, entry.files_seed, store._now_ticks, limit=_EVIDENCE_FILES)
    return [{**r.entity, "fileName": r.file_name, "filePath": r.folder} for r in records]


def _limited(sim: Any, client_id: str) -> _Response | None:
    with _lock:
        limiter = getattr(sim, "_graph_limiter", None)
        if limiter is None:
            limiter = RateLimiter(GRAPH_RATE_PER_MINUTE, GRAPH_RATE_PER_MINUTE * 60, sim.options.time_scale)
            sim._graph_limiter = limiter
    wait = limiter.acquire(client_id)
    if wait <= 0:
        return None
    response = graph_error(429, "TooManyRequests", "Too many requests, retry after some time.")
    response.headers.append(("Retry-After", format_retry_after(wait, sim.options.time_scale)))
    return response


def handle(handler: Any, raw_path: str, query: dict[str, str], claims: dict[str, Any]) -> _Response:
    """Serve one ``/v1.0/security/...`` request (the token is verified)."""
    sim = handler.sim
    if claims.get("aud") != GRAPH_AUDIENCE:
        return graph_error(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
    limited = _limited(sim, str(claims.get("appid")))
    if limited is not None:
        return limited
    if ROLE_GRAPH_ALERTS not in set(claims.get("roles") or ()):
        return graph_error(403, "Forbidden", "Missing role permissions on the request. API requires one of "
                           "'SecurityAlert.Read.All, SecurityAlert.ReadWrite.All'.")
    segments = [unquote(s) for s in raw_path.split("/")[1:]]
    if segments[:3] != ["v1.0", "security", "alerts_v2"] or len(segments) > 4:
        return graph_error(404, "UnknownError", f"Resource not found for the segment '{raw_path}'.")
    base = sim._base_for(handler.headers.get("Host"))
    store = sim._store
    if len(segments) == 4:
        alert_id = segments[3]
        alert = next((a for a in store.alert_dicts() if a.get("id") == alert_id), None)
        if alert is None:
            return graph_error(404, "NotFound", f"Alert '{alert_id}' was not found.")
        body = {"@odata.context": f"{base}/v1.0/$metadata#security/alerts_v2/$entity",
                **graph_alert(alert, _files_with_names(sim, alert_id))}
        return _Response(200, json.dumps(body, ensure_ascii=False).encode(), content_type=_API_CONTENT_TYPE)
    text = query.get("$filter") or ""
    service = None
    match = _SERVICE.search(text)
    if match:
        service = match.group(1)
        text = (text[:match.start()] + " " + text[match.end():]).strip()
        text = re.sub(r"^and\s+|\s+and$", "", text)
    for ours, theirs in _FIELD_NAMES.items():
        text = text.replace(ours, theirs)
    order = query.get("$orderby") or ""
    for ours, theirs in _FIELD_NAMES.items():
        order = order.replace(ours, theirs)
    try:
        top = int(query["$top"]) if query.get("$top", "").isdigit() else MAX_TOP
        skip = int(query["$skip"]) if query.get("$skip", "").isdigit() else 0
        if top > MAX_TOP:
            raise ODataError(f"The limit of '{MAX_TOP}' for Top query has been exceeded.")
        predicate = compile_filter(text, store.ticks) if text else None
        ordering = parse_orderby(order) if order else None
    except ODataError as exc:
        return graph_error(400, "BadRequest", str(exc))
    alerts = store.alert_dicts()
    if service is not None and service != "microsoftDefenderForEndpoint":
        alerts = []
    if predicate is not None:
        alerts = [a for a in alerts if predicate(a)]
    if ordering:
        alerts = sort_alerts(alerts, ordering, store.ticks)
    page = alerts[skip: skip + top]
    body = {"@odata.context": f"{base}/v1.0/$metadata#security/alerts_v2",
            "value": [graph_alert(a, _files_with_names(sim, a["id"])) for a in page]}
    if skip + top < len(alerts) and top > 0:
        body["@odata.nextLink"] = _next_link(base, ALERTS_PATH, query, skip + top)
    return _Response(200, json.dumps(body, ensure_ascii=False).encode(), content_type=_API_CONTENT_TYPE)


def file_by_sha1(sim: Any, sha1: str) -> _Response:
    """``GET /api/files/{sha1}``: the Defender File with that sha1, or 404."""

    wanted = sha1.lower()
    for alert in sim._store.alert_dicts():
        for entity in _files_with_names(sim, alert["id"]):
            if str(entity.get("sha1") or "").lower() == wanted:
                found = {k: v for k, v in entity.items() if k not in {"fileName", "filePath"}}
                return _Response(200, json.dumps(found, ensure_ascii=False).encode(), content_type=_API_CONTENT_TYPE)
    return _api_error(404, "ResourceNotFound", f"File {quote(sha1, safe='')[:80]} was not found.")
