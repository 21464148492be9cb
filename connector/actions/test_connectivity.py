"""Test Connectivity: a token from Entra ID, its permissions, one API call.

The permissions come from the manifest: the source's ``permissions`` are
checked, the one that the investigate action's endpoint needs is required
(without it the connector cannot do its job), the others are reported as
missing (the new-alert trigger needs ``list_alerts``'s).
"""

from __future__ import annotations

from typing import Any

from connector.config import Config
from connector.errors import ConfigError, ForbiddenError, NotFoundError
from connector.http.auth import token_roles
from connector.manifest import Manifest, load_manifest
from connector.sdk import ActionResult, Context

ACTION = "test_connectivity"
INVESTIGATE = "get_alert_related_files"


def _required(manifest: Manifest, source: str) -> tuple[str, str]:
    """(permission, display name) of the investigate action on ``source``."""
    spec = manifest.action(INVESTIGATE)
    return manifest.endpoint(source, spec.endpoints[source]).permission, spec.display_name


def handler(params: dict[str, Any], context: Context) -> ActionResult:
    """Get a new token from Entra ID (never a cached one: this proves the
    credential), read its ``roles``, then call the API with it: the alert
    list (``$top=1``) when the app may read alerts, else the files endpoint
    with an id that cannot exist. Reports which permissions are missing."""
    client = context.client
    config = _config(context)
    if getattr(client, "source", "defender") == "graph":
        return _graph(params, context)
    manifest = load_manifest()
    required, needed_by = _required(manifest, "defender")
    alerts = manifest.endpoint("defender", "list_alerts").permission
    context.progress(f"Requesting a token from {config.login_host}")
    fresh = getattr(client.tokens, "fresh_token", None)
    token = fresh() if fresh is not None else client.tokens.token()
    client.use_token(token)
    roles = token_roles(token)
    missing = [p for p in manifest.sources["defender"]["permissions"] if p not in roles]
    summary: dict[str, Any] = {
        "token_acquired": True,
        "roles": roles,
        "missing_permissions": missing,
        "api_reachable": False,
        "api_base_url": config.api_base_url,
    }
    if required in missing:
        raise ForbiddenError(
            f"A token was issued, but the app lacks the {required} permission that {needed_by} needs.",
            hint=f"Add the WindowsDefenderATP application permission {required} and grant admin consent.",
        )
    context.progress(f"Calling {config.api_base_url}")
    if alerts in roles:
        next(client.list_alerts({"$top": "1"}), None)
        note = ""
    else:
        # Without the alert permission, prove reachability with the files
        # endpoint: an id that cannot exist answers 404 once the token is accepted.
        try:
            client.alert_files("mde-connector-connectivity-probe")
        except NotFoundError:
            pass
        note = f" {alerts} is missing, so the new-alert trigger (watch) will not work."
    summary["api_reachable"] = True
    return ActionResult(
        action=ACTION,
        status="success",
        message=f"Connected to {config.api_base_url} with a token from {config.login_host}; "
        f"the app has {', '.join(roles) or 'no application roles'}.{note}",
        parameter=params,
        summary=summary,
    )


def _graph(params: dict[str, Any], context: Context) -> ActionResult:
    """``source: graph``: a Graph token, the role its endpoints need
    (``SecurityAlert.Read.All``; the ReadWrite role includes it), then the
    alert list with ``$top=1``."""
    permission, _ = _required(load_manifest(), "graph")
    client = context.client
    config = _config(context)
    base = client.config.api_base_url
    context.progress(f"Requesting a Microsoft Graph token from {config.login_host}")
    roles = token_roles(client.tokens.token())
    granted = permission in roles or permission.replace(".Read.", ".ReadWrite.") in roles
    missing = [] if granted else [permission]
    summary: dict[str, Any] = {"token_acquired": True, "roles": roles, "missing_permissions": missing,
                               "api_reachable": False, "api_base_url": base}
    if missing:
        raise ForbiddenError(
            f"A Microsoft Graph token was issued, but the app lacks the {permission} permission that the "
            "graph source needs.",
            hint=f"Add the Microsoft Graph application permission {permission} and grant admin consent.",
        )
    context.progress(f"Calling {base}")
    next(client.list_alerts({"$top": "1"}), None)
    summary["api_reachable"] = True
    return ActionResult(
        action=ACTION,
        status="success",
        message=f"Connected to Microsoft Graph at {base} with a token from {config.login_host}; "
        f"the app has {', '.join(roles) or 'no application roles'}.",
        parameter=params,
        summary=summary,
    )


def _config(context: Context) -> Config:
    if context.config is None:
        raise ConfigError("Test connectivity needs the instance configuration and none was loaded.",
                          hint="Pass --config FILE or set MDE_CONFIG.")
    return context.config
