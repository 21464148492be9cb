"""Test Connectivity: a token from Entra ID, its permissions, one API call."""

from __future__ import annotations

from typing import Any

from connector.errors import ForbiddenError
from connector.http.auth import token_roles
from connector.sdk import ActionResult

ACTION = "test_connectivity"
REQUIRED = ["File.Read.All"]
OPTIONAL = ["Alert.Read.All"]  # needed by the new-alert trigger only


def handler(params: dict[str, Any], context: Any) -> ActionResult:
    """Get a new token from Entra ID (never a cached one: this proves the
    credential), read its ``roles``, then call the API with it: ``GET
    /api/alerts?$top=1`` when the app may read alerts. Reports which
    permissions are missing."""
    client = context.client
    if getattr(client, "source", "defender") == "graph":
        return _graph(params, context)
    context.progress(f"Requesting a token from {context.config.login_host}")
    fresh = getattr(client.tokens, "fresh_token", None)
    token = fresh() if fresh is not None else client.tokens.token()
    client.use_token(token)
    roles = token_roles(token)
    missing = [p for p in REQUIRED + OPTIONAL if p not in roles]
    summary: dict[str, Any] = {
        "token_acquired": True,
        "roles": roles,
        "missing_permissions": missing,
        "api_reachable": False,
        "api_base_url": context.config.api_base_url,
    }
    if "File.Read.All" in missing:
        raise ForbiddenError(
            "A token was issued, but the app lacks the File.Read.All permission that Get Alert Related Files needs.",
            hint="Add the WindowsDefenderATP application permission File.Read.All and grant admin consent.",
        )
    context.progress(f"Calling {context.config.api_base_url}")
    if "Alert.Read.All" in roles:
        next(client.list_alerts({"$top": "1"}), None)
        note = ""
    else:
        # Without Alert.Read.All, prove reachability with the files endpoint:
        # an id that cannot exist answers 404 once the token is accepted.
        from connector.errors import NotFoundError

        try:
            client.alert_files("mde-connector-connectivity-probe")
        except NotFoundError:
            pass
        note = " Alert.Read.All is missing, so the new-alert trigger (watch) will not work."
    summary["api_reachable"] = True
    return ActionResult(
        action=ACTION,
        status="success",
        message=f"Connected to {context.config.api_base_url} with a token from {context.config.login_host}; "
        f"the app has {', '.join(roles) or 'no application roles'}.{note}",
        parameter=params,
        summary=summary,
    )


def _graph(params: dict[str, Any], context: Any) -> ActionResult:
    """``source: graph``: a Graph token, its ``SecurityAlert.Read.All`` role,
    then ``GET /v1.0/security/alerts_v2?$top=1``."""
    from connector.http.graph import GRAPH_PERMISSION

    client = context.client
    base = client.config.api_base_url
    context.progress(f"Requesting a Microsoft Graph token from {context.config.login_host}")
    roles = token_roles(client.tokens.token())
    missing = [] if GRAPH_PERMISSION in roles or "SecurityAlert.ReadWrite.All" in roles else [GRAPH_PERMISSION]
    summary: dict[str, Any] = {"token_acquired": True, "roles": roles, "missing_permissions": missing,
                               "api_reachable": False, "api_base_url": base}
    if missing:
        raise ForbiddenError(
            f"A Microsoft Graph token was issued, but the app lacks the {GRAPH_PERMISSION} permission that the "
            "graph source needs.",
            hint=f"Add the Microsoft Graph application permission {GRAPH_PERMISSION} and grant admin consent.",
        )
    context.progress(f"Calling {base}")
    next(client.list_alerts({"$top": "1"}), None)
    summary["api_reachable"] = True
    return ActionResult(
        action=ACTION,
        status="success",
        message=f"Connected to Microsoft Graph at {base} with a token from {context.config.login_host}; "
        f"the app has {', '.join(roles) or 'no application roles'}.",
        parameter=params,
        summary=summary,
    )
