"""The playbook engine end to end against the simulator, and its pure parts
(templating, conditions, trigger filters)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from connector.errors import EXIT_FAILED, EXIT_OK, ConfigError, InputError
from connector.runtime.engine import (
    evaluate,
    load_shipped_playbooks,
    matching_playbooks,
    render_text,
    resolve,
    run_playbook,
    triggered_run_id,
)
from connector.runtime.playbooks import Playbook, load_playbook
from mde_simulator import (
    EMPTY_ALERT_ID,
    EXAMPLE_ALERT_ID,
    EXAMPLE_FILE,
    MALWARE_ALERT_ID,
)
from tests.conftest import make_context
from tests.strategies import hostile_text

CASES = Path(__file__).parent / "fixtures" / "playbooks"
TRIAGE_STEPS = ["files", "decide", "severity_high", "severity_medium", "note_findings", "tag_suspicious",
                "note_clean"]


def _shipped(name: str) -> Playbook:
    return {p.name: p for p in load_shipped_playbooks()}[name]


@pytest.fixture
def context(sim_config: Any) -> Any:
    return make_context(sim_config)


def _statuses(record: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in record["steps"]}


def _count(store: Any, table: str) -> int:
    return int(store._connect().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608 - fixed names


# -- the triage playbook ---------------------------------------------------------------


def test_triage_documented_alert_raises_notes_and_tags(context: Any) -> None:
    playbook = _shipped("triage_new_alert")
    run_id = triggered_run_id(playbook, EXAMPLE_ALERT_ID)
    record = run_playbook(playbook, alert_id=EXAMPLE_ALERT_ID, context=context, trigger="new_alert",
                          trigger_alert={"id": EXAMPLE_ALERT_ID, "severity": "Informational",
                                         "title": "Documented example"}, run_id=run_id)

    assert record["status"] == "success"
    assert record["id"] == run_id and len(run_id) == 32 and int(run_id, 16) >= 0  # one format: 32 hex digits
    assert run_id == triggered_run_id("triage_new_alert", EXAMPLE_ALERT_ID)  # the same run on every trigger
    assert [s["id"] for s in record["steps"]] == TRIAGE_STEPS
    assert _statuses(record) == {
        "files": "success", "decide": "success", "severity_high": "success", "severity_medium": "skipped",
        "note_findings": "success", "tag_suspicious": "success", "note_clean": "skipped",
    }
    for step in record["steps"]:
        assert step["duration_ms"] >= 0
        assert step["error"] is None
    container = context.store.container(EXAMPLE_ALERT_ID)
    assert container["name"] == "Documented example"
    assert container["source"] == "new_alert"
    assert container["severity"] == "high"  # the documented example has a malware file
    assert container["tags"] == ["suspicious-files"]
    assert container["notes"] == [
        "Suspicious files: 1 malware, 0 PUA, 1 with an invalid certificate, 1 unsigned, 2 rare, of 4 distinct "
        "files. Alert 636688558380765161_2136280442 has 4 related files: 1 malware, 1 with an invalid "
        "certificate, 1 unsigned, 2 rare."
    ]
    assert container["artifact_count"] == 4

    saved = context.store.playbook_run(run_id)
    assert saved["status"] == "success"
    assert saved["trigger"] == "new_alert"
    assert saved["container"] == EXAMPLE_ALERT_ID
    assert saved["finished_at"] is not None
    assert saved["record"] == record


def test_triage_malware_alert_goes_high(context: Any) -> None:
    record = run_playbook(_shipped("triage_new_alert"), alert_id=MALWARE_ALERT_ID, context=context,
                          trigger="new_alert", trigger_alert={"id": MALWARE_ALERT_ID, "severity": "Low"})
    assert record["status"] == "success"
    assert _statuses(record)["severity_high"] == "success"
    assert _statuses(record)["severity_medium"] == "skipped"
    container = context.store.container(MALWARE_ALERT_ID)
    assert container["severity"] == "high"
    assert container["tags"] == ["suspicious-files"]
    assert container["notes"][0].startswith("Suspicious files: 5 malware, 0 PUA, ")


def test_triage_unsigned_file_raises_the_container_to_medium(simulator: Any, context: Any) -> None:
    unsigned = dict(EXAMPLE_FILE, signer=None, issuer=None, signerHash=None, isValidCertificate=None,
                    globalPrevalence=250_000, determinationType="Unknown",
                    sha1="0" * 39 + "1", sha256="0" * 63 + "1", md5="0" * 31 + "1")
    alert = simulator.add_alert(severity="Low", title="Unsigned tool launched", files=[unsigned])
    playbook = _shipped("triage_new_alert")
    record = run_playbook(playbook, alert_id=alert["id"], context=context, trigger="new_alert",
                          trigger_alert=alert, run_id=triggered_run_id(playbook, alert["id"]))
    assert _statuses(record)["severity_medium"] == "success"
    assert _statuses(record)["severity_high"] == "skipped"
    medium = next(s for s in record["steps"] if s["id"] == "severity_medium")
    # The artifact (unsigned: low) left the container at low; the playbook raised it.
    assert medium["message"] == "The severity changed from low to medium."
    container = context.store.container(alert["id"])
    assert container["severity"] == "medium"
    assert container["notes"][0].startswith("Suspicious files: 0 malware, 0 PUA, 0 with an invalid certificate, "
                                            "1 unsigned, 0 rare, of 1 distinct files.")


def test_triage_clean_alert_skips_the_suspicious_branch(context: Any) -> None:
    record = run_playbook(_shipped("triage_new_alert"), alert_id=EMPTY_ALERT_ID, context=context)
    assert record["status"] == "success"
    assert _statuses(record) == {
        "files": "success", "decide": "success", "severity_high": "skipped", "severity_medium": "skipped",
        "note_findings": "skipped", "tag_suspicious": "skipped", "note_clean": "success",
    }
    skipped = next(s for s in record["steps"] if s["id"] == "note_findings")
    assert skipped["message"] == "Skipped: its condition is false."
    container = context.store.container(EMPTY_ALERT_ID)
    assert container["tags"] == []
    assert container["severity"] == "informational"
    assert container["notes"] == ["No suspicious files among the 0 distinct files related to this alert. "
                                  f"Alert {EMPTY_ALERT_ID} has no related files."]


# -- idempotence ----------------------------------------------------------------------


def test_same_triggered_run_twice_adds_nothing(context: Any) -> None:
    playbook = _shipped("triage_new_alert")
    run_id = triggered_run_id(playbook, MALWARE_ALERT_ID)
    first = run_playbook(playbook, alert_id=MALWARE_ALERT_ID, context=context, trigger="new_alert", run_id=run_id)
    counts = {t: _count(context.store, t) for t in ("notes", "artifacts", "playbook_runs", "action_runs")}
    assert counts["notes"] == 1 and counts["playbook_runs"] == 1 and counts["action_runs"] == 1

    second = run_playbook(playbook, alert_id=MALWARE_ALERT_ID, context=context, trigger="new_alert", run_id=run_id)
    assert second == first  # returned from the store, not run again
    assert {t: _count(context.store, t) for t in counts} == counts


def test_a_run_left_running_by_a_crash_is_run_again_without_duplicates(context: Any) -> None:
    playbook = _shipped("triage_new_alert")
    run_id = triggered_run_id(playbook, EXAMPLE_ALERT_ID)
    first = run_playbook(playbook, alert_id=EXAMPLE_ALERT_ID, context=context, trigger="new_alert", run_id=run_id)
    # Simulate a crash after the steps wrote but before the run was marked finished.
    crashed = dict(first, status="running", finished_at=None)
    with context.store.transaction() as conn:
        context.store.save_playbook_run(conn, run_id, playbook=playbook.name, container=EXAMPLE_ALERT_ID,
                                        trigger="new_alert", status="running", record=crashed,
                                        started_at=first["started_at"], finished_at=None)
    actions_before = _count(context.store, "action_runs")

    again = run_playbook(playbook, alert_id=EXAMPLE_ALERT_ID, context=context, trigger="new_alert", run_id=run_id)
    assert again["status"] == "success"
    assert _count(context.store, "action_runs") == actions_before + 1  # it really ran again
    container = context.store.container(EXAMPLE_ALERT_ID)
    assert len(container["notes"]) == 1
    assert container["artifact_count"] == 4
    assert container["tags"] == ["suspicious-files"]
    assert context.store.playbook_run(run_id)["status"] == "success"
    assert _count(context.store, "playbook_runs") == 1


def test_manual_runs_get_fresh_ids(context: Any) -> None:
    playbook = _shipped("investigate_alert_files")
    one = run_playbook(playbook, alert_id=EXAMPLE_ALERT_ID, context=context)
    two = run_playbook(playbook, alert_id=EXAMPLE_ALERT_ID, context=context)
    assert one["id"] != two["id"]
    assert one["trigger"] == "manual"
    container = context.store.container(EXAMPLE_ALERT_ID)
    assert container["tags"] == ["investigated"]
    assert len(container["notes"]) == 2  # one per run: each run is its own investigation
    assert container["notes"][0].startswith("Related files: 4 listed, 4 distinct; malware 1, PUA 0, ")
    assert {r["id"] for r in context.store.playbook_runs(EXAMPLE_ALERT_ID)} == {one["id"], two["id"]}


# -- failures ---------------------------------------------------------------------------


def test_failing_action_with_on_failure_stop_ends_the_run(context: Any) -> None:
    alert_id = "da000000000000000000_404"
    record = run_playbook(_shipped("triage_new_alert"), alert_id=alert_id, context=context)
    assert record["status"] == "failed"
    files = record["steps"][0]
    assert files["status"] == "failed"
    assert files["error"]["kind"] == "not_found"
    assert files["error"]["http_status"] == 404
    assert f"Alert {alert_id} was not found" in files["message"]
    assert record["message"].startswith("Playbook triage_new_alert failed at step 'files' "
                                        "(0 succeeded, 1 failed, 6 skipped): Alert ")
    for step in record["steps"][1:]:
        assert step["status"] == "skipped"
        assert step["message"] == "Not run: step 'files' failed and stopped the run."
    assert context.store.container(alert_id) is None  # no empty container, no note
    assert _count(context.store, "notes") == 0
    assert context.store.playbook_run(record["id"])["status"] == "failed"


def test_failed_triggered_run_is_retried(simulator: Any, context: Any) -> None:
    alert_id = "da638999999999999999_1234567"
    playbook = _shipped("investigate_alert_files")
    run_id = triggered_run_id(playbook, alert_id)
    first = run_playbook(playbook, alert_id=alert_id, context=context, trigger="new_alert", run_id=run_id)
    assert first["status"] == "failed"  # Defender does not know the alert yet
    simulator.add_alert(id=alert_id, title="Appears later", files=[dict(EXAMPLE_FILE)])
    second = run_playbook(playbook, alert_id=alert_id, context=context, trigger="new_alert", run_id=run_id)
    assert second["status"] == "success"
    assert second["started_at"] >= first["started_at"]
    saved = context.store.playbook_run(run_id)
    assert saved["status"] == "success" and saved["record"] == second
    assert context.store.container(alert_id)["artifact_count"] == 1


def test_on_failure_continue_runs_independent_steps(context: Any) -> None:
    alert_id = "da000000000000000000_405"
    record = run_playbook(load_playbook(CASES / "on_failure_continue.json"), alert_id=alert_id, context=context)
    assert record["status"] == "success"  # the failure was tolerated
    assert _statuses(record) == {"files": "failed", "note_files": "skipped", "note_always": "success"}
    skipped = next(s for s in record["steps"] if s["id"] == "note_files")
    assert skipped["message"] == "Skipped: step 'files', which it depends on, failed."
    assert context.store.container(alert_id)["notes"] == ["Files step: failed."]


def test_builtin_steps_set_and_raise_severity(context: Any) -> None:
    alert_id = "manual-container-1"
    record = run_playbook(load_playbook(CASES / "severity_modes.json"), alert_id=alert_id, context=context)
    assert record["status"] == "success"
    messages = {s["id"]: s["message"] for s in record["steps"]}
    assert messages == {
        "to_medium": "The severity changed from informational to medium.",
        "not_lower": "The severity stays medium.",
        "down_to_low": "The severity changed from medium to low.",
        "tag": "Tagged was-informational, low.",
    }
    container = context.store.container(alert_id)
    assert container["severity"] == "low"
    assert container["tags"] == ["was-informational", "low"]


def test_run_needs_a_store(sim_config: Any) -> None:
    with pytest.raises(ConfigError, match="needs the local store"):
        run_playbook(_shipped("triage_new_alert"), alert_id=EXAMPLE_ALERT_ID,
                     context=make_context(sim_config, store=False))


# -- templating and conditions (pure) ------------------------------------------------------

OUTPUTS = {
    "files": {"summary": {"unsigned": 2, "malware": 0}, "data": [{"sha256": "aa"}, {"sha256": None},
                                                                   {"sha256": "cc"}],
              "message": "3 files"},
    "decide": {"result": True},
}


def _lookup_via_engine(root: str, path: str) -> Any:
    from connector.runtime.engine import _walk

    return _walk(OUTPUTS.get(root), path.split("."))


def test_whole_reference_keeps_the_type_and_embedded_renders_text() -> None:
    assert resolve("{{files.summary.unsigned}}", _lookup_via_engine) == 2
    assert resolve("{{ files.data.*.sha256 }}", _lookup_via_engine) == ["aa", "cc"]
    assert resolve("hashes: {{files.data.*.sha256}}; unsigned {{files.summary.unsigned}}",
                   _lookup_via_engine) == "hashes: aa, cc; unsigned 2"
    assert resolve("missing: {{files.summary.pua}}", _lookup_via_engine) == "missing: -"
    assert resolve({"a": ["{{decide.result}}", 3]}, _lookup_via_engine) == {"a": [True, 3]}
    assert resolve("no reference", _lookup_via_engine) == "no reference"


def test_text_from_the_api_is_never_expanded_as_a_template() -> None:
    # An alert title is API data: braces in it are literal, even when they
    # name a real output or a reference that comes later in the template.
    outputs = {**OUTPUTS, "trigger": {"alert": {"title": "{{files.summary.malware}}", "id": "{{trigger.alert.id}}"}}}

    def lookup(root: str, path: str) -> Any:
        from connector.runtime.engine import _walk

        return _walk(outputs.get(root), path.split("."))

    assert resolve("{{trigger.alert.title}}: {{files.summary.malware}} malware", lookup) == (
        "{{files.summary.malware}}: 0 malware")
    assert resolve("{{trigger.alert.id}} / {{trigger.alert.title}}", lookup) == (
        "{{trigger.alert.id}} / {{files.summary.malware}}")
    assert resolve("{{trigger.alert.title}}", lookup) == "{{files.summary.malware}}"  # a whole reference too
    assert resolve("a {{files.summary.unsigned}} b {{files.summary.unsigned}}", lookup) == "a 2 b 2"


@settings(max_examples=300, deadline=None)
@given(title=hostile_text(max_size=30))
def test_any_api_text_is_substituted_verbatim_and_never_expanded(title: str) -> None:
    outputs = {**OUTPUTS, "trigger": {"alert": {"title": title}}}

    def lookup(root: str, path: str) -> Any:
        from connector.runtime.engine import _walk

        return _walk(outputs.get(root), path.split("."))

    assert resolve("{{trigger.alert.title}} | {{files.summary.malware}}", lookup) == f"{title} | 0"


def test_render_text() -> None:
    assert render_text(None) == "-"
    assert render_text(True) == "true"
    assert render_text(3.0) == "3"
    assert render_text([]) == "-"
    assert render_text({"b": 1, "a": [1]}) == '{"a":[1],"b":1}'
    # API numbers may be NaN or Infinity: a note holds JSON, never those literals.
    assert render_text({"size": float("nan"), "n": [float("inf"), 1.5]}) == '{"n":[null,1.5],"size":null}'


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (True, True),
        ("{{decide.result}}", True),
        ("{{files.summary.malware}}", False),
        ({"gt": ["{{files.summary.unsigned}}", 0]}, True),
        ({"gt": ["{{files.summary.malware}}", 0]}, False),
        ({"ge": ["{{files.summary.malware}}", 0]}, True),
        ({"lt": ["{{files.summary.missing}}", 1]}, False),  # missing values never compare
        ({"gt": ["10", 9]}, False),  # a string is not a number
        ({"eq": ["{{decide.result}}", True]}, True),
        ({"eq": ["{{files.summary.unsigned}}", 2.0]}, True),
        ({"eq": [1, True]}, False),
        ({"ne": ["{{files.message}}", "3 files"]}, False),
        ({"in": ["cc", "{{files.data.*.sha256}}"]}, True),
        ({"in": ["dd", "{{files.data.*.sha256}}"]}, False),
        ({"contains": ["{{files.message}}", "files"]}, True),
        ({"contains": ["{{files.summary.unsigned}}", "2"]}, False),
        ({"exists": "{{files.summary.unsigned}}"}, True),
        ({"exists": "{{files.summary.pua}}"}, False),
        ({"any": [{"gt": ["{{files.summary.malware}}", 0]}, {"gt": ["{{files.summary.unsigned}}", 0]}]}, True),
        ({"all": [{"gt": ["{{files.summary.malware}}", 0]}, {"gt": ["{{files.summary.unsigned}}", 0]}]}, False),
        ({"any": []}, False),
        ({"all": []}, True),
        ({"not": {"exists": "{{files.summary.pua}}"}}, True),
    ],
)
def test_conditions(condition: Any, expected: bool) -> None:
    assert evaluate(condition, _lookup_via_engine) is expected


def test_conditions_never_evaluate_code() -> None:
    with pytest.raises(InputError, match="unknown"):
        evaluate({"__import__": ["os", "x"]}, _lookup_via_engine)
    assert evaluate("__import__('os').system('false')", _lookup_via_engine) is True  # just a non-empty string


def test_matching_playbooks_applies_every_filter_case_insensitively() -> None:
    filtered = load_playbook(CASES / "trigger_filters.json")
    triage = _shipped("triage_new_alert")
    manual = _shipped("investigate_alert_files")
    playbooks = [filtered, triage, manual]
    hit = {"severity": "high", "detectionSource": "WindowsDefenderAv", "status": "New"}
    assert [p.name for p in matching_playbooks(playbooks, hit)] == ["trigger_filters", "triage_new_alert"]
    for miss in ({**hit, "severity": "Low"}, {**hit, "detectionSource": "EDR"}, {"severity": "High"}):
        assert [p.name for p in matching_playbooks(playbooks, miss)] == ["triage_new_alert"]


def test_trigger_alert_fields_are_available_to_steps(context: Any) -> None:
    alert = {"id": "da1_1", "title": "Odd binary", "severity": "Medium", "detectionSource": "WindowsDefenderAv"}
    playbook = load_playbook(CASES / "trigger_filters.json")
    record = run_playbook(playbook, alert_id="da1_1", context=context, trigger="new_alert", trigger_alert=alert,
                          run_id=triggered_run_id(playbook, "da1_1"))
    assert record["status"] == "success"
    container = context.store.container("da1_1")
    assert container["notes"] == ["Odd binary (Medium)"]
    assert container["severity"] == "medium"  # taken from the triggering alert
    assert container["data"] == alert


def test_alert_title_holding_a_reference_is_noted_literally(context: Any) -> None:
    alert = {"id": "da1_2", "title": "{{trigger.alert.severity}}", "severity": "Medium",
             "detectionSource": "WindowsDefenderAv"}
    playbook = load_playbook(CASES / "trigger_filters.json")
    record = run_playbook(playbook, alert_id="da1_2", context=context, trigger="new_alert", trigger_alert=alert,
                          run_id=triggered_run_id(playbook, "da1_2"))
    assert record["status"] == "success"
    assert context.store.container("da1_2")["notes"] == ["{{trigger.alert.severity}} (Medium)"]


# -- CLI ----------------------------------------------------------------------------------


def test_cli_run_and_runs(simulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    config = simulator.write_config(tmp_path / "config.json", state_dir=str(tmp_path / "state"))
    code = main(["playbook", "run", "triage_new_alert", "--alert-id", EXAMPLE_ALERT_ID,
                 "--config", str(config), "--output", "json"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    record = json.loads(out)
    assert record["status"] == "success" and record["trigger"] == "manual"

    code = main(["playbook", "run", str(CASES.parent.parent.parent / "playbooks" / "investigate_alert_files.json"),
                 "--alert-id", "da000000000000000000_406", "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == EXIT_FAILED
    assert "failed at step 'files'" in out
    assert err.startswith("mde-connector: Playbook investigate_alert_files failed at step 'files'")

    assert main(["runs", "list", "--state-dir", str(tmp_path / "state"), "--output", "json"]) == EXIT_OK
    runs = json.loads(capsys.readouterr().out)
    assert sorted(r["status"] for r in runs) == ["failed", "success"]
    assert main(["runs", "list", "--config", str(config), "--alert-id", EXAMPLE_ALERT_ID]) == EXIT_OK
    table = capsys.readouterr().out
    assert "1 run(s)." in table and "success" in table

    assert main(["runs", "show", record["id"], "--config", str(config)]) == EXIT_OK
    shown = capsys.readouterr().out
    assert f"run       {record['id']}" in shown and "status    success" in shown
    assert re.search(r"^note_findings\s+add_note\s+success\s", shown, re.MULTILINE)
    assert main(["runs", "show", "no-such-run", "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == ("mde-connector: There is no playbook run with id 'no-such-run'. "
                                               "'mde-connector runs list' shows the run ids.")


def test_cli_run_invalid_playbook_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    assert main(["playbook", "run", str(CASES / "cycle.json"), "--alert-id", "x_1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mde-connector: cycle.json: step 'note' is in a depends_on cycle")
    assert main(["playbook", "run", "no_such_playbook", "--alert-id", "x_1"]) == 2
    assert "shipped playbooks: investigate_alert_files, triage_new_alert" in capsys.readouterr().err


def test_shipped_playbook_documents_are_not_mutated_by_runs(context: Any) -> None:
    playbook = _shipped("investigate_alert_files")
    before = copy.deepcopy(playbook.raw)
    run_playbook(playbook, alert_id=EXAMPLE_ALERT_ID, context=context)
    assert playbook.raw == before


def test_runs_show_a_run_the_poller_queued_but_never_started(context: Any, sim_config: Any,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    run_id = "triage_new_alert:da638402718394857125_-1566320855"
    with context.store.transaction() as conn:
        context.store.save_playbook_run(conn, run_id, playbook="triage_new_alert", container=MALWARE_ALERT_ID,
                                        trigger="new_alert", status="pending", record={"alert": {"id": "x"}},
                                        started_at="2026-01-01T00:00:00.000Z", finished_at=None)
    state = str(sim_config.state_dir)
    assert main(["runs", "show", run_id, "--state-dir", state, "--output", "json"]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "pending" and shown["steps"] == []
    assert shown["message"] == f"Playbook run {run_id} is pending; no step has run yet."
    assert main(["runs", "list", "--state-dir", state]) == EXIT_OK
    listed = capsys.readouterr().out  # too wide for 80 columns: a card, the run id whole on its first line
    assert listed.startswith(f"{run_id}\n  STATUS: pending · TRIGGER: new_alert · STARTED: 2026-01-01 00:00:00\n")
    assert f"ALERT: {MALWARE_ALERT_ID}" in listed
