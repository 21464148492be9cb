"""The Microsoft Graph security API (``alerts_v2``) as a second source.

With ``source: graph`` the connector reads alerts and their file evidence from
``GET /v1.0/security/alerts_v2[/{id}]`` instead of the Defender for Endpoint
API. Everything HTTP (budget, retries, ``Retry-After``, paging, the nextLink
origin check) is :class:`~connector.http.client.DefenderClient`'s machinery; what
differs is a profile:

- the base URL and token scope come from the cloud's Graph host (or
  ``graph_base_url``), so the token has its own cache key (the configuration
  fingerprint includes the scope) and the budget its own file and limit;
- its endpoints, with the permission each needs, are the manifest's
  ``sources.graph.endpoints``;
- errors name Graph and the endpoint's permission, and take the correlation
  id from ``error.innerError.request-id``.

:func:`evidence_files` turns Graph evidence into File-shaped dicts for the
one artifact mapping in :mod:`connector.artifacts`; it never invents the
fields Graph does not carry (signerHash, isValidCertificate, prevalence,
determination, isPeFile): :func:`enrich_files` may fill them from the
Defender API's ``GET /api/files/{sha1}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests

from connector.config import Config
from connector.errors import (
    ConfigError,
    ConnectorError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from connector.http.client import DefenderClient, alert_segment
from connector.manifest import Manifest, load_manifest

FILE_EVIDENCE = "#microsoft.graph.security.fileEvidence"
PROCESS_EVIDENCE = "#microsoft.graph.security.processEvidence"
SERVICE_SOURCE_MDE = "microsoftDefenderForEndpoint"
RATE_BUDGET_FILE = "graph_rate_budget.sqlite"

#: Graph ``fileDetails`` key -> the Defender File key the artifact mapping reads.
FILE_DETAILS_KEYS = {
    "sha1": "sha1",
    "sha256": "sha256",
    "md5": "md5",
    "fileSize": "size",
    "filePublisher": "filePublisher",
    "signer": "signer",
    "issuer": "issuer",
    "fileName": "fileName",
    "filePath": "filePath",
}

#: Defender File fields that Graph lacks and enrichment may fill.
ENRICHED_KEYS = (
    "signerHash", "isValidCertificate", "globalPrevalence", "globalFirstObserved", "globalLastObserved",
    "determinationType", "determinationValue", "isPeFile", "fileType", "fileProductName",
)


def is_graph(config: Config) -> bool:
    """True when the instance is configured with ``source: graph``."""
    return bool(config.get("source") == "graph")


def graph_permission(manifest: Manifest | None = None) -> str:
    """The application permission the Graph source needs (that of its
    ``get_alert`` endpoint in the manifest), e.g. ``SecurityAlert.Read.All``."""
    return (manifest or load_manifest()).endpoint("graph", "get_alert").permission


def graph_config(config: Config, manifest: Manifest | None = None) -> Config:
    """``config`` re-pointed at Microsoft Graph: base URL from
    ``graph_base_url`` or the cloud's Graph host, token scope the cloud's
    Graph scope. Raises ConfigError when the cloud has no Graph host."""
    from connector.config import _https_url

    if manifest is None:
        manifest = load_manifest()
    cloud = manifest.clouds.get(config.cloud) or {}
    base = config.get("graph_base_url") or cloud.get("graph_base_url")
    scope = cloud.get("graph_token_scope")
    if not base or not scope:
        raise ConfigError(
            f"The cloud '{config.cloud}' has no Microsoft Graph host in the manifest's clouds table.",
            hint="Set 'graph_base_url', or use source 'defender'.",
        )
    return dataclasses.replace(config, api_base_url=_https_url(str(base), "graph_base_url"), token_scope=scope)


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def evidence_files(evidence: Any) -> list[dict[str, Any]]:
    """File-shaped dicts (Defender File keys) from Graph ``evidence``, one
    per file evidence, in order.

    Takes every ``fileEvidence``'s ``fileDetails`` and every
    ``processEvidence``'s ``imageFile``; other evidence kinds carry no file.
    Keys Graph does not send, or sends as null or blank, are absent; nothing
    is invented. The same file seen twice (a file evidence and a process's
    image) stays two records here: :func:`connector.artifacts.build_artifacts`
    collapses records sharing a hash into one artifact (first valid value of
    each field winning) and counts the duplicates, as it does for the
    Defender source. Anything that is not the documented shape is skipped,
    never raised.
    """
    files: list[dict[str, Any]] = []
    if not isinstance(evidence, list):
        return files
    for item in evidence:
        if not isinstance(item, dict):
            continue
        kind = item.get("@odata.type")
        if kind == FILE_EVIDENCE:
            details = item.get("fileDetails")
        elif kind == PROCESS_EVIDENCE:
            details = item.get("imageFile")
        else:
            continue
        if not isinstance(details, dict):
            continue
        record = {ours: details[theirs] for theirs, ours in FILE_DETAILS_KEYS.items()
                  if _clean(details.get(theirs)) is not None}
        if record:
            files.append(record)
    return files


def enrich_files(files: list[dict[str, Any]], lookup: Callable[[str], Mapping[str, Any] | None]) -> dict[str, Any]:
    """Fill the fields Graph lacks from ``lookup(sha1)`` (the Defender File),
    in place, never overwriting what Graph sent.

    Each sha1 is looked up once. Returns summary keys: ``enriched_files``
    (distinct files, by sha1, that gained a field) and,
    when the Defender API refused the lookups, ``enrichment_error`` (one
    sentence); a file Defender does not know is left as Graph sent it.
    """
    enriched: set[str] = set()
    known: dict[str, Mapping[str, Any] | None] = {}  # one lookup per file, not per evidence record
    for record in files:
        sha1 = record.get("sha1")
        if not isinstance(sha1, str):
            continue
        key = sha1.lower()
        try:
            if key not in known:
                known[key] = None
                known[key] = lookup(sha1)
            found = known[key]
        except NotFoundError:
            continue
        except ConnectorError as err:
            # A missing permission or an exhausted budget fails every lookup
            # alike: stop and say so instead of repeating the error per file.
            return {"enriched_files": len(enriched), "enrichment_error": err.sentence()}
        if not isinstance(found, Mapping):
            continue
        for field in ENRICHED_KEYS:
            if field not in record and _clean(found.get(field)) is not None:
                record[field] = found[field]
                enriched.add(key)
    return {"enriched_files": len(enriched)}


def _graph_error_fields(response: requests.Response) -> tuple[str | None, str | None, str | None]:
    """(code, message, request id) from Graph's error body, or the
    ``request-id`` header, if any."""
    code = message = request_id = None
    try:
        body = response.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        def text(value: Any) -> str | None:
            return " ".join(str(value).split())[:300] if value not in (None, "") else None

        code, message = text(err.get("code")), text(err.get("message"))
        inner = err.get("innerError") or err.get("innererror")
        if isinstance(inner, dict):
            request_id = text(inner.get("request-id")) or text(inner.get("client-request-id"))
    header = response.headers.get("request-id") or response.headers.get("client-request-id")
    return code, message, request_id or (" ".join(header.split())[:100] if header else None)


class GraphClient(DefenderClient):
    """:class:`DefenderClient` with the Microsoft Graph profile (see the
    module docstring). ``config`` is the Graph-pointed configuration from
    :func:`graph_config`; ``service_source`` restricts the alert list (e.g.
    ``microsoftDefenderForEndpoint``)."""

    source = "graph"

    def __init__(self, config: Config, *, service_source: str | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.service_source = service_source

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> GraphClient:
        """The production wiring for ``source: graph``: the Graph base and
        scope, its own token cache key and its own rate budget file."""
        from connector.http.ratelimit import RateBudget

        manifest = kwargs.get("manifest") or load_manifest()
        graph = graph_config(config, manifest)
        if kwargs.get("budget") is None:
            limits = manifest.sources["graph"].get("rate_limits") or manifest.http["rate_limits"]
            kwargs["budget"] = RateBudget(
                graph.state_dir / RATE_BUDGET_FILE,
                [(int(limits["per_minute"]), 60.0), (int(limits["per_hour"]), 3600.0)],
                time_scale=1.0 / float(config.get("rate_time_scale", 1.0)),
            )
        client = super().from_config(graph, **kwargs)
        assert isinstance(client, GraphClient)  # noqa: S101 - cls is GraphClient
        return client

    # -- public API -------------------------------------------------------

    def get_alert(self, alert_id: str) -> dict[str, Any]:
        """One ``alerts_v2`` alert with its evidence, as Graph sent it."""
        endpoint = self.endpoint("get_alert")
        return self.get_json(endpoint.path.format(alert_id=alert_segment(alert_id)), resource=f"Alert {alert_id}",
                             permission=endpoint.permission)

    def alert_evidence(self, alert_id: str) -> list[dict[str, Any]]:
        """The alert's ``evidence`` list as Graph sent it (empty if none)."""
        evidence = self.get_alert(alert_id).get("evidence")
        return [e for e in evidence if isinstance(e, dict)] if isinstance(evidence, list) else []

    def alert_files(self, alert_id: str, progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        """The alert's files as File-shaped dicts (see :func:`evidence_files`)."""
        files = evidence_files(self.alert_evidence(alert_id))
        if progress:
            progress(len(files))
        return files

    def list_alerts(self, params: Mapping[str, str]) -> Iterator[list[dict[str, Any]]]:
        """Pages of the alert list (endpoint ``list_alerts``,
        ``alerts_v2``); ``service_source``, when set, is added to the
        ``$filter``."""
        query = dict(params)
        if self.service_source:
            clause = f"serviceSource eq '{self.service_source}'"
            query["$filter"] = f"{query['$filter']} and {clause}" if query.get("$filter") else clause
        endpoint = self.endpoint("list_alerts")
        return self.pages(endpoint.path, params=query, resource="The alert list", permission=endpoint.permission)

    # -- internals ---------------------------------------------------------

    def _status_error(self, response: requests.Response, resource: str, permission: str) -> ConnectorError:
        status = response.status_code
        code, message, request_id = _graph_error_fields(response)
        detail = f" ({code}: {message.rstrip('.')})" if code and message else (f" ({code})" if code else "")
        common: dict[str, Any] = {"code": code, "correlation_id": request_id, "status": status}
        if status == 404:
            return NotFoundError(f"{resource} was not found in Microsoft Graph (alerts_v2).",
                                 hint="Check the id; Graph lists alerts within the tenant's retention period.",
                                 **common)
        if status == 403:
            return ForbiddenError(
                f"Microsoft Graph denied access to {resource} (403{' ' + code if code else ''}).",
                hint=f"Grant the app the Microsoft Graph {permission} application permission and admin consent.",
                **common,
            )
        if status == 401:
            return UnauthorizedError(
                f"Microsoft Graph rejected the access token for {resource} even after a fresh one was fetched.",
                hint="Check that the cloud (or graph_base_url) matches the tenant's Graph host.",
                **common,
            )
        if status == 429:
            return RateLimitedError(
                f"Microsoft Graph's rate limit for {resource} was still reached after retrying{detail}.",
                hint=f"Graph allows {self.documented_limits['per_minute']:,} security alert requests a minute per "
                "app and tenant; run again later.",
                **common,
            )
        err = super()._status_error(response, resource, permission)
        if err.correlation_id is None:
            err.correlation_id = request_id
        return err


def client_for(config: Config, **kwargs: Any) -> DefenderClient:
    """The client for the configured source (``defender`` or ``graph``)."""
    if is_graph(config):
        return GraphClient.from_config(config, **kwargs)
    return DefenderClient.from_config(config, **kwargs)
