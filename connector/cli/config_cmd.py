"""``mde-connector config``: the effective configuration, and a check of it.

    mde-connector config show  [--config FILE] [--state-dir DIR] [--output table|json]
    mde-connector config check [--config FILE] [--state-dir DIR] [--output table|json]

``show`` prints every configuration key the manifest declares with its
effective value and where it came from: ``file`` (the configuration file),
``environment`` (``MDE_<KEY>``), ``option`` (``--state-dir``), ``default``
(the manifest's default, or the endpoint the cloud table gives) or ``unset``.
Secrets (``client_secret``, ``certificate_password``, a proxy's password) are
masked. It works with an incomplete configuration (and says what is wrong).

``check`` validates the configuration as an action would before its first
request (keys, types, credential choice, endpoints, files it names, the state
directory, a certificate credential opened with its password) without any
network call; exit 0 when valid, 2 when not.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connector.errors import EXIT_INVALID, EXIT_OK, ConfigError, ConnectorError
from connector.text import dumps_output, escape_text

MASK = "********"
# Keys whose effective value the cloud table fills in when none is given.
_DERIVED = {"api_base_url": "api_base_url", "authority_url": "authority_url", "token_scope": "token_scope"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``show`` and ``check`` subcommands."""
    from connector.cli.local import add_state_dir

    sub = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND", parser_class=type(parser))
    for name, text in (("show", "print the effective configuration with each value's source (secrets masked)"),
                       ("check", "validate the configuration without any network call")):
        p = sub.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".")
        p.add_argument("--config", metavar="FILE", help="instance configuration JSON (default: $MDE_CONFIG)")
        add_state_dir(p)
        p.add_argument("--output", choices=["table", "json"], default="table", help="output format")


def run(args: argparse.Namespace) -> int:
    """Run ``config show`` or ``config check``; returns the exit code."""
    command = getattr(args, "config_command", None)
    if command == "show":
        return _show(args)
    if command == "check":
        return _check(args)
    raise ConfigError("config: choose a subcommand.",
                      hint="Try 'mde-connector config show' or 'mde-connector config check'.")


def _file(args: argparse.Namespace) -> str | None:
    return getattr(args, "config", None) or os.environ.get("MDE_CONFIG") or None


def _mask_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        if parts.password:
            netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        pass
    return value


def effective(args: argparse.Namespace, env: Any = None) -> dict[str, Any]:
    """``{"config_file", "valid", "problem", "values": {key: {"value", "source", "secret"}}}``
    for the command line ``args``; secrets masked, nothing sent anywhere."""
    from connector.config import ENV_PREFIX, read_sources, resolve
    from connector.manifest import load_manifest

    env = os.environ if env is None else env
    manifest = load_manifest()
    schema = manifest.configuration_schema
    props: dict[str, Any] = schema.get("properties", {})
    path = _file(args)
    file_values = read_sources(path, {}, schema) if path else {}
    merged = read_sources(path, env, schema)
    if getattr(args, "state_dir", None):
        merged["state_dir"] = args.state_dir
    problem: str | None = None
    resolved: Any = None
    try:
        resolved = resolve(merged, manifest)
    except ConnectorError as err:
        problem = err.sentence()
    values: dict[str, Any] = {}
    for key, prop in props.items():
        secret = key in manifest.secret_keys
        if key == "state_dir" and getattr(args, "state_dir", None):
            source, value = "option", merged[key]
        elif env.get(ENV_PREFIX + key.upper()) not in (None, ""):
            source, value = "environment", merged.get(key)
            values[key] = {"variable": ENV_PREFIX + key.upper()}
        elif key in file_values:
            source, value = "file", file_values[key]
        elif key in _DERIVED and resolved is not None:
            source, value = "default", getattr(resolved, _DERIVED[key])
        elif key == "state_dir":
            from connector.config import default_state_dir

            source, value = "default", str(default_state_dir())
        elif "default" in prop:
            source, value = "default", prop["default"]
        else:
            source, value = "unset", None
        if value is not None and secret:
            value = MASK
        elif key == "proxy" and isinstance(value, str):
            value = _mask_url(value)
        values[key] = {"value": value, "source": source, "secret": secret, **values.get(key, {})}
    return {"config_file": path, "valid": problem is None, "problem": problem, "values": values}


def _show(args: argparse.Namespace) -> int:
    report = effective(args)
    if args.output == "json":
        print(dumps_output(report))
        return EXIT_OK
    from connector.cli.render import cell

    print(escape_text(f"Configuration file: {report['config_file'] or 'none (no --config, MDE_CONFIG unset)'}"))
    # One key a line, never cut: a URL or a path is copied from here whole.
    keys = max(len(k) for k in report["values"])
    for key, v in report["values"].items():
        value = "-" if v["value"] is None else cell(v["value"])
        source = f"{v['source']} {v['variable']}" if v.get("variable") else v["source"]
        print(f"  {key:<{keys}}  {value}  ({source})")
    if report["problem"]:
        print(f"mde-connector: the configuration is not usable yet: {escape_text(report['problem'])}",
              file=sys.stderr)
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from connector.cli.local import load_cli_config

    path = _file(args)
    try:
        config = load_cli_config(args)
        if config.certificate_path is not None:
            # Opening the key with its password is offline and catches the
            # commonest certificate mistake before any sign-in is attempted.
            from connector.http.auth import _load_certificate

            _load_certificate(config)
    except ConnectorError as err:
        if args.output == "json":
            print(dumps_output({"config_file": path, "valid": False, "problem": err.sentence(),
                                "error": err.to_dict()}))
        print(f"mde-connector: {escape_text(err.sentence())}", file=sys.stderr)
        return EXIT_INVALID
    credential = "certificate" if config.certificate_path else "client secret"
    summary = {"config_file": path, "valid": True, "problem": None, "tenant_id": config.tenant_id,
               "cloud": config.cloud, "source": config.get("source", "defender"), "credential": credential,
               "api_base_url": config.api_base_url, "authority_url": config.authority_url,
               "state_dir": str(config.state_dir)}
    if args.output == "json":
        print(dumps_output(summary))
    else:
        lines = ["OK: the configuration is valid (nothing was sent over the network).",
                 f"  cloud       {config.cloud}, source {summary['source']}",
                 f"  credential  {credential}",
                 f"  API         {config.api_base_url}",
                 f"  sign-in     {config.authority_url}",
                 f"  state       {config.state_dir}",
                 "'mde-connector test-connectivity' checks the credentials against Entra ID and the API."]
        print("\n".join(escape_text(line) for line in lines))
    return EXIT_OK
