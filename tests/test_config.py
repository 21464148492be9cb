"""Configuration: file + MDE_* environment (env wins), clouds table, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.config import load_config, resolve
from connector.errors import ConfigError

TENANT = "8b6b2c1e-5f0c-4f5e-9d43-2a1e6f3b7c90"
CLIENT = "3c2f1b7a-9e44-4d1c-8a5b-6f0e2d9c1a37"
SECRET = "Kq8~S3cr3t.V4lue-Never-Printed"


def write(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "mde.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def base(**extra: object) -> dict:
    return {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": SECRET, **extra}


@pytest.mark.parametrize(
    ("cloud", "region", "api", "login", "scope"),
    [
        ("commercial", None, "https://api.security.microsoft.com", "https://login.microsoftonline.com",
         "https://api.securitycenter.microsoft.com/.default"),
        ("commercial", "eu", "https://eu.api.security.microsoft.com", "https://login.microsoftonline.com",
         "https://api.securitycenter.microsoft.com/.default"),
        ("commercial", "aea", "https://aea.api.security.microsoft.com", "https://login.microsoftonline.com",
         "https://api.securitycenter.microsoft.com/.default"),
        ("gcc", None, "https://api-gcc.securitycenter.microsoft.us", "https://login.microsoftonline.com",
         "https://api-gcc.securitycenter.microsoft.us/.default"),
        ("gcc-high", None, "https://api-gov.securitycenter.microsoft.us", "https://login.microsoftonline.us",
         "https://api-gov.securitycenter.microsoft.us/.default"),
        ("dod", None, "https://api-gov.securitycenter.microsoft.us", "https://login.microsoftonline.us",
         "https://api-gov.securitycenter.microsoft.us/.default"),
    ],
)
def test_cloud_table_resolves_api_authority_and_scope(tmp_path, cloud, region, api, login, scope) -> None:
    values = base(cloud=cloud, state_dir=str(tmp_path))
    if region:
        values["region"] = region
    cfg = resolve(values)
    assert cfg.api_base_url == api
    assert cfg.authority_url == f"{login}/{TENANT}"
    assert cfg.token_scope == scope


def test_overrides_win_over_the_cloud_table(tmp_path) -> None:
    cfg = resolve(base(api_base_url="https://mde.private.example:8443/", authority_url="https://sts.example/t1",
                       token_scope="https://securitycenter.onmicrosoft.com/windowsatpservice/.default",
                       state_dir=str(tmp_path)))
    assert cfg.api_base_url == "https://mde.private.example:8443"
    assert cfg.authority_url == "https://sts.example/t1"
    assert cfg.login_host == "https://sts.example"
    assert cfg.token_scope.endswith("windowsatpservice/.default")


def test_environment_wins_over_the_file_and_is_typed(tmp_path) -> None:
    path = write(tmp_path, base(timeout_seconds=30, region="us", state_dir=str(tmp_path)))
    env = {"MDE_REGION": "uk", "MDE_TIMEOUT_SECONDS": "12.5", "MDE_MAX_RETRIES": "2"}
    cfg = load_config(path, env=env)
    assert cfg.api_base_url == "https://uk.api.security.microsoft.com"
    assert cfg.timeout_seconds == 12.5
    assert cfg.get("max_retries") == 2


def test_mde_config_variable_names_the_file(tmp_path) -> None:
    path = write(tmp_path, base(state_dir=str(tmp_path)))
    cfg = load_config(None, env={"MDE_CONFIG": str(path)})
    assert cfg.client_id == CLIENT


def test_environment_alone_is_enough(tmp_path) -> None:
    env = {"MDE_TENANT_ID": TENANT, "MDE_CLIENT_ID": CLIENT, "MDE_CLIENT_SECRET": SECRET,
           "MDE_STATE_DIR": str(tmp_path)}
    assert load_config(None, env=env).tenant_id == TENANT


def test_the_secret_stays_out_of_repr(tmp_path) -> None:
    cfg = resolve(base(state_dir=str(tmp_path)))
    assert SECRET not in repr(cfg)
    assert cfg.client_secret == SECRET


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"client_id": CLIENT, "client_secret": SECRET}, "tenant_id"),
        (base(client_secret=None), "client_secret"),
        (base(certificate_path="/nonexistent/cert.pem"), "certificate_path"),
        (base(region="moon"), "region"),
        (base(cloud="gcc", region="eu"), "region"),
        (base(cloud="azure-china"), "cloud"),
        (base(api_base_url="http://api.security.microsoft.com"), "api_base_url"),
        (base(authority_url="ftp://login.example/tenant"), "authority_url"),
        (base(timeout_seconds="abc"), "timeout_seconds"),
        (base(ca_bundle="/nonexistent/ca.pem"), "ca_bundle"),
        (base(proxy="proxy.example:3128"), "proxy"),
        (base(unknown_key=1), "unknown_key"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path, values, names) -> None:
    values = {k: v for k, v in values.items() if v is not None}
    values["state_dir"] = str(tmp_path)
    with pytest.raises(ConfigError) as info:
        resolve(values)
    text = str(info.value)
    assert names in text
    assert "\n" not in text and "Traceback" not in text
    assert SECRET not in text
    assert info.value.exit_code == 2


def test_missing_file_and_bad_json_are_one_sentence(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.json", env={})
    bad = tmp_path / "bad.json"
    bad.write_text('{"tenant_id": "x",,}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid JSON \(line 1"):
        load_config(bad, env={})
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="JSON object"):
        load_config(listing, env={})


def test_no_configuration_at_all_points_to_the_demo() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={})
    assert "mde-connector demo" in str(info.value)


def test_proxy_credentials_are_redacted_like_secrets(tmp_path) -> None:
    from connector.errors import ApiError, redact

    cfg = resolve(base(proxy="http://svc-mde:Pr0xy~Passw0rd@proxy.corp.example:3128", state_dir=str(tmp_path)))
    assert cfg.proxy == "http://svc-mde:Pr0xy~Passw0rd@proxy.corp.example:3128"
    assert "Pr0xy~Passw0rd" not in redact(f"connect via {cfg.proxy} failed")
    assert "Pr0xy~Passw0rd" not in str(ApiError("proxy said: Pr0xy~Passw0rd rejected"))


# -- a secret others can read ------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize("key", ["client_secret", "certificate_password"])
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=oct)
def test_a_readable_configuration_holding_a_secret_gets_one_warning_with_the_fix(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, key: str, mode: int) -> None:
    values = base() if key == "client_secret" else {**base(), key: "Pfx-Passw0rd.Never-Printed"}
    path = write(tmp_path, values)
    path.chmod(mode)
    caplog.clear()
    from connector.config import read_sources

    for _ in range(2):
        assert read_sources(path, env={})[key]  # read all the same
    (message,) = _warnings(caplog)
    assert str(path) in message and f"chmod 600 {path}" in message
    assert SECRET not in message and "Never-Printed" not in message


def test_a_private_configuration_or_one_without_a_secret_gets_no_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    private = write(tmp_path, base())
    private.chmod(0o600)
    load_config(private, env={})
    shared = tmp_path / "shared.json"
    shared.write_text(json.dumps({"tenant_id": TENANT, "client_id": CLIENT}), encoding="utf-8")
    shared.chmod(0o644)
    load_config(shared, env={"MDE_CLIENT_SECRET": SECRET})  # the secret comes from the environment
    assert _warnings(caplog) == []


def test_the_cli_shows_the_warning_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    path = write(tmp_path, {**base(), "state_dir": str(tmp_path / "state")})
    path.chmod(0o644)
    main(["containers", "list", "--config", str(path)])
    _, err = capsys.readouterr()
    assert f"chmod 600 {path}" in err and SECRET not in err
