"""Microsoft Defender for Endpoint + Entra ID simulator (HTTPS on loopback).

No Defender tenant is reachable from this project's machines, so the
connector, its tests, its demo and its benchmarks talk to this simulator
exactly as to Microsoft: real msal against ``authority_url`` (with
``instance_discovery=False``), real TLS verified against ``ca_bundle``, real
sockets with keep-alive::

    from mde_simulator import Simulator, SimulatorOptions

    with Simulator(tmp_path, SimulatorOptions(seed=7)) as sim:
        app = msal.ConfidentialClientApplication(
            sim.client_id, client_credential=sim.client_secret,
            authority=sim.authority_url, instance_discovery=False,
            verify=str(sim.ca_bundle))
        token = app.acquire_token_for_client([sim.token_scope])["access_token"]
        requests.get(f"{sim.api_base_url}/api/alerts/{EXAMPLE_ALERT_ID}/files",
                     headers={"Authorization": f"Bearer {token}"},
                     verify=str(sim.ca_bundle))

Served endpoints: ``GET /{tenant}/v2.0/.well-known/openid-configuration``,
``GET /{tenant}/discovery/v2.0/keys``, ``POST /{tenant}/oauth2/v2.0/token``
(and the v1 ``/{tenant}/oauth2/token`` with ``resource``), ``GET /api/alerts``
(``$filter``, ``$orderby``, ``$top``, ``$skip``, ``$expand=evidence``,
``@odata.nextLink``), ``GET /api/alerts/{id}`` and
``GET /api/alerts/{id}/files``.

Rate limits (``rate_per_minute``, ``rate_per_hour``) are sliding windows per
app on a clock sped up by ``time_scale``; a 429 carries ``Retry-After`` in
real seconds: whole seconds rounded up (at least 1) at ``time_scale=1`` or for
waits of a second or more, else a decimal rounded up to the millisecond (e.g.
``0.25``). See :func:`mde_simulator.ratelimit.format_retry_after`.

Well-known alert ids are the constants re-exported here from
:mod:`mde_simulator.data`.
"""

from .data import (
    DA_ALERT_ID,
    DUPLICATES_ALERT_ID,
    EMPTY_ALERT_ID,
    EXAMPLE_ALERT_ID,
    EXAMPLE_FILE,
    INVALID_CERT_ALERT_ID,
    LARGE_ALERT_5K,
    LARGE_ALERT_10K,
    MALWARE_ALERT_ID,
    NEGATIVE_ALERT_ID,
    PUA_ALERT_ID,
    SEEDED_ALERT_COUNT,
    SPARSE_ALERT_ID,
    UNICODE_ALERT_ID,
)
from .entra import ACCEPTED_SCOPES, ROLE_ALERTS, ROLE_FILES
from .server import Faults, RequestRecord, ScriptedResponse, Simulator, SimulatorOptions, seeded_identity
from .tls import make_client_certificate, pem_bundle

LEGACY_TOKEN_SCOPE = "https://securitycenter.onmicrosoft.com/windowsatpservice/.default"  # noqa: S105 - an OAuth scope

__all__ = [
    "ACCEPTED_SCOPES",
    "DA_ALERT_ID",
    "DUPLICATES_ALERT_ID",
    "EMPTY_ALERT_ID",
    "EXAMPLE_ALERT_ID",
    "EXAMPLE_FILE",
    "INVALID_CERT_ALERT_ID",
    "LARGE_ALERT_10K",
    "LARGE_ALERT_5K",
    "LEGACY_TOKEN_SCOPE",
    "MALWARE_ALERT_ID",
    "NEGATIVE_ALERT_ID",
    "PUA_ALERT_ID",
    "ROLE_ALERTS",
    "ROLE_FILES",
    "SEEDED_ALERT_COUNT",
    "SPARSE_ALERT_ID",
    "UNICODE_ALERT_ID",
    "Faults",
    "seeded_identity",
    "RequestRecord",
    "ScriptedResponse",
    "Simulator",
    "SimulatorOptions",
    "make_client_certificate",
    "pem_bundle",
]
