"""Input and configuration validation: one sentence, the field named, the fix
given, exit code 2, secrets never quoted."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import validation
from connector.errors import EXIT_INVALID, ConfigError, InputError, PlaybookError
from connector.manifest import load_manifest
from tests.strategies import hostile_text

ACTION = "get_alert_related_files"
BASE_CONFIG = {"tenant_id": "contoso.onmicrosoft.com", "client_id": "11111111-2222-3333-4444-555555555555"}
SECRET = "Zq8~Qm3vS-0dXk.Yh7Lp_9aTr4Wc6Ne2Uf5Jb1Gs"


@pytest.fixture(scope="module")
def spec() -> Any:
    return load_manifest().action(ACTION)


def input_error(spec: Any, params: dict[str, Any]) -> InputError:
    with pytest.raises(InputError) as info:
        spec.validate_params(params)
    err = info.value
    text = str(err)
    assert err.exit_code == EXIT_INVALID == 2
    assert "\n" not in text and "\r" not in text, text
    assert text.endswith("."), text
    assert "Traceback" not in text
    return err


def config_error(config: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_manifest().validate_configuration(config)
    err = info.value
    assert err.exit_code == 2
    assert "\n" not in str(err)
    return err


# -- alert_id ------------------------------------------------------------------------


def test_empty_alert_id_names_the_parameter_and_shows_an_example(spec: Any) -> None:
    err = input_error(spec, {"alert_id": ""})
    assert str(err) == (
        "Parameter 'alert_id' must not be empty; pass the Defender alert id, e.g. 636688558380765161_2136280442."
    )


@pytest.mark.parametrize("blank", ["   ", "\t", " \n ", "\u3000"])
def test_whitespace_only_alert_id_counts_as_empty(spec: Any, blank: str) -> None:
    assert "must not be empty" in str(input_error(spec, {"alert_id": blank}))


def test_missing_alert_id_is_required(spec: Any) -> None:
    err = input_error(spec, {})
    assert str(err).startswith("Parameter 'alert_id' is required; pass the Defender alert id, e.g. ")


@pytest.mark.parametrize("value", ["6366\n_2136", "a\x00b", "abc\x1b[31m", "x\x7fy", "i\x85d", "a\tb"])
def test_control_characters_are_rejected_and_shown_escaped(spec: Any, value: str) -> None:
    text = str(input_error(spec, {"alert_id": value}))
    assert text.startswith("Parameter 'alert_id' must not contain control characters")
    assert value not in text  # the raw control character never reaches the terminal
    assert "\\x" in text or "\\n" in text or "\\t" in text


@pytest.mark.parametrize("value", [".", "..", " .. "])
def test_dot_segments_are_rejected(spec: Any, value: str) -> None:
    assert "be '.' or '..'" in str(input_error(spec, {"alert_id": value}))


def test_overlong_alert_id_gives_the_limit_and_the_length_not_the_value(spec: Any) -> None:
    text = str(input_error(spec, {"alert_id": "7" * 300}))
    assert text == "Parameter 'alert_id' must be at most 256 characters long (got 300 characters)."


@pytest.mark.parametrize(
    ("value", "shown"), [(636688558380765161, "636688558380765161"), (None, "null"), (["a"], '["a"]'), (True, "true")]
)
def test_wrong_type_is_named_with_the_value(spec: Any, value: Any, shown: str) -> None:
    assert str(input_error(spec, {"alert_id": value})) == f"Parameter 'alert_id' must be a string (got {shown})."


def test_extra_parameter_lists_the_accepted_ones(spec: Any) -> None:
    err = input_error(spec, {"alert_id": "636688558380765161_2136280442", "limt": "10"})
    assert str(err) == "Parameter 'limt' is not accepted by get_alert_related_files; accepted parameters: alert_id."


def test_misspelt_parameter_gets_a_suggestion(spec: Any) -> None:
    assert "did you mean 'alert_id'?" in str(input_error(spec, {"alertid": "1_2"}))


def test_parameters_that_are_not_an_object_are_rejected(spec: Any) -> None:
    assert "must be a JSON object" in str(input_error(spec, ["alert_id"]))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "636688558380765161_2136280442",
        "da637308392288907382_-880718168",
        "da637472900382838869_1364969609",
        "  636688558380765161_2136280442  ",
        "\t636688558380765161_2136280442\n",
        "...",
        ".hidden",
        "ид_тревоги_1",
        "x" * 256,
    ],
)
def test_valid_alert_ids_pass_with_surrounding_whitespace_stripped(spec: Any, value: str) -> None:
    assert spec.validate_params({"alert_id": value}) == {"alert_id": value.strip()}


def test_validate_params_does_not_modify_the_callers_dict(spec: Any) -> None:
    params = {"alert_id": " 1_2 "}
    spec.validate_params(params)
    assert params == {"alert_id": " 1_2 "}


def test_test_connectivity_accepts_no_parameters() -> None:
    spec = load_manifest().action("test_connectivity")
    assert spec.validate_params({}) == {}
    with pytest.raises(InputError, match="test_connectivity accepts no parameters"):
        spec.validate_params({"alert_id": "1_2"})


# -- configuration --------------------------------------------------------------------


def test_valid_configuration_gets_its_defaults() -> None:
    cfg = load_manifest().validate_configuration({**BASE_CONFIG, "client_secret": SECRET})
    assert cfg["cloud"] == "commercial"
    assert cfg["timeout_seconds"] == 30
    assert cfg["max_retries"] == 4
    assert cfg["retry_budget_seconds"] == 60
    assert cfg["max_retry_after_seconds"] == 30
    assert cfg["rate_per_minute"] == 100 and cfg["rate_per_hour"] == 1500
    assert cfg["max_pages"] == 100
    assert "region" not in cfg  # no default: the global host


def test_configuration_values_from_the_environment_are_converted() -> None:
    cfg = load_manifest().validate_configuration(
        {**BASE_CONFIG, "client_secret": SECRET, "timeout_seconds": "12.5", "max_retries": " 2 "}
    )
    assert cfg["timeout_seconds"] == 12.5
    assert cfg["max_retries"] == 2


def test_non_numeric_timeout_names_the_key_the_range_and_the_value() -> None:
    err = config_error({**BASE_CONFIG, "client_secret": SECRET, "timeout_seconds": "abc"})
    assert str(err) == "Configuration key 'timeout_seconds' must be a number between 1 and 300 (got \"abc\")."


def test_out_of_range_timeout_is_rejected() -> None:
    err = config_error({**BASE_CONFIG, "client_secret": SECRET, "timeout_seconds": 0})
    assert "'timeout_seconds' must be a number between 1 and 300 (got 0)" in str(err)


def test_missing_tenant_id_is_named() -> None:
    err = config_error({"client_id": "c", "client_secret": SECRET})
    assert str(err).startswith("Configuration key 'tenant_id' is required; set the Entra ID tenant id")


def test_missing_credential_asks_for_either_one() -> None:
    err = config_error(dict(BASE_CONFIG))
    assert str(err) == "The configuration needs a credential; set client_secret or certificate_path."


def test_unknown_configuration_key_is_rejected_with_a_suggestion() -> None:
    err = config_error({**BASE_CONFIG, "client_secret": SECRET, "timeout": 10})
    assert str(err).startswith("Configuration key 'timeout' is not accepted")
    assert "did you mean 'timeout_seconds'?" in str(err)


def test_unknown_cloud_lists_the_choices() -> None:
    err = config_error({**BASE_CONFIG, "client_secret": SECRET, "cloud": "gov"})
    assert str(err) == "Configuration key 'cloud' must be one of commercial, gcc, gcc-high, dod (got \"gov\")."


def test_region_outside_the_commercial_cloud_is_rejected() -> None:
    err = config_error({**BASE_CONFIG, "client_secret": SECRET, "cloud": "gcc-high", "region": "eu"})
    assert str(err).startswith("Configuration key 'region' applies to the commercial cloud only")


def test_plain_http_api_base_url_is_rejected() -> None:
    err = config_error({**BASE_CONFIG, "client_secret": SECRET, "api_base_url": "http://127.0.0.1:8443"})
    assert str(err) == "Configuration key 'api_base_url' must be an https:// URL (got \"http://127.0.0.1:8443\")."


@pytest.mark.parametrize(
    "config",
    [
        {**BASE_CONFIG, "client_secret": 12345678},
        {**BASE_CONFIG, "client_secret": ["s3cr3t-in-a-list"]},
        {**BASE_CONFIG, "certificate_path": "/etc/mde/cert.pem", "certificate_password": 987654321},
        {**BASE_CONFIG, "certificate_path": "/etc/mde/cert.pem", "certificate_password": {"pw": "hunter2hunter2"}},
    ],
)
def test_secret_values_are_never_quoted(config: dict[str, Any]) -> None:
    text = str(config_error(config))
    assert ("client_secret" in text) or ("certificate_password" in text)
    for fragment in ("12345678", "s3cr3t", "987654321", "hunter2"):
        assert fragment not in text


def test_secret_keys_are_the_write_only_ones() -> None:
    assert load_manifest().secret_keys == {"client_secret", "certificate_password"}


def test_certificate_password_without_certificate_path_is_explained() -> None:
    err = config_error({**BASE_CONFIG, "client_secret": SECRET, "certificate_password": "pw"})
    assert str(err).startswith("Configuration key 'certificate_password' needs 'certificate_path' as well")
    assert 'pw"' not in str(err)


# -- the generic machinery ---------------------------------------------------------------


def test_validators_are_compiled_once_per_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert validation.compile_validator(schema) is validation.compile_validator(schema)
    assert validation.compile_validator(schema, key="k-test") is validation.compile_validator({}, key="k-test")


def test_check_raises_the_requested_error_class_with_the_subject_and_path() -> None:
    schema = {
        "type": "object",
        "properties": {"steps": {"type": "array", "items": {"type": "object", "required": ["action"]}}},
    }
    with pytest.raises(PlaybookError) as info:
        validation.check(schema, {"steps": [{"action": "a"}, {}]}, subject="Playbook field", error_cls=PlaybookError)
    assert str(info.value) == "Playbook field 'steps[1].action' is required."
    assert info.value.exit_code == 2


def test_format_checking_is_on() -> None:
    schema = {"type": "object", "properties": {"ip": {"type": "string", "format": "ipv4"}}}
    with pytest.raises(InputError, match=r"'ip' must be a valid ipv4 \(got \"10.0.0.300\"\)"):
        validation.check(schema, {"ip": "10.0.0.300"}, subject="Parameter", error_cls=InputError)


def test_long_values_are_cut_and_control_characters_escaped() -> None:
    shown = validation.quote_value("A" * 200 + "\n")
    assert len(shown) <= 62 and shown.endswith('\u2026"')
    assert validation.quote_value("a\nb\x00c\u2028") == '"a\\nb\\x00c\\u2028"'
    assert validation.quote_value("Microsoft\ufffd ООО") == '"Microsoft\ufffd ООО"'


def test_paths_render_as_dotted_names_with_indexes() -> None:
    assert validation.format_path(["actions", 1, "output", 3]) == "actions[1].output[3]"
    assert validation.format_path([]) == ""


@settings(max_examples=400, deadline=None)
@given(hostile_text(max_size=300) | st.text(max_size=300))
def test_any_alert_id_either_passes_clean_or_fails_in_one_line(value: str) -> None:
    spec = load_manifest().action(ACTION)
    try:
        clean = spec.validate_params({"alert_id": value})["alert_id"]
    except InputError as err:
        text = str(err)
        assert text.startswith("Parameter 'alert_id' ") and text.endswith(".")
        assert text.isprintable(), text
        assert len(text) < 200
        return
    assert clean == value.strip()
    assert 1 <= len(clean) <= 256
    assert clean not in (".", "..")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in clean)
