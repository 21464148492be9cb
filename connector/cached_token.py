"""Read a still-valid access token from msal's persisted cache without msal.

Every CLI run used to import msal and build its ConfidentialClientApplication
just to read back the token an earlier run cached. Building the application
costs an OIDC discovery request to the sign-in host on every run (a TLS
handshake to Entra ID from a real machine), and the import ~8 ms.

:func:`find_cached_token` answers the question msal's
``acquire_token_for_client`` asks its cache first, with the same rules
(msal 1.2x–1.3x, ``_acquire_token_silent_from_cache_and_possibly_refresh_it``
and ``TokenCache.search``), on the cache file's JSON:

- AccessToken entries whose ``client_id``, ``realm`` (the tenant),
  ``environment`` (the authority's host name, lower case) and
  ``home_account_id`` (null for an application) match, whose ``target``
  holds the requested scope, and that carry no ``ext_cache_key``; the entry
  under the exact cache key first, then the others in file order;
- the first of them that expires in five minutes or more wins, unless it is
  past its ``refresh_on`` time: then msal would refresh it, so None.

It only reads. msal stays the only writer and the source of truth: whenever
this finds nothing usable (no file, a corrupt one, a tenant given as a domain
name, a token near expiry), the caller asks msal exactly as before.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

# msal's margin: a token expiring within five minutes counts as expired.
EXPIRY_MARGIN_SECONDS = 5 * 60


def authority_parts(authority_url: str) -> tuple[str, str] | None:
    """(environment, realm) msal derives from an authority URL: the host name
    in lower case and the first path segment (the tenant), or None."""
    parts = urlsplit(authority_url)
    segments = parts.path.split("/")
    if parts.scheme != "https" or not parts.hostname or len(segments) < 2 or not segments[1]:
        return None
    return parts.hostname.lower(), segments[1]


def find_cached_token(cache_text: str, *, client_id: str, authority_url: str, scope: str,
                      now: float | None = None) -> str | None:
    """The access token msal would return from this cache for a
    client-credentials request of ``scope``, or None to let msal decide."""
    where = authority_parts(authority_url)
    if where is None:
        return None
    environment, realm = where
    try:
        cache = json.loads(cache_text)
    except ValueError:
        return None
    tokens = cache.get("AccessToken") if isinstance(cache, dict) else None
    if not isinstance(tokens, dict):
        return None
    query = {"client_id": client_id, "environment": environment, "realm": realm, "home_account_id": None}
    scopes = sorted([scope])
    exact_key = "-".join(["", environment, "AccessToken", client_id, realm, " ".join(scopes)]).lower()
    now = time.time() if now is None else now

    def matches(entry: Any) -> bool:
        return isinstance(entry, dict) and all(k in entry and entry[k] == v for k, v in query.items())

    candidates: list[Any] = []
    preferred = tokens.get(exact_key)
    if matches(preferred):
        candidates.append(preferred)
    wanted = set(scopes)
    for entry in tokens.values():
        if entry is preferred or not matches(entry) or "ext_cache_key" in entry:
            continue
        target = entry.get("target")
        if isinstance(target, str) and wanted <= set(target.split()):
            candidates.append(entry)
    try:
        for entry in candidates:
            if int(entry["expires_on"]) - now < EXPIRY_MARGIN_SECONDS:
                continue
            if "refresh_on" in entry and int(entry["refresh_on"]) < now:
                return None  # msal would refresh it now
            secret = entry.get("secret")
            return secret if isinstance(secret, str) and secret else None
    except (KeyError, TypeError, ValueError):
        return None
    return None
