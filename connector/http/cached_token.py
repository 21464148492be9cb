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

:func:`cache_problem` says why a cache file cannot be used at all (not JSON,
not msal's shape, absurd times, a token no HTTP header can carry), so that
the caller sets it aside instead of handing it to msal, which would fail on
it on every run.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

# msal's margin: a token expiring within five minutes counts as expired.
EXPIRY_MARGIN_SECONDS = 5 * 60
# Entra ID issues tokens for hours, not years: a time further ahead than this
# is corrupt, not a token to trust for ever.
MAX_SECONDS_AHEAD = 366 * 24 * 3600

# msal's cache sections, each a JSON object of JSON objects.
_SECTIONS = ("AccessToken", "RefreshToken", "IdToken", "Account", "AppMetadata")
_TIME_FIELDS = ("expires_on", "extended_expires_on", "refresh_on", "cached_at")
_TEXT_FIELDS = ("credential_type", "client_id", "environment", "realm", "target", "token_type")
_TIME = re.compile(r"[0-9]{1,12}")
# A bearer token travels in an HTTP header: printable ASCII, no spaces.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


class UnusableCache(ValueError):
    """A token cache file that cannot be used; ``str()`` says why, without
    quoting any of its content."""


def load_cache(text: str, now: float | None = None) -> dict[str, Any]:
    """msal's persisted cache as a dict, checked the way msal will use it.
    Raises UnusableCache naming the problem."""
    try:
        cache = json.loads(text)
    except ValueError:
        raise UnusableCache("it is not valid JSON") from None
    except RecursionError:
        raise UnusableCache("it is nested too deeply") from None
    if not isinstance(cache, dict):
        raise UnusableCache("it is not a JSON object")
    for section in _SECTIONS:
        entries = cache.get(section, {})
        if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
            raise UnusableCache(f"its {section} section is not msal's shape")
    latest = (time.time() if now is None else now) + MAX_SECONDS_AHEAD
    for entry in cache.get("AccessToken", {}).values():
        for name in _TEXT_FIELDS:
            if name in entry and not isinstance(entry[name], str):
                raise UnusableCache(f"an access token's {name} is not text")
        if not isinstance(entry.get("home_account_id"), (str, type(None))):
            raise UnusableCache("an access token's home_account_id is not text")
        secret = entry.get("secret")
        if not isinstance(secret, str) or not _HEADER_SAFE.fullmatch(secret):
            raise UnusableCache("an access token is not printable ASCII text")
        if "expires_on" not in entry:
            raise UnusableCache("an access token has no expiry")
        for name in _TIME_FIELDS:
            if name not in entry:
                continue
            value = entry[name]
            if isinstance(value, bool) or not isinstance(value, (int, str)) or not _TIME.fullmatch(str(value)):
                raise UnusableCache(f"an access token's {name} is not a time")
            if int(value) > latest:
                raise UnusableCache(f"an access token's {name} lies absurdly far in the future")
    return cache


def cache_problem(text: str, now: float | None = None) -> str | None:
    """Why the cache ``text`` cannot be used, or None when it can."""
    try:
        load_cache(text, now)
    except UnusableCache as exc:
        return str(exc)
    return None


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
    now = time.time() if now is None else now
    try:
        cache = load_cache(cache_text, now)
    except UnusableCache:
        return None
    tokens = cache.get("AccessToken")
    if not isinstance(tokens, dict):
        return None
    query = {"client_id": client_id, "environment": environment, "realm": realm, "home_account_id": None}
    scopes = sorted([scope])
    exact_key = "-".join(["", environment, "AccessToken", client_id, realm, " ".join(scopes)]).lower()

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
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return None
