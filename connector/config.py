"""Instance configuration: file + environment, clouds table, secrets.

Precedence (fixed contract): a JSON file (``--config FILE`` or the path in
``MDE_CONFIG``), then ``MDE_<KEY>`` environment variables, which win over the
file. The manifest's configuration schema validates the merged result, so the
keys, types, defaults and secret markers live in one place (``manifest.json``).

Endpoints are resolved from the manifest's ``clouds`` table (commercial with its
regional hosts, GCC, GCC High, DoD); ``api_base_url``, ``authority_url`` and
``token_scope`` override each part on its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connector.errors import ConfigError, register_secret
from connector.manifest import Manifest, load_manifest

ENV_PREFIX = "MDE_"
_TENANT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
ENV_CONFIG_PATH = "MDE_CONFIG"
log = logging.getLogger("connector.config")


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/mde-connector``, else ``~/.local/state/mde-connector``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "mde-connector"


@dataclass(frozen=True)
class Config:
    """A validated instance configuration with its endpoints resolved.

    ``raw`` holds every key after defaults were applied; the attributes below
    are what the rest of the connector reads. Secrets are kept out of
    ``repr()`` so that a stray log line or traceback cannot show them.
    """

    tenant_id: str
    client_id: str
    api_base_url: str
    authority_url: str
    token_scope: str
    cloud: str
    state_dir: Path
    timeout_seconds: float
    ca_bundle: Path | None = None
    proxy: str | None = None
    certificate_path: Path | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    certificate_password: str | None = field(default=None, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        """Any configuration key, e.g. ``max_retries``: its value, else
        ``default`` when given, else the default the manifest's configuration
        schema declares (None when it declares none)."""
        value = self.raw.get(key)
        if value is not None:
            return value
        return default if default is not None else load_manifest().config_default(key)

    @property
    def login_host(self) -> str:
        """Scheme and host of the sign-in authority."""
        parts = urlsplit(self.authority_url)
        return f"{parts.scheme}://{parts.netloc}"

    def fingerprint(self) -> str:
        """A stable id of the credential identity (never the secret itself),
        used to key caches: tenant, client, authority, scope."""
        key = "|".join([self.tenant_id, self.client_id, self.authority_url, self.token_scope])
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def read_sources(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge the configuration file and ``MDE_*`` variables (environment wins).

    Raises ConfigError when the file is missing, unreadable or not a JSON
    object, naming the file and the fix.
    """
    env = os.environ if env is None else env
    props: Mapping[str, Any] = (schema or {}).get("properties", {})
    merged: dict[str, Any] = {}
    path = path or env.get(ENV_CONFIG_PATH) or None
    if path:
        file = _expanded(path, "--config (or MDE_CONFIG)")
        try:
            from connector.fsguard import check_config_file

            st = check_config_file(file)
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"The configuration file {file} does not exist.",
                hint="Pass --config with the path of a JSON file or set MDE_CONFIG.",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"The configuration file {file} cannot be read ({exc.__class__.__name__}).") from None
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"The configuration file {file} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).",
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"The configuration file {file} must hold a JSON object of configuration keys.")
        _warn_if_secret_readable(file, st, loaded)
        merged.update(loaded)
    for key in props:
        value = env.get(ENV_PREFIX + key.upper())
        if value is not None and value != "":
            # A string; the manifest's validation converts it by the declared type.
            merged[key] = value
    return merged


_warned_readable: set[str] = set()


def _warn_if_secret_readable(file: Path, st: os.stat_result, values: Mapping[str, Any]) -> None:
    """Warn once per file, like ssh does for a private key, when the file
    holds a secret that other users may read. The run goes on."""
    # The secret keys are those the manifest marks writeOnly / x-secret.
    if not st.st_mode & 0o044 or not any(values.get(key) for key in load_manifest().secret_keys):
        return
    if str(file) in _warned_readable:
        return
    _warned_readable.add(str(file))
    log.warning("The configuration file %s holds a secret and other users may read it; run `chmod 600 %s`.",
                file, file)


def _https_url(value: str, key: str) -> str:
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0  # reading .port checks it
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme != "https" or not parts.hostname or not port_ok:
        raise ConfigError(
            f"Configuration key '{key}' must be an https URL with a valid host and port (got {value[:80]!r}).",
            hint="TLS is required for both the API and the sign-in authority.",
        )
    return value.rstrip("/")


def _expanded(value: str | os.PathLike[str], what: str) -> Path:
    """``value`` as a path with a leading ``~`` or ``~user`` expanded;
    ConfigError naming ``what`` when the home directory is unknown."""
    try:
        return Path(value).expanduser()
    except RuntimeError:  # "~nosuchuser", or no HOME: pathlib cannot expand it
        raise ConfigError(f"{what} starts with '~' but that home directory is unknown on this system; "
                          "give the full path.") from None


def _state_dir(value: str) -> Path:
    """The state directory, refused up front if a file stands in its way."""
    if "\x00" in value:
        raise ConfigError("Configuration key 'state_dir' must be a directory path without NUL characters.")
    try:
        os.fsencode(value)
    except UnicodeEncodeError:
        raise ConfigError("Configuration key 'state_dir' holds characters this system cannot use in a path "
                          "(a lone UTF-16 surrogate); give it as plain text.") from None
    path = _expanded(value, "Configuration key 'state_dir'")
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"Configuration key 'state_dir' names {path}, but {existing} is a file, not a directory.",
            hint="Set 'state_dir' to a directory the connector may create or write.",
        )
    return path


def resolve(values: Mapping[str, Any], manifest: Manifest | None = None) -> Config:
    """Validate merged configuration values and resolve the endpoints.

    ``manifest`` defaults to the packaged manifest. Raises ConfigError naming
    the key for every missing, malformed or contradictory setting.
    """
    if manifest is None:
        manifest = load_manifest()
    for key in manifest.secret_keys:
        if isinstance(values.get(key), str):
            register_secret(values[key])
    for key, value in values.items():
        # JSON files may say NaN or Infinity, and MDE_X=nan converts to one;
        # JSON Schema's ranges do not catch them.
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"Configuration key '{key}' must be a finite number (got {value}).")
    cfg = manifest.validate_configuration(dict(values))

    # The schema has required one credential (anyOf), the cloud (a default,
    # the clouds table's names) and a region only for a cloud that has regions.
    if cfg.get("client_secret") and cfg.get("certificate_path"):
        raise ConfigError(
            "Configuration keys 'client_secret' and 'certificate_path' are both set; "
            "set only one credential.",
        )
    cloud_name = cfg["cloud"]
    cloud = manifest.clouds[cloud_name]
    region = cfg.get("region")
    api_default = cloud["regions"][region] if region else cloud["api_base_url"]

    tenant = str(cfg["tenant_id"]).strip()
    if not _TENANT.fullmatch(tenant):
        # It becomes a path segment of the sign-in authority URL.
        raise ConfigError(
            f"Configuration key 'tenant_id' must be a tenant id (a GUID) or a verified domain such as "
            f"contoso.onmicrosoft.com (got {tenant[:80]!r}).",
        )
    api_base = _https_url(cfg.get("api_base_url") or api_default, "api_base_url")
    authority = _https_url(
        cfg.get("authority_url") or f"{cloud['login_host'].rstrip('/')}/{tenant}", "authority_url"
    )
    scope = cfg.get("token_scope") or cloud["token_scope"]

    def existing_file(key: str) -> Path | None:
        value = cfg.get(key)
        if not value:
            return None
        file = _expanded(value, f"Configuration key '{key}'")
        if not file.is_file():
            raise ConfigError(f"Configuration key '{key}' names {file}, which is not a readable file.")
        return file.resolve()

    proxy = cfg.get("proxy") or None
    if proxy:
        try:
            proxy_parts = urlsplit(proxy)
            proxy_ok = proxy_parts.scheme in {"http", "https", "socks5", "socks5h"} and bool(proxy_parts.hostname)
            proxy_ok = proxy_ok and (proxy_parts.port is None or proxy_parts.port > 0)
        except ValueError:
            proxy_ok = False
        if not proxy_ok:
            raise ConfigError("Configuration key 'proxy' must be a URL such as http://proxy.example:3128.")
        # A proxy URL may carry credentials (http://user:password@host:port):
        # they are secrets like client_secret, and redacted wherever they surface.
        register_secret(proxy_parts.password)
        if proxy_parts.password:
            register_secret(proxy)

    state_dir = _state_dir(str(cfg.get("state_dir") or default_state_dir()))
    return Config(
        tenant_id=tenant,
        client_id=str(cfg["client_id"]).strip(),
        api_base_url=api_base,
        authority_url=authority,
        token_scope=scope,
        cloud=cloud_name,
        state_dir=state_dir,
        timeout_seconds=float(cfg["timeout_seconds"]),
        ca_bundle=existing_file("ca_bundle"),
        proxy=proxy,
        certificate_path=existing_file("certificate_path"),
        raw=cfg,
        client_secret=cfg.get("client_secret") or None,
        certificate_password=cfg.get("certificate_password") or None,
    )


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    manifest: Manifest | None = None,
) -> Config:
    """Read, merge, validate and resolve the instance configuration.

    With neither a file nor any ``MDE_*`` key the error says how to provide one.
    """
    if manifest is None:
        manifest = load_manifest()
    values = read_sources(path, env, manifest.configuration_schema)
    if not values:
        raise ConfigError(
            "No configuration was found.",
            hint="Pass --config FILE, set MDE_CONFIG, or set MDE_TENANT_ID, MDE_CLIENT_ID and "
            "MDE_CLIENT_SECRET; `mde-connector demo` runs against the built-in simulator without any.",
        )
    return resolve(values, manifest)


def ensure_private_dir(path: Path) -> Path:
    """The state directory, created with mode 0700 when missing, and refused
    (ConfigError, exit 2) when another user owns it or could change it, or
    when this user cannot write it: :func:`connector.fsguard.private_dir`.

    The state directory holds the token cache and the store; only the
    connector's user may change it. An existing directory is never chmod-ed.
    """
    from connector.fsguard import private_dir

    return private_dir(path)


def state_dir_setting(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    override: str | os.PathLike[str] | None = None,
) -> Path:
    """Where the token cache and the store live, without needing credentials.

    The one resolution every command uses: ``override`` (``--state-dir``),
    else ``MDE_STATE_DIR``, else the configuration file's ``state_dir``
    (``--config FILE`` or ``MDE_CONFIG``), else :func:`default_state_dir`.
    Only the file's JSON is read (nothing else in it is validated), so
    reading the local store works with a configuration that holds no secret.
    Raises ConfigError for an unreadable file or an unusable path.
    """
    if override:
        return _state_dir(os.fspath(override))
    from connector.manifest import load_manifest

    values = read_sources(path, env, load_manifest().configuration_schema)
    value = values.get("state_dir")
    if value is not None and not isinstance(value, str):
        raise ConfigError("Configuration key 'state_dir' must be a directory path (a string).")
    return _state_dir(value or str(default_state_dir()))
