"""Playbook loading and validation: what an editor enforces before saving.

One fixture per invalid case under tests/fixtures/playbooks/, named for the
case; each must be rejected with one line naming the file, the step and the fix.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from connector.errors import EXIT_INVALID, PlaybookError
from connector.runtime.playbooks import (
    execution_order,
    load_playbook,
    validate_playbook,
    validate_playbook_file,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "playbooks").glob("*.json"))
CASES = Path(__file__).parent / "fixtures" / "playbooks"


def _triage() -> dict[str, Any]:
    return json.loads((ROOT / "playbooks" / "triage_new_alert.json").read_text(encoding="utf-8"))


# -- shipped playbooks ---------------------------------------------------------------


def test_both_shipped_playbooks_exist_and_validate() -> None:
    assert [p.name for p in SHIPPED] == ["investigate_alert_files.json", "triage_new_alert.json"]
    for path in SHIPPED:
        assert [str(p) for p in validate_playbook_file(path)] == []


def test_shipped_playbooks_load_from_the_package() -> None:
    from connector.runtime.engine import load_shipped_playbooks

    playbooks = {p.name: p for p in load_shipped_playbooks()}
    assert set(playbooks) == {"triage_new_alert", "investigate_alert_files"}
    assert playbooks["triage_new_alert"].trigger_type == "new_alert"
    assert playbooks["investigate_alert_files"].trigger_type == "manual"


def test_triage_runs_the_action_first_and_keeps_layout_hints() -> None:
    playbook = load_playbook(ROOT / "playbooks" / "triage_new_alert.json")
    order = [s.id for s in playbook.order]
    assert order[:2] == ["files", "decide"]
    files = playbook.step("files")
    assert files.action == "get_alert_related_files"
    assert files.parameters == {"alert_id": "{{container.alert_id}}"}
    # A visual editor round-trips the node positions.
    assert all("layout" in s.raw for s in playbook.steps)
    assert files.raw["layout"] == {"x": 120, "y": 40}


# -- invalid playbooks: one fixture per case ---------------------------------------------


@pytest.mark.parametrize(
    ("case", "step", "expected"),
    [
        ("misspelt_action", "files",
         ["calls unknown action 'get_alert_files'", "known actions: ", "get_alert_related_files"]),
        ("undeclared_data_path", "note",
         ["{{files.data.*.publisher}}", "does not declare", "did you mean 'data.*.filePublisher'"]),
        ("sha1_bound_to_alert_id", "again",
         ["{{files.artifacts.*.cef.fileHashSha1}} (sha1, hash)", "parameter 'alert_id'", "defender alert id"]),
        ("missing_required_parameter", "files",
         ["does not bind the required parameter 'alert_id'", '"alert_id": "{{container.alert_id}}"']),
        ("unknown_parameter", "files", ["unknown parameter 'alertid'", "did you mean 'alert_id'"]),
        ("cycle", "note", ["depends_on cycle ('note' -> 'tag' -> 'note')", "remove one of these dependencies"]),
        ("depends_on_missing_step", "note",
         ["depends on unknown step 'file'", "did you mean 'files'", "could never run"]),
        ("reference_to_later_step", "note", ["references step 'files', which runs after it"]),
        ("duplicate_step_id", "files", ["reuses the id of step #1", "unique id"]),
        ("schema_invalid", "raise", ["field 'parameters.severity'", '(got "critical")']),
    ],
)
def test_invalid_playbook_is_rejected_with_one_line_naming_the_step(
        case: str, step: str, expected: list[str]) -> None:
    problems = validate_playbook_file(CASES / f"{case}.json")
    assert len(problems) == 1, [str(p) for p in problems]
    line = str(problems[0])
    assert "\n" not in line
    assert line.startswith(f"{case}.json: step '{step}' ")
    assert problems[0].step == step
    for text in expected:
        assert text in line
    assert line.endswith(".")


def test_malformed_json_names_line_and_column() -> None:
    problems = validate_playbook_file(CASES / "malformed.json")
    assert [str(p) for p in problems] == [
        "malformed.json: the file is not valid JSON at line 6, column 38: "
        "Expecting property name enclosed in double quotes."
    ]


def test_load_playbook_raises_playbook_error_not_a_traceback() -> None:
    with pytest.raises(PlaybookError) as info:
        load_playbook(CASES / "misspelt_action.json")
    assert info.value.exit_code == EXIT_INVALID
    assert str(info.value).startswith("misspelt_action.json: step 'files' calls unknown action")
    with pytest.raises(PlaybookError, match="does not exist"):
        load_playbook(CASES / "no_such_playbook.json")


def test_several_problems_are_all_reported_and_summarised() -> None:
    data = _triage()
    data["steps"][0]["action"] = "get_alert_files"
    data["steps"][4]["parameters"]["text"] = "{{decide.verdict}}"
    problems = validate_playbook(data, source="t.json")
    assert len(problems) == 2
    assert "unknown action 'get_alert_files'" in str(problems[0])
    assert "{{decide.verdict}}, a data path a decision step does not declare" in str(problems[1])
    from connector.runtime.playbooks import parse_playbook

    with pytest.raises(PlaybookError, match=r"\(and 1 more problem; 'mde-connector playbook validate FILE'"):
        parse_playbook(json.dumps(data), source="t.json")


def test_duplicate_json_key_is_rejected() -> None:
    text = '{"name": "a", "name": "b", "version": "1", "trigger": {"type": "manual"}, "steps": []}'
    problems = validate_playbook_file_text(text)
    assert problems == ["x.json: the file is not valid: the key 'name' appears twice in one object; keep one of them."]


def validate_playbook_file_text(text: str) -> list[str]:
    from connector.runtime.playbooks import parse_playbook

    try:
        parse_playbook(text, source="x.json")
    except PlaybookError as err:
        return [str(err)]
    return []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["steps"][1].pop("parameters"), "step 'decide' field 'parameters' is required"),
        (lambda d: d["steps"][1].__setitem__("type", "decisoin"),
         "step 'decide' field 'type' must be one of action, decision"),
        (lambda d: d["steps"][2].__setitem__("when", {"gtt": [1, 2]}),
         "step 'severity_high' field 'when.gtt' is not accepted"),
        (lambda d: d["steps"][0].__setitem__("id", "container"), "step 'container' field 'id' must be"),
        (lambda d: d["steps"][0].pop("action"),
         "step 'files' field 'action' is required; set an action name from the manifest"),
        (lambda d: d.pop("trigger"), "field 'trigger' is required"),
        (lambda d: d.__setitem__("trigger", {"type": "manual", "filters": {"severity": ["High"]}}),
         "field 'trigger.filters' applies to new_alert triggers only"),
        (lambda d: d["steps"][1].__setitem__("action", "get_alert_related_files"),
         "step 'decide' field 'action' applies to action steps only"),
        (lambda d: d["steps"].__setitem__(0, "files"), "step #1 must be an object"),
        (lambda d: d.__setitem__("name", "triage new alert"), "field 'name' must be 1 to 100 letters"),
    ],
)
def test_schema_invalid_playbook_gets_one_sentence(mutate: Any, expected: str) -> None:
    data = _triage()
    mutate(data)
    lines = [str(p) for p in validate_playbook(data, source="triage_new_alert.json")]
    assert lines, "expected a problem"
    assert any(line.startswith(f"triage_new_alert.json: {expected}") for line in lines), lines
    assert all("\n" not in line and "Traceback" not in line for line in lines)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["steps"][4]["parameters"].__setitem__("text", "{{trigger.alert.titel}}"),
         "references {{trigger.alert.titel}}, which is not an alert field (did you mean 'title'?)"),
        (lambda d: d["steps"][4]["parameters"].__setitem__("text", "{{container.alertid}}"),
         "references {{container.alertid}}, which the container does not have"),
        (lambda d: d["steps"][4]["parameters"].__setitem__("text", "{{ files summary }}"),
         "has a malformed reference"),
        (lambda d: d["steps"][4]["parameters"].__setitem__("text", "{{nope.result}}"),
         "references unknown step 'nope'"),
        (lambda d: d["steps"][0]["parameters"].__setitem__("alert_id", ".."),
         "step 'files' parameter 'alert_id' must not contain control characters or be '.' or '..'"),
        (lambda d: d["steps"].append({"id": "again", "type": "action", "action": "get_alert_related_files",
                                      "depends_on": ["files"],
                                      "parameters": {"alert_id": "{{files.artifacts.*.container}}"}}),
         "step 'again' binds {{files.artifacts.*.container}}, which yields a list, to parameter 'alert_id'"),
    ],
)
def test_reference_and_parameter_problems(mutate: Any, expected: str) -> None:
    data = _triage()
    mutate(data)
    lines = [str(p) for p in validate_playbook(data, source="t.json")]
    assert any(expected in line for line in lines), lines


def test_bindings_with_the_right_contains_are_accepted() -> None:
    data = _triage()
    data["steps"].append({"id": "again", "type": "action", "action": "get_alert_related_files",
                          "depends_on": ["files"], "parameters": {"alert_id": "{{files.parameter.alert_id}}"}})
    data["steps"].append({"id": "literal", "type": "action", "action": "get_alert_related_files",
                          "parameters": {"alert_id": "636688558380765161_2136280442"}})
    data["steps"][4]["parameters"]["text"] = "{{trigger.alert.title}} on {{trigger.alert.relatedUser.userName}}"
    assert validate_playbook(data, source="t.json") == []


def test_trigger_reference_in_a_manual_playbook_is_rejected() -> None:
    data = _triage()
    data["trigger"] = {"type": "manual"}
    data["steps"][4]["parameters"]["text"] = "{{trigger.alert.title}}"
    lines = [str(p) for p in validate_playbook(data, source="t.json")]
    assert lines == ["t.json: step 'note_findings' parameter 'text' references {{trigger.alert.title}}, but a "
                     "manual playbook has no triggering alert; use {{container.alert_id}} or set the trigger "
                     "type to new_alert."]


def test_a_step_behind_an_unreachable_step_is_reported() -> None:
    data = _triage()
    data["steps"][1]["depends_on"] = ["fils"]
    lines = [str(p) for p in validate_playbook(data, source="t.json")]
    assert lines[0].startswith("t.json: step 'decide' depends on unknown step 'fils' (did you mean 'files'?)")
    assert "t.json: step 'note_clean' can never run: it depends on 'decide', which can never run; " \
           "fix that step or remove the dependency." in lines


def test_execution_order_is_topological_and_stable_by_file_order() -> None:
    steps = [("c", ("b",)), ("a", ()), ("b", ("a",)), ("d", ()), ("e", ("c", "d"))]
    assert execution_order(steps) == ["a", "b", "c", "d", "e"]
    assert execution_order([("x", ("y",)), ("y", ("x",)), ("z", ())]) == ["z"]


def test_validation_does_not_mutate_the_document() -> None:
    data = _triage()
    before = copy.deepcopy(data)
    validate_playbook(data, source="t.json")
    assert data == before


# -- CLI -------------------------------------------------------------------------------


def test_cli_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    assert main(["playbook", "validate", *map(str, SHIPPED)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "OK: 2 playbooks valid"
    assert err == ""


def test_cli_validate_without_files_checks_the_shipped_playbooks(capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    assert main(["playbook", "validate"]) == 0
    assert capsys.readouterr().out.strip() == "OK: 2 playbooks valid"


def test_cli_validate_reports_each_problem_on_one_stderr_line(capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    files = [SHIPPED[0], CASES / "misspelt_action.json", CASES / "malformed.json", CASES / "cycle.json"]
    assert main(["playbook", "validate", *map(str, files)]) == EXIT_INVALID
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("misspelt_action.json: step 'files' calls unknown action 'get_alert_files'")
    assert lines[1].startswith("malformed.json: the file is not valid JSON at line 6, column 38")
    assert lines[2].startswith("cycle.json: step 'note' is in a depends_on cycle")


def test_cli_validate_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    assert main(["playbook", "validate", str(CASES / "nope.json")]) == EXIT_INVALID
    assert capsys.readouterr().err.strip() == "nope.json: the file does not exist; check the path."


def test_cli_playbook_without_subcommand_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    assert main(["playbook"]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert err.startswith("mde-connector: playbook: choose a subcommand.")
    assert len(err.strip().splitlines()) == 1


def test_the_playbook_schema_is_valid_draft_2020_12() -> None:
    from jsonschema import Draft202012Validator

    from connector.runtime.playbooks import playbook_schema

    Draft202012Validator.check_schema(playbook_schema())


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({"any": [{"eq": [1]}]}, "field 'when.any[0].eq' must be a list of two operands"),
        ({}, "field 'when' must hold exactly one operator"),
        ({"gt": [1, 2], "lt": [1, 2]}, "field 'when' must hold exactly one operator; combine several"),
        ({"exists": "files.summary.pua"}, "field 'when.exists' must be one {{...}} reference"),
        ("yes", "field 'when' must be true, false, one {{...}} reference or an object with one operator"),
    ],
)
def test_malformed_conditions_are_explained(when: Any, expected: str) -> None:
    data = _triage()
    data["steps"][2]["when"] = when
    lines = [str(p) for p in validate_playbook(data, source="t.json")]
    assert len(lines) == 1
    assert lines[0].startswith(f"t.json: step 'severity_high' {expected}"), lines
