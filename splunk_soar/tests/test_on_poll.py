"""``on poll`` through the SDK's local runner: the connector's poller, SOAR containers."""

from __future__ import annotations

from typing import Any

from connector.runtime.poller import canonical_time

FILE = {
    "sha1": "f2a00fd2f2de1be0214b8529f1e9f67096c1aa70",
    "sha256": "dcd71ef5fff4362a9f64cf3f96f14f2b11d6f428f3badbedcb9ff3361e7079aa",
    "md5": "8d5b7cc9a832e21d22503057e1fec8e9",
    "globalPrevalence": 3, "size": 113984, "signer": None, "isValidCertificate": None,
    "determinationType": "Malware", "determinationValue": "Trojan:Win32/Emotet",
}


def expected_ids(sim: Any, state: dict[str, Any]) -> set[str]:
    """Alerts at or after the poll's floor (the first poll's look-back start)."""
    floor = state["mde_poller"]["checkpoints"]["poller:alertCreationTime"]["floor"]
    return {a["id"] for a in sim.alerts if (canonical_time(a.get("alertCreationTime")) or "") >= floor}


def test_on_poll_makes_one_container_per_alert_with_file_artifacts(soar: Any, asset: dict[str, Any], sim: Any) -> None:
    added = sim.add_alert(title="Emotet on FIN-LAPTOP-7", severity="High", files=[FILE])
    result = soar.run("on_poll", asset, {})
    assert result.get_status() is True, result.get_message()
    containers = list(soar.platform.containers.values())
    ids = [c["source_data_identifier"] for c in containers]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected_ids(sim, soar.ingest_state)
    assert added["id"] in ids
    mine = next(c for c in containers if c["source_data_identifier"] == added["id"])
    assert mine["name"] == "Emotet on FIN-LAPTOP-7"
    assert mine["severity"] == "high"
    artifacts = soar.platform.artifacts_of(added["id"])
    labels = sorted(a["label"] for a in artifacts)
    assert labels == ["alert", "file"]
    file_artifact = next(a for a in artifacts if a["label"] == "file")
    assert file_artifact["cef"]["fileHashSha256"] == FILE["sha256"]
    assert file_artifact["cef_types"]["fileHashSha256"] == ["sha256", "hash"]
    assert file_artifact["severity"] == "high"
    assert file_artifact["source_data_identifier"] == f"mde:{added['id']}:file:{FILE['sha256']}"
    alert_artifact = next(a for a in artifacts if a["label"] == "alert")
    assert alert_artifact["cef"]["defenderAlertId"] == added["id"]
    assert alert_artifact["cef_types"]["defenderAlertId"] == ["defender alert id"]


def test_on_poll_twice_adds_nothing_the_second_time(soar: Any, asset: dict[str, Any], sim: Any) -> None:
    sim.add_alert(title="first", files=[FILE])
    soar.run("on_poll", asset, {})
    containers, artifacts, calls = len(soar.platform.containers), len(soar.platform.artifacts), \
        soar.platform.container_calls
    assert containers > 0
    second = soar.run("on_poll", asset, {})
    assert second.get_status() is True
    assert soar.platform.container_calls == calls
    assert (len(soar.platform.containers), len(soar.platform.artifacts)) == (containers, artifacts)
    later = sim.add_alert(title="second", files=[])
    soar.run("on_poll", asset, {})
    assert [c["source_data_identifier"] for c in soar.platform.containers.values()][-1] == later["id"]
    assert len(soar.platform.containers) == containers + 1


def test_a_bad_alert_is_reported_and_the_poll_goes_on(soar: Any, asset: dict[str, Any], sim: Any) -> None:
    bad = sim.add_alert(title="no time", alertCreationTime="yesterday-ish")
    hostile = sim.add_alert(title="Evil \x1b[31m\u202eexe.txt\x00 {{7*7}} <script>", files=[FILE],
                            severity=float("nan"))
    good = sim.add_alert(title="good", files=[FILE])
    result = soar.run("on_poll", asset, {})
    assert result.get_status() is True, result.get_message()
    ids = [c["source_data_identifier"] for c in soar.platform.containers.values()]
    assert bad["id"] not in ids
    assert hostile["id"] in ids and good["id"] in ids
    name = next(c["name"] for c in soar.platform.containers.values() if c["source_data_identifier"] == hostile["id"])
    assert "\x00" not in name  # the platform's database refuses NUL
    assert "{{7*7}} <script>" in name  # kept as text: SOAR escapes it when it shows it


def test_a_failed_container_save_keeps_the_checkpoint_and_loses_nothing(
        soar: Any, asset: dict[str, Any], sim: Any) -> None:
    sim.add_alert(title="will be retried", files=[FILE])
    soar.platform.fail_container_at = 2
    failed = soar.run("on_poll", asset, {})
    assert failed.get_status() is False
    assert soar.ingest_state == {}
    soar.platform.fail_container_at = None
    retried = soar.run("on_poll", asset, {})
    assert retried.get_status() is True
    ids = {c["source_data_identifier"] for c in soar.platform.containers.values()}
    assert ids == expected_ids(sim, soar.ingest_state)


def test_poll_now_honours_the_container_and_artifact_counts(soar: Any, asset: dict[str, Any], sim: Any) -> None:
    for n in range(3):
        sim.add_alert(title=f"poll now {n}", files=[FILE, {**FILE, "sha256": "a" * 64, "sha1": None, "md5": None}])
    result = soar.run("on_poll", asset, {"container_count": 2, "artifact_count": 1})
    assert result.get_status() is True
    assert len(soar.platform.containers) == 2
    for container in soar.platform.containers.values():
        assert len(soar.platform.artifacts_of(container["source_data_identifier"])) == 1
    assert soar.ingest_state == {}  # a preview: the schedule's checkpoint stays


def test_on_poll_without_files_when_the_asset_says_so(soar: Any, asset: dict[str, Any], sim: Any) -> None:
    added = sim.add_alert(title="no files wanted", files=[FILE])
    soar.run("on_poll", {**asset, "ingest_related_files": False}, {})
    assert [a["label"] for a in soar.platform.artifacts_of(added["id"])] == ["alert"]
    assert not [r for r in sim.requests if r.path.endswith("/files")]


def test_on_poll_reports_a_listing_failure(soar: Any, asset: dict[str, Any]) -> None:
    result = soar.run("on_poll", {**asset, "client_secret": "wrong"}, {})
    assert result.get_status() is False
    assert "wrong" not in result.get_message()
    assert soar.platform.containers == {}


def test_each_container_runs_its_playbooks_once_when_its_last_artifact_is_saved(
        soar: Any, asset: dict[str, Any], sim: Any) -> None:
    added = sim.add_alert(title="playbooks run on this", files=[FILE])
    soar.run("on_poll", asset, {})
    artifacts = soar.platform.artifacts_of(added["id"])
    assert [bool(a.get("run_automation")) for a in artifacts] == [False] * (len(artifacts) - 1) + [True]


def test_an_asset_without_ingest_settings_polls_with_their_defaults(soar: Any, asset: dict[str, Any], sim: Any) -> None:
    from datetime import timedelta

    from connector.runtime.poller import shift

    added = sim.add_alert(title="defaults", files=[FILE])
    # Left empty in the asset form: files on, overlap 10 minutes, alertCreationTime.
    bare = {k: v for k, v in asset.items()
            if k not in ("ingest_related_files", "poll_overlap_minutes", "poll_time_field")}
    soar.run("on_poll", bare, {})
    assert sorted(a["label"] for a in soar.platform.artifacts_of(added["id"])) == ["alert", "file"]
    mark = soar.ingest_state["mde_poller"]["checkpoints"]["poller:alertCreationTime"]["watermark"]
    sim.reset_log()
    soar.run("on_poll", bare, {})
    query = next(r.query for r in sim.requests if r.path == "/api/alerts")
    assert query["$filter"] == f"alertCreationTime ge {shift(mark, -timedelta(minutes=10))}"
