"""Bad and hostile input, property-based (hypothesis).

Alert ids and parameters (through the CLI and ``run_action``), API responses
(from the File schema, plus garbage, served over the simulator), instance
configurations and playbook files: never a traceback, never a request
outside ``/api/alerts/<one segment>/files``, invalid input rejected before any
request with exit 2, mapped values of the wrong type dropped and counted,
never stringified, huge strings bounded, and every malformed configuration
or playbook named in one sentence. Extends the pure-function properties of
tests/test_validation.py and tests/test_artifacts.py to the whole path.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connector.cli.main import main
from connector.errors import ConfigError, ConnectorError, PlaybookError
from connector.http import auth
from connector.text import escape_text, finite
from mde_simulator import EXAMPLE_FILE, ScriptedResponse
from tests.reliability.support import (
    EXAMPLE,
    FILES_PATH,
    VirtualTime,
    assert_one_sentence,
    count,
    make_config,
    run_files,
)
from tests.strategies import hostile_text, json_values, json_values_of

ACTION = "get_alert_related_files"
FILES_ROUTE = re.compile(r"^/api/alerts/([^/]+)/files$")
EXAMPLES = {"ids": 300, "params": 300, "responses": 200, "configs": 400, "playbooks": 300}


def budget(name: str) -> settings:
    """The settings of one property: its example budget, no deadline (each
    example may cross loopback TLS), fixtures shared across examples."""
    return settings(max_examples=EXAMPLES[name], deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


def _huge(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Strings of about 100 KB (a short random text repeated)."""
    return st.builds(lambda s, n: (s or "x") * (n // max(1, len(s or "x"))), alphabet,
                     st.integers(90_000, 110_000))


# -- alert ids and parameters -----------------------------------------------------------

hostile_pieces = st.sampled_from(["/", "..", ".", "%2F", "%2e%2e", "?", "#", "&", "=", " ", "\t", "\n", "\r",
                                  "\x00", "\x1b[31m", "\u202e", "\u2028", "\ufeff", "\\", "%", "$top=1",
                                  "../../machines", "files", "😀", "ß", "İ", "\x7f", "\x85"])
alert_ids = (
    st.text(max_size=300)
    | hostile_text(max_size=60)
    | st.lists(hostile_pieces | st.text(max_size=5), min_size=1, max_size=12).map("".join)
    | _huge(st.text(min_size=1, max_size=4))
    | st.sampled_from([EXAMPLE, "da637308392288907382_-880718168", "  " + EXAMPLE + "\t"])
)


@pytest.fixture(scope="module")
def hsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """This module's own simulator: no request another test left in flight
    can show up in its log."""
    from mde_simulator import Simulator, SimulatorOptions

    options = SimulatorOptions(rate_per_minute=1_000_000, rate_per_hour=10_000_000)
    with Simulator(tmp_path_factory.mktemp("hsim"), options) as simulator:
        yield simulator


@pytest.fixture
def sim(hsim: Any) -> Any:
    hsim.clear_script()
    hsim.reset_log()
    return hsim


@pytest.fixture(scope="module")
def ids_config(hsim: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The connector's own budget on a fast clock: hundreds of calls, no waiting.
    tmp = tmp_path_factory.mktemp("ids")
    return Path(hsim.write_config(tmp / "mde.json", state_dir=str(tmp / "state"), rate_time_scale=0.0001))


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@budget("ids")
@given(alert_id=alert_ids)
def test_any_alert_id_reaches_only_its_own_files_path_or_exits_2(sim: Any, ids_config: Path, alert_id: str) -> None:
    count("hypothesis examples")
    sim.reset_log()
    code, out, err = _cli("run", ACTION, "--param", f"alert_id={alert_id}", "--config", str(ids_config),
                          "--output", "json")
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    result = json.loads(out)
    requests = sim.requests
    if code == 2:
        assert result["error"]["kind"] == "invalid_input"
        assert_one_sentence(result["message"])
        assert "alert_id" in result["message"]
        assert requests == [] and sim.token_requests == 0  # rejected before any request
        return
    assert code in (0, 1), (code, err)
    api = [r.path for r in requests if r.path.startswith("/api/")]
    assert api, "a valid id was never requested"
    for path in api:
        match = FILES_ROUTE.match(path)
        assert match, path
        assert unquote(match.group(1)) == alert_id.strip()
    assert result["status"] == "success" or result["error"]["kind"] == "not_found", result["message"]


class _RefusingClient:
    """A client a test can hand to run_action: records alert ids; raising
    when ``refuse`` proves invalid input never gets as far as a client."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def alert_files(self, alert_id: str, progress: Any = None) -> list[dict[str, Any]]:
        self.asked.append(alert_id)
        return [EXAMPLE_FILE]


parameter_names = st.sampled_from(["alert_id", "alertId", "Alert_Id", "alert_id ", "id", "", "__proto__",
                                   "$top", "alert_id\x00", "alert_id\ud800"]) | hostile_text(max_size=12)
parameters = st.one_of(
    st.dictionaries(parameter_names, json_values | alert_ids, max_size=4),
    st.fixed_dictionaries({"alert_id": json_values | alert_ids}),
    json_values,  # not even an object
)


@budget("params")
@given(params=parameters)
def test_any_parameters_fail_in_one_sentence_before_any_client_or_run(params: Any, tmp_path_factory: Any) -> None:
    from connector.actions import ActionContext, run_action

    count("hypothesis examples")
    client = _RefusingClient()
    context = ActionContext(config=None, store=None, client_factory=lambda cfg: client)
    result = run_action(ACTION, params, context)
    if result.ok:
        assert isinstance(params, dict) and set(params) == {"alert_id"} and isinstance(params["alert_id"], str)
        assert client.asked == [params["alert_id"].strip()]
        return
    assert result.error["kind"] == "invalid_input" and result.exit_code == 2
    assert client.asked == []
    assert_one_sentence(result.message)
    assert result.message.startswith(("Parameter", "The parameters")), result.message


def test_alert_id_with_a_lone_surrogate_is_invalid_input_before_any_request(sim: Any, responses_config: Any) -> None:
    result, _ = run_files(responses_config, alert_id="da637\ud800_1")
    assert result.error["kind"] == "invalid_input" and result.exit_code == 2
    assert sim.requests == []


# -- API responses -----------------------------------------------------------------------


def _hex(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789abcdefABCDEF", min_size=n, max_size=n)


timestamps = st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z")
texts = hostile_text(max_size=60) | _huge(st.text(min_size=1, max_size=3))
response_values = json_values_of(hostile_text(max_size=20))
FILE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "sha1": _hex(40), "sha256": _hex(64), "md5": _hex(32), "signerHash": _hex(40),
    "globalPrevalence": st.integers(0, 10**12), "size": st.integers(0, 2**63),
    "globalFirstObserved": timestamps, "globalLastObserved": timestamps,
    "fileType": texts, "filePublisher": texts, "fileProductName": texts, "signer": texts, "issuer": texts,
    "isPeFile": st.booleans(), "isValidCertificate": st.booleans(),
    "determinationType": st.sampled_from(["Unknown", "Malware", "Pua", "Clean", "malware"]) | texts,
    "determinationValue": texts,
}
file_records = st.one_of(
    # Schema-shaped, each field sometimes null, sometimes of any other type.
    st.fixed_dictionaries({}, optional={k: st.none() | v | response_values for k, v in FILE_FIELDS.items()}),
    st.fixed_dictionaries({k: v for k, v in FILE_FIELDS.items()}),
    response_values,  # not even an object
)
bodies = st.one_of(
    st.builds(lambda files: {"@odata.context": "x", "value": files}, st.lists(file_records, max_size=8)),
    st.builds(lambda files, extra: {**extra, "value": files}, st.lists(file_records, max_size=4),
              st.dictionaries(st.text(max_size=8), response_values, max_size=3)),
    response_values.map(lambda v: {"value": v}),
    response_values,
    st.binary(max_size=200),
)


def _mapping() -> dict[str, tuple[str, str]]:
    from connector.artifacts import default_mapping

    return {key: (entry["source"], entry["value_type"]) for key, entry in default_mapping()["cef_mapping"].items()
            if not entry.get("derived")}


def _wrong_type(value: Any, value_type: str) -> bool:
    if value is None:
        return False
    if value_type == "integer":
        return type(value) is not int
    if value_type == "boolean":
        return type(value) is not bool
    return not isinstance(value, str)


def _could_come_from(value: Any, source_values: list[Any], value_type: str) -> bool:
    for raw in source_values:
        if isinstance(value, bool) or isinstance(raw, bool):
            if value is raw:
                return True
        elif isinstance(value, int):
            if type(raw) is int and raw == value:
                return True
        elif isinstance(raw, str) and isinstance(value, str):
            raw = json.loads(json.dumps(raw))  # as the wire carries it: an escaped surrogate pair is one character
            if value in (raw, raw.lower()) or (value.endswith("\u2026") and raw.startswith(value[:-1])):
                return True
    return False


@pytest.fixture(scope="module")
def responses_config(hsim: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("responses")
    auth._apps.clear()
    # No retries: each generated body is the final answer.
    return make_config(hsim, tmp / "state", max_retries=0, rate_time_scale=0.0001)


@budget("responses")
@given(body=bodies)
def test_any_api_response_maps_cleanly_or_fails_as_api_error(sim: Any, responses_config: Any, body: Any) -> None:
    count("hypothesis examples")
    sim.clear_script()
    sim.script(ScriptedResponse(200, body=body, path_contains=FILES_PATH))
    result, context = run_files(responses_config, vt=VirtualTime())
    if not result.ok:
        assert result.error["kind"] == "api_error", result.message
        assert_one_sentence(result.message)
        return
    assert isinstance(body, dict) and isinstance(body.get("value"), list)
    files = body["value"]
    # The API's data unchanged, but for NaN and Infinity, which the client reads as null.
    assert json.dumps(result.data) == json.dumps(finite(files))
    mapping = _mapping()
    records = [f for f in finite(files) if isinstance(f, dict)]  # as the client reads them
    wrong = sum(1 for f in records for source, kind in set(mapping.values()) if _wrong_type(f.get(source), kind))
    assert result.summary["dropped_values"] >= wrong + (len(files) - len(records))  # reported
    for art in result.artifacts:
        assert len(art["name"]) <= 80
        for key, value in art["cef"].items():
            assert type(value) in (str, int, bool), (key, value)  # never an object, list, float or None
            assert not isinstance(value, str) or (0 < len(value) <= 1024 and value.strip())
            if key in mapping:
                source, kind = mapping[key]
                assert _could_come_from(value, [f.get(source) for f in records], kind), (key, value)
    stored = context.store.artifacts(EXAMPLE)
    assert {a["source_data_identifier"] for a in result.artifacts} <= {a["source_data_identifier"] for a in stored}
    assert len(result.message) < 400


def test_api_text_with_a_lone_surrogate_is_stored(sim: Any, responses_config: Any) -> None:
    sim.script(ScriptedResponse(200, body={"value": [dict(EXAMPLE_FILE, fileProductName="\ud800", signer="a\udcff")]},
                                path_contains=FILES_PATH))
    result, context = run_files(responses_config, vt=VirtualTime())
    assert result.ok, result.message
    assert result.data[0]["signer"] == "a\udcff"  # the API's data, unchanged
    assert [a["source_data_identifier"] for a in context.store.artifacts(EXAMPLE)]


# -- configuration ----------------------------------------------------------------------------

CONFIG_KEYS = ["tenant_id", "client_id", "client_secret", "certificate_path", "certificate_password", "cloud",
               "region", "api_base_url", "authority_url", "token_scope", "ca_bundle", "proxy", "timeout_seconds",
               "state_dir", "max_retries", "retry_budget_seconds", "max_retry_after_seconds", "rate_per_minute",
               "rate_per_hour", "max_pages", "rate_time_scale"]
SECRET = "fuzz-client-secret-9a8b7c6d"
weird_strings = st.sampled_from([
    "", " ", "\x00", "\n", "https://", "https://[::1", "https://[::1]:99999/", "https://host:abc/x",
    "https://host:99999", "http://plain.example", "ftp://x", "https://a b", "//host", "host", "https://h/t?x#y",
    "https://user:pw@h", "a/b?c#d", "../../etc", "commercial", "gcc", "eu", "nan", "inf", "-1", "1e999", "0",
    "socks5://[::1", "http://[::1]:3128", "https://login.microsoftonline.com/a/b", "~/nowhere", "/dev/null",
    "/proc/self/environ", "/", "💥",
]) | st.text(max_size=30) | hostile_text(max_size=10)
fuzz_values = weird_strings | json_values | st.sampled_from([float("nan"), float("inf"), -0.0, 10**30, True])


@contextlib.contextmanager
def _sandbox(tmp: Path) -> Iterator[None]:
    """Relative paths, ``~`` and the default state directory all land under
    ``tmp`` while a fuzzed configuration is used, and the secrets it
    registers for redaction are forgotten afterwards."""
    from connector import errors

    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_STATE_HOME")}
    secrets = set(errors._registered_secrets)  # a fuzzed "secret" such as "https://" must not outlive it
    cwd = os.getcwd()
    for sub in ("home", "xdg", "cwd"):
        (tmp / sub).mkdir(exist_ok=True)
    os.environ["HOME"], os.environ["XDG_STATE_HOME"] = str(tmp / "home"), str(tmp / "xdg")
    os.chdir(tmp / "cwd")
    try:
        yield
    finally:
        os.chdir(cwd)
        errors._registered_secrets.intersection_update(secrets)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("configs")
    (tmp / "a-file").write_text("not a certificate\n")
    (tmp / "a-dir").mkdir()
    values = {"tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47", "client_id": "00000000-0000-0000-0000-000000000001",
              "client_secret": SECRET, "api_base_url": "https://127.0.0.1:9", "state_dir": str(tmp / "state")}
    return values, tmp


mutations = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(CONFIG_KEYS), fuzz_values),
    st.tuples(st.just("path"), st.sampled_from(["ca_bundle", "certificate_path", "state_dir"]),
              st.sampled_from(["a-file", "a-dir", "missing", "a-file/below", "a-dir/new"])),
    st.tuples(st.just("delete"), st.sampled_from(["tenant_id", "client_id", "client_secret"]), st.none()),
    st.tuples(st.just("unknown"), st.text(min_size=1, max_size=20).filter(lambda k: k not in CONFIG_KEYS),
              json_values),
    st.tuples(st.just("env"), st.sampled_from(CONFIG_KEYS), weird_strings.filter(lambda s: "\x00" not in s)),
    st.tuples(st.just("unknown"), hostile_text(min_size=1, max_size=6).filter(lambda k: k not in CONFIG_KEYS),
              json_values),
)


@budget("configs")
@given(mutation=mutations)
@example(mutation=("set", "state_dir", "\x00"))  # found by this test: a NUL once escaped as a ValueError
def test_every_malformed_configuration_is_named(base_config: tuple[dict[str, Any], Path],
                                                mutation: tuple[str, str, Any]) -> None:
    from connector.config import load_config
    from connector.http.client import DefenderClient
    from connector.runtime.store import Store

    count("hypothesis examples")
    values, tmp = base_config
    values = dict(values)
    op, key, value = mutation
    env: dict[str, str] = {}
    if op == "set":
        values[key] = value
    elif op == "path":
        values[key] = str(tmp / value)
    elif op == "delete":
        values.pop(key)
    elif op == "unknown":
        values[key] = value
    else:
        env["MDE_" + key.upper()] = value
    path = tmp / "mde.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    try:
        with _sandbox(tmp):
            config = load_config(path, env=env)
            # Usable as loaded: the session, trust store, budget and store
            # open without touching the network.
            DefenderClient.from_config(config)
            Store.open(config.state_dir).close()
    except ConfigError as err:
        count("malformed configurations named")
        text = str(err)
        assert_one_sentence(text)
        # The key as the file holds it (JSON joins a surrogate pair into one
        # character) and as a sentence shows it (control characters escaped).
        shown = escape_text(json.loads(json.dumps(key)))
        assert re.search(rf"(?<![\w]){re.escape(shown)}(?![\w])", text) or (
            op == "unknown" and "is not accepted" in text), text
        assert SECRET not in text
        assert err.exit_code == 2
        return
    except ConnectorError as err:
        pytest.fail(f"{key}={value!r} ({op}) passed validation but failed later as {err.kind}: {err}")
    # Accepted: then the value really is a valid one.
    if "authority_url" not in values and "MDE_AUTHORITY_URL" not in env:
        from urllib.parse import urlsplit

        assert urlsplit(config.authority_url).path == "/" + config.tenant_id  # one path segment
    if op in ("set", "env") and config.get(key) is not None and key in (
            "timeout_seconds", "retry_budget_seconds", "max_retry_after_seconds", "rate_time_scale"):
        assert math.isfinite(float(config.get(key))), (key, value)


def test_state_dir_with_a_lone_surrogate_is_named(base_config: tuple[dict[str, Any], Path]) -> None:
    from connector.config import load_config
    from connector.http.client import DefenderClient

    values, tmp = base_config
    path = tmp / "surrogate.json"
    path.write_text(json.dumps({**values, "state_dir": "\ud800"}), encoding="utf-8")
    with _sandbox(tmp), pytest.raises(ConfigError, match="state_dir"):
        DefenderClient.from_config(load_config(path))


# -- playbooks ---------------------------------------------------------------------------------

def _shipped_triage() -> dict[str, Any]:
    from importlib import resources

    return dict(json.loads((resources.files("connector") / "playbooks" / "triage_new_alert.json").read_text()))


def _mutate(doc: Any, path: list[Any], op: str, value: Any) -> Any:
    """Apply one mutation at ``path`` (indexes taken modulo the sizes)."""
    node = doc
    for i, part in enumerate(path):
        if isinstance(node, dict) and node:
            key = sorted(node)[part % len(node)]
        elif isinstance(node, list) and node:
            key = part % len(node)
        else:
            break
        if i == len(path) - 1 or not isinstance(node[key], (dict, list)) or not node[key]:
            if op == "delete":
                del node[key]
            else:
                node[key] = value
            return doc
        node = node[key]
    return doc


playbook_values = json_values | st.sampled_from(["{{nope.summary.x}}", "{{files.nope}}", "nope", "files",
                                                 ["nope"], ["files", "files"], {"gt": [1]}, "stop", "explode"])


@budget("playbooks")
@given(kind=st.sampled_from(["mutate", "text", "truncate"]), path=st.lists(st.integers(0, 50), min_size=1,
                                                                             max_size=5),
       op=st.sampled_from(["set", "delete"]), value=playbook_values, text=hostile_text(max_size=200),
       cut=st.integers(0, 4000))
def test_any_malformed_playbook_is_one_clear_message(tmp_path_factory: Any, kind: str, path: list[int], op: str,
                                                     value: Any, text: str, cut: int) -> None:
    from connector.runtime.playbooks import load_playbook, validate_playbook_file

    count("hypothesis examples")
    doc = _shipped_triage()
    if kind == "mutate":
        content = json.dumps(_mutate(doc, path, op, value))
    elif kind == "truncate":
        content = json.dumps(doc)[:cut]
    else:
        content = text
    file = tmp_path_factory.mktemp("pb") / "playbook.json"
    # surrogatepass: a lone surrogate becomes bytes that are not UTF-8, as in a damaged file.
    file.write_bytes(content.encode("utf-8", "surrogatepass"))
    problems = validate_playbook_file(file)
    try:
        load_playbook(file)
    except PlaybookError as err:
        count("malformed playbooks named")
        assert problems, "load_playbook refused what validate_playbook_file accepted"
        assert err.exit_code == 2
        assert_one_sentence(str(err).splitlines()[0])
    else:
        assert not problems
    code, out, err_text = _cli("playbook", "validate", str(file))
    assert code == (2 if problems else 0), (code, out, err_text)
    assert "Traceback" not in out + err_text and "internal error" not in out + err_text
    if problems:
        code, out, err_text = _cli("watch", "--once", "--playbook", str(file), "--config", "/nonexistent.json")
        assert code == 2 and "Traceback" not in err_text and "internal error" not in err_text, err_text

