"""The Microsoft Graph (alerts_v2) source: mapping, client profile, action, simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connector.errors import ForbiddenError
from connector.http.graph import GraphClient, enrich_files, evidence_files, graph_config, graph_permission
from tests.conftest import FIXTURES, make_config

FILE = "#microsoft.graph.security.fileEvidence"
PROCESS = "#microsoft.graph.security.processEvidence"

GRAPH_PERMISSION = graph_permission()


def example_alert() -> dict[str, Any]:
    """Shaped after Microsoft's documented alerts_v2 example (not verbatim;
    see tests/fixtures/README.graph.md)."""
    return json.loads((FIXTURES / "graph_alert_example.json").read_text(encoding="utf-8"))


def test_example_file_and_process_image_collapse_into_one_artifact_without_invented_fields() -> None:
    from connector.artifacts import build_artifacts

    files = evidence_files(example_alert()["evidence"])
    mstest = {
        "sha1": "5f1e8acedc065031aad553b710838eb366cfee9a",
        "sha256": "8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec",
        "size": 6136392, "filePublisher": "Microsoft Corporation",
        "fileName": "MsSense.exe", "filePath": "C:\\Program Files\\temp",
    }
    assert files == [mstest, mstest]  # the file evidence, then the process's image file
    mapped = build_artifacts("da637578995287051192_756343937", files)
    assert len(mapped.artifacts) == 1 and mapped.summary["duplicates_collapsed"] == 1
    cef = mapped.artifacts[0]["cef"]
    assert cef["fileName"] == "MsSense.exe" and cef["fileSize"] == 6136392
    assert not {"fileHashMd5", "signer", "issuer", "signerHash", "isValidCertificate", "globalPrevalence"} & set(cef)


def test_hostile_and_malformed_evidence_is_skipped_or_kept_verbatim() -> None:
    hostile = "evil\u202e\x1b[31m{{x}}<b>\ud800.exe"
    evidence: Any = [
        None, "text", {"@odata.type": FILE, "fileDetails": None},
        {"@odata.type": FILE, "fileDetails": {"sha1": None, "sha256": "", "fileName": hostile, "md5": "AB" * 16}},
        {"@odata.type": PROCESS,
         "imageFile": {"md5": "ab" * 16, "signer": "Contoso Ltd", "filePath": "C:\\Users\\m.müller"}},
        {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "203.0.113.7"},
    ]
    files = evidence_files(evidence)
    assert files == [{"fileName": hostile, "md5": "AB" * 16},
                     {"md5": "ab" * 16, "signer": "Contoso Ltd", "filePath": "C:\\Users\\m.müller"}]
    assert evidence_files({"not": "a list"}) == []


def test_enrichment_fills_only_absent_fields_once_per_file_and_counts_files() -> None:
    files = [{"sha1": "a" * 40, "signer": "Graph"}, {"sha1": "b" * 40}, {"md5": "c" * 32}]
    defender = {"a" * 40: {"signer": "Defender", "signerHash": "d" * 40, "isValidCertificate": True,
                           "globalPrevalence": 3, "determinationType": None}}
    from connector.errors import NotFoundError

    def lookup(sha1: str) -> Any:
        if sha1 not in defender:
            raise NotFoundError("no such file")
        return defender[sha1]

    files.append({"sha1": "A" * 40})  # the same file again, as a process's image
    asked: list[str] = []

    def counting_lookup(sha1: str) -> Any:
        asked.append(sha1.lower())
        return lookup(sha1.lower())

    assert enrich_files(files, counting_lookup) == {"enriched_files": 1}  # one distinct file, twice
    assert sorted(asked) == ["a" * 40, "b" * 40]
    assert files[0] == {"sha1": "a" * 40, "signer": "Graph", "signerHash": "d" * 40,
                        "isValidCertificate": True, "globalPrevalence": 3}
    assert files[1] == {"sha1": "b" * 40}


def test_enrichment_stops_at_the_first_refusal_and_says_so() -> None:
    calls: list[str] = []

    def lookup(sha1: str) -> Any:
        calls.append(sha1)
        raise ForbiddenError("Defender for Endpoint denied access to File x (403).")

    summary = enrich_files([{"sha1": "a" * 40}, {"sha1": "b" * 40}], lookup)
    assert calls == ["a" * 40]
    assert summary["enriched_files"] == 0 and "denied access" in summary["enrichment_error"]


def _graph_values(simulator: Any, **extra: Any) -> dict[str, Any]:
    return simulator.connector_config(source="graph", graph_base_url=simulator.base_url, **extra)


def test_graph_config_uses_each_clouds_graph_host_and_scope(tmp_path: Path, simulator: Any) -> None:
    for cloud, host in [("commercial", "https://graph.microsoft.com"), ("gcc", "https://graph.microsoft.com"),
                        ("gcc-high", "https://graph.microsoft.us"), ("dod", "https://dod-graph.microsoft.us")]:
        cfg = make_config(simulator.connector_config(source="graph", cloud=cloud, api_base_url=None,
                                                     authority_url=None), tmp_path)
        graph = graph_config(cfg)
        assert (graph.api_base_url, graph.token_scope) == (host, host + "/.default")
        assert graph.fingerprint() != cfg.fingerprint()


def _action(simulator: Any, tmp_path: Path, alert_id: str, **extra: Any) -> Any:
    from connector.actions import ActionContext, run_action

    cfg = make_config(_graph_values(simulator, **extra), tmp_path)
    return run_action("get_alert_related_files", {"alert_id": alert_id}, ActionContext(config=cfg))


def test_action_with_graph_source_maps_evidence_to_the_same_artifacts(simulator: Any, tmp_path: Path) -> None:
    from mde_simulator.data import DA_ALERT_ID

    result = _action(simulator, tmp_path, DA_ALERT_ID)
    assert result.status == "success", result.message
    kinds = {e["@odata.type"] for e in result.data}
    assert {FILE, PROCESS, "#microsoft.graph.security.deviceEvidence"} <= kinds
    file_hashes = {e["fileDetails"]["sha256"] for e in result.data if e["@odata.type"] == FILE}
    assert {a["cef"].get("fileHashSha256") for a in result.artifacts} == file_hashes
    assert result.summary["distinct_files"] == len(file_hashes)
    assert result.summary["duplicates_collapsed"] >= 1  # the process image repeats a file evidence
    for artifact in result.artifacts:
        assert "signerHash" not in artifact["cef"] and "isValidCertificate" not in artifact["cef"]
        assert artifact["source_data_identifier"].startswith(f"mde:{DA_ALERT_ID}:file:")
        assert artifact["cef"].get("fileName")


def test_action_with_enrichment_fills_defender_fields_and_says_how_many(simulator: Any, tmp_path: Path) -> None:
    from mde_simulator.data import DA_ALERT_ID

    result = _action(simulator, tmp_path, DA_ALERT_ID, enrich_files=True)
    assert result.status == "success", result.message
    assert 0 < result.summary["enriched_files"] <= result.summary["distinct_files"]
    assert "enriched from the Defender API" in result.message
    assert any("globalPrevalence" in a["cef"] for a in result.artifacts)


def test_graph_404_and_403_name_graph_and_the_permission_with_request_id(simulator: Any, tmp_path: Path) -> None:
    result = _action(simulator, tmp_path, "da000000000000000000_1")
    assert result.status == "failed" and result.error["kind"] == "not_found"
    assert "Microsoft Graph" in result.message
    assert result.error["correlation_id"]

    simulator.add_app(client_id="11111111-2222-3333-4444-555555555555", secret="s3cret-value-graph",
                      roles=["File.Read.All"])
    result = _action(simulator, tmp_path / "b", "da637472900382838869_1364969609",
                     client_id="11111111-2222-3333-4444-555555555555", client_secret="s3cret-value-graph")
    assert result.status == "failed" and result.error["kind"] == "forbidden"
    assert GRAPH_PERMISSION in json.dumps(result.to_dict())


def test_graph_list_pages_and_service_source_filter(simulator: Any, tmp_path: Path) -> None:
    cfg = make_config(_graph_values(simulator), tmp_path)
    client = GraphClient.from_config(cfg, service_source="microsoftDefenderForEndpoint")
    pages = list(client.list_alerts({"$filter": "createdDateTime ge 2000-01-01T00:00:00Z",
                                     "$orderby": "createdDateTime asc", "$top": "7"}))
    alerts = [a for page in pages for a in page]
    assert len(pages) > 1 and len({a["id"] for a in alerts}) == len(alerts) == len(simulator.alerts)
    stamps = [a["createdDateTime"] for a in alerts]
    assert stamps == sorted(stamps)
    other = GraphClient.from_config(cfg, service_source="microsoftDefenderForIdentity")
    assert [a for page in other.list_alerts({}) for a in page] == []


def test_every_graph_declared_path_appears_in_a_graph_result_and_defender_only_paths_do_not() -> None:
    from connector.actions.get_alert_related_files import handler
    from connector.manifest import load_manifest
    from tests.test_manifest import resolve

    class FakeGraph:
        source = "graph"

        def alert_evidence(self, alert_id: str) -> list[dict[str, Any]]:
            evidence = example_alert()["evidence"]
            evidence[1]["fileDetails"]["signer"] = "Microsoft Windows Publisher"
            evidence[1]["fileDetails"]["issuer"] = "Microsoft Windows Production PCA 2011"
            evidence[1]["fileDetails"]["md5"] = "8d5b7cc9a832e21d22503057e1fec8e9"
            return list(evidence)

    class Refusing:
        def get_json(self, path: str, **_: Any) -> Any:
            raise ForbiddenError("Defender for Endpoint denied access to the file (403).")

    class Config:
        def get(self, key: str, default: Any = None) -> Any:
            return {"enrich_files": True}.get(key, default)

    class Context:
        config = Config()
        client = FakeGraph()
        enrichment_client = Refusing()

        def progress(self, message: str) -> None:
            pass

    result = handler({"alert_id": "da637578995287051192_756343937"}, Context()).to_dict()
    spec = load_manifest().action("get_alert_related_files")
    graph_paths = spec.output_paths_for("graph")
    missing = [p for p in graph_paths if not any(v is not None for v in resolve(result, p.split(".")[1:]))]
    assert missing == []
    defender_only = spec.output_paths - spec.output_paths_for("graph", enriched=True)
    assert "action_result.data.*.signerHash" in defender_only
    assert "action_result.artifacts.*.cef.signerHash" in spec.output_paths_for("graph", enriched=True) - graph_paths
    assert all(not resolve(result, p.split(".")[1:]) for p in defender_only)


def test_watch_with_graph_source_takes_every_alert_exactly_once_through_pages(fresh_simulator, tmp_path,
                                                                              capsys) -> None:
    from connector.cli.main import main
    from connector.runtime.poller import canonical_time

    sim = fresh_simulator()
    cfg = sim.write_config(tmp_path / "c.json", state_dir=str(tmp_path / "state"), source="graph",
                           graph_base_url=sim.base_url)
    args = ["watch", "--once", "--config", str(cfg), "--output", "json", "--no-playbooks", "--page-size", "9",
            "--service-source", "microsoftDefenderForEndpoint"]
    assert main([*args, "--lookback", "3d"]) == 0
    report = json.loads(capsys.readouterr()[0])
    assert sorted(report["processed"]) == sorted(a["id"] for a in sim.alerts)
    assert report["checkpoint"]["field"] == "createdDateTime"
    assert report["checkpoint"]["watermark"] == max(canonical_time(a["alertCreationTime"]) for a in sim.alerts)
    graph_lists = [r for r in sim.requests if r.path == "/v1.0/security/alerts_v2"]
    assert len(graph_lists) > 1
    assert all("serviceSource eq 'microsoftDefenderForEndpoint'" in r.query["$filter"] for r in graph_lists)
    assert not [r for r in sim.requests if r.path == "/api/alerts"]
    assert main(args) == 0
    again = json.loads(capsys.readouterr()[0])
    assert again["processed_count"] == 0 and again["skipped_already_seen"] >= 1


def test_service_source_with_the_defender_source_is_refused_with_exit_2(simulator, tmp_path, capsys) -> None:
    from connector.cli.main import main

    cfg = simulator.write_config(tmp_path / "c.json", state_dir=str(tmp_path / "state"))
    code = main(["watch", "--once", "--config", str(cfg), "--service-source", "microsoftDefenderForEndpoint"])
    err = capsys.readouterr()[1]
    assert code == 2 and "--service-source" in err and "Traceback" not in err


def _playbook_reading(reference: str) -> dict[str, Any]:
    return {
        "name": "signer_hash_note", "description": "Notes a file's signer hash.", "version": "1.0.0",
        "trigger": {"type": "manual"},
        "steps": [
            {"id": "files", "type": "action", "action": "get_alert_related_files",
             "parameters": {"alert_id": "{{container.alert_id}}"}},
            {"id": "note", "type": "add_note", "depends_on": ["files"],
             "parameters": {"text": "{{files." + reference + "}}"}},
        ],
    }


def test_playbook_validator_knows_which_outputs_each_source_yields() -> None:
    from connector.runtime.playbooks import validate_playbook

    signer_hash = _playbook_reading("artifacts.*.cef.signerHash")
    assert validate_playbook(signer_hash, source="pb.json") == []
    assert validate_playbook(signer_hash, source="pb.json", api_source="defender") == []
    problems = validate_playbook(signer_hash, source="pb.json", api_source="graph")
    assert problems and "signerHash" in str(problems[0])
    assert validate_playbook(signer_hash, source="pb.json", api_source="graph", enriched=True) == []
    file_name = _playbook_reading("data.*.fileDetails.fileName")
    assert validate_playbook(file_name, source="pb.json", api_source="graph") == []
    assert validate_playbook(file_name, source="pb.json", api_source="defender")


def test_shipped_playbooks_validate_for_both_sources(capsys) -> None:
    from connector.cli.main import main

    assert main(["playbook", "validate", "--source", "graph"]) == 0
    assert main(["playbook", "validate", "--source", "defender"]) == 0


def test_graph_429_honours_retry_after_and_errors_carry_graphs_request_id(fresh_simulator, tmp_path) -> None:
    from mde_simulator import ScriptedResponse
    from mde_simulator.data import DA_ALERT_ID
    from tests.conftest import NoSleep

    sim = fresh_simulator()
    sleeper = NoSleep()
    cfg = make_config(_graph_values(sim), tmp_path)
    client = GraphClient.from_config(cfg, sleep=sleeper.sleep, clock=sleeper.clock)
    sim.script(ScriptedResponse(429, headers={"Retry-After": "7"}, path_contains="/v1.0/security/alerts_v2"))
    assert client.get_alert(DA_ALERT_ID)["id"] == DA_ALERT_ID
    assert 7 in [round(s) for s in sleeper.waits]

    body = {"error": {"code": "Forbidden", "message": "Missing role permissions.",
                      "innerError": {"date": "2026-12-01T08:00:00", "request-id": "2b4c9d7e-request",
                                     "client-request-id": "2b4c9d7e-request"}}}
    sim.script(ScriptedResponse(403, body=body, path_contains="/v1.0/security/alerts_v2"))
    try:
        client.get_alert(DA_ALERT_ID)
    except ForbiddenError as err:
        assert err.correlation_id == "2b4c9d7e-request"
        assert GRAPH_PERMISSION in (err.hint or "") and "Microsoft Graph" in err.message
    else:
        raise AssertionError("a 403 must raise ForbiddenError")


def test_graph_budget_is_its_own_file_with_graphs_documented_limit(simulator, tmp_path) -> None:
    cfg = make_config(_graph_values(simulator), tmp_path)
    client = GraphClient.from_config(cfg)
    assert client.budget.path.name == "graph_rate_budget.sqlite"
    assert [n for n, _ in client.budget.limits][0] == 150


def test_test_connectivity_with_graph_checks_the_graph_token_and_alert_list(simulator, tmp_path) -> None:
    from connector.actions import ActionContext, run_action

    cfg = make_config(_graph_values(simulator), tmp_path)
    result = run_action("test_connectivity", {}, ActionContext(config=cfg))
    assert result.status == "success", result.message
    assert result.summary["roles"] == [GRAPH_PERMISSION]
    assert result.summary["api_reachable"] is True and "Microsoft Graph" in result.message

    simulator.add_app(client_id="22222222-3333-4444-5555-666666666666", secret="an0ther-secret-value",
                      roles=["File.Read.All"])
    cfg = make_config(_graph_values(simulator, client_id="22222222-3333-4444-5555-666666666666",
                                    client_secret="an0ther-secret-value"), tmp_path / "b")
    result = run_action("test_connectivity", {}, ActionContext(config=cfg))
    assert result.status == "failed" and GRAPH_PERMISSION in result.message


def test_watch_with_graph_source_runs_the_triage_playbook_on_graph_evidence(fresh_simulator, tmp_path,
                                                                            capsys) -> None:
    from connector.cli.main import main
    from connector.runtime.store import Store

    sim = fresh_simulator()
    cfg = sim.write_config(tmp_path / "c.json", state_dir=str(tmp_path / "state"), source="graph",
                           graph_base_url=sim.base_url)
    assert main(["watch", "--once", "--config", str(cfg), "--output", "json", "--lookback", "3d"]) == 0
    report = json.loads(capsys.readouterr()[0])
    assert report["processed_count"] == len(sim.alerts)
    assert {r["status"] for r in report["playbook_runs"]} == {"success"}
    assert not [r for r in sim.requests if r.path.startswith("/api/")]
    store = Store.open(tmp_path / "state")
    artifacts = [a for alert_id in report["processed"] for a in store.artifacts(alert_id)]
    assert artifacts and all(a["source_data_identifier"].startswith("mde:") for a in artifacts)


def test_hostile_graph_evidence_yields_clean_artifacts_and_is_stored(fresh_simulator, tmp_path) -> None:
    from connector.actions import ActionContext, run_action
    from connector.runtime.store import Store
    from mde_simulator import ScriptedResponse

    sim = fresh_simulator()
    name = "inv\u202eoice\x1b]0;pwn\x07<script>{{container.alert_id}}\u0085.exe"
    body = (
        '{"id": "da1_1", "evidence": [{"@odata.type": "#microsoft.graph.security.fileEvidence", "fileDetails": '
        '{"sha1": 12345, "sha256": "' + "ab" * 32 + '", "fileSize": NaN, "fileName": ' + json.dumps(name)
        + ', "signer": {"nested": [1, 2]}}}, {"@odata.type": "#microsoft.graph.security.processEvidence", '
        '"imageFile": {"sha256": "' + "AB" * 32 + '", "fileSize": 4096, "filePath": "C:\\\\\\u00fcml\\\\\\ud800"}}]}'
    ).encode()
    sim.script(ScriptedResponse(200, body=body, path_contains="/v1.0/security/alerts_v2"))
    cfg = make_config(_graph_values(sim), tmp_path)
    result = run_action("get_alert_related_files", {"alert_id": "da1_1"},
                        ActionContext(config=cfg, store=Store.open(cfg.state_dir)))
    assert result.status == "success", result.message
    assert len(result.artifacts) == 1
    cef = result.artifacts[0]["cef"]
    assert cef["fileHashSha256"] == "ab" * 32 and cef["fileSize"] == 4096
    assert "fileHashSha1" not in cef and "signer" not in cef
    assert result.summary["dropped_values"] >= 2
    assert Store.open(cfg.state_dir).artifacts("da1_1")
